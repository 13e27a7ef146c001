"""``python -m bench.run`` on image specs (bench/run.py): a tiny end-to-end MNIST run, clear errors for
missing data and for --device cuda without a GPU, the spec's data_root and $BENCH_DATA."""

import os

import pytest
import torch
import yaml

from bench import store
from bench.data.images import DATA_ENV
from bench.run import main
from tests.conftest import tiny_base

TINY = {
    "name": "tiny_images",
    "base": {
        "dataset": {"name": "mnist", "source": "t10k", "image_size": 16},
        "generator": {"arch": "dcgan", "ngf": 4},
        "critic": {"arch": "dcgan", "ndf": 4},
        "loss": {"name": "wgan"},
        "train": {"generator_iters": 4, "batch_size": 16, "n_critic": 1},
        "eval": {"every": 2, "n_samples": 200, "snapshot_samples": 9,
                 "metrics": ["fid", "kid", "inception_score", "w_estimate"]},
    },
}


def write_spec(tmp_path, spec: dict):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_tiny_mnist_run_stores_image_metrics_feature_space_and_grids(tmp_path, mnist_files):
    results = tmp_path / "results"
    code = main([str(write_spec(tmp_path, TINY)), "--results-dir", str(results), "--workers", "1", "--quiet",
                 "--device", "cpu"])
    assert code == 0
    runs = store.load(results / "tiny_images")["runs"]
    row = runs.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["feature_space"] in ("lenet-mnist[t10k-seed0:5000-9999]", "inception-v3-compat")
    assert row["fid"] > 0 and row["kid"] == row["kid"] and row["inception_score"] >= 1
    grids = sorted((results / "tiny_images" / "samples" / row["cell_id"]).glob("*.png"))
    assert [g.name for g in grids] == ["iter_00000002.png", "iter_00000004.png"]


def test_missing_data_set_is_exit_2_with_one_line_and_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "empty"))
    results = tmp_path / "results"
    assert main([str(write_spec(tmp_path, TINY)), "--results-dir", str(results), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MNIST test set (source t10k) not found") and str(tmp_path / "empty") in err
    assert len(err.splitlines()) == 1 and not results.exists()


def test_a_run_never_writes_the_data_root_into_os_environ(tmp_path, monkeypatch):
    """The spec's data_root reaches the run's workers, not the caller's process (nor later tests)."""
    monkeypatch.delenv(DATA_ENV, raising=False)
    written = []
    setitem = type(os.environ).__setitem__
    monkeypatch.setattr(type(os.environ), "__setitem__", lambda env, key, value: (written.append(key),
                                                                                   setitem(env, key, value)))
    images = write_spec(tmp_path, {**TINY, "data_root": "nowhere"})
    assert main([str(images), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 2  # no MNIST there
    toy = tmp_path / "toy.yaml"
    toy.write_text(yaml.safe_dump({"name": "toy", "data_root": "nowhere", "base": tiny_base()}))
    assert main([str(toy), "--results-dir", str(tmp_path / "r"), "--workers", "1", "--quiet"]) == 0
    assert DATA_ENV not in written and DATA_ENV not in os.environ  # (libraries set their own on import)


def test_a_dry_run_calibrates_with_the_spec_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV, raising=False)
    spec = write_spec(tmp_path, {**TINY, "data_root": "nowhere"})
    assert main([str(spec), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("no run-time estimate: calibration failed (DataNotFound: ")
    assert str(tmp_path / "nowhere") in last


def test_spec_data_root_is_relative_to_the_spec_and_bench_data_wins(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV, raising=False)
    spec = write_spec(tmp_path, {**TINY, "data_root": "dir_named_in_spec"})
    assert main([str(spec), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 2
    assert str(tmp_path / "dir_named_in_spec") in capsys.readouterr().err
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "dir_named_in_env"))
    assert main([str(spec), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "dir_named_in_env") in err and "dir_named_in_spec" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    spec = write_spec(tmp_path, {**TINY, "base": {**TINY["base"], "dataset": {"name": "digits", "image_size": 16}}})
    assert main([str(spec), "--results-dir", str(tmp_path / "r"), "--device", "cuda", "--quiet"]) == 2
    assert "--device cuda" in capsys.readouterr().err
