"""The command line: `nirbench ed` output and the errors on bad input."""

import subprocess
import sys

import pandas as pd
import pytest

from nirbench.cli import main
from nirbench.exact import lowest_levels
from nirbench.hamiltonians import make_hamiltonian


def test_ed_writes_one_row_per_level(tmp_path, capsys):
    out = tmp_path / "ed.csv"
    assert main(["ed", "--model", "j1j2", "--lx", "4", "--ly", "2", "--bc", "periodic", "--states", "2", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["model", "lx", "ly", "bc", "g", "j2", "state", "energy", "energy_per_site"]
    expected = lowest_levels(make_hamiltonian("j1j2", 4, 2, "periodic", j2=0.5), 2)
    assert frame["energy"].to_numpy() == pytest.approx(expected, abs=1e-10)
    assert frame["energy_per_site"].to_numpy() == pytest.approx(expected / 8, abs=1e-10)
    assert "E/N" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "tfi", "--lx", "1", "--ly", "4", "--g", "1"], "at least 2x2"),
        (["--model", "tfi", "--lx", "3", "--ly", "3", "--g", "-1"], "g must be >= 0"),
        (["--model", "j1j2", "--lx", "3", "--ly", "3"], "even number of sites"),
        (["--model", "tfi", "--lx", "5", "--ly", "5", "--g", "1"], "at most 24 sites"),
        (["--model", "tfi", "--lx", "2", "--ly", "2", "--g", "1", "--states", "0"], "K must be >= 1"),
    ],
)
def test_ed_bad_input_fails_without_output(tmp_path, capsys, args, message):
    out = tmp_path / "ed.csv"
    assert main(["ed", "--bc", "open", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unknown_model_is_rejected_by_the_parser(tmp_path):
    out = tmp_path / "ed.csv"
    result = subprocess.run(
        [sys.executable, "-m", "nirbench.cli", "ed", "--model", "hubbard", "--lx", "2", "--ly", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'hubbard'" in result.stderr
    assert not out.exists()


def test_help_describes_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "nirbench.cli", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "ed" in result.stdout
