"""Can the proposal represent an ordering NQS at all? Proposals fitted to samples of the NQS itself.

The proposal-fit benchmark (``benchmarks/proposal_fit.py``) showed that on 6x6 open TFI at g = 1,
K = 3 (108 tokens) no proposal training caught up with an NQS 15 updates ahead: efficiency
0.001-0.009 after 120 Adam steps. Two causes would both give that: the *training signal* (the
forward KL is estimated from the proposal's own draws, whose overlap with the NQS is a handful of
configurations) or the proposal's *capacity and optimisation* (it cannot fit the distribution in
that many steps whatever the samples). This benchmark separates them: it fits fresh proposals by
maximum likelihood to Metropolis samples of the target NQS itself (the signal NIR's training could
at best approach) and measures NIR's efficiency against that NQS after each block of Adam steps,
with the frozen sampler. If the efficiency stays low, the proposal cannot represent the target in
that many steps, and no change to what it trains on can help; if it rises well above ``alpha_eff``,
the training signal is the bottleneck.

The NQS is that of ``benchmarks/proposal_fit.py`` (the Metropolis run of
``benchmarks/accuracy/tfi6x6open_g1_k3_mcmc.yaml`` at update ``--target``, checkpointed beside the
output and shared with that benchmark). Variants: the proposal's size (32/2/4, the recipe's; 32/4/4, the
paper's; 64/2/4, twice as wide), its form (the paper's joint Transformer over the 108 tokens of a
tuple, or the product of one 36-token Transformer over the three configurations,
``proposal_factorization="product"``), its Adam learning rate and the tuples per Adam step; every variant sees the same number of
training tuples per block (``--blocks``, in units of 512). One CSV row per (variant, block):
efficiency (mean over ``--calls`` frozen NIR calls of at most 8 batches of 512), the mean training
loss over the block (negative log-likelihood per tuple, block-permuted) and the negative
log-likelihood of 2048 held-out samples (uniform: 108 ln 2 = 74.86), with the seconds since the
variant started.

    python benchmarks/proposal_capacity.py --out results/benchmarks/proposal_capacity.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from proposal_fit import trained_nqs

from nirbench.io import write_csv_atomically
from nirbench.models import batched_log_prob
from nirbench.proposal import spins_to_tokens
from nirbench.samplers import make_sampler

VARIANTS = {  # name: (embed_dim, layers, heads, Adam learning rate, tuples per Adam step, factorization, patch)
    "32/2/4 lr 3e-3": (32, 2, 4, 3e-3, 512, "joint", 1),
    "32/4/4 lr 3e-3": (32, 4, 4, 3e-3, 512, "joint", 1),
    "64/2/4 lr 3e-3": (64, 2, 4, 3e-3, 512, "joint", 1),
    "32/2/4 lr 1e-2": (32, 2, 4, 1e-2, 512, "joint", 1),
    "32/2/4 lr 3e-3 minibatch 128": (32, 2, 4, 3e-3, 128, "joint", 1),
    "32/2/4 lr 1e-2 minibatch 128": (32, 2, 4, 1e-2, 128, "joint", 1),
    # one 36-token Transformer for a single configuration, q = prod_k q1(s_k) (ProductProposal)
    "product 32/2/4 lr 3e-3": (32, 2, 4, 3e-3, 512, "product", 1),
    # patches of p spins of one row as one token of 2^p values (PatchedProposal): 108 / p positions
    "patch 3 32/2/4 lr 3e-3": (32, 2, 4, 3e-3, 512, "joint", 3),
    "patch 6 32/2/4 lr 3e-3": (32, 2, 4, 3e-3, 512, "joint", 6),
    "patch 6 64/2/4 lr 3e-3": (64, 2, 4, 3e-3, 512, "joint", 6),
    "patch 6 64/2/4 lr 1e-3": (64, 2, 4, 1e-3, 512, "joint", 6),
    "patch 6 128/2/8 lr 1e-3": (128, 2, 8, 1e-3, 512, "joint", 6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=int, default=60, help="NQS update of the Metropolis run to fit")
    parser.add_argument("--samples", type=int, default=16384, help="Metropolis samples to train on")
    parser.add_argument("--blocks", type=int, nargs="+", default=[0, 50, 100, 200, 400, 800],
                        help="cumulative tuples trained on, in units of 512, after which the efficiency is "
                             "measured (Adam steps for a minibatch of 512)")  # fmt: skip
    parser.add_argument("--calls", type=int, default=3, help="frozen NIR calls per measurement")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS)[:2], choices=list(VARIANTS), metavar="NAME"
    )
    parser.add_argument("--out", default="results/benchmarks/proposal_capacity.csv")
    parser.add_argument(
        "--plot", default="figures/benchmarks/proposal_capacity.png", help="figure (PNG), '' for none"
    )
    parser.add_argument("--replot", action="store_true", help="only draw the figure from --out")
    args = parser.parse_args()
    if args.replot:
        plot(pd.read_csv(args.out), args.plot)
        return
    checkpoints = Path(args.out).parent / "checkpoints" / "proposal_fit"
    nqs, hamiltonian = trained_nqs([args.target], checkpoints)
    target = nqs[args.target]
    n_heldout = 2048
    mcmc = make_sampler(
        "mcmc", hamiltonian, args.samples + n_heldout, n_chains=512, n_warmup=400, thinning=10
    )
    chains = mcmc.init(jax.random.key(0), 3, hamiltonian.n_sites)
    samples, _, stats = mcmc.sample(batched_log_prob, target, chains, jax.random.key(1))
    print(f"Metropolis samples of NQS update {args.target}: acceptance {stats['acceptance']:.3f}", flush=True)
    train, heldout = samples.configs[:-n_heldout], samples.configs[-n_heldout:]
    # rows of the variants not rerun are kept from an earlier run of the same file
    kept = pd.read_csv(args.out) if Path(args.out).exists() else pd.DataFrame(columns=["variant"])
    if "factorization" not in kept.columns:  # rows written before the product variant existed
        kept["factorization"] = "joint"
    if "patch" not in kept.columns:  # rows written before the patched variants existed
        kept["patch"] = 1
    rows = kept[~kept["variant"].isin(args.variants)].to_dict("records")
    for name in args.variants:
        dim, layers, heads, lr, minibatch, factorization, patch = VARIANTS[name]
        sampler = make_sampler(
            "nir", hamiltonian, 512, n_states=3, embed_dim=dim, n_layers=layers, n_heads=heads,
            learning_rate=lr, alpha_eff=0.0, max_rounds=8, proposal_factorization=factorization,
            proposal_patch=patch,
        )  # fmt: skip
        frozen = sampler.frozen()
        state = sampler.init(jax.random.key(2), 3, hamiltonian.n_sites)
        done, key, start = 0, jax.random.key(3), time.perf_counter()
        for block in args.blocks:
            key, key_train = jax.random.split(key)
            steps = (block - done) * 512 // minibatch
            state, losses = sampler.pretrain(state, train, key_train, steps, batch_size=minibatch)
            done = block
            efficiencies = []
            for call_key in jax.random.split(jax.random.fold_in(key, 7), args.calls):
                _, _, call = frozen.sample(batched_log_prob, target, state, call_key)
                efficiencies.append(call["efficiency"])
            heldout_nll = -float(jnp.mean(state.proposal.log_prob_batch(spins_to_tokens(heldout))))
            rows.append({
                "variant": name, "proposal": f"{dim}/{layers}/{heads}", "factorization": factorization,
                "patch": patch, "proposal_lr": lr, "minibatch": minibatch,
                "tuples_trained": block * 512, "adam_steps": block * 512 // minibatch,
                "efficiency": float(np.mean(efficiencies)), "efficiency_min": float(np.min(efficiencies)),
                "efficiency_max": float(np.max(efficiencies)),
                "train_nll": float(np.mean(losses)) if len(losses) else float("nan"), "heldout_nll": heldout_nll,
                "seconds": time.perf_counter() - start,
            })  # fmt: skip
            print(f"{name} after {block * 512:6d} tuples: efficiency {rows[-1]['efficiency']:.4f} "
                  f"(min {rows[-1]['efficiency_min']:.4f}), held-out NLL {heldout_nll:.2f}, "
                  f"{rows[-1]['seconds']:.0f} s", flush=True)  # fmt: skip
            write_csv_atomically(pd.DataFrame(rows), args.out)
    print(f"wrote {args.out}")
    if args.plot:
        plot(pd.DataFrame(rows), args.plot)


def plot(frame: pd.DataFrame, path: str) -> None:
    """Efficiency against training tuples, one line per variant (the min-max of the calls shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for name, group in frame.groupby("variant", sort=False):
        x = group["tuples_trained"] / 1e3
        (line,) = ax.plot(x, group["efficiency"], marker="o", markersize=3, label=name)
        ax.fill_between(
            x, group["efficiency_min"], group["efficiency_max"], color=line.get_color(), alpha=0.15
        )
    ax.set_xlabel("tuples trained on (thousands; 512 per Adam step)")
    save_efficiency_figure(fig, ax, "proposals fitted to samples of the NQS itself", path)


def save_efficiency_figure(fig, ax, title: str, path: str) -> None:
    """The efficiency axes of the proposal-fit figures (log scale, the paper's gate drawn), saved."""
    ax.axhline(0.1, color="0.4", linestyle="--", linewidth=0.8)
    ax.text(0, 0.105, "alpha_eff = 0.1 (paper's gate)", fontsize=7, color="0.3", va="bottom")
    ax.set_yscale("log")
    ax.set_ylabel("efficiency ESS / n_proposed")
    ax.set_title(f"6x6 open TFI, g = 1, K = 3: {title}", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
