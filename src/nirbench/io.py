"""File output shared by the package and the workflow scripts: atomic CSV writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd


def write_csv_atomically(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` to ``path`` through a temporary file, so no partial CSV is ever left.

    The file gets the usual permissions (``0666`` less the umask), not the private mode of the
    temporary file it is renamed from.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        frame.to_csv(tmp.name, index=False)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)
    os.replace(tmp.name, path)
