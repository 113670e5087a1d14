"""Tests for nirbench.minsr: minSR == SR, the Cholesky fallback, and the conjugation conventions
(X^T f = half the exact energy gradient on a fully enumerated 3-site TFI)."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from nirbench import minsr
from nirbench.minsr import (
    jacobian_of_log_psi,
    make_optimizer,
    minsr_update,
    natural_gradient_tree,
    psd_solve,
    solve_natural_gradient,
    sr_matrices,
    sr_update,
)

# Two shapes only (compilation dominates the run time): Ns < P and Ns > P.
NS, P = 6, 40
NS_BIG, P_SMALL = 30, 12


def _random_problem(seed, n_samples=NS, n_params=P):
    rng = np.random.default_rng(seed)
    O = rng.normal(size=(n_samples, n_params)) + 1j * rng.normal(size=(n_samples, n_params))
    eps = rng.normal(size=n_samples) + 1j * rng.normal(size=n_samples)
    w = rng.uniform(0.1, 1.0, size=n_samples)
    return O, eps, w / w.sum()


# ----------------------------------------------------------------------------------------------
# minSR == SR
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_samples,n_params", [(NS, P), (NS_BIG, P_SMALL)])
@pytest.mark.parametrize("weighted", [False, True])
def test_minsr_equals_sr(n_samples, n_params, weighted):
    O, eps, w = _random_problem(0, n_samples, n_params)
    weights = w if weighted else None
    X, f = sr_matrices(O, eps, weights)
    assert X.shape == (2 * n_samples, n_params) and f.shape == (2 * n_samples,)
    assert X.dtype == jnp.float64 and f.dtype == jnp.float64
    d_min = np.asarray(minsr_update(X, f, 1e-3))
    d_sr = np.asarray(sr_update(X, f, 1e-3))
    assert d_min.shape == (n_params,)
    tol = 1e-8 * max(1.0, np.abs(d_sr).max())
    np.testing.assert_allclose(d_min, d_sr, rtol=0, atol=tol)
    # and both solve the regularised normal equations (reference in NumPy)
    Xn, fn = np.asarray(X), np.asarray(f)
    np.testing.assert_allclose((Xn.T @ Xn + 1e-3 * np.eye(n_params)) @ d_min, Xn.T @ fn, atol=1e-8)
    for mode in ("auto", "minsr", "sr"):
        d = solve_natural_gradient(O, eps, weights, 1e-3, mode)
        np.testing.assert_allclose(d, d_sr, rtol=0, atol=tol)


def test_minsr_is_jittable():
    O, eps, _ = _random_problem(1)
    X, f = sr_matrices(O, eps)
    jitted = jax.jit(minsr_update)(X, f, 1e-3)  # diag_shift traced: no Python branching
    np.testing.assert_allclose(jitted, sr_update(X, f, 1e-3), atol=1e-8)


def test_sr_matrices_centred_and_scaled():
    O, eps, w = _random_problem(2)
    X, f = (np.asarray(a) for a in sr_matrices(O, eps, w))
    # weighted centring: sum_i sqrt(w_i) * row_i = 0 in both blocks
    sw = np.sqrt(w)
    np.testing.assert_allclose(sw @ X[:NS], 0.0, atol=1e-12)
    np.testing.assert_allclose(sw @ X[NS:], 0.0, atol=1e-12)
    np.testing.assert_allclose(sw @ f[:NS], 0.0, atol=1e-12)
    np.testing.assert_allclose(sw @ f[NS:], 0.0, atol=1e-12)
    # X^T f = Re <conj(O_c) eps_c>_w and X^T X = Re <O_c^H O_c>_w
    o_c = O - w @ O
    e_c = eps - w @ eps
    np.testing.assert_allclose(X.T @ f, np.real((w[:, None] * o_c.conj()).T @ e_c), atol=1e-12)
    np.testing.assert_allclose(X.T @ X, np.real((w[:, None] * o_c.conj()).T @ o_c), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# fallback and rank deficiency
# ----------------------------------------------------------------------------------------------
def test_psd_solve_falls_back_on_cholesky_failure():
    # indefinite matrix: Cholesky gives NaN -> eigh pseudo-inverse (negative eigenvalue dropped)
    A = jnp.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3, -1
    b = jnp.array([1.0, 1.0])  # along the eigenvector of eigenvalue 3
    x, used_fallback = psd_solve(A, b, return_info=True)
    assert bool(used_fallback)
    np.testing.assert_allclose(x, b / 3.0, atol=1e-12)
    # exactly singular PSD matrix (zero pivot -> inf), under jit: minimum-norm solution
    A = jnp.array([[1.0, 1.0], [1.0, 1.0]])
    x, used_fallback = jax.jit(lambda a, c: psd_solve(a, c, return_info=True))(A, jnp.array([2.0, 2.0]))
    assert bool(used_fallback)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-12)
    # a positive definite matrix takes the Cholesky path
    A = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    x, used_fallback = psd_solve(A, b, return_info=True)
    assert not bool(used_fallback)
    np.testing.assert_allclose(A @ x, b, atol=1e-12)


def test_rank_deficient_tiny_shift():
    rng = np.random.default_rng(3)
    rank = 5  # X is (2 NS, P) = (12, 40) with rank 5
    X = rng.normal(size=(2 * NS, rank)) @ rng.normal(size=(rank, P))
    f = X @ rng.normal(size=P)  # f in range(X): the limit lambda -> 0 is well defined
    expected = np.linalg.pinv(X) @ f  # minimum-norm least-squares solution = SR's lambda -> 0 limit
    scale = np.abs(expected).max()
    d_min = minsr_update(X, f, 1e-12)
    d_sr = sr_update(X, f, 1e-12)
    assert bool(jnp.all(jnp.isfinite(d_min))) and bool(jnp.all(jnp.isfinite(d_sr)))
    # cond(X X^T + 1e-12) ~ 1e14: minSR keeps ~1e-4 relative accuracy
    np.testing.assert_allclose(d_min, expected, atol=1e-3 * scale)
    # SR's (P, P) system has 35 null directions and is worse at lambda = 1e-12, so compare SR
    # and minSR at a moderate shift, with a tolerance from the conditioning rather than from one
    # CPU's rounding: a backward-stable solve of a system with condition number kappa has a
    # relative forward error of order kappa * eps, and either method may err that much (a fixed
    # 1e-5 failed on AVX-512 Xeons at lambda = 1e-8, kappa ~ 1e11)
    shift = 1e-6
    kappa = max(np.linalg.cond(X @ X.T + shift * np.eye(X.shape[0])), np.linalg.cond(X.T @ X + shift * np.eye(P)))
    d_sr_shift, d_min_shift = sr_update(X, f, shift), minsr_update(X, f, shift)
    tolerance = 10 * kappa * np.finfo(np.float64).eps * np.abs(d_min_shift).max()
    assert tolerance < 1e-3 * scale  # still a meaningful comparison
    np.testing.assert_allclose(d_sr_shift, d_min_shift, atol=tolerance)
    # SR itself at lambda = 1e-12 (kappa ~ 1e16 >= 1 / eps) has no guaranteed digit on any CPU:
    # only its finiteness (the eigh fallback) is checked above


def test_duplicate_samples_finite():
    # resampling produces duplicated configurations: identical rows in X and f
    O, eps, _ = _random_problem(4, NS - 2)
    O = np.concatenate([O, O[:2]])
    eps = np.concatenate([eps, eps[:2]])
    X, f = sr_matrices(O, eps)
    d_min = minsr_update(X, f, 1e-12)
    assert bool(jnp.all(jnp.isfinite(d_min)))
    np.testing.assert_allclose(d_min, np.linalg.pinv(np.asarray(X)) @ np.asarray(f), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# argument checks and weights
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan")])
def test_nonpositive_shift_raises(bad):
    O, eps, _ = _random_problem(5)
    X, f = np.zeros((2 * NS, P)), np.zeros(2 * NS)
    with pytest.raises(ValueError, match="diag_shift"):
        minsr_update(X, f, bad)
    with pytest.raises(ValueError, match="diag_shift"):
        sr_update(X, f, bad)
    with pytest.raises(ValueError, match="diag_shift"):
        solve_natural_gradient(O, eps, diag_shift=bad)


def test_bad_arguments_raise():
    O, eps, _ = _random_problem(6)
    with pytest.raises(ValueError, match="mode"):
        solve_natural_gradient(O, eps, mode="cg")
    with pytest.raises(ValueError, match="weights"):
        sr_matrices(O, eps, np.ones(NS + 1))
    with pytest.raises(ValueError, match="eps"):
        sr_matrices(O, eps[:2])
    with pytest.raises(ValueError, match="real"):
        minsr_update(O, eps, 1e-3)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("lbfgs")


def test_uniform_weights_equal_unweighted():
    O, eps, _ = _random_problem(7)
    X0, f0 = sr_matrices(O, eps)
    X1, f1 = sr_matrices(O, eps, np.full(NS, 1.0 / NS))
    X2, f2 = sr_matrices(O, eps, np.full(NS, 3.0))  # unnormalised: renormalised internally
    for X, f in ((X1, f1), (X2, f2)):
        np.testing.assert_allclose(X, X0, atol=1e-14)
        np.testing.assert_allclose(f, f0, atol=1e-14)
    np.testing.assert_allclose(
        solve_natural_gradient(O, eps, np.full(NS, 1.0 / NS)), solve_natural_gradient(O, eps), atol=1e-12
    )


def test_weights_equal_duplicated_samples():
    # integer weights == repeating the samples that many times (importance mode vs resampled mode)
    O, eps, _ = _random_problem(8, NS - 2)
    counts = np.array([1, 2, 2, 1])  # sums to NS
    Xw, fw = (np.asarray(a) for a in sr_matrices(O, eps, counts.astype(float)))
    idx = np.repeat(np.arange(NS - 2), counts)
    Xd, fd = (np.asarray(a) for a in sr_matrices(O[idx], eps[idx]))
    np.testing.assert_allclose(Xw.T @ fw, Xd.T @ fd, atol=1e-12)
    np.testing.assert_allclose(Xw.T @ Xw, Xd.T @ Xd, atol=1e-12)
    # a zero weight removes a sample: compare with the unweighted formulas on the others
    rng = np.random.default_rng(9)
    O_ext = np.concatenate([100.0 * rng.normal(size=(1, P)), O, O[:1]])  # (NS, P)
    eps_ext = np.concatenate([[50.0 + 7j], eps, eps[:1]])
    w0 = np.ones(NS)
    w0[0] = 0.0
    Xz, fz = (np.asarray(a) for a in sr_matrices(O_ext, eps_ext, w0))
    o_c = O_ext[1:] - O_ext[1:].mean(axis=0)
    e_c = eps_ext[1:] - eps_ext[1:].mean()
    np.testing.assert_allclose(Xz.T @ fz, np.real(o_c.conj().T @ e_c) / (NS - 1), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# conventions against the exact energy gradient (3-site TFI, full enumeration)
# ----------------------------------------------------------------------------------------------
N_SITES = 3
G_FIELD = 0.7


def _dense_tfi(n_sites, g):
    """Open-chain TFI H = -sum Z_j Z_{j+1} - g sum X_j; basis ordered as integers, bit 1 = spin down
    at site 0 for the most significant bit (spin s = +1 <-> sigma^z = +1)."""
    Z = np.diag([1.0, -1.0])
    Xp = np.array([[0.0, 1.0], [1.0, 0.0]])
    eye = np.eye(2)

    def op(ops):
        out = np.ones((1, 1))
        for o in ops:
            out = np.kron(out, o)
        return out

    H = np.zeros((2**n_sites, 2**n_sites))
    for j in range(n_sites - 1):
        H -= op([Z if k in (j, j + 1) else eye for k in range(n_sites)])
    for j in range(n_sites):
        H -= g * op([Xp if k == j else eye for k in range(n_sites)])
    states = np.arange(2**n_sites)
    bits = (states[:, None] >> np.arange(n_sites - 1, -1, -1)) & 1
    return jnp.asarray(H), jnp.asarray(1 - 2 * bits, dtype=jnp.float64)


class ToyLogPsi(eqx.Module):
    """Complex log psi with real parameters: tiny one-hidden-layer net with two real heads."""

    W: jnp.ndarray
    b: jnp.ndarray
    c_re: jnp.ndarray
    c_im: jnp.ndarray
    a: jnp.ndarray
    activation: str = eqx.field(static=True, default="tanh")
    n_hidden: int = 4  # a non-array leaf: must be ignored by the filters

    def __call__(self, s):
        h = jnp.tanh(self.W @ s + self.b)
        return self.a @ s + h @ self.c_re + 1j * (h @ self.c_im + jnp.pi * 0.3 * jnp.sum(s * self.a))


def _toy_model(seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    return ToyLogPsi(
        W=0.7 * jax.random.normal(k[0], (4, N_SITES)),
        b=0.3 * jax.random.normal(k[1], (4,)),
        c_re=0.5 * jax.random.normal(k[2], (4,)),
        c_im=0.8 * jax.random.normal(k[3], (4,)),
        a=0.4 * jax.random.normal(k[4], (N_SITES,)),
    )


def _log_psi(model, s):
    return model(s)


def _exact_energy(model, H, configs):
    psi = jnp.exp(jax.vmap(model)(configs))
    return jnp.real(jnp.vdot(psi, H @ psi) / jnp.vdot(psi, psi))


def _exact_vmc_inputs(model, H, configs):
    psi = jnp.exp(jax.vmap(model)(configs))
    w = jnp.abs(psi) ** 2
    w = w / jnp.sum(w)
    eps = (H @ psi) / psi
    O = jacobian_of_log_psi(_log_psi, model, configs)
    return O, eps, w


def test_jacobian_of_log_psi_matches_finite_differences():
    model = _toy_model(1)
    _, configs = _dense_tfi(N_SITES, G_FIELD)
    O = jacobian_of_log_psi(_log_psi, model, configs)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    assert O.shape == (2**N_SITES, flat.shape[0]) and jnp.iscomplexobj(O)

    @jax.jit
    def log_psi_flat(theta):
        return jax.vmap(eqx.combine(unravel(theta), static))(configs)

    h = 1e-6
    for k in (0, 5, flat.shape[0] - 1):
        e = jnp.zeros_like(flat).at[k].set(h)
        fd = (log_psi_flat(flat + e) - log_psi_flat(flat - e)) / (2 * h)
        np.testing.assert_allclose(O[:, k], fd, atol=1e-7)


def test_xtf_is_half_exact_energy_gradient():
    H, configs = _dense_tfi(N_SITES, G_FIELD)
    model = _toy_model(0)
    O, eps, w = _exact_vmc_inputs(model, H, configs)
    X, f = sr_matrices(O, eps, w)
    # exact gradient of E(theta) = <psi|H|psi>/<psi|psi> w.r.t. the real parameters
    grad_tree = eqx.filter_grad(_exact_energy)(model, H, configs)
    grad, _ = ravel_pytree(eqx.filter(grad_tree, eqx.is_inexact_array))
    assert float(jnp.abs(grad).max()) > 1e-2  # non-trivial
    np.testing.assert_allclose(2.0 * (X.T @ f), grad, atol=1e-10)
    # eq. 6 of the paper, written out with conj(O)
    eq6 = 2 * jnp.real(w @ (eps[:, None] * O.conj()) - (w @ eps) * (w @ O.conj()))
    np.testing.assert_allclose(eq6, grad, atol=1e-10)
    # the conjugate convention (f built from conj(eps)) would be wrong here
    f_wrong = jnp.concatenate([f[: len(eps)], -f[len(eps) :]])
    assert float(jnp.abs(2.0 * (X.T @ f_wrong) - grad).max()) > 1e-3
    # the local energies reproduce the exact energy
    np.testing.assert_allclose(jnp.real(w @ eps), _exact_energy(model, H, configs), atol=1e-12)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_natural_gradient_step_lowers_energy(opt_name):
    H, configs = _dense_tfi(N_SITES, G_FIELD)
    model = _toy_model(2)
    params = eqx.filter(model, eqx.is_inexact_array)
    optimizer = make_optimizer(opt_name, learning_rate=1e-2)
    # Adam rescales each coordinate, so Adam(SR direction) is only a descent direction when the
    # direction is not too ill-conditioned: use a larger shift for it (sgd descends at 1e-3 too)
    shift = 1e-3 if opt_name == "sgd" else 1e-1
    opt_state = optimizer.init(params)
    energies = [float(_exact_energy(model, H, configs))]
    for _ in range(3):
        O, eps, w = _exact_vmc_inputs(model, H, configs)
        direction = natural_gradient_tree(model, O, eps, w, diag_shift=shift)
        # the direction has the structure of the filtered parameters
        assert jax.tree_util.tree_structure(direction) == jax.tree_util.tree_structure(params)
        assert direction.n_hidden is None
        updates, opt_state = optimizer.update(direction, opt_state, eqx.filter(model, eqx.is_inexact_array))
        model = eqx.apply_updates(model, updates)
        energies.append(float(_exact_energy(model, H, configs)))
    assert all(b < a for a, b in itertools.pairwise(energies)), energies
    # the opposite sign would raise the energy: the direction points uphill like a gradient
    O, eps, w = _exact_vmc_inputs(model, H, configs)
    direction = natural_gradient_tree(model, O, eps, w, diag_shift=1e-3)
    uphill = eqx.apply_updates(model, jax.tree_util.tree_map(lambda d: 1e-2 * d, direction))
    assert float(_exact_energy(uphill, H, configs)) > energies[-1]


def test_natural_gradient_tree_matches_flat_and_rejects_complex_params():
    H, configs = _dense_tfi(N_SITES, G_FIELD)
    model = _toy_model(3)
    O, eps, w = _exact_vmc_inputs(model, H, configs)
    tree = natural_gradient_tree(model, O, eps, w, diag_shift=1e-2, mode="minsr")
    flat_tree, _ = ravel_pytree(tree)
    np.testing.assert_allclose(flat_tree, solve_natural_gradient(O, eps, w, 1e-2, "sr"), atol=1e-8)
    with pytest.raises(ValueError, match="jacobian"):
        natural_gradient_tree(model, O[:, :-1], eps, w)
    complex_model = eqx.tree_at(lambda m: m.a, model, model.a.astype(jnp.complex128))
    with pytest.raises(ValueError, match="real parameters"):
        jacobian_of_log_psi(_log_psi, complex_model, configs)


def test_make_optimizer_types():
    assert isinstance(make_optimizer("adam"), optax.GradientTransformation)
    assert isinstance(make_optimizer("sgd", 0.1), optax.GradientTransformation)
    upd, _ = make_optimizer("sgd", 0.5).update(jnp.ones(3), make_optimizer("sgd", 0.5).init(jnp.ones(3)))
    np.testing.assert_allclose(upd, -0.5 * jnp.ones(3))
    assert minsr.MODES == ("auto", "minsr", "sr")


# ----------------------------------------------------------------------------------------------
# Jacobian-free (layer-wise) minSR == the Jacobian path
# ----------------------------------------------------------------------------------------------
def _random_mlp_nqs(n_sites, n_states, width, depth, seed, parities=None):
    """A K-state MLP NQS with every parameter (biases, LayerNorm scale/offset too) randomised;
    ``parities`` (``"+-+"``): each MLP projected onto that spin-flip sector (``SpinFlipParity``)."""
    from nirbench.models import MLP, MultiStateNQS, SpinFlipParity, parse_flip_parities

    key, noise_key = jax.random.split(jax.random.PRNGKey(seed))

    def make_network(k):
        mlp = MLP(n_sites, width, depth, final_scale=1.0, key=k)
        return mlp if parities is None else SpinFlipParity(mlp, 1)

    nqs = MultiStateNQS(make_network, n_states, key=key)
    if parities is not None:
        signs = np.asarray(parse_flip_parities(parities, n_states), dtype=np.int32)
        nqs = eqx.tree_at(lambda m: m.networks.parity, nqs, signs)
    params, static = eqx.partition(nqs, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(noise_key, len(leaves))
    leaves = [leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)


def _distinct_tuples(n_samples, n_states, n_sites, seed):
    """``(Ns, K, N)`` spin tuples, the K configurations of each tuple distinct (Psi != 0)."""
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.choice(2**n_sites, n_states, replace=False) for _ in range(n_samples)])
    return jnp.asarray(1 - 2 * ((codes[..., None] >> np.arange(n_sites)) & 1), dtype=jnp.float64)


def _log_psi_of_nqs(nqs, config):
    return nqs.log_psi(config)


# (n_sites, K, width, depth, Ns, Ns < P, parities): K = 1 with Ns < P and 2 Ns > P, K = 3 with
# Ns < P, K = 2 with Ns > P, and states of fixed spin-flip parity (two images per input; an odd
# state of a tiny network has near-zero amplitudes, where both paths lose digits). (Tiny
# K > 1 networks give tuples with nearly singular det[psi_j(s^k)], where both paths lose digits to
# cancellation in sum_k d log Psi / d log psi_k; these cases avoid that.)
LAYERWISE_CASES = [
    (4, 1, 6, 2, 8, True, None),
    (6, 1, 2, 1, 40, False, None),
    (6, 3, 3, 1, 12, True, None),
    (6, 2, 3, 1, 90, False, None),
    (6, 1, 3, 1, 40, False, "-"),
    (6, 3, 3, 1, 12, True, "+-+"),
    (6, 3, 3, 1, 12, True, "-."),  # an odd state, a free one, and a free one by default
]


@pytest.mark.parametrize("n_sites,n_states,width,depth,n_samples,few_samples,parities", LAYERWISE_CASES)
def test_layerwise_minsr_equals_jacobian_path(n_sites, n_states, width, depth, n_samples, few_samples, parities):
    nqs = _random_mlp_nqs(n_sites, n_states, width, depth, seed=n_states, parities=parities)
    configs = _distinct_tuples(n_samples, n_states, n_sites, seed=n_samples)
    rng = np.random.default_rng(n_sites)
    eps = jnp.asarray(rng.normal(size=n_samples) + 1j * rng.normal(size=n_samples))
    w = rng.uniform(0.05, 1.0, size=n_samples)  # unnormalised importance weights
    params = eqx.filter(nqs, eqx.is_inexact_array)
    n_params = ravel_pytree(params)[0].size
    assert (n_samples < n_params) == few_samples
    assert minsr.supports_layerwise_minsr(nqs)
    O = jacobian_of_log_psi(_log_psi_of_nqs, nqs, configs)
    directions = []
    for weights in (None, w):
        expected = natural_gradient_tree(nqs, O, eps, weights, 1e-3)
        got = minsr.layerwise_natural_gradient_tree(nqs, configs, eps, weights, 1e-3)
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(params)
        got_flat, expected_flat = ravel_pytree(got)[0], ravel_pytree(expected)[0]
        scale = float(jnp.abs(expected_flat).max())
        assert scale > 1e-3  # non-trivial direction
        np.testing.assert_allclose(got_flat, expected_flat, rtol=0, atol=1e-10 * scale)
        directions.append(got_flat)
    assert float(jnp.abs(directions[0] - directions[1]).max()) > 1e-3 * scale  # the weights matter


def test_layerwise_minsr_is_used_by_vmc_update():
    from nirbench.updates import update

    nqs = _random_mlp_nqs(4, 1, 6, 2, seed=5)
    configs = _distinct_tuples(8, 1, 4, seed=8)
    rng = np.random.default_rng(1)
    eps = jnp.asarray(rng.normal(size=8) + 1j * rng.normal(size=8))
    w = jnp.asarray(rng.dirichlet(np.ones(8)))
    optimizer = make_optimizer("sgd", 1.0)  # update = -direction
    params = eqx.filter(nqs, eqx.is_inexact_array)
    new, _, finite = update(nqs, optimizer.init(params), optimizer, configs, w, eps, 1e-3, True)
    assert bool(finite)
    expected = natural_gradient_tree(nqs, jacobian_of_log_psi(_log_psi_of_nqs, nqs, configs), eps, w, 1e-3)
    step = jax.tree_util.tree_map(lambda a, b: a - b, eqx.filter(new, eqx.is_inexact_array), params)
    np.testing.assert_allclose(ravel_pytree(step)[0], -ravel_pytree(expected)[0], atol=1e-10)


def test_layerwise_minsr_rejects_unsupported_networks():
    from nirbench.models import MLP, MultiStateNQS, SpinFlipSymmetric

    wrapped = MultiStateNQS(
        lambda k: SpinFlipSymmetric(MLP(4, 3, 1, key=k), "first"), 1, key=jax.random.PRNGKey(0)
    )
    assert not minsr.supports_layerwise_minsr(wrapped)
    assert not minsr.supports_layerwise_minsr(MLP(4, 3, 1, key=jax.random.PRNGKey(0)))
    configs, eps = jnp.ones((3, 1, 4)), jnp.ones(3, dtype=jnp.complex128)
    with pytest.raises(ValueError, match="layer-wise"):
        minsr.layerwise_natural_gradient_tree(wrapped, configs, eps)
    nqs = _random_mlp_nqs(4, 1, 3, 1, seed=0)
    with pytest.raises(ValueError, match="configs"):
        minsr.layerwise_natural_gradient_tree(nqs, configs[:, :, :3].reshape(3, 3), eps)
    with pytest.raises(ValueError, match="diag_shift"):
        minsr.layerwise_natural_gradient_tree(nqs, configs, eps, diag_shift=0.0)
    with pytest.raises(ValueError, match="weights"):
        minsr.layerwise_natural_gradient_tree(nqs, configs, eps, np.ones(4))
    with pytest.raises(ValueError, match="gram"):
        minsr.layerwise_natural_gradient_tree(nqs, configs, eps, gram=jnp.eye(3))


def test_layerwise_minsr_with_a_given_gram_equals_its_own():
    """The Gram passed in (as nqs_updates does, from a separate compiled program) gives the same direction."""
    nqs = _random_mlp_nqs(6, 3, 3, 1, seed=2)
    configs = _distinct_tuples(12, 3, 6, seed=3)
    eps = jnp.asarray(np.random.default_rng(4).normal(size=12) + 0j)
    gram = minsr.layerwise_gram(nqs, configs)
    assert gram.shape == (24, 24)
    np.testing.assert_allclose(gram, gram.T, rtol=0, atol=1e-12)
    own = minsr.layerwise_natural_gradient_tree(nqs, configs, eps, diag_shift=1e-3)
    given = minsr.layerwise_natural_gradient_tree(nqs, configs, eps, diag_shift=1e-3, gram=gram)
    np.testing.assert_array_equal(ravel_pytree(given)[0], ravel_pytree(own)[0])
    # and a different Gram changes it: the argument is used
    other = minsr.layerwise_natural_gradient_tree(nqs, configs, eps, diag_shift=1e-3, gram=2.0 * gram)
    assert float(jnp.abs(ravel_pytree(other)[0] - ravel_pytree(own)[0]).max()) > 1e-6


@pytest.mark.parametrize("n_states,n_samples,parities", [(1, 40, None), (3, 12, "+-+"), (2, 9, None)])
def test_layerwise_gram_in_tiles_is_j_jt(n_states, n_samples, parities):
    """``layerwise_gram`` equals ``J J^T`` (``J = [Re O; Im O]``, the Jacobian uncentred) for tiles that
    divide the batch, do not (padded rows), are one sample, or are larger than the batch."""
    nqs = _random_mlp_nqs(6, n_states, 3, 1, seed=n_states, parities=parities)
    configs = _distinct_tuples(n_samples, n_states, 6, seed=n_samples)
    O = jacobian_of_log_psi(_log_psi_of_nqs, nqs, configs)
    J = jnp.concatenate([jnp.real(O), jnp.imag(O)])
    expected = J @ J.T
    scale = float(jnp.abs(expected).max())
    for tile in (1, 4, 7, n_samples, None):
        got = minsr.layerwise_gram(nqs, configs, tile=tile)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale, err_msg=f"tile={tile}")
    with pytest.raises(ValueError, match="tile"):
        minsr.layerwise_gram(nqs, configs, tile=0)


@pytest.mark.parametrize("n_states,parities", [(3, None), (3, "+-+")])
def test_layerwise_gram_of_repeated_tuples_is_j_jt(n_states, parities):
    """A batch that repeats tuples (as resampling does): the Gram over its distinct tuples,
    gathered back, equals ``J J^T`` for tiles that hold only distinct tuples, some, or none; and
    so does the same call under ``jit`` (no host-side search for repeats there)."""
    nqs = _random_mlp_nqs(6, n_states, 3, 1, seed=n_states, parities=parities)
    distinct = _distinct_tuples(7, n_states, 6, seed=3)
    picks = np.random.default_rng(1).integers(0, 7, size=19)
    picks[:7] = np.arange(7)[::-1]  # every distinct tuple, not in their first-occurrence order
    configs = distinct[picks]
    O = jacobian_of_log_psi(_log_psi_of_nqs, nqs, configs)
    J = jnp.concatenate([jnp.real(O), jnp.imag(O)])
    expected = J @ J.T
    scale = float(jnp.abs(expected).max())
    for tile in (1, 3, 4, 7, 19, None):
        got = minsr.layerwise_gram(nqs, configs, tile=tile)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale, err_msg=f"tile={tile}")
    traced = jax.jit(lambda c: minsr.layerwise_gram(nqs, c, tile=4))(configs)
    np.testing.assert_allclose(traced, expected, rtol=0, atol=1e-12 * scale)
