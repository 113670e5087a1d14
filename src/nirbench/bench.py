"""Benchmarks. Each ``bench_*`` function returns a tidy :class:`pandas.DataFrame` (one row per
(case, method)); ``nirbench bench <kind> --out FILE.csv`` writes it.

``bench_sampling`` measures, per case
``(lx, ly, K)`` (a TFI model on an ``lx x ly`` lattice with ``K`` states, ``T = K * lx * ly``
proposal tokens):

* ``proposal_kv`` / ``proposal_naive``: wall seconds of one ``TransformerProposal`` sampling call
  (table A1 architecture, in the NIR sampler's default precision, float32, as VMC runs use it)
  with the key/value cache (at ``batch`` and at ``naive_batch``), and with
  the naive full recompute at every position (at ``naive_batch``: it does ``O(T)`` times the work,
  so the default keeps it small; compare the two at the same ``batch``). Compiled ahead of time,
  so compilation is excluded; the median of the repeats.
* ``mcmc``: the paper's Metropolis sampler (640 warm-up steps, thinning 10, one chain per sample,
  single-spin flips on the K-tuple) on a multi-state NQS of MLPs (``width``, ``depth``; paper
  table A1: 128 x 4) for TFI at field ``g``. ``seconds`` is the median wall time of one sampling
  call (``batch`` samples). Effective samples per call: ``batch / tau``, where ``tau`` is the
  integrated autocorrelation time (in calls; Sokal window, clipped at 1) of the scalar observable
  ``log |Psi|^2`` of each chain's sample across ``mcmc_calls + 1`` consecutive calls (chains
  persist between calls, as in VMC). Samples within one call come from independent chains. With
  few calls ``tau`` is a rough estimate (clipped at 1: ``ess <= batch``).
* ``nir``: the NIR sampler (table A1 defaults: alpha_ESS = 2, embed 32, 4 heads, 4 layers) on the
  *same* NQS. Its proposal is first **pre-trained** for ``pretrain_steps`` forward-KL steps on the
  MCMC samples of that NQS, so that it roughly tracks the NQS as during VMC (a longer pre-training
  gives a higher efficiency; an untrained proposal is worse). ``seconds`` is the median wall time
  of one NIR call (proposal rounds until ESS >= 2 B, resampling, one proposal training step).
  Effective samples per resampled batch: ``B * ESS / (B + ESS)`` (the resampled batch inherits the
  variance of the weighted pool of effective size ``ESS`` plus the multinomial draw of ``B``).
  ``efficiency`` = ESS / n_proposed of the pool.
* Symmetry-augmented NIR (beyond the paper, ``symmetry_case``): on a target that *is* symmetric
  (the determinant of the ``K`` lowest exact TFI eigenstates from exact diagonalisation, whose
  ``|Psi|^2`` is invariant under lattice symmetries, the global spin flip and row permutations;
  checked), one proposal pre-trained briefly on exact samples is used as is (``nir_plain``) and
  symmetrised (``nir_symmetrized``, exact mixture density ``q_G``); ``efficiency`` compares the ESS
  per proposal. The proposal state is not advanced between these calls, so both rows use the
  identical network.

Columns: :data:`SAMPLING_COLUMNS`; ``ess`` is the number of effective samples per call and
``seconds_per_effective_sample = seconds / ess`` (``nan`` for the proposal-only rows).

``bench_vmc`` (``nirbench bench vmc``) times whole VMC steps (:meth:`nirbench.vmc.VMCRun.step`:
MCMC sampling -> local energies -> minSR + Adam, or plain Adam) on the problem of NetKet's speed
comparison (:func:`vmc_bench_config`: 4x4 periodic TFI at g = 3, K = 1, MLP 4 x 128, batch 512,
``MetropolisLocal(n_chains=16, sweep_size=16)`` with 40 discarded sweeps per chain per step).
Columns :data:`VMC_COLUMNS`; ``seconds_per_step`` is the median over the timed steps after
compilation. ``benchmarks/compare_netket.py`` times NetKet on the same problem in the same run.
"""

from __future__ import annotations

import math
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nirbench.exact import lowest_levels
from nirbench.hamiltonians import make_hamiltonian
from nirbench.linalg import slogdet
from nirbench.models import batched_log_prob, build_nqs
from nirbench.options import VMCConfig
from nirbench.samplers import MetropolisSampler, NIRSampler, integrated_autocorrelation_time
from nirbench.samplers.base import check_positive_int, multinomial_indices, spins_from_indices
from nirbench.samplers.exact import exact_distribution
from nirbench.updates import count_parameters
from nirbench.vmc import VMCRun

SAMPLING_COLUMNS = [
    "case", "tokens", "method", "batch", "seconds", "samples_per_second", "ess",
    "seconds_per_effective_sample", "n_proposed", "efficiency", "notes",
]  # fmt: skip

DEFAULT_CASES = ((3, 2, 3), (4, 4, 3), (8, 8, 3))


def parse_cases(text: str) -> tuple[tuple[int, int, int], ...]:
    """``"3x2x3,4x4x3"`` -> ``((3, 2, 3), (4, 4, 3))`` (``lx x ly x K``); ``ValueError`` otherwise."""
    cases = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        try:
            lx, ly, k = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"a case is LXxLYxK, e.g. 4x4x3; got {item.strip()!r}") from None
        cases.append((lx, ly, k))
    _check_cases(cases)
    return tuple(cases)


def _check_cases(cases) -> None:
    if not cases:
        raise ValueError("at least one case (lx, ly, K) is needed")
    for case in cases:
        if len(case) != 3 or min(case[:2]) < 2 or case[2] < 1:
            raise ValueError(f"a case is (lx >= 2, ly >= 2, K >= 1); got {case}")


def _case_name(lx: int, ly: int, k: int) -> str:
    return f"{lx}x{ly}_K{k}"


# --------------------------------------------------------------------------- proposal timing
def time_proposal_sampling(proposal, batch: int, naive: bool = False, repeats: int = 1, seed: int = 0) -> float:
    """Median wall seconds of one ``proposal.sample`` (or ``sample_naive``) call of ``batch`` strings.

    Compiled ahead of time (``lower().compile()``), so no warm-up execution is needed and compilation
    is excluded; each run ends with ``block_until_ready``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    def draw(model, key):
        return model.sample_naive(key, batch) if naive else model.sample(key, batch)

    key = jax.random.key(seed)
    compiled = eqx.filter_jit(draw).lower(proposal, key).compile()
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(proposal, jax.random.fold_in(key, r)))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# --------------------------------------------------------------------------- symmetric target
class EigenstateTable(eqx.Module):
    """Multi-state target from exact eigenvectors: ``Psi(s^1..s^K) = det[v_j(s^k)]``.

    ``table``: ``(2^N, K)`` real amplitudes in the integer basis of :mod:`nirbench.hamiltonians`.
    """

    table: jax.Array


def table_log_prob(target: EigenstateTable, configs):
    """``log |det[v_j(s^k)]|^2`` for ``configs`` ``(B, K, N)`` -> ``(B,)`` (``-inf`` where it vanishes)."""
    n_sites = configs.shape[-1]
    bits = ((1 - configs.astype(jnp.int32)) // 2).astype(jnp.int64)
    index = jnp.sum(bits * (1 << jnp.arange(n_sites - 1, -1, -1, dtype=jnp.int64)), axis=-1)  # (B, K)
    _, log_abs = slogdet(target.table[index])
    return 2.0 * log_abs


def _eigenstate_target(lx: int, ly: int, k: int, g: float):

    hamiltonian = make_hamiltonian("tfi", lx, ly, "periodic", g=g)
    _, basis, vectors = lowest_levels(hamiltonian, k, return_vectors=True)
    table = np.zeros((2**hamiltonian.n_sites, k))
    table[basis] = np.real(vectors)
    return hamiltonian, EigenstateTable(jnp.asarray(table))


def _check_symmetric(target, group, n_states: int, n_sites: int, key) -> None:
    """``ValueError`` unless ``|Psi|^2`` is invariant under random elements of ``group``."""

    idx = jax.random.randint(key, (256,), 0, 2 ** (n_states * n_sites))
    configs = spins_from_indices(idx, n_states, n_sites)
    elements = jax.random.randint(jax.random.fold_in(key, 1), (256,), 0, group.size)
    p = jnp.exp(table_log_prob(target, configs))
    p_moved = jnp.exp(table_log_prob(target, group.apply(configs, elements)))
    if not np.allclose(np.asarray(p), np.asarray(p_moved), rtol=1e-6, atol=1e-12 * float(jnp.max(p))):
        raise ValueError("the eigenstate target is not invariant under the symmetry group; pick another g or K")


# --------------------------------------------------------------------------- sampling benchmark
def _row(case, tokens, method, batch, seconds, ess=math.nan, n_proposed=math.nan, efficiency=math.nan, notes=""):
    return {
        "case": case, "tokens": tokens, "method": method, "batch": batch, "seconds": seconds,
        "samples_per_second": batch / seconds, "ess": ess, "seconds_per_effective_sample": seconds / ess,
        "n_proposed": n_proposed, "efficiency": efficiency, "notes": notes,
    }  # fmt: skip


def _timed(fn, *args):
    """``(fn(*args), wall seconds)``; ``fn`` returns ``(SampleBatch, ...)``, waited for."""
    start = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out[0].configs)
    return out, time.perf_counter() - start


def _resampled_ess(batch: int, pool_ess: float) -> float:
    return batch * pool_ess / (batch + pool_ess)


def bench_sampling(
    cases=DEFAULT_CASES,
    batch: int = 512,
    g: float = 3.0,
    width: int = 128,
    depth: int = 4,
    kv_repeats: int = 2,
    naive_batch: int = 16,
    naive_repeats: int = 1,
    mcmc_calls: int = 2,
    nir_calls: int = 1,
    pretrain_steps: int = 20,
    pretrain_batch: int = 128,
    symmetry_case: tuple[int, int, int] | None = (3, 2, 2),
    symmetry_g: float = 2.0,
    symmetry_pretrain_steps: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Sampling benchmark (see the module docstring). Returns a DataFrame with :data:`SAMPLING_COLUMNS`.

    The defaults keep a full run near ten minutes on an idle 2-core CPU (float64); raise the
    repeats and calls for tighter numbers.

    Args:
        cases: ``(lx, ly, K)`` triples; default ``T = K * N`` in {18, 48, 192}.
        batch: samples per call ``B`` (paper: 512).
        g: transverse field of the TFI model of the MCMC/NIR rows; ``width``, ``depth``: the MLPs.
        kv_repeats: timed KV-cache sampling runs (median), at ``batch`` and at ``naive_batch``.
        naive_batch, naive_repeats: batch and runs of the naive recompute (slow: ``O(T)`` times the
            work), compared with the KV cache at the same batch.
        mcmc_calls: timed MCMC calls after the first (the first call, 640 warm-up steps from random
            chains, also compiles; its samples join the autocorrelation series, its time does not).
        nir_calls: timed NIR calls after a first (compiling) call.
        pretrain_steps, pretrain_batch: forward-KL pre-training of the proposal on the MCMC samples.
        symmetry_case: ``(lx, ly, K)`` of the symmetric-target comparison, ``None`` to skip it.
        symmetry_g, symmetry_pretrain_steps: its TFI field and proposal pre-training steps.
    """


    cases = tuple(tuple(int(x) for x in case) for case in cases)
    _check_cases(cases)
    if symmetry_case is not None:
        _check_cases([symmetry_case])
        if symmetry_case[0] * symmetry_case[1] * symmetry_case[2] > 20:
            raise ValueError(f"symmetry_case {symmetry_case} needs exact sampling; K * N must be <= 20")
    for name, value in [
        ("batch", batch), ("kv_repeats", kv_repeats), ("naive_batch", naive_batch),
        ("naive_repeats", naive_repeats), ("mcmc_calls", mcmc_calls), ("nir_calls", nir_calls),
        ("pretrain_batch", pretrain_batch), ("width", width), ("depth", depth),
    ]:  # fmt: skip
        check_positive_int(name, value)
    check_positive_int("pretrain_steps", pretrain_steps, minimum=0)
    check_positive_int("symmetry_pretrain_steps", symmetry_pretrain_steps, minimum=0)
    if not g >= 0 or not symmetry_g >= 0:
        raise ValueError(f"the transverse fields must be >= 0, got g={g}, symmetry_g={symmetry_g}")

    rows = []
    key = jax.random.key(seed)
    n_tasks = 4 * len(cases) + (2 if symmetry_case is not None else 0)
    bar = tqdm(total=n_tasks, desc="bench sampling", disable=not progress)
    try:
        for lx, ly, k in cases:
            case, n_sites = _case_name(lx, ly, k), lx * ly
            tokens = k * n_sites
            key, key_prop, key_nqs, key_mcmc, key_nir = jax.random.split(key, 5)
            nir = NIRSampler(batch, k, n_sites)
            # the sampler's own proposal (its defaults: size and precision, float32), as VMC runs use it
            proposal = nir.init(key_prop, k, n_sites).proposal

            bar.set_description(f"{case}: proposal (KV cache)")
            for size in dict.fromkeys([batch, naive_batch]):
                seconds = time_proposal_sampling(proposal, size, naive=False, repeats=kv_repeats, seed=seed)
                rows.append(_row(case, tokens, "proposal_kv", size, seconds, notes=f"median of {kv_repeats}"))
            bar.update()
            bar.set_description(f"{case}: proposal (naive)")
            seconds = time_proposal_sampling(proposal, naive_batch, naive=True, repeats=naive_repeats, seed=seed)
            rows.append(_row(case, tokens, "proposal_naive", naive_batch, seconds, notes=f"median of {naive_repeats}"))
            bar.update()

            hamiltonian = make_hamiltonian("tfi", lx, ly, "periodic", g=g)
            nqs = build_nqs(hamiltonian, "mlp", n_states=k, width=width, depth=depth, key=key_nqs)

            bar.set_description(f"{case}: MCMC")
            # one chain per sample, as documented above (the sampler's own default is 16 chains)
            mcmc = MetropolisSampler(batch, n_chains=batch, n_warmup=640, thinning=10, rule="flip")
            state = mcmc.init(key_mcmc, k, n_sites)
            times, series, samples, acceptance = [], [], [], []
            for call in range(mcmc_calls + 1):
                (out, state, stats), seconds = _timed(
                    mcmc.sample, batched_log_prob, nqs, state, jax.random.fold_in(key_mcmc, call)
                )
                if call > 0:  # the first call compiles
                    times.append(seconds)
                series.append(np.asarray(state.log_probs))  # one sample per chain = the final chain state
                samples.append(out.configs)
                acceptance.append(stats["acceptance"])
            tau = integrated_autocorrelation_time(np.stack(series))
            rows.append(_row(
                case, tokens, "mcmc", batch, float(np.median(times)), ess=batch / tau,
                n_proposed=(640 + 10) * batch, notes=(
                    f"warm-up 640, thinning 10, {batch} chains, width {width} depth {depth} MLPs, g={g:g}; "
                    f"tau(log|Psi|^2) = {tau:.2f} calls over {mcmc_calls + 1} calls; "
                    f"acceptance {np.mean(acceptance):.3f}; median of {mcmc_calls}"
                ),
            ))  # fmt: skip
            bar.update()

            bar.set_description(f"{case}: NIR")
            nir_state = nir.init(key_nir, k, n_sites, proposal=proposal)
            nir_state, losses = nir.pretrain(
                nir_state, jnp.concatenate(samples), key_nir, pretrain_steps, batch_size=pretrain_batch
            )
            times, ess, proposed, efficiency = [], [], [], []
            for call in range(nir_calls + 1):
                (_, nir_state, stats), seconds = _timed(
                    nir.sample, batched_log_prob, nqs, nir_state, jax.random.fold_in(key_nir, call)
                )
                if call > 0:  # the first call compiles
                    times.append(seconds)
                    ess.append(_resampled_ess(batch, stats["ess"]))
                    proposed.append(stats["n_proposed"])
                    efficiency.append(stats["efficiency"])
            trained = f"pre-trained {pretrain_steps} forward-KL steps (batch {pretrain_batch}) on the MCMC samples"
            rows.append(_row(
                case, tokens, "nir", batch, float(np.median(times)), ess=float(np.mean(ess)),
                n_proposed=float(np.mean(proposed)), efficiency=float(np.mean(efficiency)), notes=(
                    f"proposal {trained}" + (f" (loss {losses[-1]:.2f})" if len(losses) else "")
                    + f"; each call includes one proposal training step; ess = B*ESS/(B+ESS); median of {nir_calls}"
                ),
            ))  # fmt: skip
            bar.update()

        if symmetry_case is not None:
            lx, ly, k = symmetry_case
            n_sites = lx * ly
            case = f"{_case_name(lx, ly, k)}_eigenstates_g{symmetry_g:g}"
            bar.set_description(f"{case}: symmetric target")
            hamiltonian, target = _eigenstate_target(lx, ly, k, symmetry_g)
            key, key_prop, key_data, key_run = jax.random.split(key, 4)
            plain = NIRSampler(batch, k, n_sites)
            perms = hamiltonian.lattice.symmetry_group()
            symmetric = NIRSampler(batch, k, n_sites, symmetrize=True, symmetry_perms=perms)
            _check_symmetric(target, symmetric.group(), k, n_sites, key_data)
            _, probs = exact_distribution(table_log_prob, target, k, n_sites)
            picked = multinomial_indices(key_data, jnp.log(probs), 50 * batch)
            state = plain.init(key_prop, k, n_sites)
            state, losses = plain.pretrain(
                state, spins_from_indices(picked, k, n_sites), key_prop, symmetry_pretrain_steps,
                batch_size=pretrain_batch,
            )
            trained = f"pre-trained {symmetry_pretrain_steps} steps (batch {pretrain_batch}) on exact samples" + (
                f" (loss {losses[-1]:.2f})" if len(losses) else ""
            )
            for method, sampler in [("nir_plain", plain), ("nir_symmetrized", symmetric)]:
                times, ess, proposed, efficiency = [], [], [], []
                for call in range(nir_calls + 1):
                    # the state is not advanced: every call uses the identical pre-trained proposal
                    (_, _, stats), seconds = _timed(
                        sampler.sample, table_log_prob, target, state, jax.random.fold_in(key_run, call)
                    )
                    if call > 0:
                        times.append(seconds)
                    ess.append(_resampled_ess(batch, stats["ess"]))
                    proposed.append(stats["n_proposed"])
                    efficiency.append(stats["efficiency"])
                group = f"|G'| = {sampler.group().size}" if sampler.symmetrize else "no symmetrisation"
                rows.append(_row(
                    case, k * n_sites, method, batch, float(np.median(times)), ess=float(np.mean(ess)),
                    n_proposed=float(np.mean(proposed)), efficiency=float(np.mean(efficiency)), notes=(
                        f"target: det of the {k} lowest TFI eigenstates (ED, g={symmetry_g:g}); same proposal, "
                        f"{trained}; {group}; ess = B*ESS/(B+ESS) and efficiency averaged over "
                        f"{nir_calls + 1} calls; time: median of {nir_calls}"
                    ),
                ))  # fmt: skip
                bar.update()
    finally:
        bar.close()
    return pd.DataFrame(rows, columns=SAMPLING_COLUMNS)


# --------------------------------------------------------------------------- VMC step timing
#: columns of the ``nirbench bench vmc`` CSV
VMC_COLUMNS = ["case", "sampler", "optimizer", "batch", "params", "seconds_per_step"]
#: the optimiser settings timed by :func:`bench_vmc`: minSR + Adam, or plain Adam
VMC_OPTIMIZERS = ("minsr", "adam")


def vmc_bench_config(
    optimizer: str = "minsr",
    *,
    lx: int = 4,
    ly: int = 4,
    g: float = 3.0,
    width: int = 128,
    depth: int = 4,
    batch: int = 512,
    n_chains: int = 16,
    sweep_size: int | None = None,
    n_discard_sweeps: int = 40,
    diag_shift: float = 1e-4,
    lr: float = 1e-3,
    seed: int = 0,
):
    """The :class:`~nirbench.vmc.VMCConfig` of the VMC speed benchmark.

    The problem: periodic ``lx x ly`` TFI at field ``g``, one state (K = 1), MLP ``depth x width``
    (LayerNorm + GELU), no symmetries, ``batch`` samples per step from single-spin-flip Metropolis
    set up as NetKet's ``MetropolisLocal(n_chains, sweep_size)`` with ``n_discard_per_chain =
    n_discard_sweeps``: ``n_chains`` persistent chains, ``sweep_size`` (default ``N = lx * ly``)
    proposals between recorded samples and ``n_discard_sweeps * sweep_size`` discarded proposals per
    chain at the start of every step. ``optimizer``: ``"minsr"`` (minSR with ``diag_shift``, then
    Adam) or ``"adam"`` (plain Adam on the energy gradient).
    """

    if optimizer not in VMC_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {VMC_OPTIMIZERS}")
    sweep = lx * ly if sweep_size is None else sweep_size
    for name, value in (("n_chains", n_chains), ("sweep_size", sweep), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(n_discard_sweeps, bool) or not isinstance(n_discard_sweeps, int) or n_discard_sweeps < 0:
        raise ValueError(f"n_discard_sweeps must be an integer >= 0, got {n_discard_sweeps!r}")
    if batch % n_chains:
        raise ValueError(f"batch ({batch}) must be a multiple of n_chains ({n_chains})")
    return VMCConfig(
        model="tfi", lx=lx, ly=ly, bc="periodic", g=float(g), states=1, net="mlp", width=width, depth=depth,
        symmetries=False, sampler="mcmc", batch=batch, mcmc_chains=n_chains,
        mcmc_warmup=n_discard_sweeps * sweep, mcmc_thinning=sweep, minsr=optimizer == "minsr",
        diag_shift=float(diag_shift), lr=float(lr), optimizer="adam", seed=seed,
    )  # fmt: skip


def timed_vmc_step(run) -> float:
    """Wall-clock seconds of one ``run.step()`` (sample -> estimate -> update), everything finished."""

    start = time.perf_counter()
    run.step()
    jax.block_until_ready((run.nqs, run.opt_state, run.sampler_state))
    return time.perf_counter() - start


def bench_vmc(
    n_steps: int = 10,
    n_warmup: int = 2,
    optimizers=VMC_OPTIMIZERS,
    *,
    progress: bool = False,
    **problem,
) -> pd.DataFrame:
    """Seconds per VMC step (:meth:`nirbench.vmc.VMCRun.step`) for each optimiser in ``optimizers``.

    The problem is :func:`vmc_bench_config` with the keyword arguments ``problem`` (defaults: the
    4x4 periodic TFI at g = 3, K = 1, MLP 4 x 128, batch 512, 16 Metropolis chains, sweeps of 16
    flips, 40 discarded sweeps per chain per step). For each optimiser a fresh run takes
    ``n_warmup`` untimed steps (compilation), then ``n_steps`` timed ones; ``seconds_per_step`` is
    their median. Returns one row per optimiser with the columns :data:`VMC_COLUMNS`; ``params``
    counts the NQS's real parameters. The full list of step times is kept in
    ``frame.attrs["step_seconds"]`` (``{optimizer: [...]}``).
    """


    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps (timed steps) must be an integer >= 1, got {n_steps!r}")
    if isinstance(n_warmup, bool) or not isinstance(n_warmup, int) or n_warmup < 0:
        raise ValueError(f"n_warmup (untimed steps) must be an integer >= 0, got {n_warmup!r}")
    optimizers = tuple(optimizers)
    if not optimizers:
        raise ValueError(f"no optimizer given; choose from {VMC_OPTIMIZERS}")
    # every config is validated before any run starts
    configs = {name: vmc_bench_config(name, **problem) for name in optimizers}
    c = next(iter(configs.values()))
    case = f"tfi_{c.lx}x{c.ly}_periodic_g{c.g:g}_k1_mlp{c.depth}x{c.width}"
    sampler = f"mcmc_local_chains{c.mcmc_chains}_sweep{c.mcmc_thinning}_discard{c.mcmc_warmup // c.mcmc_thinning}"
    rows, step_seconds = [], {}
    for name, config in configs.items():
        run = VMCRun(config)
        for _ in range(n_warmup):
            timed_vmc_step(run)
        times = []
        for i in range(n_steps):
            times.append(timed_vmc_step(run))
            if progress:
                print(f"bench vmc {name}: step {i + 1}/{n_steps} {times[-1]:.4f} s", file=sys.stderr, flush=True)
        step_seconds[name] = times
        rows.append({
            "case": case, "sampler": sampler, "optimizer": name, "batch": config.batch,
            "params": count_parameters(run.nqs), "seconds_per_step": float(np.median(times)),
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=VMC_COLUMNS)
    frame.attrs["step_seconds"] = step_seconds
    return frame
