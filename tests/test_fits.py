"""Bond-dimension extrapolation: synthetic data with known parameters, and the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nirbench import cli
from nirbench.fits import (
    FALLBACK_ALL_REJECTED,
    FALLBACK_PARITY_MIXED,
    FALLBACK_TOO_FEW,
    check_a,
    extrapolate,
    fit_power_law,
    fit_truncation,
    power_law,
)

CHIS = np.array([16, 24, 32, 48, 64, 100, 150, 200])


def synthetic(a, b, c, d, chis=CHIS, noise=0.0, seed=0, state=0, with_truncation=True):
    """A scan from the model; the truncation error is proportional to the energy error."""
    chis = np.asarray(chis, dtype=float)
    exact = power_law(chis, a, b, c, d)
    energy = exact + np.random.default_rng(seed).normal(0.0, noise, chis.size)
    frame = pd.DataFrame({"state": state, "chi": chis.astype(int), "energy": energy})
    if with_truncation:
        frame["truncation_error"] = 1e-3 * (exact - a)
    return frame


@pytest.mark.parametrize(
    "a, b, c, d",
    [(-70.0, 50.0, 8.0, -1.7), (-21.3, 3.0, -10.0, -0.8), (-100.0, 2e4, 30.0, -3.2)],
)
def test_power_law_fit_recovers_known_parameters(a, b, c, d):
    fit = fit_power_law(CHIS, power_law(CHIS, a, b, c, d))
    assert fit["a"] == pytest.approx(a, abs=1e-8)
    assert fit["b"] == pytest.approx(b, rel=1e-5)
    assert fit["c"] == pytest.approx(c, abs=1e-4)
    assert fit["d"] == pytest.approx(d, abs=1e-6)
    assert fit["dof"] == CHIS.size - 4
    assert fit["at_bound"] == [] and fit["failed"] is None


def test_four_points_are_interpolated_and_carry_no_fit_error():
    """With 4 points and 4 parameters the fit is exact; its own error estimate is NaN."""
    chis = np.array([25, 50, 100, 200])
    a, b, c, d = -70.0, 50.0, 8.0, -1.7
    fit = fit_power_law(chis, power_law(chis, a, b, c, d))
    assert fit["dof"] == 0 and np.isnan(fit["a_err"])
    assert fit["a"] == pytest.approx(a, abs=1e-7)
    row = extrapolate(synthetic(a, b, c, d, chis=chis)).iloc[0]
    assert row["method"] == "power_law"
    assert row["energy_extrapolated"] == pytest.approx(a, abs=1e-7)
    # the window fit (c fixed at 0 on the three largest chi) differs: that is the uncertainty
    assert np.isnan(row["stat_error"])
    spread = max(abs(row["energy_power_law_window"] - a), abs(row["energy_truncation"] - a))
    floor = 0.1 * abs(row["energy_largest_chi"] - a)
    assert pd.isna(row["rejected"]) or row["rejected"] == ""
    assert row["uncertainty"] == pytest.approx(max(spread, floor), rel=1e-6, abs=1e-9)
    assert row["uncertainty"] > 0


def test_extrapolate_noiseless_columns_and_parameters():
    a, b, c, d = -57.8, 12.0, 4.0, -2.0
    frame = pd.concat([synthetic(a, b, c, d, state=0), synthetic(a + 3, b, c, d, state=1)])
    frame = frame.assign(model="tfi", lx=6, ly=6, bc="open", g=3.0)
    fits = extrapolate(frame)
    assert list(fits.columns[:13]) == [
        "model",
        "lx",
        "ly",
        "bc",
        "g",
        "state",
        "energy_extrapolated",
        "uncertainty",
        "method",
        "a",
        "b",
        "c",
        "d",
    ]
    assert fits["state"].tolist() == [0, 1]
    np.testing.assert_allclose(fits["energy_extrapolated"], [a, a + 3], atol=1e-8)
    np.testing.assert_allclose(fits[["b", "c", "d"]].to_numpy(), [[b, c, d]] * 2, rtol=1e-4)
    assert list(fits.columns[-2:]) == ["parity", "rejected"]
    assert (fits["method"] == "power_law").all()
    assert (fits["rejected"] == "").all()
    # noiseless: the estimates agree, so the uncertainty is the floor, 10 % of the extrapolation distance
    np.testing.assert_allclose(
        fits["uncertainty"], 0.1 * (fits["energy_largest_chi"] - fits["energy_extrapolated"]), rtol=1e-3
    )


def test_noisy_data_recovers_a_within_the_uncertainty():
    """With noise, the reported uncertainty covers the true a in most trials (heavy tails allowed)."""
    a, b, c, d = -70.0, 50.0, 8.0, -1.7
    noise = 2e-5  # the energy at the largest chi is 1e-2 above a
    ratios = []
    for seed in range(12):
        row = extrapolate(synthetic(a, b, c, d, noise=noise, seed=seed)).iloc[0]
        assert row["method"] == "power_law"
        assert row["uncertainty"] < 1e-3  # far better than the largest-chi energy itself
        assert row["uncertainty"] >= 2 * row["stat_error"] and row["uncertainty"] >= row["spread"]
        ratios.append(abs(row["energy_extrapolated"] - a) / row["uncertainty"])
    ratios = np.array(ratios)
    assert np.mean(ratios <= 1) >= 0.75
    assert ratios.max() < 2.5
    assert np.median(ratios) < 0.6  # and the uncertainty is not absurdly large either
    noiseless = extrapolate(synthetic(a, b, c, d)).iloc[0]
    assert abs(noiseless["energy_extrapolated"] - a) < 1e-8


# --------------------------------------------------------------------------- acceptance rules
EXP_CHIS = np.array([16, 32, 64, 96, 128])


def exponential_scan(a=-10.0, amplitude=0.1, length=20.0, truncation=None):
    """E = a + amplitude exp(-chi / length): no power law fits it, the exponent runs to its bound."""
    energy = a + amplitude * np.exp(-EXP_CHIS / length)
    frame = pd.DataFrame({"state": 0, "chi": EXP_CHIS, "energy": energy})
    if truncation is not None:
        frame["truncation_error"] = truncation(energy - a)
    return frame


def test_fit_stuck_at_a_bound_is_rejected_with_the_reason():
    """An exponential scan drives d to its bound -20 and b to ~1e50; that fit must not be chosen."""
    frame = exponential_scan(truncation=lambda error: 1e-3 * error)
    fit = fit_power_law(frame["chi"], frame["energy"])
    assert fit["d"] == pytest.approx(-20.0) and fit["b"] > 1e30  # what the unconstrained fit does
    assert any("d = -20 at a bound" in reason for reason in fit["at_bound"])
    row = extrapolate(frame).iloc[0]
    assert row["method"] == "truncation"  # the next accepted estimate (exact here)
    assert row["energy_extrapolated"] == pytest.approx(-10.0, abs=1e-12)
    assert "power_law: d = -20 at a bound" in row["rejected"]
    assert "power_law_window:" in row["rejected"]  # the window fit is stuck at the bound as well
    assert "truncation:" not in row["rejected"]
    # the rejected estimate is still reported, but takes no part in the uncertainty
    assert np.isfinite(row["energy_power_law"])
    assert np.isnan(row["spread"]) and row["uncertainty"] == pytest.approx(row["energy_largest_chi"] + 10.0)


def test_all_fits_rejected_falls_back_to_the_largest_chi():
    # the truncation errors fall while the energy falls too little: a negative slope
    frame = exponential_scan(truncation=lambda error: 1e-3 / (1.0 + 1e3 * error))
    row = extrapolate(frame).iloc[0]
    energy = frame["energy"].to_numpy()
    assert row["method"] == FALLBACK_ALL_REJECTED
    assert row["energy_extrapolated"] == energy[-1]
    assert row["uncertainty"] == pytest.approx(energy[-2] - energy[-1])
    assert np.isnan(row[["a", "b", "c", "d"]].astype(float)).all()
    for method in ("power_law:", "power_law_window:", "truncation: slope b"):
        assert method in row["rejected"]


def test_extrapolated_a_is_checked_against_the_scan():
    assert check_a(-10.0, -9.99, 0.01) == []
    assert check_a(-10.0, -9.99, 0.0009)[0].startswith("a below E(chi_max) by 0.01 > 10 x last change")
    assert check_a(-9.98, -9.99, 0.01)[0].startswith("a above E(chi_max)")
    assert check_a(-9.99 + 1e-13, -9.99, 0.01) == []  # rounding of the variational energy
    # a power law with a tiny exponent puts a far below the scan: rejected twice over
    frame = synthetic(-70.0, 50.0, 0.0, -0.05, with_truncation=False)
    row = extrapolate(frame).iloc[0]
    assert "power_law: d = -0.05 outside [-10, -0.1]" in row["rejected"]
    assert "a below E(chi_max)" in row["rejected"]
    assert row["method"] == FALLBACK_ALL_REJECTED


def test_clean_power_law_is_recovered_with_an_uncertainty_covering_the_truth():
    for a, b, c, d, chis in [
        (-113.57, 2e9, 14.0, -7.3, [25, 50, 100, 200]),  # like the 6x6 g = 3 ground state
        (-70.0, 50.0, 8.0, -1.7, [16, 32, 64, 96, 128]),
        (-21.3, 3.0, -10.0, -0.8, CHIS),
    ]:
        row = extrapolate(synthetic(a, b, c, d, chis=chis)).iloc[0]
        assert row["method"] == "power_law" and row["rejected"] == ""
        assert abs(row["energy_extrapolated"] - a) <= 1e-6 * abs(row["energy_largest_chi"] - a)
        assert abs(row["energy_extrapolated"] - a) <= row["uncertainty"]
        assert row["d"] == pytest.approx(d, rel=1e-4)


def accepted_estimates(row) -> dict[str, float]:
    rejected = row["rejected"] if isinstance(row["rejected"], str) else ""
    values = {name: row[f"energy_{name}"] for name in ("power_law", "power_law_window", "truncation")}
    return {name: v for name, v in values.items() if np.isfinite(v) and f"{name}:" not in rejected}


def test_uncertainty_covers_every_accepted_estimate():
    frames = [synthetic(-70.0, 50.0, 8.0, -1.7, noise=2e-4, seed=seed, state=seed) for seed in range(6)]
    frames.append(synthetic(-57.8, 12.0, 4.0, -2.0, chis=[25, 50, 100, 200], state=6))
    frames.append(exponential_scan(truncation=lambda error: 1e-3 * error).assign(state=7))
    frames.append(
        synthetic(-9.0, 1.0, 0.0, -3.0, chis=[10, 20, 40, 80], state=8).assign(
            truncation_error=lambda f: 1e-3 * (f["energy"] + 9.0) ** 1.5
        )
    )  # curved: truncation fit differs
    fits = extrapolate(pd.concat(frames, ignore_index=True))
    n_compared = 0
    for _, row in fits.iterrows():
        accepted = accepted_estimates(row)
        assert row["method"] in accepted
        for value in accepted.values():
            assert abs(value - row["energy_extrapolated"]) <= row["uncertainty"] * (1 + 1e-9)
            n_compared += 1
        assert row["uncertainty"] >= 0.1 * abs(row["energy_largest_chi"] - row["energy_extrapolated"])
    assert n_compared > len(fits)  # several estimates were accepted somewhere


def test_single_bond_dimension_is_an_error(tmp_path, capsys):
    one = pd.DataFrame({"state": [0, 0, 1], "chi": [50, 100, 50], "energy": [-9.9, -10.0, -9.0]})
    with pytest.raises(ValueError, match="state = 1: a state needs at least 2 bond dimensions"):
        extrapolate(one)
    scan, out = tmp_path / "scan.csv", tmp_path / "fit.csv"
    one.to_csv(scan, index=False)
    assert cli.main(["extrapolate", "--in", str(scan), "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 2 bond dimensions" in err


def test_parity_switching_state_is_not_extrapolated():
    """State 1 is the lower of an even/odd pair that cross between bond dimensions."""
    frame = synthetic(-70.0, 50.0, 8.0, -1.7, chis=EXP_CHIS, state=0).assign(parity="even")
    mixed = synthetic(-60.0, 50.0, 8.0, -1.7, chis=EXP_CHIS, state=1)
    mixed["parity"] = ["even", "even", "odd", "odd", "even"]
    fits = extrapolate(pd.concat([frame, mixed], ignore_index=True))
    clean, row = fits.iloc[0], fits.iloc[1]
    assert clean["method"] == "power_law" and clean["parity"] == "even"
    assert row["method"] == FALLBACK_PARITY_MIXED and row["parity"] == "mixed"
    assert "even at chi 16, 32, 128; odd at chi 64, 96" in row["rejected"]
    energy = mixed["energy"].to_numpy()
    assert row["energy_extrapolated"] == energy[-1]
    assert row["uncertainty"] == pytest.approx(energy[-2] - energy[-1])
    assert np.isnan(row["energy_power_law"])  # no fit was made


def test_truncation_fit_is_linear_in_the_discarded_weight():
    trunc = np.array([1e-5, 5e-6, 2e-6, 1e-6])
    fit = fit_truncation(trunc, -10.0 + 300.0 * trunc)
    assert fit["a"] == pytest.approx(-10.0, abs=1e-12) and fit["b"] == pytest.approx(300.0)
    assert fit_truncation([0.0, 0.0], [-1.0, -1.1]) is None


def test_fallbacks_with_few_points():
    two = pd.DataFrame(
        {"state": 0, "chi": [50, 100], "energy": [-9.9, -10.0], "truncation_error": [2e-4, 1e-4]}
    )
    row = extrapolate(two).iloc[0]
    assert row["method"] == "truncation"
    assert row["energy_extrapolated"] == pytest.approx(-10.1)
    assert row["uncertainty"] == pytest.approx(0.1)  # the only estimate: the whole distance
    assert np.isnan(row["c"]) and np.isnan(row["d"])
    # two bond dimensions without truncation errors: no fit, the largest chi with the last change
    row = extrapolate(two.drop(columns="truncation_error")).iloc[0]
    assert row["method"] == FALLBACK_TOO_FEW
    assert row["energy_extrapolated"] == -10.0 and row["uncertainty"] == pytest.approx(0.1)
    converged = pd.DataFrame({"state": 0, "chi": [16, 32, 64], "energy": [-9.5, -10.0, -10.0]})
    row = extrapolate(converged).iloc[0]
    assert row["method"] == "converged" and row["energy_extrapolated"] == -10.0 and row["uncertainty"] == 0.0


def test_bad_frames_are_rejected():
    with pytest.raises(ValueError, match="column"):
        extrapolate(pd.DataFrame({"state": [0], "energy": [-1.0]}))
    with pytest.raises(ValueError, match="duplicate"):
        extrapolate(pd.DataFrame({"state": 0, "chi": [8, 8], "energy": [-1.0, -1.1]}))
    with pytest.raises(ValueError, match="no rows"):
        extrapolate(pd.DataFrame({"state": [], "chi": [], "energy": []}))


def test_cli_extrapolate(tmp_path):
    scan, out = tmp_path / "scan.csv", tmp_path / "fit.csv"
    synthetic(-70.0, 50.0, 8.0, -1.7).assign(model="tfi", lx=6, ly=6, bc="open", g=3.0).to_csv(
        scan, index=False
    )
    assert cli.main(["extrapolate", "--in", str(scan), "--out", str(out)]) == 0
    fits = pd.read_csv(out)
    assert len(fits) == 1 and fits["energy_extrapolated"].iloc[0] == pytest.approx(-70.0, abs=1e-8)
    assert {"parity", "rejected"} <= set(fits.columns)


@pytest.mark.parametrize("content", [None, "", "state,energy\n0,-1.0\n"])
def test_cli_extrapolate_rejects_bad_input(tmp_path, capsys, content):
    scan, out = tmp_path / "scan.csv", tmp_path / "fit.csv"
    if content is not None:
        scan.write_text(content)
    assert cli.main(["extrapolate", "--in", str(scan), "--out", str(out)]) == 2
    assert not out.exists()
    assert "error" in capsys.readouterr().err
