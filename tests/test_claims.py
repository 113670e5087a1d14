"""The verdicts of workflow/scripts/claims.py: each rule decides both ways on synthetic results."""

import importlib.util
import pathlib

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("claims", ROOT / "workflow" / "scripts" / "claims.py")
claims = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(claims)


def fig2_runs(e_nir, e_mcmc, sigma=0.01, mcmc_converged=True, reference=-100.0):
    rows = []
    for sampler, energy, converged in (("nir", e_nir, True), ("mcmc", e_mcmc, mcmc_converged)):
        for seed in (0, 1):
            rows.append({
                "lx": 6, "ly": 6, "g": 0.1, "sampler": sampler, "seed": seed, "energy": energy + 1e-3 * seed,
                "energy_sigma": sigma, "reference_energy": reference, "converged": converged,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_fig2_a_converged_mcmc_plateau_above_nir_is_a_trap():
    (row,) = claims.fig2_claims(fig2_runs(-99.99, -99.5))
    assert row["lower"] == "nir" and row["mcmc_trapped"] and row["verdict"] == "reproduced"


def test_fig2_mcmc_still_descending_is_not_trapped_and_cannot_tell():
    (row,) = claims.fig2_claims(fig2_runs(-99.99, -99.5, mcmc_converged=False))
    assert row["lower"] == "nir" and not row["mcmc_trapped"] and row["verdict"] == "not reached"


def test_fig2_a_difference_within_the_error_bars_is_a_tie_and_mcmc_lower_refutes():
    (tie,) = claims.fig2_claims(fig2_runs(-99.99, -99.97, sigma=0.02))
    assert tie["lower"] == "tie" and tie["verdict"] == "tie"
    (refuted,) = claims.fig2_claims(fig2_runs(-99.5, -99.99))
    assert refuted["lower"] == "mcmc" and refuted["verdict"] == "not reproduced"


def test_fig2_a_run_without_an_error_bar_decides_nothing():
    (row,) = claims.fig2_claims(fig2_runs(-99.99, -99.97, sigma=np.nan))  # frozen Metropolis chains
    assert row["lower"] == "unknown" and row["verdict"] == "not reached"


def test_fig2_a_level_stuck_above_its_reference_with_frozen_chains_is_a_trap_whatever_nir_did():
    """6x6 g = 0.1 as measured: NIR far off and not converged, Metropolis lower but its third level
    2 above the reference with frozen chains: trapped, and still not the paper's claim."""
    runs = fig2_runs(-27.4, -174.07, reference=-176.17)
    runs.loc[runs["sampler"] == "nir", "converged"] = False
    levels = {"e_0": -60.02, "e_1": -60.02, "e_2": -54.03, "reference_e_0": -60.06, "reference_e_1": -60.06,
              "reference_e_2": -56.06, "e_0_sigma": 0.01, "e_1_sigma": 0.01, "e_2_sigma": np.nan}  # fmt: skip
    runs = runs.assign(**levels)
    for acceptance, trapped in ((0.001, True), (0.3, False)):
        (row,) = claims.fig2_claims(runs.assign(final_acceptance=acceptance))
        assert row["mcmc_level_plateaus"] == "e_2" and row["mcmc_frozen"] == (acceptance < 0.01)
        assert row["mcmc_trapped"] == trapped and row["lower"] == "mcmc" and row["verdict"] == "not reproduced"
    # levels within 1e-3 of the reference: no plateau, frozen or not
    (row,) = claims.fig2_claims(runs.assign(e_2=-56.05, final_acceptance=0.0))
    assert row["mcmc_level_plateaus"] == "" and not row["mcmc_trapped"]


def fig3_steps(mcmc_jsd, nir_jsd, exact_error=5e-4):
    """Steps of a fig3 pair: one JSD measurement per 20 steps; the final states' exact traces
    ``exact_error`` (relative) above the reference."""
    rows = []
    for sampler, series in (("mcmc", mcmc_jsd), ("nir", nir_jsd)):
        for step, jsd in enumerate(series):
            rows.append({
                "sampler": sampler, "step": 20 * step, "jsd": jsd, "jsd_exact": 1e-3, "jsd_unordered": jsd / 2,
                "jsd_unordered_exact": 5e-4, "energy_error": 0.01, "reference_energy": -17.0,
                "exact_energy": -17.0 * (1 - exact_error), "lx": 3, "ly": 2, "bc": "open", "g": 0.01, "states": 3,
                "converged": True,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_fig3_compares_the_jsd_after_convergence_with_its_error_bar():
    rng = np.random.default_rng(0)
    falling = np.geomspace(0.3, 0.003, 10)
    high = np.concatenate([np.geomspace(0.3, 0.03, 5), 0.05 + 0.005 * rng.standard_normal(5)])
    (row,) = claims.fig3_claims(fig3_steps(high, falling))
    assert row["verdict"] == "reproduced" and row["mcmc_above_nir"]
    # the window is the second half (steps 100-180): its mean and standard error
    assert row["mcmc_jsd"] == pytest.approx(high[5:].mean())
    assert row["mcmc_jsd_sigma"] == pytest.approx(high[5:].std(ddof=1) / np.sqrt(5))
    assert row["nir_jsd_unordered"] == pytest.approx(falling[5:].mean() / 2)
    (row,) = claims.fig3_claims(fig3_steps(falling, falling))
    assert row["verdict"] == "not reproduced" and not row["mcmc_above_nir"]
    # MCMC higher on average, but within twice the combined scatter: not above
    noisy = np.concatenate([np.geomspace(0.3, 0.03, 5), [0.001, 0.2, 0.001, 0.2, 0.001]])
    (row,) = claims.fig3_claims(fig3_steps(noisy, falling))
    assert row["mcmc_jsd"] > row["nir_jsd"] and not row["mcmc_above_nir"]


def test_fig3_is_not_reached_while_an_exact_trace_misses_the_target():
    falling = np.geomspace(0.3, 0.003, 10)
    high = np.concatenate([np.geomspace(0.3, 0.03, 5), [0.05, 0.051, 0.049, 0.05, 0.052]])
    (row,) = claims.fig3_claims(fig3_steps(high, falling, exact_error=3e-3))
    assert row["verdict"] == "not reached" and row["mcmc_above_nir"]
    assert row["nir_error"] == pytest.approx(3e-3) and "not converged" in row["result"]
    # two seeds: the worse one decides
    seeds = pd.concat([fig3_steps(high, falling).assign(seed=0),
                       fig3_steps(high, falling, exact_error=2e-3).assign(seed=1)])
    (row,) = claims.fig3_claims(seeds)
    assert row["verdict"] == "not reached" and row["mcmc_error"] == pytest.approx(2e-3)
    # without exact energies the drift rule decides
    steps = fig3_steps(high, falling, exact_error=3e-3).drop(columns="exact_energy")
    (row,) = claims.fig3_claims(steps)
    assert row["verdict"] == "reproduced"


def test_fig2_judges_exact_energies_where_they_exist():
    """Sampled estimates that tie within their wide error bars; the exact energies of the same
    trained states (zero error bars, a small scatter over seeds) separate the samplers."""
    runs = fig2_runs(-99.9, -99.9, sigma=0.5)
    runs["exact_energy"] = np.where(runs["sampler"] == "nir", -99.95, -99.5) + 1e-3 * runs["seed"]
    (row,) = claims.fig2_claims(runs.drop(columns="exact_energy"))
    assert row["lower"] == "tie"
    (row,) = claims.fig2_claims(runs)
    assert row["lower"] == "nir" and row["delta"] == pytest.approx(0.45)
    assert row["delta_sigma"] < 0.01 and "exact energies" in row["result"]
    # one seed per sampler: an exact energy says nothing about the spread between trainings
    (row,) = claims.fig2_claims(runs[runs["seed"] == 0])
    assert row["lower"] == "unknown" and row["verdict"] == "not reached"


def test_fig4_every_level_within_the_target():
    levels = pd.DataFrame({
        "method": "nqs", "g": [0.5, 0.5, 1.0, 1.0], "state": [0, 1, 0, 1], "lx": 4, "ly": 4, "bc": "open",
        "relative_error": [1e-5, -5e-5, 2e-5, 5e-5], "reference_method": "ed", "seed": 0, "converged": True,
        "reference_energy": -20.0, "level_sigma": 20.0 * np.array([1e-5, 1e-5, 2e-5, 2e-5]),
    })  # fmt: skip
    (row,) = claims.fig4_claims(levels)
    assert row["verdict"] == "reproduced" and row["levels_within"] == 4
    # an estimate inside the target whose error bar is not: it does not count
    levels.loc[3, "level_sigma"] = 20.0 * 4e-5
    (row,) = claims.fig4_claims(levels)
    assert row["verdict"] == "not reproduced" and row["levels_within"] == 3
    levels.loc[3, "level_sigma"] = np.nan  # no error bar: it does not count either
    (row,) = claims.fig4_claims(levels)
    assert row["levels_within"] == 3
    levels.loc[3, "level_sigma"] = 0.0
    levels.loc[3, "relative_error"] = 2e-4
    (row,) = claims.fig4_claims(levels)
    assert row["verdict"] == "not reproduced" and row["levels_within"] == 3
    levels.loc[2:3, "converged"] = False  # the run at g = 1 still descends: this scale cannot tell
    (row,) = claims.fig4_claims(levels)
    assert row["verdict"] == "not reached"


def test_fig4_exact_levels_count_without_an_error_bar():
    """Where the levels of the trained state are exact (enumeration), their error decides alone:
    a wide sampled error bar no longer hides a level that is within the target, and an exact
    error above it fails even when the sampled estimate landed inside."""
    levels = pd.DataFrame({
        "method": "nqs", "g": [0.5, 0.5, 1.0, 1.0], "state": [0, 1, 0, 1], "lx": 4, "ly": 4, "bc": "open",
        "relative_error": [1e-5, -5e-5, 2e-5, 5e-5], "reference_method": "ed", "seed": 0, "converged": True,
        "reference_energy": -20.0, "level_sigma": 20.0 * 5e-4,
        "exact_relative_error": [2e-5, 3e-5, 4e-5, 9e-5],
    })  # fmt: skip
    (row,) = claims.fig4_claims(levels)
    assert row["verdict"] == "reproduced" and row["levels_within"] == 4
    assert "exact levels" in row["result"]
    levels.loc[1, "exact_relative_error"] = 1.5e-4
    (row,) = claims.fig4_claims(levels)
    assert row["verdict"] == "not reproduced" and row["levels_within"] == 3
    assert row["worst_error"] == pytest.approx(1.5e-4)
    # a level without an exact value falls back to its estimate and error bar
    levels.loc[1, "exact_relative_error"] = np.nan
    (row,) = claims.fig4_claims(levels)
    assert row["levels_within"] == 3 and "1 sampled" in row["result"]


def test_table1_needs_rising_efficiency_and_an_accurate_energy():
    table = pd.DataFrame({
        "n_param": [1000, 2000, 4000], "efficiency": [0.1, 0.2, 0.3], "relative_error": [2e-3, 8e-4, 5e-4],
        "energy_per_site": [-0.527, -0.528, -0.5283], "lattice": "4x4", "j2": 0.5, "converged": True,
    })  # fmt: skip
    (row,) = claims.table1_claims(table)
    assert row["verdict"] == "reproduced"
    (row,) = claims.table1_claims(table.assign(efficiency=[0.3, 0.2, 0.1]))
    assert row["verdict"] == "not reproduced"


def test_table1_judges_the_exact_energy_of_the_state_where_it_exists():
    table = pd.DataFrame({
        "n_param": [1000, 2000, 4000], "efficiency": [0.1, 0.2, 0.3], "relative_error": [2e-3, 8e-4, 5e-4],
        "energy_per_site": [-0.527, -0.528, -0.5283], "lattice": "4x4", "j2": 0.5, "converged": True,
        "exact_relative_error": [2e-3, 1.5e-3, 1.2e-3], "exact_energy_per_site": [-0.5275, -0.5278, -0.5280],
    })  # fmt: skip
    (row,) = claims.table1_claims(table)  # the estimates landed inside 1e-3, the states are not
    assert row["verdict"] == "not reproduced" and row["best_relative_error"] == pytest.approx(1.2e-3)
    assert "-0.52800" in row["result"]
    (row,) = claims.table1_claims(table.assign(exact_relative_error=np.nan))
    assert row["verdict"] == "reproduced"


def test_table1_judges_the_size_effect_at_fixed_nqs_with_its_error_bars():
    table = pd.DataFrame({
        "n_param": [1000, 2000, 4000], "efficiency": [0.3, 0.2, 0.1], "relative_error": [3e-3, 2e-3, 5e-4],
        "fixed_nqs_efficiency": [0.19, 0.25, 0.33], "fixed_nqs_efficiency_sigma": [0.01, 0.01, 0.01],
        "energy_per_site": [-0.527, -0.528, -0.5283], "lattice": "4x4", "j2": 0.5, "converged": True,
    })  # fmt: skip
    (row,) = claims.table1_claims(table)  # the full runs' falling efficiency is not what is judged
    assert row["verdict"] == "reproduced" and "held fixed" in row["result"]
    (row,) = claims.table1_claims(table.assign(fixed_nqs_efficiency_sigma=0.06))  # largest within 2 sigma
    assert row["verdict"] == "not reproduced" and "within 2 sigma" in row["result"]
    unconverged = table.assign(relative_error=[3e-3, 2e-3, 2e-3], converged=False)
    (row,) = claims.table1_claims(unconverged)  # the size effect is there; the energy not yet
    assert row["verdict"] == "not reached"
    (row,) = claims.table1_claims(unconverged.assign(fixed_nqs_efficiency=[0.33, 0.25, 0.19]))
    assert row["verdict"] == "not reproduced"  # measured at a fixed NQS: convergence does not matter


def test_the_markdown_table_has_one_line_per_claim(tmp_path):
    frame = pd.DataFrame(claims.fig2_claims(fig2_runs(-99.99, -99.5)))
    text = claims.markdown(frame)
    assert text.count("\n") == 3 and "**reproduced**" in text
    empty = claims.claims({"fig2": tmp_path / "missing.csv"})
    assert empty.empty


def test_the_readme_shows_the_committed_claims_table():
    """The README's results table is results/claims.md of the committed default-scale run, verbatim."""
    table = (ROOT / "results" / "claims.md").read_text().strip().splitlines()
    readme = (ROOT / "README.md").read_text()
    missing = [line for line in table if line not in readme]
    assert not missing, "copy results/claims.md into the README's results section"


def test_the_command_line_reads_named_inputs_and_rejects_unknown_names(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    fig2_runs(-99.99, -99.5).to_csv(runs, index=False)
    out = [f"--out-csv={tmp_path / 'c.csv'}", f"--out-md={tmp_path / 'c.md'}"]
    claims.main(["--input", f"fig2={runs}", *out])
    assert "**reproduced**" in (tmp_path / "c.md").read_text()
    with pytest.raises(SystemExit) as stopped:
        claims.main(["--input", f"fig9={runs}", *out])
    assert stopped.value.code == 2
    assert "'fig9=" in capsys.readouterr().err
