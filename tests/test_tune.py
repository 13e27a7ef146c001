"""bench.tune end to end on tiny cells: trials land in parquet, pruning, failures, shared storage, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from bench import store, tune

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "preset": "toy",
    "dataset": {"name": "25gaussians"},
    "generator": {"arch": "mlp", "width": 16, "depth": 3},
    "critic": {"arch": "mlp", "width": 16, "depth": 3},
    "loss": {"name": "wgan-gp"},
    "optimizer": {"lr": 1e-3},
    "train": {"generator_iters": 20, "batch_size": 64, "n_critic": 2},
    "eval": {"every": 10, "n_samples": 256, "w1_samples": 128, "snapshot_samples": 0, "metrics": ["modes", "w1_exact"]},
}
LR = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}


def write_spec(tmp_path: Path, search: dict, name: str = "tiny", seeds=(0,), **base) -> Path:
    path = tmp_path / f"{name}.yaml"
    data = {"name": name, "base": {**TINY, **base}, "seeds": list(seeds), "search": search}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def study_of(tmp_path: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'results' / name / 'optuna.db'}")


def tune_main(spec: Path, tmp_path: Path, *args: str) -> int:
    return tune.main([str(spec), "--results-dir", str(tmp_path / "results"), "--quiet", *args])


def launch(spec: Path, tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "bench.tune", str(spec), "--results-dir", str(tmp_path / "results"),
                             "--quiet", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_search_end_to_end(tmp_path):
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 3, "sampler": {"name": "random", "seed": 0},
              "pruner": {"name": "none"},
              "space": {"optimizer.lr": LR,
                        "optimizer.betas": {"type": "categorical", "choices": [[0.5, 0.9], [0.0, 0.9]]}}}
    spec = write_spec(tmp_path, search, seeds=(0, 1))
    assert tune_main(spec, tmp_path) == 0

    study = study_of(tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    runs = store.load(tmp_path / "results" / "tiny")["runs"]
    assert len(runs) == 6 and set(runs["status"]) == {"ok"} and set(runs["optuna_study"]) == {"tiny"}
    for t in trials:  # each trial = one cell per seed, with the trial's values, and the mean as its value
        rows = runs[runs["trial"] == t.number]
        assert sorted(rows["seed"]) == [0, 1] and sorted(rows["cell_id"]) == sorted(t.user_attrs["cell_ids"])
        assert (rows["optimizer.lr"] == t.params["optimizer.lr"]).all()
        assert (rows["optimizer.betas"] == json.dumps(json.loads(t.params["optimizer.betas"]))).all()
        assert t.value == pytest.approx(rows["w1_exact"].mean())
        assert sorted(t.intermediate_values) == [10, 20, 30, 40]  # seed 1's evaluations follow seed 0's
    out = tmp_path / "results" / "tiny" / "optuna" / "tiny"
    best = json.loads((out / "best.json").read_text())
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    assert best["config"]["optimizer"]["lr"] == study.best_params["optimizer.lr"]
    for figure in ["history", "slice", "contour", "intermediate_values", "importances"]:
        assert (out / f"{figure}.png").stat().st_size > 0
    assert len((out / "trials.csv").read_text().splitlines()) == 4

    # rerunning continues the same study: nothing to do at the same budget, one more trial at a larger one
    assert tune_main(spec, tmp_path) == 0 and len(study.get_trials()) == 3
    assert tune_main(spec, tmp_path, "--n-trials", "4") == 0
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 4
    assert sorted(store.load(tmp_path / "results" / "tiny")["runs"]["trial"].unique()) == [0, 1, 2, 3]


def test_pruning_stops_a_bad_trial_at_its_first_evaluation(tmp_path):
    # gp_lambda 1000 puts the critic loss in the hundreds (0.1: near 0): the median pruner must stop it.
    search = {"objective": {"metric": "critic_loss", "direction": "minimize"}, "n_trials": 2,
              "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "median", "n_startup_trials": 1},
              "space": {"loss.gp_lambda": {"type": "categorical", "choices": [0.1, 1000.0]}},
              "enqueue": [{"loss.gp_lambda": 0.1}, {"loss.gp_lambda": 1000.0}]}
    spec = write_spec(tmp_path, search, train={**TINY["train"], "generator_iters": 40})
    assert tune_main(spec, tmp_path) == 0

    good, bad = study_of(tmp_path).get_trials()
    assert (good.state, bad.state) == (TrialState.COMPLETE, TrialState.PRUNED)
    assert list(bad.intermediate_values) == [10] and bad.value > 100 * abs(good.value)
    runs = store.load(tmp_path / "results" / "tiny")["runs"].set_index("trial")
    assert runs.loc[1, "status"] == "pruned" and runs.loc[1, "generator_iters"] == 10
    assert runs.loc[0, "status"] == "ok" and runs.loc[0, "generator_iters"] == 40


def test_a_repeated_config_is_replayed_not_retrained(tmp_path):
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 2, "pruner": {"name": "none"},
              "space": {"optimizer.lr": {"type": "categorical", "choices": [1e-3]}}}
    spec = write_spec(tmp_path, search)
    assert tune_main(spec, tmp_path) == 0
    first, second = study_of(tmp_path).get_trials()
    assert second.state == TrialState.COMPLETE and second.value == first.value
    runs = store.load(tmp_path / "results" / "tiny")["runs"]
    assert len(runs) == 1 and runs.loc[0, "trial"] == 0  # one cell, trained by trial 0


def test_failed_trials_are_recorded_and_bounded(tmp_path, monkeypatch):
    import bench.train

    def boom(config, seed, hooks=None, device="cpu"):
        raise RuntimeError("boom")

    monkeypatch.setattr(bench.train, "train", boom)
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 2, "space": {"optimizer.lr": LR}}
    spec = write_spec(tmp_path, search)
    assert tune_main(spec, tmp_path) == 1  # no trial completed
    trials = study_of(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2  # failures do not use the budget, but stop at n_trials
    assert all("boom" in t.user_attrs["error"] for t in trials)
    runs = store.load(tmp_path / "results" / "tiny")["runs"]
    assert set(runs["status"]) == {"failed"} and runs["error"].str.contains("RuntimeError: boom").all()


@pytest.mark.parametrize("name, cls", [("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
                                       ("cmaes", optuna.samplers.CmaEsSampler), ("grid", optuna.samplers.GridSampler)])
def test_samplers_and_pruners_are_optunas(tmp_path, name, cls):
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 1, "sampler": {"name": name, "seed": 3},
              "space": {"train.n_critic": {"type": "int", "low": 1, "high": 3}}}
    _, s = tune.load(write_spec(tmp_path, search))
    assert isinstance(tune.make_sampler(s, 3), cls)
    for pruner, pruner_cls in [("median", optuna.pruners.MedianPruner), ("hyperband", optuna.pruners.HyperbandPruner),
                               ("none", optuna.pruners.NopPruner)]:
        s.pruner = s.pruner.model_validate({"name": pruner})
        assert isinstance(tune.make_pruner(s, 10), pruner_cls)


def test_grid_search_ends_when_the_grid_is_exhausted(tmp_path):
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 5, "sampler": {"name": "grid"},
              "pruner": {"name": "none"},
              "space": {"optimizer.lr": {"type": "categorical", "choices": [1e-3, 3e-3]}}}
    assert tune_main(write_spec(tmp_path, search), tmp_path) == 0
    trials = study_of(tmp_path).get_trials()
    assert sorted(t.params["optimizer.lr"] for t in trials) == [1e-3, 3e-3]


def test_journal_storage(tmp_path):
    search = {"objective": {"metric": "modes_captured"}, "n_trials": 1, "space": {"optimizer.lr": LR}}
    spec = write_spec(tmp_path, search)
    journal = tmp_path / "journal.log"
    assert tune_main(spec, tmp_path, "--storage", f"journal:{journal}") == 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    assert optuna.load_study(study_name="tiny", storage=storage).best_trial.number == 0


def test_a_study_is_not_continued_with_another_spec(tmp_path, capsys):
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 1, "space": {"optimizer.lr": LR}}
    assert tune_main(write_spec(tmp_path, search), tmp_path) == 0
    search["space"]["train.n_critic"] = {"type": "int", "low": 1, "high": 3}
    assert tune_main(write_spec(tmp_path, search), tmp_path) == 2
    assert "--study-name: study 'tiny'" in capsys.readouterr().err
    assert tune_main(write_spec(tmp_path, search), tmp_path, "--study-name", "tiny-2") == 0


def test_bad_sampler_option_is_bad_input(tmp_path, capsys):
    search = {"objective": {"metric": "w1_exact"}, "n_trials": 1, "space": {"optimizer.lr": LR},
              "sampler": {"name": "tpe", "n_startup_trialz": 3}}
    assert tune_main(write_spec(tmp_path, search), tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: search.sampler:") and "n_startup_trialz" in err and "\n" not in err


def test_ray_options_without_ray_are_bad_input(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path, {"objective": {"metric": "w1_exact"}, "n_trials": 1, "space": {"optimizer.lr": LR}})
    assert tune_main(spec, tmp_path, "--ray-address", "head:6379") == 2
    assert capsys.readouterr().err.strip() == "error: --ray-address: needs --executor ray"
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert tune_main(spec, tmp_path, "--executor", "ray") == 2
    assert capsys.readouterr().err.strip() == 'error: --executor: ray is not installed (pip install -e ".[ray]")'
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_two_processes_share_one_study(tmp_path):
    n = 4
    search = {"objective": {"metric": "w1_exact"}, "n_trials": n, "sampler": {"name": "random", "seed": 0},
              "pruner": {"name": "none"}, "space": {"optimizer.lr": LR, "loss.gp_lambda": LR}}
    spec = write_spec(tmp_path, search)
    procs = [launch(spec, tmp_path, "--seed-offset", str(k)) for k in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    trials = study_of(tmp_path).get_trials()
    # MaxTrialsCallback counts running trials too; two processes finishing at the same instant may each start one
    assert n <= len(trials) <= n + 1 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)  # no trial proposed twice
    runs = store.load(tmp_path / "results" / "tiny")["runs"]
    assert sorted(runs["trial"]) == [t.number for t in trials]  # every trial stored once, none lost


def interrupt_first_trial(tmp_path: Path, n_trials: int, sig: int,
                          *args: str) -> tuple[subprocess.Popen, optuna.trial.FrozenTrial]:
    """Start a search of slow trials, send ``sig`` once its first trial has reported; the process and that trial."""
    search = {"objective": {"metric": "hq_fraction"}, "n_trials": n_trials, "sampler": {"name": "random", "seed": 0},
              "pruner": {"name": "none"}, "space": {"optimizer.lr": LR}}
    spec = write_spec(tmp_path, search, train={**TINY["train"], "generator_iters": 400},
                      eval={**TINY["eval"], "every": 20, "metrics": ["modes"]})
    proc = launch(spec, tmp_path, *args)
    deadline = time.monotonic() + 120
    running = []
    while not running and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            running = [t for t in study_of(tmp_path).get_trials(states=(TrialState.RUNNING,)) if t.intermediate_values]
        except Exception:  # no database or study yet
            running = []
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert running, f"the search never started a trial: {output}"
    return proc, running[0]


@pytest.mark.slow
def test_ctrl_c_stops_after_the_running_trial(tmp_path):
    proc, running = interrupt_first_trial(tmp_path, 5, signal.SIGINT)
    assert proc.returncode == 1
    trials = study_of(tmp_path).get_trials()
    assert len(trials) == running.number + 1 and trials[-1].state == TrialState.COMPLETE  # finished, none started


@pytest.mark.slow
def test_a_killed_search_resumes(tmp_path):
    spec = tmp_path / "tiny.yaml"
    _, killed = interrupt_first_trial(tmp_path, 2, signal.SIGKILL, "--heartbeat", "1")
    assert study_of(tmp_path).get_trials()[killed.number].state == TrialState.RUNNING

    # past the grace period (2 heartbeats): the trial is stale. SQLite's CURRENT_TIMESTAMP, which Optuna
    # stamps heartbeats with, has one-second resolution, so "older than 2 s" can take up to 3 s to show.
    time.sleep(4)
    assert tune_main(spec, tmp_path, "--heartbeat", "1") == 0
    trials = study_of(tmp_path).get_trials()
    assert trials[killed.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE and retried[0].params == killed.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2  # the budget is complete, nothing lost
    runs = store.load(tmp_path / "results" / "tiny")["runs"]
    assert sorted(runs["trial"]) == sorted(t.number for t in trials if t.state == TrialState.COMPLETE)
