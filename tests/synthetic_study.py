"""Synthetic studies for testing the reports: clearly made-up numbers, stored through ``bench.store`` exactly
as the scheduler stores real cells (resolved configs, one parquet per cell, samples and artifacts beside)."""

from __future__ import annotations

import copy
from pathlib import Path

from bench import store
from bench.configdict import set_dotted
from bench.spec import Cell, resolve_config
from bench.train import RunResult

BASE = {"preset": "toy", "dataset": {"name": "25gaussians"}, "generator": {"width": 16}, "critic": {"width": 16},
        "loss": {"name": "wgan-gp"}}
PROV = {"torch_version": "synthetic", "bench_version": "0", "python_version": "3", "numpy_version": "2",
        "git_sha": "synthetic", "host": "test"}


def make_cell(study: str, overrides: dict, seed: int, base: dict | None = None) -> Cell:
    raw = copy.deepcopy(base or BASE)
    for path, value in overrides.items():
        set_dotted(raw, path, value)
    return Cell(study, resolve_config(raw), seed, overrides)


def store_cell(study_dir: Path, cell: Cell, *, final: dict, curves=(), status: str = "ok", samples=None,
               snapshots=None, artifacts=None, labels=None, train_s: float = 1.0, ensemble_size: int = 1) -> None:
    result = RunResult(status, 500, "2026-01-01T00:00:00+00:00", 2 * train_s, train_s, curves=list(curves),
                       final=final, samples=samples, snapshots=snapshots or {}, labels=labels or {},
                       artifacts=artifacts or {}, diverged_at=250 if status == "diverged" else None,
                       ensemble_size=ensemble_size)
    store.write_cell(study_dir, cell, result, PROV)


def write_spec(study_dir: Path, name: str, description: str = "synthetic test study") -> None:
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "spec.yaml").write_text(f"name: {name}\ndescription: {description}\nbase: {{}}\n")
