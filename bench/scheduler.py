"""Executors: run cells, store each result as it arrives, skip what is already stored.

The local executor runs cells in worker processes (pebble's process pool: a cell past ``cell_timeout`` has
its worker killed and replaced). Only the driver writes results, one atomic file per cell, so Ctrl-C or
SIGTERM loses nothing that finished. An exception inside a cell becomes a ``failed`` row with its traceback;
a NaN/inf becomes ``diverged``; the rest of the matrix goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pebble import ProcessExpired, ProcessPool
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import store
from bench.spec import Cell
from bench.train import Hooks, RunResult


@dataclass
class RunReport:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # cell_id -> status of this run's cells
    interrupted: bool = False


def default_workers(n_cells: int) -> int:
    return max(1, min(n_cells, os.cpu_count() or 1))


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _init_worker(threads: int) -> None:
    import torch

    import bench.train  # noqa: F401  (imported once per worker, not on a cell's clock)

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what Ctrl-C means


def run_cell(cell: Cell, device: str, checkpoint: Path | None, on_eval=None) -> RunResult:
    """Train one cell in this process; any exception becomes a ``failed`` result with its traceback.
    ``on_eval``: see ``bench.train.Hooks`` (bench.tune reports to Optuna's pruner there)."""
    from bench.train import train

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        hooks = Hooks(on_eval=on_eval, checkpoint_path=checkpoint if cell.config["train"]["checkpoint_every"] else None)
        return train(cell.config, cell.seed, hooks, device=device)
    except Exception:
        return RunResult("failed", 0, started, 0.0, 0.0, error=traceback.format_exc())


def _lost(status: str, error: str) -> RunResult:
    return RunResult(status, 0, datetime.now(timezone.utc).isoformat(timespec="seconds"), 0.0, 0.0, error=error)


class _Terminate(Exception):
    pass


def run_local(
    cells: list[Cell],
    study_dir: Path,
    *,
    workers: int | None = None,
    cell_timeout: float | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> RunReport:
    """Run every cell of ``cells`` not yet stored under ``study_dir``; store each as it finishes."""
    study_dir = Path(study_dir)
    report = RunReport()
    done = store.done_cells(study_dir)
    todo = []
    for cell in cells:
        (report.skipped if cell.cell_id in done else todo).append(cell)
    report.skipped = [c.cell_id for c in report.skipped]
    if not todo:
        return report
    device = resolve_device(device)
    workers = workers or default_workers(len(todo))
    threads = max(1, (os.cpu_count() or 1) // workers)
    prov = store.provenance()

    previous = signal.signal(signal.SIGTERM, _raise_terminate)
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[last]}"), disable=not progress)
    pool = ProcessPool(max_workers=workers, initializer=_init_worker, initargs=(threads,),
                       context=multiprocessing.get_context("spawn"))
    try:
        with bar:
            task = bar.add_task(f"{todo[0].study}", total=len(todo), last="")
            futures = {
                pool.schedule(run_cell, args=(c, device, store.checkpoint_path(study_dir, c.cell_id)), timeout=cell_timeout): c
                for c in todo
            }
            for future in as_completed(futures):
                cell = futures[future]
                try:
                    result = future.result()
                except FutureTimeout:
                    result = _lost("timeout", f"cell exceeded --cell-timeout {cell_timeout} s")
                except ProcessExpired as err:
                    result = _lost("failed", f"worker process died: {err}")
                except Exception:  # pebble-level failures (e.g. unpicklable result)
                    result = _lost("failed", traceback.format_exc())
                store.write_cell(study_dir, cell, result, prov)
                report.ran.append(cell.cell_id)
                report.statuses[cell.cell_id] = result.status
                bar.update(task, advance=1, last=f"{cell.cell_id} {result.status}")
        pool.close()
    except (KeyboardInterrupt, _Terminate):
        report.interrupted = True
        pool.stop()
    finally:
        pool.join()
        signal.signal(signal.SIGTERM, previous)
    return report


def _raise_terminate(signum, frame):
    raise _Terminate()
