"""Bond-dimension extrapolation: synthetic data with known parameters, and the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nirbench import cli
from nirbench.fits import extrapolate, fit_power_law, fit_truncation, power_law

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
    assert row["uncertainty"] == pytest.approx(
        max(abs(row["energy_power_law_window"] - a), abs(row["energy_truncation"] - a)), rel=1e-6, abs=1e-9
    )
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
    assert (fits["method"] == "power_law").all()
    assert (fits["uncertainty"] < 1e-6).all()


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
    assert np.isnan(row["c"]) and np.isnan(row["d"])
    one = pd.DataFrame({"state": 0, "chi": [50], "energy": [-9.9]})
    row = extrapolate(one).iloc[0]
    assert row["method"] == "largest_chi" and np.isnan(row["uncertainty"])
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


@pytest.mark.parametrize("content", [None, "", "state,energy\n0,-1.0\n"])
def test_cli_extrapolate_rejects_bad_input(tmp_path, capsys, content):
    scan, out = tmp_path / "scan.csv", tmp_path / "fit.csv"
    if content is not None:
        scan.write_text(content)
    assert cli.main(["extrapolate", "--in", str(scan), "--out", str(out)]) == 2
    assert not out.exists()
    assert "error" in capsys.readouterr().err
