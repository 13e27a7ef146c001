"""GAN objectives, each registered with its options and the training defaults of its paper.

Every loss is written on raw critic outputs: the sigmoid (and its log) appears only inside the losses that
need it, as numerically stable ``softplus``. All functions return a value to *minimize*. Expectations are
means over the last (batch) dimension: critic outputs of shape ``(batch,)`` give a scalar, those of a
stacked ensemble, ``(members, batch)``, one loss per member.

Presets (``preset: paper`` or ``preset: toy`` in a spec) fill whatever the spec leaves unset:

* ``paper`` follows the loss's own paper (WGAN Algorithm 1; WGAN-GP Algorithm 1; DCGAN for minimax and
  non-saturating; LSGAN; SNGAN's hinge setup).
* ``toy`` follows the WGAN-GP authors' toy code ``gan_toy.py`` (batch 256; its MLP initialization,
  ``init: gan_toy``; WGAN-GP: Adam lr 1e-4, betas (0.5, 0.9), lambda 0.1; WGAN: RMSProp lr 5e-5, c = 0.01).
* WGAN's ``paper`` preset turns on ``train.critic_warmup`` (100 critic steps for the first 25 generator
  steps and every 500th, as the WGAN authors' code does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from bench.registry import NoParams, Params, Registry


@dataclass(frozen=True)
class GANLoss:
    """What one training objective asks of Algorithm 1.

    ``critic(critic_real, critic_fake)`` and ``generator(critic_fake)`` are the two losses to minimize;
    ``clip_value`` turns on weight clipping to [-c, c] (WGAN), ``gp_lambda`` the gradient penalty (WGAN-GP).
    ``family`` says what the critic estimates: ``wasserstein`` (a W1 estimate, WGAN eq. 3), ``divergence``
    (a sigmoid discriminator: JS for minimax) or ``margin`` (least squares, hinge).
    """

    critic: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    family: Literal["wasserstein", "divergence", "margin"]
    clip_value: float | None = None
    clip_when: Literal["before", "after"] = "after"
    gp_lambda: float = 0.0

    @property
    def structure(self) -> tuple:
        """Everything but the two loss functions: losses that agree on it make the same training loop, so
        their cells can train as one stacked ensemble (``bench.ensemble.stack_losses``)."""
        return (self.family, self.clip_value, self.clip_when, self.gp_lambda)


LOSSES: Registry[Callable[[Params], GANLoss]] = Registry("loss")


def discriminator_bce(critic_real: Tensor, critic_fake: Tensor) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(critic): Goodfellow et al. 2014, eq. 1, negated."""
    return F.softplus(-critic_real).mean(-1) + F.softplus(critic_fake).mean(-1)


def wasserstein_critic(critic_real: Tensor, critic_fake: Tensor) -> Tensor:
    """-(E[f(x)] - E[f(G(z))]): the negated W1 estimate of WGAN eq. 3 / Algorithm 1 line 6."""
    return critic_fake.mean(-1) - critic_real.mean(-1)


def wasserstein_generator(critic_fake: Tensor) -> Tensor:
    """-E[f(G(z))]: WGAN Algorithm 1 line 10."""
    return -critic_fake.mean(-1)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor, batch_dims: int = 1) -> Tensor:
    """WGAN-GP eq. 3: E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps * x + (1 - eps) * G(z), eps ~ U[0, 1].

    ``eps`` has shape (batch, 1, ...) so that it broadcasts over each sample's dimensions; with
    ``batch_dims=2`` the inputs are a stacked ensemble's, (members, batch, ...), and the result has one
    penalty per member. The norm is taken in fp32 (under bf16 autocast the gradient itself may be bf16).
    A critic with an ``input_gradient`` method (the stacked ReLU MLP) gives the gradient itself, without
    double backward through autograd; any other goes through ``torch.autograd.grad``.
    """
    x_hat = eps * real + (1 - eps) * fake
    input_gradient = getattr(critic, "input_gradient", None)
    grad = input_gradient(x_hat) if input_gradient is not None else None
    if grad is None:
        x_hat.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.float().flatten(batch_dims).norm(2, dim=-1) - 1) ** 2).mean(-1)


@torch.no_grad()
def clip_weights_(parameters: Iterable[Tensor], clip_value: float) -> None:
    """Clamp every critic parameter to [-c, c] (WGAN Algorithm 1 line 7; the reference code clips all
    parameters of netD, batch norm's included)."""
    for p in parameters:
        p.clamp_(-clip_value, clip_value)


_DCGAN_ADAM = {"optimizer.name": "adam", "optimizer.lr": 2e-4, "optimizer.betas": (0.5, 0.999)}
# gan_toy.py: batch 256, its lib/ops/linear.py initialization (bench.models.mlp._init_gan_toy)
_TOY = {"train.batch_size": 256, "generator.init": "gan_toy", "critic.init": "gan_toy"}


@LOSSES.register(
    "minimax",
    presets={  # DCGAN (Radford et al. 2016) training setup
        "paper": {**_DCGAN_ADAM, "train.n_critic": 1, "train.batch_size": 64},
        "toy": {**_DCGAN_ADAM, "train.n_critic": 1, **_TOY},
    },
)
def minimax(params: NoParams) -> GANLoss:
    """The original saturating game (Goodfellow et al. 2014, eq. 1): G minimizes E[log(1 - D(G(z)))]."""
    return GANLoss(critic=discriminator_bce, generator=lambda fake: -F.softplus(fake).mean(-1), family="divergence")


@LOSSES.register(
    "nonsaturating",
    presets={
        "paper": {**_DCGAN_ADAM, "train.n_critic": 1, "train.batch_size": 64},
        "toy": {**_DCGAN_ADAM, "train.n_critic": 1, **_TOY},
    },
)
def nonsaturating(params: NoParams) -> GANLoss:
    """The -log D trick (Goodfellow et al. 2014, sec. 3): G minimizes -E[log D(G(z))]."""
    return GANLoss(critic=discriminator_bce, generator=lambda fake: F.softplus(-fake).mean(-1), family="divergence")


class WGANParams(Params):
    clip_value: float = Field(0.01, gt=0, description="c: critic weights are clamped to [-c, c]")
    clip_when: Literal["before", "after"] = Field(
        "after", description="clip after each critic step (Algorithm 1) or before it (WGAN reference code)"
    )


_RMSPROP = {"optimizer.name": "rmsprop", "optimizer.lr": 5e-5, "train.n_critic": 5}


@LOSSES.register(
    "wgan",
    params=WGANParams,
    presets={  # WGAN Algorithm 1: alpha = 5e-5, c = 0.01, m = 64, n_critic = 5
        # critic_warmup: 100 critic steps while g < 25 and every 500th (the authors' code; WGAN Fig. 3 runs)
        "paper": {**_RMSPROP, "train.batch_size": 64, "train.critic_warmup": True},
        "toy": {**_RMSPROP, **_TOY},
    },
)
def wgan(params: WGANParams) -> GANLoss:
    """Wasserstein GAN with weight clipping (Arjovsky et al. 2017, Algorithm 1)."""
    return GANLoss(
        critic=wasserstein_critic,
        generator=wasserstein_generator,
        family="wasserstein",
        clip_value=params.clip_value,
        clip_when=params.clip_when,
    )


class WGANGPParams(Params):
    gp_lambda: float = Field(10.0, ge=0, description="lambda, the gradient penalty coefficient")
    allow_batchnorm_critic: bool = Field(
        False, description="train with a batch-norm critic anyway (WGAN-GP section 4: the penalty is per sample, "
        "which batch norm breaks; without this such a config is rejected)"
    )


@LOSSES.register(
    "wgan-gp",
    params=WGANGPParams,
    presets={
        # WGAN-GP Algorithm 1: lambda = 10, n_critic = 5, Adam alpha = 1e-4, beta1 = 0, beta2 = 0.9, m = 64
        "paper": {"optimizer.name": "adam", "optimizer.lr": 1e-4, "optimizer.betas": (0.0, 0.9),
                  "train.n_critic": 5, "train.batch_size": 64},
        # gan_toy.py: lambda = 0.1, Adam(1e-4, beta1 = 0.5, beta2 = 0.9), batch 256
        "toy": {"optimizer.name": "adam", "optimizer.lr": 1e-4, "optimizer.betas": (0.5, 0.9),
                "train.n_critic": 5, "loss.gp_lambda": 0.1, **_TOY},
    },
)
def wgan_gp(params: WGANGPParams) -> GANLoss:
    """WGAN with gradient penalty (Gulrajani et al. 2017, Algorithm 1)."""
    return GANLoss(
        critic=wasserstein_critic,
        generator=wasserstein_generator,
        family="wasserstein",
        gp_lambda=params.gp_lambda,
    )


@LOSSES.register(
    "lsgan",
    presets={  # Mao et al. 2017: Adam lr 2e-4, beta1 0.5
        "paper": {**_DCGAN_ADAM, "train.n_critic": 1, "train.batch_size": 64},
        "toy": {**_DCGAN_ADAM, "train.n_critic": 1, **_TOY},
    },
)
def lsgan(params: NoParams) -> GANLoss:
    """Least squares GAN (Mao et al. 2017, eq. 2 with a = 0, b = c = 1)."""
    return GANLoss(
        critic=lambda real, fake: 0.5 * ((real - 1) ** 2).mean(-1) + 0.5 * (fake**2).mean(-1),
        generator=lambda fake: 0.5 * ((fake - 1) ** 2).mean(-1),
        family="margin",
    )


_SNGAN_ADAM = {"optimizer.name": "adam", "optimizer.lr": 2e-4, "optimizer.betas": (0.0, 0.9), "train.n_critic": 5}


@LOSSES.register(
    "hinge",
    presets={  # Miyato et al. 2018 (SNGAN): Adam lr 2e-4, betas (0, 0.9), n_dis = 5
        "paper": {**_SNGAN_ADAM, "train.batch_size": 64},
        "toy": {**_SNGAN_ADAM, **_TOY},
    },
)
def hinge(params: NoParams) -> GANLoss:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018, eq. 16-17)."""
    return GANLoss(
        critic=lambda real, fake: F.relu(1 - real).mean(-1) + F.relu(1 + fake).mean(-1),
        generator=wasserstein_generator,
        family="margin",
    )
