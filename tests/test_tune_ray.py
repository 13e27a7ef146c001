"""bench.tune --executor ray: a budget study's workers as Ray tasks on a running Ray instance, sharing a journal
storage, store what the local path stores; a cluster address with the default SQLite file is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from bench import store, tune
from tests.faultkit import REPO, TIMING_COLUMNS, descendants, env
from tests.test_budget import budget_spec

ray = pytest.importorskip("ray", reason="bench.tune --executor ray needs ray (pip install -e '.[ray]')")

STUDIES = ["tiny_budget.minimax.random", "tiny_budget.wgan-gp.random"]


def rows(results) -> pd.DataFrame:
    """The stored runs of ``results`` less what depends on the machine, clock or process."""
    runs = store.load(results / "tiny_budget")["runs"]
    return runs.drop(columns=TIMING_COLUMNS, errors="ignore").sort_values("cell_id").reset_index(drop=True)


def test_a_budget_study_on_ray_stores_what_the_local_path_stores(tmp_path, monkeypatch):
    spec = tmp_path / "tiny_budget.yaml"
    spec.write_text(yaml.safe_dump(budget_spec()))  # 2 losses x 3 trials x 2 seeds
    monkeypatch.setattr(tune, "save_figures", lambda study, out: {})
    assert tune.main([str(spec), "--results-dir", str(tmp_path / "local"), "--quiet"]) == 0

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the Ray workers
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # and this checkout
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        journal = tmp_path / "shared" / "budget.journal"
        journal.parent.mkdir()
        driver = subprocess.Popen([sys.executable, "-m", "bench.tune", str(spec), "--executor", "ray", "--workers", "2",
                                   "--ray-address", ray.get_runtime_context().gcs_address, "--storage",
                                   f"journal:{journal}", "--results-dir", str(tmp_path / "ray"), "--quiet"],
                                  cwd=REPO, env=env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        tasks: set[int] = set()  # the Ray worker processes that ran a tune worker (process title ray::bench-tune-k)

        def watch():
            while driver.poll() is None:
                tasks.update(descendants(os.getpid(), "ray::bench-tune-"))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        output = driver.communicate(timeout=600)[0]
        watcher.join()
    finally:
        ray.shutdown()
    assert driver.returncode == 0, output
    assert len(tasks) == 2, f"Ray worker processes seen: {tasks}"

    storage = tune.make_storage(f"journal:{journal}", heartbeat=30)
    for name in STUDIES:  # MaxTrialsCallback counts running trials: two workers may each start a last one
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert 3 <= len(trials) <= 4 and all(t.state == TrialState.COMPLETE for t in trials), name
    local, remote = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert list(remote.columns) == list(local.columns) and (remote["status"] == "ok").all()
    # trial k draws the same values whichever worker runs it (trial-seeded random sampling): the same cells
    pd.testing.assert_frame_equal(remote[remote["trial"] < 3].reset_index(drop=True), local)


def test_a_cluster_address_with_the_default_sqlite_file_is_refused(tmp_path, capsys):
    spec = tmp_path / "tiny_budget.yaml"
    spec.write_text(yaml.safe_dump(budget_spec()))
    code = tune.main([str(spec), "--executor", "ray", "--ray-address", "head:6379", "--results-dir",
                      str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --storage: the default SQLite file") and "\n" not in err
    assert "postgresql://" in err and "journal:PATH" in err
    assert not (tmp_path / "results").exists()  # refused before anything is written
