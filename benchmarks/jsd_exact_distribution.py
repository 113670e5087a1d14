"""The JSD measurement's exact distribution: row by row against the table of configurations.

Times, in one process, ``exact_distribution`` (the samplers' target evaluated on every row of
every K-tuple) against ``nqs_tuple_log_probs`` (the K networks once per configuration, then a
determinant per tuple) and a whole ``sampler_jsd`` measurement, on figure 3's run (TFI 3x2 open,
g = 0.01, K = 3, an untrained NQS; 2^18 tuples), and prints the largest probability difference:

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\
        python benchmarks/jsd_exact_distribution.py [--run-yaml PATH] [--repeats 3]
"""

import argparse
import time

import jax
import numpy as np
import yaml

from nirbench.evaluation import sampler_jsd
from nirbench.samplers.exact import exact_distribution, nqs_tuple_log_probs
from nirbench.vmc import VMCConfig, VMCRun

FIG3_RUN = "results/vmc/preset~tfi_jsd/tfi/L~3x2/bc~open/g~0.01/K~3/sampler~mcmc/seed~0/run.yaml"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-yaml", default=FIG3_RUN)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with open(args.run_yaml) as handle:
        options = yaml.safe_load(handle)
    options.pop("reference", None)
    run = VMCRun(VMCConfig(**options))
    k, n = run.config.states, run.hamiltonian.n_sites
    for repeat in range(args.repeats):  # the first includes compilation
        start = time.perf_counter()
        _, rows = exact_distribution(run.log_prob_fn, run.nqs, k, n)
        rows = np.asarray(rows)
        t_rows = time.perf_counter() - start
        start = time.perf_counter()
        table = np.asarray(jax.nn.softmax(nqs_tuple_log_probs(run.nqs, k, n, run.config.sampling_power)))
        t_table = time.perf_counter() - start
        start = time.perf_counter()
        sampler_jsd(run, run.sampler_state, jax.random.key(repeat), run.config.jsd_samples)
        t_jsd = time.perf_counter() - start
        print(f"row by row {t_rows:.2f} s, table {t_table:.3f} s, max |dp| {np.abs(rows - table).max():.1e}, "
              f"sampler_jsd ({run.config.jsd_samples} draws) {t_jsd:.2f} s")


if __name__ == "__main__":
    main()
