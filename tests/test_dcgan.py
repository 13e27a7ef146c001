"""DCGAN generator / critic (bench/models/dcgan.py) and the MLP on images."""

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from bench.models import CRITICS, GENERATORS


def build(registry, options: dict, shape):
    entry = registry.entry(options.pop("arch"))
    return entry.obj(entry.params.model_validate(options), shape)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32), (3, 64, 64)])
def test_generator_and_critic_shapes(shape):
    g = build(GENERATORS, {"arch": "dcgan", "ngf": 8, "latent_dim": 10, "n_extra_layers": 1}, shape)
    d = build(CRITICS, {"arch": "dcgan", "ndf": 8, "n_extra_layers": 1}, shape)
    x = g(torch.randn(5, 10))
    assert x.shape == (5, *shape)
    assert x.abs().max() <= 1  # tanh output: data live in [-1, 1]
    assert d(x).shape == (5,)


def test_reference_code_widths_and_init():
    """64x64, ngf = 64: first layer 512 filters, halving to 64 (WGAN code); N(0, .02) convs, N(1, .02) BN."""
    g = build(GENERATORS, {"arch": "dcgan", "ngf": 64}, (3, 64, 64))
    convs = [m for m in g.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))]
    assert [m.out_channels for m in convs] == [512, 256, 128, 64, 3]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(weights.std()) - 0.02) < 0.002
    bn = torch.cat([m.weight.detach() for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(bn.mean()) - 1) < 0.01 and 0.01 < float(bn.std()) < 0.03


def test_wgan_fig6_generator_has_no_batchnorm_and_far_fewer_parameters():
    """WGAN Fig. 6: no batch norm, constant filters: 'a bit more than an order of magnitude' fewer parameters."""
    full = build(GENERATORS, {"arch": "dcgan", "ngf": 64}, (3, 64, 64))
    fig6 = build(GENERATORS, {"arch": "dcgan", "ngf": 64, "batchnorm": False, "constant_filters": True}, (3, 64, 64))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fig6.modules())
    assert {m.out_channels for m in fig6.modules() if isinstance(m, nn.ConvTranspose2d)} == {64, 3}
    assert 10 < n_params(full) / n_params(fig6) < 20


def test_critic_norm_options():
    def norms(options):
        d = build(CRITICS, {"arch": "dcgan", "ndf": 8, **options}, (1, 32, 32))
        return {type(m).__name__ for m in d.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))}

    assert norms({}) == {"BatchNorm2d"}
    assert norms({"batchnorm": False}) == norms({"norm": "none"}) == set()
    assert norms({"norm": "layer"}) == {"GroupNorm"}
    with pytest.raises(ValidationError, match="contradicts"):
        CRITICS.entry("dcgan").params.model_validate({"batchnorm": True, "norm": "layer"})


def test_layer_norm_critic_scores_are_per_sample():
    """With layer norm (unlike batch norm) a sample's score does not depend on the rest of the batch, as the
    gradient penalty assumes (WGAN-GP section 4)."""
    d = build(CRITICS, {"arch": "dcgan", "ndf": 8, "norm": "layer"}, (1, 32, 32))
    x = torch.randn(6, 1, 32, 32)
    torch.testing.assert_close(d(x)[:3], d(x[:3]))


def test_bad_image_shape_is_one_clear_error():
    with pytest.raises(ValueError, match="power of two"):
        build(GENERATORS, {"arch": "dcgan"}, (1, 28, 28))
    with pytest.raises(ValueError, match="square images"):
        build(CRITICS, {"arch": "dcgan"}, (2,))


def test_mlp_generator_on_images():
    """WGAN Fig. 7: a 4-layer, 512-unit ReLU MLP generator producing images."""
    g = build(GENERATORS, {"arch": "mlp", "width": 512, "depth": 4, "output": "tanh"}, (1, 32, 32))
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4 and linears[0].out_features == 512
    assert g(torch.randn(3, 100)).shape == (3, 1, 32, 32)
