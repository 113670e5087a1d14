"""benchmarks/level_overlaps.py: a state's weights on the ED spectrum, degenerate levels grouped."""

import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[1]
SPEC = importlib.util.spec_from_file_location("level_overlaps", ROOT / "benchmarks" / "level_overlaps.py")
level_overlaps = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(level_overlaps)


def test_degenerate_levels_are_grouped():
    groups = level_overlaps.degenerate_groups(np.array([-2.0, -1.0, -1.0 + 1e-9, 0.5, 0.5, 0.5]), 1e-6)
    assert [list(g) for g in groups] == [[0], [1, 2], [3, 4, 5]]


def test_weights_of_known_mixtures_on_a_complete_spectrum():
    """Orthonormal mixtures of exact eigenvectors of a random symmetric matrix with one degenerate
    pair: the weights are the squared coefficients, summed over the pair; nothing is left outside."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    energies = np.array([-3.0, -2.0, -1.0, -1.0, 0.5, 2.0])
    first = np.sqrt(0.3) * basis[:, 0] + np.sqrt(0.7) * basis[:, 4]
    second = np.sqrt(0.5) * basis[:, 2] - np.sqrt(0.5) * basis[:, 3]  # within the degenerate pair
    vectors = np.stack([first, second], axis=1)
    table = level_overlaps.level_overlaps(vectors, np.array([-1.0, -1.0]), basis, energies, 1e-6)
    weights = table.set_index(["nqs_level", "ed_group"])["weight"]
    assert weights[(0, "0")] == pytest.approx(0.3) and weights[(0, "4")] == pytest.approx(0.7)
    assert weights[(1, "2-3")] == pytest.approx(1.0)
    assert weights[(0, "rest")] == pytest.approx(0.0, abs=1e-12) and weights[(1, "rest")] == pytest.approx(0.0, abs=1e-12)
    # a truncated spectrum leaves the missing weight in `rest`
    truncated = level_overlaps.level_overlaps(vectors, np.array([-1.0, -1.0]), basis[:, :4], energies[:4], 1e-6)
    assert truncated.set_index(["nqs_level", "ed_group"])["weight"][(0, "rest")] == pytest.approx(0.7)
