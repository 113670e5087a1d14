"""Proposal sizes against one fixed NQS: the measurement behind table 1.

The paper's table 1 reports NIR's sampling efficiency for several Transformer proposal sizes, each
from its own VMC run. In runs of equal wall time the sizes also make different numbers of NQS
updates, so the NQS each proposal had to follow differs, and size and training progress are mixed.
Here the NQS is held fixed (a checkpoint) and every size starts from a fresh proposal and gets the
same training budget against it:

1. ``calls`` NIR calls on the fixed NQS, each ending with ``train_steps`` Adam steps of the
   proposal (the run's proposal options otherwise: loss, training set, learning rate, heads);
2. the trained proposal, frozen, draws ``efficiency_calls`` batches: the efficiency
   ``ESS / n_proposed`` of each (mean and its standard error over the calls);
3. the energy of the fixed NQS estimated with that frozen proposal from at least ``samples``
   samples (:func:`nirbench.evaluation.evaluate`, no retraining): every size measures the same
   energy, so the values should agree within their error bars, which shrink as the efficiency
   rises (a proposal far from the NQS, with few distinct heavy proposals, can understate its own).

Every size uses the same random keys, so the comparison is paired. Sizes are ``(embed_dim,
n_layers)`` pairs; ``embed_dim`` must be a multiple of the run's ``proposal_heads``.
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np
import pandas as pd
from tqdm import tqdm

from nirbench.evaluation import evaluate
from nirbench.samplers.base import check_positive_int
from nirbench.samplers.nir import MAX_TRAIN_STEPS
from nirbench.updates import count_parameters

__all__ = ["ablate_proposal_sizes", "parse_size"]


def parse_size(text: str) -> tuple[int, int]:
    """``"16x2"`` -> ``(16, 2)`` (embedding width x layers); ``ValueError`` naming the text otherwise."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"a proposal size is EMBEDxLAYERS, e.g. 16x2, got {text!r}")
    return int(parts[0]), int(parts[1])


def _check(run, sizes, calls, train_steps, efficiency_calls, samples) -> None:
    if not sizes:
        raise ValueError("give at least one proposal size")
    heads = run.config.proposal_heads
    for dim, layers in sizes:
        if dim < 1 or layers < 1 or dim % heads:
            raise ValueError(
                f"proposal size {dim}x{layers}: the embedding must be a positive multiple of the run's "
                f"proposal_heads ({heads}) and the layers >= 1"
            )
    check_positive_int("calls", calls)
    check_positive_int("efficiency_calls", efficiency_calls)
    check_positive_int("samples", samples)
    check_positive_int("train_steps", train_steps)
    if train_steps > MAX_TRAIN_STEPS:
        raise ValueError(f"train_steps must be at most {MAX_TRAIN_STEPS}, got {train_steps}")


def ablate_proposal_sizes(
    run,
    sizes,
    calls: int = 60,
    train_steps: int = 4,
    efficiency_calls: int = 10,
    samples: int = 2048,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train a fresh proposal of every size against ``run``'s NQS (which stays fixed) and measure it.

    Args:
        run: a :class:`nirbench.vmc.VMCRun` (usually ``VMCRun.from_checkpoint``); its NIR options
            give everything but the size and the Adam steps per call, whatever sampler it trained with.
        sizes: ``(embed_dim, n_layers)`` pairs.
        calls: NIR calls (each followed by proposal training) per size, >= 1.
        train_steps: proposal Adam steps per call (the same whatever the efficiency), 1 to
            :data:`nirbench.samplers.nir.MAX_TRAIN_STEPS`.
        efficiency_calls: frozen calls that measure the trained proposal's efficiency, >= 1.
        samples: samples of the energy estimate, >= 1.
        seed: the random keys (the same for every size).

    Returns ``(sizes_table, calls_table)``. ``sizes_table``: one row per size with ``d_embd,
    n_layer, n_param, calls, train_steps, proposals`` (drawn in training), ``train_seconds``,
    ``efficiency, efficiency_sigma`` (frozen calls), ``energy, energy_sigma, energy_per_site,
    energy_per_site_sigma, eval_efficiency, eval_ess, eval_samples`` and the fixed NQS's
    ``nqs_step``. ``calls_table``: ``d_embd, n_layer, call, efficiency, n_proposed, seconds`` per
    training call. ``ValueError`` before any computation on bad input.
    """
    sizes = [tuple(int(v) for v in size) for size in sizes]
    _check(run, sizes, calls, train_steps, efficiency_calls, samples)
    n_sites = run.hamiltonian.n_sites
    key_init, key_train, key_measure, key_energy = jax.random.split(jax.random.PRNGKey(seed), 4)
    size_rows, call_rows = [], []
    bar = tqdm(total=len(sizes) * calls, disable=not progress, desc="proposal sizes", unit="call")
    for dim, layers in sizes:
        sampler, state = run.make_sampler(
            "nir", run.config.batch, key_init, proposal_dim=dim, proposal_layers=layers,
            proposal_train_steps=train_steps, proposal_retrain_steps=None,
        )  # fmt: skip
        start, proposals = time.perf_counter(), 0
        for call in range(calls):
            tick = time.perf_counter()
            _, state, stats = run.draw(sampler, state, jax.random.fold_in(key_train, call))
            proposals += int(stats["n_proposed"])
            call_rows.append({
                "d_embd": dim, "n_layer": layers, "call": call + 1, "efficiency": float(stats["efficiency"]),
                "n_proposed": int(stats["n_proposed"]), "seconds": time.perf_counter() - tick,
            })  # fmt: skip
            bar.update()
            bar.set_postfix(size=f"{dim}x{layers}", eff=f"{float(stats['efficiency']):.3f}")
        train_seconds = time.perf_counter() - start
        frozen = sampler.frozen()
        measured, frozen_state = [], state
        for call in range(efficiency_calls):
            _, frozen_state, stats = run.draw(frozen, frozen_state, jax.random.fold_in(key_measure, call))
            measured.append(float(stats["efficiency"]))
        energy = evaluate(run, samples, key_energy, sampler=sampler, sampler_state=state, max_retrains=0)
        size_rows.append({
            **run.hamiltonian.describe(), "states": run.config.states, "nqs_step": run.nqs_step,
            "d_embd": dim, "n_layer": layers, "n_param": count_parameters(state.proposal),
            "calls": calls, "train_steps": train_steps, "proposals": proposals, "train_seconds": train_seconds,
            "efficiency": float(np.mean(measured)),
            "efficiency_sigma": float(np.std(measured, ddof=1) / math.sqrt(len(measured))) if len(measured) > 1 else math.nan,
            "energy": energy["energy"], "energy_sigma": energy["energy_sigma"],
            "energy_per_site": energy["energy"] / n_sites, "energy_per_site_sigma": energy["energy_sigma"] / n_sites,
            "eval_efficiency": energy["eval_efficiency"], "eval_ess": energy["eval_ess"],
            "eval_samples": energy["eval_samples"],
        })  # fmt: skip
    bar.close()
    return pd.DataFrame(size_rows), pd.DataFrame(call_rows)
