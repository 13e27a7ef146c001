"""Helpers of the fault tests: tiny specs, real processes, waiting on files instead of sleeping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(__file__).resolve().parent / "fault_plugin"
# How a run was scheduled and timed, not what it computed: these may differ between runs of one cell (the
# scheduler sizes stacks by the worker count; a cell's results do not depend on its stack).
TIMING_COLUMNS = ["started_at", "wall_s", "train_s", "resumed_from", "host", "git_sha", "workers", "ensemble_size"]


def tiny_spec(name: str, *, iters: int = 40, checkpoint_every: int = 0, seeds=(0,), matrix=None,
              n_critic: int = 1, eval_every: int = 10, metrics=None) -> dict:
    """A toy spec small enough for tests: 16-unit MLPs, a few dozen generator steps."""
    spec = {
        "name": name,
        "base": {
            "preset": "toy",
            "dataset": {"name": "25gaussians"},
            "generator": {"arch": "mlp", "width": 16},
            "critic": {"arch": "mlp", "width": 16},
            "loss": {"name": "wgan-gp"},
            "train": {"generator_iters": iters, "n_critic": n_critic, "batch_size": 64,
                      "checkpoint_every": checkpoint_every},
            "eval": {"every": eval_every, "n_samples": 300, "w1_samples": 100, "snapshot_samples": 8},
        },
        "seeds": list(seeds),
    }
    if metrics is not None:
        spec["base"]["eval"]["metrics"] = metrics
    if matrix:
        spec["matrix"] = matrix
    return spec


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def env(plugin: bool = False) -> dict:
    """Environment of a child Python process: this checkout first (and the test components if asked)."""
    paths = ([str(PLUGIN_DIR)] if plugin else []) + [str(REPO)]
    return {**os.environ, "OMP_NUM_THREADS": "1",  # tiny models: more threads only contend for the cores
            "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def bench_run(*args: str, plugin: bool = False, **popen) -> subprocess.Popen:
    """``python -m bench.run ARGS`` as a real child process."""
    return subprocess.Popen([sys.executable, "-m", "bench.run", *map(str, args), "--quiet"], cwd=REPO,
                            env=env(plugin), text=True, **popen)


def wait_for(predicate, what: str, timeout: float = 120.0, poll: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int, cmdline_contains: str) -> list[int]:
    """Live processes under ``pid`` (any depth) whose command line contains the text (Linux /proc)."""
    parents = {int(p): _parent(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    found, frontier = [], {pid}
    while frontier:
        children = {c for c, p in parents.items() if p in frontier}
        for c in children:
            try:
                cmd = Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline_contains in cmd and alive(c):
                found.append(c)
        frontier = children
    return found


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def cell_files(study_dir: Path) -> list[Path]:
    return sorted((study_dir / "cells").glob("*.parquet"))


def assert_each_cell_once(study_dir: Path, cell_ids) -> None:
    """The study's cell files and merged runs table hold every expected cell exactly once, readable."""
    from bench import store

    good, bad = store.scan(study_dir)
    assert bad == []
    assert sorted(p.stem for p in good) == sorted(cell_ids)
    runs = pq.read_table(study_dir / "runs.parquet").to_pandas()
    assert sorted(runs["cell_id"]) == sorted(cell_ids)
    loaded = store.load(study_dir)["runs"]
    assert sorted(loaded["cell_id"]) == sorted(cell_ids)


def curves_frame(curves) -> pd.DataFrame:
    """``RunResult.curves`` (or a stored curves table) as (generator_iter, metric, value), clock left out."""
    if isinstance(curves, pd.DataFrame):
        return curves[["generator_iter", "metric", "value"]].reset_index(drop=True)
    return pd.DataFrame([(i, k, v) for i, _, k, v in curves], columns=["generator_iter", "metric", "value"])


def store_in_process(study_dir: Path, cells) -> None:
    """Train ``cells`` in this process and store them as a run would (a quicker way to an earlier result)."""
    from bench import store
    from bench.train import Hooks, train

    prov = {**store.provenance(), "workers": 1}  # one cell at a time, as run_local with --workers 1
    for cell in cells:
        hooks = Hooks(checkpoint_path=store.checkpoint_path(study_dir, cell.cell_id)
                      if cell.config["train"]["checkpoint_every"] else None)
        store.write_cell(study_dir, cell, train(cell.config, cell.seed, hooks), prov)
    store.write_merged(study_dir)
