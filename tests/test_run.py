"""End-to-end: the command line, the local scheduler and resume."""

import pandas as pd
import yaml

from bench import store
from tests.conftest import tiny_base


def write_spec(tmp_path, **fields):
    data = {"name": "e2e", "base": tiny_base(), "seeds": [0], **fields}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_run_stores_every_cell_and_a_rerun_resumes(tmp_path, run_cli):
    spec = write_spec(tmp_path, seeds=[0, 1], matrix={"loss.name": ["wgan", "wgan-gp"]})
    first = run_cli("run", spec, "--workers", "2", "--quiet")
    assert first.returncode == 0, first.stderr
    runs = pd.read_parquet(tmp_path / "results/e2e/runs.parquet")
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert set(pd.read_parquet(tmp_path / "results/e2e/curves.parquet")["cell_id"]) == set(runs["cell_id"])
    assert "wgan-gp" in first.stdout and "modes_captured" in first.stdout  # the summary table
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results/e2e/cells").iterdir()}

    second = run_cli("run", spec, "--quiet")
    assert second.returncode == 0 and "4 cells already stored were skipped" in second.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results/e2e/cells").iterdir()} == mtimes


def test_a_wall_clock_study_trains_every_cell_alone_and_records_how(tmp_path, run_cli):
    spec = write_spec(tmp_path, seeds=[0, 1, 2], wall_clock=True)
    out = run_cli("run", spec, "--workers", "1", "--quiet")
    assert out.returncode == 0, out.stderr
    runs = pd.read_parquet(tmp_path / "results/e2e/runs.parquet")
    assert list(runs["ensemble_size"]) == [1, 1, 1] and list(runs["workers"]) == [1, 1, 1]
    assert set(runs["train.threads"]) == {1}


def test_a_failing_cell_is_recorded_and_the_matrix_goes_on(tmp_path, run_cli):
    # Batch norm cannot train on a batch of one sample: that cell raises at its first step.
    base = tiny_base(generator={"width": 16, "batchnorm": True})
    spec = write_spec(tmp_path, base=base, matrix={"train.batch_size": [1, 16]})
    out = run_cli("run", spec, "--workers", "1", "--quiet")
    assert out.returncode == 1 and "failed" in out.stderr
    runs = store.load(tmp_path / "results/e2e")["runs"].set_index("train.batch_size")
    assert runs.loc[1, "status"] == "failed"
    assert "Expected more than 1 value per channel" in runs.loc[1, "error"]  # the traceback is kept
    assert runs.loc[16, "status"] == "ok"


def test_a_cell_past_its_timeout_is_stopped_and_recorded(tmp_path, run_cli):
    slow = tiny_base(train={"generator_iters": 100000, "batch_size": 32}, eval={"every": 100000, "n_samples": 100})
    spec = write_spec(tmp_path, base=slow, include=[{"train": {"generator_iters": 10, "batch_size": 32}}])
    out = run_cli("run", spec, "--workers", "2", "--cell-timeout", "20", "--quiet")
    assert out.returncode == 1
    runs = store.load(tmp_path / "results/e2e")["runs"].set_index("train.generator_iters")
    assert runs.loc[100000, "status"] == "timeout" and runs.loc[10, "status"] == "ok"


def test_dry_run_lists_cells_and_writes_nothing(tmp_path, run_cli):
    spec = write_spec(tmp_path, seeds=[0, 1], matrix={"critic.width": [8, 16, 32]})
    out = run_cli("run", spec, "--dry-run")
    assert out.returncode == 0 and "6 cells" in out.stdout and "critic.width" in out.stdout
    assert not (tmp_path / "results").exists()


def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, run_cli):
    spec = write_spec(tmp_path, base=tiny_base(loss={"name": "wgan-gp", "clip_value": 0.01}))
    out = run_cli("run", spec)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "loss.clip_value" in out.stderr and spec in out.stderr
    assert not (tmp_path / "results").exists()
