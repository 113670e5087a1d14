"""Neural-network wave functions: single-state networks, symmetry wrappers, multi-state NQS.

``build_nqs`` assembles the networks used in the experiments:

* ``net="mlp"``: ``MLP`` (paper section 4.2; the TFI experiments).
* ``net="rescnn"``: ``ResCNN`` (paper section 4.5; the J1-J2 experiment), translation
  invariant by construction (circular convolutions + global average pooling).

Symmetries (``symmetries=True``) depend on the model:

* J1-J2 (``hamiltonian.name == "j1j2"``): each single-state network is
  ``PermutationAveraged(SpinFlipSymmetric(net), perms)`` with ``perms`` the lattice point group
  for the ResCNN (translations are built in) and the full ``lattice.symmetry_group()``
  (translations x point group) for the MLP. The ResCNN uses the spin-flip *average*
  (``mode="average"``) because the paper's "flip if ``s[0] < 0``" rule singles out site 0 and
  would break the CNN's translation invariance; inside the full-group average of the MLP the
  cheaper ``mode="first"`` is exact. The result is invariant under every lattice symmetry and
  the global spin flip, so *all K states* lie in the fully symmetric sector (for K > 1 the
  excited states found are the lowest symmetric ones, e.g. no triplets).
  Note that averaging over ``symmetry_group()`` costs ``|G|`` network calls per configuration
  (800 on 10x10).
* TFI: nothing is imposed by ``symmetries``. The excited states of the multi-state TFI runs
  include spin-flip-odd states (the ordered phase's partner of the ground state) and
  non-zero-momentum states, so neither spin flip nor lattice averaging may be enforced on every
  state alike (``flip_parities`` below sets one parity per state). Beware that the ResCNN is
  translation invariant regardless, so with periodic boundaries and K > 1 it can only find
  zero-momentum states.

``flip_parities`` (TFI only, beyond the paper): a string of up to K signs, ``"+-+"``, one
spin-flip parity per state in order (``.`` or no sign: the state is free); state ``j`` becomes
``SpinFlipParity(net, parity_j)``, the projection of its network onto that sector (outermost).
The ground state of the TFI model is even (its amplitudes are positive) and, in both phases, the
next level is odd (the odd cat state in the ordered phase, the lowest magnon in the paramagnetic
one; ED on 4x4, open and periodic, g = 0.1 to 3.5), so ``"+-"`` with the further states free fits
every field and puts both cat states in the variational span by construction. The third level's
parity depends on the field (ED, 4x4 open: ``+`` at g = 1 and 2, ``-`` at g = 3), so fixing it
(``"+-+"``) is only right where that parity is known.

``marshall_sign=True`` (J1-J2 only, beyond the paper) wraps each single-state network in
``MarshallSign`` (sublattice A = ``lattice.checkerboard()``), a fixed sign prior.

``output_head="signed"`` (beyond the paper) reads the network's two outputs as a real amplitude
``exp(u) (1 + v)`` (``SignedAmplitude``, innermost, before any symmetry average) instead of the
paper's ``Re, Im log psi`` (``"log"``), so that the network can change the sign of an amplitude
by passing it through zero. With ``symmetry_average="amplitude"`` the symmetrised state is then a
sum of real terms of either sign.

Independently of ``symmetries``, a model studied in a magnetisation sector
(``hamiltonian.magnetisation is not None``, i.e. J1-J2) gets the outermost
``MagnetisationPenalty(..., magnetisation, sector_penalty)`` (paper: 30), which keeps samplers
such as NIR, whose proposal ignores the sector, out of the other sectors. Pass
``sector_penalty=None`` to leave it out.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from nirbench.models.mlp import MLP
from nirbench.models.multistate import MultiStateNQS, batched_log_prob, batched_log_psi, stack_networks
from nirbench.models.rescnn import ResCNN
from nirbench.models.symmetry import (
    AVERAGES,
    OUTPUT_HEADS,
    MagnetisationPenalty,
    MarshallSign,
    PermutationAveraged,
    SignedAmplitude,
    SpinFlipParity,
    SpinFlipSymmetric,
)

NETS = ("mlp", "rescnn")

__all__ = [
    "MLP",
    "NETS",
    "OUTPUT_HEADS",
    "MagnetisationPenalty",
    "MarshallSign",
    "MultiStateNQS",
    "PermutationAveraged",
    "ResCNN",
    "SignedAmplitude",
    "SpinFlipParity",
    "SpinFlipSymmetric",
    "batched_log_prob",
    "batched_log_psi",
    "build_nqs",
    "parse_flip_parities",
    "stack_networks",
]


def build_nqs(
    hamiltonian,
    net: str = "mlp",
    n_states: int = 1,
    *,
    width: int = 128,
    depth: int = 4,
    channels: int = 16,
    n_blocks: int = 4,
    symmetries: bool = True,
    sector_penalty: float | None = 30.0,
    marshall_sign: bool = False,
    symmetry_average: str = "log",
    output_head: str = "log",
    flip_parities: str | None = None,
    key: jax.Array,
) -> MultiStateNQS:
    """Build the K-state NQS for ``hamiltonian`` (see the module docstring for the symmetries).

    Args:
        hamiltonian: a ``nirbench.hamiltonians.Hamiltonian`` (gives the lattice and model name).
        net: ``"mlp"`` (uses ``width``, ``depth``) or ``"rescnn"`` (uses ``channels``, ``n_blocks``).
        n_states: K, the number of states (1 = ordinary single-state NQS).
        symmetries: impose the model's symmetries (J1-J2 only; no effect for TFI).
        sector_penalty: penalty on ``Re log psi`` outside ``hamiltonian.magnetisation``
            (ignored when the model has no sector; ``None`` disables it).
        marshall_sign: multiply each network by the Marshall sign (J1-J2 only; ``ValueError`` otherwise).
        symmetry_average: ``"log"`` (paper) or ``"amplitude"``: what the symmetry wrappers average
            (see ``nirbench.models.symmetry``).
        output_head: ``"log"`` (paper: the two outputs are ``Re, Im log psi``) or ``"signed"``
            (``SignedAmplitude``: a real amplitude ``exp(u) (1 + v)``).
        flip_parities: ``None`` or up to K characters ``+`` / ``-`` / ``.``, the spin-flip parity
            of each state in order, ``.`` and the states after the string free (TFI only;
            :func:`parse_flip_parities`).
        key: PRNG key.
    """
    if net not in NETS:
        raise ValueError(f"unknown network net={net!r}; choose one of {NETS}")
    if symmetry_average not in AVERAGES:
        raise ValueError(f"unknown symmetry_average={symmetry_average!r}; choose one of {AVERAGES}")
    if output_head not in OUTPUT_HEADS:
        raise ValueError(f"unknown output_head={output_head!r}; choose one of {OUTPUT_HEADS}")
    lattice = hamiltonian.lattice
    is_j1j2 = getattr(hamiltonian, "name", None) == "j1j2"
    magnetisation = getattr(hamiltonian, "magnetisation", None)
    if marshall_sign and not is_j1j2:
        raise ValueError("marshall_sign applies to the J1-J2 model only")
    sublattice = lattice.checkerboard() if marshall_sign else None
    if flip_parities is not None:
        if getattr(hamiltonian, "name", None) != "tfi":
            raise ValueError("flip_parities applies to the TFI model only")
        parities = parse_flip_parities(flip_parities, n_states)

    def make_network(k):
        if net == "mlp":
            network = MLP(lattice.n_sites, width=width, depth=depth, key=k)
        else:
            network = ResCNN(lattice.lx, lattice.ly, channels=channels, n_blocks=n_blocks, key=k)
        if output_head == "signed":
            network = SignedAmplitude(network)
        if symmetries and is_j1j2:
            if net == "mlp":
                network = PermutationAveraged(
                    SpinFlipSymmetric(network, "first"), lattice.symmetry_group(), symmetry_average
                )
            else:
                network = PermutationAveraged(
                    SpinFlipSymmetric(network, "average", symmetry_average), lattice.point_group(), symmetry_average
                )
        if marshall_sign:
            network = MarshallSign(network, sublattice)
        if magnetisation is not None and sector_penalty is not None:
            network = MagnetisationPenalty(network, magnetisation, float(sector_penalty))
        if flip_parities is not None:
            network = SpinFlipParity(network, 1)  # the parities are set below, once stacked
        return network

    nqs = MultiStateNQS(make_network, n_states, key=key)
    if flip_parities is not None:
        nqs = eqx.tree_at(lambda m: m.networks.parity, nqs, np.asarray(parities, dtype=np.int32))
    return nqs


#: the characters of ``flip_parities`` and the parity each sets (0: the state is left free)
FLIP_PARITY_SIGNS = {"+": 1, "-": -1, ".": 0}


def parse_flip_parities(flip_parities: str, n_states: int) -> tuple[int, ...]:
    """``"+-"`` with ``n_states = 3`` -> ``(1, -1, 0)``: one of ``+ - .`` per state, in order, 1 to
    ``n_states`` characters; the states after the string are free (0), as is a ``.``.
    ``ValueError`` otherwise."""
    if (
        not isinstance(flip_parities, str)
        or not 1 <= len(flip_parities) <= n_states
        or set(flip_parities) - set(FLIP_PARITY_SIGNS)
    ):
        raise ValueError(
            f"flip_parities must be 1 to {n_states} characters + - or . (one per state, in order; "
            f"the states after them are free), got {flip_parities!r}"
        )
    return tuple(FLIP_PARITY_SIGNS[sign] for sign in flip_parities.ljust(n_states, "."))
