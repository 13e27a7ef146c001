"""bench/perf.py and the micro benchmarks of the training step's parts.

The ``benchmark`` tests run once as plain tests (``--benchmark-disable`` in pyproject.toml); time them with
``pytest tests/test_perf.py --benchmark-enable``.
"""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from rich.console import Console

from bench import perf, reference
from bench.ensemble import FlatParameters, stack
from bench.losses import LOSSES, gradient_penalty
from bench.metrics.modes import mode_metrics
from bench.models.mlp import MLPCritic, MLPCriticParams
from bench.optim import build_optimizer
from bench.registry import Registry

K, B, WIDTH = 4, 256, 128  # four seeds of the quickstart's WGAN-GP critic


@pytest.fixture
def stacked_critic():
    torch.manual_seed(0)
    return stack([MLPCritic(MLPCriticParams(width=WIDTH), (2,)) for _ in range(K)])


@pytest.fixture
def batches():
    g = torch.Generator().manual_seed(0)
    return torch.randn(K, B, 2, generator=g), torch.randn(K, B, 2, generator=g), torch.rand(K, B, 1, generator=g)


@pytest.mark.parametrize("input_gradient", ["written out", "autograd"])
def test_gradient_penalty_benchmark(benchmark, stacked_critic, batches, input_gradient):
    """The penalty and its backward, with the stacked MLP's written-out input gradient or through
    autograd's double backward of the critic run layer by layer."""
    real, fake, eps = batches
    if input_gradient == "autograd":
        stacked_critic.relu_mlp = False

    def penalty_and_backward():
        penalty = gradient_penalty(stacked_critic, real, fake, eps, batch_dims=2)
        penalty.sum().backward()
        return penalty

    penalty = benchmark(penalty_and_backward)
    assert penalty.shape == (K,) and torch.isfinite(penalty).all()
    assert stacked_critic.layers[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("passes", ["written out", "layer by layer"])
def test_critic_step_benchmark(benchmark, stacked_critic, batches, precision, passes):
    """One WGAN-GP critic step of a 4-seed stack (Algorithm 1 lines 4-7), as ``bench.train`` runs it: the
    stacked MLP's written-out passes, or its layers one by one through autograd."""
    real, fake, eps = batches
    stacked_critic.relu_mlp = passes == "written out"
    cfg = perf.toy_config({"name": "wgan-gp"}, WIDTH)
    loss = LOSSES.build(cfg["loss"], "name")
    params = FlatParameters(stacked_critic, len(stacked_critic.members))
    opt = build_optimizer(cfg["optimizer"], params.members, "critic")
    weights = [p for name, p in stacked_critic.named_parameters() if name.endswith("weight")]
    before = [w.detach().clone() for w in weights]

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            scores = stacked_critic(torch.cat([real, fake], dim=1))
            critic_loss = loss.critic(scores[:, :B], scores[:, B:])
            critic_loss = critic_loss + loss.gp_lambda * gradient_penalty(stacked_critic, real, fake, eps, batch_dims=2)
        critic_loss.sum().backward()
        params.gather_grads()
        opt.step()
        return critic_loss

    critic_loss = benchmark(step)
    assert critic_loss.shape == (K,) and torch.isfinite(critic_loss).all()
    assert all(not torch.equal(a, b) for a, b in zip(before, weights))  # (the last bias has no gradient in WGAN)


def test_mode_counting_benchmark(benchmark):
    data = perf.DATASETS.get("25gaussians")(perf.DATASETS.entry("25gaussians").params(), 0)
    centers, std = data.modes
    out = benchmark(mode_metrics, data.sample(2500), centers, std)
    assert out["modes_captured"] == 25 and out["hq_fraction"] > 0.98  # P(|x - mu| <= 3 std) = 1 - e^-4.5 in 2-D


def test_the_speed_cases_are_the_issues_configs():
    cases = {(c["case"], c["variant"]) for c in perf.speed_cases(quick=True)}
    assert {("toy wgan-gp w512", "harness bf16"), ("toy wgan-gp w128", "harness fp32, 4 seeds stacked"),
            ("toy wgan-clip w512", "harness fp32"), ("dcgan 32x32 wgan", "harness fp32")} <= cases
    w512 = next(c for c in perf.speed_cases(quick=True) if c["case"] == "toy wgan-gp w512")["config"]
    assert (w512["critic"]["width"], w512["train"]["batch_size"], w512["train"]["n_critic"]) == (512, 256, 5)
    assert w512["optimizer"]["name"] == "adam"


def tiny_case(**fields) -> dict:
    """A speed case that takes a fraction of a second per round."""
    config = perf.toy_config({"name": "wgan-gp"}, 16, batch_size=32, n_critic=2)
    return {"case": "tiny wgan-gp w16", "config": config, "iters": 4, "seeds": [0], "variant": "harness fp32",
            **fields}


def test_reference_and_harness_train_the_same_steps_of_the_same_config(monkeypatch):
    cfg = tiny_case()["config"]
    draws = []  # the reference's training batches
    build = Registry.build

    def counting(registry, block, key, *args):
        built = build(registry, block, key, *args)
        if registry is reference.DATASETS:
            sample = built.sample
            built.sample = lambda n: draws.append(n) or sample(n)
        return built

    with monkeypatch.context() as patch:  # the reference's data sets only, not the harness's
        patch.setattr(Registry, "build", counting)
        seconds, generator, data = perf.reference_train(cfg, 0, iters=10, warmup=1)
    rate, results = perf.harness_rate(cfg, 10, [0, 1])
    assert [r.status for r in results] == ["ok", "ok"] and [r.generator_iters for r in results] == [11, 11]
    assert draws == [32] * 11 * 2  # 1 + 10 generator steps of n_critic = 2 critic steps, batch 32: as the harness
    assert math.isfinite(seconds) and seconds > 0 and math.isfinite(rate) and rate > 0
    modes = perf.final_modes(generator, data, 0, n=200)
    assert 0 <= modes["modes_captured"] <= 8 and 0 <= modes["hq_fraction"] <= 1


def test_speed_rows_pair_each_variant_with_the_reference(monkeypatch):
    monkeypatch.setattr(perf, "speed_cases", lambda quick: [tiny_case(), tiny_case(variant="harness fp32, 2 seeds",
                                                                                   seeds=[0, 1])])
    rows = perf.run_speed(quick=True, rounds=2, console=Console(quiet=True))
    assert [(r["case"], r["variant"]) for r in rows] == [("tiny wgan-gp w16", "harness fp32"),
                                                         ("tiny wgan-gp w16", "harness fp32, 2 seeds")]
    for r in rows:
        rates = [r["iters_per_s"], r["reference_iters_per_s"], r["ratio"], r["ratio_min"], r["ratio_max"]]
        assert all(math.isfinite(x) and x > 0 for x in rates), r
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"] and r["rounds"] == 2


def test_one_round_ratio_is_the_harness_rate_over_the_reference_rate(monkeypatch):
    monkeypatch.setattr(perf, "speed_cases", lambda quick: [tiny_case()])
    (row,) = perf.run_speed(quick=True, rounds=1, console=Console(quiet=True))
    assert row["ratio"] == pytest.approx(row["iters_per_s"] / row["reference_iters_per_s"])
    assert row["ratio_min"] == row["ratio"] == row["ratio_max"]


HISTORY_COLUMNS = {"measured_at", "quick", "threads", "cpu_count", "torch_version", "bench_version", "git_sha", "host",
                   "case", "variant", "iters_per_s", "reference_iters_per_s", "ratio", "ratio_min", "ratio_max",
                   "rounds", "cpu_steal", "samples_per_s"}


def test_history_parquet_gets_every_row_appended(monkeypatch, tmp_path):
    monkeypatch.setattr(perf, "speed_cases", lambda quick: [tiny_case()])
    monkeypatch.setattr(perf, "run_metrics", lambda console: [{"case": "metric", "variant": "harness",
                                                               "samples_per_s": 1000.0}])
    out = tmp_path / "perf" / "history.parquet"
    args = ["--quick", "--rounds", "1", "--no-outcome", "--out", str(out)]
    assert perf.main(args) == 0
    first = pd.read_parquet(out)
    assert HISTORY_COLUMNS <= set(first.columns)
    assert first["case"].tolist() == ["tiny wgan-gp w16", "metric"]
    assert first["rounds"].iloc[0] == 1 and first["quick"].all() and (first["threads"] >= 1).all()
    assert perf.main(args) == 0
    both = pd.read_parquet(out)
    assert len(both) == 2 * len(first) and both.head(len(first)).equals(first)


def test_steal_is_a_share_of_cpu_time():
    since = perf.steal_meter()
    sum(i * i for i in range(200_000))
    share = since()
    if Path("/proc/stat").is_file():  # Linux: always measured
        assert 0.0 <= share <= 1.0
    else:
        assert math.isnan(share)


@pytest.mark.parametrize("flag, value", [("--rounds", "0"), ("--rounds", "-1"), ("--threads", "0")])
def test_a_bad_count_is_a_one_line_error_and_measures_nothing(run_cli, tmp_path, flag, value):
    out = tmp_path / "history.parquet"
    proc = run_cli("perf", flag, value, "--out", str(out), timeout=60)
    assert proc.returncode == 2 and not out.exists()
    assert flag in proc.stderr.strip().splitlines()[-1] and "toy" not in proc.stdout
