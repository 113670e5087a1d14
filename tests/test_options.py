"""Run options grouped by component: an options file may give each option flat or under its
section, `nirbench vmc --help` lists them by section, and `--check-config` prints them so."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from nirbench.cli import build_parser, main
from nirbench.options import (
    SECTIONS,
    VMCConfig,
    flatten_sections,
    nest_sections,
    read_options_file,
    sampler_options,
)

RECIPES = sorted((Path(__file__).parents[1] / "config" / "recipes").glob("*.yaml"))
SYSTEM = {"lx": 4, "ly": 4, "bc": "open"}


def test_every_option_has_a_known_section():
    for f in dataclasses.fields(VMCConfig):
        if f.name != "extra":
            assert f.metadata["section"] in SECTIONS, f.name


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_a_grouped_recipe_reads_as_its_flat_options(recipe, tmp_path):
    grouped = yaml.safe_load(recipe.read_text())
    assert set(grouped) <= set(SECTIONS), "the recipes group their options by section"
    flat = {name: value for section in grouped.values() for name, value in section.items()}
    flat_file = tmp_path / "flat.yaml"
    flat_file.write_text(yaml.safe_dump(flat))
    assert read_options_file(recipe) == read_options_file(flat_file) == flat
    assert VMCConfig.from_dict({**grouped, "system": {**grouped["system"], **SYSTEM}}) == VMCConfig.from_dict(
        {**flat, **SYSTEM}
    )
    assert flatten_sections(nest_sections(flat)) == flat


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nir": {"mcmc_warmup": 10}}, "nir.mcmc_warmup: 'mcmc_warmup' belongs to section 'mcmc'"),
        ({"network": {"wdth": 64}}, "network.wdth: 'wdth' is not an option"),
        ({"width": 64, "network": {"width": 32}}, "option 'width' is given twice"),
        ({"network": 64}, "section 'network' must be a mapping of its options"),
    ],
)
def test_misplaced_unknown_or_repeated_options_are_named(values, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SYSTEM, "model": "tfi", **values}))
    with pytest.raises(ValueError, match="bad.yaml: " + message.replace(".", r"\.")):
        read_options_file(path)


def test_help_lists_the_options_by_section():
    vmc = build_parser()._subparsers._group_actions[0].choices["vmc"]
    groups = {group.title: {action.dest for action in group._group_actions} for group in vmc._action_groups}
    for f in dataclasses.fields(VMCConfig):
        if f.name != "extra":
            assert f.name in groups[f"{f.metadata['section']} options"], f.name


def test_check_config_prints_the_resolved_options_by_section_and_runs_nothing(tmp_path, capsys):
    recipe = Path(__file__).parents[1] / "config" / "recipes" / "tfi_multistate_nir.yaml"
    args = ["vmc", "--config", str(recipe), "--lx", "3", "--ly", "2", "--bc", "open", "--g", "1.5"]
    assert main([*args, "--check-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert list(printed) == [section for section in SECTIONS if section in printed]
    assert printed["system"]["g"] == 1.5 and printed["nir"]["trust_region"] == 0.7
    assert VMCConfig.from_dict(printed) == VMCConfig.from_dict({**read_options_file(recipe), **SYSTEM, "lx": 3,
                                                                "ly": 2, "g": 1.5})  # fmt: skip
    assert main([*args, "--diag-shift", "-1", "--check-config"]) == 2
    assert "diag_shift must be > 0" in capsys.readouterr().err
    assert main(args) == 2
    assert "needs --out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flag", "lx", "ly", "sites"), [("column", 4, 3, 3), ("column", 3, 2, 2), ("2", 3, 2, 2)])
def test_proposal_patch_is_a_number_or_a_column_of_the_lattice(flag, lx, ly, sites, capsys):
    """``--proposal-patch column`` gives each proposal token the ``ly`` sites of one column (sites
    ``x * ly + y``), whatever the lattice; a number is taken as it is."""
    args = ["vmc", "--lx", str(lx), "--ly", str(ly), "--bc", "open", "--model", "tfi", "--sampler", "nir"]
    assert main([*args, "--proposal-patch", flag, "--check-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    config = VMCConfig.from_dict(printed)
    assert printed["nir"]["proposal_patch"] == (flag if flag == "column" else int(flag))
    assert config.patch_sites == sites == sampler_options(config)["proposal_patch"]
