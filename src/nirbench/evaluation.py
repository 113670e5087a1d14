"""Measurements of a VMC state that leave it unchanged: the final evaluation and the JSD.

Both draw from the sampler as training uses it, but *frozen* (:meth:`Sampler.frozen`: NIR does not
train its proposal) and on a copy of the sampler state that is thrown away afterwards, so a run
with measurements continues exactly as one without them.

The evaluation respects NIR's efficiency gate: while a frozen call's efficiency is below
``alpha_eff`` the proposal is retrained (on the copy; the NQS is fixed) and the call repeated, at
most ``max_retries`` times (none after a run that ended at its time limit or stalled: see
:func:`nirbench.vmc.run`); ``eval_gate`` says whether it passed. A batch drawn below the gate is
still an unbiased estimate, with the larger standard error its lower ESS gives. Every figure comes with an
honest standard error (:func:`nirbench.estimators.standard_error`), per level too
(:func:`nirbench.estimators.level_local_values`), and the V-score of Wu et al., Science 386, 296
(2024): ``V = N Var(E) / (E - E_inf)^2`` with ``E_inf = 0`` for TFI and J1-J2, computed from the
trace energy and the variance of ``tr E_loc`` when ``K > 1``.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from nirbench.estimators import (
    jensen_shannon_divergence,
    level_local_values,
    local_energy_matrices_distinct,
    standard_error,
)
from nirbench.samplers.base import indices_from_spins, unordered_tuple_indices
from nirbench.samplers.exact import check_exact_size, tuple_log_probs


def v_score(energy: float, variance: float, n_sites: int) -> float:
    """``V = N Var(E) / E^2`` (Wu et al. 2024, ``E_inf = 0``); ``nan`` when ``E = 0``."""
    return n_sites * variance / energy**2 if energy != 0 else math.nan


def evaluate(run, n_samples: int, key, sampler=None, sampler_state=None, max_retrains: int | None = None) -> dict:
    """Estimate the energies of ``run``'s NQS from at least ``n_samples`` fresh samples.

    Args:
        run: a :class:`nirbench.vmc.VMCRun` (its NQS, Hamiltonian, sampler and :meth:`draw`).
        n_samples: draw batches until this many rows are collected.
        key: JAX PRNG key.
        sampler, sampler_state: the sampler to measure with and its state (default: the run's).
        max_retrains: proposal retraining calls allowed while the gate fails (default the run's
            ``max_retries``; 0: measure with the proposal as it stands).

    Returns a dict: ``energy`` (trace), ``energy_sigma``, ``variance`` (of ``tr E_loc``),
    ``levels`` and ``level_sigmas`` ``(K,)``, ``v_score``, ``eval_samples``, ``eval_batches``,
    ``eval_retrains`` (proposal retraining calls the gate needed), ``eval_gate`` (``bool``),
    ``eval_efficiency`` (mean over the batches used; ``nan`` where it does not apply) and
    ``eval_ess`` (independent exact draws with the same error, summed over the batches).
    """
    sampler = run.sampler if sampler is None else sampler
    state = run.sampler_state if sampler_state is None else sampler_state
    frozen = sampler.frozen()
    max_retrains = run.config.max_retries if max_retrains is None else max_retrains
    batches, efficiencies, retrains, gate = [], [], 0, True
    drawn = 0
    while drawn < n_samples:
        key, key_draw, key_train = jax.random.split(key, 3)
        batch, state, stats = run.draw(frozen, state, key_draw)  # chains continue; a frozen NIR is unchanged
        if not stats["nqs_update"]:
            if retrains < max_retrains:
                retrains += 1
                _, state, _ = run.draw(sampler, state, key_train)  # retrain the proposal on the copy
                continue
            gate = False  # keep the batch, and say that the gate never passed
        batches.append(batch)
        efficiencies.append(stats["efficiency"])
        drawn += len(batch.weights)
    e_locs = [np.asarray(local_energy_matrices_distinct(run.nqs, run.hamiltonian, batch.configs)) for batch in batches]
    weights = [np.asarray(batch.weights, dtype=np.float64) for batch in batches]
    n_batches = len(batches)
    mean_matrix = sum(np.tensordot(w / w.sum(), e, axes=1) for w, e in zip(weights, e_locs)) / n_batches
    levels = np.sort(np.real(np.linalg.eigvals(mean_matrix)))
    energy = float(np.real(np.trace(mean_matrix)))
    sigma_sq, level_sigma_sq, variance, eval_ess = 0.0, np.zeros(len(levels)), 0.0, 0.0
    for batch, e_loc, w in zip(batches, e_locs, weights):
        traces = np.real(np.trace(e_loc, axis1=1, axis2=2))
        sigma, n_effective = standard_error(traces, batch)
        sigma_sq += sigma**2
        eval_ess += n_effective
        variance += float(np.sum(w / w.sum() * (traces - energy) ** 2)) / n_batches
        per_level = level_local_values(e_loc, mean_matrix)
        level_sigma_sq += np.array([standard_error(per_level[:, k], batch)[0] ** 2 for k in range(len(levels))])
    n_sites = run.hamiltonian.n_sites
    return {
        "energy": energy, "energy_sigma": math.sqrt(sigma_sq) / n_batches, "variance": variance,
        "levels": levels, "level_sigmas": np.sqrt(level_sigma_sq) / n_batches,
        "v_score": v_score(energy, variance, n_sites), "eval_samples": drawn, "eval_batches": n_batches,
        "eval_retrains": retrains, "eval_gate": gate, "eval_efficiency": float(np.mean(efficiencies)),
        "eval_ess": eval_ess,
    }  # fmt: skip


#: the columns :func:`sampler_jsd` returns, in the order of the step CSV
JSD_COLUMNS = ("jsd", "jsd_exact", "jsd_unordered", "jsd_unordered_exact")


def tuple_jsds(probs, counts, exact_counts, indices, n_states: int, n_sites: int) -> dict[str, float]:
    """The JSDs of sampled and exact-draw counts to an exact distribution over K-tuples.

    Args:
        probs: ``(D,)`` exact probabilities of the tuples ``indices``.
        counts, exact_counts: ``(D,)`` the sampler's (weighted) counts and those of as many exact
            draws, on the same tuples.
        indices: ``(D,)`` the tuples' indices (:func:`~nirbench.samplers.base.indices_from_spins`).

    Returns the dict of :data:`JSD_COLUMNS`: ``jsd`` and ``jsd_exact`` over ordered tuples (the
    paper's measure), ``jsd_unordered`` and ``jsd_unordered_exact`` over tuples as multisets
    (:func:`~nirbench.samplers.base.unordered_tuple_indices`): a sampler that draws the K
    configurations in some orders more often than in others is penalised by the first and not by
    the second, which is the distribution every VMC estimate depends on. Coarse-graining never
    increases a JSD, so ``jsd_unordered <= jsd``.
    """
    _, group = np.unique(unordered_tuple_indices(indices, n_states, n_sites), return_inverse=True)

    def unordered(x):
        return np.bincount(group, weights=np.asarray(x, dtype=np.float64))

    def jsd(p, q):
        return float(jensen_shannon_divergence(p, q))

    return {
        "jsd": jsd(probs, counts), "jsd_exact": jsd(probs, exact_counts),
        "jsd_unordered": jsd(unordered(probs), unordered(counts)),
        "jsd_unordered_exact": jsd(unordered(probs), unordered(exact_counts)),
    }  # fmt: skip


def sampler_jsd(run, sampler_state, key, n_samples: int) -> dict[str, float]:
    """JSD between ``n_samples`` draws of the run's (frozen) sampler and its exact target.

    The target is what the sampler draws from: ``|Psi|^2``, or ``|Psi|^(2p)`` with
    ``sampling_power = p`` (the draws before reweighting). Draws continue a copy of
    ``sampler_state`` (Metropolis chains go on from where training left them; NIR proposes from
    its proposal as it stands, untrained). Returns the dict of :func:`tuple_jsds`: ``jsd`` and,
    as ``jsd_exact``, the JSD of ``n_samples`` exact draws from the same target, the
    finite-sample floor that ``jsd`` approaches for a perfect sampler (of order 0.5 when the draws
    cover only a small part of a broad distribution, e.g. 25 600 draws of a near-uniform one over
    2^18 tuples); the same two over unordered tuples.
    """
    k, n = run.config.states, run.hamiltonian.n_sites
    check_exact_size(k, n)
    log_probs = tuple_log_probs(run.log_prob_fn, run.nqs, k, n)  # the target the sampler draws from
    probs = np.asarray(jax.nn.softmax(log_probs), dtype=np.float64)  # (2^(K N),), tuple index order
    counts = np.zeros(len(probs))
    frozen = run.sampler.frozen()
    key, key_floor = jax.random.split(key)
    drawn = 0
    while drawn < n_samples:
        key, subkey = jax.random.split(key)
        batch, sampler_state, _ = frozen.sample(run.log_prob_fn, run.nqs, sampler_state, subkey)
        np.add.at(counts, np.asarray(indices_from_spins(batch.configs)), np.asarray(batch.weights) * len(batch.weights))
        drawn += len(batch.weights)
    seed = int(jax.random.randint(key_floor, (), 0, np.iinfo(np.int32).max))
    exact_counts = np.random.default_rng(seed).multinomial(drawn, probs / probs.sum())
    return tuple_jsds(probs, counts, exact_counts, np.arange(len(probs)), k, n)


def evaluation_columns(result: dict) -> dict:
    """The flat CSV columns of an :func:`evaluate` result (shared by ``vmc``'s summary and
    ``nirbench evaluate``): ``energy, energy_sigma, variance, v_score, e_k, e_k_sigma`` for every
    level ``k``, then the ``eval_*`` diagnostics."""
    levels = {f"e_{k}": float(e) for k, e in enumerate(result["levels"])}
    sigmas = {f"e_{k}_sigma": float(s) for k, s in enumerate(result["level_sigmas"])}
    diagnostics = {key: value for key, value in result.items() if key.startswith("eval_")}
    return {
        "energy": result["energy"], "energy_sigma": result["energy_sigma"], "variance": result["variance"],
        "v_score": result["v_score"], **levels, **sigmas, **diagnostics,
    }  # fmt: skip
