"""bench/models/mlp.py: stacked MLPs compute what their members compute, and under bf16 autocast the
data-facing layers keep fp32 resolution."""

import pytest
import torch

from bench.models import stack
from bench.models.mlp import MLPCritic, MLPCriticParams, MLPGenerator, MLPGeneratorParams


def members(cls, params, k=2):
    torch.manual_seed(0)
    return [cls(params, (2,)) for _ in range(k)]


@pytest.mark.parametrize("width", [16, 4])  # 4: hidden layers narrow enough to run as transposed products
def test_a_stack_computes_each_members_output(width):
    critics = members(MLPCritic, MLPCriticParams(width=width, batchnorm=False))
    x = torch.randn(2, 8, 2)
    assert torch.allclose(stack(critics)(x), torch.stack([c(xi) for c, xi in zip(critics, x)]), atol=1e-6)
    generators = members(MLPGenerator, MLPGeneratorParams(width=width, latent_dim=3))
    z = torch.randn(2, 8, 3)
    assert torch.allclose(stack(generators)(z), torch.stack([g(zi) for g, zi in zip(generators, z)]), atol=1e-6)


def test_bf16_critic_tells_apart_points_closer_than_bf16_spacing():
    critic = stack(members(MLPCritic, MLPCriticParams(width=32)))
    x = torch.full((2, 4, 2), 1.4)  # bf16 spacing at 1.4 is 2**-7 = 0.0078
    near = x + 0.002
    assert torch.equal(x.bfloat16(), near.bfloat16())  # the same point once rounded to bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not torch.equal(critic(x), critic(near))


def test_bf16_generator_samples_are_not_rounded_to_bf16():
    generator = stack(members(MLPGenerator, MLPGeneratorParams(width=32, latent_dim=2)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        samples = generator(torch.randn(2, 256, 2))
    assert samples.dtype == torch.float32
    on_bf16_grid = samples.bfloat16().float() == samples
    assert on_bf16_grid.float().mean() < 0.1


def test_only_a_critic_with_batch_norm_scores_samples_by_their_batch():
    from bench.models import scores_each_sample_alone

    assert scores_each_sample_alone(MLPCritic(MLPCriticParams(batchnorm=False), (2,)))
    assert not scores_each_sample_alone(MLPCritic(MLPCriticParams(batchnorm=True), (2,)))


def close(got, want, precision):
    """Equal up to float rounding: fp32's, or in bf16 (8 significant bits) 2 % of the largest value."""
    got, want = got.float(), want.float()
    if precision == "fp32":
        return torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    return bool((got - want).abs().max() <= 2e-2 * want.abs().max())


def layer_by_layer(stacked, x):
    """The stack's layers as modules, differentiated by autograd: the reference for the written-out passes."""
    return stacked.layers(x.flatten(2))


@pytest.mark.parametrize("cls, params, n_in", [(MLPCritic, MLPCriticParams(width=16, depth=4), 2),
                                               (MLPCritic, MLPCriticParams(width=16, depth=1), 2),
                                               (MLPGenerator, MLPGeneratorParams(width=16, depth=3, latent_dim=3), 3),
                                               (MLPGenerator, MLPGeneratorParams(width=4, depth=3, latent_dim=3), 3)])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_written_out_backward_equals_autograds_layer_by_layer(cls, params, n_in, precision):
    stacked = stack(members(cls, params, k=3))
    assert stacked.relu_mlp
    for p in stacked.parameters():  # larger weights than the default init, so many units are off
        p.data.mul_(3)
    x = torch.randn(3, 64, n_in)
    upstream = torch.randn(3, 64, 2 if cls is MLPGenerator else 1)
    results = []
    for forward in (stacked.run, lambda x: layer_by_layer(stacked, x)):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = forward(xi)
        grads = torch.autograd.grad((out * upstream).sum(), [xi, *stacked.parameters()])
        results.append((out, *grads))
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        assert close(got, want, precision), (got - want).abs().max()


def test_the_weight_gradients_are_skipped_when_the_weights_are_frozen():
    stacked = stack(members(MLPCritic, MLPCriticParams(width=16)))
    stacked.requires_grad_(False)
    x = torch.randn(2, 8, 2, requires_grad=True)
    stacked(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in stacked.parameters())


def _penalty_and_weight_grads(critic, input_gradient, x, precision):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        grad = input_gradient(x)
    penalty = ((grad.float().flatten(2).norm(dim=-1) - 1) ** 2).sum()
    return grad, torch.autograd.grad(penalty, list(critic.parameters()), allow_unused=True)


def _autograd_input_gradient(critic, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(layer_by_layer(critic, x).sum(), x, create_graph=True)
    return grad


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_written_out_input_gradient_equals_autograds_and_so_do_its_weight_gradients(depth, precision):
    critic = stack(members(MLPCritic, MLPCriticParams(width=16, depth=depth), k=3))
    for p in critic.parameters():  # larger weights than the default init, so many units are off
        p.data.mul_(3)
    x = torch.randn(3, 64, 2)
    expected, expected_weight_grads = _penalty_and_weight_grads(
        critic, lambda x: _autograd_input_gradient(critic, x), x, precision)
    grad, weight_grads = _penalty_and_weight_grads(critic, critic.input_gradient, x, precision)
    assert grad.shape == x.shape and close(grad, expected, precision)
    for got, want in zip(weight_grads, expected_weight_grads):
        if want is None or not want.any():  # biases: the penalty depends on them only through the masks
            assert got is None or not got.any()
        else:
            assert close(got, want, precision), ((got - want).abs().max(), want.abs().max())


def test_a_critic_with_batch_norm_leaves_the_input_gradient_to_autograd():
    critic = stack(members(MLPCritic, MLPCriticParams(width=16, batchnorm=True)))
    assert critic.input_gradient(torch.randn(2, 8, 2)) is None
