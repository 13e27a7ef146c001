"""Fully connected generator and critic (WGAN-GP toy code; WGAN Fig. 7's 4-layer 512-unit ReLU MLP)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

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


# A batched matmul with only a few output columns (a toy generator's 2-D samples) runs 3-4x slower on CPU
# than the same product transposed, (W^T x^T)^T, which puts the batch on the long side (this CPU, fp32).
_NARROW = 16


def _affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x W + b on stacks: x (k, B, in), W (k, in, out), b (k, out). One output (a critic's score) is a dot
    product per sample: as a batched matmul with N = 1 it and its backward run 4-5x slower on CPU; a few
    outputs run as the transposed product."""
    if weight.shape[-1] == 1:
        return torch.linalg.vecdot(x, weight.transpose(1, 2)).unsqueeze(-1) + bias.unsqueeze(1)
    if weight.shape[-1] < _NARROW:
        return torch.baddbmm(bias.unsqueeze(2), weight.transpose(1, 2).contiguous(), x.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


def _affine_input_grad(grad: Tensor, weight: Tensor) -> Tensor:
    """d(x W + b)/dx applied to ``grad`` (k, B, out): grad W^T, (k, B, in)."""
    if weight.shape[-1] == 1:
        return grad * weight.transpose(1, 2)
    return torch.bmm(grad, weight.transpose(1, 2))


def _affine_weight_grad(x: Tensor, grad: Tensor) -> Tensor:
    """d(x W + b)/dW applied to ``grad``: x^T grad summed over the batch, (k, in, out)."""
    if grad.shape[-1] < _NARROW:  # (k, out, B) @ (k, B, in): the fast orientation of a few columns
        return torch.bmm(grad.transpose(1, 2), x).transpose(1, 2).contiguous()
    return torch.bmm(x.transpose(1, 2), grad)


def _relu_backward(grad: Tensor, output: Tensor) -> Tensor:
    """ReLU's backward, what autograd runs for it: ``grad`` where the unit is on (output > 0), else 0."""
    return torch.ops.aten.threshold_backward(grad.to(output.dtype).expand_as(output), output, 0)


def layer_dtypes(n_layers: int, device_type: str) -> list[torch.dtype]:
    """The precision each linear layer of a stacked MLP computes in: fp32, or under autocast
    (``train.precision: bf16``) its lower precision, except for the first and last layers (see
    ``StackedLinear``)."""
    if not torch.is_autocast_enabled(device_type):
        return [torch.float32] * n_layers
    low = torch.get_autocast_dtype(device_type)
    return [torch.float32 if i in (0, n_layers - 1) else low for i in range(n_layers)]


class _ReLUMLP(torch.autograd.Function):
    """A stacked ReLU MLP, h_l = relu(h_{l-1} W_l + b_l) with no ReLU after the last layer, as one autograd
    node whose backward is written out: the matmuls autograd runs for the layer-by-layer module (the same
    results, tested), without its per-op bookkeeping, casts and views, which on CPU at width 128 cost as
    much as the matmuls. ``params``: W_1, b_1, W_2, b_2, ...; ``dtypes``: each layer's precision."""

    @staticmethod
    def forward(ctx, x: Tensor, dtypes: list[torch.dtype], *params: Tensor) -> Tensor:
        weights = [w.to(dtype) for w, dtype in zip(params[0::2], dtypes)]
        inputs, outputs = [], []  # each layer's input in its precision (its weight gradient), ReLU outputs
        h = x
        with torch.autocast(x.device.type, enabled=False):
            for i, (weight, bias) in enumerate(zip(weights, params[1::2])):
                inputs.append(h.to(weight.dtype))
                h = _affine(inputs[-1], weight, bias.to(weight.dtype))
                if i < len(weights) - 1:
                    outputs.append(h.relu_())
        ctx.param_dtype = params[0].dtype
        ctx.save_for_backward(*inputs, *outputs, *weights)
        return h

    @staticmethod
    @once_differentiable  # masks and activations are saved as constants: no gradient of this gradient
    def backward(ctx, grad: Tensor):
        saved = ctx.saved_tensors
        n = (len(saved) + 1) // 3
        inputs, outputs, weights = saved[:n], saved[n : 2 * n - 1], saved[2 * n - 1 :]
        need_x, need_params = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grads: list[Tensor | None] = [None] * (2 * n)
        with torch.autocast(grad.device.type, enabled=False):
            for i in reversed(range(n)):
                grad = grad.to(weights[i].dtype)
                if need_params:
                    grads[2 * i] = _affine_weight_grad(inputs[i], grad).to(ctx.param_dtype)
                    grads[2 * i + 1] = grad.sum(1).to(ctx.param_dtype)
                if i == 0 and not need_x:
                    break
                grad = _affine_input_grad(grad, weights[i])
                if i > 0:
                    grad = _relu_backward(grad, outputs[i - 1])
        return (grad if need_x else None, None, *grads)


class _ReLUMLPInputGradient(torch.autograd.Function):
    """dD(x)/dx per sample of a stacked ReLU MLP critic D (one output), for the gradient penalty (WGAN-GP
    eq. 3): g = W_1^T (m_1 * W_2^T (m_2 * ... w_L)), m_l the 0/1 masks of the units the forward pass switched
    on. The masks are constants (their derivative is zero almost everywhere), so the penalty's gradient
    w.r.t. the weights is first order, written out in ``backward``: what autograd's double backward
    computes, without building a graph of the graph. The biases enter through the masks only, so they get
    no gradient; neither does x."""

    @staticmethod
    def forward(ctx, x: Tensor, dtypes: list[torch.dtype], *params: Tensor) -> Tensor:
        weights = [w.to(dtype) for w, dtype in zip(params[0::2], dtypes)]
        outputs, masked = [], []  # ReLU outputs h_l (a unit is on where positive); m_l * dD/dh_l
        with torch.autocast(x.device.type, enabled=False):
            h = x.flatten(2)
            for weight, bias in zip(weights[:-1], params[1::2]):
                h = _affine(h.to(weight.dtype), weight, bias.to(weight.dtype)).relu_()
                outputs.append(h)
            grad = weights[-1].transpose(1, 2)  # dD/dh_{L-1}: (k, 1, width), the same for every sample
            for i in reversed(range(len(outputs))):
                masked.insert(0, _relu_backward(grad, outputs[i]))
                grad = _affine_input_grad(masked[0], weights[i])
        ctx.param_dtype = params[0].dtype
        ctx.save_for_backward(*outputs, *masked, *weights)
        return grad.expand(x.flatten(2).shape).reshape(x.shape)  # expand: a critic of one layer

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        saved = ctx.saved_tensors
        n = (len(saved) + 2) // 3
        outputs, masked, weights = saved[: n - 1], saved[n - 1 : 2 * n - 2], saved[2 * n - 2 :]
        grads: list[Tensor | None] = [None] * (2 * n)
        with torch.autocast(grad.device.type, enabled=False):
            grad = grad.flatten(2)  # dP/dg_0, g_0 = masked_1 W_1^T
            for i in range(n - 1):
                grad = grad.to(weights[i].dtype)
                grads[2 * i] = _affine_weight_grad(grad, masked[i]).to(ctx.param_dtype)  # g_{l-1} = masked_l W_l^T
                grad = _relu_backward(torch.bmm(grad, weights[i]), outputs[i])  # dP/dg_l
            grads[-2] = grad.sum(1).unsqueeze(-1).to(ctx.param_dtype)  # g_{L-1} = w_L for every sample
        return (None, None, *grads)


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
        if self.full_precision and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return _affine(x.float(), self.weight, self.bias)
        return _affine(x, self.weight, self.bias)

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
    layers run in fp32 under bf16 autocast (``StackedLinear``). A plain ReLU MLP (no batch norm, no tanh)
    runs as one autograd node with a written-out backward (``_ReLUMLP``); any other layer by layer."""

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
        self.linears = [layer for layer in layers if isinstance(layer, StackedLinear)]
        self.relu_mlp = all(isinstance(layer, StackedLinear if j % 2 == 0 else nn.ReLU) for j, layer in enumerate(layers))

    def run(self, x: Tensor) -> Tensor:
        """The layers on (k, B, features)."""
        if not self.relu_mlp:
            return self.layers(x)
        params = [p for linear in self.linears for p in (linear.weight, linear.bias)]
        return _ReLUMLP.apply(x, layer_dtypes(len(self.linears), x.device.type), *params)

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
        return self.run(z).reshape(*z.shape[:2], *self.members[0].data_shape)


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
        return self.run(x.flatten(2)).squeeze(-1)

    def input_gradient(self, x: Tensor) -> Tensor | None:
        """dD(x)/dx per sample, (k, B, *data_shape), differentiable w.r.t. the weights: what
        ``torch.autograd.grad(D(x).sum(), x, create_graph=True)`` gives (the gradient penalty's gradient,
        WGAN-GP eq. 3), written out for a ReLU MLP (``_ReLUMLPInputGradient``). None for critics with batch
        norm, whose gradient couples the samples of a batch: use autograd."""
        if not self.relu_mlp:
            return None
        params = [p for linear in self.linears for p in (linear.weight, linear.bias)]
        return _ReLUMLPInputGradient.apply(x, layer_dtypes(len(self.linears), x.device.type), *params)


GENERATORS.register("mlp", params=MLPGeneratorParams)(MLPGenerator)
CRITICS.register("mlp", params=MLPCriticParams)(MLPCritic)
