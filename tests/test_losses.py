import math

import pytest
import torch
from torch import nn

from bench.ensemble import stack_losses
from bench.losses import LOSSES, clip_weights_, gradient_penalty
from bench.spec import resolve_config
from tests.conftest import tiny_base

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def build(name: str, **params):
    entry = LOSSES.entry(name)
    return entry.obj(entry.params(**params))


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_minimax_and_nonsaturating_on_hand_computed_values():
    # critic: -mean log D(real) - mean log(1 - D(fake)), D = sigmoid
    expected_critic = -(log_sigmoid(2.0) + log_sigmoid(-1.0)) / 2 - (log_sigmoid(-0.5) + log_sigmoid(3.0)) / 2
    for name in ("minimax", "nonsaturating"):
        assert build(name).critic(REAL, FAKE).item() == pytest.approx(expected_critic, rel=1e-6)
    # minimax G minimizes mean log(1 - D(G(z))); non-saturating G minimizes -mean log D(G(z))
    assert build("minimax").generator(FAKE).item() == pytest.approx((log_sigmoid(-0.5) + log_sigmoid(3.0)) / 2,
                                                                    rel=1e-6)
    assert build("nonsaturating").generator(FAKE).item() == pytest.approx(-(log_sigmoid(0.5) + log_sigmoid(-3.0)) / 2,
                                                                          rel=1e-6)


def test_wasserstein_losses_on_hand_computed_values():
    for name in ("wgan", "wgan-gp"):
        loss = build(name)
        # -(E f(x) - E f(G(z)))
        assert loss.critic(REAL, FAKE).item() == pytest.approx((0.5 - 3.0) / 2 - (2.0 - 1.0) / 2)
        assert loss.generator(FAKE).item() == pytest.approx(1.25)
        assert loss.family == "wasserstein"
    assert build("wgan", clip_value=0.05).clip_value == 0.05 and build("wgan").gp_lambda == 0
    assert build("wgan-gp", gp_lambda=3).gp_lambda == 3 and build("wgan-gp").clip_value is None


def test_lsgan_and_hinge_on_hand_computed_values():
    ls = build("lsgan")
    assert ls.critic(REAL, FAKE).item() == pytest.approx(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2)
    assert ls.generator(FAKE).item() == pytest.approx(0.5 * (0.25 + 16) / 2)
    hinge = build("hinge")
    assert hinge.critic(REAL, FAKE).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert hinge.generator(FAKE).item() == pytest.approx(1.25)


def test_weight_clipping_bounds_every_parameter():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(100)
    clip_weights_(critic.parameters(), 0.01)
    values = torch.cat([p.flatten() for p in critic.parameters()])
    assert values.abs().max().item() == pytest.approx(0.01)
    assert (values.abs() == 0.01).float().mean() > 0.5  # large weights pile up at +-c (WGAN-GP Fig. 1b)


@pytest.mark.parametrize("w,expected", [([3.0, 4.0], (5 - 1) ** 2), ([0.6, 0.8], 0.0), ([0.0, 0.5], 0.25)])
def test_gradient_penalty_of_a_linear_critic(w, expected):
    # f(x) = w.x + b has gradient w everywhere, so the penalty is (||w|| - 1)^2 whatever the interpolates.
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([w]))
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    eps = torch.rand(16, 1)
    assert gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, eps).item() == pytest.approx(expected, abs=1e-5)


def test_gradient_penalty_uses_interpolates_and_is_differentiable():
    # f(x) = ||x||^2 / 2 has gradient x: at x_hat = eps x + (1 - eps) y the penalty is (||x_hat|| - 1)^2.
    real, fake = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    x = torch.zeros(1, requires_grad=True)  # a parameter the penalty must reach
    critic = lambda inp: 0.5 * (inp**2).sum(1) + x  # noqa: E731
    gp = gradient_penalty(critic, real, fake, torch.tensor([[0.25]]))
    assert gp.item() == pytest.approx((0.5 - 1) ** 2)
    assert gp.requires_grad


def test_every_loss_has_paper_and_toy_presets_that_resolve():
    for entry in LOSSES:
        for preset in ("paper", "toy"):
            cfg = resolve_config({**tiny_base(), "preset": preset, "loss": {"name": entry.name}, "train": {}})
            assert cfg["loss"]["name"] == entry.name


def test_stacked_losses_give_each_member_its_own_loss():
    minimax, nonsaturating = build("minimax"), build("nonsaturating")
    members = [minimax, nonsaturating, nonsaturating, minimax]
    real, fake = torch.randn(4, 8), torch.randn(4, 8)
    stacked = stack_losses(members)
    assert torch.equal(stacked.generator(fake), torch.stack([loss.generator(f) for loss, f in zip(members, fake)]))
    assert torch.allclose(stacked.critic(real, fake),
                          torch.stack([loss.critic(r, f) for loss, r, f in zip(members, real, fake)]))
    with pytest.raises(ValueError, match="clipping"):
        stack_losses([build("wgan"), build("wgan-gp")])


def test_wgan_paper_preset_warms_the_critic_up_as_the_authors_code_does():
    from bench.spec import resolve_config
    from bench.train import critic_steps

    paper = resolve_config({"dataset": {"name": "25gaussians"}, "loss": {"name": "wgan"}})
    assert paper["train"]["critic_warmup"]
    assert [critic_steps(paper, g) for g in (0, 24, 25, 499, 500, 501)] == [100, 100, 5, 5, 100, 5]
    toy = resolve_config({"preset": "toy", "dataset": {"name": "25gaussians"}, "loss": {"name": "wgan"}})
    assert not toy["train"]["critic_warmup"]  # gan_toy.py has none
