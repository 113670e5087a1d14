import numpy as np
import pytest

from nirbench.lattice import SquareLattice


@pytest.mark.parametrize(
    "lx, ly, bc, n_nn, n_nnn",
    [
        (4, 4, "periodic", 32, 32),
        (4, 4, "open", 24, 18),
        (6, 6, "open", 60, 50),
        (3, 2, "periodic", 9, 6),  # the wrapped y-bond of a length-2 direction is the direct one
        (3, 3, "periodic", 18, 18),
    ],
)
def test_bond_counts(lx, ly, bc, n_nn, n_nnn):
    lattice = SquareLattice(lx, ly, bc)
    assert len(lattice.nearest_neighbours) == n_nn
    assert len(lattice.next_nearest_neighbours) == n_nnn
    for bonds in (lattice.nearest_neighbours, lattice.next_nearest_neighbours):
        assert np.all(bonds[:, 0] < bonds[:, 1])
        assert len({tuple(b) for b in bonds}) == len(bonds)


def test_nearest_neighbours_are_unit_distance():
    lattice = SquareLattice(4, 3, "open")
    xy = lattice.coordinates()
    for i, j in lattice.nearest_neighbours:
        assert np.abs(xy[i] - xy[j]).sum() == 1
    for i, j in lattice.next_nearest_neighbours:
        assert np.all(np.abs(xy[i] - xy[j]) == 1)


def _bond_set(bonds):
    return {tuple(sorted(b)) for b in bonds}


@pytest.mark.parametrize("lx, ly, bc", [(4, 4, "periodic"), (3, 3, "open"), (4, 2, "periodic"), (3, 2, "open")])
def test_symmetry_permutations_preserve_bonds(lx, ly, bc):
    lattice = SquareLattice(lx, ly, bc)
    group = lattice.symmetry_group()
    n = lattice.n_sites
    for perm in group:
        assert sorted(perm) == list(range(n))
        for bonds in (lattice.nearest_neighbours, lattice.next_nearest_neighbours):
            assert _bond_set(perm[bonds]) == _bond_set(bonds)
    # closed under composition: s[p][q] = s[p[q]]
    as_set = {tuple(p) for p in group}
    for p in group[:8]:
        for q in group[:8]:
            assert tuple(p[q]) in as_set


def test_group_sizes():
    assert len(SquareLattice(4, 4, "periodic").translations()) == 16
    assert len(SquareLattice(4, 4, "periodic").point_group()) == 8
    assert len(SquareLattice(4, 4, "periodic").symmetry_group()) == 128
    assert len(SquareLattice(4, 3, "open").symmetry_group()) == 4
    assert len(SquareLattice(3, 3, "open").translations()) == 1


@pytest.mark.parametrize("lx, ly, bc", [(1, 4, "open"), (4, 1, "periodic"), (2, 2, "twisted")])
def test_bad_lattices(lx, ly, bc):
    with pytest.raises(ValueError):
        SquareLattice(lx, ly, bc)
