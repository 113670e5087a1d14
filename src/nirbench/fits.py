"""Bond-dimension extrapolation of DMRG energies (paper section 4.4).

Three estimates of the infinite-chi energy of each state are made from a scan
(:func:`nirbench.dmrg.dmrg_scan`):

``power_law``
    ``E(chi) = a + b (chi + c)^d`` fitted to every bond dimension (the paper's fit) with
    ``scipy.optimize.curve_fit``, bounds ``b >= 0`` (energies fall towards ``a`` as chi grows),
    ``c > -min(chi)`` and ``-20 <= d < 0``, from a start found by a grid over ``(c, d)`` with
    ``a, b`` solved linearly at each grid point (curve_fit's default start fails for power laws).
    Needs at least 4 bond dimensions. With exactly 4 points the four parameters interpolate the
    data: there are no degrees of freedom left, so the fit itself carries no error estimate.
``power_law_window``
    The same fit without the smallest bond dimension (the fit-window check). When fewer than 4
    points remain, ``c`` is fixed at 0 (a three-parameter fit); it needs at least 3 points.
``truncation``
    A straight line ``E = a + b * truncation_error`` through the largest ``max(2, ceil(n / 2))``
    of the ``n`` bond dimensions (where the energy is linear in the discarded weight), read at
    zero truncation error. Skipped when the frame has no ``truncation_error`` column or the
    truncation errors in that window do not vary.

The reported ``energy_extrapolated`` is the first estimate available in the order
``power_law``, ``truncation``, ``power_law_window`` (``method`` names it), or the energy at the
largest chi (``largest_chi``) when none is. Its ``uncertainty`` is ``max(spread, 2 * stat_error)``:

* ``spread``, the systematic part: the largest distance between the chosen estimate and the other
  estimates (other fit, other window). With a single estimate, the distance to the energy at the
  largest chi, a deliberately conservative bound.
* ``stat_error``, the statistical part: the larger of curve_fit's standard error of ``a`` and the
  jackknife (leave-one-chi-out) standard error of ``a``. Only a fit with spare degrees of freedom
  has the first, and only one with at least 5 points the second; with the paper's 4 bond
  dimensions neither exists and the uncertainty is the spread alone.

On synthetic noisy data (8 bond dimensions, tests/test_fits.py) this covers the true ``a`` in
about 90-95 % of the trials: power-law extrapolations with a free exponent have heavy tails.
When the energies have stopped changing with chi (the two largest within 1e-12) the energy at the
largest chi is reported with that change as its uncertainty (``method = "converged"``).
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
]
D_BOUNDS = (-20.0, -1e-3)
CONVERGED_TOL = 1e-12


def power_law(chi, a, b, c, d):
    """``a + b * (chi + c) ** d``."""
    return a + b * (np.asarray(chi, dtype=float) + c) ** d


def fit_power_law(chi, energy, *, fix_c: float | None = None) -> dict | None:
    """Fit ``E(chi) = a + b (chi + c)^d``; return ``{a, b, c, d, a_err, dof}`` or ``None``.

    ``fix_c`` fixes ``c`` (a three-parameter fit). ``a_err`` is curve_fit's standard error of
    ``a`` (scaled by the residuals) when the fit has spare degrees of freedom, else NaN.
    Internally the fit runs in scaled units, ``x = (chi + c) / max(chi)`` and
    ``y = (E - E(max chi)) / spread``, so every parameter is of order one.
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
        bounds = ([-np.inf, 0.0, c_low, D_BOUNDS[0]], [np.inf, np.inf, 10.0, D_BOUNDS[1]])
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
    except (RuntimeError, ValueError):
        params, cov = np.asarray(p0), np.full((n_params, n_params), np.inf)
    if fix_c is not None:
        a_s, b_s, d = params
        c_s = fix_c / chi_ref
    else:
        a_s, b_s, c_s, d = params
    dof = chi.size - n_params
    a_err = float(np.sqrt(cov[0, 0]) * scale) if dof > 0 and np.isfinite(cov[0, 0]) else np.nan
    # back to physical units: E = a + b (chi + c)^d
    return {
        "a": float(shift + scale * a_s),
        "b": float(scale * b_s * chi_ref ** (-d)),
        "c": float(c_s * chi_ref),
        "d": float(d),
        "a_err": a_err,
        "dof": dof,
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


def extrapolate_state(chi, energy, truncation_error=None) -> dict:
    """All estimates for one state; returns one output row (see the module docstring)."""
    chi = np.asarray(chi, dtype=float)
    energy = np.asarray(energy, dtype=float)
    order = np.argsort(chi)
    chi, energy = chi[order], energy[order]
    trunc = None if truncation_error is None else np.asarray(truncation_error, dtype=float)[order]
    row = {
        "spread": np.nan,
        "stat_error": np.nan,
        "energy_largest_chi": energy[-1],
        "chi_max": chi[-1],
        "n_chi": chi.size,
        "energy_power_law": np.nan,
        "energy_power_law_window": np.nan,
        "energy_truncation": np.nan,
        "a": np.nan,
        "b": np.nan,
        "c": np.nan,
        "d": np.nan,
    }
    if chi.size >= 2 and abs(energy[-1] - energy[-2]) <= CONVERGED_TOL:
        change = abs(energy[-1] - energy[-2])
        return {
            **row,
            "energy_extrapolated": energy[-1],
            "uncertainty": change,
            "spread": change,
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
    for name, column in [
        ("power_law", "energy_power_law"),
        ("power_law_window", "energy_power_law_window"),
        ("truncation", "energy_truncation"),
    ]:
        if estimates[name] is not None:
            row[column] = estimates[name]["a"]

    available = [name for name, fit in estimates.items() if fit is not None]
    if not available:
        return {**row, "energy_extrapolated": energy[-1], "uncertainty": np.nan, "method": "largest_chi"}
    method = available[0]
    chosen = estimates[method]
    others = [estimates[name]["a"] for name in available[1:]]
    if others:
        spread = max(abs(a - chosen["a"]) for a in others)
    else:
        spread = abs(energy[-1] - chosen["a"])
    stat_errors = [chosen["a_err"]]
    if method == "power_law" and chi.size >= 5:
        stat_errors.append(_jackknife_error(chi, energy))
    stat_errors = [err for err in stat_errors if np.isfinite(err)]
    stat_error = max(stat_errors) if stat_errors else np.nan
    uncertainty = spread if np.isnan(stat_error) else max(spread, 2.0 * stat_error)
    row.update({"a": chosen["a"], "b": chosen["b"], "spread": spread, "stat_error": stat_error})
    if method.startswith("power_law"):
        row.update({"c": chosen["c"], "d": chosen["d"]})
    return {**row, "energy_extrapolated": chosen["a"], "uncertainty": uncertainty, "method": method}


def extrapolate(frame: pd.DataFrame) -> pd.DataFrame:
    """Extrapolate a DMRG scan to infinite bond dimension, one row per state.

    ``frame`` needs the columns ``state, chi, energy`` (``truncation_error`` is used when
    present). Rows are grouped by ``state`` and by those of ``model, lx, ly, bc, g`` that are
    present. Output columns: the identifying columns, then ``state, energy_extrapolated,
    uncertainty, method, a, b, c, d`` (NaN for parameters the chosen method does not have: the
    linear truncation fit has only ``a, b``), then the parts of the uncertainty and the individual
    estimates, ``spread, stat_error, energy_largest_chi, chi_max, n_chi, energy_power_law,
    energy_power_law_window, energy_truncation``, so the uncertainty can be traced.
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
        if group["chi"].duplicated().any():
            raise ValueError(f"duplicate bond dimensions for {dict(zip(keys, key))}")
        trunc = group["truncation_error"].to_numpy() if "truncation_error" in group.columns else None
        result = extrapolate_state(group["chi"].to_numpy(), group["energy"].to_numpy(), trunc)
        rows.append({**dict(zip(keys, key)), **result})
    return pd.DataFrame(rows, columns=ids + FIT_COLUMNS + ESTIMATE_COLUMNS)
