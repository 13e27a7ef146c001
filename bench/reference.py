"""The papers' Algorithm 1, written the plain way: an independent oracle for ``bench.train``.

One ``nn.Module`` generator and one critic, torch's own optimizers on their parameters, autograd for every
gradient (``torch.autograd.grad(..., create_graph=True)`` for the gradient penalty), ``clamp_`` for weight
clipping, and the critic called on the real and on the generated batch separately. None of the harness's
speed-ups: no stacked ensembles, no flat parameter tensor, no written-out backward, no mixed precision.

It takes a resolved config and a seed and draws from the same seeded streams as ``bench.train``
(``bench.seeding``: weights from ``init``, the data set's own ``data`` stream, ``noise`` for z, ``penalty``
for epsilon), in the same order within each stream, so the two train the same networks on the same
numbers and must end with the same weights up to float rounding (``tests/test_reference.py``).
``bench.perf`` times the harness against it.

The algorithms, line by line; the loop in ``train`` cites these lines.

Goodfellow et al. 2014, Algorithm 1 (``minimax``; ``nonsaturating`` is the -log D variant of its section 3),
with k = ``n_critic``::

    1  for number of training iterations do
    2    for k steps do
    3      sample a minibatch of m noise samples z ~ p_g(z)
    4      sample a minibatch of m examples x ~ p_data(x)
    5      update the discriminator by ascending  grad_d 1/m sum [log D(x) + log(1 - D(G(z)))]
    6    end for
    7    sample a minibatch of m noise samples z ~ p_g(z)
    8    update the generator by descending  grad_g 1/m sum log(1 - D(G(z)))
           (-log D: ascending  grad_g 1/m sum log D(G(z)))
    9  end for

Arjovsky et al. 2017 (WGAN), Algorithm 1 (``wgan``)::

    1  while theta has not converged do
    2    for t = 0, ..., n_critic do
    3      sample {x_i} ~ P_r, a batch of m real samples
    4      sample {z_i} ~ p(z), a batch of m prior samples
    5      g_w <- grad_w [1/m sum f_w(x_i) - 1/m sum f_w(g_theta(z_i))]
    6      w <- w + alpha * RMSProp(w, g_w)
    7      w <- clip(w, -c, c)
    8    end for
    9    sample {z_i} ~ p(z), a batch of m prior samples
    10   g_theta <- -grad_theta 1/m sum f_w(g_theta(z_i))
    11   theta <- theta - alpha * RMSProp(theta, g_theta)
    12 end while

Gulrajani et al. 2017 (WGAN-GP), Algorithm 1 (``wgan-gp``)::

    1  while theta has not converged do
    2    for t = 1, ..., n_critic do
    3      for i = 1, ..., m do
    4        sample real data x ~ P_r, latent variable z ~ p(z), a random number eps ~ U[0, 1]
    5        x_tilde <- G_theta(z)
    6        x_hat <- eps x + (1 - eps) x_tilde
    7        L_i <- D_w(x_tilde) - D_w(x) + lambda (||grad_x_hat D_w(x_hat)||_2 - 1)^2
    8      end for
    9      w <- Adam(grad_w 1/m sum L_i, w, alpha, beta_1, beta_2)
    10   end for
    11   sample a batch of latent variables {z_i} ~ p(z)
    12   theta <- Adam(grad_theta 1/m sum -D_w(G_theta(z_i)), theta, alpha, beta_1, beta_2)
    13 end while

The optimizer, learning rates, m, n_critic, c and lambda are the config's (its preset gives each paper's).
Two options of the WGAN reference code (not of the paper) are followed too: ``loss.clip_when: before``
clips at the start of each critic step instead of line 7, and ``train.critic_warmup`` trains the critic
100 times per generator step for the first 25 generator steps and every 500th.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench import seeding
from bench.data import DATASETS
from bench.models import CRITICS, GENERATORS


def discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Goodfellow Alg. 1 line 5, negated to be minimized: -1/m sum [log D(x) + log(1 - D(G(z)))], with
    D = sigmoid(score), so log D = logsigmoid(score) and log(1 - D) = logsigmoid(-score)."""
    return -(F.logsigmoid(real_scores).mean() + F.logsigmoid(-fake_scores).mean())


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN Alg. 1 line 5 negated (the critic descends it): 1/m sum f(G(z)) - 1/m sum f(x); the first two
    terms of WGAN-GP Alg. 1 line 7."""
    return fake_scores.mean() - real_scores.mean()


# loss.name -> (critic loss on the scores of a real and a generated batch, generator loss on the latter's)
LOSSES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    # Goodfellow Alg. 1 line 8: descend 1/m sum log(1 - D(G(z)))
    "minimax": (discriminator_loss, lambda fake_scores: F.logsigmoid(-fake_scores).mean()),
    # Goodfellow sec. 3: ascend 1/m sum log D(G(z)), i.e. descend its negation
    "nonsaturating": (discriminator_loss, lambda fake_scores: -F.logsigmoid(fake_scores).mean()),
    # WGAN Alg. 1 line 10 / WGAN-GP Alg. 1 line 12: descend -1/m sum f(G(z))
    "wgan": (wasserstein_critic_loss, lambda fake_scores: -fake_scores.mean()),
    "wgan-gp": (wasserstein_critic_loss, lambda fake_scores: -fake_scores.mean()),
}


@dataclass
class ReferenceRun:
    """What ``train`` returns: the trained networks (in training mode, as the loop left them), the data set
    (its modes, held-out samples), one loss value per generator step (the last critic step's critic loss,
    the generator loss) and ``clock``: ``time.perf_counter()`` when training starts and after each
    generator step, so ``clock[j] - clock[i]`` is the training time of steps i + 1 to j."""

    generator: nn.Module
    critic: nn.Module
    dataset: object
    critic_losses: list[float] = field(default_factory=list)
    generator_losses: list[float] = field(default_factory=list)
    clock: list[float] = field(default_factory=list)


def _optimizer(block: dict, parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """torch's optimizer of the resolved ``optimizer`` block, with its default (per-tensor) implementation."""
    if block["name"] == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=tuple(block["betas"]), eps=block["eps"])
    if block["name"] == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, alpha=block["alpha"], eps=block["eps"],
                                   momentum=block["momentum"])
    if block["name"] == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=block["momentum"], nesterov=block["nesterov"])
    raise ValueError(f"reference: no optimizer {block['name']!r} (adam, rmsprop, sgd)")


def n_critic_at(config: dict, step: int) -> int:
    """Critic steps before generator step ``step`` (0-based): ``n_critic``; with ``train.critic_warmup``,
    100 for the first 25 generator steps and every 500th (WGAN reference code, ``main.py``)."""
    if config["train"]["critic_warmup"] and (step < 25 or step % 500 == 0):
        return 100
    return config["train"]["n_critic"]


def check_supported(config: dict) -> None:
    """Raise ``ValueError`` for a config this loop does not implement: a loss other than the four
    algorithms above, a fixed generator (no Algorithm 1), bf16 (a speed option of the harness), or a packed
    critic (PacGAN's, not these algorithms)."""
    if config["loss"]["name"] not in LOSSES:
        raise ValueError(f"reference: no loss {config['loss']['name']!r} (only {', '.join(LOSSES)})")
    if config["generator"]["fixed"]:
        raise ValueError("reference: generator.fixed trains no generator: it is not Algorithm 1")
    if config["train"]["precision"] != "fp32":
        raise ValueError(f"reference: trains in fp32 only, not {config['train']['precision']}")
    if config["critic"].get("pack", 1) > 1:
        raise ValueError("reference: a packed critic (critic.pack) is PacGAN's, not one of these algorithms")


def clip_critic(critic: nn.Module, clip_value: float) -> None:
    """WGAN Alg. 1 line 7: w <- clip(w, -c, c), every critic parameter (batch norm's too, as the code)."""
    with torch.no_grad():
        for p in critic.parameters():
            p.clamp_(-clip_value, clip_value)


def gradient_penalty(critic: nn.Module, x: Tensor, x_tilde: Tensor, penalty_rng: torch.Generator) -> Tensor:
    """WGAN-GP Alg. 1 lines 4, 6-7: 1/m sum (||grad_x_hat D(x_hat)||_2 - 1)^2, x_hat on the line from a
    generated sample to a real one; ``create_graph`` so that its gradient w.r.t. w (line 9) exists."""
    eps = torch.rand(len(x), *[1] * (x.dim() - 1), generator=penalty_rng)
    x_hat = (eps * x + (1 - eps) * x_tilde).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def train(config: dict, seed: int) -> ReferenceRun:
    """Train ``config`` (resolved, see ``bench.spec.resolve_config``) for ``train.generator_iters`` generator
    steps on seed ``seed``'s streams; see the module docstring."""
    check_supported(config)
    critic_loss_fn, generator_loss_fn = LOSSES[config["loss"]["name"]]
    clip_value = config["loss"].get("clip_value")  # c (WGAN); None: no clipping
    clip_when = config["loss"].get("clip_when", "after")
    gp_lambda = config["loss"].get("gp_lambda", 0.0)  # lambda (WGAN-GP); 0: no penalty
    m, latent_dim = config["train"]["batch_size"], config["generator"]["latent_dim"]

    dataset = DATASETS.build(config["dataset"], "name", seed)  # draws real batches from its "data" stream
    torch.manual_seed(seeding.stream_seed(seed, "init"))  # initial theta_0, then w_0
    generator = GENERATORS.build(config["generator"], "arch", dataset.shape)
    critic = CRITICS.build(config["critic"], "arch", dataset.shape)
    noise_rng = seeding.generator(seed, "noise")  # z ~ p(z) = N(0, I)
    penalty_rng = seeding.generator(seed, "penalty")  # eps ~ U[0, 1]
    optimizer = config["optimizer"]
    generator_opt = _optimizer(optimizer, generator.parameters(), optimizer["generator_lr"])
    critic_opt = _optimizer(optimizer, critic.parameters(), optimizer["critic_lr"])

    run = ReferenceRun(generator, critic, dataset)
    critic_losses, generator_losses = [], []  # tensors, read once at the end: no host synchronization per step
    run.clock.append(time.perf_counter())
    for step in range(config["train"]["generator_iters"]):  # WGAN line 1
        critic.requires_grad_(True)
        for _ in range(n_critic_at(config, step)):  # WGAN line 2
            x = dataset.sample(m)  # WGAN line 3
            z = torch.randn(m, latent_dim, generator=noise_rng)  # WGAN line 4
            with torch.no_grad():
                x_tilde = generator(z)  # WGAN-GP line 5
            if clip_value is not None and clip_when == "before":
                clip_critic(critic, clip_value)
            critic_loss = critic_loss_fn(critic(x), critic(x_tilde))  # WGAN line 5, Goodfellow line 5
            if gp_lambda:
                penalty = gradient_penalty(critic, x, x_tilde, penalty_rng)
                critic_loss = critic_loss + gp_lambda * penalty  # WGAN-GP line 7
            critic_opt.zero_grad()
            critic_loss.backward()
            critic_opt.step()  # WGAN line 6, WGAN-GP line 9
            if clip_value is not None and clip_when == "after":
                clip_critic(critic, clip_value)  # WGAN line 7

        critic.requires_grad_(False)  # the generator step moves theta only
        z = torch.randn(m, latent_dim, generator=noise_rng)  # WGAN line 9, WGAN-GP line 11
        generator_loss = generator_loss_fn(critic(generator(z)))  # WGAN line 10
        generator_opt.zero_grad()
        generator_loss.backward()
        generator_opt.step()  # WGAN line 11, WGAN-GP line 12
        critic_losses.append(critic_loss.detach())
        generator_losses.append(generator_loss.detach())
        run.clock.append(time.perf_counter())
    critic.requires_grad_(True)
    if critic_losses:
        run.critic_losses = torch.stack(critic_losses).tolist()
        run.generator_losses = torch.stack(generator_losses).tolist()
    return run
