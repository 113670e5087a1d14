"""Bond-dimension extrapolation of DMRG energies (paper section 4.4), with fits that say when they fail.

Three estimates of the infinite-chi energy of each state are made from a scan
(:func:`nirbench.dmrg.dmrg_scan`):

``power_law``
    ``E(chi) = a + b (chi + c)^d`` fitted to every bond dimension (the paper's fit) with
    ``scipy.optimize.curve_fit``, bounds ``b >= 0`` (energies fall towards ``a`` as chi grows),
    ``-min(chi) < c <= 10 max(chi)`` and ``-20 <= d <= -1e-3``, from a start found by a grid over
    ``(c, d)`` with ``a, b`` solved linearly at each grid point (curve_fit's default start fails for
    power laws). Needs at least 4 bond dimensions. With exactly 4 points the four parameters
    interpolate the data: there are no degrees of freedom left, so the fit itself carries no error
    estimate.
``power_law_window``
    The same fit without the smallest bond dimension (the fit-window check). When fewer than 4
    points remain, ``c`` is fixed at 0 (a three-parameter fit); it needs at least 3 points.
``truncation``
    A straight line ``E = a + b * truncation_error`` through the largest ``max(2, ceil(n / 2))``
    of the ``n`` bond dimensions (where the energy is linear in the discarded weight), read at
    zero truncation error. Skipped when the frame has no ``truncation_error`` column or the
    truncation errors in that window do not vary.

**Acceptance rules.** A fit that ran into a bound, or whose parameters are outside the range in
which the model means something, is *rejected*; the ``rejected`` column lists every rejected
estimate as ``method: reason`` (``; `` between them). With ``E_max`` the energy at the largest chi
and ``dE_last = |E(second largest chi) - E_max|`` the last energy change of the scan:

1. *At a bound* (power laws): ``d`` within 1 % of ``-20`` or of ``-1e-3``; ``c`` within
   ``0.01 min(chi)`` of ``-min(chi)`` (the fitted singularity sits on the smallest chi) or within
   1 % of ``10 max(chi)``; ``b`` at 0, i.e. the fitted correction at the smallest chi,
   ``b (chi_min + c)^d``, below 1 % of the energy drop over the fitted points. The optimum of a fit
   stuck at a bound lies outside the box, so the parameters (and ``a``) are set by the box, not by
   the data. A typical symptom is ``b ~ 1e38``: with ``c`` of the order of chi the model becomes
   ``b c^d exp(d chi / c)``, an exponential that ``b`` and ``c`` shift along, and ``d`` runs to -20.
2. *Outside the physical range* (power laws): ``|d|`` outside ``[0.1, 10]`` (below 0.1 the energy
   would barely converge and the tail beyond ``chi_max`` is unbounded in practice; above 10 the power
   law cannot be told from an exponential over a scan and ``c, d`` are not determined separately);
   ``c > max(chi)`` (over the scan ``chi + c`` then changes by less than a factor 2 and the exponent
   is not determined); ``b`` not finite.
3. *Misfit* (power laws): a residual larger than 10 % of the energy drop over the fitted points,
   or curve_fit gave up (e.g. its evaluation limit).
4. *Unphysical ``a``* (all fits): ``a > E_max`` by more than ``1e-12 |E_max|`` (DMRG energies are
   variational, so the exact energy lies at or below ``E_max``), or ``a < E_max - 10 dE_last``.
   The factor 10 is the tail ``E_max - a`` of a pure power law ``chi^d`` relative to its last change,
   ``1 / (r^|d| - 1)`` for a chi ratio ``r`` between the last two bond dimensions, at ``|d| ~ 0.14``
   for ``r = 2`` and ``|d| ~ 0.33`` for ``r = 4/3``: a fit that puts ``a`` further down extrapolates
   far beyond what the data show.
5. *Wrong slope* (``truncation``): ``b <= 0`` (the energy must fall with the discarded weight).

**Choice and uncertainty.** The reported ``energy_extrapolated`` is the first *accepted* estimate in
the order ``power_law``, ``truncation``, ``power_law_window`` (``method`` names it). Its
``uncertainty`` is ``max(spread, 2 * stat_error, floor)``, so the interval
``energy_extrapolated +- uncertainty`` contains every accepted estimate:

* ``spread``, the systematic part: the largest distance between the chosen estimate and the other
  *accepted* estimates (rejected ones take no part).
* ``stat_error``, the statistical part: the larger of curve_fit's standard error of ``a`` and the
  jackknife (leave-one-chi-out) standard error of ``a``. Only a fit with spare degrees of freedom
  has the first, and only a power law over at least 5 points the second; with the paper's 4 bond
  dimensions neither exists.
* ``floor``: 10 % of the extrapolation distance ``|E_max - energy_extrapolated|`` (the estimates
  share the power-law form, so their agreement alone understates the model dependence); when only
  one estimate is accepted there is nothing to compare with and the floor is the whole distance.

On synthetic noisy data (8 bond dimensions, tests/test_fits.py) this covers the true ``a`` in
about 90-95 % of the trials: power-law extrapolations with a free exponent have heavy tails.

**Fallbacks.** These report ``E_max`` with the uncertainty ``dE_last`` (DMRG energies fall with chi,
so the exact level lies below ``E_max``; the last change is the size of what is still moving):

* ``method = "largest_chi (all fits rejected)"``: every estimate was rejected (see ``rejected``).
* ``method = "largest_chi (too few bond dimensions)"``: no fit was possible (2 bond dimensions
  without truncation errors).
* ``method = "largest_chi (parity mixed)"``: the scan's ``parity`` column changes with chi for this
  state. States are numbered by energy at each chi, so when two levels of different Z2 sectors
  cross between bond dimensions the row follows one level at some chi and the other at the rest;
  extrapolating that mixture is meaningless, so no fit is made, ``parity`` is ``"mixed"`` and
  ``rejected`` says which sector came at which chi.

When the energies have stopped changing with chi (the two largest within 1e-12) the energy at the
largest chi is reported with that change as its uncertainty (``method = "converged"``). A state with
a single bond dimension is an error (``ValueError``): nothing can be extrapolated from one point.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

#: columns that identify a scan; those present in the input frame are carried to the output
ID_COLUMNS = ["model", "lx", "ly", "bc", "g"]
FIT_COLUMNS = ["state", "energy_extrapolated", "uncertainty", "method", "a", "b", "c", "d"]
ESTIMATE_COLUMNS = [
    "spread",
    "stat_error",
    "energy_largest_chi",
    "chi_max",
    "n_chi",
    "energy_power_law",
    "energy_power_law_window",
    "energy_truncation",
    "parity",
    "rejected",
]
#: order of preference among the accepted estimates
PREFERENCE = ("power_law", "truncation", "power_law_window")
D_BOUNDS = (-20.0, -1e-3)  # bounds of d in the fit
C_UPPER = 10.0  # c <= C_UPPER * max(chi) in the fit
D_RANGE = (-10.0, -0.1)  # accepted range of d
BOUND_MARGIN = 0.01  # a parameter within this relative margin of a bound is "at the bound"
MISFIT = 0.1  # largest residual accepted, relative to the energy drop over the fitted points
TAIL_FACTOR = 10.0  # a may lie at most TAIL_FACTOR * dE_last below E_max
FLOOR_FRACTION = 0.1  # uncertainty >= this fraction of |E_max - chosen| (several accepted estimates)
VARIATIONAL_RTOL = 1e-12  # a above E_max by more than this (relative) is rejected
CONVERGED_TOL = 1e-12
FALLBACK_ALL_REJECTED = "largest_chi (all fits rejected)"
FALLBACK_TOO_FEW = "largest_chi (too few bond dimensions)"
FALLBACK_PARITY_MIXED = "largest_chi (parity mixed)"


def power_law(chi, a, b, c, d):
    """``a + b * (chi + c) ** d``."""
    return a + b * (np.asarray(chi, dtype=float) + c) ** d


def fit_power_law(chi, energy, *, fix_c: float | None = None) -> dict | None:
    """Fit ``E(chi) = a + b (chi + c)^d``; return ``{a, b, c, d, a_err, dof, at_bound, failed}`` or ``None``.

    ``fix_c`` fixes ``c`` (a three-parameter fit). ``a_err`` is curve_fit's standard error of
    ``a`` (scaled by the residuals) when the fit has spare degrees of freedom, else NaN.
    ``at_bound`` lists the reasons (strings) for which the fit sits at a bound of its box (rule 1 of
    the module docstring; empty when it is free). ``failed`` is ``None``, or curve_fit's message when
    it gave up (the parameters are then the start of the fit, which is rejected). Internally the fit runs in scaled units,
    ``x = (chi + c) / max(chi)`` and ``y = (E - E(max chi)) / spread``, so every parameter is of
    order one.
    """
    chi = np.asarray(chi, dtype=float)
    energy = np.asarray(energy, dtype=float)
    order = np.argsort(chi)
    chi, energy = chi[order], energy[order]
    n_params = 3 if fix_c is not None else 4
    if chi.size < n_params or np.unique(chi).size < chi.size:
        return None
    chi_ref = chi[-1]
    shift = energy[-1]
    scale = np.max(np.abs(energy - shift))
    if not scale > 0:
        return None
    y = (energy - shift) / scale
    u = chi / chi_ref  # chi in units of chi_ref; the scaled model is A + B (u + C)^d
    c_low = -u[0] * (1 - 1e-6)

    # start: grid over (C, d), (A, B) by linear least squares, B >= 0
    if fix_c is not None:
        c_grid = np.array([fix_c / chi_ref])
    else:  # from just above -min(chi) to 2 max(chi), denser near the lower end
        c_grid = c_low + (u[0] + 2.0) * np.linspace(0, 1, 25) ** 2
    d_grid = -np.geomspace(0.05, 15.0, 40)
    c_mesh, d_mesh = (grid.ravel() for grid in np.meshgrid(c_grid, d_grid, indexing="ij"))
    basis = (u[None, :] + c_mesh[:, None]) ** d_mesh[:, None]  # (grid, n)
    centred = basis - basis.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = centred @ (y - y.mean()) / np.sum(centred**2, axis=1)
    intercept = y.mean() - slope * basis.mean(axis=1)
    cost = np.sum((intercept[:, None] + slope[:, None] * basis - y[None, :]) ** 2, axis=1)
    cost[~(slope >= 0) | ~np.isfinite(cost)] = np.inf
    if not np.isfinite(cost).any():
        return None
    k = int(np.argmin(cost))
    a0, b0, c0, d0 = intercept[k], slope[k], c_mesh[k], d_mesh[k]

    if fix_c is not None:
        c_fixed = fix_c / chi_ref

        def model(u_, a_, b_, d_):
            return a_ + b_ * (u_ + c_fixed) ** d_

        p0 = [a0, b0, d0]
        bounds = ([-np.inf, 0.0, D_BOUNDS[0]], [np.inf, np.inf, D_BOUNDS[1]])
    else:

        def model(u_, a_, b_, c_, d_):
            return a_ + b_ * (u_ + c_) ** d_

        p0 = [a0, b0, c0, d0]
        bounds = ([-np.inf, 0.0, c_low, D_BOUNDS[0]], [np.inf, np.inf, C_UPPER, D_BOUNDS[1]])
    p0 = np.clip(p0, np.array(bounds[0]) + 1e-12, np.array(bounds[1]) - 1e-12)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params, cov = curve_fit(
                model,
                u,
                y,
                p0=p0,
                bounds=bounds,
                method="trf",
                x_scale="jac",
                max_nfev=20000,
                ftol=1e-15,
                xtol=1e-15,
                gtol=1e-15,
            )
        failed = None
    except (RuntimeError, ValueError) as error:  # the start is returned, marked as failed
        params, cov = np.asarray(p0), np.full((n_params, n_params), np.inf)
        failed = str(error).split(":")[-1].strip().rstrip(".") or type(error).__name__
    if fix_c is not None:
        a_s, b_s, d = params
        c_s = fix_c / chi_ref
    else:
        a_s, b_s, c_s, d = params
    dof = chi.size - n_params
    a_err = float(np.sqrt(cov[0, 0]) * scale) if dof > 0 and np.isfinite(cov[0, 0]) else np.nan

    at_bound = []
    if d <= D_BOUNDS[0] * (1 - BOUND_MARGIN) or d >= D_BOUNDS[1] * (1 + BOUND_MARGIN):
        at_bound.append(f"d = {d:.4g} at a bound of [{D_BOUNDS[0]:g}, {D_BOUNDS[1]:g}]")
    if fix_c is None:
        if c_s + u[0] <= BOUND_MARGIN * u[0]:
            at_bound.append(f"c = {c_s * chi_ref:.4g} at its bound -min(chi) = {-chi[0]:g}")
        if c_s >= C_UPPER * (1 - BOUND_MARGIN):
            at_bound.append(f"c = {c_s * chi_ref:.4g} at its bound {C_UPPER:g} max(chi)")
    # b at 0: the correction at the smallest chi is a negligible part of the energy drop (~1 scaled)
    with np.errstate(over="ignore", invalid="ignore"):
        correction_first = b_s * (u[0] + c_s) ** d
    if not correction_first >= BOUND_MARGIN:
        at_bound.append(
            f"b at its bound 0 (correction at chi = {chi[0]:g} is {correction_first * scale:.3g})"
        )
    # back to physical units: E = a + b (chi + c)^d
    with np.errstate(over="ignore"):
        b = float(scale * b_s * chi_ref ** (-d))
    return {
        "a": float(shift + scale * a_s),
        "b": b,
        "c": float(c_s * chi_ref),
        "d": float(d),
        "a_err": a_err,
        "dof": dof,
        "at_bound": at_bound,
        "failed": failed,
    }


def fit_truncation(truncation_error, energy) -> dict | None:
    """Straight line ``E = a + b * truncation_error``; return ``{a, b, a_err, dof}`` or ``None``."""
    x = np.asarray(truncation_error, dtype=float)
    y = np.asarray(energy, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or not np.ptp(x) > 0:
        return None
    design = np.stack([np.ones_like(x), x], axis=1)
    coeffs, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = x.size - 2
    a_err = np.nan
    if dof > 0:
        residual = y - design @ coeffs
        cov = np.linalg.inv(design.T @ design) * (residual @ residual) / dof
        a_err = float(np.sqrt(cov[0, 0]))
    return {"a": float(coeffs[0]), "b": float(coeffs[1]), "a_err": a_err, "dof": dof}


def check_power_law(fit: dict, chi, energy) -> list[str]:
    """Rules 1-3 of the module docstring for a power-law fit to ``(chi, energy)``: reasons to reject."""
    chi = np.asarray(chi, dtype=float)
    energy = np.asarray(energy, dtype=float)
    order = np.argsort(chi)
    chi, energy = chi[order], energy[order]
    reasons = [f"fit failed ({fit['failed']})"] if fit.get("failed") else []
    reasons += fit.get("at_bound", [])
    d, c, b = fit["d"], fit["c"], fit["b"]
    if not D_RANGE[0] <= d <= D_RANGE[1] and not any(r.startswith("d =") for r in reasons):
        reasons.append(f"d = {d:.4g} outside [{D_RANGE[0]:g}, {D_RANGE[1]:g}]")
    if c > chi[-1] and not any(r.startswith("c =") for r in reasons):
        reasons.append(f"c = {c:.4g} > max(chi) = {chi[-1]:g}")
    if not np.isfinite(b):
        reasons.append(f"b = {b} not finite")
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            residual = energy - power_law(chi, fit["a"], b, c, d)
        drop = abs(energy[0] - energy[-1])
        worst = np.max(np.abs(residual))
        if not worst <= MISFIT * drop:
            reasons.append(f"misfit: residual {worst:.3g} > {MISFIT:g} x energy drop {drop:.3g}")
    return reasons


def check_a(a: float, energy_max: float, last_change: float) -> list[str]:
    """Rule 4 of the module docstring: reasons to reject an extrapolated ``a``."""
    reasons = []
    if a > energy_max + VARIATIONAL_RTOL * abs(energy_max):
        reasons.append(f"a above E(chi_max) by {a - energy_max:.3g} (DMRG energies are variational)")
    if a < energy_max - TAIL_FACTOR * last_change:
        reasons.append(
            f"a below E(chi_max) by {energy_max - a:.3g} > {TAIL_FACTOR:g} x last change {last_change:.3g}"
        )
    return reasons


def describe_parity(chi, parity) -> str | None:
    """``None`` if ``parity`` is one sector for every chi, else e.g. ``"even at chi 16, 128; odd at chi 64"``."""
    labels = pd.Series(np.asarray(parity, dtype=object), index=np.asarray(chi)).dropna().astype(str)
    if labels.nunique() <= 1:
        return None
    labels = labels.sort_index()
    parts = [
        f"{sector} at chi "
        + ", ".join(f"{int(x)}" if float(x).is_integer() else f"{x:g}" for x in group.index)
        for sector, group in labels.groupby(labels, sort=False)
    ]
    return "; ".join(parts)


def _jackknife_error(chi, energy) -> float:
    """Leave-one-chi-out jackknife standard error of the power-law ``a`` (NaN if a fit fails)."""
    n = chi.size
    replicas = []
    for i in range(n):
        fit = fit_power_law(np.delete(chi, i), np.delete(energy, i))
        if fit is None:
            return np.nan
        replicas.append(fit["a"])
    replicas = np.asarray(replicas)
    return float(np.sqrt((n - 1) / n * np.sum((replicas - replicas.mean()) ** 2)))


def extrapolate_state(chi, energy, truncation_error=None, parity=None) -> dict:
    """All estimates for one state; returns one output row (see the module docstring).

    Raises ``ValueError`` for fewer than 2 bond dimensions.
    """
    chi = np.asarray(chi, dtype=float)
    energy = np.asarray(energy, dtype=float)
    if chi.size < 2:
        raise ValueError(
            f"a state needs at least 2 bond dimensions to extrapolate, got {chi.size} (chi = "
            f"{', '.join(f'{x:g}' for x in chi)}); scan more bond dimensions with `nirbench dmrg --chi ...`"
        )
    order = np.argsort(chi)
    chi, energy = chi[order], energy[order]
    trunc = None if truncation_error is None else np.asarray(truncation_error, dtype=float)[order]
    sectors = None if parity is None else np.asarray(parity, dtype=object)[order]
    last_change = abs(energy[-2] - energy[-1])
    row = {
        "spread": np.nan,
        "stat_error": np.nan,
        "energy_largest_chi": energy[-1],
        "chi_max": chi[-1],
        "n_chi": chi.size,
        "energy_power_law": np.nan,
        "energy_power_law_window": np.nan,
        "energy_truncation": np.nan,
        "parity": np.nan,
        "rejected": "",
        "a": np.nan,
        "b": np.nan,
        "c": np.nan,
        "d": np.nan,
    }
    fallback = {"energy_extrapolated": energy[-1], "uncertainty": last_change}
    if sectors is not None:
        mixed = describe_parity(chi, sectors)
        if mixed is not None:
            return {
                **row,
                **fallback,
                "parity": "mixed",
                "rejected": f"all: parity sector changes with chi ({mixed}), the row mixes two levels",
                "method": FALLBACK_PARITY_MIXED,
            }
        known = pd.Series(sectors).dropna()
        row["parity"] = str(known.iloc[0]) if len(known) else np.nan
    if abs(energy[-1] - energy[-2]) <= CONVERGED_TOL:
        return {
            **row,
            "energy_extrapolated": energy[-1],
            "uncertainty": last_change,
            "spread": last_change,
            "method": "converged",
        }

    full = fit_power_law(chi, energy)
    window = None
    if chi.size >= 3:
        window = fit_power_law(chi[1:], energy[1:], fix_c=None if chi.size - 1 >= 4 else 0.0)
    linear = None
    if trunc is not None and chi.size >= 2:
        n_window = max(2, -(-chi.size // 2))
        linear = fit_truncation(trunc[-n_window:], energy[-n_window:])
    estimates = {"power_law": full, "truncation": linear, "power_law_window": window}
    reasons = {}
    if full is not None:
        reasons["power_law"] = check_power_law(full, chi, energy)
    if window is not None:
        reasons["power_law_window"] = check_power_law(window, chi[1:], energy[1:])
    if linear is not None:
        reasons["truncation"] = [] if linear["b"] > 0 else [f"slope b = {linear['b']:.3g} <= 0"]
    for name, fit in estimates.items():
        if fit is not None:
            reasons[name] += check_a(fit["a"], energy[-1], last_change)
            row[f"energy_{name}"] = fit["a"]
    row["rejected"] = "; ".join(
        f"{name}: {', '.join(reasons[name])}" for name in PREFERENCE if reasons.get(name)
    )

    available = [name for name in PREFERENCE if estimates[name] is not None]
    accepted = [name for name in available if not reasons[name]]
    if not available:
        return {**row, **fallback, "method": FALLBACK_TOO_FEW}
    if not accepted:
        return {**row, **fallback, "method": FALLBACK_ALL_REJECTED}
    method = accepted[0]
    chosen = estimates[method]
    others = [estimates[name]["a"] for name in accepted[1:]]
    distance = abs(energy[-1] - chosen["a"])
    if others:
        spread = max(abs(a - chosen["a"]) for a in others)
        floor = FLOOR_FRACTION * distance
    else:
        spread = np.nan
        floor = distance
    stat_errors = [chosen["a_err"]]
    if method == "power_law" and chi.size >= 5:
        stat_errors.append(_jackknife_error(chi, energy))
    stat_errors = [err for err in stat_errors if np.isfinite(err)]
    stat_error = max(stat_errors) if stat_errors else np.nan
    uncertainty = float(np.nanmax([spread, 2.0 * stat_error, floor]))
    row.update({"a": chosen["a"], "b": chosen["b"], "spread": spread, "stat_error": stat_error})
    if method.startswith("power_law"):
        row.update({"c": chosen["c"], "d": chosen["d"]})
    return {**row, "energy_extrapolated": chosen["a"], "uncertainty": uncertainty, "method": method}


def extrapolate(frame: pd.DataFrame) -> pd.DataFrame:
    """Extrapolate a DMRG scan to infinite bond dimension, one row per state.

    ``frame`` needs the columns ``state, chi, energy`` (``truncation_error`` and ``parity`` are
    used when present). Rows are grouped by ``state`` and by those of ``model, lx, ly, bc, g`` that
    are present. Output columns: the identifying columns, then ``state, energy_extrapolated,
    uncertainty, method, a, b, c, d`` (NaN for parameters the chosen method does not have: the
    linear truncation fit has only ``a, b``; NaN for all in a fallback), then the parts of the
    uncertainty and the individual estimates, ``spread, stat_error, energy_largest_chi, chi_max,
    n_chi, energy_power_law, energy_power_law_window, energy_truncation`` (rejected estimates
    included), then ``parity`` (the state's Z2 sector, ``"mixed"`` when it changes with chi) and
    ``rejected`` (``method: reason; ...``, empty when every estimate was accepted). Raises
    ``ValueError`` for a frame without those columns, without rows, with missing values, with a
    duplicate bond dimension or with a state that has a single bond dimension.
    """
    missing = [column for column in ("state", "chi", "energy") if column not in frame.columns]
    if missing:
        raise ValueError(f"the scan lacks the column(s) {missing}; expected the output of `nirbench dmrg`")
    if frame.empty:
        raise ValueError("the scan has no rows")
    if frame[["chi", "energy"]].isna().any().any():
        raise ValueError("the scan has missing chi or energy values")
    ids = [column for column in ID_COLUMNS if column in frame.columns]
    keys = ids + ["state"]
    rows = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{k} = {v}" for k, v in zip(keys, key))
        if group["chi"].duplicated().any():
            raise ValueError(f"duplicate bond dimensions for {where}")
        trunc = group["truncation_error"].to_numpy() if "truncation_error" in group.columns else None
        parity = group["parity"].to_numpy() if "parity" in group.columns else None
        try:
            result = extrapolate_state(group["chi"].to_numpy(), group["energy"].to_numpy(), trunc, parity)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from error
        rows.append({**dict(zip(keys, key)), **result})
    return pd.DataFrame(rows, columns=ids + FIT_COLUMNS + ESTIMATE_COLUMNS)
