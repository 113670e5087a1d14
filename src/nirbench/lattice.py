"""Square lattices: sites, bonds and symmetry permutations.

Conventions (used everywhere in nirbench):

* Site ``(x, y)`` with ``0 <= x < lx`` and ``0 <= y < ly`` has index ``i = x * ly + y``,
  so a configuration of shape ``(N,)`` reshapes to a grid of shape ``(lx, ly)`` with
  ``grid[x, y] = s[i]``. This is also TeNPy's default MPS order for a square lattice.
* Bonds are unordered pairs ``(i, j)`` with ``i < j``, each counted once. With periodic
  boundaries in a direction of length 2 the wrapped bond coincides with the direct one and
  is therefore counted once, not twice.
* A symmetry element is a permutation ``perm`` of shape ``(N,)``; it acts on a
  configuration as ``s_transformed = s[perm]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

BOUNDARY_CONDITIONS = ("open", "periodic")


@dataclass(frozen=True)
class SquareLattice:
    """An ``lx`` x ``ly`` square lattice with ``open`` or ``periodic`` boundaries."""

    lx: int
    ly: int
    bc: str = "periodic"

    def __post_init__(self):
        if self.bc not in BOUNDARY_CONDITIONS:
            raise ValueError(f"bc must be one of {BOUNDARY_CONDITIONS}, got {self.bc!r}")
        if self.lx < 2 or self.ly < 2:
            raise ValueError(f"the lattice must be at least 2x2, got {self.lx}x{self.ly}")

    @property
    def n_sites(self) -> int:
        return self.lx * self.ly

    @property
    def periodic(self) -> bool:
        return self.bc == "periodic"

    def index(self, x: int, y: int) -> int:
        """Site index of ``(x, y)``; coordinates are wrapped when the lattice is periodic."""
        if self.periodic:
            x, y = x % self.lx, y % self.ly
        return x * self.ly + y

    def coordinates(self) -> np.ndarray:
        """Array of shape ``(N, 2)`` with the ``(x, y)`` of each site."""
        x, y = np.divmod(np.arange(self.n_sites), self.ly)
        return np.stack([x, y], axis=1)

    def _bonds_along(self, displacements) -> np.ndarray:
        bonds = set()
        for x in range(self.lx):
            for y in range(self.ly):
                for dx, dy in displacements:
                    xn, yn = x + dx, y + dy
                    inside = 0 <= xn < self.lx and 0 <= yn < self.ly
                    if not (inside or self.periodic):
                        continue
                    i, j = self.index(x, y), self.index(xn, yn)
                    if i != j:
                        bonds.add((min(i, j), max(i, j)))
        return np.array(sorted(bonds), dtype=np.int32).reshape(-1, 2)

    @cached_property
    def nearest_neighbours(self) -> np.ndarray:
        """Nearest-neighbour bonds, shape ``(n_bonds, 2)``, each pair once with ``i < j``."""
        return self._bonds_along([(1, 0), (0, 1)])

    @cached_property
    def next_nearest_neighbours(self) -> np.ndarray:
        """Diagonal (next-nearest-neighbour) bonds, shape ``(n_bonds, 2)``, each pair once."""
        return self._bonds_along([(1, 1), (1, -1)])

    def translations(self) -> np.ndarray:
        """All lattice translations, shape ``(lx * ly, N)``; only the identity when open."""
        coords = self.coordinates()
        shifts = [(0, 0)]
        if self.periodic:
            shifts = [(tx, ty) for tx in range(self.lx) for ty in range(self.ly)]
        return np.array(
            [[self.index(x + tx, y + ty) for x, y in coords] for tx, ty in shifts], dtype=np.int32
        )

    def point_group(self) -> np.ndarray:
        """The point-group permutations about the lattice centre, shape ``(n_g, N)``.

        D4 (8 elements: rotations and reflections) when ``lx == ly``; otherwise the
        rectangle's D2 (identity, the two mirror lines and the rotation by pi).
        """
        coords = self.coordinates()
        x, y = coords[:, 0], coords[:, 1]
        X, Y = self.lx - 1 - x, self.ly - 1 - y  # mirrored coordinates
        maps = [(x, y), (X, y), (x, Y), (X, Y)]
        if self.lx == self.ly:
            maps += [(y, x), (Y, x), (y, X), (Y, X)]
        return np.array([xs * self.ly + ys for xs, ys in maps], dtype=np.int32)

    def checkerboard(self) -> np.ndarray:
        """Sublattice A of the bipartite square lattice: ``(N,)`` bool, true where ``x + y`` is even.

        Raises ``ValueError`` for a periodic lattice with an odd length (not bipartite).
        """
        if self.periodic and (self.lx % 2 or self.ly % 2):
            raise ValueError(f"a periodic {self.lx}x{self.ly} lattice is not bipartite (odd length)")
        return self.coordinates().sum(axis=1) % 2 == 0

    def symmetry_group(self) -> np.ndarray:
        """Every product of a translation and a point-group element, deduplicated."""
        perms = {
            tuple(t[p]) for t in self.translations() for p in self.point_group()
        }
        return np.array(sorted(perms), dtype=np.int32)
