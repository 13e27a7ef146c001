"""What the critic itself says about the distance between real and generated data."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bench.losses import discriminator_bce
from bench.metrics import METRICS, Column, EvalContext


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
    bs = ctx.config["train"]["batch_size"]
    real = critic_scores(ctx.critic, ctx.real, bs, ctx.device)
    fake = critic_scores(ctx.critic, ctx.samples, bs, ctx.device)
    if ctx.loss.family == "wasserstein":
        return {"w_estimate": float(real.mean() - fake.mean())}
    if ctx.loss.family == "divergence":
        return {"js_estimate": float(math.log(2) - 0.5 * discriminator_bce(real, fake))}
    return {"critic_gap": float(real.mean() - fake.mean())}
