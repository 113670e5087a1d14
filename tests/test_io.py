"""Atomic CSV writes: complete files with the usual permissions, no temporary file left."""

import os

import pandas as pd

from nirbench.io import write_csv_atomically


def test_csv_is_written_whole_with_the_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    old = os.umask(0o022)
    try:
        write_csv_atomically(pd.DataFrame({"a": [1, 2]}), path)
    finally:
        os.umask(old)
    assert pd.read_csv(path)["a"].tolist() == [1, 2]
    assert (path.stat().st_mode & 0o777) == 0o644  # not the 0600 of a temporary file
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]
