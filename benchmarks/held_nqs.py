"""Why does NIR's efficiency fall while the NQS stands still? The proposal against one held NQS.

In the recipe's 6x6 run at g = 0.1 (docs/nir-keeping-up.md, "The patched recipe on every run the
issue asks for") the NQS was held for 18 iterations (60-77) while the proposal retrained, and the
efficiency fell from 0.025 to 0.0003 before it recovered. Two readings fit: the proposal's
training on proposal sets of a small ESS moves it *away* from ``|Psi|^2`` (the weighted minibatches
repeat a handful of tuples), or the proposal does not get worse and the weights are heavy-tailed,
so that the ESS of one call is set by the rare largest weight and scatters from call to call.

This benchmark tells them apart. From a checkpoint of a NIR run (``--checkpoint``, a directory that
``nirbench vmc --checkpoint-dir`` wrote) it holds the NQS and makes ``--calls`` NIR calls with two
samplers that start from the same proposal and use the same keys: ``trained``, the run's sampler
as configured (its proposal training between calls, as in the run), and ``frozen``, the same
sampler without training (and, with ``--train-ess``, the run's sampler with its training weights
tempered, option ``proposal_train_ess``). Per call: the efficiency and ESS, the largest normalised weight, the
mean ``log w = log |Psi|^2 - log q`` over the proposals of non-zero weight (with the NQS held,
``-KL(q || p)`` up to a constant) and the fraction of zero weight (tuples repeating a
configuration), and the negative log-likelihood of the proposal that drew the call on ``--samples``
Metropolis samples of the held NQS, fixed for the whole benchmark (with the NQS held,
``KL(p || q)`` up to a constant: the proposal's fit, apart from any ESS). If the frozen proposal's
efficiency scatters as widely as the trained one's, the dips are the weights' tail; if the trained
proposal's held-out NLL rises while its efficiency falls, the training moves it away.
``--variants`` picks which of them run; rows of the others already in ``--out`` are kept.

    python benchmarks/held_nqs.py --checkpoint DIR --out results/benchmarks/held_nqs.csv

The Metropolis samples (512 chains, warm-up 400, thinning 10) are a sample of ``|Psi|^2`` only
while the chains mix: in an ordered state with few sectors visited the NLL still compares the two
proposals on one fixed set, but is no longer ``KL(p || q)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from proposal_capacity import nqs_log_probs, proposal_log_probs

from nirbench.io import write_csv_atomically
from nirbench.models import batched_log_prob
from nirbench.samplers import make_sampler
from nirbench.vmc import VMCRun


def call_row(run: VMCRun, sampler, state, key, reference) -> tuple[dict, object]:
    """One NIR call of ``sampler`` from ``state`` on the run's (held) NQS: ``(row, new state)``.

    ``reference``: Metropolis samples ``(M, K, N)`` of the NQS; the row's ``heldout_nll`` is that of
    the proposal which drew this call (before the call's training)."""
    heldout_nll = -float(np.mean(proposal_log_probs(state.proposal, reference)))
    start = time.perf_counter()
    batch, new_state, stats = sampler.sample(run.log_prob_fn, run.nqs, state, key)
    seconds = time.perf_counter() - start
    n = stats["n_proposed"]
    configs, log_q = np.asarray(batch.proposal_configs[:n]), np.asarray(batch.proposal_log_q[:n])
    log_w = nqs_log_probs(run.nqs, configs) - log_q
    possible = np.isfinite(log_w)  # a tuple that repeats a configuration has |Psi|^2 = 0
    shares = np.exp(log_w[possible] - log_w[possible].max())
    row = {
        "efficiency": stats["efficiency"], "ess": stats["ess"], "n_proposed": n,
        "max_weight_share": float(shares.max() / shares.sum()), "mean_log_weight": float(log_w[possible].mean()),
        "zero_weight_fraction": float(1 - possible.mean()),
        "heldout_nll": heldout_nll, "train_steps": stats["train_steps"], "train_beta": stats["train_beta"],
        "seconds": seconds,
    }  # fmt: skip
    return row, new_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint directory of a NIR run (nirbench vmc --checkpoint-dir)")
    parser.add_argument("--calls", type=int, default=12, help="NIR calls per sampler with the NQS held")
    parser.add_argument("--samples", type=int, default=4096, help="Metropolis samples of the held NQS")
    parser.add_argument("--variants", nargs="*", default=["trained", "frozen"], choices=["trained", "frozen"],
                        help="which of the run's sampler and its frozen copy to run")  # fmt: skip
    parser.add_argument("--train-ess", type=float, nargs="*", default=[],
                        help="also the run's sampler with its training weights tempered to this ESS (units of "
                             "batch; option proposal_train_ess), one variant each")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/benchmarks/held_nqs.csv")
    parser.add_argument("--plot", default="figures/benchmarks/held_nqs.png", help="figure (PNG), '' for none")
    parser.add_argument("--replot", action="store_true", help="only draw the figure from --out")
    args = parser.parse_args()
    if args.replot:
        plot(pd.read_csv(args.out), args.plot)
        return
    if args.checkpoint is None:
        parser.error("--checkpoint is required (unless --replot)")
    run = VMCRun.from_checkpoint(args.checkpoint)
    if run.config.sampler != "nir":
        raise SystemExit(f"{args.checkpoint}: a {run.config.sampler} run; this benchmark needs a NIR run")
    c = run.config
    system = f"{c.lx}x{c.ly} {c.bc} {c.model.upper()}, g = {c.g:g}, K = {c.states}"
    key = jax.random.key(args.seed)
    mcmc = make_sampler("mcmc", run.hamiltonian, args.samples, n_chains=512, n_warmup=400, thinning=10)
    chains = mcmc.init(jax.random.fold_in(key, 0), run.config.states, run.hamiltonian.n_sites)
    samples, _, stats = mcmc.sample(batched_log_prob, run.nqs, chains, jax.random.fold_in(key, 1))
    reference = np.asarray(samples.configs)
    print(f"{args.samples} Metropolis samples of the held NQS: acceptance {stats['acceptance']:.3f}", flush=True)
    variants = [(name, sampler) for name, sampler in (("trained", run.sampler), ("frozen", run.sampler.frozen()))
                if name in args.variants]  # fmt: skip
    variants += [(f"trained, train_ess {r:g}", dataclasses.replace(run.sampler, train_ess=r)) for r in args.train_ess]
    kept = pd.read_csv(args.out) if Path(args.out).exists() else pd.DataFrame(columns=["variant"])
    rows = kept[~kept["variant"].isin([name for name, _ in variants])].to_dict("records")
    for variant, sampler in variants:
        state = run.sampler_state
        for call in range(args.calls):
            row, state = call_row(run, sampler, state, jax.random.fold_in(key, 100 + call), reference)
            rows.append({"system": system, "checkpoint": str(args.checkpoint), "iteration": run.iteration,
                         "nqs_step": run.nqs_step, "variant": variant, "call": call, **row})  # fmt: skip
            print(f"{variant} call {call}: efficiency {row['efficiency']:.4f}, largest weight "
                  f"{row['max_weight_share']:.3f}, mean log w {row['mean_log_weight']:.2f}, held-out NLL "
                  f"{row['heldout_nll']:.3f}, {row['seconds']:.0f} s", flush=True)  # fmt: skip
            write_csv_atomically(pd.DataFrame(rows), args.out)
    print(f"wrote {args.out}")
    if args.plot:
        plot(pd.DataFrame(rows), args.plot)


def plot(frame: pd.DataFrame, path: str) -> None:
    """Efficiency and held-out NLL against call, trained and frozen proposal side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_eff, ax_nll) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for variant, group in frame.groupby("variant", sort=False):
        ax_eff.plot(group["call"], group["efficiency"], marker="o", markersize=3, label=variant)
        ax_nll.plot(group["call"], group["heldout_nll"], marker="o", markersize=3, label=variant)
    ax_eff.set_yscale("log")
    ax_eff.set_ylabel("efficiency ESS / n_proposed")
    ax_nll.set_ylabel("held-out NLL of the proposal (nats per tuple)")
    for ax in (ax_eff, ax_nll):
        ax.set_xlabel("NIR call with the NQS held")
        ax.legend(fontsize=7, frameon=False)
    first = frame.iloc[0]
    fig.suptitle(f"{first['system']}: the proposal against the NQS held at update {first['nqs_step']} "
                 f"(run iteration {first['iteration']})", fontsize=9)  # fmt: skip
    fig.tight_layout(w_pad=2.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
