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
