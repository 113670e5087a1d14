"""Every VMC option is reachable from the pipeline, which takes the options, their defaults and
their checks from nirbench (VMCConfig) rather than from a copy in its schema."""

import dataclasses
import subprocess
import tempfile
from pathlib import Path

import yaml

from nirbench.options import VMCConfig

ROOT = Path(__file__).parents[1]
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_the_schema_leaves_the_run_options_to_nirbench():
    """The pipeline takes its list of run options from VMCConfig (common.smk's HYPER_KEYS), so the
    schema's `hyper` block names no option: only `recipe`, a file of them."""
    hyper = yaml.safe_load(SCHEMA.read_text())["$defs"]["hyper"]
    assert set(hyper["properties"]) == {"recipe"}
    assert hyper.get("additionalProperties", True) is True


def test_bad_run_options_in_the_config_stop_the_pipeline_naming_each():
    """nirbench checks every planned run's options when Snakemake reads the config (a dry run),
    and reports every bad preset at once."""
    bad = {
        "tfi": {"wdth": 64},  # not an option
        "j1j2_nir": {"seed": 3},  # set by the experiment
        "tfi_jsd": {"width": "wide"},  # a wrong type, found by building the fig3 runs' options
        "unused": {"nir": {"mcmc_warmup": 1}},  # an option under another section
    }
    done = _dry_run({"presets": bad})
    assert done.returncode != 0
    for message in [
        "4 bad run option setting(s)",
        "config key presets.tfi: unknown run options ['wdth']",
        "config key presets.j1j2_nir: ['seed'] are set by each experiment",
        "config key presets.tfi_jsd: (run results/vmc/preset~tfi_jsd/",
        "'width' must be of type int",
        "config key presets.unused: nir.mcmc_warmup: 'mcmc_warmup' belongs to section 'mcmc'",
    ]:
        assert message in done.stdout + done.stderr


def _dry_run(config: dict):
    """`snakemake -n` with ``config`` merged over the default config (a temporary file)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return subprocess.run(
            ["snakemake", "-n", "--quiet", "--cores", "1", "--configfile", str(path)],
            check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def test_config_files_set_only_what_differs_from_the_defaults():
    """The run options' defaults live once, in VMCConfig: the default config sets none to its
    default value, and a config merged over it does so only to undo the default config's change."""
    config_dir = Path(__file__).parents[1] / "config"
    defaults = {f.name: f.default for f in dataclasses.fields(VMCConfig)}
    base = yaml.safe_load((config_dir / "config.yaml").read_text())["vmc"]
    assert {k: v for k, v in base.items() if defaults[k] == v} == {}
    for name in ("smoke.yaml", "paper.yaml", "larger.yaml"):
        block = yaml.safe_load((config_dir / name).read_text()).get("vmc", {})
        copies = {k: v for k, v in block.items() if defaults[k] == v and base.get(k, v) == v}
        assert copies == {}, f"config/{name} repeats nirbench's defaults"
    schema = yaml.safe_load(SCHEMA.read_text())
    assert "properties" not in schema["properties"]["vmc"], "the schema must not copy the run options' defaults"


def test_every_option_is_a_flag_with_the_help_of_its_field():
    """The CLI is derived from the fields: each has a flag whose help is the field's own."""
    from nirbench.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    flags = {action.dest: action for action in subparsers.choices["vmc"]._actions}
    for f in dataclasses.fields(VMCConfig):
        if f.name == "extra":
            continue
        assert f.metadata["help"], f"option {f.name} has no help"
        assert flags[f.name].help.startswith(f.metadata["help"])


def test_every_run_option_is_accepted_by_the_pipeline():
    """A new VMCConfig field needs no pipeline edit: a config whose `vmc` block sets every option
    that an experiment does not set (each to its default) plans without error."""
    from nirbench.options import EXPERIMENT_KEYS

    every = {
        f.name: f.default
        for f in dataclasses.fields(VMCConfig)
        if f.name != "extra" and f.name not in EXPERIMENT_KEYS
    }
    done = _dry_run({"vmc": every})
    assert done.returncode == 0, done.stdout + done.stderr


def test_jobs_are_scheduled_by_their_recorded_time_and_references_inherit_it():
    """Critical path first (common.smk's run_priority): a vmc job's priority is the wall seconds
    of its last benchmark record, else its time cap; the run table 1's ablation waits for adds the
    ablation's, and the ablation its own record; a run_config job has its run's priority, and an ED
    or DMRG job the highest of the runs that wait for it as their reference, a DMRG scan no run
    waits for 0. Planned on the default config over an empty results folder holding two made-up
    benchmark records."""
    with tempfile.TemporaryDirectory() as directory:
        results = Path(directory) / "results"
        mcmc_run = "preset~tfi/tfi/L~4x4/bc~open/g~3.0/K~3/sampler~mcmc/seed~0"
        for record, seconds in [(f"benchmarks/vmc/{mcmc_run}.tsv", 1500.4), ("benchmarks/table1_ablation.tsv", 2000)]:
            (results / record).parent.mkdir(parents=True, exist_ok=True)
            (results / record).write_text(f"s\th:m:s\n{seconds}\t0:25:00\n")
        config = Path(directory) / "config.yaml"
        config.write_text(yaml.safe_dump({"results_dir": str(results), "figures_dir": f"{directory}/figures"}))
        plan = subprocess.run(
            ["snakemake", "-n", "--cores", "2", "--configfile", str(config)],
            check=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
    priorities = {}
    for job in plan.split("\n\n"):
        lines = dict(line.strip().split(": ", 1) for line in job.splitlines() if ": " in line)
        if "priority" in lines:
            output = lines["output"].split(",")[0].removeprefix(str(results) + "/")
            priorities[output] = int(lines["priority"])
    experiments = DEFAULT_CONFIG["experiments"]
    presets = DEFAULT_CONFIG["presets"]
    cap = {name: 60 * preset["max_minutes"] for name, preset in presets.items() if "max_minutes" in preset}
    large = next(entry for entry in experiments["fig2"]["lattices"] if isinstance(entry, dict) and entry["lattice"] == "6x6")
    vmc = {path: p for path, p in priorities.items() if path.endswith("/steps.csv")}
    assert len(vmc) >= 10
    ranked = sorted(vmc, key=vmc.get, reverse=True)
    assert max(cap.values()) < 1500 < cap[experiments["table1"]["preset"]] + 2000  # the ranks below are telling
    assert "preset~j1j2_nir-d16l2/" in ranked[0]
    assert vmc[ranked[0]] == cap[experiments["table1"]["preset"]] + 2000  # time cap + ablation record
    assert ranked[1] == f"vmc/{mcmc_run}/steps.csv" and vmc[ranked[1]] == 1500  # its record, not its cap
    assert {vmc[path] for path in ranked[2:]} <= set(cap.values())  # the presets' time caps
    for path, priority in vmc.items():
        assert priorities[path.replace("steps.csv", "run.yaml")] == priority
    assert priorities["ed/tfi/L~4x4/bc~open/g~3.0/K~3/levels.csv"] == 1500
    assert priorities["ed/tfi/L~3x2/bc~open/g~0.01/K~3/levels.csv"] == cap[experiments["fig3"]["preset"]]
    six = cap[large.get("preset", experiments["fig2"]["preset"])]  # the 6x6 runs' cap, which they wait for
    assert priorities["dmrg/tfi/L~6x6/bc~open/g~0.1/K~3/chi~8-16-32-64/scan.csv"] == six
    assert priorities["dmrg/tfi/L~6x6/bc~open/g~0.1/K~3/chi~8-16-32-64/extrapolated.csv"] == six
    assert priorities.get("dmrg/tfi/L~4x4/bc~open/g~3.0/K~3/chi~8-16-32-64/scan.csv", 0) == 0  # figure 4's lines only
    assert priorities["table1_ablation.csv"] == 2000  # its record: it starts when its run ends


def test_a_fig2_lattice_may_run_its_own_preset():
    """An entry of fig2's `lattices` may name its own preset (a larger lattice trained longer):
    its runs, training runs included, go under that preset; the other lattices keep the
    experiment's; an unknown one stops the pipeline naming the key."""
    lattices = ["4x4", {"lattice": "6x6", "g": [0.1], "seeds": [0], "preset": "tfi_jsd"}]
    fig2 = {"lattices": lattices, "g": [0.1], "seeds": [0], "training": {"lattice": "6x6", "g": 0.1}}
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "config.yaml"
        settings = {"results_dir": f"{directory}/results", "figures_dir": f"{directory}/figures"}
        config.write_text(yaml.safe_dump({**settings, "experiments": {"fig2": fig2}}))
        plan = subprocess.run(
            ["snakemake", "-n", "--cores", "1", "collect_fig2_runs", "collect_fig2_training", "--configfile", str(config)],
            check=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
    for sampler in ["nir", "mcmc"]:
        assert f"preset~tfi_jsd/tfi/L~6x6/bc~open/g~0.1/K~3/sampler~{sampler}/seed~0/steps.csv" in plan
        assert f"preset~tfi/tfi/L~4x4/bc~open/g~0.1/K~3/sampler~{sampler}/seed~0/steps.csv" in plan
    assert "preset~tfi/tfi/L~6x6" not in plan and "preset~tfi_jsd/tfi/L~4x4" not in plan
    lattices[1]["preset"] = "tfi_huge"
    done = _dry_run({"experiments": {"fig2": fig2}})
    assert done.returncode != 0
    assert "config key experiments.fig2.lattices[1].preset: unknown preset 'tfi_huge'" in done.stdout + done.stderr
