"""DMRG (TeNPy) against exact diagonalisation, and the `nirbench dmrg` command line.

Every energy is compared with ``nirbench.exact.lowest_levels`` at a bond dimension large enough
to be exact, so a wrong sign, a wrong operator (``Sz`` instead of ``Sigmaz``), a missing or extra
(periodic) bond, or excited states in the wrong order make these tests fail.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tenpy")

from nirbench import cli
from nirbench.dmrg import (
    COLUMNS,
    SUPPORTED_MODELS,
    check_dmrg_input,
    dmrg_scan,
    parity_switches,
    tfi_model,
    warn_parity_switches,
)
from nirbench.exact import lowest_levels
from nirbench.hamiltonians import make_hamiltonian

TOL = 1e-8


def exact_levels(lx, ly, bc, g, k):
    """The k lowest exact levels and the Z2 parity (<prod_j X_j>) of each."""
    hamiltonian = make_hamiltonian("tfi", lx, ly, bc, g=g)
    energies, basis, vectors = lowest_levels(hamiltonian, k, return_vectors=True)
    flipped = np.searchsorted(basis, basis ^ (2**hamiltonian.n_sites - 1))  # prod_j X_j flips every spin
    parities = np.einsum("dk,dk->k", vectors, vectors[flipped])
    return energies, parities


@pytest.mark.parametrize(
    "lx, ly, bc, conserve",
    [(2, 3, "open", "parity"), (2, 3, "periodic", None), (3, 3, "periodic", "parity")],
)
def test_mpo_has_the_exact_spectrum(lx, ly, bc, conserve):
    """The whole spectrum of TeNPy's MPO equals that of nirbench's TFI (bonds, signs, operators)."""
    from tenpy.algorithms.exact_diag import ExactDiag

    g = 0.7
    model = tfi_model(lx, ly, bc, g, conserve)
    ed = ExactDiag.from_H_mpo(model.H_MPO)
    ed.build_full_H_from_mpo()
    ed.full_diagonalization()
    ours = np.linalg.eigvalsh(make_hamiltonian("tfi", lx, ly, bc, g=g).to_sparse().toarray())
    np.testing.assert_allclose(np.sort(ed.E), ours, atol=1e-10)


@pytest.mark.parametrize(
    "lx, ly, bc, g, chi",
    [
        (3, 3, "open", 1.0, 32),  # ferromagnetic: lowest two levels 0.015 apart, opposite parity
        (3, 3, "periodic", 3.5, 32),  # paramagnetic; levels 2 and 3 degenerate (both odd)
        (4, 4, "open", 1.0, 96),  # lowest two 8e-5 apart; chi = 64 leaves 4e-8 on level 2, 96: 3e-10
    ],
)
def test_three_lowest_levels_match_exact_diagonalisation(lx, ly, bc, g, chi):
    energies, parities = exact_levels(lx, ly, bc, g, 3)
    frame = dmrg_scan(lx, ly, bc, g, 3, [chi], progress=False, threads=1)
    assert list(frame.columns) == COLUMNS
    assert frame["state"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(frame["energy"], energies, rtol=0, atol=TOL)
    # the lowest two levels lie in opposite Z2 sectors; DMRG must have found both
    expected = np.where(parities > 0, "even", "odd")
    nondegenerate = np.abs(np.diff(energies, append=np.inf)) > 1e-6
    nondegenerate &= np.abs(np.diff(energies, prepend=-np.inf)) > 1e-6
    assert (frame["parity"].to_numpy()[nondegenerate] == expected[nondegenerate]).all()
    assert (frame["truncation_error"] < 1e-8).all()


def test_scan_warm_start_and_columns():
    """A scan on the periodic 2x3 lattice (ferromagnetic): exact at chi = 8, variational at chi = 2."""
    lx, ly, bc, g = 2, 3, "periodic", 1.0
    energies, _ = exact_levels(lx, ly, bc, g, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # chi = 2 may stop at max_sweeps
        frame = dmrg_scan(lx, ly, bc, g, 2, [8, 2, 8], progress=False, threads=1, max_sweeps=6)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 2 * 2
    assert frame[["state", "chi"]].values.tolist() == [[0, 2], [0, 8], [1, 2], [1, 8]]
    assert (frame[["model", "lx", "ly", "bc", "g"]].iloc[0].tolist()) == ["tfi", 2, 3, "periodic", 1.0]
    exact_chi = frame[frame["chi"] == 8]
    np.testing.assert_allclose(exact_chi["energy"], energies, rtol=0, atol=TOL)
    # at each chi the states are numbered by energy
    for _, group in frame.groupby("chi"):
        assert np.all(np.diff(group.sort_values("state")["energy"]) >= -1e-12)
    ground = frame[frame["state"] == 0].set_index("chi")["energy"]
    assert ground[2] >= energies[0] - 1e-10  # variational
    assert ground[2] > ground[8] + 1e-7  # chi = 2 is truncated on this lattice
    assert (frame["sweeps"] >= 1).all() and (frame["seconds"] > 0).all()
    assert (frame.loc[frame["chi"] == 2, "truncation_error"] > 0).all()


def test_without_symmetry_matches_exact():
    """conserve=None: the unrotated model, plain orthogonalisation, no parity sectors (3x2, g = 1)."""
    energies, _ = exact_levels(3, 2, "open", 1.0, 3)
    frame = dmrg_scan(3, 2, "open", 1.0, 3, [8], conserve=None, progress=False, threads=1)
    np.testing.assert_allclose(frame["energy"], energies, rtol=0, atol=TOL)
    assert (frame["parity"] == "none").all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chis": [0, 8]}, "chi"),
        ({"chis": [-4]}, "chi"),
        ({"chis": []}, "chi"),
        ({"n_states": 0}, "K"),
        ({"g": -1.0}, "g"),
        ({"model": "j1j2"}, "DMRG supports only"),
        ({"bc": "twisted"}, "bc"),
    ],
)
def test_bad_input_is_rejected(kwargs, message):
    args = {"lx": 3, "ly": 3, "bc": "open", "g": 1.0, "n_states": 3, "chis": [8], "model": "tfi"} | kwargs
    with pytest.raises(ValueError, match=message):
        dmrg_scan(
            args["lx"],
            args["ly"],
            args["bc"],
            args["g"],
            args["n_states"],
            args["chis"],
            model=args["model"],
            progress=False,
        )


def test_parity_switches_are_found_and_warned_about():
    """The K-th level taken from different Z2 sectors at different chi (as in the 6x6 g = 1 scan)."""
    scan = pd.read_csv(
        io.StringIO(
            "model,lx,ly,bc,g,state,chi,energy,parity\n"
            + "".join(f"tfi,6,6,open,1.0,0,{chi},-65.7,even\n" for chi in (16, 32, 64))
            + "".join(
                f"tfi,6,6,open,1.0,1,{chi},-61.9,{p}\n"
                for chi, p in zip((16, 32, 64), ("even", "odd", "even"))
            )
        )
    )
    assert parity_switches(scan) == {1: "even at chi 16, 64; odd at chi 32"}
    with pytest.warns(
        UserWarning, match=r"state 1 changes parity sector with chi \(even at chi 16, 64; odd at chi 32\)"
    ):
        warn_parity_switches(scan)
    steady = scan.assign(parity=np.where(scan["state"] == 0, "even", "odd"))
    assert parity_switches(steady) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_parity_switches(steady) == {}
    # several systems in one frame: the key names the system too
    two = pd.concat([scan, steady.assign(g=3.0)], ignore_index=True)
    assert parity_switches(two) == {(1.0, 1): "even at chi 16, 64; odd at chi 32"}


def test_check_dmrg_input_sorts_and_deduplicates():
    assert check_dmrg_input("tfi", 3, 3, "open", 1.0, 2, [50, 25, 50]) == [25, 50]
    assert SUPPORTED_MODELS == ("tfi",)


# --------------------------------------------------------------------------- command line
@pytest.mark.parametrize(
    "extra",
    [
        ["--model", "j1j2", "--chi", "8"],
        ["--chi", "8", "0"],
        ["--chi", "-2"],
        ["--chi", "8", "--states", "0"],
        ["--chi", "8", "--g", "-1"],
    ],
)
def test_cli_rejects_bad_input(tmp_path, capsys, extra):
    out = tmp_path / "scan.csv"
    argv = ["dmrg", "--lx", "3", "--ly", "3", "--bc", "open", "--g", "1.0", "--states", "2", "--out", str(out), *extra]
    assert cli.main(argv) == 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert "error" in capsys.readouterr().err


def test_cli_scan_and_extrapolate(tmp_path):
    """End to end on the 2x2 lattice: one row per (state, chi), then one row per state."""
    scan, fit = tmp_path / "scan.csv", tmp_path / "fit.csv"
    argv = [
        "dmrg",
        "--model",
        "tfi",
        "--lx",
        "2",
        "--ly",
        "2",
        "--bc",
        "open",
        "--g",
        "1.0",
        "--states",
        "2",
        "--chi",
        "4",
        "2",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(scan),
    ]
    assert cli.main(argv) == 0
    frame = pd.read_csv(scan)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 2 * 2
    energies, _ = exact_levels(2, 2, "open", 1.0, 2)
    np.testing.assert_allclose(frame.loc[frame["chi"] == 4, "energy"], energies, atol=TOL)
    assert cli.main(["extrapolate", "--in", str(scan), "--out", str(fit)]) == 0
    fits = pd.read_csv(fit)
    assert fits["state"].tolist() == [0, 1]
    assert {"energy_extrapolated", "uncertainty", "method", "a", "b", "c", "d"} <= set(fits.columns)
    np.testing.assert_allclose(fits["energy_extrapolated"], energies, atol=1e-6)
