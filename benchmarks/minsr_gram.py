"""The layer-wise minSR Gram matrix: all K^2 configuration pairs at once against k <= l pairs.

``nirbench.minsr._layerwise_gram`` forms, per linear layer, the Gram of the log-derivative rows
from the pairs (k, l) of configurations in a K-tuple, only k <= l (the pair (l, k) is the
transpose). This script times it against the former all-pairs contraction (reproduced below as
``all_pairs_gram``, same inputs) in one process on the recipe's 4x4 K = 3 MLP, batch 512, random
tuples, and checks that both agree to round-off:

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\
        python benchmarks/minsr_gram.py --repeats 5
"""

import argparse
import inspect
import textwrap
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nirbench import minsr
from nirbench.options import VMCConfig, read_options_file
from nirbench.vmc import VMCRun

PAIRS_LOOP_START = "        for k in range(n_states):"
ALL_PAIRS = """        dd = jnp.einsum("jrbko,jsclo->jrbkscl", d_rows, d_rows)
        aa = jnp.einsum("jbki,jcli->jbkcl", a, a) + bias
        gram = gram + jnp.einsum("jrbkscl,jbkcl->rbsc", dd, aa)
"""


def all_pairs_gram():
    """``_layerwise_gram`` with its k <= l loop replaced by the former all-pairs einsums."""
    lines = inspect.getsource(minsr._layerwise_gram).splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(PAIRS_LOOP_START))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("    # the other parameters"))
    source = "".join(lines[:start]) + ALL_PAIRS + "".join(lines[end:])
    namespace = dict(vars(minsr))
    # the current source with only its pair loop swapped: the two differ in nothing else
    exec(textwrap.dedent(source.replace("def _layerwise_gram", "def all_pairs_gram")), namespace)  # noqa: S102
    return namespace["all_pairs_gram"]


def seconds(function, repeats):
    jax.block_until_ready(function())
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(function())
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    options = {**read_options_file("config/recipes/tfi_multistate_nir.yaml"), "model": "tfi", "lx": 4, "ly": 4,
               "bc": "open", "g": 2.0, "states": 3, "batch": args.batch, "max_minutes": None}  # fmt: skip
    nqs = VMCRun(VMCConfig.from_dict(options)).nqs
    configs = jax.random.choice(jax.random.key(0), jnp.array([-1, 1], dtype=jnp.int8), (args.batch, 3, 16))
    pairs, everything = eqx.filter_jit(minsr._layerwise_gram), eqx.filter_jit(all_pairs_gram())
    difference = np.abs(np.asarray(pairs(nqs, configs)) - np.asarray(everything(nqs, configs))).max()
    scale = np.abs(np.asarray(everything(nqs, configs))).max()
    t_all, t_pairs = seconds(lambda: everything(nqs, configs), args.repeats), seconds(lambda: pairs(nqs, configs), args.repeats)
    print(f"all pairs {t_all:.3f} s, k <= l pairs {t_pairs:.3f} s, ratio {t_all / t_pairs:.2f}; "
          f"max relative difference {difference / scale:.1e}")


if __name__ == "__main__":
    main()
