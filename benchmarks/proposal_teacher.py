"""Is the ordering NQS hard to fit, or is the proposal's training too short? A teacher-student control.

``benchmarks/proposal_capacity.py`` fits proposals by maximum likelihood to Metropolis samples of
the 6x6 open TFI NQS at g = 1, K = 3 (update 60 of the MCMC run, 108 tokens): NIR's efficiency
against that NQS stays at 0.03 (32/2/4) to 0.05 (64/2/4) after 800 Adam steps. Two causes give
that: the NQS's distribution is one the Transformer does not represent (rough, or beyond its
capacity), or the training itself (800 steps of 512 on 16 384 samples at this learning rate) is too
short for any distribution of this size and entropy. This benchmark separates them with a target
the Transformer represents exactly: a *teacher* proposal fitted to the NQS's samples (the same
procedure as ``proposal_capacity``), symmetrised over the K! orders of its blocks (the NQS's
|det|^2 is symmetric; NIR trains on randomly permuted blocks):

    p(x) = (1 / K!) sum_pi q_teacher(pi x)   (exact; sampled by drawing from q_teacher and permuting)

A fresh *student* of the same size is then trained by the same procedure on as many samples of p,
and its efficiency against p, ``ESS / M`` of the weights ``p(x) / q_student(x)`` over ``M`` draws of
the student (NIR's efficiency, with exact normalised densities instead of an NQS), is measured
after the same numbers of Adam steps. If the student reaches a high efficiency where the NQS
fit stalls at 0.03, training length is not the bottleneck and the NQS's distribution is; if the
student stalls too, the procedure is.

Where the misfit lives (``--roughness``): the log-ratio ``r(x) = log p(x) - log q(x)`` of a target
and its fit, on held-out samples ``x`` of the target and on the same samples with one random spin
of one random configuration flipped, ``x'``. A misfit that is smooth in the configuration changes
little under one flip (``corr(r(x), r(x'))`` near 1); a rough one, a high-frequency structure no
autoregressive model of this size follows, decorrelates. Measured for the NQS against the
teacher, and as the control for the symmetrised teacher against the (symmetrised) student, a
smooth target and a smooth fit. Rows with role ``roughness ...``: the standard deviation of ``r``,
of ``r(x') - r(x)``, the correlation, and the fraction of ``r``'s variance a fit on the
configurations' magnetisations explains (:func:`magnetisation_r2`).

One CSV row per (role, block): efficiency (mean / min / max over ``--calls`` draws of ``--draws``),
negative log-likelihood of held-out samples of the target (p for the student; for the teacher,
of held-out NQS samples), seconds.

    python benchmarks/proposal_teacher.py --out results/benchmarks/proposal_teacher.csv
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from proposal_capacity import VARIANTS, save_efficiency_figure
from proposal_fit import trained_nqs

from nirbench.estimators import effective_sample_size
from nirbench.io import write_csv_atomically
from nirbench.models import batched_log_prob
from nirbench.proposal import random_block_permutation, spins_to_tokens, tokens_to_spins
from nirbench.samplers import make_sampler

N_STATES = 3


def symmetrised_log_prob(proposal, tokens, n_sites: int) -> jnp.ndarray:
    """``log (1/K!) sum_pi q(pi x)`` for tokens ``(B, K N)`` -> ``(B,)`` (every order of the K blocks)."""
    blocks = tokens.reshape(tokens.shape[0], N_STATES, n_sites)
    terms = [
        proposal.log_prob_batch(blocks[:, list(order)].reshape(tokens.shape))
        for order in itertools.permutations(range(N_STATES))
    ]
    return jax.nn.logsumexp(jnp.stack(terms), axis=0) - np.log(len(terms))


def flip_spread(log_p, log_q, configs, seed: int = 10) -> dict:
    """How the log-ratio ``r = log_p - log_q`` of configurations ``(M, K, N)`` changes when one
    random spin of one random configuration of each row is flipped: ``std_r``, ``std_flip_change``
    (of ``r(x') - r(x)``) and ``flip_correlation`` (Pearson, of ``r(x)`` and ``r(x')``)."""
    configs = jnp.asarray(configs, dtype=jnp.int8)
    m, k, n = configs.shape
    rng = np.random.default_rng(seed)
    rows, states, sites = np.arange(m), rng.integers(k, size=m), rng.integers(n, size=m)
    flipped = configs.at[rows, states, sites].multiply(-1)
    r = np.asarray(log_p(configs) - log_q(configs), dtype=np.float64)
    r_flipped = np.asarray(log_p(flipped) - log_q(flipped), dtype=np.float64)
    return {"std_r": float(np.std(r)), "std_flip_change": float(np.std(r_flipped - r)),
            "flip_correlation": float(np.corrcoef(r, r_flipped)[0, 1]),
            "r2_magnetisation": magnetisation_r2(r, np.asarray(configs))}  # fmt: skip


def magnetisation_r2(r, configs) -> float:
    """Fraction of the variance of ``r`` ``(M,)`` explained by a least-squares fit on the
    configurations' magnetisations (``configs`` ``(M, K, N)``): a constant, per configuration ``m_k``,
    ``|m_k|``, ``m_k^2`` and ``m_k^4``, and the products ``m_k m_l`` and ``|m_k m_l|`` (sector
    alignment between the K configurations), symmetrised over the order of the configurations
    (sums over k and over pairs)."""
    m = configs.astype(np.float64).mean(axis=2)  # (M, K)
    pairs = [m[:, a] * m[:, b] for a in range(m.shape[1]) for b in range(a + 1, m.shape[1])]
    features = np.stack([np.ones(len(r)), m.sum(1), np.abs(m).sum(1), (m**2).sum(1), np.sum(pairs, axis=0),
                         np.sum(np.abs(pairs), axis=0), (m**4).sum(1)], axis=1)  # fmt: skip
    coefficients, *_ = np.linalg.lstsq(features, r, rcond=None)
    return float(1 - np.var(r - features @ coefficients) / np.var(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=int, default=60, help="NQS update of the Metropolis run to fit")
    parser.add_argument("--samples", type=int, default=16384, help="training samples (NQS, then teacher)")
    parser.add_argument("--teacher-blocks", type=int, default=400, help="Adam steps (of 512) for the teacher")
    parser.add_argument("--blocks", type=int, nargs="+", default=[0, 50, 100, 200, 400, 800],
                        help="cumulative Adam steps (of 512) after which the student is measured")  # fmt: skip
    parser.add_argument("--calls", type=int, default=3, help="draws per efficiency measurement")
    parser.add_argument("--draws", type=int, default=4096, help="proposals per draw")
    parser.add_argument("--variant", default="32/2/4 lr 3e-3", choices=list(VARIANTS))
    parser.add_argument("--out", default="results/benchmarks/proposal_teacher.csv")
    parser.add_argument(
        "--plot", default="figures/benchmarks/proposal_teacher.png", help="figure (PNG), '' for none"
    )
    parser.add_argument("--capacity", default="results/benchmarks/proposal_capacity.csv",
                        help="proposal_capacity.py's CSV, whose NQS fits the figure draws beside the student")  # fmt: skip
    parser.add_argument("--roughness", action="store_true",
                        help="after the student's last block, measure the misfits' change under one spin flip")  # fmt: skip
    parser.add_argument("--replot", action="store_true", help="only draw the figure from --out")
    args = parser.parse_args()
    if args.replot:
        plot(pd.read_csv(args.out), args.capacity, args.plot)
        return
    checkpoints = Path(args.out).parent / "checkpoints" / "proposal_fit"
    nqs, hamiltonian = trained_nqs([args.target], checkpoints)
    n_sites, n_heldout = hamiltonian.n_sites, 2048
    dim, layers, heads, lr, minibatch, factorization, patch, log_ratio_weight = VARIANTS[args.variant]
    if (factorization, patch, log_ratio_weight) != ("joint", 1, 0.0):
        raise SystemExit("the teacher-student control takes a joint proposal of binary tokens fitted by maximum likelihood")
    mcmc = make_sampler(
        "mcmc", hamiltonian, args.samples + n_heldout, n_chains=512, n_warmup=400, thinning=10
    )
    chains = mcmc.init(jax.random.key(0), N_STATES, n_sites)
    samples, _, _ = mcmc.sample(batched_log_prob, nqs[args.target], chains, jax.random.key(1))
    nqs_train, nqs_heldout = samples.configs[:-n_heldout], samples.configs[-n_heldout:]

    def fresh(seed: int):
        sampler = make_sampler(
            "nir", hamiltonian, 512, n_states=N_STATES, embed_dim=dim, n_layers=layers, n_heads=heads,
            learning_rate=lr, alpha_eff=0.0, max_rounds=8,
        )  # fmt: skip
        return sampler, sampler.init(jax.random.key(seed), N_STATES, n_sites)

    rows, start = [], time.perf_counter()

    def record(role, steps, eff, heldout_nll):
        rows.append({"role": role, "proposal": f"{dim}/{layers}/{heads}", "proposal_lr": lr,
                     "adam_steps": steps, "efficiency": float(np.mean(eff)), "efficiency_min": float(np.min(eff)),
                     "efficiency_max": float(np.max(eff)), "heldout_nll": heldout_nll,
                     "seconds": time.perf_counter() - start})  # fmt: skip
        print(f"{role} after {steps:4d} Adam steps: efficiency {np.mean(eff):.4f} (min {np.min(eff):.4f}), "
              f"held-out NLL {heldout_nll:.2f}, {rows[-1]['seconds']:.0f} s", flush=True)  # fmt: skip
        write_csv_atomically(pd.DataFrame(rows), args.out)

    # the teacher: the proposal_capacity procedure on the NQS's samples; efficiency against the NQS
    sampler, teacher_state = fresh(2)
    teacher_steps = args.teacher_blocks * 512 // minibatch
    teacher_state, _ = sampler.pretrain(
        teacher_state, nqs_train, jax.random.key(3), teacher_steps, batch_size=minibatch
    )
    frozen = sampler.frozen()
    nqs_eff = [
        frozen.sample(batched_log_prob, nqs[args.target], teacher_state, k)[2]["efficiency"]
        for k in jax.random.split(jax.random.key(4), args.calls)
    ]
    teacher = teacher_state.proposal
    nqs_heldout_nll = -float(jnp.mean(teacher.log_prob_batch(spins_to_tokens(nqs_heldout))))
    record("teacher vs NQS", args.teacher_blocks, nqs_eff, nqs_heldout_nll)

    # samples of the symmetrised teacher p
    tokens, _ = teacher.sample(jax.random.key(5), args.samples + n_heldout)
    tokens = random_block_permutation(jax.random.key(6), tokens, N_STATES, n_sites)
    p_train = tokens_to_spins(tokens[:-n_heldout], N_STATES, n_sites)
    p_heldout = tokens[-n_heldout:]
    p_entropy = -float(jnp.mean(symmetrised_log_prob(teacher, p_heldout, n_sites)))
    print(f"teacher p: entropy {p_entropy:.2f} nats per tuple (uniform {N_STATES * n_sites * np.log(2):.2f})")
    rows.append({"role": "teacher entropy", "heldout_nll": p_entropy, "seconds": time.perf_counter() - start})

    # the student: the same procedure on p's samples; efficiency against p, exact densities
    sampler, student_state = fresh(7)
    done, key = 0, jax.random.key(8)
    for block in args.blocks:
        key, key_train = jax.random.split(key)
        steps = (block - done) * 512 // minibatch
        student_state, _ = sampler.pretrain(student_state, p_train, key_train, steps, batch_size=minibatch)
        done = block
        student, eff = student_state.proposal, []
        for draw_key in jax.random.split(jax.random.fold_in(key, 9), args.calls):
            x, log_q = student.sample(draw_key, args.draws)
            log_w = jnp.asarray(symmetrised_log_prob(teacher, x, n_sites) - log_q, dtype=jnp.float64)
            eff.append(float(effective_sample_size(log_w)) / args.draws)
        record("student vs teacher", block, eff, -float(jnp.mean(student.log_prob_batch(p_heldout))))
    if args.roughness:
        nqs_x = jnp.asarray(nqs_heldout, dtype=jnp.int8)
        p_x = tokens_to_spins(p_heldout, N_STATES, n_sites)
        pairs = {
            "roughness NQS / teacher": (lambda c: batched_log_prob(nqs[args.target], c), teacher, nqs_x),
            "roughness teacher / student": (
                lambda c: symmetrised_log_prob(teacher, spins_to_tokens(c), n_sites), student, p_x),
        }  # fmt: skip
        for role, (log_p, fit, x) in pairs.items():
            spread = flip_spread(log_p, lambda c, fit=fit: symmetrised_log_prob(fit, spins_to_tokens(c), n_sites), x)
            rows.append({"role": role, **spread, "seconds": time.perf_counter() - start})
            print(f"{role}: std r {spread['std_r']:.3f}, std of r(x') - r(x) {spread['std_flip_change']:.3f}, "
                  f"correlation {spread['flip_correlation']:.3f}, R^2 on magnetisations "
                  f"{spread['r2_magnetisation']:.3f}", flush=True)  # fmt: skip
        write_csv_atomically(pd.DataFrame(rows), args.out)
    print(f"wrote {args.out}")
    if args.plot:
        plot(pd.DataFrame(rows), args.capacity, args.plot)


def plot(frame: pd.DataFrame, capacity_csv: str, path: str) -> None:
    """Efficiency against Adam steps: the student against its teacher, and (from ``capacity_csv``,
    if present) the joint proposals fitted to the NQS by the same procedure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    student = frame[frame["role"] == "student vs teacher"]
    ax.plot(student["adam_steps"], student["efficiency"], marker="o", color="C3",
            label="student fitted to the teacher (representable target)")  # fmt: skip
    ax.fill_between(student["adam_steps"], student["efficiency_min"], student["efficiency_max"], color="C3", alpha=0.15)
    if Path(capacity_csv).exists():
        capacity = pd.read_csv(capacity_csv)
        for i, (name, group) in enumerate(capacity[capacity["factorization"] == "joint"].groupby("variant", sort=False)):
            if group["minibatch"].iloc[0] == 512 and group["proposal_lr"].iloc[0] == 3e-3:
                ax.plot(group["adam_steps"], group["efficiency"], marker="s", markersize=3, color=f"C{i}",
                        alpha=0.8, label=f"{name} fitted to the NQS")  # fmt: skip
    teacher = frame[frame["role"] == "teacher vs NQS"]
    ax.plot(teacher["adam_steps"], teacher["efficiency"], marker="*", markersize=10, linestyle="none", color="k",
            label="the teacher against the NQS")  # fmt: skip
    ax.set_xlabel("Adam steps (512 samples each)")
    save_efficiency_figure(fig, ax, "the same fit, two targets", path)


if __name__ == "__main__":
    main()
