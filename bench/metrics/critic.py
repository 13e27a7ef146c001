"""What the critic itself says about the distance between real and generated data."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from bench.losses import GANLoss, discriminator_bce
from bench.metrics import METRICS, Column, EvalContext
from bench.models import weight_layers


def gradient_norms(critic: torch.nn.Module, loss: GANLoss, real: Tensor, fake: Tensor) -> dict[str, float]:
    """Diagnostics of WGAN-GP section 3 / Fig. 1b, measured at every evaluation: the norm of the critic's
    gradient w.r.t. its input (mean over real and generated samples) and of the critic loss's gradient w.r.t.
    each layer's weights."""
    x = torch.cat([real, fake]).requires_grad_(True)
    (grad_x,) = torch.autograd.grad(critic(x).sum(), x)
    out = {"critic_input_grad_norm": float(grad_x.flatten(1).norm(dim=1).mean())}
    layers = weight_layers(critic)
    grads = torch.autograd.grad(loss.critic(critic(real), critic(fake)), [m.weight for _, m in layers])
    out.update({f"critic_grad_norm.layer_{i:02d}": float(g.norm()) for i, g in enumerate(grads)})
    return out


@torch.no_grad()
def critic_scores(critic: torch.nn.Module, x: Tensor, batch_size: int, device) -> Tensor:
    return torch.cat([critic(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])


@METRICS.register(
    "w_estimate",
    columns=[
        Column("w_estimate", False, "WGAN-family critics: mean f(real) - mean f(fake) (WGAN Fig. 3)"),
        Column("js_estimate", False, "sigmoid discriminators: 1/2 L(D, g) + log 2 (WGAN Fig. 4)"),
        Column("critic_gap", None, "least-squares / hinge critics: mean D(real) - mean D(fake)"),
    ],
)
def w_estimate(ctx: EvalContext) -> dict[str, float]:
    """The critic's own estimate on held-out real and generated samples, named by what the loss makes of
    it: a W1 estimate (WGAN eq. 3), a Jensen-Shannon estimate (WGAN Fig. 4) or a plain score gap."""
    bs = ctx.config["train"]["batch_size"] * ctx.config["critic"].get("pack", 1)  # whole packs (PacGAN)
    real = critic_scores(ctx.critic, ctx.real, bs, ctx.device)
    fake = critic_scores(ctx.critic, ctx.samples, bs, ctx.device)
    if ctx.loss.family == "wasserstein":
        return {"w_estimate": float(real.mean() - fake.mean())}
    if ctx.loss.family == "divergence":
        return {"js_estimate": float(math.log(2) - 0.5 * discriminator_bce(real, fake))}
    return {"critic_gap": float(real.mean() - fake.mean())}


SURFACE_RANGE, SURFACE_POINTS = 3.0, 128  # gan_toy.py: RANGE = 3, N_POINTS = 128
SURFACE_REAL_POINTS = 512  # held-out real samples stored beside the surface, to draw over it


@METRICS.register(
    "critic_surface",
    requires={"toy"},
    columns=[],
    artifacts={
        "critic_surface": "(3, 128, 128) float32: grid x, grid y, critic value D(x, y) on [-3, 3]^2 (WGAN-GP Fig. 1a)",
        "critic_surface_real": "(512, 2) float32: the held-out real samples the surface is drawn with",
    },
)
def critic_surface(ctx: EvalContext) -> dict[str, np.ndarray]:
    """The critic's value surface on a 128 x 128 grid over [-3, 3]^2, as gan_toy.py's ``generate_image``
    draws it (WGAN-GP Fig. 1a). Stored as an artifact per evaluation, never as a curve."""
    axis = torch.linspace(-SURFACE_RANGE, SURFACE_RANGE, SURFACE_POINTS)
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")  # rows follow y, columns follow x
    points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
    values = critic_scores(ctx.critic, points, 4096, ctx.device).view(SURFACE_POINTS, SURFACE_POINTS)
    return {
        "critic_surface": torch.stack([grid_x, grid_y, values]).numpy().astype(np.float32),
        "critic_surface_real": ctx.real[:SURFACE_REAL_POINTS].numpy().astype(np.float32),
    }


WEIGHT_SAMPLE = 50_000  # weights kept per evaluation: a uniform random subset when the critic has more


@METRICS.register(
    "critic_weights",
    columns=[],
    artifacts={"critic_weights": "1-D float32: critic weight-matrix entries (all, or a uniform subset of 50,000)"},
)
def critic_weights(ctx: EvalContext) -> dict[str, np.ndarray]:
    """The entries of the critic's weight matrices / kernels (biases and norm parameters left out), for the
    weight histograms of WGAN-GP Fig. 1b (right): clipping piles them up at +-c, a gradient penalty does not."""
    weights = torch.cat([m.weight.detach().float().flatten().cpu() for _, m in weight_layers(ctx.critic)])
    if len(weights) > WEIGHT_SAMPLE:
        pick = torch.randperm(len(weights), generator=torch.Generator().manual_seed(0))[:WEIGHT_SAMPLE]
        weights = weights[pick]
    return {"critic_weights": weights.numpy()}
