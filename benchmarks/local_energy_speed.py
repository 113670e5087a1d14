"""Local energies of a sampled batch: the direct evaluation against the distinct-configuration one.

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \
        python benchmarks/local_energy_speed.py [--cases tfi4x4_k3 j1j2_4x4] [--repeats 5]

For each case of ``nirbench bench profile`` (the recipes of ``config/recipes/``) the run makes
``--warmup`` VMC iterations, draws one batch, and times
``nirbench.estimators.local_energy_matrices`` (jitted, every connected configuration evaluated)
against ``local_energy_matrices_distinct`` on it, alternating, ``--repeats`` times each. Prints the
median seconds of each, the connected configurations, the distinct ones with a non-zero matrix
element, and the largest relative difference of the two results.
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import numpy as np

from nirbench.estimators import (
    distinct_needed_configurations,
    local_energy_matrices,
    local_energy_matrices_distinct,
)
from nirbench.options import VMCConfig
from nirbench.profile import PROFILE_CASES, case_options
from nirbench.vmc import VMCRun


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["tfi4x4_k3", "j1j2_4x4"], choices=list(PROFILE_CASES))
    parser.add_argument("--warmup", type=int, default=3, help="VMC iterations before the batch is drawn")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    direct_fn = eqx.filter_jit(local_energy_matrices)
    for case in args.cases:
        run = VMCRun(VMCConfig.from_dict(case_options(*PROFILE_CASES[case])))
        for _ in range(args.warmup):
            run.step()
        batch, _, _ = run.draw(run.sampler, run.sampler_state, jax.random.PRNGKey(3))
        variants = {"direct": direct_fn, "distinct": local_energy_matrices_distinct}
        inputs = (run.nqs, run.hamiltonian, batch.configs)
        results = {name: np.asarray(f(*inputs)) for name, f in variants.items()}  # compiles
        seconds = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, f in variants.items():
                start = time.perf_counter()
                jax.block_until_ready(f(*inputs))
                seconds[name].append(time.perf_counter() - start)
        distinct, _, _, mels = distinct_needed_configurations(run.hamiltonian, batch.configs)
        difference = np.max(np.abs(results["direct"] - results["distinct"])) / np.max(np.abs(results["direct"]))
        print(
            f"{case}: direct {np.median(seconds['direct']):.3f} s, distinct {np.median(seconds['distinct']):.3f} s "
            f"(median of {args.repeats}); {mels.size} connected, {len(distinct)} "
            f"distinct with a non-zero element; largest relative difference {difference:.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
