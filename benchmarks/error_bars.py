"""Error bars against the scatter of repeated estimates, with and without the correction.

For each NQS seed and sampler, ``--repeats`` estimates of the trace energy of one fixed two-state
MLP NQS on the 3x2 open TFI (g = 1; exact energy by enumeration) are drawn, one sampler call each.
The row records the scatter of the estimates over the mean reported sigma, for the sigma of
:func:`nirbench.estimators.standard_error` (``ratio``) and for the naive ``sqrt(var / B)`` (Kish's
ESS for weighted batches; ``naive_ratio``), and the bias of the mean in units of its standard error.
The samplers are those of ``tests/test_error_bars.py``, whose assertions are on seed 0.

    python benchmarks/error_bars.py --seeds 0 1 2 3 --out results/benchmarks/error_bars.csv
"""

import argparse

import equinox as eqx
import jax
import numpy as np
import pandas as pd

from nirbench.estimators import local_energy_matrices, standard_error
from nirbench.exact import nqs_exact_energies
from nirbench.hamiltonians import make_hamiltonian
from nirbench.io import write_csv_atomically
from nirbench.models import batched_log_prob, build_nqs
from nirbench.samplers import make_sampler

PROPOSAL = {"n_states": 2, "embed_dim": 4, "n_heads": 1, "n_layers": 1, "train_steps": 0}
SAMPLERS = {
    "exact": ("exact", {"batch_size": 64}),
    "mcmc_4_chains_thinning_1": ("mcmc", {"batch_size": 128, "n_chains": 4, "n_warmup": 50, "thinning": 1}),
    "nir_resample_alpha_ess_0.5": ("nir", {"batch_size": 64, "alpha_ess": 0.5, **PROPOSAL}),
    "nir_importance": ("nir", {"batch_size": 64, "mode": "importance", **PROPOSAL}),
}


def measure(seed: int, repeats: int) -> list[dict]:
    hamiltonian = make_hamiltonian("tfi", 3, 2, bc="open", g=1.0)
    nqs = build_nqs(hamiltonian, "mlp", n_states=2, width=8, depth=1, key=jax.random.key(seed))
    exact = nqs_exact_energies(nqs, hamiltonian)["trace"]
    local_energies = eqx.filter_jit(local_energy_matrices)
    rows = []
    for case, (name, options) in SAMPLERS.items():
        sampler = make_sampler(name, hamiltonian, **options)
        state = sampler.init(jax.random.key(1), 2, hamiltonian.n_sites)
        estimates, sigmas, naive = [], [], []
        for key in jax.random.split(jax.random.key(2), repeats):
            batch, state, stats = sampler.sample(batched_log_prob, nqs, state, key)
            traces = np.real(np.trace(np.asarray(local_energies(nqs, hamiltonian, batch.configs)), axis1=1, axis2=2))
            weights = np.asarray(batch.weights, dtype=np.float64)
            estimates.append(float(np.sum(weights * traces)))
            sigmas.append(standard_error(traces, batch)[0])
            naive.append(np.sqrt(np.sum(weights * (traces - estimates[-1]) ** 2) * np.sum(weights**2)))
        scatter = float(np.std(estimates, ddof=1))
        rows.append({
            "nqs_seed": seed, "sampler": case, "repeats": repeats, "exact_energy": exact,
            "mean_estimate": float(np.mean(estimates)), "scatter": scatter, "mean_sigma": float(np.mean(sigmas)),
            "ratio": scatter / np.mean(sigmas), "naive_ratio": scatter / np.mean(naive),
            "bias_in_standard_errors": (np.mean(estimates) - exact) / (scatter / np.sqrt(repeats)),
            "efficiency": stats["efficiency"],
        })  # fmt: skip
        print(f"seed {seed} {case:28s} ratio {rows[-1]['ratio']:.2f}  naive {rows[-1]['naive_ratio']:.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="NQS seeds")
    parser.add_argument("--repeats", type=int, default=60, help="estimates per sampler")
    parser.add_argument("--out", default="results/benchmarks/error_bars.csv", help="output CSV")
    args = parser.parse_args()
    rows = [row for seed in args.seeds for row in measure(seed, args.repeats)]
    write_csv_atomically(pd.DataFrame(rows), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
