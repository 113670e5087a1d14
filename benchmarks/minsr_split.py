"""The layer-wise minSR direction as one compiled program against two (the Gram first, then the rest).

``nirbench.minsr.layerwise_natural_gradient_tree`` compiles the Gram matrix apart from the
centring, solve and VJP that follow it; inside one ``jit`` (as ``nirbench.updates.nqs_updates``
compiled it before) both parts are one program. This script times both forms in one process on
the issue-16 reference NQS (4x4 TFI, K = 3, MLP 64 x 3, ``benchmarks/revision_speed.py``'s
``tfi4x4_k3_248719e``) with random tuples and local energies, and checks that they agree::

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\
        python benchmarks/minsr_split.py --batch 512 --repeats 5
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
from proposal_speed import timed
from revision_speed import CASES

from nirbench import minsr
from nirbench.vmc import VMCConfig, VMCRun


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    nqs = VMCRun(VMCConfig(**CASES["tfi4x4_k3_248719e"])).nqs
    key_configs, key_eps = jax.random.split(jax.random.PRNGKey(0))
    shape = (args.batch, nqs.n_states, 16)
    configs = (1 - 2 * jax.random.bernoulli(key_configs, 0.5, shape)).astype(jnp.int8)
    eps = jax.random.normal(key_eps, (args.batch,)) + 0j

    def two_programs(nqs, configs, eps):
        return minsr.layerwise_natural_gradient_tree(nqs, configs, eps, diag_shift=1e-4)

    one_program = eqx.filter_jit(two_programs)  # everything inlined into one program
    results = {}
    for name, fn in (("one program", one_program), ("two programs", two_programs)) * 2:
        results[name] = timed(name, fn, (nqs, configs, eps), args.repeats)
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(results["one program"]), jax.tree_util.tree_leaves(results["two programs"]))
    )
    print(f"largest difference between the directions: {diff:.2e}")


if __name__ == "__main__":
    main()
