"""``bench.run --dry-run``'s estimate of the run time (bench/estimate.py)."""

import socket

import numpy as np
import pytest
import yaml

from bench import estimate, store
from bench.estimate import steady_steps
from bench.run import main
from bench.spec import expand, parse_spec, resolve_config
from bench.train import RunResult, critic_steps
from tests.conftest import tiny_base


def cells(seeds=(0, 1), **matrix):
    return expand(parse_spec({"name": "est", "base": tiny_base(), "seeds": list(seeds), "matrix": matrix or None}))


def store_run(results, study: str, cell, wall_s: float, steps: int, members: int = 1, host: str | None = None):
    """A stored ok run of ``cell`` in ``results/<study>/runs.parquet``."""
    result = RunResult("ok", steps, "2026-01-01T00:00:00+00:00", wall_s, wall_s / 2, ensemble_size=members,
                       samples=np.zeros((2, 2), np.float32))
    store.write_cell(results / study, cell, result, {"host": host or socket.gethostname()})
    store.write_merged(results / study)


def test_dry_run_prints_a_calibrated_estimate_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    base = tiny_base(train={"generator_iters": 2000, "batch_size": 32})  # a dry run trains 10 steps of a config
    spec.write_text(yaml.safe_dump({"name": "est", "base": base, "seeds": [0, 1],
                                    "matrix": {"loss.name": ["wgan", "wgan-gp"]}}))
    results = tmp_path / "results"
    assert main([str(spec), "--dry-run", "--workers", "2", "--results-dir", str(results)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("estimated run time ") and last.endswith(
        " s (4 cells on 2 workers; calibrated: 10 generator steps of each of 2 configs, evaluation not included)")
    assert 0.5 < float(last.split()[3]) < 600 and not results.exists()


def test_stored_runs_of_this_host_give_the_rate_of_their_shape(tmp_path):
    todo = cells(seeds=(0, 1, 2))  # 20 generator steps each
    other = expand(parse_spec({"name": "old", "base": tiny_base(optimizer={"lr": 0.01}, train={"generator_iters": 100,
                                                                                             "batch_size": 32})}))[0]
    store_run(tmp_path, "old", other, wall_s=10.0, steps=100, members=2)  # 0.05 s per step and cell
    store_run(tmp_path, "elsewhere", todo[0], wall_s=1000.0, steps=20, host="another-host")  # not this machine's
    got = estimate.estimate(todo, tmp_path, workers=2, device="cpu")
    assert got.seconds == pytest.approx(2 * 20 * 0.05)  # 3 cells of 1 s on 2 workers
    assert str(got) == "estimated run time 2.0 s (3 cells on 2 workers; 1 config from stored runs on this host)"


def test_a_shape_is_what_the_time_per_step_depends_on():
    base = cells(seeds=(0,))[0].config
    same = expand(parse_spec({"name": "s", "base": tiny_base(optimizer={"lr": 0.5}, train={"generator_iters": 7,
                                                                                          "batch_size": 32}),
                              "seeds": [3]}))[0].config
    wider = cells(seeds=(0,), **{"critic.width": [64]})[0].config
    assert estimate.shape(base) == estimate.shape(same) != estimate.shape(wider)


def test_cells_are_dealt_out_costliest_first():
    assert estimate.makespan([2, 3, 2, 3, 2], workers=2) == 7
    assert estimate.makespan([5, 1, 1], workers=4) == 5


def test_nothing_to_run_and_too_many_shapes_to_calibrate(tmp_path):
    assert str(estimate.estimate([], tmp_path, None, "cpu")) == "estimated run time 0.0 s (every cell is stored)"
    many = cells(seeds=(0,), **{"critic.width": list(range(4, 4 + estimate.MAX_CALIBRATED + 1))})
    got = estimate.estimate(many, tmp_path, None, "cpu")
    assert got.seconds is None and str(got) == (f"no run-time estimate: {estimate.MAX_CALIBRATED + 1} configs have "
                                                f"no stored runs on this host (at most {estimate.MAX_CALIBRATED} are "
                                                "calibrated in a dry run)")


def test_a_config_that_cannot_be_calibrated_gives_no_estimate_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "empty"))
    base = {"dataset": {"name": "mnist", "source": "t10k", "image_size": 16}, "loss": {"name": "wgan"},
            "generator": {"arch": "dcgan", "ngf": 4}, "critic": {"arch": "dcgan", "ndf": 4}}
    got = estimate.estimate(expand(parse_spec({"name": "img", "base": base})), tmp_path, None, "cpu")
    assert got.seconds is None
    assert str(got).startswith("no run-time estimate: calibration failed (DataNotFound: MNIST test set (source t10k) "
                               f"not found: looked for {tmp_path / 'empty'}")


@pytest.mark.parametrize("iters", [1, 24, 25, 26, 500, 501, 1000, 1001, 2500])
def test_a_critic_warmup_counts_at_its_cost(iters):
    """The WGAN preset's 100-critic-step warm-up lengthens a cell by exactly the steps it adds."""
    config = resolve_config({"preset": "paper", "dataset": {"name": "25gaussians"}, "loss": {"name": "wgan"},
                             "train": {"generator_iters": iters}})
    assert config["train"]["critic_warmup"]
    steps = sum(critic_steps(config, s) + 1 for s in range(iters))
    assert steady_steps(config) == pytest.approx(steps / (config["train"]["n_critic"] + 1))
    assert steady_steps({**config, "train": {**config["train"], "critic_warmup": False}}) == iters
