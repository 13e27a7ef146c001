"""Fault suite: real processes, real signals, real write failures. After each fault: every finished cell is
stored exactly once, every cell file reads back, and running the study again completes it."""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
import threading

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench import store
from bench.run import main
from bench.scheduler import run_local
from bench.spec import Cell, expand, load, parse_spec
from bench.train import train
from tests.faultkit import (
    REPO,
    TIMING_COLUMNS,
    alive,
    assert_each_cell_once,
    bench_run,
    cell_files,
    curves_frame,
    descendants,
    env,
    kill,
    store_in_process,
    tiny_spec,
    wait_for,
    write_spec,
)


@pytest.fixture(autouse=True)
def one_thread_per_worker(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run_main(*args) -> int:
    return main([*map(str, args), "--quiet"])


def test_driver_sigkill_mid_matrix_then_rerun(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("killed", iters=200, checkpoint_every=10, eval_every=50,
                                                               seeds=[0, 1, 2]))
    study = tmp_path / "results" / "killed"
    ids = [c.cell_id for c in load(spec)[1]]
    driver = bench_run(spec, "--results-dir", tmp_path / "results", "--workers", "1")
    try:
        # Cells run one after another: kill once the first is stored and the second is checkpointed.
        wait_for(lambda: cell_files(study) and any((study / "ckpt" / f"{i}.pt").exists() for i in ids
                                                    if not (study / "cells" / f"{i}.parquet").exists()),
                 "one stored cell and a checkpoint of an unfinished one")
        workers = descendants(driver.pid, "spawn_main")
        kill(driver.pid)
        driver.wait()
    finally:
        driver.kill()
    assert workers, "the driver had no worker process"
    wait_for(lambda: not any(alive(w) for w in workers), "the orphaned workers to exit", timeout=30)

    stored = {p.stem: p.read_bytes() for p in cell_files(study)}
    interrupted = [p.stem for p in study.glob("ckpt/*.pt") if p.stem not in stored]
    assert 1 <= len(stored) < len(ids) and interrupted
    assert store.scan(study)[1] == []  # whatever is there is whole
    (study / "cells" / ".leftover.parquet.123.tmp").write_bytes(b"half a file")  # as a killed write leaves

    assert run_main(spec, "--results-dir", tmp_path / "results", "--workers", "1") == 0
    assert_each_cell_once(study, ids)
    assert {p: (study / "cells" / f"{p}.parquet").read_bytes() for p in stored} == stored  # not redone
    runs = store.load(study)["runs"].set_index("cell_id")
    assert (runs.loc[interrupted, "resumed_from"] >= 10).all()  # cells killed mid-run went on from a checkpoint
    assert (runs["status"] == "ok").all() and (runs["generator_iters"] == 200).all()
    assert not list(study.glob("*/.*.tmp"))


def test_worker_sigkill_mid_cell_is_retried_from_its_checkpoint(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("worker", iters=300, checkpoint_every=10, eval_every=50))
    study = tmp_path / "results" / "worker"
    (cell,) = load(spec)[1]
    killed = []

    def killer():
        wait_for(lambda: (study / "ckpt" / f"{cell.cell_id}.pt").exists(), "the first checkpoint")
        (worker,) = descendants(os.getpid(), "spawn_main")
        kill(worker)
        killed.append(worker)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    assert run_main(spec, "--results-dir", tmp_path / "results", "--workers", "1", "--retries", "1") == 0
    thread.join()
    assert killed
    assert_each_cell_once(study, [cell.cell_id])
    row, curves = store.read_cell(cell_files(study)[0])
    assert row.at[0, "status"] == "ok"
    assert 10 <= row.at[0, "resumed_from"] < 300

    reference = train(cell.config, cell.seed)  # the same cell, never interrupted
    pd.testing.assert_frame_equal(curves_frame(curves), curves_frame(reference.curves))
    pd.testing.assert_series_equal(row.loc[0, list(reference.final)].astype(float),
                                   pd.Series(reference.final, name=0), check_names=False)


def test_failing_diverging_and_hanging_cells_are_recorded_and_the_matrix_goes_on(tmp_path, monkeypatch):
    """One run with a cell that raises, one that diverges to NaN, one that hangs past its timeout and a
    good one; the raising and hanging ones come from test-only components (tests/fault_plugin)."""
    monkeypatch.setenv("PYTHONPATH", env(plugin=True)["PYTHONPATH"])  # the spawned workers load them
    spec = tiny_spec("faults", iters=40, matrix={"optimizer": [{"name": "adam"}, {"name": "sgd", "lr": 1.0e10}]})
    good, nan = expand(parse_spec(spec))

    def faulty(fault: str) -> Cell:
        config = copy.deepcopy(good.config)
        config["dataset"] = {"name": "faulty", "fault": fault, "at_call": 3}
        return Cell("faults", config, 0, {"dataset.fault": fault})

    raises, hangs = faulty("raise"), faulty("hang")
    cells = [good, nan, raises, hangs]
    study = tmp_path / "faults"
    report = run_local(cells, study, workers=2, cell_timeout=10, progress=False)
    assert report.statuses == {good.cell_id: "ok", nan.cell_id: "diverged", raises.cell_id: "failed",
                               hangs.cell_id: "timeout"}
    store.write_merged(study)
    assert_each_cell_once(study, [c.cell_id for c in cells])
    runs = store.load(study)["runs"].set_index("cell_id")
    assert "RuntimeError: injected fault at batch 3" in runs.loc[raises.cell_id, "error"]
    assert "Traceback" in runs.loc[raises.cell_id, "error"]
    assert runs.loc[nan.cell_id, "diverged_at"] >= 1
    assert "--cell-timeout 10" in runs.loc[hangs.cell_id, "error"]

    again = run_local(cells, study, workers=2, cell_timeout=10, progress=False)
    assert again.ran == [] and sorted(again.skipped) == sorted(c.cell_id for c in cells)


def test_unwritable_results_dir_is_a_clear_error(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("unwritable"))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert run_main(spec, "--results-dir", not_a_dir) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {not_a_dir}: cannot write results") and "\n" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_read_only_results_dir_is_a_clear_error(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("readonly"))
    results = tmp_path / "results"
    results.mkdir(mode=0o500)
    assert run_main(spec, "--results-dir", results) == 2
    assert "cannot write results" in capsys.readouterr().err


def _limit_file_size():
    """In the child: any write past 4 KiB fails (EFBIG), as writes fail on a full disk (ENOSPC)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_full_disk_mid_run_keeps_earlier_results(tmp_path, capsys):
    results = tmp_path / "results"
    study = results / "full"
    store_in_process(study, load(write_spec(tmp_path / "one.yaml", tiny_spec("full", seeds=[0])))[1])
    before = {p.name: p.read_bytes() for p in [*cell_files(study), study / "runs.parquet"]}

    spec = write_spec(tmp_path / "three.yaml", tiny_spec("full", seeds=[0, 1, 2]))
    child = subprocess.run([sys.executable, "-m", "bench.run", spec, "--results-dir", results, "--quiet",
                            "--workers", "1"],
                           cwd=REPO, env=env(), capture_output=True, text=True, timeout=300,
                           preexec_fn=_limit_file_size)
    assert child.returncode == 1, child.stderr
    errors = [line for line in child.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "File too large" in errors[0] and "intact" in errors[0]
    assert "Traceback" not in child.stderr
    assert {p.name: p.read_bytes() for p in [*cell_files(study), study / "runs.parquet"]} == before
    assert not list(study.glob("*/.*.tmp")) and not list(study.glob(".*.tmp"))

    assert run_main(spec, "--results-dir", results, "--workers", "1") == 0
    assert_each_cell_once(study, [c.cell_id for c in load(spec)[1]])


def test_results_dir_turned_unwritable_mid_study_keeps_earlier_results(tmp_path, capsys):
    results = tmp_path / "results"
    study = results / "blocked"
    store_in_process(study, load(write_spec(tmp_path / "one.yaml", tiny_spec("blocked", seeds=[0])))[1])
    before = {p.name: p.read_bytes() for p in cell_files(study)}
    (study / "samples").rename(tmp_path / "samples")
    (study / "samples").write_text("")  # a file where the samples directory should be: every write fails
    capsys.readouterr()
    spec = write_spec(tmp_path / "two.yaml", tiny_spec("blocked", seeds=[0, 1]))
    assert run_main(spec, "--results-dir", results, "--workers", "1") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot store cell") and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in cell_files(study)} == before


def _corrupt(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # bytes flipped inside a data page: the footer still parses, the page checksum does not match
        end = _column_chunk_end(path, "curves")
        data[end - 8 : end] = bytes(b ^ 0xFF for b in data[end - 8 : end])
        path.write_bytes(data)


def _column_chunk_end(path, column: str) -> int:
    """Offset just past a column chunk's bytes: the tail of its last data page (after that page's header)."""
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(row_group.column(i) for i in range(row_group.num_columns)
                 if row_group.column(i).path_in_schema.split(".")[0] == column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    return start + chunk.total_compressed_size


def test_corrupt_cell_files_are_reported_and_their_cells_rerun(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("corrupt", seeds=[0, 1, 2, 3], checkpoint_every=20))
    results, study = tmp_path / "results", tmp_path / "results" / "corrupt"
    store_in_process(study, load(spec)[1])
    original = store.load(study)
    files = cell_files(study)
    for path, how in zip(files, ["truncated", "empty", "flipped"]):
        _corrupt(path, how)
    intact = files[3].read_bytes()
    good, bad = store.scan(study)
    assert good == [files[3]] and len(bad) == 3

    capsys.readouterr()
    assert run_main(spec, "--results-dir", results, "--workers", "1") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert sorted(w.split(":")[1].strip() for w in warnings) == sorted(str(p) for p in files[:3])
    assert_each_cell_once(study, [p.stem for p in files])
    assert files[3].read_bytes() == intact
    # The rerun cells resumed from their final checkpoints: the same results as before the damage.
    rerun = store.load(study)
    key = ["cell_id"]
    pd.testing.assert_frame_equal(
        rerun["runs"].drop(columns=TIMING_COLUMNS).sort_values(key).reset_index(drop=True),
        original["runs"].drop(columns=TIMING_COLUMNS).sort_values(key).reset_index(drop=True))
    order = ["cell_id", "generator_iter", "metric"]
    pd.testing.assert_frame_equal(
        rerun["curves"].drop(columns="train_s").sort_values(order).reset_index(drop=True),
        original["curves"].drop(columns="train_s").sort_values(order).reset_index(drop=True))


def test_two_runs_of_one_study_at_once(tmp_path):
    """Both start while the study is locked (by this test), both wait; then one runs the cells and the
    other finds them done. No cell is trained twice, no row duplicated."""
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("twice", seeds=[0, 1]))
    results, study = tmp_path / "results", tmp_path / "results" / "twice"
    study.mkdir(parents=True)
    runs = []
    with store.study_lock(study):
        for name in "ab":
            err = open(tmp_path / f"{name}.err", "w")
            runs.append((bench_run(spec, "--results-dir", results, "--workers", "1", stdout=subprocess.PIPE,
                                   stderr=err), err))
        for name in "ab":
            wait_for(lambda: "waiting for it to finish" in (tmp_path / f"{name}.err").read_text(),
                     f"run {name} to wait for the lock")
        assert not cell_files(study)
    outputs = []
    for proc, err in runs:
        stdout, _ = proc.communicate(timeout=300)
        err.close()
        assert proc.returncode == 0, open(err.name).read()
        outputs.append(stdout)
    ids = [c.cell_id for c in load(spec)[1]]
    assert_each_cell_once(study, ids)
    assert sum("resumed: 2 cells already stored were skipped" in out for out in outputs) == 1
    curves = pq.read_table(study / "curves.parquet").to_pandas()
    assert not curves.duplicated(["cell_id", "generator_iter", "metric"]).any()
