"""bench/optim.py: an optimizer over FlatParameters (bench/ensemble/parameters.py) makes the same updates as one
over the module's own parameter tensors."""

import copy

import pytest
import torch
from torch import nn

from bench.ensemble import FlatParameters
from bench.optim import build_optimizer


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))


@pytest.mark.parametrize("optimizer", [
    {"name": "adam", "lr": 1e-2, "generator_lr": 1e-2, "critic_lr": 1e-2, "betas": (0.5, 0.9)},
    {"name": "rmsprop", "lr": 1e-2, "generator_lr": 1e-2, "critic_lr": 1e-2},
    {"name": "sgd", "lr": 1e-2, "generator_lr": 1e-2, "critic_lr": 1e-2, "momentum": 0.9},
])
def test_flat_parameters_train_as_the_modules_own_tensors_do(optimizer):
    plain, flat_net = net(), net()
    flat = FlatParameters(flat_net)
    plain_opt = build_optimizer(optimizer, plain.parameters(), "critic")
    flat_opt = build_optimizer(optimizer, flat.members, "critic")
    for _ in range(5):
        x = torch.randn(16, 3)
        plain_opt.zero_grad(set_to_none=True)
        plain(x).pow(2).mean().backward()
        plain_opt.step()
        flat_net(x).pow(2).mean().backward()
        flat.gather_grads()
        flat_opt.step()
    for a, b in zip(plain.parameters(), flat_net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(plain[0].weight, net()[0].weight)  # and they did train
    assert all(p.grad is None for p in flat_net.parameters())  # the next backward starts from none


def test_a_parameter_without_a_gradient_is_an_error_not_a_zero_gradient():
    module = net()
    flat = FlatParameters(module)
    module[0].bias.requires_grad_(False)  # Adam would skip it; a zero gradient would still move it
    module(torch.randn(4, 3)).sum().backward()
    with pytest.raises(ValueError, match="no gradient"):
        flat.gather_grads()


def test_flat_parameters_are_the_modules_weights():
    module = net()
    before = copy.deepcopy(module)
    flat = FlatParameters(module)
    x = torch.randn(4, 3)
    assert torch.equal(module(x), before(x))
    with torch.no_grad():
        flat.flat.clamp_(-0.01, 0.01)  # weight clipping, as the trainer does it
    assert all(p.abs().max() <= 0.01 for p in module.parameters())
