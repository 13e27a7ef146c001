import math

import pytest
import torch

from bench.data import DATASETS
from bench.spec import resolve_config
from bench.train import Hooks, train, train_ensemble
from tests.conftest import tiny_base


def config(**overrides):
    return resolve_config(tiny_base(**overrides))


def curve_values(result):
    return [(i, metric, value) for i, _, metric, value in result.curves]


def same_curves(a, b) -> bool:
    return all(
        (i, m) == (j, n) and (v == w or (math.isnan(v) and math.isnan(w)))
        for (i, m, v), (j, n, w) in zip(curve_values(a), curve_values(b), strict=True)
    )


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan", "nonsaturating"])
def test_same_cell_same_seed_gives_identical_curves(loss):
    cfg = config(loss={"name": loss})
    a, b = train(cfg, seed=3), train(cfg, seed=3)
    assert a.status == "ok" and same_curves(a, b)
    assert not same_curves(a, train(cfg, seed=4))


def test_curves_hold_diagnostics_and_metrics_on_the_eval_cadence():
    result = train(config(train={"generator_iters": 25, "batch_size": 32}), seed=0)
    iters = sorted({i for i, _, _ in curve_values(result)})
    assert iters == [10, 20, 25]  # every eval.every steps and at the end
    metrics = {m for _, m, _ in curve_values(result)}
    assert {"critic_loss", "generator_loss", "critic_input_grad_norm", "w_estimate", "w1_exact",
            "modes_captured", "hq_fraction", "mode_kl"} <= metrics
    assert {f"critic_grad_norm.layer_{i:02d}" for i in range(4)} <= metrics  # one per linear layer
    assert result.generator_iters == 25 and result.samples.shape == (200, 2)
    assert sorted(result.snapshots) == [10, 20, 25]


def test_nan_ends_the_cell_as_diverged_with_its_iteration():
    cfg = config(loss={"name": "wgan"}, optimizer={"name": "sgd", "lr": 1e30},
                 train={"generator_iters": 50, "batch_size": 32}, eval={"every": 25, "n_samples": 100, "w1_samples": 50})
    result = train(cfg, seed=0)
    assert result.status == "diverged"
    assert 1 <= result.diverged_at <= 25 and result.generator_iters == 25


def test_weight_clipping_holds_after_training(tmp_path):
    ckpt = tmp_path / "c.pt"
    cfg = config(loss={"name": "wgan", "clip_value": 0.02}, optimizer={"lr": 1e-2},
                 train={"generator_iters": 10, "batch_size": 32, "checkpoint_every": 10})
    train(cfg, seed=0, hooks=Hooks(checkpoint_path=ckpt))
    critic = torch.load(ckpt, weights_only=True)["critic"]
    largest = max(t.abs().max().item() for t in critic.values())
    assert largest == pytest.approx(0.02)


def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path):
    cfg = config(train={"generator_iters": 30, "batch_size": 32, "checkpoint_every": 10})
    uninterrupted = train(cfg, seed=0)
    ckpt = tmp_path / "cell.pt"
    first_part = {**cfg, "train": {**cfg["train"], "generator_iters": 20}}  # stands in for a killed run
    train(first_part, seed=0, hooks=Hooks(checkpoint_path=ckpt))
    resumed = train(cfg, seed=0, hooks=Hooks(checkpoint_path=ckpt))
    assert same_curves(uninterrupted, resumed)


def test_on_eval_can_stop_a_run_as_pruned():
    seen = []

    def prune_at_20(step, values):
        seen.append((step, "w_estimate" in values))
        return step >= 20

    result = train(config(train={"generator_iters": 40, "batch_size": 32}), seed=0, hooks=Hooks(on_eval=prune_at_20))
    assert result.status == "pruned" and result.generator_iters == 20 and seen == [(10, True), (20, True)]


def test_fixed_generator_trains_only_the_critic():
    cfg = config(generator={"width": 16, "fixed": True}, dataset={"name": "swissroll"},
                 eval={"every": 10, "n_samples": 200, "metrics": ["w_estimate", "w1_exact"]})
    result = train(cfg, seed=0)
    metrics = {m for _, m, _ in curve_values(result)}
    assert "generator_loss" not in metrics and "w_estimate" in metrics
    # "Generated" samples are the held-out real samples + N(0, I).
    data = DATASETS.entry("swissroll").obj(DATASETS.entry("swissroll").params(), 0)
    noise = torch.from_numpy(result.samples) - data.reference(200)
    assert noise.mean().abs() < 0.15 and noise.std().item() == pytest.approx(1.0, abs=0.1)


def close_curves(a, b, rel: float) -> bool:
    return all(
        (i, m) == (j, n) and (math.isnan(v) and math.isnan(w) or abs(v - w) <= rel * max(abs(v), abs(w), 1e-3))
        for (i, m, v), (j, n, w) in zip(curve_values(a), curve_values(b), strict=True)
    )


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan", "nonsaturating"])
def test_an_ensemble_gives_each_seed_the_curves_of_its_own_run(loss):
    cfg = config(loss={"name": loss}, train={"generator_iters": 30, "batch_size": 32})
    separate = [train(cfg, seed) for seed in (0, 1, 2)]
    stacked = train_ensemble(cfg, [0, 1, 2])
    for alone, member in zip(separate, stacked, strict=True):
        assert member.status == "ok" and member.ensemble_size == 3
        assert close_curves(alone, member, rel=1e-4)  # float rounding of batched vs single matmuls only
        assert torch.allclose(torch.from_numpy(alone.samples), torch.from_numpy(member.samples), atol=1e-4)
    assert not close_curves(stacked[0], stacked[1], rel=1e-2)  # and the members are different runs


def test_members_with_losses_of_one_structure_train_together_as_they_would_alone():
    configs = [config(loss={"name": name}, train={"generator_iters": 30, "batch_size": 32})
               for name in ("minimax", "minimax", "nonsaturating")]
    separate = [train(cfg, seed) for cfg, seed in zip(configs, (0, 1, 0))]
    stacked = train_ensemble(configs, [0, 1, 0])
    for alone, member in zip(separate, stacked, strict=True):
        assert member.status == "ok" and member.ensemble_size == 3
        assert close_curves(alone, member, rel=1e-4)
    assert not close_curves(stacked[0], stacked[2], rel=1e-2)  # same seed, other generator loss: another run


def test_an_ensemble_refuses_members_that_differ_beyond_the_loss():
    penalties = [config(loss={"name": "wgan-gp", "gp_lambda": gp_lambda}) for gp_lambda in (1.0, 10.0)]
    with pytest.raises(ValueError, match="clipping, gradient penalty or family"):
        train_ensemble(penalties, [0, 0])
    gan = config(loss={"name": "minimax"})
    with pytest.raises(ValueError, match="differ in their loss only"):
        train_ensemble([gan, config(loss={"name": "minimax"}, train={"batch_size": 16})], [0, 0])


def test_an_ensemble_keeps_batch_norm_statistics_per_member():
    # Batch norm couples the samples of a batch, so pooling members' batches would show at once; over a few
    # steps only float rounding separates the two (2e-5 here). A small SGD step, not Adam: the biases before
    # a batch norm have gradients of ~0 (rounding), which Adam scales up to full steps of machine-dependent
    # sign (0.2 % apart on one CPU, 0.1 % on another); large steps make this BN critic chaotic.
    cfg = config(generator={"width": 16, "batchnorm": True}, critic={"width": 16, "batchnorm": True},
                 optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.5},
                 train={"generator_iters": 2, "batch_size": 32}, eval={"every": 1, "n_samples": 64, "w1_samples": 50})
    for alone, member in zip([train(cfg, 0), train(cfg, 1)], train_ensemble(cfg, [0, 1]), strict=True):
        assert close_curves(alone, member, rel=1e-3)


def test_an_ensemble_records_divergence_per_member_as_separate_runs_do():
    cfg = config(loss={"name": "wgan"}, optimizer={"name": "sgd", "lr": 1e30},
                 train={"generator_iters": 50, "batch_size": 32}, eval={"every": 25, "n_samples": 100, "w1_samples": 50})
    separate = [train(cfg, seed) for seed in (0, 1)]
    stacked = train_ensemble(cfg, [0, 1])
    assert [(r.status, r.diverged_at, r.generator_iters) for r in stacked] == \
        [(r.status, r.diverged_at, r.generator_iters) for r in separate]


def test_stacked_members_share_nothing():
    from bench.models import stack
    from bench.models.mlp import MLPCritic, MLPCriticParams

    stacked = stack([MLPCritic(MLPCriticParams(width=8, batchnorm=True), (2,)) for _ in range(2)])
    with torch.no_grad():
        stacked.layers[0].weight[0] = math.nan  # member 0 broken: member 1 must not notice
    out = stacked(torch.randn(2, 4, 2))
    out.sum().backward()
    assert out[0].isnan().all() and out[1].isfinite().all()
    grads = {name: p.grad for name, p in stacked.named_parameters()}
    assert grads["layers.0.weight"][1].isfinite().all() and grads["layers.3.weight"][1].isfinite().all()
    assert grads["layers.1.weight"][8:].isfinite().all()  # batch norm: member 1's 8 features


def test_bf16_reaches_the_outcome_of_fp32():
    # 8 Gaussians from W1 ~ 1.1 at initialization; the mode count of so short a run is noisy, W1 is not.
    base = dict(dataset={"name": "8gaussians"}, generator={"width": 64}, critic={"width": 64},
                optimizer={"lr": 1e-3}, eval={"every": 300, "n_samples": 1000, "w1_samples": 200})
    finals = {}
    for precision in ("fp32", "bf16"):
        cfg = config(**base, train={"generator_iters": 300, "batch_size": 128, "precision": precision})
        finals[precision] = [r.final for r in train_ensemble(cfg, [0, 1])]
    for fp32, bf16 in zip(finals["fp32"], finals["bf16"], strict=True):
        assert fp32["w1_exact"] < 0.5 and bf16["w1_exact"] == pytest.approx(fp32["w1_exact"], rel=0.15)
    modes = {p: sum(f["modes_captured"] for f in finals[p]) / 2 for p in finals}
    assert abs(modes["bf16"] - modes["fp32"]) <= 2
