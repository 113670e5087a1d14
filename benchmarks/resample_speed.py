"""Multinomial resampling: Gumbel-max (``jax.random.categorical``) against inverse CDF
(:func:`nirbench.samplers.base.multinomial_indices`), seconds per draw of ``B`` indices from ``M``
log-weights, measured in one run on one core.

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \
        python benchmarks/resample_speed.py

NIR's proposal training (``proposal_training: proposals``) draws one minibatch of ``B = 512`` from
the whole proposal set (up to 51 200 proposals, padded to 65 536) at every Adam step;
``jax.random.categorical`` draws ``B x M`` Gumbel numbers for it.
"""

from __future__ import annotations

import argparse
import time

import jax

from nirbench.samplers.base import multinomial_indices


def seconds_per_call(function, log_w, repeats: int) -> float:
    """Mean wall seconds of ``function(key, log_w)`` after one compiling call."""
    function(jax.random.key(0), log_w).block_until_ready()
    start = time.perf_counter()
    for i in range(repeats):
        function(jax.random.key(i + 1), log_w).block_until_ready()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=512, help="B, indices per call")
    parser.add_argument("--weights", type=int, nargs="+", default=[4096, 65536], help="M, log-weights")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    for m in args.weights:
        log_w = 3.0 * jax.random.normal(jax.random.key(0), (m,))
        gumbel = jax.jit(lambda key, lw: jax.random.categorical(key, lw, shape=(args.draws,)))
        inverse = jax.jit(lambda key, lw: multinomial_indices(key, lw, args.draws))
        t_gumbel = seconds_per_call(gumbel, log_w, args.repeats)
        t_inverse = seconds_per_call(inverse, log_w, args.repeats)
        print(f"B = {args.draws}, M = {m}: categorical {t_gumbel * 1e3:.2f} ms, inverse CDF "
              f"{t_inverse * 1e3:.3f} ms, ratio {t_gumbel / t_inverse:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
