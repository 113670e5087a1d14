"""Files shared by the package and the workflow scripts: atomic CSV writes and checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import equinox as eqx
import pandas as pd


def write_csv_atomically(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` to ``path`` through a temporary file, so no partial CSV is ever left.

    The file gets the usual permissions (``0666`` less the umask), not the private mode of the
    temporary file it is renamed from; on an error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_text_atomically(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` the way :func:`write_csv_atomically` writes a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda tmp: tmp.write_text(text))


def _write_atomically(path: Path, write) -> None:
    """``write(tmp_path)`` to a temporary file beside ``path``, give it the umask's permissions,
    then rename it to ``path``; the temporary file never outlives an error."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        pass
    try:
        write(Path(tmp.name))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp.name, 0o666 & ~umask)
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- checkpoints
#: the file a checkpoint is committed by (written last, atomically)
CHECKPOINT_META = "meta.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_checkpoint(directory: str | os.PathLike, tree, meta: dict, rows: pd.DataFrame) -> None:
    """Write a checkpoint as one unit: ``tree`` (Equinox-serialised), ``rows`` (CSV) and ``meta``.

    The state and rows go to new files named after ``meta["iteration"]``; then ``meta.json``, which
    names them with their SHA-256, replaces the old one atomically (the commit point); then the
    files of older checkpoints are removed. A kill at any moment leaves ``meta.json`` naming a
    complete set of files: the new checkpoint or the previous one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"{int(meta['iteration']):09d}"
    files = {"state": f"state-{tag}.eqx", "rows": f"rows-{tag}.csv"}
    _write_atomically(directory / files["state"], lambda path: eqx.tree_serialise_leaves(path, tree))
    _write_atomically(directory / files["rows"], lambda path: rows.to_csv(path, index=False))
    manifest = {**meta, "files": files, "sha256": {key: _sha256(directory / name) for key, name in files.items()}}
    _write_atomically(directory / CHECKPOINT_META, lambda path: path.write_text(json.dumps(manifest)))
    for stale in [*directory.glob("state-*.eqx"), *directory.glob("rows-*.csv")]:
        if stale.name not in files.values():
            stale.unlink(missing_ok=True)


def read_checkpoint_meta(directory: str | os.PathLike) -> dict | None:
    """The manifest of the checkpoint in ``directory``; ``None`` when there is none.

    ``ValueError`` naming the file when it exists but is not a complete nirbench manifest.
    """
    path = Path(directory) / CHECKPOINT_META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not {"iteration", "config", "files", "sha256"} <= set(meta):
            raise ValueError("keys iteration, config, files and sha256 expected")
    except (UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a nirbench checkpoint manifest ({error}); delete {directory} to start afresh") from error
    return meta


def read_checkpoint(directory: str | os.PathLike, like) -> tuple:
    """Load the checkpoint in ``directory``: ``(tree, meta, rows)``, ``tree`` shaped like ``like``.

    Every file is checked against the manifest's SHA-256 first: a damaged or missing file is
    refused with ``ValueError`` naming it, never half-used. ``None`` when there is no checkpoint.
    """
    directory = Path(directory)
    meta = read_checkpoint_meta(directory)
    if meta is None:
        return None
    for key, name in meta["files"].items():
        path = directory / name
        if not path.is_file() or _sha256(path) != meta["sha256"][key]:
            problem = "is missing" if not path.is_file() else "does not match its checksum (damaged)"
            raise ValueError(f"checkpoint file {path} {problem}; delete {directory} to start afresh")
    try:
        tree = eqx.tree_deserialise_leaves(directory / meta["files"]["state"], like)
    except Exception as error:  # a complete file of another configuration or version
        raise ValueError(
            f"{directory / meta['files']['state']}: cannot be read as this run's state ({type(error).__name__}: {error})"
        ) from error
    rows_path = directory / meta["files"]["rows"]
    rows = pd.read_csv(rows_path) if rows_path.stat().st_size > 1 else pd.DataFrame()
    return tree, meta, rows
