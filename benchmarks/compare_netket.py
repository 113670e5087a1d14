"""Seconds per VMC step: nirbench against NetKet 3.23 on the identical problem, in one run.

The problem (the one of ``nirbench bench vmc``):

* 4x4 periodic transverse-field Ising model at g = 3, ``H = -sum_<jk> Z_j Z_k - g sum_j X_j``
  (NetKet: ``nk.operator.Ising(hilbert, Hypercube(4, pbc=True), h=3.0, J=-1.0)``, whose convention
  is ``H = -h sum X + J sum ZZ``);
* one state, MLP with 4 hidden layers of width 128, each Dense -> LayerNorm -> GELU, then
  Dense(2) giving ``log psi = out[0] + 1j * out[1]``; real float64 parameters (JAX x64) in both codes
  (NetKet: the same network written in ``flax.linen``, LayerNorm epsilon 1e-5 as in Equinox);
* 512 samples per step from single-spin-flip Metropolis: NetKet's
  ``MetropolisLocal(n_chains=16, sweep_size=16)`` with ``MCState(n_samples=512,
  n_discard_per_chain=40)``; nirbench's ``MetropolisSampler(batch_size=512, n_chains=16,
  n_warmup=640, thinning=16, rule="flip")``;
* optimiser ``minsr``: nirbench minSR (diagonal shift 1e-4) + Adam(1e-3) against NetKet
  ``VMC_SR(diag_shift=1e-4, use_ntk=True)`` with ``optax.adam(1e-3)`` (NetKet then picks its
  on-the-fly NTK by itself and prints "Automatic SR on_the_fly choice"); optimiser ``adam``: plain
  Adam(1e-3) on the energy gradient in both (NetKet: ``nk.driver.VMC``).

Each code takes ``--warmup`` untimed steps (compilation), then ``--steps`` timed steps; the two codes'
steps are *interleaved* (one nirbench step, one NetKet step, ...) so that load changes on a shared
machine hit both alike. A step is timed until its parameters (and sampler state) are computed
(``jax.block_until_ready``). The table shows the median seconds per step and the ratio
nirbench / NetKet (below 1: nirbench is faster). The 1-minute load average is printed and written,
because on a busy machine the absolute numbers mean little.

Install and run (from the repository root)::

    pip install -e ".[compare]"          # nirbench plus netket>=3.23 (and flax)
    python benchmarks/compare_netket.py --steps 10 --out results/benchmarks/compare_netket.csv

Options: ``--steps``, ``--warmup``, ``--optimizers minsr adam``, ``--batch``, ``--seed``, ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

try:
    import netket as nk
except ImportError as error:  # pragma: no cover - depends on the environment
    sys.exit(
        f"compare_netket.py needs NetKet (import failed: {error}).\n"
        'Install the optional extra from the repository root:  pip install -e ".[compare]"'
    )

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

import nirbench  # noqa: F401  (enables x64, as NetKet does)
from nirbench.bench import timed_vmc_step, vmc_bench_config
from nirbench.profiling import cpu_description
from nirbench.updates import count_parameters
from nirbench.vmc import VMCRun

L, G, WIDTH, DEPTH, N_CHAINS, N_DISCARD, DIAG_SHIFT, LR = 4, 3.0, 128, 4, 16, 40, 1e-4, 1e-3
COLUMNS = ["code", "case", "sampler", "optimizer", "batch", "params", "seconds_per_step", "load_1min", "cpu"]


class FlaxMLP(nn.Module):
    """The nirbench MLP in flax.linen: ``depth`` x (Dense(width) -> LayerNorm -> GELU) -> Dense(2)."""

    width: int = WIDTH
    depth: int = DEPTH

    @nn.compact
    def __call__(self, x):
        x = x.astype(jnp.float64)
        for _ in range(self.depth):
            x = nn.Dense(self.width, param_dtype=jnp.float64)(x)
            x = nn.LayerNorm(epsilon=1e-5, param_dtype=jnp.float64)(x)
            x = nn.gelu(x)  # approximate (tanh) GELU, as jax.nn.gelu
        out = nn.Dense(2, param_dtype=jnp.float64)(x)
        return out[..., 0] + 1j * out[..., 1]


class NetKetRunner:
    """A NetKet driver for the benchmark problem; ``step()`` returns its wall-clock seconds."""

    def __init__(self, optimizer: str, batch: int, seed: int):
        graph = nk.graph.Hypercube(length=L, n_dim=2, pbc=True)
        hilbert = nk.hilbert.Spin(s=0.5, N=graph.n_nodes)
        hamiltonian = nk.operator.Ising(hilbert, graph, h=G, J=-1.0)
        sampler = nk.sampler.MetropolisLocal(hilbert, n_chains=N_CHAINS, sweep_size=graph.n_nodes)
        self.state = nk.vqs.MCState(
            sampler, FlaxMLP(), n_samples=batch, n_discard_per_chain=N_DISCARD, seed=seed, sampler_seed=seed
        )
        if optimizer == "minsr":
            self.driver = nk.driver.VMC_SR(
                hamiltonian, optax.adam(LR), diag_shift=DIAG_SHIFT, use_ntk=True, variational_state=self.state
            )
        else:
            self.driver = nk.driver.VMC(hamiltonian, optax.adam(LR), variational_state=self.state)
        self.params = int(self.state.n_parameters)

    def step(self) -> float:
        start = time.perf_counter()
        self.driver.run(n_iter=1, out=(), show_progress=False)
        jax.block_until_ready((self.state.parameters, self.state.sampler_state))
        return time.perf_counter() - start


class NirbenchRunner:
    """A nirbench :class:`~nirbench.vmc.VMCRun` for the benchmark problem."""

    def __init__(self, optimizer: str, batch: int, seed: int):
        self.run = VMCRun(vmc_bench_config(optimizer, lx=L, ly=L, g=G, width=WIDTH, depth=DEPTH, batch=batch,
                                           n_chains=N_CHAINS, n_discard_sweeps=N_DISCARD, diag_shift=DIAG_SHIFT,
                                           lr=LR, seed=seed))  # fmt: skip
        self.params = count_parameters(self.run.nqs)

    def step(self) -> float:
        return timed_vmc_step(self.run)


def compare(optimizer: str, steps: int, warmup: int, batch: int, seed: int) -> list[dict]:
    """Interleaved timing of both codes for one optimiser; returns two rows (nirbench, netket)."""
    runners = {
        "nirbench": NirbenchRunner(optimizer, batch, seed),
        "netket": NetKetRunner(optimizer, batch, seed),
    }
    if runners["nirbench"].params != runners["netket"].params:
        raise RuntimeError(f"parameter counts differ: { {k: r.params for k, r in runners.items()} }")
    for name, runner in runners.items():
        for i in range(warmup):
            seconds = runner.step()
            print(f"  {optimizer:5s} {name:8s} warm-up {i + 1}/{warmup}: {seconds:.3f} s", flush=True)
    times = {name: [] for name in runners}
    loads = []
    for i in range(steps):
        loads.append(os.getloadavg()[0])
        for name, runner in runners.items():
            times[name].append(runner.step())
        print(f"  {optimizer:5s} step {i + 1}/{steps}: "
              + ", ".join(f"{name} {t[-1]:.3f} s" for name, t in times.items())
              + f"  (load {loads[-1]:.2f})", flush=True)  # fmt: skip
    sampler = f"mcmc_local_chains{N_CHAINS}_sweep{L * L}_discard{N_DISCARD}"
    case = f"tfi_{L}x{L}_periodic_g{G:g}_k1_mlp{DEPTH}x{WIDTH}"
    return [
        {
            "code": name,
            "case": case,
            "sampler": sampler,
            "optimizer": optimizer,
            "batch": batch,
            "params": runner.params,
            "seconds_per_step": float(np.median(times[name])),
            "load_1min": float(np.mean(loads)),
            "cpu": cpu_description(),
        }
        for name, runner in runners.items()
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per code and optimiser (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation)")
    parser.add_argument("--optimizers", nargs="+", choices=("minsr", "adam"), default=["minsr", "adam"])
    parser.add_argument("--batch", type=int, default=512, help="samples per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    print(f"nirbench vs NetKet {nk.__version__} (jax {jax.__version__}, {jax.devices()[0].platform}, "
          f"x64={jax.config.jax_enable_x64}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
    rows = []
    for optimizer in args.optimizers:
        rows += compare(optimizer, args.steps, args.warmup, args.batch, args.seed)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    print()
    print(frame[["code", "optimizer", "params", "seconds_per_step", "load_1min"]].to_string(index=False))
    for optimizer in args.optimizers:
        sub = frame[frame.optimizer == optimizer].set_index("code")["seconds_per_step"]
        label = "minSR vs VMC_SR(use_ntk=True)" if optimizer == "minsr" else "Adam vs VMC + Adam"
        print(f"{label}: nirbench / netket = {sub['nirbench'] / sub['netket']:.3f}")
    if args.out:
        from nirbench.io import write_csv_atomically

        write_csv_atomically(frame, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
