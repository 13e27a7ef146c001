"""The scheduling loop against the Executor protocol: one loop's fault policy whatever the engine, and an
engine that is one small class (a scripted one here, ``SerialExecutor`` shipped) gets the pool's results."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from bench import store
from bench.executors import SerialExecutor
from bench.scheduler import Fault, run, run_local
from bench.spec import Cell, expand, parse_spec, resolve_config
from bench.train import RunResult
from tests.conftest import tiny_base
from tests.faultkit import TIMING_COLUMNS, tiny_spec


class Scripted:
    """An executor that trains nothing: each group comes back as ``script(seeds)`` says."""

    label = ""

    def __init__(self, script, slots: int = 2):
        self.script, self.slots = script, slots
        self.out: dict[int, list[Cell]] = {}
        self.submitted: list[tuple[tuple[int, ...], float | None]] = []  # (seeds, timeout) of each submit
        self.closed: bool | None = None  # close's cancel

    def start(self, n_cells: int) -> int:
        return self.slots

    def submit(self, group, checkpoints, timeout):
        self.submitted.append((tuple(c.seed for c in group), timeout))
        self.out[len(self.submitted)] = group
        return len(self.submitted)

    def wait(self, handles):
        group = self.out.pop(handles[0])
        return [(handles[0], self.script(tuple(c.seed for c in group)))]

    def close(self, cancel: bool) -> None:
        self.closed = cancel


def ok(seeds):
    return [RunResult("ok", 20, "2026-01-01T00:00:00+00:00", 1.0, 0.5) for _ in seeds]


def cells(n: int) -> list[Cell]:
    config = resolve_config(tiny_base())
    return [Cell("s", config, seed, {}) for seed in range(n)]


def test_the_loop_splits_retries_and_records_faults_the_same_for_any_executor(tmp_path):
    script = {(0, 1): Fault("timeout"), (2, 3): Fault("died", "killed"), (4, 5): Fault("error", "Traceback: boom"),
              (0,): Fault("timeout"), (1,): None, (2,): Fault("died", "killed"), (3,): Fault("lost", "NodeDied: gone")}
    executor = Scripted(lambda seeds: script[seeds] or ok(seeds))
    matrix = cells(6)
    report = run(executor, matrix, tmp_path, cell_timeout=5, retries=2, ensemble=2, progress=False)

    assert executor.closed is False
    # ensembles that timed out or died are split; a dead cell runs 1 + retries times; an executor error is not split
    assert Counter(seeds for seeds, _ in executor.submitted) == {
        (0, 1): 1, (2, 3): 1, (4, 5): 1, (0,): 1, (1,): 1, (2,): 3, (3,): 1}
    assert all(timeout == 5 * len(seeds) for seeds, timeout in executor.submitted)
    assert sorted(map(tuple, report.groups)) == sorted(tuple(matrix[s].cell_id for s in seeds)
                                                       for seeds, _ in executor.submitted)
    ids = [c.cell_id for c in matrix]
    assert report.statuses == dict(zip(ids, ["timeout", "ok", "failed", "failed", "failed", "failed"], strict=True))
    store.write_merged(tmp_path)
    errors = store.load(tmp_path)["runs"].set_index("cell_id")["error"]
    assert errors[ids[0]] == "cell exceeded --cell-timeout 5 s"
    assert errors[ids[2]] == "worker process died 3 times: killed"
    assert errors[ids[3]] == "NodeDied: gone"
    assert errors[ids[4]] == errors[ids[5]] == "Traceback: boom"

    again = Scripted(lambda seeds: pytest.fail("a stored cell ran again"))
    assert run(again, matrix, tmp_path, progress=False).skipped == ids and again.closed is None


def test_an_interrupt_or_a_failed_store_write_stops_the_run_and_cancels_the_rest(tmp_path, monkeypatch):
    def interrupted(seeds):
        if seeds == (1,):
            raise KeyboardInterrupt
        return ok(seeds)

    executor = Scripted(interrupted, slots=1)
    report = run(executor, cells(3), tmp_path / "a", ensemble=1, progress=False)
    assert report.interrupted and executor.closed is True
    assert report.ran == [cells(3)[0].cell_id] and store.done_cells(tmp_path / "a") == set(report.ran)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_cell", full)
    executor = Scripted(ok)
    report = run(executor, cells(2), tmp_path / "b", progress=False)
    assert "No space left on device" in report.store_error and executor.closed is True and report.ran == []


@pytest.mark.slow
def test_the_serial_executor_stores_what_the_process_pool_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = tiny_spec("same", iters=30, matrix={"optimizer": [{"name": "adam"}, {"name": "sgd", "lr": 1.0e10}]},
                     seeds=[0, 1])
    matrix = expand(parse_spec(spec))
    pool = run_local(matrix, tmp_path / "pool", workers=1, progress=False)
    serial = run(SerialExecutor(), matrix, tmp_path / "serial", progress=False)
    assert sorted(set(serial.statuses.values())) == ["diverged", "ok"]
    assert serial.statuses == pool.statuses and sorted(serial.groups) == sorted(pool.groups)

    def tables(study):
        tables = store.write_merged(study)
        runs = tables["runs"].drop(columns=TIMING_COLUMNS).sort_values("cell_id").reset_index(drop=True)
        curves = tables["curves"].drop(columns="train_s").sort_values(["cell_id", "generator_iter", "metric"])
        return runs, curves.reset_index(drop=True)

    for ours, theirs in zip(tables(tmp_path / "serial"), tables(tmp_path / "pool"), strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    assert run(SerialExecutor(), matrix, tmp_path / "serial", progress=False).ran == []
