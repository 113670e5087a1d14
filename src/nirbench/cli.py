"""The ``nirbench`` command line. Each subcommand writes one tidy CSV.

Every subcommand is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args)`` registered in
``COMMANDS``. Bad input raises ``ValueError`` before any computation; ``main`` turns it into a
one-line error and exit status 2, and no output file is written.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
from dataclasses import MISSING
from pathlib import Path

import pandas as pd
import yaml

from nirbench.io import write_csv_atomically


def _add_system_options(parser: argparse.ArgumentParser, models=("tfi", "j1j2")) -> None:
    """Options that select the Hamiltonian: model, lattice, boundary and couplings."""
    parser.add_argument("--model", required=True, choices=models, help="Hamiltonian: TFI (eq. 13) or J1-J2 (eq. 14)")
    parser.add_argument("--lx", type=int, required=True, help="lattice length in x (>= 2)")
    parser.add_argument("--ly", type=int, required=True, help="lattice length in y (>= 2)")
    parser.add_argument("--bc", choices=("open", "periodic"), required=True,
                        help="boundary conditions (required by every subcommand: no default)")
    parser.add_argument("--g", type=float, default=None, help="transverse field of the TFI model (>= 0)")
    parser.add_argument("--j2", type=float, default=None, help="J2/J1 of the J1-J2 model (default 0.5)")


def _hamiltonian_from(args):
    from nirbench.hamiltonians import make_hamiltonian

    return make_hamiltonian(args.model, args.lx, args.ly, args.bc, g=args.g, j2=args.j2)


# --------------------------------------------------------------------------- ed
def _add_ed(subparsers) -> None:
    parser = subparsers.add_parser(
        "ed",
        help="exact diagonalisation: the K lowest levels",
        description="Sparse exact diagonalisation (scipy eigsh) of the TFI or J1-J2 model; the J1-J2 "
        "model is diagonalised in its zero-magnetisation sector. One CSV row per level.",
    )
    _add_system_options(parser)
    parser.add_argument("--states", type=int, default=1, help="number K of lowest levels (>= 1)")
    parser.add_argument("--out", required=True, help="output CSV: model,lx,ly,bc,g,j2,state,energy,energy_per_site")


def _run_ed(args) -> None:
    from nirbench.exact import check_ed_size, lowest_levels

    hamiltonian = _hamiltonian_from(args)
    check_ed_size(hamiltonian, args.states)
    energies = lowest_levels(hamiltonian, args.states)
    rows = [
        {**hamiltonian.describe(), "state": k, "energy": e, "energy_per_site": e / hamiltonian.n_sites}
        for k, e in enumerate(energies)
    ]
    frame = pd.DataFrame(rows, columns=["model", "lx", "ly", "bc", "g", "j2", "state", "energy", "energy_per_site"])
    write_csv_atomically(frame, args.out)
    for row in rows:
        print(f"state {row['state']}: E = {row['energy']:.10f}   E/N = {row['energy_per_site']:.10f}")


# --------------------------------------------------------------------------- vmc
def _add_vmc(subparsers) -> None:
    from dataclasses import fields

    from nirbench.options import SECTIONS, VMCConfig

    parser = subparsers.add_parser(
        "vmc",
        help="train a (multi-state) NQS with the exact, MCMC or NIR sampler",
        description="Variational Monte Carlo: sample -> local energy matrix -> minSR -> Adam. Options come "
        "from --config FILE.yaml and/or the flags below (flags win); defaults are the paper's table A1.",
    )
    parser.add_argument(
        "--config", help="YAML file of options (keys as the flags, with underscores; flat or under their sections)"
    )
    parser.add_argument(
        "--check-config", action="store_true",
        help="check the options (file and flags), print them by section as YAML and exit without running",
    )  # fmt: skip
    parser.add_argument("--out", help="per-step CSV (one row per iteration; required unless --check-config)")
    parser.add_argument("--summary", help="one-row CSV with the final evaluation")
    parser.add_argument("--checkpoint-dir", help="directory for checkpoints (NQS, optimiser, sampler, key)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    groups = {name: parser.add_argument_group(f"{name} options", about) for name, about in SECTIONS.items()}
    types = {"int": int, "float": float, "str": str, "int | str": _int_or_word}
    for f in fields(VMCConfig):
        if f.name == "extra":
            continue
        group = groups[f.metadata["section"]]
        flag = "--" + f.name.replace("_", "-")
        base = str(f.type).removesuffix(" | None")
        if base == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            default = "" if f.default is None or f.default is MISSING else f" (default {f.default})"
            group.add_argument(flag, type=types[base], default=None, help=f.metadata["help"] + default)


def _int_or_word(text: str) -> int | str:
    """A flag that takes a number or a word (``--proposal-patch 4``, ``--proposal-patch column``)."""
    return int(text) if text.lstrip("-").isdigit() else text


def check_output_paths(outputs: dict, inputs: dict | None = None, outside: str | None = None) -> None:
    """``ValueError`` unless every output path (``{option: path}``) can be written as a file and
    none is another output or an input (``{option: path}``), nor lies inside the folder ``outside``
    (a checkpoint that must stay unchanged): checked before any computation."""
    for option, path in outputs.items():
        if outside is not None and Path(path).resolve().is_relative_to(Path(outside).resolve()):
            raise ValueError(f"{option} must lie outside the checkpoint directory")
    seen = {Path(path).resolve(): option for option, path in (inputs or {}).items() if path}
    for option, path in outputs.items():
        resolved = Path(path).resolve()
        if resolved.is_dir():
            raise ValueError(f"{option} {path} is a directory; give a file name")
        if resolved in seen:
            raise ValueError(f"{option} {path} is also {seen[resolved]}: it would be overwritten")
        seen[resolved] = option
        parent = next((p for p in resolved.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise ValueError(f"{option} {path}: {parent} is a file, not a directory")


def _run_vmc(args) -> None:
    from dataclasses import fields

    from nirbench import options, vmc

    values = options.read_options_file(args.config) if args.config else {}
    for f in fields(options.VMCConfig):
        if f.name != "extra" and getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    config = options.VMCConfig.from_dict(values)
    if args.check_config:
        print(yaml.safe_dump(options.nest_sections(config.to_dict()), sort_keys=False), end="")
        return
    if args.out is None:
        raise ValueError("nirbench vmc needs --out (the per-step CSV), or --check-config")
    summary_path = args.summary or str(Path(args.out).with_suffix("")) + "_summary.csv"
    check_output_paths({"--out": args.out, "--summary": summary_path},
                       {"--config": args.config, "--reference": config.reference})
    if args.checkpoint_dir is not None and Path(args.checkpoint_dir).exists() and not Path(args.checkpoint_dir).is_dir():
        raise ValueError(f"--checkpoint-dir {args.checkpoint_dir} is a file, not a directory")
    try:
        summary = vmc.run(config, args.out, summary_path, args.checkpoint_dir, args.resume, progress=not args.no_progress)
    except vmc.OrphanedError as error:
        raise SystemExit(f"nirbench vmc: {error}; rerun with --resume to continue") from error
    except vmc.NonFiniteError as error:
        kept = f"the last good checkpoint is kept in {args.checkpoint_dir}" if args.checkpoint_dir else "no checkpoint was written (no --checkpoint-dir)"
        raise SystemExit(f"nirbench vmc: {error}; {kept}")
    print(f"final energy {summary['energy']:.8f} +- {summary['energy_sigma']:.1e} ({summary['status']})")


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="energies of a checkpointed NQS with honest error bars, V-score and, where possible, the exact energy",
        description="Load the NQS of a `nirbench vmc` checkpoint and write one row: the trace energy and the "
        "levels e_k with their standard errors, the variance of tr E_loc, the V-score N Var(E) / E^2, the "
        "sampler's diagnostics and, where the model's sector can be enumerated (<= 2^20 configurations), the "
        "exact energies of the NQS. The sampler is frozen (NIR does not train its proposal, except to pass "
        "its efficiency gate first) and nothing in the checkpoint changes.",
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory written by `nirbench vmc`")
    parser.add_argument("--out", required=True, help="output CSV (one row)")
    parser.add_argument("--sampler", choices=("exact", "mcmc", "nir"), default=None,
                        help="sampler to measure with (default: the run's, with its state)")
    parser.add_argument("--batch", type=int, default=None, help="samples per sampler call (default: the run's)")
    parser.add_argument("--samples", type=int, default=None, help="samples in all (default: the run's eval_batch)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the measurement (default 0)")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact energy of the NQS")
    parser.add_argument("--mcmc-chains", type=int, default=None, help="with --sampler mcmc: chains (default: the run's; a Metropolis run's own chains continue when their number is the same)")
    parser.add_argument("--mcmc-warmup", type=int, default=None,
                        help="with --sampler mcmc: warm-up steps per call (default: the run's)")  # fmt: skip
    parser.add_argument("--mcmc-global-flip", type=float, default=None,
                        help="with --sampler mcmc: probability that a move flips a whole state of the K-tuple, or all K, "
                        "so that chains cross between the sectors of an ordered |Psi|^2 (default: the run's)")  # fmt: skip


def _run_evaluate(args) -> None:
    import jax

    from nirbench.evaluation import evaluate, evaluation_columns
    from nirbench.exact import MAX_NQS_ENUMERATION, nqs_exact_columns
    from nirbench.vmc import VMCRun

    for name in ("batch", "samples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    check_output_paths({"--out": args.out}, outside=args.checkpoint)
    run = VMCRun.from_checkpoint(args.checkpoint)
    config = run.config
    key_sampler, key_measure = jax.random.split(jax.random.PRNGKey(args.seed))
    name, batch = args.sampler or config.sampler, args.batch or config.batch
    changes = {option: getattr(args, option) for option in ("mcmc_chains", "mcmc_warmup", "mcmc_global_flip")
               if getattr(args, option) is not None}  # fmt: skip
    if changes and name != "mcmc":
        raise ValueError(f"--mcmc-chains, --mcmc-warmup and --mcmc-global-flip apply to --sampler mcmc, not {name!r}")
    if (name, batch) == (config.sampler, config.batch) and not changes:
        sampler, state = run.sampler, run.sampler_state
    else:
        sampler, state = run.make_sampler(name, batch, key_sampler, **changes)
        if name == config.sampler == "mcmc" and sampler.chain_count == run.sampler.chain_count:
            state = run.sampler_state  # continue the run's chains rather than warm up new ones
    hamiltonian = run.hamiltonian
    largest = 0 if args.no_exact else MAX_NQS_ENUMERATION
    exact = nqs_exact_columns(run.nqs, hamiltonian, config.states, max_dimension=largest)
    result = evaluate(run, args.samples or config.eval_batch, key_measure, sampler, state)
    row = {
        **hamiltonian.describe(), "states": config.states, "net": config.net, "trained_with": config.sampler,
        "sampler": name, "batch": batch, **changes, "seed": args.seed, "nqs_step": run.nqs_step, **evaluation_columns(result),
        **exact,
    }  # fmt: skip
    write_csv_atomically(pd.DataFrame([row]), args.out)
    exact_text = "" if math.isnan(row["exact_energy"]) else f"; exact {row['exact_energy']:.8f}"
    print(f"energy {row['energy']:.8f} +- {row['energy_sigma']:.1e}, V-score {row['v_score']:.2e}{exact_text}")


# --------------------------------------------------------------------------- ablate
def _add_ablate(subparsers) -> None:
    parser = subparsers.add_parser(
        "ablate",
        help="proposal sizes trained against one fixed, checkpointed NQS (table 1)",
        description="Hold the NQS of a `nirbench vmc` checkpoint fixed; for every proposal size, train a fresh "
        "proposal with the same budget (NIR calls x Adam steps) and measure its efficiency ESS/n_proposed "
        "(frozen calls) and the NQS's energy estimated with it. One row per size; the efficiency of every "
        "training call goes to --calls-out. Nothing in the checkpoint changes.",
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory written by `nirbench vmc`")
    parser.add_argument("--sizes", nargs="+", required=True, metavar="DxL",
                        help="proposal sizes, embedding width x layers, e.g. 8x1 16x2")
    from nirbench.ablation import ablate_proposal_sizes

    defaults = _keyword_defaults(ablate_proposal_sizes)
    parser.add_argument("--calls", type=int, default=defaults["calls"], help="training calls per size (default %(default)s)")
    parser.add_argument("--train-steps", type=int, default=defaults["train_steps"],
                        help="proposal Adam steps per call (default %(default)s)")
    parser.add_argument("--efficiency-calls", type=int, default=defaults["efficiency_calls"],
                        help="frozen calls measuring the efficiency (default %(default)s)")
    parser.add_argument("--samples", type=int, default=defaults["samples"],
                        help="samples of the energy estimate (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="random seed (default %(default)s)")
    parser.add_argument("--out", required=True, help="output CSV, one row per size")
    parser.add_argument("--calls-out", default=None, help="output CSV, one row per size and training call")


def _run_ablate(args) -> None:
    from nirbench.ablation import ablate_proposal_sizes, parse_size
    from nirbench.vmc import VMCRun

    sizes = [parse_size(text) for text in args.sizes]
    outputs = {"--out": args.out, **({"--calls-out": args.calls_out} if args.calls_out else {})}
    check_output_paths(outputs, outside=args.checkpoint)
    run = VMCRun.from_checkpoint(args.checkpoint)
    table, calls = ablate_proposal_sizes(
        run, sizes, calls=args.calls, train_steps=args.train_steps, efficiency_calls=args.efficiency_calls,
        samples=args.samples, seed=args.seed,
    )  # fmt: skip
    write_csv_atomically(table, args.out)
    if args.calls_out:
        write_csv_atomically(calls, args.calls_out)
    for _, row in table.iterrows():
        print(f"{row['d_embd']}x{row['n_layer']} ({row['n_param']} parameters): efficiency "
              f"{row['efficiency']:.3f} +- {row['efficiency_sigma']:.3f}, E/N {row['energy_per_site']:.6f} "
              f"+- {row['energy_per_site_sigma']:.1e}")


# --------------------------------------------------------------------------- dmrg
def _add_dmrg(subparsers) -> None:
    parser = subparsers.add_parser(
        "dmrg",
        help="DMRG (TeNPy) bond-dimension scan of the K lowest levels",
        description="Two-site DMRG with the mixer for the K lowest levels of the TFI model at each bond "
        "dimension (excited states by orthogonalisation within each Z2 parity sector; warm start from the "
        "previous bond dimension). One CSV row per (state, chi).",
    )
    parser.add_argument("--model", default="tfi", help="Hamiltonian; DMRG supports only 'tfi' so far (default tfi)")
    parser.add_argument("--lx", type=int, required=True, help="lattice length in x (>= 2)")
    parser.add_argument("--ly", type=int, required=True, help="lattice length in y (>= 2); MPS index x*ly+y")
    parser.add_argument("--bc", choices=("open", "periodic"), required=True,
                        help="boundary conditions (required: no default; periodic bonds become long-range MPO terms)")
    parser.add_argument("--g", type=float, required=True, help="transverse field of the TFI model (>= 0)")
    parser.add_argument("--states", type=int, default=1, help="number K of lowest levels (>= 1, default 1)")
    parser.add_argument("--chi", type=int, nargs="+", required=True,
                        help="bond dimensions to scan (each > 0), e.g. --chi 25 50 100 200; run in ascending order")
    parser.add_argument("--max-sweeps", type=int, default=50, help="maximum sweeps per DMRG run (default 50)")
    parser.add_argument("--max-e-err", type=float, default=1e-10,
                        help="convergence: energy change per sweep below this times n_bonds + g*N (default 1e-10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenBLAS threads during the scan (default: leave as set by OPENBLAS_NUM_THREADS)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--partial", default=None,
                        help="optional CSV rewritten after each bond dimension with the rows finished so far "
                        "(for long scans; --out is written only when the whole scan is done)")
    parser.add_argument("--out", required=True,
                        help="output CSV: model,lx,ly,bc,g,state,chi,energy,truncation_error,sweeps,seconds,parity")


def _run_dmrg(args) -> None:
    from nirbench.dmrg import dmrg_scan

    if args.partial is not None and Path(args.partial).resolve() == Path(args.out).resolve():
        raise ValueError("--partial must differ from --out")
    frame = dmrg_scan(
        args.lx, args.ly, args.bc, args.g, args.states, args.chi, model=args.model,
        max_sweeps=args.max_sweeps, max_E_err=args.max_e_err, threads=args.threads, progress=not args.no_progress,
        on_chi_done=None if args.partial is None else (lambda rows: write_csv_atomically(rows, args.partial)),
    )
    write_csv_atomically(frame, args.out)
    for row in frame.itertuples():
        print(f"state {row.state} chi {row.chi}: E = {row.energy:.10f}  trunc_err = {row.truncation_error:.2e}  "
              f"({row.sweeps} sweeps, {row.seconds:.1f} s, {row.parity})")


# --------------------------------------------------------------------------- extrapolate
def _add_extrapolate(subparsers) -> None:
    parser = subparsers.add_parser(
        "extrapolate",
        help="extrapolate a DMRG scan to infinite bond dimension",
        description="Fit E(chi) = a + b (chi + c)^d per state (paper section 4.4), with a fit-window check "
        "(without the smallest chi) and a linear fit in the truncation error. Fits at a bound of their "
        "parameters, outside the physical range or with a below what the scan allows are rejected (column "
        "`rejected`); the uncertainty covers every accepted estimate. If all are rejected, or the state's "
        "parity sector changes with chi, the energy at the largest chi is reported. One CSV row per state.",
    )
    parser.add_argument("--in", dest="input", required=True, help="DMRG scan CSV written by `nirbench dmrg`")
    parser.add_argument("--out", required=True,
                        help="output CSV: state,energy_extrapolated,uncertainty,method,a,b,c,d, the single "
                        "estimates, parity and rejected")


def _run_extrapolate(args) -> None:
    from nirbench.fits import extrapolate

    if not Path(args.input).is_file():
        raise ValueError(f"--in: no such file {args.input!r}")
    try:
        scan = pd.read_csv(args.input)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise ValueError(f"--in: cannot read {args.input!r} as CSV: {error}") from error
    fits = extrapolate(scan)
    write_csv_atomically(fits, args.out)
    for row in fits.itertuples():
        print(f"state {row.state}: E = {row.energy_extrapolated:.10f} +- {row.uncertainty:.1e} ({row.method})")
        if row.rejected:
            print(f"  rejected: {row.rejected}")


# --------------------------------------------------------------------------- bench
def _keyword_defaults(*functions) -> dict:
    """The keyword defaults of benchmark functions, for their CLI flags: a default lives once,
    in the function's signature."""
    return {
        name: parameter.default
        for function in functions
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not parameter.empty
    }


def _add_bench_sampling(kinds) -> None:
    from nirbench.bench import bench_sampling

    d = _keyword_defaults(bench_sampling)
    parser = kinds.add_parser(
        "sampling",
        help="proposal sampling (KV cache vs naive), NIR vs MCMC seconds per effective sample",
        description="Per case LXxLYxK (TFI, K states): Transformer-proposal sampling time with the KV cache and "
        "with naive recompute; wall seconds per effective sample of MCMC (paper settings) and NIR on the same "
        "multi-state MLP NQS (the proposal is pre-trained briefly on MCMC samples); and plain vs "
        "symmetry-augmented NIR on a symmetric exact target. One CSV row per (case, method).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="results/benchmarks/sampling.csv",
                        help="output CSV: case,tokens,method,batch,seconds,samples_per_second,ess,"
                        "seconds_per_effective_sample,n_proposed,efficiency,notes")
    parser.add_argument("--cases", default="3x2x3,4x4x3,8x8x3", help="comma-separated LXxLYxK (K*N = 18, 48, 192)")
    parser.add_argument("--batch", type=int, default=d["batch"], help="samples per call (paper: 512)")
    parser.add_argument("--g", type=float, default=d["g"], help="transverse field of the TFI NQS cases")
    parser.add_argument("--width", type=int, default=d["width"], help="MLP width of the NQS (table A1: 128)")
    parser.add_argument("--depth", type=int, default=d["depth"], help="MLP hidden layers of the NQS (table A1: 4)")
    parser.add_argument("--kv-repeats", type=int, default=d["kv_repeats"], help="timed KV-cache sampling runs (median)")
    parser.add_argument("--naive-batch", type=int, default=d["naive_batch"], help="batch of the (slow) naive-recompute timing")
    parser.add_argument("--naive-repeats", type=int, default=d["naive_repeats"], help="timed naive-recompute runs (median)")
    parser.add_argument("--mcmc-calls", type=int, default=d["mcmc_calls"], help="timed MCMC calls after the first")
    parser.add_argument("--nir-calls", type=int, default=d["nir_calls"], help="timed NIR calls after the first")
    parser.add_argument("--pretrain-steps", type=int, default=d["pretrain_steps"], help="proposal pre-training steps on MCMC samples")
    parser.add_argument("--pretrain-batch", type=int, default=d["pretrain_batch"], help="proposal pre-training minibatch")
    parser.add_argument("--symmetry-case", default="x".join(map(str, d["symmetry_case"] or ())) or "none",
                        help="LXxLYxK of the symmetric-target comparison (K*N <= 20), or 'none'")
    parser.add_argument("--symmetry-g", type=float, default=d["symmetry_g"], help="TFI field of the symmetric target")
    parser.add_argument("--symmetry-pretrain-steps", type=int, default=d["symmetry_pretrain_steps"],
                        help="its proposal pre-training steps")
    parser.add_argument("--seed", type=int, default=d["seed"], help="random seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_bench_sampling(args) -> None:
    from nirbench.bench import bench_sampling, parse_cases

    cases = parse_cases(args.cases)
    symmetry = None if args.symmetry_case.strip().lower() == "none" else parse_cases(args.symmetry_case)[0]
    frame = bench_sampling(
        cases, batch=args.batch, g=args.g, width=args.width, depth=args.depth, kv_repeats=args.kv_repeats,
        naive_batch=args.naive_batch, naive_repeats=args.naive_repeats, mcmc_calls=args.mcmc_calls,
        nir_calls=args.nir_calls, pretrain_steps=args.pretrain_steps, pretrain_batch=args.pretrain_batch,
        symmetry_case=symmetry, symmetry_g=args.symmetry_g, symmetry_pretrain_steps=args.symmetry_pretrain_steps,
        seed=args.seed, progress=not args.no_progress,
    )  # fmt: skip
    write_csv_atomically(frame, args.out)
    print(frame.drop(columns="notes").to_string(index=False))


def _add_bench_vmc(kinds) -> None:
    from nirbench.bench import bench_vmc, vmc_bench_config

    d = _keyword_defaults(bench_vmc, vmc_bench_config)
    parser = kinds.add_parser(
        "vmc",
        help="seconds per VMC step (MCMC + minSR/Adam) on NetKet's comparison problem",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Seconds per VMC step (sample -> local energies -> update) for the 4x4 periodic TFI at "
        "g = 3, K = 1, MLP 4 x 128 (LayerNorm + GELU), batch 512, Metropolis set up as NetKet's "
        "MetropolisLocal(n_chains=16, sweep_size=16) with 40 discarded sweeps per chain per step; minSR "
        "(diagonal shift 1e-4) + Adam and plain Adam. Median over the timed steps after --warmup untimed "
        "(compilation) steps. benchmarks/compare_netket.py times NetKet on the same problem.",
    )
    parser.add_argument("--out", default="results/benchmarks/vmc.csv",
                        help="output CSV: case,sampler,optimizer,batch,params,seconds_per_step")
    parser.add_argument("--steps", type=int, default=d["n_steps"], help="timed steps per optimizer (median)")
    parser.add_argument("--warmup", type=int, default=d["n_warmup"], help="untimed steps first (compilation)")
    parser.add_argument("--optimizers", nargs="+", choices=d["optimizers"], default=list(d["optimizers"]),
                        help="minsr: minSR + Adam; adam: plain Adam")
    parser.add_argument("--lx", type=int, default=d["lx"], help="lattice length in x (periodic TFI)")
    parser.add_argument("--ly", type=int, default=d["ly"], help="lattice length in y")
    parser.add_argument("--g", type=float, default=d["g"], help="transverse field")
    parser.add_argument("--width", type=int, default=d["width"], help="MLP width")
    parser.add_argument("--depth", type=int, default=d["depth"], help="MLP hidden layers")
    parser.add_argument("--batch", type=int, default=d["batch"], help="samples per step")
    parser.add_argument("--chains", type=int, default=d["n_chains"], help="Metropolis chains")
    parser.add_argument("--sweep-size", type=int, default=d["sweep_size"], help="flips per recorded sample (None: lx*ly)")
    parser.add_argument("--discard-sweeps", type=int, default=d["n_discard_sweeps"], help="discarded sweeps per chain per step")
    parser.add_argument("--diag-shift", type=float, default=d["diag_shift"], help="minSR diagonal shift")
    parser.add_argument("--seed", type=int, default=d["seed"], help="random seed")
    parser.add_argument("--no-progress", action="store_true", help="do not print the step times")


def _run_bench_vmc(args) -> None:
    from nirbench.bench import bench_vmc

    frame = bench_vmc(
        args.steps, args.warmup, args.optimizers, lx=args.lx, ly=args.ly, g=args.g, width=args.width,
        depth=args.depth, batch=args.batch, n_chains=args.chains, sweep_size=args.sweep_size,
        n_discard_sweeps=args.discard_sweeps, diag_shift=args.diag_shift, seed=args.seed,
        progress=not args.no_progress,
    )  # fmt: skip
    write_csv_atomically(frame, args.out)
    print(frame.to_string(index=False))
    print(f"(load average {os.getloadavg()[0]:.2f}; wrote {args.out})")


def _add_bench_profile(kinds) -> None:
    parser = kinds.add_parser(
        "profile",
        help="where the time of a VMC iteration goes, phase by phase (CSV + stacked-bar figure)",
        description="Times each phase of a VMC iteration (proposal sampling with the NQS evaluation of the "
        "proposals, proposal training, local energies, gradient and minSR, trust region, host) on the cases of "
        "issue 16: the recipes of config/recipes/ and the 4x4 K = 3 reference of commit 248719e; see nirbench.profile.",
    )
    parser.add_argument("--out", default="results/benchmarks/profile.csv",
                        help="output CSV: case,tokens,phase,seconds_per_iteration,fraction,iterations")
    parser.add_argument("--figure", help="stacked-bar figure (PNG; default: figures/benchmarks/<name of --out>.png)")
    parser.add_argument("--cases", nargs="+", help="cases of nirbench.profile.PROFILE_CASES (default: all)")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations, unprofiled then profiled")
    parser.add_argument("--skip", type=int, default=5, help="untimed iterations first (compilation)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def _run_bench_profile(args) -> None:
    from nirbench.profile import PROFILE_CASES, bench_profile, plot_profile

    cases = args.cases or list(PROFILE_CASES)
    unknown = sorted(set(cases) - set(PROFILE_CASES))
    if unknown:
        raise ValueError(f"unknown profile case(s) {unknown}; the cases are {sorted(PROFILE_CASES)}")
    if args.figure is None:  # named after the CSV, so a profile written elsewhere leaves the default one's figure alone
        args.figure = str(Path("figures/benchmarks") / f"{Path(args.out).stem}.png")
    check_output_paths({"--out": args.out, "--figure": args.figure})
    frame = bench_profile(cases, args.iterations, args.skip, args.seed)
    write_csv_atomically(frame, args.out)
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    plot_profile(frame, args.figure)
    print(f"(load average {os.getloadavg()[0]:.2f}; wrote {args.out}, {args.figure})")


#: ``nirbench bench <kind>``: one (add, run) pair per benchmark kind, like ``COMMANDS``
BENCH_KINDS = {
    "sampling": (_add_bench_sampling, _run_bench_sampling),
    "vmc": (_add_bench_vmc, _run_bench_vmc),
    "profile": (_add_bench_profile, _run_bench_profile),
}


def _add_bench(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks (kinds: " + ", ".join(BENCH_KINDS) + ")",
        description="Benchmarks; each kind writes one tidy CSV.",
    )
    kinds = parser.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    for add, _ in BENCH_KINDS.values():
        add(kinds)


def _run_bench(args) -> None:
    BENCH_KINDS[args.bench_kind][1](args)


COMMANDS = {
    "ed": (_add_ed, _run_ed),
    "vmc": (_add_vmc, _run_vmc),
    "evaluate": (_add_evaluate, _run_evaluate),
    "ablate": (_add_ablate, _run_ablate),
    "dmrg": (_add_dmrg, _run_dmrg),
    "extrapolate": (_add_extrapolate, _run_extrapolate),
    "bench": (_add_bench, _run_bench),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nirbench",
        description="Neural importance resampling for neural quantum states: exact references, "
        "samplers, VMC training, DMRG scans and benchmarks. Each subcommand writes a tidy CSV.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command][1](args)
    except ValueError as error:
        print(f"nirbench {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
