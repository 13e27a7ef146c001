"""Results on disk: one parquet file per cell, written atomically, merged on demand.

Layout of ``results/<study>/`` (docs/design.md, section 5)::

    cells/<cell_id>.parquet    one row of the runs table + that cell's curves (a nested column)
    samples/<cell_id>.npz      final generated samples ("samples") and per-evaluation snapshots
    samples/<cell_id>/iter_<generator_iter>.png  image snapshots as PNG grids (image data sets)
    artifacts/<cell_id>.npz    arrays metrics produced ("<name>@<generator_iter>", e.g. value surfaces)
    ckpt/<cell_id>.pt          checkpoints (train.checkpoint_every)
    runs.parquet, curves.parquet  merged tables, rewritten after every run
    spec.yaml                  the spec of the last run
    .lock, .lock.owner         held by the one process running the study (``study_lock``)

A cell file appears only complete (temp file + fsync + rename), so a killed run never leaves a half-written
result, and a cell with a readable file is done: resume skips it. Cell files carry parquet page checksums
(the data pages) and a digest of the names and values they were written with (the footer too),
so damage is detected on reading (``scan``) and that cell counts as not done. ``load(path)`` returns
``{"runs", "curves"}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import bench
from bench import grids
from bench.configdict import canonical_json, flatten

CURVE_TYPE = pa.list_(
    pa.struct([("generator_iter", pa.int64()), ("train_s", pa.float64()), ("metric", pa.string()),
               ("value", pa.float64())])
)
CURVE_COLUMNS = ["study", "cell_id", "generator_iter", "train_s", "metric", "value"]


class CorruptCell(Exception):
    """A cell file that exists but cannot be read back."""


def provenance() -> dict[str, str]:
    """Who produced a result: versions, git sha (``-dirty`` with uncommitted changes) and host."""
    import torch  # the store itself does not need torch; only the rows it labels do

    repo = Path(bench.__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    sha = git("rev-parse", "HEAD")
    if sha and git("status", "--porcelain", "--untracked-files=no"):
        sha += "-dirty"
    return {
        "torch_version": torch.__version__,
        "bench_version": bench.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "git_sha": sha or "unknown",
        "host": socket.gethostname(),
    }


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are as readable as any file written here
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cell_path(study_dir: Path, cell_id: str) -> Path:
    return Path(study_dir) / "cells" / f"{cell_id}.parquet"


def checkpoint_path(study_dir: Path, cell_id: str) -> Path:
    return Path(study_dir) / "ckpt" / f"{cell_id}.pt"


def runs_row(cell, result, prov: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runs-table row of a finished cell (docs/design.md, section 5)."""
    config_columns = {
        k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in flatten(cell.config).items()
    }
    return {
        "study": cell.study,
        "cell_id": cell.cell_id,
        "config_id": cell.config_id,
        "seed": cell.seed,
        "status": result.status,
        "error": result.error,
        "diverged_at": result.diverged_at,
        "resumed_from": result.resumed_from,
        "started_at": result.started_at,
        "wall_s": result.wall_s,
        "train_s": result.train_s,
        "generator_iters": result.generator_iters,
        "ensemble_size": result.ensemble_size,  # seeds trained with it as one stacked ensemble
        **config_columns,
        **result.final,
        "feature_space": None,  # set by image metrics (e.g. "inception-v3-compat"), absent for toy metrics
        **result.labels,
        **prov,
        **(extra or {}),
        "config_json": canonical_json(cell.config),
    }


def write_cell(study_dir: Path, cell, result, prov: dict[str, str], extra: dict[str, Any] | None = None) -> Path:
    """Store a finished cell: samples first, then the parquet that marks it done."""
    study_dir = Path(study_dir)
    if result.samples is not None or result.snapshots:
        arrays = {f"iter_{k:08d}": v for k, v in result.snapshots.items()}
        if result.samples is not None:
            arrays["samples"] = result.samples
        _atomic_write(study_dir / "samples" / f"{cell.cell_id}.npz", lambda f: np.savez_compressed(f, **arrays))
    for step, snapshot in result.snapshots.items():  # image samples: one PNG grid per evaluation
        if grids.is_image_batch(snapshot):
            _atomic_write(study_dir / "samples" / cell.cell_id / f"iter_{step:08d}.png",
                          lambda f, g=grids.image_grid(snapshot): grids.write_png(f, g))
    if result.artifacts:
        _atomic_write(study_dir / "artifacts" / f"{cell.cell_id}.npz",
                      lambda f: np.savez_compressed(f, **result.artifacts))
    row = runs_row(cell, result, prov, extra)
    table = pa.Table.from_pylist([row])
    curves = [{"generator_iter": i, "train_s": t, "metric": k, "value": v} for i, t, k, v in result.curves]
    table = table.append_column("curves", pa.array([curves], type=CURVE_TYPE))
    table = table.replace_schema_metadata({CONTENT_DIGEST: _content_digest(table)})
    path = cell_path(study_dir, cell.cell_id)
    _atomic_write(path, lambda f: pq.write_table(table, f, write_page_checksum=True))
    return path


CONTENT_DIGEST = b"ganbench.content_sha256"


def _content_digest(table: pa.Table) -> bytes:
    """sha256 of a table's column names and values (as Python objects): what a cell file must read back as.
    Parquet's page checksums cover the data pages only, not the footer that names the columns."""
    return hashlib.sha256(repr((table.column_names, table.to_pylist())).encode()).hexdigest().encode()


def _checked_table(path: Path) -> pa.Table:
    """A cell file read in full with its page checksums and content digest verified; ``CorruptCell`` if
    anything is off."""
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as err:
        raise CorruptCell(f"{path}: unreadable cell file ({' '.join(str(err).split())})") from None
    written = (table.schema.metadata or {}).get(CONTENT_DIGEST)
    if written is None or written != _content_digest(table):
        raise CorruptCell(f"{path}: content does not match the digest it was written with")
    if table.num_rows != 1 or "curves" not in table.column_names or "cell_id" not in table.column_names:
        raise CorruptCell(f"{path}: not a cell file (rows={table.num_rows})")
    if table.column("cell_id")[0].as_py() != Path(path).stem:
        raise CorruptCell(f"{path}: holds cell {table.column('cell_id')[0].as_py()!r}, not {Path(path).stem!r}")
    return table


def read_cell(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One cell file as (runs row, curves); ``CorruptCell`` if it cannot be read."""
    table = _checked_table(path)
    nested = table.column("curves").combine_chunks()
    runs = table.drop_columns(["curves"]).to_pandas()
    curves = pa.Table.from_struct_array(nested.flatten()).to_pandas() if len(nested.flatten()) else pd.DataFrame(
        columns=CURVE_COLUMNS[2:]
    )
    curves.insert(0, "cell_id", runs.at[0, "cell_id"])
    curves.insert(0, "study", runs.at[0, "study"])
    return runs, curves


def _cell_files(study_dir: Path) -> list[Path]:
    return sorted((Path(study_dir) / "cells").glob("*.parquet"))


def scan(study_dir: Path) -> tuple[list[Path], list[str]]:
    """Readable cell files and one message per corrupt one (read in full and checksummed; a corrupt cell
    counts as not done, so the next run trains it again and replaces the file)."""
    good, bad = [], []
    for path in _cell_files(study_dir):
        try:
            _checked_table(path)
            good.append(path)
        except CorruptCell as err:
            bad.append(str(err))
    return good, bad


def done_cells(study_dir: Path) -> set[str]:
    return {p.stem for p in scan(study_dir)[0]}


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def load(path: str | Path) -> dict[str, pd.DataFrame]:
    """``{"runs": DataFrame, "curves": DataFrame}`` from a study directory (its cell files), or from a
    merged ``runs.parquet`` (with ``curves.parquet`` beside it when present)."""
    path = Path(path)
    if path.is_file():
        curves_file = path.with_name("curves.parquet")
        return {
            "runs": pd.read_parquet(path),
            "curves": (pd.read_parquet(curves_file) if curves_file.exists() and curves_file != path
                       else pd.DataFrame(columns=CURVE_COLUMNS)),
        }
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such study directory or parquet file")
    runs, curves = [], []
    for cell_file in _cell_files(path):
        try:
            row, points = read_cell(cell_file)
        except CorruptCell:  # a corrupt cell is not done: left out (``scan`` reports it)
            continue
        runs.append(row)
        curves.append(points)
    return {"runs": _concat(runs, ["study", "cell_id", "config_id", "seed", "status"]),
            "curves": _concat(curves, CURVE_COLUMNS)}


def write_merged(study_dir: Path) -> dict[str, pd.DataFrame]:
    """Rewrite ``runs.parquet`` and ``curves.parquet`` of a study from its cell files."""
    study_dir = Path(study_dir)
    tables = load(study_dir)
    for name, df in tables.items():
        _atomic_write(study_dir / f"{name}.parquet", lambda f, df=df: df.to_parquet(f, index=False))
    return tables


def remove_stale_temp_files(study_dir: Path) -> None:
    """Delete temp files a killed writer left behind (call only while holding ``study_lock``)."""
    for pattern in (".*.tmp", "*/.*.tmp"):
        for tmp in Path(study_dir).glob(pattern):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def study_lock(study_dir: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock of one study: one process at a time runs it, so no cell is trained or written twice.

    A second process waits (calling ``on_wait`` once with a description of the holder) until the first
    one is done, then resumes whatever is still missing. An OS file lock (``filelock``): released when its
    holder exits, even by SIGKILL, so a crash never leaves a stale lock.
    """
    study_dir = Path(study_dir)
    lock = filelock.FileLock(study_dir / ".lock")
    owner = study_dir / ".lock.owner"
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if on_wait is not None:
            holder = owner.read_text().strip() if owner.exists() else "unknown process"
            on_wait(holder)
        lock.acquire()
    try:
        _atomic_write(owner, lambda f: f.write(f"pid {os.getpid()} on {socket.gethostname()}\n".encode()))
        yield
    finally:
        lock.release()
