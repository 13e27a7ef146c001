"""bench/perf.py and the micro benchmarks of the training step's parts.

The ``benchmark`` tests run once as plain tests (``--benchmark-disable`` in pyproject.toml); time them with
``pytest tests/test_perf.py --benchmark-enable``.
"""

import math

import pytest
import torch

from bench import perf
from bench.losses import LOSSES, gradient_penalty
from bench.metrics.modes import mode_metrics
from bench.models import stack
from bench.models.mlp import MLPCritic, MLPCriticParams
from bench.optim import FlatParameters, build_optimizer
from bench.train import build_component

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
    loss = build_component(LOSSES, cfg["loss"], "name")
    params = FlatParameters(stacked_critic)
    opt = build_optimizer(cfg["optimizer"], [params.flat], "critic")
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


def test_reference_and_harness_train_the_same_small_config():
    cfg = perf.toy_config({"name": "wgan-gp"}, 16, batch_size=32)
    seconds, generator, data = perf.reference_train(cfg, 0, iters=5)
    assert seconds > 0 and set(perf.final_modes(generator, data, 0, n=200)) >= {"modes_captured", "hq_fraction"}
    rate, results = perf.harness_rate(cfg, 10, [0, 1])
    assert rate > 0 and [r.status for r in results] == ["ok", "ok"] and results[0].generator_iters == 11


def test_steal_is_a_share_of_cpu_time():
    since = perf.steal_meter()
    sum(i * i for i in range(200_000))
    share = since()
    assert math.isnan(share) or 0.0 <= share <= 1.0


@pytest.mark.parametrize("flag, value", [("--rounds", "0"), ("--rounds", "-1"), ("--threads", "0")])
def test_a_bad_count_is_a_one_line_error_and_measures_nothing(run_cli, tmp_path, flag, value):
    out = tmp_path / "history.parquet"
    proc = run_cli("perf", flag, value, "--out", str(out), timeout=60)
    assert proc.returncode == 2 and not out.exists()
    assert flag in proc.stderr.strip().splitlines()[-1] and "toy" not in proc.stdout
