"""DMRG references with TeNPy: bond-dimension scans of the K lowest levels of the TFI model.

Conventions:

* The Hamiltonian is nirbench's TFI (paper eq. 13), ``H = -sum_<jk> Z_j Z_k - g sum_j X_j`` with
  Pauli matrices, on the bonds of :class:`nirbench.lattice.SquareLattice` (``nearest_neighbours``:
  each ``i < j`` pair once, wrapped bonds included when ``bc="periodic"``).
* MPS site ``i`` is lattice site ``i = x * ly + y`` (TeNPy's default order for a square lattice,
  and nirbench's site index), so the MPS runs through the lattice column by column (``x`` fixed,
  ``y = 0..ly-1``; not a snake), and a vertical bond spans ``ly`` MPS sites. Every term
  is added by MPS index from *our* bond list, so boundaries match :mod:`nirbench.lattice`
  exactly; periodic bonds simply become longer-range MPO terms.
* With ``conserve="parity"`` (the default) TeNPy simulates the unitarily equivalent
  ``H' = U H U^dagger`` with ``U`` a Hadamard gate on every site, i.e.
  ``H' = -sum_<jk> Sigmax_j Sigmax_k - g sum_j Sigmaz_j``. Its Z2 symmetry ``prod_j Sigmaz_j``
  (``prod_j X_j`` of the original model) is TeNPy's ``'parity'`` charge, so every DMRG run stays
  in one parity sector; the spectrum is the same as that of ``H``. With ``conserve=None`` the
  model is written directly as ``-sum Sigmaz Sigmaz - g sum Sigmax``. (TeNPy's ``Sz`` is
  ``Sigmaz / 2``; only the Pauli operators ``Sigmax``/``Sigmaz`` are used here.)
* Excited states: within a sector, level ``n`` is found by two-site DMRG (with the mixer)
  orthogonal to levels ``0..n-1`` of the same sector (TeNPy's ``orthogonal_to`` engine keyword).
  The K lowest levels overall are collected greedily: the lowest not-yet-accepted level of each
  sector is computed, the lower of the candidates is accepted, and only the sector it came from
  computes its next level (this assumes each sector's levels come out in ascending order). This
  needs ``K + 1`` DMRG runs per bond dimension with parity, ``K`` without; the one candidate that
  is not accepted is not reported (its time is in no ``seconds`` entry). Nearly degenerate pairs in different sectors (the ferromagnetic phase) are resolved
  exactly, because no run can mix the sectors.
* At each bond dimension the K accepted levels are sorted by energy and numbered
  ``state = 0..K-1``, so ``state`` labels the k-th lowest level *at that chi*, and ``parity``
  records the sector it came from. When two levels of different sectors are close (the ordered
  phase, where levels come in nearly degenerate even/odd pairs), the greedy choice can take the
  K-th level from one sector at some chi and from the other at the rest: that row then follows
  two different levels. This happens in ``results/benchmarks/accuracy/dmrg_tfi6x6open_g1.csv``
  (state 2: even at chi 16, 32, 128, odd at 64, 96). :func:`dmrg_scan` warns about every state
  whose sector changes with chi (:func:`parity_switches`), and ``nirbench extrapolate`` does not
  extrapolate such a state (it reports the energy at the largest chi, ``parity = "mixed"``).
* Bond dimensions are scanned in ascending order; each run starts from the MPS of the same
  (sector, level) at the previous bond dimension (warm start), the first from a product state.
* Convergence is on the energy alone (TeNPy's entropy criterion is switched off), *relative* to
  the energy scale ``||H|| <= n_bonds + g N``: a run stops once the energy changes by less than
  ``max_E_err * (n_bonds + g N)`` per sweep with the mixer off (TeNPy switches the mixer off the
  first time the criterion is met and carries on; the mixer is in any case off after 10 sweeps),
  or after ``max_sweeps`` sweeps, with a ``UserWarning`` if it had not converged by then.
* ``energy`` is ``<psi|H|psi>`` of the final MPS; ``truncation_error`` is the largest discarded
  weight in the final sweep; ``sweeps`` and ``seconds`` are those of that single DMRG run.
"""

from __future__ import annotations

import ctypes
import time
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from nirbench.fits import ID_COLUMNS, describe_parity
from nirbench.lattice import BOUNDARY_CONDITIONS, SquareLattice

SUPPORTED_MODELS = ("tfi",)
CONSERVE_OPTIONS = ("parity", None)

#: columns of the frame returned by :func:`dmrg_scan` (one row per (state, chi))
COLUMNS = [
    "model",
    "lx",
    "ly",
    "bc",
    "g",
    "state",
    "chi",
    "energy",
    "truncation_error",
    "sweeps",
    "seconds",
    "parity",
]


def _openblas_thread_controls():
    """``(get, set)`` thread-count functions of every OpenBLAS loaded in this process (Linux only)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted(
                {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
            )
    except OSError:
        return []
    controls = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("openblas", "scipy_openblas"):
            for suffix in ("", "64_"):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    controls.append((get, set_))
    return controls


@contextmanager
def blas_threads(n_threads: int | None):
    """Limit the OpenBLAS thread pools (numpy's and scipy's) to ``n_threads`` inside the block.

    ``None`` leaves them alone. Small dense linear algebra, as in DMRG on small lattices, runs
    several times faster on one thread than on an oversubscribed pool. Where no OpenBLAS is
    found (another BLAS, another OS) this does nothing; use ``OMP_NUM_THREADS`` there.
    """
    if n_threads is None:
        yield
        return
    if n_threads < 1:
        raise ValueError(f"the number of BLAS threads must be >= 1, got {n_threads}")
    controls = _openblas_thread_controls()
    previous = [get() for get, _ in controls]
    for _, set_ in controls:
        set_(int(n_threads))
    try:
        yield
    finally:
        for (_, set_), n in zip(controls, previous):
            set_(n)


def check_dmrg_input(model: str, lx: int, ly: int, bc: str, g, n_states: int, chis) -> list[int]:
    """Validate the inputs of a scan; return the sorted, de-duplicated bond dimensions."""
    if model not in SUPPORTED_MODELS:
        raise ValueError(f"DMRG supports only the models {SUPPORTED_MODELS} so far, got {model!r}")
    if bc not in BOUNDARY_CONDITIONS:
        raise ValueError(f"bc must be one of {BOUNDARY_CONDITIONS}, got {bc!r}")
    SquareLattice(lx, ly, bc)  # checks the size
    if g is None or not np.isfinite(g) or g < 0:
        raise ValueError(f"the transverse field g must be a finite number >= 0, got {g}")
    if int(n_states) != n_states or n_states < 1:
        raise ValueError(f"the number of states K must be an integer >= 1, got {n_states}")
    if n_states > 2 ** (lx * ly):
        raise ValueError(f"K = {n_states} exceeds the Hilbert-space dimension 2^{lx * ly}")
    chis = list(np.atleast_1d(chis)) if chis is not None else []
    if not chis:
        raise ValueError("give at least one bond dimension chi")
    for chi in chis:
        if int(chi) != chi or chi <= 0:
            raise ValueError(f"bond dimensions chi must be positive integers, got {chi}")
    return sorted({int(chi) for chi in chis})


def tfi_model(lx: int, ly: int, bc: str, g: float, conserve: str | None = "parity"):
    """The TeNPy ``CouplingMPOModel`` of nirbench's TFI on an ``lx`` x ``ly`` lattice.

    See the module docstring for the mapping (Hadamard rotation when ``conserve="parity"``).
    """
    from tenpy.models.lattice import Square
    from tenpy.models.model import CouplingMPOModel
    from tenpy.networks.site import SpinHalfSite

    class NirbenchTFI(CouplingMPOModel):
        """TFI with terms from nirbench's bond list; model_params: lx, ly, bc, g, conserve."""

        def init_sites(self, model_params):
            return SpinHalfSite(conserve=model_params.get("conserve", "parity", expect_type=None))

        def init_lattice(self, model_params):
            lx, ly = model_params.get("lx", 2, int), model_params.get("ly", 2, int)
            # open in TeNPy's sense: periodic bonds are added in init_terms as long-range terms
            tenpy_lattice = Square(lx, ly, self.init_sites(model_params), bc="open", bc_MPS="finite")
            expected = np.stack(np.divmod(np.arange(lx * ly), ly), axis=1)
            if not np.array_equal(tenpy_lattice.order[:, :2], expected):  # pragma: no cover
                raise RuntimeError("TeNPy's MPS order differs from nirbench's site index x * ly + y")
            return tenpy_lattice

        def init_terms(self, model_params):
            lattice = SquareLattice(
                model_params.get("lx", 2, int),
                model_params.get("ly", 2, int),
                model_params.get("bc", "open", str),
            )
            g = model_params.get("g", 1.0, "real")
            rotated = model_params.get("conserve", "parity", expect_type=None) == "parity"
            coupling_op, field_op = ("Sigmax", "Sigmaz") if rotated else ("Sigmaz", "Sigmax")
            for i, j in lattice.nearest_neighbours:
                self.add_coupling_term(-1.0, int(i), int(j), coupling_op, coupling_op)
            for i in range(lattice.n_sites):
                self.add_onsite_term(-g, i, field_op)

    if conserve not in CONSERVE_OPTIONS:
        raise ValueError(f"conserve must be one of {CONSERVE_OPTIONS}, got {conserve!r}")
    SquareLattice(lx, ly, bc)  # validates before TeNPy sees it
    return NirbenchTFI({"lx": int(lx), "ly": int(ly), "bc": bc, "g": float(g), "conserve": conserve})


def _sectors(n_sites: int, conserve):
    """``{label: initial product state}`` for each symmetry sector that is searched."""
    if conserve == "parity":
        # prod_j Sigmaz_j = +1 (even) and -1 (odd) in the rotated basis
        return {"even": ["up"] * n_sites, "odd": ["down"] + ["up"] * (n_sites - 1)}
    return {"none": ["up"] * n_sites}


def _run_dmrg(model, psi, chi, orthogonal_to, max_sweeps, max_E_err):
    """One two-site DMRG run (in place on ``psi``); returns energy, truncation error, sweeps, seconds.

    ``max_E_err`` is absolute here (TeNPy divides by ``max(E, 1)``, which is 1 for ``E < 0``).
    """
    from tenpy.algorithms.dmrg import TwoSiteDMRGEngine

    options = {
        "mixer": True,
        "mixer_params": {"amplitude": 1e-5, "decay": 2.0, "disable_after": 10},
        "max_E_err": max_E_err,
        "max_S_err": 1.0,  # i.e. converge on the energy alone
        "min_sweeps": 2,
        "max_sweeps": max_sweeps,
        "trunc_params": {"chi_max": int(chi), "svd_min": 1e-14},
        "combine": True,
        "max_trunc_err": 1.0,  # small chi in a scan is deliberate: report the error, do not raise
    }
    start = time.perf_counter()
    engine = TwoSiteDMRGEngine(psi, model, options, orthogonal_to=list(orthogonal_to))
    engine.run()
    seconds = time.perf_counter() - start
    if not (engine.mixer is None and engine.is_converged()):
        warnings.warn(
            f"DMRG (chi = {chi}, {len(orthogonal_to)} states to orthogonalise against) did not converge to "
            f"an energy change per sweep below {max_E_err:.2e} within {max_sweeps} sweeps; last change "
            f"{engine.sweep_stats['Delta_E'][-1]:.2e}",
            stacklevel=3,
        )
    energy = float(np.real(model.H_MPO.expectation_value(psi)))
    truncation_error = float(engine.sweep_stats["max_trunc_err"][-1])
    return energy, truncation_error, int(engine.sweeps), seconds


def dmrg_scan(
    lx: int,
    ly: int,
    bc: str,
    g: float,
    n_states: int,
    chis,
    *,
    model: str = "tfi",
    max_sweeps: int = 50,
    max_E_err: float = 1e-10,
    conserve: str | None = "parity",
    threads: int | None = None,
    progress: bool = True,
    on_chi_done=None,
) -> pd.DataFrame:
    """DMRG energies of the ``n_states`` lowest levels at each bond dimension in ``chis``.

    Returns a tidy frame with one row per (state, chi) and the columns ``model, lx, ly, bc, g,
    state, chi, energy, truncation_error, sweeps, seconds, parity`` (``parity`` is the Z2 sector
    ``"even"``/``"odd"`` of ``prod_j X_j``, or ``"none"`` without conservation). States are
    numbered by ascending energy at each chi; a ``UserWarning`` names every state whose parity
    changes with chi (:func:`parity_switches`). Raises ``ValueError`` for an unsupported model,
    ``chi <= 0``, ``K < 1`` or ``g < 0``. See the module docstring for the method.

    ``max_sweeps`` caps each DMRG run; ``max_E_err`` is the convergence threshold on the energy
    change per sweep, relative to ``n_bonds + g N`` (e.g. 1e-10 -> 4e-9 on the 4x4 open lattice at
    g = 1, 1.7e-8 on 6x6 at g = 3); ``threads`` limits the OpenBLAS
    pools during the scan (:func:`blas_threads`; ``None`` leaves them alone); ``progress`` shows
    a tqdm bar over the DMRG runs; ``on_chi_done(frame)``, if given, is called after each bond
    dimension with the rows finished so far (e.g. to save partial results of a long scan).
    """
    from tenpy.networks.mps import MPS
    from tqdm.auto import tqdm

    chis = check_dmrg_input(model, lx, ly, bc, g, n_states, chis)
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    if threads is not None and threads < 1:
        raise ValueError(f"the number of BLAS threads must be >= 1, got {threads}")
    if not max_E_err > 0:
        raise ValueError(f"max_E_err must be > 0, got {max_E_err}")
    tenpy_model = tfi_model(lx, ly, bc, g, conserve)
    energy_scale = len(SquareLattice(lx, ly, bc).nearest_neighbours) + float(g) * lx * ly
    absolute_E_err = max_E_err * energy_scale
    sites = tenpy_model.lat.mps_sites()
    width = tenpy_model.lat.mps_unit_cell_width
    sectors = _sectors(lx * ly, conserve)
    runs_per_chi = n_states + len(sectors) - 1
    warm: dict[tuple[str, int], object] = {}  # (sector, level) -> MPS at the previous chi
    rows = []
    bar = tqdm(total=len(chis) * runs_per_chi, disable=not progress, desc=f"DMRG {lx}x{ly} g={g}", unit="run")

    def compute_next(chi, found, sector):
        """Run DMRG for the next level of ``sector`` at ``chi``; append it to ``found[sector]``."""
        level = len(found[sector])
        if (sector, level) in warm:
            psi = warm[(sector, level)].copy()
        else:
            psi = MPS.from_product_state(sites, sectors[sector], bc="finite", unit_cell_width=width)
        lower = [entry["psi"] for entry in found[sector]]
        energy, trunc, sweeps, seconds = _run_dmrg(tenpy_model, psi, chi, lower, max_sweeps, absolute_E_err)
        found[sector].append(
            {
                "psi": psi,
                "energy": energy,
                "truncation_error": trunc,
                "sweeps": sweeps,
                "seconds": seconds,
                "parity": sector,
            }
        )
        warm[(sector, level)] = psi
        bar.set_postfix(chi=chi, sector=sector, level=level, E=f"{energy:.8f}")
        bar.update()

    with bar, blas_threads(threads), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unit_cell_width.*")
        for chi in chis:
            found: dict[str, list] = {sector: [] for sector in sectors}  # computed levels, ascending
            for sector in sectors:
                compute_next(chi, found, sector)
            accepted_counts = {sector: 0 for sector in sectors}
            accepted = []
            while len(accepted) < n_states:
                sector = min(sectors, key=lambda s: found[s][accepted_counts[s]]["energy"])
                accepted.append(found[sector][accepted_counts[sector]])
                accepted_counts[sector] += 1
                if len(accepted) < n_states:
                    compute_next(chi, found, sector)
            accepted.sort(key=lambda entry: entry["energy"])
            for state, entry in enumerate(accepted):
                rows.append(
                    {
                        "model": model,
                        "lx": lx,
                        "ly": ly,
                        "bc": bc,
                        "g": float(g),
                        "state": state,
                        "chi": chi,
                        **{
                            key: entry[key]
                            for key in ("energy", "truncation_error", "sweeps", "seconds", "parity")
                        },
                    }
                )
            if on_chi_done is not None:
                on_chi_done(_as_frame(rows))
    frame = _as_frame(rows)
    warn_parity_switches(frame, stacklevel=2)
    return frame


def parity_switches(frame: pd.DataFrame) -> dict[int, str]:
    """``{state: "even at chi 16, 32; odd at chi 64"}`` for each state whose parity sector changes with chi.

    ``frame`` is a scan (the columns ``state, chi, parity``); rows are grouped by ``state`` (and by
    those of ``model, lx, ly, bc, g`` that are present, so one frame can hold several systems; the
    key is then the tuple of those values and the state). Empty when every state keeps its sector.
    """
    if "parity" not in frame.columns or frame.empty:
        return {}
    keys = [column for column in ID_COLUMNS if column in frame.columns and frame[column].nunique() > 1]
    keys.append("state")
    switches = {}
    for key, group in frame.groupby(keys, sort=True):
        text = describe_parity(group["chi"].to_numpy(), group["parity"].to_numpy())
        if text is not None:
            switches[key[0] if len(keys) == 1 else key] = text
    return switches


def warn_parity_switches(frame: pd.DataFrame, stacklevel: int = 2) -> dict[int, str]:
    """Warn (``UserWarning``) once per state of :func:`parity_switches`; return that dict."""
    switches = parity_switches(frame)
    for state, text in switches.items():
        warnings.warn(
            f"DMRG state {state} changes parity sector with chi ({text}): its row mixes two levels whose "
            "order differs between bond dimensions; `nirbench extrapolate` will not extrapolate it",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    return switches


def _as_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["state", "chi"], ignore_index=True)
