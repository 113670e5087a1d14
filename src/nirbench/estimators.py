"""Estimators: local energies (single- and multi-state), averages, statistics, ESS, JSD.

Conventions:

* A single configuration ``s`` has shape ``(N,)``; a K-tuple ``(K, N)``; a batch ``(B, K, N)``.
* ``hamiltonian.connected(s)`` gives ``(s_conn (M, N), mels (M,))`` with
  ``mels[m] = <s|H|s_conn[m]>`` (zero on padding entries).
* Single state: ``E_loc(s) = sum_m mels_m psi(s'_m) / psi(s)`` (paper eq. 4).
* Multi-state (paper eq. 3): ``E_loc = A^-1 B`` with ``A_kj = psi_j(s^k)`` and
  ``B_kj = (H psi_j)(s^k)``. Its exact average over ``|Psi|^2`` is ``S^-1 H_sub`` with
  ``S_ij = <psi_i|psi_j>`` and ``H_ij = <psi_i|H|psi_j>`` (index ``[i, j]``, no transpose),
  and its eigenvalues estimate the K lowest energies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from scipy.stats import linregress

from nirbench.linalg import solve
from nirbench.models.multistate import evaluation_chunk


def _ratio_sum(mels: jax.Array, log_ratios: jax.Array) -> jax.Array:
    """``sum_m mels_m exp(log_ratios_m)`` over axis 0, with padding (``mels == 0``) skipped.

    The guard keeps a zero matrix element times an overflowing ratio from giving NaN.
    """
    mels = mels.reshape(mels.shape + (1,) * (log_ratios.ndim - mels.ndim))
    terms = jnp.where(mels != 0, mels * jnp.exp(jnp.where(mels != 0, log_ratios, 0.0)), 0.0)
    return jnp.sum(terms, axis=0)


def local_energy(log_psi_fn: Callable[[jax.Array], jax.Array], hamiltonian, s: jax.Array) -> jax.Array:
    """Single-state local energy: ``s`` of shape ``(N,)`` -> complex ``(H psi)(s) / psi(s)``.

    ``log_psi_fn`` maps ``(N,) -> complex log psi``; it is evaluated on the ``M`` connected
    configurations in one ``vmap``.
    """
    s = jnp.asarray(s)
    s_conn, mels = hamiltonian.connected(s)
    log_conn = jax.vmap(log_psi_fn)(s_conn)
    return _ratio_sum(mels, log_conn - log_psi_fn(s))


def local_energies(log_psi_fn, hamiltonian, configs: jax.Array) -> jax.Array:
    """``local_energy`` over a batch: ``configs`` of shape ``(B, N)`` -> complex ``(B,)``."""
    return jax.vmap(lambda s: local_energy(log_psi_fn, hamiltonian, s))(jnp.asarray(configs))


def _energy_matrix(log_a: jax.Array, log_conn: jax.Array, mels: jax.Array) -> jax.Array:
    """``E_loc = A^-1 B`` of one K-tuple from its log amplitudes: ``log_a`` ``(K, K)``
    (``[k, j] = log psi_j(s^k)``), ``log_conn`` ``(K, M, K)`` (``[k, m, j] = log psi_j(s'_km)``),
    ``mels`` ``(K, M)``. Rows are rescaled by ``exp(-m_k)``, ``m_k = max_j Re log psi_j(s^k)``
    (this cancels in ``A^-1 B``); entries of ``log_conn`` where ``mels`` is zero are ignored."""
    shift = jax.lax.stop_gradient(jnp.max(log_a.real, axis=1))  # m_k
    a = jnp.exp(log_a - shift[:, None])
    b = jax.vmap(_ratio_sum)(mels, log_conn - shift[:, None, None])  # (K, K)
    return solve(a, b)


def local_energy_matrix(nqs, hamiltonian, s: jax.Array) -> jax.Array:
    """Multi-state local energy matrix: ``s`` of shape ``(K, N)`` -> complex ``(K, K)``.

    ``E_loc = A^-1 B`` with ``A_kj = psi_j(s^k)``, ``B_kj = sum_m mels_km psi_j(s'_km)``, where
    ``(s'_km, mels_km)`` are the configurations connected to ``s^k``; solved stably by
    :func:`_energy_matrix`. All K networks are evaluated on the K tuple members and all
    ``K * M`` connected configurations in one batched ``nqs.log_amplitudes`` call. For K = 1
    this is ``local_energy``. Jittable and differentiable; :func:`local_energy_matrices_distinct`
    gives the same values for a batch with far fewer network evaluations.

    ``nqs`` is a ``MultiStateNQS`` (anything with ``n_states`` and ``log_amplitudes``). A tuple
    with a repeated configuration has a singular ``A`` (``Psi = 0``, never sampled) and gives
    non-finite entries.
    """
    s = jnp.asarray(s)
    n_states, n_sites = s.shape
    if n_states != nqs.n_states:
        raise ValueError(f"local_energy_matrix expects a K-tuple of shape ({nqs.n_states}, N), got {s.shape}")
    s_conn, mels = jax.vmap(hamiltonian.connected)(s)  # (K, M, N), (K, M)
    n_conn = s_conn.shape[1]
    configs = jnp.concatenate([s.astype(s_conn.dtype), s_conn.reshape(n_states * n_conn, n_sites)])
    log_amps = nqs.log_amplitudes(configs)  # (K + K*M, K)
    log_conn = log_amps[n_states:].reshape(n_states, n_conn, n_states)  # [k, m, j]
    return _energy_matrix(log_amps[:n_states], log_conn, mels)


def local_energy_matrices(nqs, hamiltonian, configs: jax.Array) -> jax.Array:
    """``local_energy_matrix`` over a batch: ``configs`` ``(B, K, N)`` -> complex ``(B, K, K)``."""
    return jax.vmap(lambda s: local_energy_matrix(nqs, hamiltonian, s))(jnp.asarray(configs))


@eqx.filter_jit
def _connected_batch(hamiltonian, configs):
    """``configs`` ``(B, K, N)`` -> connected ``(B, K, M, N)`` and matrix elements ``(B, K, M)``."""
    return jax.vmap(jax.vmap(hamiltonian.connected))(configs)


@eqx.filter_jit
def _log_amplitudes(nqs, configs):
    """``(C, N)`` -> ``(C, K)``: every network of ``nqs`` on every configuration."""
    return nqs.log_amplitudes(configs)


@eqx.filter_jit
def _energy_matrices(log_a, log_conn, mels):
    return jax.vmap(_energy_matrix)(log_a, log_conn, mels)


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct +-1 rows: ``rows`` ``(R, N)`` -> ``(index (U,), inverse (R,))`` with
    ``rows[index][inverse] == rows`` (``index`` picks the first occurrence of each distinct row)."""
    packed = np.packbits(np.asarray(rows) < 0, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return index, inverse.ravel()


def distinct_needed_configurations(hamiltonian, configs):
    """The configurations the local energies of a batch ``configs`` ``(B, K, N)`` need, made
    distinct: the tuple members and the connected configurations with a non-zero matrix element.

    Returns ``(distinct, inverse, needed, mels)``: ``distinct`` ``(U, N)`` int8 (host); ``inverse``
    maps the ``B K`` members, then the needed connected configurations in order, to rows of
    ``distinct``; ``needed`` ``(B K M,)`` bool marks the connected configurations with a non-zero
    element; ``mels`` ``(B, K, M)`` the matrix elements (a device array).
    """
    configs = jnp.asarray(configs)
    n_sites = configs.shape[-1]
    s_conn, mels = _connected_batch(hamiltonian, configs)  # (B, K, M, N), (B, K, M)
    needed = np.asarray(mels).reshape(-1) != 0
    rows = np.concatenate([
        np.asarray(configs, dtype=np.int8).reshape(-1, n_sites),
        np.asarray(s_conn, dtype=np.int8).reshape(-1, n_sites)[needed],
    ])  # fmt: skip
    index, inverse = distinct_rows(rows)
    return rows[index], inverse, needed, mels


def local_energy_matrices_distinct(nqs, hamiltonian, configs, chunk: int | None = None) -> jax.Array:
    """:func:`local_energy_matrices` of a batch ``(B, K, N)`` -> ``(B, K, K)``, evaluating the NQS
    once per *distinct* configuration that enters with a non-zero matrix element.

    Sampled batches repeat configurations (resampled NIR batches, Metropolis chains) and their
    connected configurations overlap, and many matrix elements vanish (J1-J2: exchange across
    parallel spins); on a J1-J2 4x4 NIR batch 16 640 connected configurations held 5 473 distinct
    ones with a non-zero element (``benchmarks/local_energy_speed.py``). The distinct ones are found on the host
    (:func:`distinct_needed_configurations`) and evaluated in compiled chunks of ``chunk``
    configurations (one shape, compiled once; by default ``nirbench.models.multistate.evaluation_chunk``); the matrices are then assembled exactly as in
    :func:`local_energy_matrix`. Not differentiable (local energies never are, in VMC).
    """
    n_batch, n_states, _ = jnp.shape(configs)
    chunk = evaluation_chunk(nqs) if chunk is None else chunk
    distinct, inverse, needed, mels = distinct_needed_configurations(hamiltonian, configs)
    n_conn = mels.shape[2]
    padded = np.concatenate([distinct, np.repeat(distinct[:1], -len(distinct) % chunk, axis=0)])
    # host arrays from here on: shapes that change from call to call never reach a compiled function
    log_amps = np.concatenate([
        np.asarray(_log_amplitudes(nqs, padded[start : start + chunk])) for start in range(0, len(padded), chunk)
    ])  # fmt: skip
    n_members = n_batch * n_states
    where = np.zeros(n_batch * n_states * n_conn, dtype=np.int64)  # zero elements: any row, ignored
    where[needed] = inverse[n_members:]
    log_a = log_amps[inverse[:n_members]].reshape(n_batch, n_states, n_states)
    log_conn = log_amps[where].reshape(n_batch, n_states, n_conn, n_states)
    return _energy_matrices(log_a, log_conn, mels)


def _normalised(weights: jax.Array) -> jax.Array:
    weights = jnp.asarray(weights)
    return weights / jnp.sum(weights)


def mean_energy_matrix(e_loc: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """``e_loc`` of shape ``(B, K, K)`` -> ``(K, K)`` sample mean.

    With ``weights`` (shape ``(B,)``, non-negative) the self-normalised weighted mean
    ``sum_b w_b e_loc_b / sum_b w_b`` (weights that already sum to 1 are used as they are).
    """
    e_loc = jnp.asarray(e_loc)
    if weights is None:
        return jnp.mean(e_loc, axis=0)
    return jnp.tensordot(_normalised(weights).astype(e_loc.dtype), e_loc, axes=1)


def energy_levels(mean_matrix: jax.Array, host: bool | None = None) -> jax.Array:
    """``(K, K)`` energy matrix -> ``(K,)`` real parts of its eigenvalues, sorted ascending.

    The general (non-Hermitian) eigenvalues are needed: the estimated matrix is ``S^-1 H_sub``,
    not Hermitian. Jittable. On the CPU backend this is ``jnp.linalg.eigvals``; elsewhere
    (``host=None``, the default) or with ``host=True`` the tiny K x K problem is solved by
    NumPy through ``jax.pure_callback``, since non-symmetric ``eig`` is not available on
    every accelerator build of JAX.
    """
    matrix = jnp.asarray(mean_matrix)
    if host is None:
        host = jax.default_backend() != "cpu"
    if host:
        dtype = jnp.result_type(matrix.dtype, jnp.complex64)

        def host_eigvals(m):
            return np.linalg.eigvals(np.asarray(m)).astype(dtype)

        result = jax.ShapeDtypeStruct(matrix.shape[:-1], dtype)
        eigenvalues = jax.pure_callback(host_eigvals, result, matrix, vmap_method="sequential")
    else:
        eigenvalues = jnp.linalg.eigvals(matrix)
    return jnp.sort(jnp.real(eigenvalues))


def log_ess_from_sums(log_sum_w, log_sum_w2):
    """``log ESS = 2 log(sum w) - log(sum w^2)`` from the two log sums (``-inf`` when every weight
    is zero). The one definition of the (Kish) effective sample size: NIR accumulates the two sums
    over its proposal rounds on the host and calls this on them (Python or NumPy floats in, a
    Python float out, no device dispatch); :func:`log_effective_sample_size` calls it on JAX
    arrays, traced or not."""
    if isinstance(log_sum_w, jax.Array) or isinstance(log_sum_w2, jax.Array):
        return jnp.where(log_sum_w > -jnp.inf, 2.0 * log_sum_w - log_sum_w2, -jnp.inf)
    return 2.0 * float(log_sum_w) - float(log_sum_w2) if log_sum_w > -math.inf else -math.inf


def log_effective_sample_size(log_weights: jax.Array) -> jax.Array:
    """``log ESS`` with ``ESS = (sum w)^2 / sum w^2`` from unnormalised ``log w`` of shape ``(M,)``.

    Computed in the log domain, so any common offset of the log weights cancels and nothing
    overflows; ``-inf`` entries (zero weight) are allowed. Returns ``-inf`` when every weight is zero.
    """
    log_weights = jnp.asarray(log_weights)
    finite = jnp.any(jnp.isfinite(log_weights))
    safe = jnp.where(finite, log_weights, 0.0)
    return jnp.where(finite, log_ess_from_sums(logsumexp(safe), logsumexp(2.0 * safe)), -jnp.inf)


def effective_sample_size(log_weights: jax.Array) -> jax.Array:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` from log weights ``(B,)``, in ``[1, B]``
    (0 when every weight is zero): ``exp`` of :func:`log_effective_sample_size`."""
    return jnp.exp(log_effective_sample_size(log_weights))


def jensen_shannon_divergence(p, q) -> jax.Array:
    """Jensen-Shannon divergence in nats (natural log; at most ``ln 2``).

    ``JSD = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2`` and ``0 log 0 = 0``.
    ``p`` and ``q`` are non-negative vectors over the same support (same shape); they are
    normalised to sum to 1. Equals ``scipy.spatial.distance.jensenshannon(p, q) ** 2``.
    """
    p, q = jnp.asarray(p, dtype=float), jnp.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    p, q = p / jnp.sum(p), q / jnp.sum(q)
    m = 0.5 * (p + q)

    def kl_to_m(x):
        positive = x > 0
        safe_x = jnp.where(positive, x, 1.0)
        safe_m = jnp.where(positive, m, 1.0)
        return jnp.sum(jnp.where(positive, x * (jnp.log(safe_x) - jnp.log(safe_m)), 0.0))

    return 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)


def integrated_autocorrelation_time(series) -> float:
    """Integrated autocorrelation time of a scalar observable recorded on parallel chains.

    Args:
        series: ``(T, C)`` array, ``T`` consecutive recordings of ``C`` independent chains.

    Returns ``tau = 1 + 2 sum_{k >= 1} rho(k)`` in units of the recording interval, with ``rho`` the
    chain-averaged autocovariance (FFT, each chain centred on the *pooled* mean so that chains stuck
    in different regions count as correlated) divided by the pooled variance. The sum is truncated
    by Geyer's initial monotone sequence (as ArviZ and Stan do): the sums of adjacent pairs
    ``rho(2m) + rho(2m + 1)`` are taken while positive, made non-increasing, and
    ``tau = 2 sum_m (rho(2m) + rho(2m + 1)) - 1``. Clipped below at 1 (never credit more than one
    effective sample per recording). ``ESS = T * C / tau``.

    Geyer's rule was chosen over Sokal's window (``M >= 5 tau``) from data: on a few short chains
    (4 chains x 32 recordings, ``tau`` about 5) Sokal's window underestimated the error by 15-30 %
    (``benchmarks/error_bars.py``; docs/measurements.md).
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"series must have shape (T >= 2, C), got {x.shape}")
    n_time = x.shape[0]
    x = x - x.mean()
    variance = np.mean(x**2)
    if variance == 0:
        return 1.0
    size = 1 << (2 * n_time - 1).bit_length()
    spectrum = np.fft.rfft(x, n=size, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[:n_time]
    acov = acov.mean(axis=1) / (n_time - np.arange(n_time))
    rho = acov / variance
    n_pairs = n_time // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
    n_positive = int(np.argmin(pairs > 0)) if np.any(pairs <= 0) else n_pairs
    pairs = np.minimum.accumulate(pairs[: max(n_positive, 1)])
    return float(max(1.0, 2.0 * np.sum(pairs) - 1.0))


def chains_frozen(batch) -> bool:
    """Whether no Metropolis chain of ``batch`` moved: each repeats one configuration (tuple) in
    all its ``S >= 2`` recordings. False for batches of independent rows, one recording per
    chain, or without ``configs``."""
    if batch.n_chains is None or batch.configs is None or len(batch.weights) // batch.n_chains < 2:
        return False
    configs = np.asarray(batch.configs)
    series = configs.reshape(configs.shape[0] // batch.n_chains, batch.n_chains, -1)
    return bool(np.all(series == series[:1]))


def standard_error(values, batch) -> tuple[float, float]:
    """Standard error of the self-normalised weighted mean of ``values`` over a sample batch.

    Args:
        values: ``(B,)`` local values of one observable (real parts are used), e.g. ``tr E_loc``.
        batch: the :class:`~nirbench.samplers.base.SampleBatch` they were computed on; its
            ``weights`` give the estimate ``mu = sum_b v_b x_b`` (``v`` self-normalised), and its
            ``n_chains`` / ``source`` fields say how the rows depend on each other.

    Returns ``(sigma, n_effective)``: ``sigma`` estimates the standard deviation of ``mu`` over
    repeated sampler calls; ``n_effective = Var_v(x) / sigma^2`` is the number of independent
    exact draws that would give the same error (``B`` when every value is equal).

    The variance is the delta-method (linearised) variance of a ratio estimator, built from the
    influence values ``z_b = B v_b (x_b - mu)``:

    * independent rows (exact sampler; importance-weighted NIR, whose rows are the whole weighted
      proposal set): ``sigma^2 = sum_b v_b^2 (x_b - mu)^2``; with equal weights ``Var(x) / B``.
    * Metropolis (``n_chains``, ``S = B / n_chains >= 2`` recordings per chain): that times the
      integrated autocorrelation time ``tau`` of the ``(S, n_chains)`` series of ``z``
      (:func:`integrated_autocorrelation_time`: Geyer's initial monotone sequence, centred on the
      pooled mean so that chains stuck in different regions count as correlated). When no chain
      moved during the batch (:func:`chains_frozen`), the batch says nothing about the scatter a
      moving chain would show: ``(nan, nan)``, not the 0 that identical frozen chains would give
      (the 6x6 ordered phase freezes 16 chains in one tuple; docs/measurements.md).
    * resampled NIR (``source``): the ``B`` rows are drawn with replacement from the weighted
      proposal set (weights ``wbar_i``), so the estimate varies with the resampling (the first
      term, as for independent rows) and with the proposal set itself: the delta-method variance
      of the self-normalised importance estimate, ``sum_i c_i^2 (x_i - mu)^2`` over *all*
      proposals ``i``, ``c_i = wbar_i r_i / sum_j wbar_j r_j`` (``r`` the extra row weights of a
      tempered target, 1 otherwise). Only the proposals that were drawn have a local value; the
      sum is estimated without bias from them (Horvitz-Thompson: each distinct drawn proposal
      counted once, divided by its probability ``1 - (1 - wbar_i)^B`` of being drawn), with
      ``sum_j wbar_j r_j`` estimated by the mean of ``r`` over the rows. Duplicates are never
      counted as independent samples.
    """
    if chains_frozen(batch):
        return math.nan, math.nan
    x = np.real(np.asarray(values, dtype=np.complex128)).astype(np.float64)
    v = np.asarray(batch.weights, dtype=np.float64)
    v = v / v.sum()
    n_rows = x.shape[0]
    mu = float(np.sum(v * x))
    influence = n_rows * v * (x - mu)
    variance_v = float(np.sum(v * (x - mu) ** 2))
    sigma_sq = float(np.sum(influence**2)) / n_rows**2
    if batch.n_chains is not None and n_rows // batch.n_chains >= 2:
        series = influence.reshape(n_rows // batch.n_chains, batch.n_chains)
        sigma_sq *= integrated_autocorrelation_time(series)
    if batch.source is not None:
        source = np.asarray(batch.source)
        source_weights = np.asarray(batch.source_weights, dtype=np.float64)
        _, first = np.unique(source, return_index=True)
        # c_i = wbar_i r_i / mean(r), and r_b / mean(r) = B v_b
        c = source_weights[first] * n_rows * v[first]
        drawn_probability = -np.expm1(n_rows * np.log1p(-np.minimum(source_weights[first], 1.0 - 1e-16)))
        sigma_sq += float(np.sum(c**2 * (x[first] - mu) ** 2 / drawn_probability))
    sigma = math.sqrt(sigma_sq)
    n_effective = variance_v / sigma_sq if sigma_sq > 0 else float(n_rows)
    return sigma, n_effective


def level_local_values(e_loc, mean_matrix) -> np.ndarray:
    """Per-sample contributions to each energy level: ``(B, K, K)``, ``(K, K)`` -> real ``(B, K)``.

    The levels are the eigenvalues ``lambda_k`` of the mean matrix ``M = <E_loc>``; to first
    order in the sampling noise ``d lambda_k = (R^-1 dM R)_kk`` with ``R`` the right eigenvectors
    of ``M`` (columns sorted by ascending ``Re lambda``). So ``(R^-1 E_loc_b R)_kk`` is a local
    estimator of ``lambda_k`` whose weighted mean is exactly ``lambda_k`` and whose scatter gives
    the level's standard error (:func:`standard_error`); the K of them sum to ``tr E_loc_b``.
    """
    e_loc = np.asarray(e_loc)
    eigenvalues, right = np.linalg.eig(np.asarray(mean_matrix))
    right = right[:, np.argsort(np.real(eigenvalues))]
    projected = np.linalg.solve(right, e_loc @ right)  # (B, K, K): R^-1 E_b R
    return np.real(np.diagonal(projected, axis1=1, axis2=2))


#: Fraction of the NQS updates that forms the final window of :func:`final_drift` (at least
#: :data:`FINAL_WINDOW_MIN` updates).
FINAL_WINDOW_FRACTION = 0.2
FINAL_WINDOW_MIN = 20


def final_window(nqs_steps) -> np.ndarray:
    """Boolean mask ``(T,)`` of the iterations in a run's final window: those after NQS update
    ``last - max(FINAL_WINDOW_MIN, FINAL_WINDOW_FRACTION * last)``, ``last`` the largest of
    ``nqs_steps`` (one value per iteration). The window of :func:`final_drift` and of a run's
    final acceptance."""
    nqs_steps = np.asarray(nqs_steps, dtype=float)
    last = nqs_steps.max() if len(nqs_steps) else 0.0
    return nqs_steps > last - max(FINAL_WINDOW_MIN, FINAL_WINDOW_FRACTION * last)


def final_drift(nqs_steps, energies) -> tuple[float, float]:
    """The change of the trace energy over a run's final window and its standard error.

    ``nqs_steps``, ``energies``: one value per iteration (the NQS update count and the trace
    energy of that iteration's batch). The window is the last ``max(FINAL_WINDOW_MIN,
    FINAL_WINDOW_FRACTION * n_updates)`` NQS updates. A straight line is fitted to the energies
    of the window (``scipy.stats.linregress``); the drift is its slope times the window's length
    and the error bar the slope's standard error times that length, from the scatter about the
    line (the batches of successive iterations are independent draws). A run is **converged**
    (:func:`is_converged`) when ``|drift| <= 2 sigma``: within its final window the energy no
    longer moves beyond its noise. It says the run stopped improving, not that it is accurate.
    Returns ``(nan, nan)`` for fewer than 4 iterations in the window.
    """
    nqs_steps, energies = np.asarray(nqs_steps, dtype=float), np.asarray(energies, dtype=float)
    inside = final_window(nqs_steps) & np.isfinite(energies)
    if inside.sum() < 4 or np.ptp(nqs_steps[inside]) == 0:
        return math.nan, math.nan
    fit = linregress(nqs_steps[inside], energies[inside])
    length = np.ptp(nqs_steps[inside])
    return float(fit.slope * length), float(fit.stderr * length)


def is_converged(drift: float, sigma: float) -> bool:
    """The convergence rule of :func:`final_drift`: ``|drift| <= 2 sigma`` (False for nan)."""
    return bool(math.isfinite(drift) and math.isfinite(sigma) and abs(drift) <= 2.0 * sigma)
