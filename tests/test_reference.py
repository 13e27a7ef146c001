"""``bench.train`` against ``bench.reference``, the plain Algorithm 1 of each paper: same config, seed and
random streams, 50 generator steps; every parameter and batch-norm running statistic of the trained
generator and critic must agree to 1e-5, absolutely (max |harness - reference| <= 1e-5, no relative
slack), and so must the last critic and generator losses. ``pytest tests/test_reference.py -s`` prints each
case's largest difference.

The harness's weights are read from its checkpoint (``train.checkpoint_every`` + ``Hooks(checkpoint_path)``),
written after the last step. Not compared: batch norm's ``num_batches_tracked``, a counter the stacked
layers do not keep (the checkpoint's counts the evaluation's calls); with ``momentum`` set it is unused.

Every config sets the optimizer's ``eps`` to 1e-4 (the presets: 1e-8). Some parameters have a gradient that
is zero in exact arithmetic: a bias feeding batch norm, the bias of a unit that is on for every sample
under a Wasserstein loss (the loss ignores a constant added to every score), the generator's output bias
when the critic normalizes each batch on its own. Each loop computes that zero as rounding noise of its own
(WGAN-GP, first critic step: -7.45e-9 in the harness, 0 in the reference) and Adam or RMSProp divides it by
its own square root: with eps = 1e-8 that is a step of up to lr in a random direction, so the two drift
apart (WGAN-GP: 5e-4 after 50 steps; -log D with a batch-norm generator: 6e-4) with no difference in what
they compute. With eps = 1e-4 such a step is below lr * 1e-3 and the updates of every other parameter
(gradients of 1e-3 to 1e-1) stay Adam's and RMSProp's.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from bench import reference
from bench.spec import resolve_config
from bench.train import Hooks, train

STEPS = 50
TOLERANCE = 1e-5  # absolute


def toy_config(loss: str, generator_bn: bool = False, critic_bn: bool = False, critic_warmup: bool = False,
               steps: int = STEPS, init: str = "gan_toy", **loss_options) -> dict:
    """25 Gaussians, 4-layer width-32 MLPs (gan_toy.py's initialization unless ``init``), batch 64, fp32, the
    loss's toy preset with ``eps`` 1e-4."""
    return resolve_config({
        "preset": "toy",
        "dataset": {"name": "25gaussians"},
        "generator": {"arch": "mlp", "width": 32, "batchnorm": generator_bn, "init": init},
        "critic": {"arch": "mlp", "width": 32, "batchnorm": critic_bn, "init": init},
        "loss": {"name": loss, **loss_options},
        "optimizer": {"eps": 1e-4},
        "train": {"batch_size": 64, "generator_iters": steps, "checkpoint_every": steps,
                  "critic_warmup": critic_warmup},
        "eval": {"every": steps, "metrics": [], "n_samples": 64, "snapshot_samples": 0},
    })


def case(id: str, loss: str, **options):
    return pytest.param(toy_config(loss, **options), id=id)


CASES = [
    case("minimax", "minimax"),
    case("minimax-bn-generator", "minimax", generator_bn=True),
    case("minimax-bn-critic", "minimax", critic_bn=True, ),
    case("nonsaturating", "nonsaturating"),
    case("nonsaturating-bn-generator", "nonsaturating", generator_bn=True),
    case("nonsaturating-bn-critic", "nonsaturating", critic_bn=True, ),
    case("wgan", "wgan"),
    case("wgan-bn-generator", "wgan", generator_bn=True),
    case("wgan-bn-critic", "wgan", critic_bn=True),
    case("wgan-bn-both", "wgan", generator_bn=True, critic_bn=True),
    case("wgan-clip-before", "wgan", clip_when="before"),
    # On torch's initialization: with gan_toy's zero biases, at generator step 10 (after 1000 warm-up critic
    # steps) a hidden unit of this seed's critic dies in one loop one RMSProp step before the other (its bias then
    # frozen 4.1e-5 apart, one step of lr 5e-5), set off by differences below 1e-7 at step 9.
    case("wgan-critic-warmup", "wgan", critic_warmup=True, init="torch"),
    case("wgan-gp", "wgan-gp"),
    case("wgan-gp-lambda10", "wgan-gp", gp_lambda=10.0),
    case("wgan-gp-bn-generator", "wgan-gp", generator_bn=True),
]


def differences(saved: dict[str, Tensor], module: torch.nn.Module, network: str) -> dict[str, float]:
    """max |saved - module's| per state-dict entry, ``num_batches_tracked`` left out (see the docstring)."""
    expected = module.state_dict()
    assert saved.keys() == expected.keys()
    return {f"{network}.{name}": (value - expected[name]).abs().max().item()
            for name, value in saved.items() if not name.endswith("num_batches_tracked")}


@pytest.mark.parametrize("config", CASES)
def test_harness_and_reference_train_the_same_weights(config, tmp_path, request):
    checkpoint = tmp_path / "cell.pt"
    result = train(config, seed=0, hooks=Hooks(checkpoint_path=checkpoint))
    assert result.status == "ok" and result.generator_iters == STEPS
    harness = torch.load(checkpoint, weights_only=True)
    run = reference.train(config, seed=0)

    diffs = {**differences(harness["generator"], run.generator, "generator"),
             **differences(harness["critic"], run.critic, "critic")}
    diffs["critic_loss"] = abs(result.final["critic_loss"] - run.critic_losses[-1])
    diffs["generator_loss"] = abs(result.final["generator_loss"] - run.generator_losses[-1])
    worst = max(diffs, key=diffs.get)
    print(f"\n{request.node.callspec.id}: max |harness - reference| {diffs[worst]:.2g} ({worst})")
    over = {name: f"{diff:.2g}" for name, diff in diffs.items() if diff > TOLERANCE}
    assert not over, f"differ by more than {TOLERANCE}: {over}"


@pytest.mark.parametrize("change, message", [
    ({"loss": {"name": "lsgan"}}, "no loss 'lsgan'"),
    ({"generator": {"arch": "mlp", "fixed": True}}, "generator.fixed"),
    ({"train": {"precision": "bf16"}}, "fp32 only"),
])
def test_the_reference_refuses_what_it_does_not_implement(change, message):
    config = resolve_config({"preset": "toy", "dataset": {"name": "25gaussians"}, "loss": {"name": "wgan"}, **change})
    with pytest.raises(ValueError, match=message):
        reference.train(config, seed=0)


def test_the_reference_records_losses_and_a_clock_per_generator_step():
    run = reference.train(toy_config("wgan-gp", steps=3), seed=0)
    assert len(run.critic_losses) == len(run.generator_losses) == 3 and len(run.clock) == 4
    assert run.clock == sorted(run.clock)


def test_the_reference_refuses_a_packed_critic():
    from bench.reference import check_supported
    from bench.spec import resolve_config

    cfg = resolve_config({"dataset": {"name": "25gaussians"}, "loss": {"name": "nonsaturating"}, "critic": {"pack": 2}})
    with pytest.raises(ValueError, match="packed critic"):
        check_supported(cfg)
