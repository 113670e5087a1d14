"""Bad files, damaged checkpoints and odd paths get one clear error (exit 2), and nothing is written."""

import os

import pandas as pd
import pytest

from nirbench import io as nirbench_io
from nirbench.cli import main

BASE = ["vmc", "--model", "tfi", "--lx", "2", "--ly", "2", "--bc", "open", "--g", "1", "--states", "2",
        "--batch", "16", "--width", "4", "--depth", "1", "--proposal-dim", "4", "--proposal-layers", "1",
        "--proposal-heads", "1", "--eval-batch", "16", "--no-progress", "--sampler", "nir"]  # fmt: skip


def _vmc(tmp_path, *extra, steps=4, out="run.csv"):
    return main([*BASE, "--steps", str(steps), "--out", str(tmp_path / out), *extra])


def _one_error_line(capsys, *fragments):
    error = capsys.readouterr().err.strip().splitlines()
    error = [line for line in error if line.strip()]
    assert len(error) == 1, error
    for fragment in fragments:
        assert fragment in error[0], error[0]


def _files(directory):
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step run with checkpoints every 2 iterations, and its rows."""
    directory = tmp_path_factory.mktemp("finished")
    assert _vmc(directory, "--checkpoint-dir", str(directory / "ck"), "--checkpoint-every", "2") == 0
    return directory, pd.read_csv(directory / "run.csv")


def _copy(src, dst):
    dst.mkdir()
    for path in src.iterdir():
        (dst / path.name).write_bytes(path.read_bytes())
    return dst


@pytest.mark.parametrize("target, fragment", [("rows", "does not match its checksum"), ("state", "does not match its checksum"),
                                              ("meta", "not a nirbench checkpoint manifest")])
def test_a_damaged_checkpoint_is_refused(tmp_path, capsys, finished, target, fragment):
    source, _ = finished
    ck = _copy(source / "ck", tmp_path / "ck")
    path = next(ck.glob({"rows": "rows-*.csv", "state": "state-*.eqx", "meta": "meta.json"}[target]))
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    capsys.readouterr()
    assert _vmc(tmp_path, "--checkpoint-dir", str(ck), "--checkpoint-every", "2", "--resume", out="b.csv") == 2
    _one_error_line(capsys, path.name, fragment)
    assert not (tmp_path / "b.csv").exists() and not (tmp_path / "b_summary.csv").exists()


def test_a_finished_run_is_recomputed_not_resumed(tmp_path, capsys, finished):
    """`--resume` continues a stopped run only: a job rerun after its run finished (its outputs
    removed or forced, e.g. `snakemake --forceall`) trains again instead of re-evaluating the old
    state, and a run that ended at its time limit gets no extra iteration."""
    source, rows = finished
    ck = _copy(source / "ck", tmp_path / "ck")
    capsys.readouterr()
    assert _vmc(tmp_path, "--checkpoint-dir", str(ck), "--checkpoint-every", "2", "--resume", out="b.csv") == 0
    assert "is of a finished run (completed): starting afresh" in capsys.readouterr().err
    again = pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), rows.drop(columns="seconds"))
    assert not again["seconds"].equals(rows["seconds"])  # trained again, not the old rows
    limited = ["--checkpoint-dir", str(tmp_path / "limited"), "--max-minutes", "1e-9", "--resume"]
    for name in ("c.csv", "d.csv"):
        assert _vmc(tmp_path, *limited, out=name) == 0
        assert len(pd.read_csv(tmp_path / name)) == 1  # one iteration, then the time limit


def test_a_kill_between_checkpoint_files_resumes_from_the_complete_earlier_one(tmp_path, monkeypatch, finished):
    _, full_rows = finished
    replace, calls = os.replace, []

    def killed_before_the_manifest(src, dst):
        calls.append(dst)
        if len(calls) == 6:  # second checkpoint: state, rows written; killed before meta.json
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(nirbench_io.os, "replace", killed_before_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        _vmc(tmp_path, "--checkpoint-dir", str(tmp_path / "ck"), "--checkpoint-every", "2")
    monkeypatch.setattr(nirbench_io.os, "replace", replace)
    assert str(calls[-1]).endswith("meta.json")
    assert not [p for p in (tmp_path / "ck").iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    assert _vmc(tmp_path, "--checkpoint-dir", str(tmp_path / "ck"), "--checkpoint-every", "2", "--resume") == 0
    drop = ["seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run.csv").drop(columns=drop), full_rows.drop(columns=drop))


def test_resume_without_a_checkpoint_says_it_starts_afresh(tmp_path, capsys):
    assert _vmc(tmp_path, "--checkpoint-dir", str(tmp_path / "none"), "--resume", steps=1) == 0
    assert "no checkpoint in" in capsys.readouterr().err


# ------------------------------------------------------------------ bad input files and paths
@pytest.mark.parametrize(
    "content, fragment",
    [("- a\n- b\n", "must be a mapping"), ("just a string\n", "must be a mapping"), ("a: [1, 2\n", "not valid YAML"),
     (None, "does not exist")],
)
def test_bad_config_files(tmp_path, capsys, content, fragment):
    config = tmp_path / "run.yaml"
    if content is not None:
        config.write_text(content)
    assert _vmc(tmp_path, "--config", str(config)) == 2
    _one_error_line(capsys, "run.yaml", fragment)
    assert _files(tmp_path) == (["run.yaml"] if content is not None else [])


@pytest.mark.parametrize("content, fragment", [(None, "does not exist"), (b"\xff\xfe\x00garbage\x81", "is not a CSV")])
def test_bad_reference_files(tmp_path, capsys, content, fragment):
    reference = tmp_path / "ref.csv"
    if content is not None:
        reference.write_bytes(content)
    assert _vmc(tmp_path, "--reference", str(reference)) == 2
    _one_error_line(capsys, "ref.csv", fragment)
    assert not (tmp_path / "run.csv").exists()


def test_bad_paths_fail_before_training(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    assert _vmc(tmp_path, out="adir") == 2
    _one_error_line(capsys, "--out", "is a directory")
    config = tmp_path / "run.yaml"
    config.write_text("steps: 2\n")
    assert main([*BASE, "--config", str(config), "--out", str(config)]) == 2
    _one_error_line(capsys, "--out", "also --config")
    assert config.read_text() == "steps: 2\n"
    assert main([*BASE, "--out", str(tmp_path / "x.csv"), "--summary", str(tmp_path / "x.csv")]) == 2
    _one_error_line(capsys, "--summary", "also --out")
    (tmp_path / "afile").write_text("")
    assert _vmc(tmp_path, "--checkpoint-dir", str(tmp_path / "afile")) == 2
    _one_error_line(capsys, "--checkpoint-dir", "is a file")
    assert _files(tmp_path) == ["afile", "run.yaml"]


@pytest.mark.parametrize(
    "extra, fragment",
    [(["--g", "inf"], "finite"), (["--lx", "6", "--ly", "6", "--jsd-every", "1", "--sampler", "mcmc"], "jsd_every")],
)
def test_bad_options(tmp_path, capsys, extra, fragment):
    assert main([*BASE, "--steps", "1", "--out", str(tmp_path / "run.csv"), *extra]) == 2
    _one_error_line(capsys, fragment)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("command", [["ed", "--model", "tfi", "--lx", "2", "--ly", "2", "--g", "1", "--out", "x.csv"],
                                     ["dmrg", "--lx", "2", "--ly", "2", "--g", "1", "--chi", "4", "--out", "x.csv"]])
def test_every_subcommand_requires_the_boundary_condition(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 2 and "--bc" in capsys.readouterr().err


def test_a_run_whose_pipeline_has_gone_checkpoints_and_stops(tmp_path, monkeypatch, capsys):
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # a PID that no longer runs
    monkeypatch.setenv("NIRBENCH_STOP_WITH_PID", str(gone.pid))
    with pytest.raises(SystemExit, match="has gone"):
        _vmc(tmp_path, "--checkpoint-dir", str(tmp_path / "ck"), steps=3)
    assert (tmp_path / "ck" / "meta.json").is_file() and not (tmp_path / "run.csv").exists()
    monkeypatch.setenv("NIRBENCH_STOP_WITH_PID", str(os.getpid()))  # alive: the run goes on
    assert _vmc(tmp_path, "--checkpoint-dir", str(tmp_path / "ck"), "--resume", steps=3) == 0
    assert len(pd.read_csv(tmp_path / "run.csv")) == 3


def test_the_progress_bar_counts_iterations_and_proposal_retraining(tmp_path, capsys):
    argv = [a for a in BASE if a != "--no-progress"]
    assert main([*argv, "--steps", "2", "--alpha-eff", "0.9", "--max-retries", "2",
                 "--out", str(tmp_path / "run.csv")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "iteration=" in err and "retraining=1" in err  # the bar moves while only the proposal trains
