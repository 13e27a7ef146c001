"""bench/models/mlp.py: stacked MLPs compute what their members compute, and under bf16 autocast the
data-facing layers keep fp32 resolution."""

import pytest
import torch

from bench.ensemble import stack
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
    from bench.ensemble import scores_each_sample_alone

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


def test_the_toy_preset_initializes_as_gan_toy_py():
    import math as _math

    from bench.models.mlp import MLPCritic, MLPCriticParams, MLPGenerator, MLPGeneratorParams
    from bench.spec import resolve_config

    config = resolve_config({"preset": "toy", "dataset": {"name": "25gaussians"}, "loss": {"name": "wgan-gp"}})
    assert config["generator"]["init"] == config["critic"]["init"] == "gan_toy"
    default = resolve_config({"dataset": {"name": "25gaussians"}, "loss": {"name": "wgan-gp"}})
    assert default["critic"]["init"] == "torch"
    torch.manual_seed(0)
    for net in (MLPGenerator(MLPGeneratorParams(latent_dim=2, width=512, init="gan_toy"), (2,)),
                MLPCritic(MLPCriticParams(width=512, init="gan_toy"), (2,))):
        linears = [m for m in net.net if isinstance(m, torch.nn.Linear)]
        for i, layer in enumerate(linears):
            fan_out, fan_in = layer.weight.shape
            # lib/ops/linear.py: 'he' U(+-sqrt(6 / fan_in)) hidden; the output layer's default 'glorot'
            bound = _math.sqrt(6 / fan_in) if i < len(linears) - 1 else _math.sqrt(6 / (fan_in + fan_out))
            w = layer.weight.abs()
            assert w.max() <= bound and (layer.weight.numel() < 100 or w.max() > 0.95 * bound)
            assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


# Options of the published 25-Gaussians setups (ablations/paper/pacgan_grid.yaml, veegan_grid.yaml).

from bench.models.mlp import Maxout  # noqa: E402
from bench.spec import SpecError, resolve_config  # noqa: E402


def linears(net):
    return [m for m in net.net if isinstance(m, torch.nn.Linear)]


def test_a_maxout_unit_is_the_max_over_its_pieces():
    torch.manual_seed(0)
    critic = MLPCritic(MLPCriticParams(width=4, depth=2, activation="maxout", maxout_pieces=3), (2,))
    first, maxout = critic.net[0], critic.net[1]
    assert isinstance(maxout, Maxout) and first.out_features == 12
    x = torch.randn(8, 2)
    pieces = first(x).view(8, 4, 3)  # unit j: columns 3j .. 3j + 2
    assert torch.equal(maxout(first(x)), pieces.max(dim=2).values)
    assert torch.equal(critic.net[:2](x)[:, 1],
                       torch.maximum(torch.maximum(pieces[:, 1, 0], pieces[:, 1, 1]), pieces[:, 1, 2]))


@pytest.mark.parametrize("gain", [1.0, 1.4])
def test_orthogonal_init_gives_w_wt_gain_squared_times_identity(gain):
    torch.manual_seed(0)
    net = MLPGenerator(MLPGeneratorParams(latent_dim=256, width=128, depth=3, activation="tanh", init="orthogonal",
                                          init_gain=gain), (2,))
    for layer in linears(net):
        w = layer.weight  # (out, in): orthonormal along the shorter side
        gram = w @ w.t() if w.shape[0] <= w.shape[1] else w.t() @ w
        assert torch.allclose(gram, gain**2 * torch.eye(len(gram)), atol=1e-5)
        assert not layer.bias.any()


def test_normal_init_has_std_0_02_and_zero_biases():
    torch.manual_seed(0)
    net = MLPCritic(MLPCriticParams(width=200, depth=4, activation="maxout", maxout_pieces=5, init="normal_0.02"), (2,))
    weights = torch.cat([layer.weight.flatten() for layer in linears(net)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.02) and abs(weights.mean().item()) < 1e-3
    assert all(not layer.bias.any() for layer in linears(net))


def test_no_hidden_biases_when_bias_is_false():
    params = MLPGeneratorParams(width=8, depth=3, batchnorm=True, bias=False, latent_dim=2)
    layers = linears(MLPGenerator(params, (2,)))
    assert [layer.bias is None for layer in layers] == [True, True, False]  # the output layer keeps its bias
    stacked = stack(members(MLPGenerator, params))
    assert [linear.bias is None for linear in stacked.linears] == [True, True, False]
    assert len(list(stacked.parameters())) == 3 + 1 + 2 * 2  # 3 weights, the output bias, 2 batch norms x 2


def test_a_packed_critic_scores_m_samples_concatenated():
    torch.manual_seed(0)
    critic = MLPCritic(MLPCriticParams(width=16, pack=4), (2,))
    assert linears(critic)[0].in_features == 8
    x = torch.randn(12, 2)
    groups = torch.cat([x[0::4], x[1::4], x[2::4], x[3::4]], dim=1)  # pack i: samples 4i .. 4i + 3, side by side
    assert torch.equal(critic(x), critic.net(groups).squeeze(1))
    with pytest.raises(ValueError, match="multiple of 4"):
        critic(torch.randn(10, 2))


@pytest.mark.parametrize("critic_params, generator_params", [
    (dict(width=8, activation="maxout", maxout_pieces=5, init="normal_0.02", pack=2),
     dict(width=16, batchnorm=True, bias=False, init="normal_0.02")),
    (dict(width=16, activation="tanh", init="orthogonal", init_gain=1.4),
     dict(width=16, activation="tanh", init="orthogonal", init_gain=1.4)),
    (dict(width=16, activation="leaky_relu", bias=False), dict(width=4, activation="leaky_relu", bias=False)),
])
def test_a_stack_computes_each_members_output_with_every_option(critic_params, generator_params):
    critics = members(MLPCritic, MLPCriticParams(**critic_params))
    x = torch.randn(2, 8, 2)
    assert not stack(critics).relu_mlp
    assert torch.allclose(stack(critics)(x), torch.stack([c(xi) for c, xi in zip(critics, x)]), atol=1e-6)
    generators = members(MLPGenerator, MLPGeneratorParams(latent_dim=3, **generator_params))
    z = torch.randn(2, 8, 3)
    assert torch.allclose(stack(generators)(z), torch.stack([g(zi) for g, zi in zip(generators, z)]), atol=1e-6)


def test_activations_are_the_ones_asked_for():
    for name, cls in [("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh), ("leaky_relu", torch.nn.LeakyReLU)]:
        net = MLPGenerator(MLPGeneratorParams(width=8, depth=3, activation=name), (2,))
        assert [type(m) for m in net.net if not isinstance(m, torch.nn.Linear)] == [cls, cls]


@pytest.mark.parametrize("section, options, path", [
    ("critic", {"activation": "sigmoid"}, "critic.activation"),
    ("generator", {"activation": "maxout"}, "generator.activation"),  # maxout: critics only
    ("critic", {"activation": "maxout"}, "critic.maxout_pieces"),  # pieces required
    ("critic", {"maxout_pieces": 5}, "critic.maxout_pieces"),  # only with maxout
    ("critic", {"activation": "maxout", "maxout_pieces": 1}, "critic.maxout_pieces"),
    ("generator", {"init": "xavier"}, "generator.init"),
    ("generator", {"init_gain": 1.4}, "generator.init_gain"),  # a gain only for orthogonal
    ("critic", {"init": "orthogonal", "init_gain": 0}, "critic.init_gain"),
    ("critic", {"pack": 0}, "critic.pack"),
    ("critic", {"bias": "sometimes"}, "critic.bias"),
])
def test_bad_options_are_rejected_naming_the_field(section, options, path):
    base = {"dataset": {"name": "25gaussians"}, "loss": {"name": "nonsaturating"}, section: options}
    with pytest.raises(SpecError) as err:
        resolve_config(base)
    assert err.value.path == path and "\n" not in str(err.value)


@pytest.mark.parametrize("spec, path", [
    ({"loss": {"name": "wgan-gp"}}, "critic.pack"),  # a per-sample penalty
    ({"eval": {"n_samples": 2501}}, "eval.n_samples"),
    ({"eval": {"metrics": ["modes", "critic_surface"]}}, "critic.pack"),
])
def test_a_packed_critic_refuses_what_needs_single_samples(spec, path):
    base = {"dataset": {"name": "25gaussians"}, "loss": {"name": "nonsaturating"}, "critic": {"pack": 4}, **spec}
    with pytest.raises(SpecError) as err:
        resolve_config(base)
    assert err.value.path == path
