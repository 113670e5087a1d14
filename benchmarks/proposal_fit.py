"""Which proposal training keeps up with an ordering NQS? Proposal variants against one fixed NQS.

The 6x6 open TFI at g = 1, K = 3 (108 tokens) stalled NIR where the NQS orders: the NQS moved
ahead of the proposal and the proposal never caught up, even while the NQS stood still. This
benchmark isolates the proposal: it trains the MCMC run of
``benchmarks/accuracy/tfi6x6open_g1_k3_mcmc.yaml`` (512 chains, as when the stall was recorded)
and keeps its NQS at update ``--before`` and at update ``--target``. Every variant starts from the
same proposal, fitted (forward KL, ``--pretrain-steps`` Adam steps) to Metropolis samples of the
*earlier* NQS, as a proposal that has fallen behind, and then makes ``--calls`` NIR calls against the
*later* NQS, which stays fixed, each ending with the variant's proposal training. One CSV row per
(variant, call): efficiency, proposals drawn, seconds.

Variants: proposal training on the resampled batch (paper, ``batch``) or on fresh minibatches
from the whole weighted proposal set (``proposals``); proposal 32/2/4 or 32/4/4 (embedding,
layers, heads); proposal learning rate 5e-3 or 1e-3; 4 Adam steps per call throughout.

    python benchmarks/proposal_fit.py --out results/benchmarks/proposal_fit.csv \
        --plot figures/benchmarks/proposal_fit.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from nirbench.io import write_csv_atomically
from nirbench.models import batched_log_prob
from nirbench.options import read_options_file
from nirbench.samplers import make_sampler
from nirbench.vmc import VMCConfig, VMCRun

CONFIG = "benchmarks/accuracy/tfi6x6open_g1_k3_mcmc.yaml"
VARIANTS = {  # name: (training, embed_dim, layers, heads, learning rate)
    "batch 32/2/4 lr 5e-3": ("batch", 32, 2, 4, 5e-3),
    "proposals 32/2/4 lr 5e-3": ("proposals", 32, 2, 4, 5e-3),
    "batch 32/4/4 lr 5e-3": ("batch", 32, 4, 4, 5e-3),
    "proposals 32/4/4 lr 5e-3": ("proposals", 32, 4, 4, 5e-3),
    "batch 32/2/4 lr 1e-3": ("batch", 32, 2, 4, 1e-3),
    "proposals 32/2/4 lr 1e-3": ("proposals", 32, 2, 4, 1e-3),
}


def trained_nqs(updates: list[int], checkpoints: Path, run_config: str = CONFIG, **changes) -> dict:
    """The NQS of the Metropolis run of the options file ``run_config`` (512 chains; ``changes``
    override options) at each of ``updates`` (checkpointed under ``checkpoints``, reused)."""
    config = VMCConfig.from_dict({**read_options_file(run_config), "mcmc_chains": 512, "max_minutes": None,
                                  "reference": None, "sampler": "mcmc", **changes})  # fmt: skip
    run = VMCRun(config)
    out = {}
    for update in sorted(updates):
        directory = checkpoints / f"update{update}"
        if not run.load_checkpoint(directory):
            while run.nqs_step < update:
                row = run.step()
                print(f"  MCMC update {row['nqs_step']}: trace {row['energy']:.3f}", flush=True)
            run.save_checkpoint(directory)
        out[update] = run.nqs
    return out, run.hamiltonian


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=int, default=45, help="NQS update the proposal is first fitted to")
    parser.add_argument("--target", type=int, default=60, help="NQS update the variants train against")
    parser.add_argument("--calls", type=int, default=30, help="NIR calls per variant")
    parser.add_argument("--max-rounds", type=int, default=8, help="proposal batches per call at most")
    parser.add_argument("--pretrain-steps", type=int, default=100, help="Adam steps of the common starting proposal")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    parser.add_argument("--out", default="results/benchmarks/proposal_fit.csv")
    parser.add_argument("--plot", default="figures/benchmarks/proposal_fit.png", help="figure (PNG), '' for none")
    args = parser.parse_args()
    checkpoints = Path(args.out).parent / "checkpoints" / "proposal_fit"
    nqs, hamiltonian = trained_nqs([args.before, args.target], checkpoints)
    mcmc = make_sampler("mcmc", hamiltonian, 4096, n_chains=512, n_warmup=400, thinning=10)
    chains = mcmc.init(jax.random.key(0), 3, hamiltonian.n_sites)
    samples, _, _ = mcmc.sample(batched_log_prob, nqs[args.before], chains, jax.random.key(1))
    # rows of the variants not rerun are kept from an earlier run of the same file
    kept = pd.read_csv(args.out) if Path(args.out).exists() else pd.DataFrame(columns=["variant"])
    kept = kept[~kept["variant"].isin(args.variants)]
    rows = kept.to_dict("records")
    for name in args.variants:
        training, dim, layers, heads, lr = VARIANTS[name]
        sampler = make_sampler(
            "nir", hamiltonian, 512, n_states=3, embed_dim=dim, n_layers=layers, n_heads=heads, learning_rate=lr,
            train_steps=4, training=training, alpha_eff=0.0, max_rounds=args.max_rounds,
        )  # fmt: skip
        state = sampler.init(jax.random.key(2), 3, hamiltonian.n_sites)
        state, _ = sampler.pretrain(state, samples.configs, jax.random.key(3), args.pretrain_steps)
        drawn = 0
        for call, key in enumerate(jax.random.split(jax.random.key(4), args.calls)):
            start = time.perf_counter()
            _, state, stats = sampler.sample(batched_log_prob, nqs[args.target], state, key)
            drawn += stats["n_proposed"]
            rows.append({
                "variant": name, "training": training, "proposal": f"{dim}/{layers}/{heads}", "proposal_lr": lr,
                "call": call, "efficiency": stats["efficiency"], "ess": stats["ess"],
                "n_proposed": stats["n_proposed"], "proposals_drawn": drawn, "seconds": time.perf_counter() - start,
            })  # fmt: skip
        last = pd.DataFrame(rows[-5:])
        print(f"{name:28s} efficiency: first {rows[-args.calls]['efficiency']:.3f}, mean of the last 5 "
              f"{last['efficiency'].mean():.3f}", flush=True)
        write_csv_atomically(pd.DataFrame(rows), args.out)
    if args.plot:
        plot(pd.DataFrame(rows), args.plot)
    print(f"wrote {args.out}")


def plot(frame: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    colors = {"batch": "#c0504d", "proposals": "#1f77b4"}
    styles = {("32/2/4", 5e-3): "-", ("32/4/4", 5e-3): "--", ("32/2/4", 1e-3): ":"}
    for name, group in frame.groupby("variant", sort=False):
        first = group.iloc[0]
        ax.plot(group["proposals_drawn"] / 1e3, group["efficiency"], color=colors[first["training"]],
                linestyle=styles.get((first["proposal"], first["proposal_lr"]), "-."), label=name)
    ax.set_xlabel("proposals drawn (thousands)")
    ax.set_ylabel("efficiency ESS / n_proposed")
    ax.set_ylim(bottom=0)
    ax.set_title("6x6 open TFI, g = 1, K = 3: proposals catching up with a fixed NQS", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
