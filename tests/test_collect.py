"""The tidy tables of workflow/scripts/collect.py: the levels table of figure 4."""

import importlib.util
import pathlib

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("collect", ROOT / "workflow" / "scripts" / "collect.py")
collect = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(collect)

ED = [-10.0, -9.0]


def write_summary(path, exact):
    row = {"model": "tfi", "lx": 2, "ly": 2, "bc": "open", "g": 1.0, "j2": None, "states": 2, "net": "mlp",
           "sampler": "mcmc", "seed": 0, "energy": -18.9, "energy_sigma": 0.01, "e_0": -9.95, "e_1": -8.95,
           "e_0_sigma": 0.01, "e_1_sigma": 0.01, "converged": True}  # fmt: skip
    if exact is not None:
        row.update({"exact_energy": sum(exact), "exact_e_0": exact[0], "exact_e_1": exact[1]})
    pd.DataFrame([row]).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("exact", [[-9.999, -8.99], None])
def test_levels_carry_the_exact_error_of_the_trained_state(tmp_path, exact):
    ed = tmp_path / "ed.csv"
    pd.DataFrame({"model": "tfi", "lx": 2, "ly": 2, "bc": "open", "g": 1.0, "state": [0, 1],
                  "energy": ED}).to_csv(ed, index=False)  # fmt: skip
    levels = collect.collect_levels([write_summary(tmp_path / "summary.csv", exact)], None, [str(ed)], [], [])
    nqs = levels[levels["method"] == "nqs"].sort_values("state")
    np.testing.assert_allclose(nqs["relative_error"], [0.005, 0.05 / 9])  # the sampled estimates
    if exact is None:  # a run whose Hilbert space was not enumerated
        assert nqs["exact_relative_error"].isna().all()
    else:
        np.testing.assert_allclose(nqs["exact_energy"], exact)
        np.testing.assert_allclose(nqs["exact_relative_error"], [1e-4, 0.01 / 9])
    assert levels.loc[levels["method"] == "ed", "exact_relative_error"].isna().all()
