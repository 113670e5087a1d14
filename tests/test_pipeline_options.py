"""Every VMC option is reachable from the pipeline: the schema's `hyper` block (what presets and
the `vmc` block may set) names every field of VMCConfig that an experiment does not set itself."""

import dataclasses
from pathlib import Path

import yaml

from nirbench.vmc import VMCConfig

SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"
#: set by the experiment (system, sampler, seed, reference), not by presets
EXPERIMENT_KEYS = {"model", "lx", "ly", "bc", "g", "j2", "states", "sampler", "seed", "reference"}


def test_every_vmc_option_is_in_the_pipeline_schema():
    # `recipe` names a file of options (config/recipes/*.yaml), read by the workflow
    hyper = set(yaml.safe_load(SCHEMA.read_text())["$defs"]["hyper"]["properties"]) - {"recipe"}
    options = {f.name for f in dataclasses.fields(VMCConfig)} - {"extra"}
    assert options - EXPERIMENT_KEYS - hyper == set(), "add these options to the schema's hyper block"
    assert hyper - options == set(), "the schema names options nirbench does not have"


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
