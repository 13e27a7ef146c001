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
                 train={"generator_iters": 50, "batch_size": 32},
                 eval={"every": 25, "n_samples": 100, "w1_samples": 50})
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


def identical_runs(a, b) -> bool:
    """Bitwise the same run: every curve value (NaN where NaN), the final samples and the status."""
    return a.status == b.status and same_curves(a, b) and a.samples.tobytes() == b.samples.tobytes()


# A cell's numbers may not depend on how it was scheduled: alone, stacked with its seeds or stacked with
# other configs (bench.ensemble.per_member). 300 generator steps: enough for any rounding difference to
# grow into a visible one (training amplifies it), with and without a batch-norm critic.
INVARIANCE = dict(generator={"width": 16}, eval={"every": 150, "n_samples": 256, "w1_samples": 100},
                  train={"generator_iters": 300, "batch_size": 32})


@pytest.mark.slow
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan", "wgan-gp"])
def test_a_cell_trains_bitwise_the_same_alone_and_stacked_with_its_seeds(loss, batchnorm):
    cfg = config(**INVARIANCE,
                 loss={"name": loss, "allow_batchnorm_critic": True} if loss == "wgan-gp" else {"name": loss},
                 critic={"width": 16, "batchnorm": batchnorm})
    alone = [train(cfg, seed) for seed in (0, 1, 2)]
    stacked = train_ensemble(cfg, [0, 1, 2])
    for single, member in zip(alone, stacked, strict=True):
        assert member.ensemble_size == 3 and identical_runs(single, member)
    assert identical_runs(alone[1], train_ensemble(cfg, [1, 2])[0])  # another place in another stack
    assert not same_curves(stacked[0], stacked[1])  # and the members are different runs


def test_a_cells_threads_are_its_own_not_the_callers():
    cfg = config(loss={"name": "wgan-gp"}, generator={"width": 64}, critic={"width": 64},
                 train={"generator_iters": 30, "batch_size": 256})
    torch.set_num_threads(2)
    try:
        two = train(cfg, seed=0)
    finally:
        torch.set_num_threads(1)
    assert identical_runs(two, train(cfg, seed=0)) and torch.get_num_threads() == 1  # restored


@pytest.mark.slow
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "bn"])
def test_a_cell_trains_bitwise_the_same_stacked_with_other_configs(batchnorm):
    configs = [config(**INVARIANCE, loss={"name": name}, critic={"width": 16, "batchnorm": batchnorm})
               for name in ("minimax", "minimax", "nonsaturating", "nonsaturating")]
    seeds = [0, 1, 0, 1]
    stacked = train_ensemble(configs, seeds)
    for cfg, seed, member in zip(configs, seeds, stacked, strict=True):
        assert member.ensemble_size == 4 and identical_runs(train(cfg, seed), member)
    assert not same_curves(stacked[0], stacked[2])  # same seed, other generator loss: another run


def test_an_ensemble_refuses_members_that_differ_beyond_the_loss():
    penalties = [config(loss={"name": "wgan-gp", "gp_lambda": gp_lambda}) for gp_lambda in (1.0, 10.0)]
    with pytest.raises(ValueError, match="clipping, gradient penalty or family"):
        train_ensemble(penalties, [0, 0])
    gan = config(loss={"name": "minimax"})
    with pytest.raises(ValueError, match="differ in their loss only"):
        train_ensemble([gan, config(loss={"name": "minimax"}, train={"batch_size": 16})], [0, 0])


def test_an_ensemble_records_divergence_per_member_as_separate_runs_do():
    cfg = config(loss={"name": "wgan"}, optimizer={"name": "sgd", "lr": 1e30},
                 train={"generator_iters": 50, "batch_size": 32},
                 eval={"every": 25, "n_samples": 100, "w1_samples": 50})
    separate = [train(cfg, seed) for seed in (0, 1)]
    stacked = train_ensemble(cfg, [0, 1])
    assert [(r.status, r.diverged_at, r.generator_iters) for r in stacked] == \
        [(r.status, r.diverged_at, r.generator_iters) for r in separate]


def test_stacked_members_share_nothing():
    from bench.ensemble import stack
    from bench.models.mlp import MLPCritic, MLPCriticParams

    stacked = stack([MLPCritic(MLPCriticParams(width=8, batchnorm=True), (2,)) for _ in range(2)])
    with torch.no_grad():
        stacked.layers[0].weight[0] = math.nan  # member 0 broken: member 1 must not notice
    out = stacked(torch.randn(2, 4, 2))
    out.sum().backward()
    assert out[0].isnan().all() and out[1].isfinite().all()
    grads = {name: p.grad for name, p in stacked.named_parameters()}
    assert grads["layers.0.weight"][1].isfinite().all() and grads["layers.3.weight"][1].isfinite().all()
    assert grads["layers.1.weight"][1].isfinite().all()  # batch norm: member 1's features


def test_bf16_reaches_the_outcome_of_fp32():
    # 8 Gaussians from W1 ~ 1.1 at initialization. Past a few hundred steps one seed's trajectory under bf16
    # and fp32 part ways (mode hopping is chaotic), so the outcome compared is the mean over four seeds.
    base = dict(dataset={"name": "8gaussians"}, generator={"width": 64}, critic={"width": 64},
                optimizer={"lr": 1e-3}, eval={"every": 300, "n_samples": 1000, "w1_samples": 1000})
    finals = {}
    for precision in ("fp32", "bf16"):
        cfg = config(**base, train={"generator_iters": 300, "batch_size": 128, "precision": precision})
        finals[precision] = [r.final for r in train_ensemble(cfg, [0, 1, 2, 3])]
    w1 = {p: sum(f["w1_exact"] for f in finals[p]) / 4 for p in finals}
    assert w1["fp32"] < 0.5 and w1["bf16"] == pytest.approx(w1["fp32"], rel=0.15)
    modes = {p: sum(f["modes_captured"] for f in finals[p]) / 4 for p in finals}
    assert abs(modes["bf16"] - modes["fp32"]) <= 2


# The options of the published 25-Gaussians setups (ablations/paper/pacgan_grid.yaml, veegan_grid.yaml) keep a
# cell's numbers independent of its stack too: activations without parameters act within each member's features.
GRID_OPTIONS = {
    "tanh-orthogonal": dict(
        generator={"width": 16, "latent_dim": 5, "activation": "tanh", "init": "orthogonal", "init_gain": 1.4},
        critic={"width": 16, "activation": "tanh", "init": "orthogonal", "init_gain": 1.4},
        loss={"name": "nonsaturating"}),
    "maxout-packed-bn-generator": dict(
        generator={"width": 16, "batchnorm": True, "bias": False, "init": "normal_0.02"},
        critic={"width": 8, "activation": "maxout", "maxout_pieces": 3, "init": "normal_0.02", "pack": 2},
        loss={"name": "nonsaturating"}, optimizer={"name": "adam", "generator_lr": 1e-3, "critic_lr": 1e-4}),
    "leaky-no-bias-penalty": dict(
        generator={"width": 16, "activation": "leaky_relu"},
        critic={"width": 16, "activation": "leaky_relu", "bias": False},
        loss={"name": "wgan-gp"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("options", GRID_OPTIONS.values(), ids=list(GRID_OPTIONS))
def test_a_cell_with_the_grid_options_trains_bitwise_the_same_alone_and_stacked(options):
    cfg = config(**{**INVARIANCE, **options})
    alone = [train(cfg, seed) for seed in (0, 1, 2)]
    stacked = train_ensemble(cfg, [0, 1, 2])
    for single, member in zip(alone, stacked, strict=True):
        assert member.ensemble_size == 3 and identical_runs(single, member)
    assert identical_runs(alone[1], train_ensemble(cfg, [1, 2])[0])
    assert not same_curves(stacked[0], stacked[1])


def test_a_packed_critic_sees_batch_size_packs_of_pack_samples(monkeypatch):
    from bench.models import mlp

    shapes = []

    def recording(x, pack):
        shapes.append(tuple(mlp_packed(x, pack).shape))
        return mlp_packed(x, pack)

    mlp_packed = mlp.packed
    monkeypatch.setattr(mlp, "packed", recording)
    cfg = config(loss={"name": "nonsaturating"}, critic={"width": 16, "pack": 4}, dataset={"name": "25gaussians"},
                 train={"generator_iters": 2, "batch_size": 32}, eval={"every": 2, "n_samples": 200, "w1_samples": 100})
    result = train(cfg, seed=0)
    assert result.status == "ok" and result.samples.shape == (200, 2)
    assert shapes[0] == (1, 2 * 32, 8)  # real and generated: 32 packs each of 4 concatenated 2-D samples
    assert (1, 32, 8) in shapes  # the generator step: 32 packs of generated samples
