"""The ``nirbench`` command line. Each subcommand writes one tidy CSV.

Every subcommand is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args)`` registered in
``COMMANDS``. Bad input raises ``ValueError`` before any computation; ``main`` turns it into a
one-line error and exit status 2, and no output file is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd


def write_csv_atomically(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` to ``path`` through a temporary file, so no partial CSV is ever left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        frame.to_csv(tmp.name, index=False)
    os.replace(tmp.name, path)


def _add_system_options(parser: argparse.ArgumentParser, models=("tfi", "j1j2")) -> None:
    """Options that select the Hamiltonian: model, lattice, boundary and couplings."""
    parser.add_argument("--model", required=True, choices=models, help="Hamiltonian: TFI (eq. 13) or J1-J2 (eq. 14)")
    parser.add_argument("--lx", type=int, required=True, help="lattice length in x (>= 2)")
    parser.add_argument("--ly", type=int, required=True, help="lattice length in y (>= 2)")
    parser.add_argument("--bc", choices=("open", "periodic"), default="periodic", help="boundary conditions")
    parser.add_argument("--g", type=float, default=None, help="transverse field of the TFI model (>= 0)")
    parser.add_argument("--j2", type=float, default=None, help="J2/J1 of the J1-J2 model (default 0.5)")


def _hamiltonian_from(args):
    from nirbench.hamiltonians import make_hamiltonian

    return make_hamiltonian(args.model, args.lx, args.ly, args.bc, g=args.g, j2=args.j2)


# --------------------------------------------------------------------------- ed
def _add_ed(subparsers) -> None:
    parser = subparsers.add_parser(
        "ed",
        help="exact diagonalisation: the K lowest levels",
        description="Sparse exact diagonalisation (scipy eigsh) of the TFI or J1-J2 model; the J1-J2 "
        "model is diagonalised in its zero-magnetisation sector. One CSV row per level.",
    )
    _add_system_options(parser)
    parser.add_argument("--states", type=int, default=1, help="number K of lowest levels (>= 1)")
    parser.add_argument("--out", required=True, help="output CSV: model,lx,ly,bc,g,j2,state,energy,energy_per_site")


def _run_ed(args) -> None:
    from nirbench.exact import check_ed_size, lowest_levels

    hamiltonian = _hamiltonian_from(args)
    check_ed_size(hamiltonian, args.states)
    energies = lowest_levels(hamiltonian, args.states)
    rows = [
        {**hamiltonian.describe(), "state": k, "energy": e, "energy_per_site": e / hamiltonian.n_sites}
        for k, e in enumerate(energies)
    ]
    frame = pd.DataFrame(rows, columns=["model", "lx", "ly", "bc", "g", "j2", "state", "energy", "energy_per_site"])
    write_csv_atomically(frame, args.out)
    for row in rows:
        print(f"state {row['state']}: E = {row['energy']:.10f}   E/N = {row['energy_per_site']:.10f}")


COMMANDS = {
    "ed": (_add_ed, _run_ed),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nirbench",
        description="Neural importance resampling for neural quantum states: exact references, "
        "samplers, VMC training, DMRG scans and benchmarks. Each subcommand writes a tidy CSV.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command][1](args)
    except ValueError as error:
        print(f"nirbench {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
