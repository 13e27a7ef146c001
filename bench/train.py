"""The trainer: Algorithm 1 of WGAN (Arjovsky et al. 2017) and of WGAN-GP (Gulrajani et al. 2017).

One loop serves every loss in ``bench.losses``: ``n_critic`` critic steps on real and generated batches
(with weight clipping or a gradient penalty when the loss asks for them), then one generator step. Every
``eval.every`` generator steps the cell is measured (``bench.metrics``) and the values become curve points.
Read ``_train_loop`` and ``Run.critic_step`` / ``generator_step`` / ``evaluate``: that is the algorithm; set-up
follows them, checkpoints are ``bench.checkpoint``'s, records ``bench.record``'s.

``train`` knows nothing of schedulers or stores: it takes a resolved config and a seed and returns a
``RunResult``. Each random stream (data, noise, penalty, evaluation) is its own seeded generator, so the same
config and seed give the same curves on CPU, and a checkpoint restores the run exactly where it was.

A ``Run`` is a stack of cells (``bench.ensemble``): ``train`` trains a stack of one; ``train_ensemble``
several seeds of one config (or configs that differ only in a loss of the same structure, such as minimax
and -log D) at once, each member with its own streams and loss, so each gets the curves it would get alone,
bit for bit, for a fraction of the per-step overhead. A cell computes with its own ``train.threads``,
whatever the process had.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import Tensor, nn

from bench import checkpoint, seeding
from bench.data import DATASETS
from bench.ensemble import FlatParameters, Single, member_losses, scores_each_sample_alone, stack, stack_losses
from bench.losses import clip_weights_, gradient_penalty
from bench.metrics import METRICS, EvalContext
from bench.metrics.critic import gradient_norms
from bench.models import CRITICS, GENERATORS
from bench.optim import build_optimizer
from bench.record import Record, RunResult, Status


@dataclass
class Hooks:
    """What a caller may plug into a run.

    ``on_eval(generator_iter, values)`` sees every evaluation; returning True stops the run as ``pruned``
    (how an Optuna pruner acts). ``checkpoint_path``: where ``train.checkpoint_every`` saves, and where
    an interrupted run resumes from.
    """

    on_eval: Callable[[int, dict[str, float]], bool | None] | None = None
    checkpoint_path: Path | None = None


def train(config: dict, seed: int, hooks: Hooks | None = None, device: str = "cpu") -> RunResult:
    """Train one cell; see the module docstring."""
    hooks = hooks or Hooks()
    with _threads(config["train"]["threads"]):
        return _train_loop(Run([config], [seed], device, hooks.checkpoint_path), hooks)[0]


def train_ensemble(config: dict | list[dict], seeds: list[int], device: str = "cpu") -> list[RunResult]:
    """Train the cells ``(config, seed) for seed in seeds`` together, as one stacked ensemble
    (``bench.ensemble``): batched matmuls, per-member batch-norm statistics, random streams, losses and
    divergence; one optimizer over the stacked parameters, whose elementwise updates (Adam, RMSProp, SGD,
    weight clipping) are each member's own. ``config`` may be one config per seed, differing in the loss
    only, with losses of one ``GANLoss.structure`` (``bench.ensemble.stack_losses``). Each result equals
    ``train(config, seed)`` bit for bit; ``wall_s`` and ``train_s`` are the ensemble's."""
    configs = [config] * len(seeds) if isinstance(config, dict) else list(config)
    if len(configs) != len(seeds):
        raise ValueError(f"train_ensemble: {len(configs)} configs for {len(seeds)} seeds")
    with _threads(configs[0]["train"]["threads"]):
        return _train_loop(Run(configs, list(seeds), device), Hooks())


def _train_loop(run: Run, hooks: Hooks) -> list[RunResult]:
    """Algorithm 1, lines 1-2: generator steps, each after n_critic critic steps; every ``eval.every`` steps
    an evaluation (and every ``train.checkpoint_every`` a checkpoint), off the training clock."""
    tr, ev = run.config["train"], run.config["eval"]
    checkpoint_every = tr["checkpoint_every"] if hooks.checkpoint_path is not None else 0
    run.start_clock()
    while run.step < tr["generator_iters"]:  # line 1
        for _ in range(critic_steps(run.config, run.step)):  # line 2
            run.critic_step()
        if not run.fixed_generator:  # generator.fixed (WGAN-GP Fig. 1a) trains the critic only
            run.generator_step()
        run.step += 1
        run.watch_divergence()

        last = run.step == tr["generator_iters"]
        evaluating = run.step % ev["every"] == 0 or last
        checkpointing = bool(checkpoint_every) and (run.step % checkpoint_every == 0 or last)
        if not (evaluating or checkpointing):
            continue
        run.stop_clock()
        if not run.end_diverged_members():
            break
        if evaluating:
            run.evaluate()
        if checkpointing:
            checkpoint.save(hooks.checkpoint_path, run)
        if evaluating and hooks.on_eval is not None and hooks.on_eval(run.step, run.members[0].record.final):
            return run.results("pruned")
        run.start_clock()
    return run.results("ok")


def critic_steps(cfg: dict, step: int) -> int:
    """n_critic, or 100 during the WGAN reference code's warm-up (``train.critic_warmup``)."""
    if cfg["train"]["critic_warmup"] and (step < 25 or step % 500 == 0):
        return 100
    return cfg["train"]["n_critic"]


def warmup_share(cfg: dict) -> float:
    """A cell's training steps (critic and generator) over what they would be without the warm-up: the
    factor by which ``critic_warmup`` lengthens the run (``bench.estimate``)."""
    iters, n_critic = cfg["train"]["generator_iters"], cfg["train"]["n_critic"]
    if not cfg["train"]["critic_warmup"] or iters == 0:
        return 1.0
    warm = min(iters, 25) + max(0, (iters - 1) // 500)  # steps 0-24, then 500, 1000, ... (``critic_steps``)
    return (iters * (n_critic + 1) + warm * (100 - n_critic)) / (iters * (n_critic + 1))


class Run:
    """A stack of cells in training: its networks and optimizers (one stack each), its members' data sets,
    random streams and records, and its clock. Tensors carry a leading member dimension, (k, m, ...), and
    losses one value per member: the gradient of their sum is each member's own."""

    def critic_step(self) -> None:
        """WGAN Alg. 1 lines 3-7 / WGAN-GP Alg. 1 lines 3-9: sample m real x and m z; descend the critic loss
        (WGAN line 5, negated; WGAN-GP line 7, with lambda times the gradient penalty on x_hat = eps x +
        (1 - eps) G(z)); then clip w to [-c, c] (WGAN line 7; ``clip_when: before`` clips first)."""
        loss = self.loss
        real = self.real_batch()  # x ~ P_r
        with torch.no_grad(), self.autocast:
            fake = self.generate(real, self.noise()).float()  # G(z), z ~ p(z)
        if loss.clip_value is not None and loss.clip_when == "before":
            clip_weights_([self.critic_params.flat], loss.clip_value)
        with self.autocast:
            critic_loss = loss.critic(*self.score_real_and_fake(real, fake))  # from D(x) and D(G(z))
            if loss.gp_lambda:
                penalty = gradient_penalty(self.critic, real, fake, self.penalty_eps(), batch_dims=2)
                critic_loss = critic_loss + loss.gp_lambda * penalty
        self.critic_loss = _descend(critic_loss, self.critic_params, self.critic_opt)  # WGAN l. 6, WGAN-GP l. 9
        if loss.clip_value is not None and loss.clip_when == "after":
            clip_weights_([self.critic_params.flat], loss.clip_value)  # WGAN line 7

    def generator_step(self) -> None:
        """WGAN Alg. 1 lines 9-11 / WGAN-GP Alg. 1 lines 11-12: sample m z; descend the generator loss
        (-1/m sum D(G(z)) for the Wasserstein losses) against the critic, held fixed."""
        self.critic.requires_grad_(False)  # only the generator's parameters get gradients
        with self.autocast:
            generator_loss = self.loss.generator(self.critic(self.generator(self.noise())))
        self.generator_loss = _descend(generator_loss, self.generator_params, self.generator_opt)  # theta update
        self.critic.requires_grad_(True)

    def evaluate(self) -> None:
        """Measure each training member on its own plain networks (``stack.members``) and record the values:
        the last losses, the gradient norms of WGAN-GP Fig. 1b and the config's metrics (``bench.metrics``)."""
        self.generator.sync_members()
        self.critic.sync_members()
        for i in self.live:
            member, critic, loss = self.members[i], self.critic.members[i], self.member_losses[i]
            samples = self.generated_samples(i)
            values = {"critic_loss": float(self.critic_loss[i].detach())}
            if not self.fixed_generator:
                values["generator_loss"] = float(self.generator_loss[i].detach())
            real, fake = member.eval_real[: self.m].to(self.device), samples[: self.m].to(self.device)
            values.update(gradient_norms(critic, loss, real, fake))
            ctx = EvalContext(samples, member.eval_real, member.dataset, critic, loss, self.configs[i], self.device)
            measured = [METRICS.get(name)(ctx) for name in self.config["eval"]["metrics"]]
            member.record.add(self.step, self.train_s, values, measured, samples,
                              self.config["eval"]["snapshot_samples"])

    # Set-up, and the parts of the steps.

    def __init__(self, configs: list[dict], seeds: list[int], device: str, checkpoint_path: Path | None = None):
        self.config, self.configs, self.device = configs[0], configs, torch.device(device)  # config: all but the loss
        self.member_losses = member_losses(configs)
        self.loss = stack_losses(self.member_losses)
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.t_start = time.perf_counter()
        g_cfg, tr = self.config["generator"], self.config["train"]
        self.latent_dim, self.fixed_generator = g_cfg["latent_dim"], g_cfg["fixed"]
        # m: samples per batch; with a packed critic (PacGAN, critic.pack), batch_size packs of pack samples each.
        self.m = tr["batch_size"] * self.config["critic"].get("pack", 1)
        built = [_member(self.config, seed, self.device) for seed in seeds]
        self.members = [member for member, _, _ in built]
        self.step, self.train_s, self.resumed_from = 0, 0.0, None
        ckpt = checkpoint.load(checkpoint_path, self.device)
        if ckpt is not None:
            checkpoint.restore_member(ckpt, *built[0])
            self.step, self.train_s, self.resumed_from = ckpt["step"], ckpt["train_s"], ckpt["step"]

        k = len(seeds)
        self.generator = stack([generator for _, generator, _ in built])  # inputs and outputs: (k, batch, ...)
        self.critic = stack([critic for _, _, critic in built])
        # All weights of each stack in one buffer, one tensor per member for the optimizer: an optimizer step
        # (or clipping) is a few ops, and each member's update the one it would get alone. Single wraps one
        # network, whose parameters have no member dimension.
        self.generator_params = FlatParameters(self.generator, 1 if isinstance(self.generator, Single) else k)
        self.critic_params = FlatParameters(self.critic, 1 if isinstance(self.critic, Single) else k)
        self.generator_opt = build_optimizer(self.config["optimizer"], self.generator_params.members, "generator")
        self.critic_opt = build_optimizer(self.config["optimizer"], self.critic_params.members, "critic")
        if ckpt is not None:
            self.generator_opt.load_state_dict(ckpt["generator_opt"])
            self.critic_opt.load_state_dict(ckpt["critic_opt"])
        self.eps_shape = (self.m,) + (1,) * len(self.members[0].dataset.shape)
        # Asked of the plain members: a stacked batch norm is a class of its own.
        self.one_call = all(map(scores_each_sample_alone, self.critic.members))
        self.autocast = _autocast(self.device, tr["precision"])
        self.critic_loss = self.generator_loss = torch.full((k,), math.nan)  # the last step's
        self.live = list(range(k))  # members still training (a diverged one ends; the others go on)
        self.first_nonfinite = torch.full((k,), -1, device=self.device)  # generator step of each one's first NaN/inf

    def real_batch(self) -> Tensor:
        return torch.stack([member.dataset.sample(self.m) for member in self.members]).to(self.device)

    def noise(self) -> Tensor:
        """z ~ p(z) = N(0, I): m per member, from its ``noise`` stream."""
        return torch.stack([torch.randn(self.m, self.latent_dim, generator=member.noise_rng, device=self.device)
                            for member in self.members])

    def penalty_eps(self) -> Tensor:
        """eps ~ U[0, 1] per sample (WGAN-GP Alg. 1 line 4), from each member's ``penalty`` stream."""
        return torch.stack([torch.rand(self.eps_shape, generator=member.penalty_rng, device=self.device)
                            for member in self.members])

    def generate(self, real: Tensor, z: Tensor) -> Tensor:
        """G(z); or, with ``generator.fixed``, real data + N(0, I) (gan_toy.py FIXED_GENERATOR)."""
        if self.fixed_generator:
            return real + torch.stack([torch.randn(real.shape[1:], generator=member.noise_rng, device=self.device)
                                       for member in self.members])
        return self.generator(z)

    def score_real_and_fake(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D(x) and D(G(z)). A critic that scores each sample alone takes both batches in one call (half
        the operations, twice the rows per matmul; the same scores); one with batch norm takes each batch
        on its own, as the papers' code does, so each is normalized by its own statistics."""
        if not self.one_call:
            return self.critic(real), self.critic(fake)
        scores = self.critic(torch.cat([real, fake], dim=1))
        half = scores.shape[1] // 2  # m scores, or m / pack for a packed critic
        return scores[:, :half], scores[:, half:]

    @torch.no_grad()
    def generated_samples(self, i: int) -> Tensor:
        """Member i's ``eval.n_samples`` samples from its fixed evaluation noise (current weights: call
        ``sync_members`` first)."""
        member, eval_fixed = self.members[i], seeding.generator(self.members[i].seed, "eval-fixed")
        chunks = []
        for j in range(0, len(member.eval_noise), self.m):
            if self.fixed_generator:
                real = member.eval_real[j : j + self.m].to(self.device)
                chunks.append(real + torch.randn(real.shape, generator=eval_fixed, device="cpu").to(self.device))
            else:
                chunks.append(self.generator.members[i](member.eval_noise[j : j + self.m].to(self.device)))
        return torch.cat(chunks).float().cpu()

    def watch_divergence(self) -> None:
        """Note the generator step of each member's first NaN or inf loss, without a host sync (read at the
        next evaluation)."""
        finite = torch.isfinite(self.critic_loss)
        if not self.fixed_generator:
            finite &= torch.isfinite(self.generator_loss)
        self.first_nonfinite = torch.where((self.first_nonfinite < 0) & ~finite, self.step, self.first_nonfinite)

    def end_diverged_members(self) -> bool:
        """End the members that diverged (each as a ``diverged`` result); whether any still trains."""
        for i, at in enumerate(self.first_nonfinite.tolist()):
            if at >= 0 and i in self.live:
                self.members[i].result = self.result(i, "diverged", diverged_at=at)
                self.live.remove(i)
        return bool(self.live)

    def start_clock(self) -> None:
        self.tick = time.perf_counter()

    def stop_clock(self) -> None:
        """The training clock (``train_s``) stops while measuring."""
        self.train_s += time.perf_counter() - self.tick

    def result(self, i: int, status: Status, diverged_at: int | None = None) -> RunResult:
        return self.members[i].record.result(
            status, self.step, started_at=self.started_at, wall_s=time.perf_counter() - self.t_start,
            train_s=self.train_s, diverged_at=diverged_at, resumed_from=self.resumed_from,
            ensemble_size=len(self.members),
        )

    def results(self, status: Status) -> list[RunResult]:
        """Every member's result: ``status`` for those still training, ``diverged`` for the others."""
        for i in self.live:
            record = self.members[i].record
            if record.samples is None and self.step == self.resumed_from:  # finished before its result was stored
                self.generator.sync_members()
                record.samples = self.generated_samples(i)
            self.members[i].result = self.result(i, status)
        return [member.result for member in self.members]


@dataclass
class Member:
    """One cell of a stack: its data set, random streams, evaluation inputs, record and, once ended, result."""

    seed: int
    dataset: object
    noise_rng: torch.Generator
    penalty_rng: torch.Generator
    eval_real: Tensor
    eval_noise: Tensor
    record: Record = field(default_factory=Record)
    result: RunResult | None = None


def _member(config: dict, seed: int, device: torch.device) -> tuple[Member, nn.Module, nn.Module]:
    """A cell's member, generator and critic (weights from its ``init`` stream). Evaluation uses its own fixed
    noise and held-out real samples: measuring never moves a training stream."""
    dataset = DATASETS.build(config["dataset"], "name", seed)
    torch.manual_seed(seeding.stream_seed(seed, "init"))  # weight initialization
    generator = GENERATORS.build(config["generator"], "arch", dataset.shape).to(device)
    critic = CRITICS.build(config["critic"], "arch", dataset.shape).to(device)
    n, latent_dim = config["eval"]["n_samples"], config["generator"]["latent_dim"]
    member = Member(
        seed, dataset, seeding.generator(seed, "noise", device), seeding.generator(seed, "penalty", device),
        eval_real=dataset.reference(n),
        eval_noise=torch.randn(n, latent_dim, generator=seeding.generator(seed, "eval")),
    )
    return member, generator, critic


def _descend(loss: Tensor, params: FlatParameters, optimizer: torch.optim.Optimizer) -> Tensor:
    """One optimizer step down the gradient of the members' summed losses, each member's own; ``loss``."""
    loss.sum().backward()
    params.gather_grads()
    optimizer.step()
    return loss


@contextlib.contextmanager
def _threads(n: int):
    """torch's intra-op threads set to the cell's ``train.threads`` while it trains, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
