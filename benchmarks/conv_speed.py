"""The ResCNN's circular convolution as one dense matrix product against XLA's convolution.

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \
        python benchmarks/conv_speed.py --out results/benchmarks/conv_speed.csv

For each (channels, lattice) a 2-block ``ResCNN`` (float64) is evaluated on ``--configs`` random
configurations in one jitted ``vmap``, once with every convolution a dense matrix product
(``nirbench.models.rescnn.dense_conv_matrix``) and once with XLA's convolution, alternating,
``--repeats`` times each after a compiling call. One CSV row per case: the fastest call of each
form, their ratio (dense / convolution), the largest difference of the two results, and whether
``nirbench.models.rescnn.uses_dense_conv`` picks the dense form for that case (the rule the ratios
are meant to support).
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import nirbench  # noqa: F401  (x64)
from nirbench.models import rescnn

#: (channels, lattice side, configurations): the J1-J2 recipe's 8 channels, the paper's 16, and 4
CASES = [(4, 4, 8192), (4, 8, 8192), (8, 4, 8192), (8, 6, 8192), (8, 8, 8192), (8, 10, 2048),
         (16, 4, 2048), (16, 6, 2048), (16, 8, 2048), (16, 10, 2048), (16, 12, 2048)]  # fmt: skip


def evaluate_both(channels: int, side: int, n_configs: int, repeats: int) -> dict:
    """One row: the fastest of ``repeats`` calls of each form (seconds) and their difference."""
    net = rescnn.ResCNN(side, side, channels, 2, key=jax.random.key(0))
    configs = jnp.asarray(np.random.default_rng(0).choice([-1.0, 1.0], (n_configs, side * side)))
    decide = rescnn.uses_dense_conv
    forms = {}
    try:
        for name, dense in (("dense", True), ("convolution", False)):
            rescnn.uses_dense_conv = lambda n_sites, c_in, c_out, dense=dense: dense
            fn = eqx.filter_jit(lambda net, configs: jax.vmap(net)(configs))  # traced anew per form
            forms[name] = (fn, jax.block_until_ready(fn(net, configs)))
    finally:
        rescnn.uses_dense_conv = decide
    times = {name: [] for name in forms}
    for _ in range(repeats):  # alternating, so that both forms see the same machine
        for name, (fn, _) in forms.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(net, configs))
            times[name].append(time.perf_counter() - start)
    dense_s, conv_s = min(times["dense"]), min(times["convolution"])
    return {
        "channels": channels, "lattice": f"{side}x{side}", "configs": n_configs,
        "dense_seconds": dense_s, "convolution_seconds": conv_s, "ratio": dense_s / conv_s,
        "max_abs_difference": float(jnp.max(jnp.abs(forms["dense"][1] - forms["convolution"][1]))),
        "rule_picks_dense": decide(side * side, channels, channels),
    }  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/benchmarks/conv_speed.csv")
    args = parser.parse_args(argv)
    rows = []
    for channels, side, n_configs in CASES:
        rows.append(evaluate_both(channels, side, n_configs, args.repeats))
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
