"""Symmetry wrappers for single-state networks (paper section 4.5), and the sign wrappers.

Each wrapper is an ``eqx.Module`` with the same signature as the network it wraps:
``__call__(s)`` with ``s`` of shape ``(N,)`` (+-1) returns a complex scalar ``log psi(s)``.
Wrappers compose; the order matters for exact invariance:

    MagnetisationPenalty(PermutationAveraged(SpinFlipSymmetric(net), perms))

is invariant under every permutation in the group ``perms`` *and* under ``s -> -s``
(the group average of a flip-invariant function stays flip invariant). The other order,
``SpinFlipSymmetric(PermutationAveraged(...))``, is not: the "flip if ``s[0] < 0``" rule looks at
site 0, which a permutation moves.

Both averaging wrappers take ``average``: ``"log"`` (default; the paper's "averaging the outputs",
i.e. a geometric mean of the amplitudes) or ``"amplitude"`` (the arithmetic mean of the amplitudes
``psi``, i.e. the projector onto the symmetric sector, ``log mean_g exp(log psi_g)``; beyond the
paper). The amplitude mean lets the images interfere, so the symmetrised state can have signs
that no single image has; the log mean cannot.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nirbench.models.layers import on_rows

SPIN_FLIP_MODES = ("first", "average")
AVERAGES = ("log", "amplitude")
OUTPUT_HEADS = ("log", "signed")


def _check_average(average: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"symmetry average must be one of {AVERAGES}, got {average!r}")


def mean_log_psi(log_psi: jax.Array, average: str = "log") -> jax.Array:
    """Average complex ``log psi`` values ``(G,)`` into one: ``mean(log psi)`` for ``"log"``,
    ``log mean(psi)`` (stabilised by the largest real part) for ``"amplitude"``."""
    if average == "log":
        return jnp.mean(log_psi)
    shift = jax.lax.stop_gradient(jnp.max(jnp.real(log_psi)))
    return jnp.log(jnp.mean(jnp.exp(log_psi - shift))) + shift


class SpinFlipSymmetric(eqx.Module):
    """Make ``net`` invariant under the global spin flip ``s -> -s``.

    ``mode="first"`` (paper): flip all spins if ``s[0] < 0``, then call ``net`` (one evaluation).
    This breaks any translation invariance ``net`` had, because it singles out site 0.
    ``mode="average"``: the average of ``net(s)`` and ``net(-s)`` (two evaluations; ``average``
    ``"log"``: ``(net(s) + net(-s)) / 2``, like ``PermutationAveraged``; ``"amplitude"``: of
    ``psi``), which keeps every permutation invariance of ``net``.
    Either way the result is spin-flip *even*: ``psi(-s) = psi(s)``.
    """

    net: eqx.Module
    mode: str = eqx.field(static=True, default="first")
    average: str = eqx.field(static=True, default="log")

    def __post_init__(self):
        if self.mode not in SPIN_FLIP_MODES:
            raise ValueError(f"SpinFlipSymmetric mode must be one of {SPIN_FLIP_MODES}, got {self.mode!r}")
        _check_average(self.average)

    def __call__(self, s: jax.Array) -> jax.Array:
        s = jnp.asarray(s)
        if self.mode == "average":
            return mean_log_psi(jnp.stack([self.net(s), self.net(-s)]), self.average)
        return self.net(jnp.where(s[0] < 0, -s, s))


class SpinFlipParity(eqx.Module):
    """A state of definite spin-flip parity: ``psi(s) = (f(s) + parity * f(-s)) / 2``.

    ``f`` is ``net``'s amplitude, ``parity`` +1 (even: ``psi(-s) = psi(s)``) or -1 (odd:
    ``psi(-s) = -psi(s)``); the projection of ``f`` onto that sector (an amplitude average, so the
    two images interfere). ``parity`` 0 leaves the state free: ``psi(s) = f(s)`` exactly (the
    second image is still evaluated, so that stacked states share one code path, and gets a zero
    gradient). Beyond the paper, for the TFI model's ordered phase, whose two lowest
    levels are the even and the odd cat state: in a multi-state NQS whose states carry fixed
    parities (``build_nqs(flip_parities=...)``) a network that learns one ferromagnet gives the cat
    state of its parity, so the span can hold both, where an unconstrained NQS can end with one
    ferromagnet and its excitations only (docs/nir-keeping-up.md).

    ``parity`` is stored as an integer array (shape ``()``), not a static field, so that the K
    stacked states of a ``MultiStateNQS`` can differ in it; ``eqx.is_inexact_array`` ignores it.
    For the layer-wise minSR (``nirbench.minsr``) it exposes ``linear_layers`` and ``probed_call``
    when ``net`` does, with an image axis of length :attr:`n_images` on the probes and inputs.
    """

    net: eqx.Module
    parity: np.ndarray
    n_images: int = eqx.field(static=True, default=2)

    def __init__(self, net: eqx.Module, parity: int):
        if parity not in (1, -1, 0):
            raise ValueError(f"spin-flip parity must be +1, -1 or 0 (free), got {parity!r}")
        self.net = net
        self.parity = np.asarray(parity, dtype=np.int32)

    def _combine(self, log_f: jax.Array, log_f_flipped: jax.Array) -> jax.Array:
        """``log((f(s) + parity f(-s)) / 2)`` from the two images' ``log f`` (the parity as a phase).

        Parity 0: the flipped image is replaced by ``log f(s)`` itself, so the average is
        ``log f(s)`` and no gradient reaches the flipped image (no ``where`` over a branch that
        can be ``log 0``)."""
        log_f_flipped = jnp.where(self.parity == 0, log_f, log_f_flipped)
        phase = jnp.where(self.parity < 0, 1j * jnp.pi, 0.0)
        return mean_log_psi(jnp.stack([log_f, log_f_flipped + phase]), "amplitude")

    def __call__(self, s: jax.Array) -> jax.Array:
        s = jnp.asarray(s)
        return self._combine(self.net(s), self.net(-s))

    def on_rows(self, rows: jax.Array) -> jax.Array:
        """``rows`` ``(R, N)`` -> ``(R,)``: ``jax.vmap(self)(rows)``, with ``net`` on the batch of
        each image (:func:`nirbench.models.layers.on_rows`)."""
        rows = jnp.asarray(rows)
        return jax.vmap(self._combine)(on_rows(self.net, rows), on_rows(self.net, -rows))

    def linear_layers(self):
        """``net``'s linear layers (each used on both images)."""
        return self.net.linear_layers()

    def probed_call(self, s: jax.Array, probes=None):
        """``net.probed_call`` on both images: ``probes`` ``None`` or one ``(2, out)`` array per
        linear layer (row 0 for ``s``, row 1 for ``-s``); returns ``(log psi, inputs)`` with
        ``inputs[l]`` of shape ``(2, in)``."""
        s = jnp.asarray(s)
        layers = self.linear_layers()
        probes = ((None,) * len(layers),) * 2 if probes is None else tuple(zip(*probes))
        log_f, inputs = self.net.probed_call(s, probes[0])
        log_f_flipped, inputs_flipped = self.net.probed_call(-s, probes[1])
        stacked = tuple(jnp.stack(pair) for pair in zip(inputs, inputs_flipped))
        return self._combine(log_f, log_f_flipped), stacked


class PermutationAveraged(eqx.Module):
    """Average ``log psi`` (or ``psi``) over a group of site permutations.

    ``average="log"``: ``log psi(s) = mean_g net(s[perms[g]])``, the *outputs* (complex
    ``log psi``) are averaged, as in the paper ("applying the corresponding transformations to the
    input configurations and averaging the outputs"); this is a product, not a sum, of amplitudes.
    ``average="amplitude"``: ``psi(s) = mean_g exp(net(s[perms[g]]))``, the projection onto the
    symmetric sector. If ``perms`` is a group (closed under composition) the result is exactly
    invariant under each element.

    ``perms`` is an integer array of shape ``(G, N)`` (a permutation acts as ``s[perm]``, the
    convention of ``nirbench.lattice``). It is stored as an integer array, so filtering with
    ``eqx.is_inexact_array`` (gradients, optimisers) ignores it.
    """

    net: eqx.Module
    perms: np.ndarray
    average: str = eqx.field(static=True)

    def __init__(self, net: eqx.Module, perms, average: str = "log"):
        perms = np.asarray(perms)
        if perms.ndim != 2 or not np.issubdtype(perms.dtype, np.integer):
            raise ValueError(
                f"perms must be an integer array of shape (G, N), got {perms.dtype} {perms.shape}"
            )
        _check_average(average)
        self.net = net
        self.perms = perms.astype(np.int32)
        self.average = average

    def __call__(self, s: jax.Array) -> jax.Array:
        s = jnp.asarray(s)
        transformed = s[jnp.asarray(self.perms)]  # (G, N)
        return mean_log_psi(jax.vmap(self.net)(transformed), self.average)


class MagnetisationPenalty(eqx.Module):
    """Subtract ``penalty`` from ``Re log psi`` when ``sum(s) != magnetisation``.

    Off-sector amplitudes are suppressed by exactly ``exp(-penalty)`` in ``|psi|``
    (paper: penalty 30 for the zero-magnetisation sector of the J1-J2 model).
    """

    net: eqx.Module
    magnetisation: int = eqx.field(static=True, default=0)
    penalty: float = eqx.field(static=True, default=30.0)

    def __call__(self, s: jax.Array) -> jax.Array:
        s = jnp.asarray(s)
        off_sector = jnp.sum(s.astype(jnp.int32)) != self.magnetisation
        return self.net(s) - jnp.where(off_sector, self.penalty, 0.0)


class MarshallSign(eqx.Module):
    """Multiply ``psi`` by the Marshall sign ``(-1)^(number of down spins on sublattice A)``.

    ``log psi(s) = net(s) + i pi n_A(s)`` with ``n_A`` the number of ``-1`` spins on the sites where
    ``sublattice`` (shape ``(N,)`` bool; stored as the tuple of those site indices) is true. The exact ground-state sign of the
    nearest-neighbour Heisenberg model on a bipartite lattice, and the usual starting point at
    ``J2 / J1 = 0.5`` (beyond the paper, which learns the phase from scratch): a freshly initialised
    network then starts near the Neel-like sign structure instead of the uniform-sign state, whose
    energy is a maximum of the exchange term. ``|psi|`` is unchanged.
    """

    net: eqx.Module
    sublattice: tuple[int, ...] = eqx.field(
        static=True, converter=lambda mask: tuple(int(i) for i in np.flatnonzero(mask))
    )

    def __call__(self, s: jax.Array) -> jax.Array:
        s = jnp.asarray(s)
        n_down = jnp.sum(s[jnp.asarray(self.sublattice, dtype=jnp.int32)] < 0)
        return self.net(s) + 1j * jnp.pi * n_down


class SignedAmplitude(eqx.Module):
    """Read a network's two outputs as a real amplitude that can change sign: ``psi = exp(u) (1 + v)``.

    ``net`` returns ``z = u + i v`` (the paper reads ``u, v`` as ``Re, Im log psi``). Here
    ``log psi(s) = u + log(1 + v)`` with the complex logarithm, so ``Im log psi`` is ``pi`` where
    ``1 + v < 0`` and ``0`` elsewhere: a real wave function whose sign the network sets by moving
    ``v`` through ``-1``, continuously and with a non-zero derivative. A freshly initialised
    network (``v`` near 0) is sign-free. Beyond the paper; ``build_nqs(output_head="signed")``.

    Why (``benchmarks/sign_trap.py``, J1-J2 on the 4x4 torus at ``J2 = 0.5``, exact averages):
    with the paper's head, imaginary-time optimisation from the Marshall sign stops at E/N
    -0.526243, the best state whose sign is exactly Marshall's (-0.526244; exact -0.528620): to
    flip a sign, ``Im log psi`` would have to rotate by pi on amplitudes that the optimisation has
    already driven towards zero. With this head and ``symmetry_average="amplitude"`` it reaches the
    exact ground state.
    """

    net: eqx.Module

    def __call__(self, s: jax.Array) -> jax.Array:
        z = self.net(s)
        return jnp.real(z) + jnp.log(1.0 + jnp.imag(z) + 0j)


def images_per_configuration(network) -> int:
    """How many times ``network`` evaluates its innermost network per configuration: the product of
    ``|G|`` over :class:`PermutationAveraged` wrappers, ``n_images`` over :class:`SpinFlipParity`
    and 2 over averaging :class:`SpinFlipSymmetric` wrappers, following ``.net`` inwards (stacked
    networks included: ``perms`` may carry a leading axis)."""
    images = 1
    while network is not None:
        if isinstance(network, PermutationAveraged):
            images *= int(np.shape(network.perms)[-2])
        elif isinstance(network, SpinFlipParity):
            images *= network.n_images
        elif isinstance(network, SpinFlipSymmetric) and network.mode == "average":
            images *= 2
        network = getattr(network, "net", None)
    return images
