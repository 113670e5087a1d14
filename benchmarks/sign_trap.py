"""Where the J1-J2 optimisation stalls, without sampling noise: exact SR in the symmetric sector.

The symmetrised J1-J2 networks (``build_nqs(..., symmetries=True)``) are invariant under the
lattice symmetries and the global spin flip, and, with ``marshall_sign``, the Marshall sign is
invariant too in the zero-magnetisation sector. So ``psi`` is constant on every orbit of that group,
and the energy is exact from the ``R`` orbit representatives alone (107 on the 4x4 torus,
against 12870 configurations in the sector):

    E = psi_r^T H_r psi_r / psi_r^T (n_r psi_r),    H_r = P^T H P,

with ``P`` ``(D, R)`` the 0/1 map from representatives to configurations and ``n_r`` the orbit sizes.
Each step takes the minSR direction of ``nirbench.minsr`` with the local energies
``(H_r psi)_r / (n_r psi_r)`` and applies ``-lr * direction`` (imaginary time; ``lr`` decays from
``--lr`` to ``--lr-final``, cosine, as in the accuracy benchmark), either

* exactly: all representatives with the weights ``p_r ~ n_r |psi_r|^2``; or
* sampled: ``batch`` representatives drawn exactly from ``p_r^power`` (normalised) and weighted by
  ``p_r^(1 - power)`` (self-normalised), the ``sampling_power`` of ``nirbench vmc``; ``power = 1``
  is ordinary sampling from ``|Psi|^2``.

This separates what the network and its output head can represent (exact) from what a finite
batch does (sampled, without any sampler error: the draws are exact). The NIR runs are
``benchmarks/accuracy/j1j2_4x4_k1_rescnn_nir.yaml``.

    python benchmarks/sign_trap.py --out results/benchmarks/sign_trap.csv

The exact energy of a trained run's last checkpoint is ``nirbench evaluate --checkpoint DIR``
(column ``exact_energy``, by enumeration of the sector).

One row per (variant, step): ``variant,output_head,symmetry_average,marshall_sign,batch,
sampling_power,step,energy,energy_per_site,relative_error,variance`` (``batch`` empty: exact); the last lines printed compare the final energies with
the best state that has exactly the Marshall sign (non-negative amplitudes times the Marshall sign,
a projected-gradient solution in the same 107-dimensional space).
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from jax.flatten_util import ravel_pytree
from tqdm import tqdm

from nirbench.exact import all_configurations, basis_states, lowest_levels
from nirbench.hamiltonians import make_hamiltonian, states_of
from nirbench.minsr import jacobian_of_log_psi, solve_natural_gradient
from nirbench.models import build_nqs

jax.config.update("jax_enable_x64", True)

#: (name, output_head, symmetry_average, marshall_sign, batch (None: exact), sampling_power)
VARIANTS = [
    ("paper head, log average, Marshall", "log", "log", True, None, 1.0),
    ("paper head, amplitude average, Marshall", "log", "amplitude", True, None, 1.0),
    ("signed head, log average, Marshall", "signed", "log", True, None, 1.0),
    ("signed head, amplitude average, Marshall", "signed", "amplitude", True, None, 1.0),
    ("signed head, amplitude average, no sign prior", "signed", "amplitude", False, None, 1.0),
    ("signed, amplitude, Marshall; 256 from |Psi|^2", "signed", "amplitude", True, 256, 1.0),
    ("signed, amplitude, Marshall; 1024 from |Psi|^2", "signed", "amplitude", True, 1024, 1.0),
    ("signed, amplitude, Marshall; 256 from |Psi|", "signed", "amplitude", True, 256, 0.5),
    ("paper head, log average, Marshall; 256 from |Psi|", "log", "log", True, 256, 0.5),
]


class SymmetricSector:
    """Orbit representatives of the zero-magnetisation sector under translations x point group x spin flip.

    Attributes: ``configs`` ``(R, 1, N)`` (one per orbit, shaped as a K = 1 tuple), ``sizes``
    ``(R,)`` orbit sizes, ``hamiltonian`` ``(R, R)`` dense ``P^T H P``.
    """

    def __init__(self, hamiltonian):
        n = hamiltonian.n_sites
        basis = basis_states(n, hamiltonian.magnetisation)
        spins = all_configurations(n, hamiltonian.magnetisation)
        perms = hamiltonian.lattice.symmetry_group()
        images = np.concatenate([spins[:, perms], -spins[:, perms]], axis=1)  # (D, 2G, N)
        codes = states_of(images.reshape(-1, n)).reshape(len(spins), -1)
        representatives, orbit = np.unique(codes.min(axis=1), return_inverse=True)
        to_configs = sp.csr_matrix(
            (np.ones(len(orbit)), (np.arange(len(orbit)), orbit)), shape=(len(orbit), representatives.size)
        )
        self.configs = jnp.asarray(spins[np.searchsorted(basis, representatives)])[:, None, :]
        self.sizes = jnp.asarray(np.asarray(to_configs.sum(axis=0)).ravel())
        self.hamiltonian = jnp.asarray((to_configs.T @ hamiltonian.to_sparse(basis) @ to_configs).toarray())

    def ground_state(self) -> tuple[float, np.ndarray]:
        """Lowest eigenpair of ``H_r x = E diag(n_r) x``: the symmetric ground state, ``x`` ``(R,)`` real."""
        energies, vectors = scipy.linalg.eigh(np.asarray(self.hamiltonian), np.diag(np.asarray(self.sizes)))
        return float(energies[0]), vectors[:, 0]

    def opposite_sign_weight(self, signs: np.ndarray) -> float:
        """Weight ``sum n_r x_r^2`` of the ground state on representatives whose sign differs from ``signs``.

        The overall sign is fixed on the largest component; ``signs`` is ``(R,)`` of +-1.
        """
        _, x = self.ground_state()
        x = x * np.sign(x[np.argmax(np.abs(x))]) * signs[np.argmax(np.abs(x))]
        weight = np.asarray(self.sizes) * x**2
        return float(np.sum(weight[np.sign(x) != signs]) / np.sum(weight))

    def best_fixed_sign_energy(self, signs: np.ndarray, iterations: int = 20000, step: float = 0.01) -> float:
        """Minimum of the energy over ``psi_r = signs_r a_r`` with ``a_r >= 0`` (projected gradient)."""
        h = np.asarray(self.hamiltonian) * np.outer(signs, signs)
        sizes = np.asarray(self.sizes)
        a = np.ones(len(sizes))
        for _ in range(iterations):
            energy = a @ h @ a / (a @ (sizes * a))
            a = np.maximum(a - step * 2 * (h @ a - energy * sizes * a) / sizes, 0.0)
        return float(a @ h @ a / (a @ (sizes * a)))


@eqx.filter_jit
def _energy_and_local_energies(nqs, configs, sizes, h):
    log_psi = jax.vmap(nqs.log_psi)(configs)
    psi = jnp.exp(log_psi - jnp.max(jnp.real(log_psi)))
    h_psi = h @ psi
    weights = sizes * jnp.abs(psi) ** 2
    weights = weights / jnp.sum(weights)
    local = h_psi / (sizes * jnp.where(psi == 0, 1.0, psi))
    energy = jnp.real(jnp.sum(weights * local))
    return energy, local, weights, jnp.sum(weights * jnp.abs(local - energy) ** 2)


def _log_psi(nqs, config):
    return nqs.log_psi(config)


def train(nqs, sector: SymmetricSector, steps: int, schedule, diag_shift: float, batch: int | None = None,
          power: float = 1.0, seed: int = 0, progress: bool = True):
    """Imaginary-time (minSR + SGD) steps, exact or from ``batch`` exact draws of ``p^power``.

    Yields ``(step, energy, variance)`` (exact values) before each update; ``schedule(step)`` is the
    step size.
    """
    rng = np.random.default_rng(seed)
    for step in tqdm(range(steps + 1), desc="SR", disable=not progress, leave=False):
        energy, local, weights, variance = _energy_and_local_energies(nqs, sector.configs, sector.sizes, sector.hamiltonian)
        yield step, float(energy), float(variance)
        if step == steps:
            return
        jacobian = jacobian_of_log_psi(_log_psi, nqs, sector.configs)
        if batch is not None:
            p = np.asarray(weights) / np.sum(np.asarray(weights))
            q = p**power / np.sum(p**power)
            drawn = rng.choice(len(p), size=batch, p=q)
            jacobian, local, weights = jacobian[drawn], local[drawn], jnp.asarray(p[drawn] / q[drawn])
        mode = "minsr" if 2 * jacobian.shape[0] <= jacobian.shape[1] else "sr"
        direction = solve_natural_gradient(jacobian, local, weights, diag_shift, mode=mode)
        params, static = eqx.partition(nqs, eqx.is_inexact_array)
        flat, unravel = ravel_pytree(params)
        nqs = eqx.combine(unravel(flat - schedule(step) * direction), static)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lx", type=int, default=4)
    parser.add_argument("--ly", type=int, default=4)
    parser.add_argument("--j2", type=float, default=0.5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--lr-final", type=float, default=0.002)
    parser.add_argument("--diag-shift", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV of energies per variant and step")
    args = parser.parse_args(argv)
    hamiltonian = make_hamiltonian("j1j2", args.lx, args.ly, "periodic", j2=args.j2)
    start = time.perf_counter()
    sector = SymmetricSector(hamiltonian)
    exact = float(lowest_levels(hamiltonian, 1)[0])
    checkerboard = hamiltonian.lattice.checkerboard()
    marshall = (-1.0) ** np.sum(np.asarray(sector.configs[:, 0, :]) < 0, axis=1, where=checkerboard)
    best_marshall = sector.best_fixed_sign_energy(marshall)
    n = hamiltonian.n_sites
    print(f"{sector.sizes.size} orbits; exact E/N {exact / n:.6f} (symmetric sector {sector.ground_state()[0] / n:.6f}); "
          f"weight of the ground state against the Marshall sign {sector.opposite_sign_weight(marshall):.4f}; "
          f"best state with the Marshall sign {best_marshall / n:.6f} (relative error {abs(best_marshall - exact) / abs(exact):.2e})")  # fmt: skip
    schedule = optax.cosine_decay_schedule(args.lr, args.steps, alpha=args.lr_final / args.lr)
    rows = []
    for name, head, average, marshall_sign, batch, power in VARIANTS:
        nqs = build_nqs(
            hamiltonian, "rescnn", 1, channels=args.channels, n_blocks=args.blocks, symmetries=True,
            marshall_sign=marshall_sign, symmetry_average=average, output_head=head, key=jax.random.key(args.seed),
        )  # fmt: skip
        history = train(nqs, sector, args.steps, schedule, args.diag_shift, batch, power, args.seed)
        for step, energy, variance in history:
            rows.append({
                "variant": name, "output_head": head, "symmetry_average": average, "marshall_sign": marshall_sign,
                "batch": batch, "sampling_power": power, "step": step, "energy": energy, "energy_per_site": energy / n,
                "relative_error": abs(energy - exact) / abs(exact), "variance": variance,
            })  # fmt: skip
        print(f"{name:52s} E/N {energy / n:.6f}  relative error {rows[-1]['relative_error']:.2e}")
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
