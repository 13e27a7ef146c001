"""Fully connected generator and critic (WGAN-GP toy code; WGAN Fig. 7's 4-layer 512-unit ReLU MLP)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from bench.ensemble import per_member
from bench.models import CRITICS, GENERATORS, CriticParams, GeneratorParams
from bench.registry import Params


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): the input's features in consecutive groups of ``pieces``, each
    group's maximum; (..., units * pieces) -> (..., units). PacGAN's discriminator (Lin et al. 2018, Table 1
    setup) has three such layers of 200 units, 5 pieces each."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(-1)


LEAKY_SLOPE = 0.2  # leaky_relu's negative slope (DCGAN's)


def _activation(name: str, maxout_pieces: int) -> nn.Module:
    """The module of ``activation``: relu, tanh, leaky_relu, or maxout over ``maxout_pieces``."""
    if name == "maxout":
        return Maxout(maxout_pieces)
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE)}[name]()


def _mlp(n_in: int, n_out: int, p: MLPGeneratorParams | MLPCriticParams) -> nn.Sequential:
    """``p.depth`` linear layers; the activation ``p.activation`` (after batch norm, when asked) between them,
    nothing after the last. Hidden layers have biases unless ``p.bias`` is false; the output layer always
    has one. A maxout hidden layer computes ``maxout_pieces`` linear pieces per unit."""
    pieces = getattr(p, "maxout_pieces", None) or 1
    layers: list[nn.Module] = []
    for i in range(p.depth - 1):
        layers.append(nn.Linear(n_in if i == 0 else p.width, p.width * pieces, bias=p.bias))
        if p.batchnorm:
            layers.append(nn.BatchNorm1d(p.width * pieces))
        layers.append(_activation(p.activation, pieces))
    layers.append(nn.Linear(n_in if p.depth == 1 else p.width, n_out))
    net = nn.Sequential(*layers)
    _initialize([m for m in net if isinstance(m, nn.Linear)], p.init, p.init_gain)
    return net


@torch.no_grad()
def _initialize(linears: list[nn.Linear], init: str, gain: float) -> None:
    """Weights as ``init`` says (``Init``), biases zero; ``torch`` keeps ``nn.Linear``'s default."""
    if init == "torch":
        return
    if init == "gan_toy":
        _init_gan_toy(linears)
        return
    for layer in linears:
        if init == "normal_0.02":
            nn.init.normal_(layer.weight, 0.0, 0.02)
        else:
            nn.init.orthogonal_(layer.weight, gain=gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


@torch.no_grad()
def _init_gan_toy(linears: list[nn.Linear]) -> None:
    """The initialization of the WGAN-GP authors' toy code (gan_toy.py with its lib/ops/linear.py): every
    hidden layer ``initialization='he'``, U(+-sqrt(6 / fan_in)); the output layer the default 'glorot',
    U(+-sqrt(6 / (fan_in + fan_out))); all biases zero."""
    for layer in linears[:-1]:
        nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    nn.init.xavier_uniform_(linears[-1].weight)
    for layer in linears:
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


# A product with only a few output columns (a toy generator's 2-D samples) runs 3-4x slower on CPU than the
# same product transposed, (W^T x^T)^T, which puts the batch on the long side (README, Performance).
_NARROW = 16


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x W + b on stacks: x (k, B, in), W (k, in, out), b (k, out) or None (no bias). One output (a critic's
    score) is a dot product per sample (a matrix product with N = 1 and its backward run 4-5x slower on
    CPU); a few outputs run as the transposed product."""
    if weight.shape[-1] == 1:
        out = torch.linalg.vecdot(x, weight.transpose(1, 2)).unsqueeze(-1)
        return out if bias is None else out + bias.unsqueeze(1)
    if weight.shape[-1] < _NARROW:
        if bias is None:
            return per_member(torch.mm, weight.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2)
        return per_member(torch.addmm, bias.unsqueeze(2), weight.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2)
    if bias is None:
        return per_member(torch.mm, x, weight)
    return per_member(torch.addmm, bias.unsqueeze(1), x, weight)


def _affine_input_grad(grad: Tensor, weight: Tensor) -> Tensor:
    """d(x W + b)/dx applied to ``grad`` (k, B, out): grad W^T, (k, B, in)."""
    if weight.shape[-1] == 1:
        return grad * weight.transpose(1, 2)
    return per_member(torch.mm, grad, weight.transpose(1, 2))


def _affine_weight_grad(x: Tensor, grad: Tensor) -> Tensor:
    """d(x W + b)/dW applied to ``grad``: x^T grad summed over the batch, (k, in, out)."""
    if grad.shape[-1] < _NARROW:  # (out, B) @ (B, in): the fast orientation of a few columns
        return per_member(torch.mm, grad.transpose(1, 2), x).transpose(1, 2).contiguous()
    return per_member(torch.mm, x.transpose(1, 2), grad)


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
        x = x.contiguous()
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
        grad = grad.contiguous()  # autograd may hand over any strides: members' slices must be laid out alike
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
            grad = grad.flatten(2).contiguous()  # dP/dg_0, g_0 = masked_1 W_1^T; strides as in _ReLUMLP
            for i in range(n - 1):
                grad = grad.to(weights[i].dtype)
                grads[2 * i] = _affine_weight_grad(grad, masked[i]).to(ctx.param_dtype)  # g_{l-1} = masked_l W_l^T
                grad = _relu_backward(per_member(torch.mm, grad, weights[i]), outputs[i])  # dP/dg_l
            grads[-2] = grad.sum(1).unsqueeze(-1).to(ctx.param_dtype)  # g_{L-1} = w_L for every sample
        return (None, None, *grads)


class StackedLinear(nn.Module):
    """k ``nn.Linear`` layers as one: weight (k, in, out) (each member's transposed: the layout batched
    matmuls run fastest on), bias (k, out), or None for layers without one; (k, B, in) -> (k, B, out).

    ``full_precision``: the layer computes in fp32 even under bf16 autocast (``train.precision: bf16``).
    ``StackedMLP`` sets it on the first and last layers, where data and scores enter and leave: bf16
    keeps 8 significant bits, so a toy point near 1.4 would be rounded to a grid of 0.008, half the
    25-Gaussians modes' standard deviation (0.018). On toy data those layers are thin (2 x width), so
    this costs little; the width x width layers, where the arithmetic is, stay bf16."""

    def __init__(self, layers: list[nn.Linear], full_precision: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]).contiguous())
        has_bias = layers[0].bias is not None
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone()) if has_bias else None
        self.full_precision = full_precision

    def forward(self, x: Tensor) -> Tensor:
        if self.full_precision and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return _affine(x.float(), self.weight, self.bias)
        return _affine(x, self.weight, self.bias)

    def copy_member(self, i: int, layer: nn.Linear) -> None:
        layer.weight.copy_(self.weight[i].t())
        if self.bias is not None:
            layer.bias.copy_(self.bias[i])


class StackedBatchNorm1d(nn.Module):
    """k ``nn.BatchNorm1d`` layers as one: weight, bias and running statistics (k, features). Each member is
    its own ``batch_norm`` call on its own batch, exactly what it would see alone (``bench.ensemble.per_member``)."""

    def __init__(self, layers: list[nn.BatchNorm1d]):
        super().__init__()
        self.eps, self.momentum = layers[0].eps, layers[0].momentum
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone())
        self.register_buffer("running_mean", torch.stack([layer.running_mean for layer in layers]).clone())
        self.register_buffer("running_var", torch.stack([layer.running_var for layer in layers]).clone())

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([
            F.batch_norm(x[i], self.running_mean[i], self.running_var[i], self.weight[i], self.bias[i],
                         self.training, self.momentum, self.eps)
            for i in range(len(x))
        ])

    def copy_member(self, i: int, layer: nn.BatchNorm1d) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(layer, name).copy_(getattr(self, name)[i])


class StackedMLP(nn.Module):
    """k MLP generators or critics (their ``_mlp`` layouts, ``.net``) as one stack of layers on
    (k, B, features); the subclasses say how inputs and outputs are shaped. The first and last linear
    layers run in fp32 under bf16 autocast (``StackedLinear``). A plain ReLU MLP (biases, no batch norm, no
    other activation) runs as one autograd node with a written-out backward (``_ReLUMLP``); any other layer
    by layer. Activations without parameters (tanh, leaky ReLU, maxout) act on each member's features
    elementwise or in groups within a sample, so members stay apart."""

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
                layers.append(group[0])  # ReLU, Tanh, LeakyReLU, Maxout: no parameters
        self.layers = nn.Sequential(*layers)
        self.linears = [layer for layer in layers if isinstance(layer, StackedLinear)]
        alternating = all(isinstance(layer, StackedLinear if j % 2 == 0 else nn.ReLU) for j, layer in enumerate(layers))
        self.relu_mlp = alternating and all(linear.bias is not None for linear in self.linears)

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


Init = Literal["torch", "gan_toy", "normal_0.02", "orthogonal"]
_INIT = ("weights: torch (nn.Linear's default), gan_toy (He-uniform hidden, Glorot-uniform output), normal_0.02 "
         "(N(0, 0.02^2), PacGAN's), orthogonal (gain init_gain, GDPP's synthetic code); all but torch: zero biases")


class _MLPParams(Params):
    """Options the MLP generator and critic share."""

    width: int = Field(512, gt=0)
    init: Init = Field("torch", description=_INIT + "; preset toy: gan_toy")
    init_gain: float = Field(1.0, gt=0, description="init: orthogonal only: W W^T = gain^2 I (GDPP's code: 1.4)")
    batchnorm: bool = False
    bias: bool = Field(True, description="hidden layers have biases (false: PacGAN's batch-norm generator); "
                       "the output layer always has one")

    @field_validator("init_gain")
    @classmethod
    def _gain_needs_orthogonal(cls, gain: float, info: ValidationInfo) -> float:
        if gain != 1.0 and info.data.get("init") != "orthogonal":
            raise ValueError(f"the gain of init: orthogonal; init is {info.data.get('init')!r}")
        return gain


class MLPGeneratorParams(GeneratorParams, _MLPParams):
    depth: int = Field(4, ge=1, description="number of linear layers (gan_toy.py: 4)")
    activation: Literal["relu", "tanh", "leaky_relu"] = Field(
        "relu", description=f"between hidden layers (leaky_relu: slope {LEAKY_SLOPE})")
    output: Literal["linear", "tanh"] = Field("linear", description="tanh for image data in [-1, 1]")


class MLPCriticParams(CriticParams, _MLPParams):
    depth: int = Field(4, ge=1, description="number of linear layers (gan_toy.py: 4; WGAN-GP Fig. 1b: 12)")
    activation: Literal["relu", "tanh", "leaky_relu", "maxout"] = Field(
        "relu", description=f"between hidden layers (leaky_relu: slope {LEAKY_SLOPE}; maxout: maxout_pieces "
        "linear pieces per unit, PacGAN's discriminator)")
    maxout_pieces: int | None = Field(None, ge=2, validate_default=True,
                                      description="activation: maxout only: pieces per unit (PacGAN: 5)")
    pack: int = Field(1, ge=1, description="PacGAN's packing (Lin et al. 2018): the critic scores m samples "
                      "concatenated, all real or all generated; each step draws batch_size x m of each")

    @field_validator("maxout_pieces")
    @classmethod
    def _pieces_with_maxout(cls, pieces: int | None, info: ValidationInfo) -> int | None:
        if (info.data.get("activation") == "maxout") != (pieces is not None):
            raise ValueError("required with activation: maxout and only allowed with it")
        return pieces


class MLPGenerator(nn.Module):
    def __init__(self, p: MLPGeneratorParams, data_shape: tuple[int, ...]):
        super().__init__()
        self.data_shape = data_shape
        self.net = _mlp(p.latent_dim, math.prod(data_shape), p)
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
    """Scores (batch / pack,): one per group of ``pack`` consecutive samples, concatenated (PacGAN)."""

    def __init__(self, p: MLPCriticParams, data_shape: tuple[int, ...]):
        super().__init__()
        self.pack = p.pack
        self.net = _mlp(math.prod(data_shape) * p.pack, 1, p)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(packed(x.flatten(1), self.pack)).squeeze(1)

    @classmethod
    def stacked(cls, members: list[MLPCritic]) -> StackedMLPCritic:
        return StackedMLPCritic(members)


def packed(x: Tensor, pack: int) -> Tensor:
    """(..., B, d) -> (..., B / pack, pack * d): each group of ``pack`` consecutive samples concatenated."""
    if x.shape[-2] % pack:
        raise ValueError(f"a packed critic (pack {pack}) needs a multiple of {pack} samples, got {x.shape[-2]}")
    return x.reshape(*x.shape[:-2], x.shape[-2] // pack, pack * x.shape[-1])


class StackedMLPCritic(StackedMLP):
    """k MLP critics: samples (k, B, *data_shape) -> scores (k, B / pack)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.run(packed(x.flatten(2), self.members[0].pack)).squeeze(-1)

    def input_gradient(self, x: Tensor) -> Tensor | None:
        """dD(x)/dx per sample, (k, B, *data_shape), differentiable w.r.t. the weights: what
        ``torch.autograd.grad(D(x).sum(), x, create_graph=True)`` gives (the gradient penalty's gradient,
        WGAN-GP eq. 3), written out for a ReLU MLP (``_ReLUMLPInputGradient``). None for critics with batch
        norm, whose gradient couples the samples of a batch, and for packed critics: use autograd."""
        if not self.relu_mlp or self.members[0].pack > 1:
            return None
        params = [p for linear in self.linears for p in (linear.weight, linear.bias)]
        return _ReLUMLPInputGradient.apply(x, layer_dtypes(len(self.linears), x.device.type), *params)


GENERATORS.register("mlp", params=MLPGeneratorParams)(MLPGenerator)
CRITICS.register("mlp", params=MLPCriticParams)(MLPCritic)
