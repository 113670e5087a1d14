"""Seconds per iteration of variants of the TFI recipe (exploration; how the default scale was sized).

    python benchmarks/recipe_speed.py [--g 3.0] [--lattice 4x4] [--iterations 35] [--skip 10]

Runs each variant of ``config/recipes/tfi_multistate_nir.yaml`` on the open lattice at field g,
K = 3, for ``--iterations`` iterations from the same seed, and prints the mean and median seconds
of the iterations after the first ``--skip`` (compilation), with the last efficiency, proposal
count and trace energy. Measured 2026-12-02 on the 2-core CPU, 4x4, g = 3, with another job on the
other core (so only the ratios mean much): recipe 3.9 s, recipe with batch 256 2.3 s, recipe with
batch 256 and a 16/2/2 proposal 1.8 s (the default scale's `tfi` preset).
"""

import argparse
import time

import numpy as np

from nirbench.options import VMCConfig, read_options_file
from nirbench.vmc import VMCRun

VARIANTS = {
    "recipe": {},
    "no_trust_region": {"trust_region": None, "trust_floor": 0.0},
    "batch_training": {"proposal_training": "batch", "proposal_retrain_steps": None},
    "batch256": {"batch": 256},
    "batch256_proposal16": {"batch": 256, "proposal_dim": 16, "proposal_heads": 2},
    "mcmc": {"sampler": "mcmc"},
    "mcmc_batch256": {"sampler": "mcmc", "batch": 256},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--g", type=float, default=3.0)
    parser.add_argument("--lattice", default="4x4")
    parser.add_argument("--iterations", type=int, default=35)
    parser.add_argument("--skip", type=int, default=10)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    lx, ly = (int(n) for n in args.lattice.split("x"))
    base = read_options_file("config/recipes/tfi_multistate_nir.yaml")
    base.update(lx=lx, ly=ly, bc="open", g=args.g, states=3, seed=0)
    for name in args.variants:
        run = VMCRun(VMCConfig.from_dict({**base, **VARIANTS[name]}))
        seconds = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            row = run.step()
            seconds.append(time.perf_counter() - start)
        kept = np.array(seconds[args.skip :])
        print(
            f"{name:22s} s/iteration {kept.mean():.3f} (median {np.median(kept):.3f})  efficiency "
            f"{row['efficiency']:.2f}  proposed {row['n_proposed']}  energy {row['energy']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
