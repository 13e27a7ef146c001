"""Fully connected generator and critic (WGAN-GP toy code; WGAN Fig. 7's 4-layer 512-unit ReLU MLP)."""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
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


class StackedLinear(nn.Module):
    """k ``nn.Linear`` layers as one: weight (k, in, out) (each member's transposed: the layout batched
    matmuls run fastest on), bias (k, out); (k, B, in) -> (k, B, out).

    ``full_precision``: the layer computes in fp32 even under bf16 autocast (``train.precision: bf16``).
    ``StackedMLP`` sets it on the first and last layers, where data and scores enter and leave: bf16
    keeps 8 significant bits, so a toy point near 1.4 would be rounded to a grid of 0.008, half the
    25-Gaussians modes' standard deviation (0.018). On toy data those layers are thin (2 x width), so
    this costs little; the width x width layers, where the arithmetic is, stay bf16."""

    def __init__(self, layers: list[nn.Linear], full_precision: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone())
        self.full_precision = full_precision

    def forward(self, x: Tensor) -> Tensor:
        return self._in_precision(self._affine, x)

    def _in_precision(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """``fn(x)`` in fp32 for a ``full_precision`` layer under autocast, else as autocast decides."""
        if self.full_precision and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return fn(x.float())
        return fn(x)

    def _affine(self, x: Tensor) -> Tensor:
        if self.weight.shape[-1] == 1:
            # One output (a critic's score): a dot product per sample. As a batched matmul with N = 1 it and
            # its backward run 4-5x slower on CPU (bench.perf's profile of a critic step).
            return torch.linalg.vecdot(x, self.weight.transpose(1, 2)).unsqueeze(-1) + self.bias.unsqueeze(1)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)

    def backward_input(self, grad_output: Tensor) -> Tensor:
        """The gradient w.r.t. the layer's input given the one w.r.t. its output, (k, B, out) -> (k, B, in),
        in the precision the forward pass runs in; differentiable w.r.t. the weight."""
        return self._in_precision(lambda g: torch.bmm(g, self.weight.transpose(1, 2)), grad_output)

    def copy_member(self, i: int, layer: nn.Linear) -> None:
        layer.weight.copy_(self.weight[i].t())
        layer.bias.copy_(self.bias[i])


class StackedBatchNorm1d(nn.Module):
    """k ``nn.BatchNorm1d`` layers as one: each member's features are normalized over its own batch (the
    k * F columns of the (B, k * F) view are exactly the members' features), with its own affine and running
    statistics."""

    def __init__(self, layers: list[nn.BatchNorm1d]):
        super().__init__()
        self.eps, self.momentum, self.features = layers[0].eps, layers[0].momentum, layers[0].num_features
        self.weight = nn.Parameter(torch.cat([layer.weight.detach() for layer in layers]).clone())
        self.bias = nn.Parameter(torch.cat([layer.bias.detach() for layer in layers]).clone())
        self.register_buffer("running_mean", torch.cat([layer.running_mean for layer in layers]).clone())
        self.register_buffer("running_var", torch.cat([layer.running_var for layer in layers]).clone())

    def forward(self, x: Tensor) -> Tensor:
        k, b, f = x.shape
        y = F.batch_norm(x.transpose(0, 1).reshape(b, k * f), self.running_mean, self.running_var, self.weight,
                         self.bias, self.training, self.momentum, self.eps)
        return y.view(b, k, f).transpose(0, 1)

    def copy_member(self, i: int, layer: nn.BatchNorm1d) -> None:
        part = slice(i * self.features, (i + 1) * self.features)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(layer, name).copy_(getattr(self, name)[part])


class StackedMLP(nn.Module):
    """k MLP generators or critics (their ``_mlp`` layouts, ``.net``) as one stack of layers on
    (k, B, features); the subclasses say how inputs and outputs are shaped. The first and last linear
    layers run in fp32 under bf16 autocast (``StackedLinear``)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = members  # a plain list: the members are not submodules (their parameters are not trained)
        groups = list(zip(*(m.net for m in members)))
        linear = [j for j, group in enumerate(groups) if isinstance(group[0], nn.Linear)]
        layers = []
        for j, group in enumerate(groups):
            if isinstance(group[0], nn.Linear):
                layers.append(StackedLinear(list(group), full_precision=j in (linear[0], linear[-1])))
            elif isinstance(group[0], nn.BatchNorm1d):
                layers.append(StackedBatchNorm1d(list(group)))
            elif isinstance(group[0], nn.ReLU) and isinstance(layers[-1], StackedLinear):
                layers.append(nn.ReLU(inplace=True))  # on the matmul's output: one buffer and pass less
            else:
                layers.append(group[0])  # ReLU, Tanh: no parameters
        self.layers = nn.Sequential(*layers)

    @torch.no_grad()
    def sync_members(self) -> None:
        for j, layer in enumerate(self.layers):
            if hasattr(layer, "copy_member"):
                for i, member in enumerate(self.members):
                    layer.copy_member(i, member.net[j])


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

    @classmethod
    def stacked(cls, members: list[MLPGenerator]) -> StackedMLPGenerator:
        return StackedMLPGenerator(members)


class StackedMLPGenerator(StackedMLP):
    """k MLP generators: noise (k, B, latent_dim) -> samples (k, B, *data_shape)."""

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z).view(*z.shape[:2], *self.members[0].data_shape)


class MLPCritic(nn.Module):
    def __init__(self, p: MLPCriticParams, data_shape: tuple[int, ...]):
        super().__init__()
        self.net = _mlp(math.prod(data_shape), 1, p.width, p.depth, p.batchnorm)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)

    @classmethod
    def stacked(cls, members: list[MLPCritic]) -> StackedMLPCritic:
        return StackedMLPCritic(members)


class StackedMLPCritic(StackedMLP):
    """k MLP critics: samples (k, B, *data_shape) -> scores (k, B)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(2)).squeeze(-1)

    def input_gradient(self, x: Tensor) -> Tensor | None:
        """dD(x)/dx per sample, (k, B, *data_shape), differentiable w.r.t. the weights: what
        ``torch.autograd.grad(D(x).sum(), x, create_graph=True)`` gives (the gradient penalty's gradient,
        WGAN-GP eq. 3), written out for a ReLU MLP: grad = W_1^T (m_1 * W_2^T (m_2 * ... w_L)), m_l the
        0/1 masks of the units the forward pass switched on (constants: their derivative is zero almost
        everywhere). The same matmuls as double backward, but the forward pass runs without a graph and the
        penalty's backward is a first-order one: about a third less time on CPU (the gradient-penalty
        benchmark in tests/test_perf.py). None for critics with batch norm, whose gradient couples the
        samples of a batch: use autograd."""
        if not all(isinstance(layer, (StackedLinear, nn.ReLU)) for layer in self.layers):
            return None
        linears = [layer for layer in self.layers if isinstance(layer, StackedLinear)]
        activations = []  # the ReLU outputs: a unit is on where its output is positive
        with torch.no_grad():
            h = x.flatten(2)
            for layer in self.layers[:-1]:
                h = layer(h)
                if isinstance(layer, nn.ReLU):
                    activations.append(h)
        grad = linears[-1].weight.transpose(1, 2)  # (k, 1, width): the score's gradient w.r.t. the last hidden units
        for linear, active in zip(reversed(linears[:-1]), reversed(activations)):
            # ReLU's backward (what autograd runs for it): grad where the unit is on, else 0
            grad = linear.backward_input(torch.ops.aten.threshold_backward(grad.expand_as(active), active, 0))
        return grad.expand(x.flatten(2).shape).reshape(x.shape)  # expand: a critic of one layer


GENERATORS.register("mlp", params=MLPGeneratorParams)(MLPGenerator)
CRITICS.register("mlp", params=MLPCriticParams)(MLPCritic)
