"""Tests for nirbench.models: MLP, ResCNN, symmetry wrappers and build_nqs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nirbench.hamiltonians import make_hamiltonian
from nirbench.lattice import SquareLattice
from nirbench.models import (
    MLP,
    NETS,
    MagnetisationPenalty,
    MarshallSign,
    PermutationAveraged,
    ResCNN,
    SignedAmplitude,
    SpinFlipParity,
    SpinFlipSymmetric,
    batched_log_prob,
    build_nqs,
    rescnn,
)
from nirbench.models.layers import layer_norm
from nirbench.models.multistate import evaluate_in_chunks, evaluation_chunk
from nirbench.models.rescnn import circular_conv
from nirbench.models.symmetry import images_per_configuration


def _random_configs(n, n_sites, seed=0, magnetisation=None):
    rng = np.random.default_rng(seed)
    if magnetisation is None:
        return rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, n_sites))
    n_down = (n_sites - magnetisation) // 2
    out = np.ones((n, n_sites), dtype=np.int8)
    for row in out:
        row[rng.choice(n_sites, n_down, replace=False)] = -1
    return out


@eqx.filter_jit
def _evaluate_jit(net, configs):
    return jax.vmap(net)(configs)


def _evaluate(net, configs):
    """``net`` on every row of ``configs`` (any leading shape ``(..., N)``), one compiled call."""
    configs = np.asarray(configs)
    flat = _evaluate_jit(net, jnp.asarray(configs.reshape(-1, configs.shape[-1])))
    return np.asarray(flat).reshape(configs.shape[:-1])


@eqx.filter_jit
def _amplitudes_jit(nqs, configs):
    return jax.vmap(nqs.log_amplitudes)(configs)


def _amplitudes(nqs, configs):
    """``configs`` ``(..., N)`` -> ``(..., K)``: every state of ``nqs`` on every configuration."""
    configs = np.asarray(configs)
    flat = _amplitudes_jit(nqs, jnp.asarray(configs.reshape(-1, 1, configs.shape[-1])))
    return np.asarray(flat).reshape(configs.shape[:-1] + (nqs.n_states,))


# Tests share the network shapes (MLP width 8, depth 2; ResCNN 3 channels, 1 block):
# JAX compiles the random initialisers once per shape, which dominates the run time here.
WIDTH, DEPTH, CHANNELS, BLOCKS = 8, 2, 3, 1


def test_mlp_output_and_structure():
    net = MLP(6, width=WIDTH, depth=DEPTH, key=jax.random.key(0))
    assert len(net.hidden) == DEPTH and len(net.norms) == DEPTH
    assert net.output.weight.shape == (2, 8)
    s = _random_configs(5, 6)
    out_int = _evaluate(net, s)
    out_float = _evaluate(net, s.astype(np.float64))
    assert out_int.shape == (5,) and np.iscomplexobj(out_int)
    np.testing.assert_allclose(out_int, out_float, rtol=0, atol=0)
    # small output layer: near-uniform, but not exactly degenerate
    assert np.all(np.abs(out_int) < 1.0)
    assert np.std(out_int.real) > 1e-6 and np.std(out_int.imag) > 1e-6

    # out[0] + 1j out[1] of the final linear layer applied to the last hidden activation
    @jax.jit
    def by_hand(x):
        for linear, norm in zip(net.hidden, net.norms):
            x = jax.nn.gelu(norm(linear(x)))
        return net.output(x)

    raw = by_hand(jnp.asarray(s[0], dtype=float))
    np.testing.assert_allclose(out_int[0], raw[0] + 1j * raw[1], rtol=1e-12)


def test_mlp_on_rows_is_the_network_on_every_row():
    """The batched (feature-major) form against the one-configuration form, with probes."""
    net = MLP(6, width=WIDTH, depth=DEPTH, key=jax.random.key(2))
    rows = jnp.asarray(_random_configs(5, 6, seed=3))
    np.testing.assert_allclose(net.on_rows(rows), _evaluate(net, rows), rtol=1e-12, atol=1e-14)
    keys = jax.random.split(jax.random.key(4), DEPTH + 1)
    probes = tuple(
        jax.random.normal(k, (5, linear.out_features)) for k, linear in zip(keys, net.linear_layers())
    )
    log_psi, inputs = net.probed_rows(rows, probes)
    one_by_one, one_by_one_inputs = jax.vmap(net.probed_call)(rows, probes)
    np.testing.assert_allclose(log_psi, one_by_one, rtol=1e-12, atol=1e-14)
    assert [a.shape for a in inputs] == [(5, 6), (5, WIDTH), (5, WIDTH)]
    for a, b in zip(inputs, one_by_one_inputs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # rows are independent: the gradient with respect to the batch's probes is each row's own
    grad_rows = jax.grad(lambda p: jnp.sum(jnp.imag(net.probed_rows(rows, p)[0])))(probes)
    grad_each = jax.vmap(jax.grad(lambda s, p: jnp.imag(net.probed_call(s, p)[0]), argnums=1))(rows, probes)
    for a, b in zip(grad_rows, grad_each):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("parity", [1, -1, 0])
def test_spin_flip_parity_on_rows_is_the_network_on_every_row(parity):
    net = SpinFlipParity(MLP(6, width=WIDTH, depth=DEPTH, key=jax.random.key(5)), parity)
    rows = jnp.asarray(_random_configs(7, 6, seed=6))
    np.testing.assert_allclose(net.on_rows(rows), _evaluate(net, rows), rtol=1e-12, atol=1e-14)


def test_layer_norm_along_an_axis_is_equinox_layer_norm():
    norm = eqx.nn.LayerNorm(4)
    norm = eqx.tree_at(lambda n: (n.weight, n.bias), norm, (jnp.arange(1.0, 5.0), jnp.linspace(-1, 1, 4)))
    x = jax.random.normal(jax.random.key(7), (3, 4, 5))  # the normalised axis in the middle
    expected = jax.vmap(jax.vmap(norm, in_axes=1, out_axes=1))(x)
    np.testing.assert_allclose(layer_norm(norm, x, axis=1), expected, rtol=1e-12, atol=1e-14)


def test_mlp_gradient_is_finite_and_nonzero():
    net = MLP(6, width=WIDTH, depth=DEPTH, key=jax.random.key(1))
    s = jnp.asarray(_random_configs(1, 6)[0])
    grads = eqx.filter_jit(eqx.filter_grad(lambda n: jnp.real(n(s)) + jnp.imag(n(s))))(net)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0


def test_rescnn_translation_invariant_on_periodic_lattice():
    lattice = SquareLattice(4, 4, "periodic")
    net = ResCNN(4, 4, channels=CHANNELS, n_blocks=BLOCKS, final_scale=1.0, key=jax.random.key(2))
    s = _random_configs(3, 16, seed=3)
    reference = _evaluate(net, s)
    assert np.std(reference) > 1e-3  # not a trivially constant network
    translated = _evaluate(net, np.stack([s[:, perm] for perm in lattice.translations()]))
    np.testing.assert_allclose(
        translated, np.broadcast_to(reference, translated.shape), rtol=1e-10, atol=1e-12
    )
    # a generic permutation is *not* a symmetry: the test can fail
    scrambled = s[:, np.random.default_rng(4).permutation(16)]
    assert not np.allclose(_evaluate(net, scrambled), reference, atol=1e-6)


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3), (5, 2)])
def test_circular_conv_equals_equinox_conv(shape, dense, monkeypatch):
    """The ResCNN's convolution, as a dense matrix product and as XLA's convolution, equals
    eqx.nn.Conv2d (circular padding) in value, in the gradient w.r.t. kernel and input, and in the
    per-sample kernel Jacobian (vmap of jacrev) minSR uses."""
    monkeypatch.setattr(rescnn, "uses_dense_conv", lambda n_sites, c_in, c_out: dense)
    lx, ly = shape
    conv = eqx.nn.Conv2d(3, 4, kernel_size=3, padding=1, padding_mode="CIRCULAR", key=jax.random.key(30))
    xs = jax.random.normal(jax.random.key(31), (5, 3, lx, ly))
    probe = jax.random.normal(jax.random.key(32), (4, lx, ly))
    np.testing.assert_allclose(circular_conv(conv, xs[0]), conv(xs[0]), rtol=1e-12, atol=1e-12)

    def contracted(fn):  # (conv, x) -> scalar, so jacrev gives the per-sample gradients
        return lambda c, x: jnp.sum(jnp.sin(fn(c, x)) * probe)

    def per_sample_gradients(fn):  # compiled as one program each: op by op, most of the time was compiling
        return jax.jit(jax.vmap(jax.jacrev(contracted(fn), argnums=(0, 1)), in_axes=(None, 0)))

    ours = per_sample_gradients(circular_conv)(conv, xs)
    reference = per_sample_gradients(lambda c, x: c(x))(conv, xs)
    for got, want in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_rescnn_rectangular_lattice_shape():
    net = ResCNN(2, 3, channels=CHANNELS, n_blocks=BLOCKS, key=jax.random.key(5))
    assert len(net.convs) == 1 + 2 * BLOCKS
    assert _evaluate(net, _random_configs(4, 6)).shape == (4,)


@pytest.mark.parametrize(("mode", "average"), [("first", "log"), ("average", "log"), ("average", "amplitude")])
def test_spin_flip_symmetric(mode, average):
    base = MLP(6, width=WIDTH, depth=DEPTH, final_scale=1.0, key=jax.random.key(6))
    net = SpinFlipSymmetric(base, mode, average)
    s = _random_configs(8, 6, seed=7)
    np.testing.assert_allclose(_evaluate(net, -s), _evaluate(net, s), rtol=1e-12, atol=1e-14)
    assert not np.allclose(_evaluate(base, -s), _evaluate(base, s), atol=1e-6)
    if mode == "average":  # the mean of log psi, or of psi, over s and -s
        pair = np.stack([_evaluate(base, s), _evaluate(base, -s)])
        if average == "log":
            np.testing.assert_allclose(_evaluate(net, s), pair.mean(axis=0), rtol=1e-12)
        else:
            np.testing.assert_allclose(np.exp(_evaluate(net, s)), np.exp(pair).mean(axis=0), rtol=1e-12)
    if mode == "first":  # a configuration with s[0] = +1 is passed through unchanged
        up = s[s[:, 0] > 0]
        np.testing.assert_allclose(_evaluate(net, up), _evaluate(base, up), rtol=1e-12)
    with pytest.raises(ValueError, match="mode"):
        SpinFlipSymmetric(base, "sometimes")


@pytest.mark.parametrize("average", ["log", "amplitude"])
def test_permutation_averaged_invariant_under_group(average):
    lattice = SquareLattice(3, 3, "periodic")
    group = lattice.symmetry_group()
    base = MLP(9, width=WIDTH, depth=DEPTH, final_scale=1.0, key=jax.random.key(8))
    net = PermutationAveraged(base, group, average)
    s = _random_configs(4, 9, seed=9)
    reference = _evaluate(net, s)
    # it is the mean of log psi (or of psi) over the transformed inputs
    transformed = np.stack([s[:, perm] for perm in group])  # (G, B, N)
    if average == "log":
        np.testing.assert_allclose(reference, np.mean(_evaluate(base, transformed), axis=0), rtol=1e-10)
    else:
        explicit = np.mean(np.exp(_evaluate(base, transformed)), axis=0)
        np.testing.assert_allclose(np.exp(reference), explicit, rtol=1e-10)
    averaged = _evaluate(net, transformed)
    np.testing.assert_allclose(averaged, np.broadcast_to(reference, averaged.shape), rtol=1e-10, atol=1e-12)
    scrambled = s[:, [1, 0, 2, 3, 4, 5, 6, 7, 8]]  # a transposition is not a lattice symmetry
    assert not np.allclose(_evaluate(net, scrambled), reference, atol=1e-6)
    # the integer permutations are not parameters
    params = eqx.filter(net, eqx.is_inexact_array)
    assert params.perms is None
    with pytest.raises(ValueError, match="integer"):
        PermutationAveraged(base, group.astype(float))
    with pytest.raises(ValueError, match="amplitude"):
        PermutationAveraged(base, group, "median")


def test_magnetisation_penalty_suppresses_by_exactly_exp_minus_30():
    base = MLP(6, width=WIDTH, depth=DEPTH, final_scale=1.0, key=jax.random.key(10))
    net = MagnetisationPenalty(base, magnetisation=0, penalty=30.0)
    s = _random_configs(32, 6, seed=11)
    off = s.sum(axis=1) != 0
    assert off.any() and (~off).any()
    diff = _evaluate(net, s) - _evaluate(base, s)
    np.testing.assert_allclose(diff[~off], 0.0, atol=0)
    np.testing.assert_allclose(diff[off], -30.0, atol=1e-12)
    np.testing.assert_allclose(
        np.abs(np.exp(_evaluate(net, s[off]))) / np.abs(np.exp(_evaluate(base, s[off]))),
        np.exp(-30.0),
        rtol=1e-10,
    )
    # another sector, another penalty
    net2 = MagnetisationPenalty(base, magnetisation=2, penalty=5.0)
    diff2 = _evaluate(net2, s) - _evaluate(base, s)
    np.testing.assert_allclose(diff2, np.where(s.sum(axis=1) == 2, 0.0, -5.0), atol=1e-12)


def _full_group_check(nqs, lattice, configs):
    """Every state of ``nqs`` is invariant under the lattice symmetry group and spin flip."""
    transformed = np.stack([configs] + [configs[:, perm] for perm in lattice.symmetry_group()] + [-configs])
    amps = _amplitudes(nqs, transformed)  # (1 + G + 1, B, K)
    np.testing.assert_allclose(amps, np.broadcast_to(amps[0], amps.shape), rtol=1e-9, atol=1e-12)
    return amps[0]


@pytest.mark.parametrize(
    ("net", "average", "head"),
    [(net, "log", "log") for net in NETS] + [("rescnn", "amplitude", "log"), ("rescnn", "amplitude", "signed")],
)
def test_build_nqs_j1j2_symmetries(net, average, head):
    hamiltonian = make_hamiltonian("j1j2", 4, 4, "periodic")
    lattice = hamiltonian.lattice
    sizes = {
        "width": WIDTH, "depth": DEPTH, "channels": CHANNELS, "n_blocks": BLOCKS,
        "symmetry_average": average, "output_head": head,
    }  # fmt: skip
    nqs = build_nqs(hamiltonian, net, n_states=2, **sizes, key=jax.random.key(12))
    assert nqs.n_states == 2
    in_sector = _random_configs(3, 16, seed=13, magnetisation=0)
    reference = _full_group_check(nqs, lattice, in_sector)
    off_sector = _random_configs(3, 16, seed=14, magnetisation=4)
    _full_group_check(nqs, lattice, off_sector)
    # the two states differ, and the penalty is outermost (exactly -30 off-sector)
    assert not np.allclose(reference[:, 0], reference[:, 1])
    unpenalised = build_nqs(
        hamiltonian, net, n_states=2, **sizes, sector_penalty=None, key=jax.random.key(12)
    )
    diff = _amplitudes(nqs, off_sector) - _amplitudes(unpenalised, off_sector)
    np.testing.assert_allclose(diff, -30.0, atol=1e-12)


def test_build_nqs_tfi_imposes_no_spin_flip():
    hamiltonian = make_hamiltonian("tfi", 2, 3, "periodic", g=1.0)
    nqs = build_nqs(hamiltonian, "mlp", n_states=3, width=WIDTH, depth=DEPTH, key=jax.random.key(15))
    assert isinstance(nqs.network(0), MLP)
    s = _random_configs(4, 6, seed=16)
    a, b = _amplitudes(nqs, s), _amplitudes(nqs, -s)
    assert a.shape == (4, 3)
    assert not np.allclose(a, b, atol=1e-8)
    cnn = build_nqs(hamiltonian, "rescnn", channels=CHANNELS, n_blocks=BLOCKS, key=jax.random.key(17))
    assert isinstance(cnn.network(0), ResCNN)


def test_build_nqs_flip_parities_give_each_state_its_sector():
    """``flip_parities="+-+"``: ``psi_j(-s) = p_j psi_j(s)`` for every state, the projection of the
    state's own network onto that sector, and the determinant antisymmetric as before."""
    hamiltonian = make_hamiltonian("tfi", 3, 2, "open", g=0.1)
    nqs = build_nqs(hamiltonian, "mlp", n_states=3, width=WIDTH, depth=DEPTH, flip_parities="+-+", key=jax.random.key(3))
    assert isinstance(nqs.network(1), SpinFlipParity) and int(nqs.network(1).parity) == -1
    s = _random_configs(16, 6, seed=4)
    psi, psi_flipped = np.exp(_amplitudes(nqs, s)), np.exp(_amplitudes(nqs, -s))
    np.testing.assert_allclose(psi_flipped, psi * np.array([1, -1, 1]), rtol=1e-10, atol=1e-14)
    assert np.abs(psi).min() > 1e-6  # not the trivial solution psi = 0
    base = np.exp(_evaluate(nqs.network(1).net, s)), np.exp(_evaluate(nqs.network(1).net, -s))
    np.testing.assert_allclose(psi[:, 1], (base[0] - base[1]) / 2, rtol=1e-10)
    # "+-": the same two sectors, the third state free: exactly its own network, of no parity
    partly = build_nqs(hamiltonian, "mlp", n_states=3, width=WIDTH, depth=DEPTH, flip_parities="+-", key=jax.random.key(3))
    assert [int(partly.network(j).parity) for j in range(3)] == [1, -1, 0]
    log_amps = _amplitudes(partly, s)
    np.testing.assert_allclose(np.exp(log_amps[:, :2]), psi[:, :2], rtol=1e-10)
    np.testing.assert_allclose(np.exp(log_amps[:, 2]), np.exp(_evaluate(partly.network(2).net, s)), rtol=1e-12)
    assert not np.allclose(np.abs(np.exp(_amplitudes(partly, -s)[:, 2])), np.abs(np.exp(log_amps[:, 2])), rtol=1e-3)
    # the same networks without the parities: no sector
    free = build_nqs(hamiltonian, "mlp", n_states=3, width=WIDTH, depth=DEPTH, key=jax.random.key(3))
    assert not np.allclose(np.exp(_amplitudes(free, -s)), np.exp(_amplitudes(free, s)) * np.array([1, -1, 1]), atol=1e-6)


@pytest.mark.parametrize("parities", ["+-+-", "+x+", "+-0", "", 5])
def test_build_nqs_rejects_bad_flip_parities(parities):
    hamiltonian = make_hamiltonian("tfi", 3, 2, "open", g=0.1)
    with pytest.raises(ValueError, match="flip_parities"):
        build_nqs(hamiltonian, "mlp", n_states=3, flip_parities=parities, key=jax.random.key(0))


def test_flip_parities_are_tfi_only():
    hamiltonian = make_hamiltonian("j1j2", 2, 2, "periodic", j2=0.5)
    with pytest.raises(ValueError, match="TFI"):
        build_nqs(hamiltonian, "mlp", n_states=1, flip_parities="+", key=jax.random.key(0))
    with pytest.raises(ValueError, match="parity"):
        SpinFlipParity(MLP(4, width=WIDTH, depth=DEPTH, key=jax.random.key(1)), 2)


def test_evaluation_chunks_follow_the_images_per_configuration():
    """``images_per_configuration`` counts the innermost network's calls through every wrapper;
    ``evaluation_chunk`` keeps about EVALUATION_IMAGES evaluations per call, and
    ``evaluate_in_chunks`` gives the one-call values on a batch of several chunks and a remainder."""
    j1j2 = make_hamiltonian("j1j2", 4, 4, "periodic", j2=0.5)
    symmetric = build_nqs(j1j2, "rescnn", channels=CHANNELS, n_blocks=BLOCKS, symmetries=True,
                          symmetry_average="amplitude", marshall_sign=True, key=jax.random.key(40))  # fmt: skip
    assert images_per_configuration(symmetric.networks) == 16  # 8 point-group elements x spin flip
    assert evaluation_chunk(symmetric) == 128
    tfi = make_hamiltonian("tfi", 3, 2, "open", g=1.0)
    plain = build_nqs(tfi, "mlp", n_states=3, width=WIDTH, depth=DEPTH, key=jax.random.key(41))
    assert images_per_configuration(plain.networks) == 1 and evaluation_chunk(plain) == 512
    parity = build_nqs(tfi, "mlp", n_states=3, width=WIDTH, depth=DEPTH, flip_parities="+-", key=jax.random.key(41))
    assert images_per_configuration(parity.networks) == 2 and evaluation_chunk(parity) == 256
    configs = jnp.asarray(_random_configs(300, 16, seed=42)).reshape(300, 1, 16)
    np.testing.assert_allclose(
        jax.jit(lambda c: evaluate_in_chunks(batched_log_prob, symmetric, c))(configs),
        jax.jit(lambda c: batched_log_prob(symmetric, c))(configs), rtol=1e-12, atol=1e-12,
    )  # fmt: skip


def test_build_nqs_rejects_unknown_net():
    hamiltonian = make_hamiltonian("tfi", 2, 2, "open", g=1.0)
    with pytest.raises(ValueError, match="rescnn"):
        build_nqs(hamiltonian, "transformer", key=jax.random.key(0))
    with pytest.raises(ValueError, match="amplitude"):
        build_nqs(hamiltonian, "mlp", symmetry_average="median", key=jax.random.key(0))
    with pytest.raises(ValueError, match="signed"):
        build_nqs(hamiltonian, "mlp", output_head="sign", key=jax.random.key(0))


class _KnownOutputs(eqx.Module):
    """A stand-in network with ``z(s) = u(s) + i v(s)``, ``u = a . s``, ``v = b . s - 0.3``."""

    a: jax.Array
    b: jax.Array

    def __call__(self, s):
        s = jnp.asarray(s, dtype=self.a.dtype)
        return jnp.dot(self.a, s) + 1j * (jnp.dot(self.b, s) - 0.3)


def test_signed_amplitude_is_exp_u_times_one_plus_v():
    rng = np.random.default_rng(30)
    net = _KnownOutputs(jnp.asarray(0.2 * rng.standard_normal(6)), jnp.asarray(0.5 * rng.standard_normal(6)))
    configs = _random_configs(64, 6, seed=31)
    u = configs @ np.asarray(net.a)
    v = configs @ np.asarray(net.b) - 0.3
    psi = np.exp(_evaluate(SignedAmplitude(net), configs))
    np.testing.assert_allclose(psi.real, np.exp(u) * (1 + v), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(psi.imag, 0.0, atol=1e-10)
    assert np.sum(1 + v < 0) > 0 and np.sum(1 + v > 0) > 0  # both signs occur
    # psi passes through zero with a non-zero slope: with v = scale * (b . s) - 0.3, d psi / d scale = exp(u) (b . s)
    s = jnp.asarray(configs[0])

    def psi_of(scale):
        scaled = eqx.tree_at(lambda n: n.b, net, net.b * scale)
        return jnp.real(jnp.exp(SignedAmplitude(scaled)(s)))

    slope = jax.grad(psi_of)(1.0)
    np.testing.assert_allclose(slope, np.exp(u[0]) * (v[0] + 0.3), rtol=1e-8)


def test_marshall_sign_is_the_heisenberg_ground_state_sign():
    """On 4x2 periodic at J2 = 0 the ED ground state times the Marshall sign has one sign."""
    from nirbench.exact import all_configurations, lowest_levels

    hamiltonian = make_hamiltonian("j1j2", 4, 2, "periodic", j2=0.0)
    _, _, vectors = lowest_levels(hamiltonian, 1, return_vectors=True)
    configs = all_configurations(8, magnetisation=0)
    ground = np.real(vectors[:, 0])
    # a network with log psi = 0 everywhere exposes the sign alone
    zero = MLP(8, width=WIDTH, depth=DEPTH, final_scale=0.0, key=jax.random.key(20))
    net = MarshallSign(zero, hamiltonian.lattice.checkerboard())
    sign = np.real(np.exp(_evaluate(net, configs)))
    np.testing.assert_allclose(np.abs(sign), 1.0, atol=1e-12)
    assert min(np.sum(ground * sign > 1e-12), np.sum(ground * sign < -1e-12)) == 0
    assert np.sum(sign > 0) > 0 and np.sum(sign < 0) > 0  # and it is not trivial


def test_build_nqs_marshall_sign():
    hamiltonian = make_hamiltonian("j1j2", 4, 4, "periodic")
    sizes = {"channels": CHANNELS, "n_blocks": BLOCKS}
    plain = build_nqs(hamiltonian, "rescnn", **sizes, key=jax.random.key(21))
    signed = build_nqs(hamiltonian, "rescnn", **sizes, marshall_sign=True, key=jax.random.key(21))
    s = _random_configs(4, 16, seed=22, magnetisation=0)
    n_down_a = np.sum((s < 0) & hamiltonian.lattice.checkerboard(), axis=1)
    np.testing.assert_allclose(
        np.exp(_amplitudes(signed, s) - _amplitudes(plain, s))[:, 0], (-1.0) ** n_down_a, atol=1e-10
    )
    with pytest.raises(ValueError, match="J1-J2"):
        build_nqs(make_hamiltonian("tfi", 2, 2, "open", g=1.0), marshall_sign=True, key=jax.random.key(0))
    with pytest.raises(ValueError, match="bipartite"):
        SquareLattice(3, 4, "periodic").checkerboard()
