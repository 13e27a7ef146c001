"""Fully connected generator and critic (WGAN-GP toy code; WGAN Fig. 7's 4-layer 512-unit ReLU MLP)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field
from torch import Tensor, nn

from bench.models import CRITICS, GENERATORS, CriticParams, GeneratorParams


def _mlp(n_in: int, n_out: int, width: int, depth: int, batchnorm: bool) -> nn.Sequential:
    """``depth`` linear layers; ReLU (and batch norm, when asked) between them, nothing after the last."""
    layers: list[nn.Module] = []
    for i in range(depth - 1):
        layers.append(nn.Linear(n_in if i == 0 else width, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(n_in if depth == 1 else width, n_out))
    return nn.Sequential(*layers)


class MLPGeneratorParams(GeneratorParams):
    width: int = Field(512, gt=0)
    depth: int = Field(4, ge=1, description="number of linear layers (gan_toy.py: 4)")
    batchnorm: bool = False
    output: Literal["linear", "tanh"] = Field("linear", description="tanh for image data in [-1, 1]")


class MLPCriticParams(CriticParams):
    width: int = Field(512, gt=0)
    depth: int = Field(4, ge=1, description="number of linear layers (gan_toy.py: 4; WGAN-GP Fig. 1b: 12)")
    batchnorm: bool = False


class MLPGenerator(nn.Module):
    def __init__(self, p: MLPGeneratorParams, data_shape: tuple[int, ...]):
        super().__init__()
        self.data_shape = data_shape
        self.net = _mlp(p.latent_dim, math.prod(data_shape), p.width, p.depth, p.batchnorm)
        if p.output == "tanh":
            self.net.append(nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(len(z), *self.data_shape)


class MLPCritic(nn.Module):
    def __init__(self, p: MLPCriticParams, data_shape: tuple[int, ...]):
        super().__init__()
        self.net = _mlp(math.prod(data_shape), 1, p.width, p.depth, p.batchnorm)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


GENERATORS.register("mlp", params=MLPGeneratorParams)(MLPGenerator)
CRITICS.register("mlp", params=MLPCriticParams)(MLPCritic)
