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
``proposal_factorization="product"``), its tokens (one spin each, or patches of ``p`` spins of a
row as one of ``2**p`` values, ``proposal_patch``), its Adam learning rate, the tuples per Adam step,
and its loss (maximum likelihood, or with a regression of ``log q`` on the NQS's exact
``log |Psi|^2`` of the same samples added, :func:`fit_with_log_ratios`); every variant sees the same
number of training tuples per block (``--blocks``, in units of 512). One CSV row per (variant,
block): efficiency (mean over ``--calls`` frozen NIR calls of at most 8 batches of 512), the mean
training loss over the block (negative log-likelihood per tuple, block-permuted, plus the
regression term where there is one), the negative log-likelihood of 2048 held-out samples
(uniform: 108 ln 2 = 74.86) and the standard deviation of ``log |Psi|^2 - log q`` on them, with the
seconds since the variant started. ``--features-out`` adds a CSV of which structure (magnetisations,
sites, bonds, all pairs) explains each variant's final misfit (:func:`misfit_features`).

    python benchmarks/proposal_capacity.py --out results/benchmarks/proposal_capacity.csv

``--run-config FILE --lattice LxL --g G`` fits the NQS of another Metropolis run instead (a recipe
file with an open lattice, K = 3 and the field; its own checkpoints), for example the recipe's at
g = 0.1 (docs/nir-keeping-up.md, "The patched recipe on every run the issue asks for").
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from proposal_fit import CONFIG, trained_nqs

from nirbench.io import write_csv_atomically
from nirbench.models import batched_log_prob
from nirbench.proposal import apply_grads, make_proposal_optimizer, random_block_permutation, spins_to_tokens
from nirbench.samplers import make_sampler


class Variant(NamedTuple):
    """A proposal and how it is fitted: size (embedding / layers / heads), Adam learning rate, tuples
    per Adam step, form over the tuple, spins per token, and the weight ``lam`` of the log-ratio
    regression added to the negative log-likelihood (``0``: maximum likelihood, NIR's forward KL)."""

    embed_dim: int
    layers: int
    heads: int
    lr: float
    minibatch: int = 512
    factorization: str = "joint"
    patch: int = 1
    log_ratio_weight: float = 0.0


VARIANTS = {
    "32/2/4 lr 3e-3": Variant(32, 2, 4, 3e-3),
    "32/4/4 lr 3e-3": Variant(32, 4, 4, 3e-3),
    "64/2/4 lr 3e-3": Variant(64, 2, 4, 3e-3),
    "32/2/4 lr 1e-2": Variant(32, 2, 4, 1e-2),
    "32/2/4 lr 3e-3 minibatch 128": Variant(32, 2, 4, 3e-3, 128),
    "32/2/4 lr 1e-2 minibatch 128": Variant(32, 2, 4, 1e-2, 128),
    # one 36-token Transformer for a single configuration, q = prod_k q1(s_k) (ProductProposal)
    "product 32/2/4 lr 3e-3": Variant(32, 2, 4, 3e-3, factorization="product"),
    # the NQS's exact log |Psi|^2 on the samples used as well: NLL + lam Var(log q - log |Psi|^2) / 2
    "32/2/4 lr 3e-3 log-ratio 1": Variant(32, 2, 4, 3e-3, log_ratio_weight=1.0),
    # patches of p spins of one row as one token of 2^p values (PatchedProposal): 108 / p positions
    "patch 3 32/2/4 lr 3e-3": Variant(32, 2, 4, 3e-3, patch=3),
    "patch 6 32/2/4 lr 3e-3": Variant(32, 2, 4, 3e-3, patch=6),
    "patch 6 64/2/4 lr 1e-3": Variant(64, 2, 4, 1e-3, patch=6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=int, default=60, help="NQS update of the Metropolis run to fit")
    parser.add_argument("--run-config", default=CONFIG,
                        help="options file of the Metropolis run whose NQS is fitted (a recipe with --lattice and --g)")  # fmt: skip
    parser.add_argument("--lattice", default=None, help="LxL open lattice for --run-config (a recipe sets none)")
    parser.add_argument("--g", type=float, default=None, help="field for --run-config")
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
    parser.add_argument("--features-out", default="",
                        help="CSV of what explains each variant's final misfit log(|Psi|^2 / q) (misfit_features); '' for none")  # fmt: skip
    parser.add_argument("--replot", action="store_true", help="only draw the figure from --out")
    args = parser.parse_args()
    if args.replot:
        plot(pd.read_csv(args.out), args.plot)
        return
    changes = {} if args.g is None else {"g": args.g}
    if args.lattice is not None:
        lx, ly = map(int, args.lattice.split("x"))
        changes |= {"model": "tfi", "lx": lx, "ly": ly, "bc": "open", "states": 3}
    name = "proposal_fit" if args.run_config == CONFIG and not changes else f"{Path(args.run_config).stem}_{args.lattice}_g{args.g}"
    nqs, hamiltonian = trained_nqs([args.target], Path(args.out).parent / "checkpoints" / name, args.run_config, **changes)
    target = nqs[args.target]
    n_heldout = 2048
    mcmc = make_sampler(
        "mcmc", hamiltonian, args.samples + n_heldout, n_chains=512, n_warmup=400, thinning=10
    )
    chains = mcmc.init(jax.random.key(0), 3, hamiltonian.n_sites)
    samples, _, stats = mcmc.sample(batched_log_prob, target, chains, jax.random.key(1))
    print(f"Metropolis samples of NQS update {args.target}: acceptance {stats['acceptance']:.3f}", flush=True)
    train, heldout = samples.configs[:-n_heldout], samples.configs[-n_heldout:]
    # the NQS is fixed: its log |Psi|^2 on the samples, once
    train_log_p, heldout_log_p = nqs_log_probs(target, train), nqs_log_probs(target, heldout)
    # rows of the variants not rerun are kept from an earlier run of the same file
    kept = pd.read_csv(args.out) if Path(args.out).exists() else pd.DataFrame(columns=["variant"])
    for column, before in (("factorization", "joint"), ("patch", 1), ("log_ratio_weight", 0.0), ("samples", 16384)):
        if column not in kept.columns:  # rows written before the column existed
            kept[column] = before
    rows = kept[~kept["variant"].isin(args.variants)].to_dict("records")
    feature_rows = []
    for name in args.variants:
        v = VARIANTS[name]
        sampler = make_sampler(
            "nir", hamiltonian, 512, n_states=3, embed_dim=v.embed_dim, n_layers=v.layers, n_heads=v.heads,
            learning_rate=v.lr, alpha_eff=0.0, max_rounds=8, proposal_factorization=v.factorization,
            proposal_patch=v.patch,
        )  # fmt: skip
        frozen = sampler.frozen()
        state = sampler.init(jax.random.key(2), 3, hamiltonian.n_sites)
        done, key, start = 0, jax.random.key(3), time.perf_counter()
        for block in args.blocks:
            key, key_train = jax.random.split(key)
            steps = (block - done) * 512 // v.minibatch
            if v.log_ratio_weight:
                state, losses = fit_with_log_ratios(sampler, state, train, train_log_p, key_train, steps, v)
            else:
                state, losses = sampler.pretrain(state, train, key_train, steps, batch_size=v.minibatch)
            done = block
            efficiencies = []
            for call_key in jax.random.split(jax.random.fold_in(key, 7), args.calls):
                _, _, call = frozen.sample(batched_log_prob, target, state, call_key)
                efficiencies.append(call["efficiency"])
            heldout_nll = -float(jnp.mean(state.proposal.log_prob_batch(spins_to_tokens(heldout))))
            rows.append({
                "variant": name, "proposal": f"{v.embed_dim}/{v.layers}/{v.heads}",
                "factorization": v.factorization, "patch": v.patch, "log_ratio_weight": v.log_ratio_weight,
                "proposal_lr": v.lr, "minibatch": v.minibatch, "samples": args.samples,
                "tuples_trained": block * 512, "adam_steps": block * 512 // v.minibatch,
                "efficiency": float(np.mean(efficiencies)), "efficiency_min": float(np.min(efficiencies)),
                "efficiency_max": float(np.max(efficiencies)),
                "train_nll": float(np.mean(losses)) if len(losses) else float("nan"), "heldout_nll": heldout_nll,
                "heldout_std_log_ratio": float(np.std(heldout_log_p - proposal_log_probs(state.proposal, heldout))),
                "seconds": time.perf_counter() - start,
            })  # fmt: skip
            print(f"{name} after {block * 512:6d} tuples: efficiency {rows[-1]['efficiency']:.4f} "
                  f"(min {rows[-1]['efficiency_min']:.4f}), held-out NLL {heldout_nll:.2f}, "
                  f"std log(p/q) {rows[-1]['heldout_std_log_ratio']:.2f}, {rows[-1]['seconds']:.0f} s", flush=True)  # fmt: skip
            write_csv_atomically(pd.DataFrame(rows), args.out)
        if args.features_out:
            feature_rows += misfit_features(state.proposal, train, heldout, train_log_p, heldout_log_p, name)
            write_csv_atomically(pd.DataFrame(feature_rows), args.features_out)
    print(f"wrote {args.out}")
    if args.plot:
        plot(pd.DataFrame(rows), args.plot)


def nqs_log_probs(nqs, configs, chunk: int = 1024) -> np.ndarray:
    """Unnormalised ``log |Psi|^2`` of configurations ``(M, K, N)`` -> ``(M,)`` float64, in chunks."""
    configs = jnp.asarray(configs, dtype=jnp.int8)
    return np.concatenate([np.asarray(batched_log_prob(nqs, configs[i : i + chunk])) for i in range(0, len(configs), chunk)])


def proposal_log_probs(proposal, configs) -> np.ndarray:
    """``log q`` of configurations ``(M, K, N)`` -> ``(M,)`` float64 (``log_prob_batch`` works in chunks)."""
    return np.asarray(proposal.log_prob_batch(spins_to_tokens(jnp.asarray(configs, dtype=jnp.int8))), dtype=np.float64)


@eqx.filter_jit
def _log_ratio_step(proposal, opt_state, optimizer, tokens, log_p, weight):
    """One Adam step on ``-mean log q + weight Var(log q - log_p) / 2`` over tokens ``(B, T)``."""

    def loss(proposal):
        log_q = proposal.log_prob_batch(tokens)
        return -jnp.mean(log_q) + 0.5 * weight * jnp.var(log_q - log_p.astype(log_q.dtype))

    value, grads = eqx.filter_value_and_grad(loss)(proposal)
    return *apply_grads(proposal, opt_state, optimizer, grads), value


def fit_with_log_ratios(sampler, state, configs, log_p, key, n_steps: int, v: Variant):
    """``n_steps`` Adam steps on minibatches of ``configs`` ``(M, K, N)`` (samples of the NQS, whose
    ``log |Psi|^2`` are ``log_p`` ``(M,)``) of the
    negative log-likelihood plus ``v.log_ratio_weight`` times half the variance of ``log q - log |Psi|^2``
    over the minibatch: a regression of ``log q`` on the NQS's exact log-density (its unknown
    normalisation drops out of the variance), which maximum likelihood on the samples ignores. The
    blocks are permuted as in NIR (``|Psi|^2`` is symmetric in them). Returns ``(state, losses)``."""
    configs, log_p = jnp.asarray(configs, dtype=jnp.int8), jnp.asarray(log_p)
    optimizer = make_proposal_optimizer(v.lr)
    proposal, opt_state, losses = state.proposal, state.opt_state, []
    for _ in range(int(n_steps)):
        key, key_pick, key_perm = jax.random.split(key, 3)
        rows = jax.random.choice(key_pick, configs.shape[0], (v.minibatch,), replace=False)
        tokens = random_block_permutation(key_perm, spins_to_tokens(configs[rows]), sampler.n_states, sampler.n_sites)
        proposal, opt_state, loss = _log_ratio_step(proposal, opt_state, optimizer, tokens, log_p[rows], v.log_ratio_weight)
        losses.append(float(loss))
    return type(state)(proposal, opt_state, state.efficiency_ema), np.array(losses)


def misfit_features(proposal, train, heldout, train_log_p, heldout_log_p, variant: str) -> list[dict]:
    """Which structure of the configurations explains the log-ratio ``r = log |Psi|^2 - log q`` of a
    fitted proposal, against ``log |Psi|^2`` and ``log q`` themselves: least squares on feature sets
    summed over the K configurations (so symmetric in their order) fitted on ``train``, the fraction
    of variance explained on ``heldout`` (``(M, K, N)`` each). Feature sets: the magnetisations
    (sorted ``m_k``, ``|m_k|``, products ``m_k m_l``, ``sum m_k^2``, ``sum m_k^4``), the sites
    (``sum_k s_ki``), the nearest-neighbour bonds (``sum_k s_ki s_kj``), every pair ``i < j`` (a
    Jastrow form), and every pair with the sites and magnetisations. ``*_log_p``: the NQS's
    ``log |Psi|^2`` on them. The lattice is square, sites ``x * L + y`` (``nirbench.lattice``)."""
    configs = np.concatenate([np.asarray(train), np.asarray(heldout)]).astype(np.float64)
    n_train, n_sites = len(train), configs.shape[2]
    log_p = np.concatenate([train_log_p, heldout_log_p])
    log_q = proposal_log_probs(proposal, configs)
    side = math.isqrt(n_sites)
    bonds = [(x * side + y, (x + 1) * side + y) for x in range(side - 1) for y in range(side)]
    bonds += [(x * side + y, x * side + y + 1) for x in range(side) for y in range(side - 1)]
    m = configs.mean(axis=2)
    upper = np.triu_indices(n_sites, 1)
    magnetisation = np.concatenate([np.sort(m, 1), np.sort(np.abs(m), 1), (m[:, :, None] * m[:, None, :]).reshape(len(m), -1),
                                    (m**2).sum(1, keepdims=True), (m**4).sum(1, keepdims=True)], axis=1)  # fmt: skip
    pairs = np.einsum("mki,mkj->mij", configs, configs)[:, upper[0], upper[1]]
    sites = configs.sum(axis=1)
    feature_sets = {
        "magnetisation": magnetisation,
        "sites": sites,
        "nearest-neighbour bonds": np.stack([(configs[:, :, i] * configs[:, :, j]).sum(1) for i, j in bonds], 1),
        "all pairs (Jastrow)": pairs,
        "all pairs + sites + magnetisation": np.concatenate([pairs, sites, magnetisation], axis=1),
    }
    rows = []
    for quantity, y in (("log-ratio r", log_p - log_q), ("log |Psi|^2", log_p), ("log q", log_q)):
        for name, x in feature_sets.items():
            x = np.concatenate([np.ones((len(x), 1)), x], axis=1)
            coefficients, *_ = np.linalg.lstsq(x[:n_train], y[:n_train], rcond=None)
            residual = y - x @ coefficients
            rows.append({"variant": variant, "quantity": quantity, "features": name, "n_features": x.shape[1] - 1,
                         "heldout_std": float(np.std(y[n_train:])),
                         "r2_train": float(1 - np.var(residual[:n_train]) / np.var(y[:n_train])),
                         "r2_heldout": float(1 - np.var(residual[n_train:]) / np.var(y[n_train:]))})  # fmt: skip
            print(f"{variant}: {quantity} on {name}: held-out R^2 {rows[-1]['r2_heldout']:.3f}", flush=True)
    return rows


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
