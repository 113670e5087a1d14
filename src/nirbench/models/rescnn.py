"""Residual convolutional NQS (paper section 4.5).

``ResCNN(lx, ly, channels, n_blocks)`` maps ``s`` of shape ``(N,)`` (site ``i = x * ly + y``) to
a complex scalar ``log psi(s)``:

* reshape to one input channel on the ``(lx, ly)`` grid: ``(1, lx, ly)``;
* ``x = GELU(LN(conv(s)))`` lifts to ``channels`` channels;
* ``n_blocks`` residual blocks ``x -> x + f2(f1(x))`` with ``f(x) = GELU(LN(conv(x)))``;
* global average pool over the sites, then ``Linear(channels, 2)`` -> ``Re, Im log psi``.

All convolutions are 3x3 with circular padding; ``LN`` normalises the channel vector of each
site separately. Together with the global pooling this makes ``log psi`` exactly invariant
under lattice translations (periodic boundaries). With open boundaries the circular padding
still treats the lattice as a torus, so the network is translation invariant there as well
(the Hamiltonian is not, which the variational state can only approximate).

The convolutions' parameters live in ``eqx.nn.Conv2d`` modules (weight
``(C_out, C_in, 3, 3)``, bias ``(C_out, 1, 1)``) and are evaluated by :func:`circular_conv`, whose
value is one dense matrix product on small lattices and XLA's convolution on large ones
(:func:`uses_dense_conv`), and whose reverse-mode derivative w.r.t. the kernel is an im2col
product (gather each site's 3x3 neighbourhood with a fixed index table, then one matrix product).
The reason is the per-sample Jacobian that minSR needs: XLA lowers the vmapped kernel gradient of
``lax.conv`` to a grouped convolution, which on the CPU took 21.7 s for 1024 configurations of a
4x4, 8-channel, 2-block network (and tried to allocate 35 GB for 4096), against 0.11 s with the
im2col form; im2col was 2x slower than the convolution in the forward pass, the dense matrix
product 1.6-5x faster on 4x4 (8 and 16 channels).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nirbench.models.layers import layer_norm
from nirbench.models.mlp import _scaled_linear


def _conv(in_channels: int, out_channels: int, key) -> eqx.nn.Conv2d:
    return eqx.nn.Conv2d(
        in_channels, out_channels, kernel_size=3, padding=1, padding_mode="CIRCULAR", key=key
    )


@functools.cache
def neighbourhood_index(lx: int, ly: int) -> np.ndarray:
    """``(N, 9)`` int: entry ``[x * ly + y, 3 a + b]`` is the site ``((x + a - 1) % lx, (y + b - 1) % ly)``.

    The 3x3 circular neighbourhood of every site, in the kernel order of ``eqx.nn.Conv2d``.
    """
    return np.array(
        [[((x + a - 1) % lx) * ly + (y + b - 1) % ly for a in range(3) for b in range(3)]
         for x in range(lx) for y in range(ly)],
        dtype=np.int32,
    )  # fmt: skip


@functools.cache
def _neighbourhood_one_hot(lx: int, ly: int) -> np.ndarray:
    """``(N, 9, N)`` float 0/1: ``[n, t, m] = 1`` iff site ``m`` is entry ``t`` of site ``n``'s neighbourhood."""
    index = neighbourhood_index(lx, ly)
    return (index[:, :, None] == np.arange(lx * ly)).astype(np.float64)


def dense_conv_matrix(kernel: jax.Array, lx: int, ly: int) -> jax.Array:
    """The circular 3x3 convolution as a matrix ``(C_out N, C_in N)`` acting on ``x.reshape(-1)``.

    ``[o N + n, c N + m] = sum_t kernel[o, c, t] [site m is entry t of site n's neighbourhood]``
    (summed where the neighbourhood wraps onto a site twice, lx or ly < 3).
    """
    c_out, c_in = kernel.shape[:2]
    one_hot = jnp.asarray(_neighbourhood_one_hot(lx, ly), kernel.dtype)
    matrix = jnp.einsum("oct,ntm->oncm", kernel.reshape(c_out, c_in, 9), one_hot)
    return matrix.reshape(c_out * lx * ly, c_in * lx * ly)


def uses_dense_conv(n_sites: int, c_in: int, c_out: int) -> bool:
    """Whether :func:`circular_conv` evaluates a convolution as one dense matrix product.

    The dense product (:func:`dense_conv_matrix`) does ``N / 9`` times the convolution's
    arithmetic, but as one well-shaped matrix product, where XLA's convolution of few channels on a
    small grid runs far below the machine's speed; the dense form is taken while ``N / 9`` is at
    most the channel count. Measured (one core, float64, a 2-block ResCNN on 2048-8192
    configurations, dense / convolution time): 4 channels 0.60 on 4x4, 1.10 on 8x8; 8 channels
    0.62 on 4x4, 0.85 on 8x8, 1.07 on 10x10; 16 channels 0.19 on 4x4, 0.36 on 8x8, 0.53 on 10x10,
    0.69 on 12x12 (docs/benchmarks.md, "The ResCNN's convolutions as dense products").
    """
    return n_sites <= 9 * max(c_in, c_out)


def _wrapped_conv(kernel: jax.Array, x: jax.Array) -> jax.Array:
    """3x3 cross-correlation with circular padding: ``kernel (C_out, C_in, 3, 3)``, ``x (C_in, lx, ly)``."""
    c_out, (c_in, lx, ly) = kernel.shape[0], x.shape
    if uses_dense_conv(lx * ly, c_in, c_out):
        return (dense_conv_matrix(kernel, lx, ly) @ x.reshape(c_in * lx * ly)).reshape(c_out, lx, ly)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="wrap")
    return jax.lax.conv_general_dilated(padded[None], kernel, (1, 1), "VALID")[0]


@jax.custom_vjp
def _circular_conv(kernel: jax.Array, x: jax.Array) -> jax.Array:
    return _wrapped_conv(kernel, x)


def _circular_conv_fwd(kernel, x):
    return _wrapped_conv(kernel, x), (kernel, x)


def _circular_conv_bwd(residuals, cotangent):
    """Kernel cotangent by im2col (a matmul, also under vmap); input cotangent by the transpose of
    the forward map (XLA's)."""
    kernel, x = residuals
    c_out, c_in = kernel.shape[:2]
    patches = x.reshape(c_in, -1)[:, neighbourhood_index(*x.shape[1:])]  # (C_in, N, 9)
    d_kernel = jnp.einsum("on,cnt->oct", cotangent.reshape(c_out, -1), patches).reshape(kernel.shape)
    _, pullback = jax.vjp(lambda y: _wrapped_conv(kernel, y), x)
    return d_kernel, pullback(cotangent)[0]


_circular_conv.defvjp(_circular_conv_fwd, _circular_conv_bwd)


def circular_conv(conv: eqx.nn.Conv2d, x: jax.Array) -> jax.Array:
    """``conv(x)`` for a 3x3 ``conv`` with circular padding 1; ``x (C_in, lx, ly) -> (C_out, lx, ly)``.

    Same value and derivatives as ``conv(x)``; only the reverse-mode kernel derivative is computed
    differently (im2col, see the module docstring).
    """
    out = _circular_conv(conv.weight, x)
    return out + conv.bias if conv.bias is not None else out


class ResCNN(eqx.Module):
    """Translation-invariant residual CNN wave function ``s (N,) -> log psi(s)`` (complex).

    Args:
        lx, ly: lattice shape; ``N = lx * ly``.
        channels: channels of every convolution after the first (paper: 16).
        n_blocks: residual blocks of two convolutions each (paper: 4).
        final_scale: factor applied to the initial output weights (output bias starts at 0).
        key: PRNG key.
    """

    convs: tuple[eqx.nn.Conv2d, ...]
    norms: tuple[eqx.nn.LayerNorm, ...]
    output: eqx.nn.Linear
    lx: int = eqx.field(static=True)
    ly: int = eqx.field(static=True)

    def __init__(
        self, lx: int, ly: int, channels: int = 16, n_blocks: int = 4, *, final_scale: float = 0.1, key
    ):
        n_convs = 1 + 2 * n_blocks
        keys = jax.random.split(key, n_convs + 1)
        self.lx, self.ly = lx, ly
        self.convs = tuple(_conv(1 if i == 0 else channels, channels, keys[i]) for i in range(n_convs))
        self.norms = tuple(eqx.nn.LayerNorm(channels) for _ in range(n_convs))
        self.output = _scaled_linear(eqx.nn.Linear(channels, 2, key=keys[-1]), final_scale)

    def _layer(self, i: int, x: jax.Array) -> jax.Array:
        # the norm over the channels (axis 0) at every site; as a double vmap of the norm's
        # __call__ the J1-J2 recipe's symmetric NQS took 42 ms for 128 configurations (its
        # gradient 220 ms) against 29 ms (140 ms) so (one core of a 2-core AMD EPYC)
        return jax.nn.gelu(layer_norm(self.norms[i], circular_conv(self.convs[i], x), axis=0))

    def __call__(self, s: jax.Array) -> jax.Array:
        """``s`` of shape ``(N,)`` -> complex ``log psi(s)`` (shape ``()``)."""
        x = jnp.asarray(s).astype(self.output.weight.dtype).reshape(1, self.lx, self.ly)
        x = self._layer(0, x)
        for block in range((len(self.convs) - 1) // 2):
            x = x + self._layer(2 + 2 * block, self._layer(1 + 2 * block, x))
        out = self.output(jnp.mean(x, axis=(1, 2)))
        return out[0] + 1j * out[1]
