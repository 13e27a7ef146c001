"""DCGAN generator and critic, as in the WGAN reference code (``models/dcgan.py`` of
martinarjovsky/WassersteinGAN), with the options its experiments vary.

Generator: a transposed-convolution pyramid from ``latent_dim x 1 x 1`` to ``C x H x W``, doubling the
spatial size and halving the filters at each layer (``ngf * H / 8`` filters after the first layer, ``ngf``
before the last), ReLU, ``tanh`` output (data live in [-1, 1]). ``batchnorm: false`` is the reference
code's ``--noBN`` generator; ``constant_filters: true`` gives every layer ``ngf`` filters instead: with
``batchnorm: false`` this is the generator of WGAN Fig. 6 (about an order of magnitude fewer parameters).

Critic: strided convolutions halving the size and doubling the filters down to ``4 x 4``, LeakyReLU(0.2),
then a ``4 x 4`` convolution to one raw score per sample (no sigmoid: the losses apply it when they need
it). ``norm`` picks what follows each convolution but the first and last: ``batch`` (reference code),
``none``, or ``layer`` - normalization over (C, H, W) of each sample with a per-channel scale and offset,
as the WGAN-GP code's ``Layernorm``; WGAN-GP section 4 recommends it (or none) over batch norm for
gradient-penalty critics, whose penalty is per sample. ``batchnorm`` is the shorthand ``norm: batch|none``.

Both take ``n_extra_layers`` 3x3 convolutions at the widest resolution of the pyramid (reference code).
Initialization as in the reference code: convolution weights N(0, 0.02), batch-norm weights N(1, 0.02)
and biases 0. Images must be square with a power-of-two side of at least 16 (32 and 64 in the papers).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from torch import Tensor, nn

from bench.models import CRITICS, GENERATORS, CriticParams, GeneratorParams

Norm = Literal["batch", "layer", "none"]


class DCGANGeneratorParams(GeneratorParams):
    ngf: int = Field(64, gt=0, description="filters of the last layer before the output (doubled per layer upwards)")
    n_extra_layers: int = Field(0, ge=0, description="extra 3x3 conv layers at full resolution")
    batchnorm: bool = Field(True, description="batch norm after every layer but the last (false: WGAN --noBN)")
    constant_filters: bool = Field(False, description="ngf filters in every layer (WGAN Fig. 6) instead of doubling")


class DCGANCriticParams(CriticParams):
    ndf: int = Field(64, gt=0, description="filters of the first layer (doubled per layer downwards)")
    n_extra_layers: int = Field(0, ge=0, description="extra 3x3 conv layers after the first")
    norm: Norm | None = Field(None, description="batch | layer | none; default from batchnorm (batch)")
    batchnorm: bool | None = Field(None, description="shorthand: true = norm batch, false = norm none")

    @model_validator(mode="before")
    @classmethod
    def _norm_from_batchnorm(cls, data: Any) -> Any:
        """Resolve the two spellings into one consistent pair, rejecting a contradiction."""
        if not isinstance(data, dict):
            return data
        batchnorm, norm = data.get("batchnorm"), data.get("norm")
        if norm is None:
            norm = "none" if batchnorm is False else "batch"
        if batchnorm is None:
            batchnorm = norm == "batch"
        if batchnorm != (norm == "batch"):
            raise ValueError(f"batchnorm: {str(batchnorm).lower()} contradicts norm: {norm}")
        return {**data, "norm": norm, "batchnorm": batchnorm}


def _check_image_shape(data_shape: tuple[int, ...], arch: str) -> tuple[int, int]:
    """(channels, side) of a square image shape whose side is a power of two >= 16."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"{arch} needs square images (C, H, H); the data set gives shape {tuple(data_shape)}")
    channels, side = data_shape[0], data_shape[1]
    if side < 16 or side & (side - 1):
        raise ValueError(f"{arch} needs an image side that is a power of two >= 16 (as 32, 64); got {side}")
    return channels, side


def init_weights_(module: nn.Module) -> None:
    """WGAN reference code ``weights_init``: conv weights N(0, 0.02); batch norm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _norm_layer(norm: Norm, channels: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "layer":
        return [nn.GroupNorm(1, channels)]  # one group: normalize over (C, H, W) per sample
    return []


class DCGANGenerator(nn.Module):
    def __init__(self, p: DCGANGeneratorParams, data_shape: tuple[int, ...]):
        super().__init__()
        channels, side = _check_image_shape(data_shape, "dcgan generator")
        norm: Norm = "batch" if p.batchnorm else "none"
        n_up = side.bit_length() - 3  # 4 -> side in n_up doublings, the last one the output layer
        widths = [p.ngf if p.constant_filters else p.ngf * 2 ** (n_up - 1 - i) for i in range(n_up)]

        layers: list[nn.Module] = [nn.ConvTranspose2d(p.latent_dim, widths[0], 4, 1, 0, bias=False),
                                   *_norm_layer(norm, widths[0]), nn.ReLU()]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), *_norm_layer(norm, w_out), nn.ReLU()]
        for _ in range(p.n_extra_layers):
            layers += [nn.Conv2d(widths[-1], widths[-1], 3, 1, 1, bias=False), *_norm_layer(norm, widths[-1]),
                       nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(len(z), -1, 1, 1))


class DCGANCritic(nn.Module):
    def __init__(self, p: DCGANCriticParams, data_shape: tuple[int, ...]):
        super().__init__()
        channels, side = _check_image_shape(data_shape, "dcgan critic")
        n_down = side.bit_length() - 4  # side/2 -> 4 in n_down halvings
        widths = [p.ndf * 2**i for i in range(n_down + 1)]

        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        for _ in range(p.n_extra_layers):
            layers += [nn.Conv2d(widths[0], widths[0], 3, 1, 1, bias=False), *_norm_layer(p.norm, widths[0]),
                       nn.LeakyReLU(0.2)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), *_norm_layer(p.norm, w_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        init_weights_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(len(x))


GENERATORS.register("dcgan", params=DCGANGeneratorParams)(DCGANGenerator)
CRITICS.register("dcgan", params=DCGANCriticParams)(DCGANCritic)
