"""Samplers of ``|Psi|^2`` for multi-state NQS, all behind one interface (:class:`Sampler`).

* :class:`ExactSampler` (``"exact"``): enumeration of all ``2^(K*N)`` K-tuples (small systems).
* :class:`MetropolisSampler` (``"mcmc"``): Metropolis-Hastings, persistent chains, local moves.
* :class:`NIRSampler` (``"nir"``): neural importance resampling with a Transformer proposal.

Use::

    sampler = make_sampler("nir", hamiltonian, batch_size=512, n_states=3)
    state = sampler.init(key, n_states, hamiltonian.n_sites)
    batch, state, stats = sampler.sample(batched_log_prob, nqs, state, key)

See :mod:`nirbench.samplers.base` for the conventions (shapes, weights, stats keys).
"""

from __future__ import annotations

from nirbench.estimators import integrated_autocorrelation_time
from nirbench.samplers.base import STATS_KEYS, SampleBatch, Sampler, indices_from_spins, spins_from_indices
from nirbench.samplers.exact import ExactSampler, ExactState, exact_distribution
from nirbench.samplers.mcmc import MCMCState, MetropolisSampler
from nirbench.samplers.nir import NIRSampler, NIRState, SymmetryGroup, symmetrized_log_prob

SAMPLERS = ("exact", "mcmc", "nir")

__all__ = [
    "SAMPLERS",
    "STATS_KEYS",
    "ExactSampler",
    "ExactState",
    "MCMCState",
    "MetropolisSampler",
    "NIRSampler",
    "NIRState",
    "SampleBatch",
    "Sampler",
    "SymmetryGroup",
    "exact_distribution",
    "indices_from_spins",
    "integrated_autocorrelation_time",
    "make_sampler",
    "spins_from_indices",
    "symmetrized_log_prob",
]


def make_sampler(name: str, hamiltonian, batch_size: int, **options) -> Sampler:
    """Build a sampler by name for ``hamiltonian`` with ``batch_size`` samples per call.

    ``name`` is one of :data:`SAMPLERS`. ``options`` are the sampler's keyword arguments; the
    Hamiltonian fills in defaults:

    * ``"mcmc"``: ``rule = hamiltonian.local_move`` ("flip" for TFI, "exchange" for J1-J2) and,
      for the exchange rule, ``bonds = hamiltonian.lattice.nearest_neighbours``.
    * ``"nir"``: ``n_sites = hamiltonian.n_sites``, ``n_states`` from ``options`` (default 1) and,
      with ``symmetrize=True``, ``symmetry_perms = hamiltonian.lattice.symmetry_group()``.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")
    if name == "exact":
        return ExactSampler(batch_size, **options)
    if name == "mcmc":
        options.setdefault("rule", hamiltonian.local_move)
        if options["rule"] == "exchange":
            options.setdefault("bonds", hamiltonian.lattice.nearest_neighbours)
        return MetropolisSampler(batch_size, **options)
    options.setdefault("n_sites", hamiltonian.n_sites)
    if options.get("symmetrize"):
        options.setdefault("symmetry_perms", hamiltonian.lattice.symmetry_group())
    return NIRSampler(batch_size, **options)
