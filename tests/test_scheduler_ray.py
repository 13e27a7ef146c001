"""The Ray executor on a real local Ray instance (2 CPUs): same results as the local executor; worker
deaths retried from checkpoints or recorded as failed; timeouts; the command line against a running cluster."""

from __future__ import annotations

import os
import subprocess
import threading

import pandas as pd
import pytest

from bench import store
from bench.scheduler import run_local, run_ray
from bench.spec import expand, load, parse_spec
from bench.train import train
from tests.faultkit import (
    TIMING_COLUMNS,
    bench_run,
    cell_files,
    curves_frame,
    descendants,
    kill,
    tiny_spec,
    wait_for,
    write_spec,
)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A Ray instance of this test process with 2 CPUs; yields its address."""
    with pytest.MonkeyPatch.context() as patch:  # later tests see the environment as it was
        patch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # inherited by the Ray workers
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray.get_runtime_context().gcs_address
        ray.shutdown()


def comparable(tables: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = tables["runs"].drop(columns=TIMING_COLUMNS).sort_values("cell_id").reset_index(drop=True)
    curves = tables["curves"].drop(columns="train_s").sort_values(["cell_id", "generator_iter", "metric"])
    return runs, curves.reset_index(drop=True)


def test_ray_on_a_running_cluster_gives_the_local_results(cluster, tmp_path, monkeypatch):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec("same", matrix={"loss": [{"name": "wgan"}, {"name": "wgan-gp"}]},
                                                     seeds=[0, 1]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_local(load(spec)[1], tmp_path / "local" / "same", workers=1, progress=False)
    driver = bench_run(spec, "--results-dir", tmp_path / "ray", "--executor", "ray", "--ray-address", cluster,
                       stderr=subprocess.PIPE)
    _, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err

    ray_runs, ray_curves = comparable(store.load(tmp_path / "ray" / "same"))
    local_runs, local_curves = comparable(store.load(tmp_path / "local" / "same"))
    assert len(ray_runs) == 4 and (ray_runs["status"] == "ok").all()
    pd.testing.assert_frame_equal(ray_runs, local_runs)
    pd.testing.assert_frame_equal(ray_curves, local_curves)


def _kill_when_checkpointed(study, cell, killed: list) -> threading.Thread:
    def killer():
        wait_for(lambda: (study / "ckpt" / f"{cell.cell_id}.pt").exists(), f"a checkpoint of {cell.cell_id}")
        (worker,) = wait_for(lambda: descendants(os.getpid(), f"ray::bench-cell-{cell.cell_id}"), "its worker")
        kill(worker)
        killed.append(worker)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def test_ray_retries_a_killed_worker_from_the_cell_checkpoint(cluster, tmp_path):
    (cell,) = expand(parse_spec(tiny_spec("retry", iters=300, checkpoint_every=10, eval_every=50)))
    study, killed = tmp_path / "retry", []
    thread = _kill_when_checkpointed(study, cell, killed)
    report = run_ray([cell], study, retries=1, progress=False)
    thread.join()
    assert killed and report.statuses == {cell.cell_id: "ok"}
    row, curves = store.read_cell(cell_files(study)[0])
    assert 10 <= row.at[0, "resumed_from"] < 300
    pd.testing.assert_frame_equal(curves_frame(curves), curves_frame(train(cell.config, cell.seed).curves))


def test_ray_records_a_dead_worker_past_its_retries_and_a_timeout(cluster, tmp_path):
    spec = tiny_spec("lost", iters=300, checkpoint_every=10, eval_every=50,
                     matrix={"train.generator_iters": [300, 1_000_000]})
    victim, endless = expand(parse_spec(spec))
    study, killed = tmp_path / "lost", []
    thread = _kill_when_checkpointed(study, victim, killed)
    report = run_ray([victim, endless], study, retries=0, cell_timeout=12, progress=False)
    thread.join()
    assert killed and report.statuses == {victim.cell_id: "failed", endless.cell_id: "timeout"}
    store.write_merged(study)
    runs = store.load(study)["runs"].set_index("cell_id")
    assert "WorkerCrashedError" in runs.loc[victim.cell_id, "error"]
    assert "--cell-timeout 12" in runs.loc[endless.cell_id, "error"]
    wait_for(lambda: not descendants(os.getpid(), f"ray::bench-cell-{endless.cell_id}"), "the cancelled worker to go")


def test_unreachable_cluster_address_is_a_quick_clear_error(tmp_path, capsys):
    from bench.run import main

    spec = write_spec(tmp_path / "s.yaml", tiny_spec("nowhere"))
    assert main([str(spec), "--results-dir", str(tmp_path), "--executor", "ray", "--ray-address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --ray-address 127.0.0.1:1: no Ray cluster reachable there") and "\n" not in err
