"""The trainer: Algorithm 1 of WGAN (Arjovsky et al. 2017) and of WGAN-GP (Gulrajani et al. 2017).

One loop serves every loss in ``bench.losses``: ``n_critic`` critic steps on real and generated batches
(with weight clipping or a gradient penalty when the loss asks for them), then one generator step. Every
``eval.every`` generator steps the cell is measured (``bench.metrics``) and the values become curve points.

``train`` knows nothing of schedulers or stores: it takes a resolved config and a seed and returns a
``RunResult``. Each random stream (data, noise, penalty, evaluation) is its own seeded generator, so the same
config and seed give the same curves on CPU, and a checkpoint restores the run exactly where it was.

The loop runs on stacks (``bench.models.stack``): ``train`` is a stack of one; ``train_ensemble`` trains
several seeds of one config (or of configs that differ only in a loss of the same structure, such as
minimax and -log D) at once, each member with its own streams and loss, so each gets the curves it would
get alone (up to float rounding) for a fraction of the per-step overhead.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from torch import Tensor, nn

from bench import seeding
from bench.data import DATASETS
from bench.losses import LOSSES, GANLoss, clip_weights_, gradient_penalty, stack_losses
from bench.metrics import METRICS, EvalContext
from bench.models import CRITICS, GENERATORS, scores_each_sample_alone, stack, weight_layers
from bench.optim import FlatParameters, build_optimizer

Status = Literal["ok", "diverged", "failed", "timeout", "pruned"]
CurvePoint = tuple[int, float, str, float]  # (generator_iter, train_s, metric, value)


@dataclass
class Hooks:
    """What a caller may plug into a run.

    ``on_eval(generator_iter, values)`` sees every evaluation; returning True stops the run as ``pruned``
    (how an Optuna pruner acts). ``checkpoint_path``: where ``train.checkpoint_every`` saves, and where
    an interrupted run resumes from.
    """

    on_eval: Callable[[int, dict[str, float]], bool | None] | None = None
    checkpoint_path: Path | None = None


@dataclass
class RunResult:
    status: Status
    generator_iters: int  # generator steps completed
    started_at: str
    wall_s: float  # everything, evaluation included
    train_s: float  # training steps only (the wall-clock axis of WGAN-GP Fig. 3)
    curves: list[CurvePoint] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)  # values of the last evaluation
    samples: np.ndarray | None = None  # eval.n_samples generated samples at the end
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # generator_iter -> first samples
    labels: dict[str, str] = field(default_factory=dict)  # text a metric reports, e.g. feature_space
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)  # "<name>@<generator_iter>" -> array
    error: str | None = None
    diverged_at: int | None = None
    resumed_from: int | None = None  # generator step of the checkpoint this run resumed from
    ensemble_size: int = 1  # cells trained together with this one (``train_ensemble``), itself included


def build_component(registry, block: dict, key: str, *args):
    entry = registry.entry(block[key])
    params = entry.params.model_validate({k: v for k, v in block.items() if k != key})
    return entry.obj(params, *args)


def critic_steps(cfg: dict, step: int) -> int:
    """n_critic, or 100 during the WGAN reference code's warm-up (``train.critic_warmup``)."""
    if cfg["train"]["critic_warmup"] and (step < 25 or step % 500 == 0):
        return 100
    return cfg["train"]["n_critic"]


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def gradient_norms(critic: nn.Module, loss: GANLoss, real: Tensor, fake: Tensor) -> dict[str, float]:
    """Diagnostics of WGAN-GP section 3 / Fig. 1b: the norm of the critic's gradient w.r.t. its input
    (mean over real and generated samples) and of the critic loss's gradient w.r.t. each layer's weights."""
    x = torch.cat([real, fake]).requires_grad_(True)
    (grad_x,) = torch.autograd.grad(critic(x).sum(), x)
    out = {"critic_input_grad_norm": float(grad_x.flatten(1).norm(dim=1).mean())}
    layers = weight_layers(critic)
    grads = torch.autograd.grad(loss.critic(critic(real), critic(fake)), [m.weight for _, m in layers])
    out.update({f"critic_grad_norm.layer_{i:02d}": float(g.norm()) for i, g in enumerate(grads)})
    return out


@dataclass
class _Member:
    """One seed of a run: its random streams, evaluation inputs and what it has recorded so far."""

    seed: int
    dataset: object
    noise_rng: torch.Generator
    penalty_rng: torch.Generator
    eval_real: Tensor
    eval_noise: Tensor
    curves: list[CurvePoint] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    samples: Tensor | None = None
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)
    result: RunResult | None = None  # set when the member ends before the others (diverged)


def train(config: dict, seed: int, hooks: Hooks | None = None, device: str = "cpu") -> RunResult:
    """Train one cell; see the module docstring."""
    return _train([config], [seed], hooks or Hooks(), device)[0]


def train_ensemble(config: dict | list[dict], seeds: list[int], device: str = "cpu") -> list[RunResult]:
    """Train the cells ``(config, seed) for seed in seeds`` together, as one stacked ensemble
    (``bench.models.stack``): batched matmuls, per-member batch-norm statistics, random streams, losses and
    divergence; one optimizer over the stacked parameters, whose elementwise updates (Adam, RMSProp, SGD,
    weight clipping) are each member's own. ``config`` may be one config per seed, differing in the loss
    only, with losses of one ``GANLoss.structure`` (``bench.losses.stack_losses``). Each result equals
    ``train(config, seed)`` up to float rounding; ``wall_s`` and ``train_s`` are the ensemble's."""
    configs = [config] * len(seeds) if isinstance(config, dict) else list(config)
    if len(configs) != len(seeds):
        raise ValueError(f"train_ensemble: {len(configs)} configs for {len(seeds)} seeds")
    return _train(configs, list(seeds), Hooks(), device)


def _all_but_loss(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "loss"}


def stack_key(config: dict) -> str:
    """Cells whose configs have one key can train as one ensemble (``train_ensemble``): every setting equal
    but the loss, and losses of one ``GANLoss.structure`` (minimax and -log D: one loop, other losses)."""
    structure = build_component(LOSSES, config["loss"], "name").structure
    return json.dumps([_all_but_loss(config), structure], sort_keys=True, default=str)


def _member_losses(configs: list[dict]) -> list[GANLoss]:
    """Each member's loss, one object per distinct loss block (so ``stack_losses`` calls each once)."""
    if any(_all_but_loss(c) != _all_but_loss(configs[0]) for c in configs):
        raise ValueError("train_ensemble: members' configs may differ in their loss only")
    built: dict[str, GANLoss] = {}
    for c in configs:
        if repr(c["loss"]) not in built:
            built[repr(c["loss"])] = build_component(LOSSES, c["loss"], "name")
    return [built[repr(c["loss"])] for c in configs]


def _train(configs: list[dict], seeds: list[int], hooks: Hooks, device: str) -> list[RunResult]:
    k = len(seeds)
    if k > 1 and (hooks.on_eval is not None or hooks.checkpoint_path is not None):
        raise ValueError("hooks (pruning, checkpoints) apply to single cells, not ensembles")
    config = configs[0]  # every setting but the loss is the members' own too
    member_losses = _member_losses(configs)
    loss = stack_losses(member_losses)
    device = torch.device(device)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    g_cfg, tr, ev = config["generator"], config["train"], config["eval"]
    m = tr["batch_size"]

    members, generators, critics = [], [], []
    for seed in seeds:
        dataset = build_component(DATASETS, config["dataset"], "name", seed)
        torch.manual_seed(seeding.stream_seed(seed, "init"))  # weight initialization
        generators.append(build_component(GENERATORS, g_cfg, "arch", dataset.shape).to(device))
        critics.append(build_component(CRITICS, config["critic"], "arch", dataset.shape).to(device))
        # Evaluation uses its own fixed noise and held-out real samples: measuring never moves a training stream.
        members.append(_Member(
            seed, dataset, seeding.generator(seed, "noise", device), seeding.generator(seed, "penalty", device),
            eval_real=dataset.reference(ev["n_samples"]),
            eval_noise=torch.randn(ev["n_samples"], g_cfg["latent_dim"], generator=seeding.generator(seed, "eval")),
        ))
    shape = members[0].dataset.shape

    state = {"step": 0, "train_s": 0.0}
    resumed_from = None
    ckpt = None
    if hooks.checkpoint_path is not None and hooks.checkpoint_path.exists():
        ckpt = torch.load(hooks.checkpoint_path, map_location=device, weights_only=True)
        (mb,) = members
        generators[0].load_state_dict(ckpt["generator"])
        critics[0].load_state_dict(ckpt["critic"])
        mb.dataset.load_state_dict(ckpt["dataset"])
        mb.noise_rng.set_state(ckpt["noise_rng"].cpu())
        mb.penalty_rng.set_state(ckpt["penalty_rng"].cpu())
        state = {"step": ckpt["step"], "train_s": ckpt["train_s"]}
        mb.curves, mb.final, mb.labels = [tuple(c) for c in ckpt["curves"]], ckpt["final"], ckpt["labels"]
        mb.snapshots = {k: v.cpu().numpy() for k, v in ckpt["snapshots"].items()}
        mb.artifacts = {k: v.cpu().numpy() for k, v in ckpt["artifacts"].items()}
        resumed_from = state["step"]

    generator, critic = stack(generators), stack(critics)  # inputs and outputs: (members, batch, ...)
    # All weights of each stack in one tensor: an optimizer step (or clipping) is one op, not a few per layer.
    generator_params, critic_params = FlatParameters(generator), FlatParameters(critic)
    generator_opt = build_optimizer(config["optimizer"], [generator_params.flat], "generator")
    critic_opt = build_optimizer(config["optimizer"], [critic_params.flat], "critic")
    if ckpt is not None:
        generator_opt.load_state_dict(ckpt["generator_opt"])
        critic_opt.load_state_dict(ckpt["critic_opt"])
    eps_shape = (m,) + (1,) * len(shape)
    one_call = scores_each_sample_alone(critic)
    autocast = _autocast(device, tr["precision"])

    def real_batch() -> Tensor:
        return torch.stack([mb.dataset.sample(m) for mb in members]).to(device)

    def sample_noise(n: int) -> Tensor:
        return torch.stack([torch.randn(n, g_cfg["latent_dim"], generator=mb.noise_rng, device=device)
                            for mb in members])

    def generate(real: Tensor, z: Tensor) -> Tensor:
        """G(z); or, with ``generator.fixed``, real data + N(0, I) (gan_toy.py FIXED_GENERATOR)."""
        if g_cfg["fixed"]:
            return real + torch.stack([torch.randn(real.shape[1:], generator=mb.noise_rng, device=device)
                                       for mb in members])
        return generator(z)

    def score_real_and_fake(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D(x) and D(G(z)). A critic that scores each sample alone takes both batches in one call (half
        the operations, twice the rows per matmul; the same scores); one with batch norm takes each batch
        on its own, as the papers' code does, so each is normalized by its own statistics."""
        if not one_call:
            return critic(real), critic(fake)
        scores = critic(torch.cat([real, fake], dim=1))
        return scores[:, :m], scores[:, m:]

    def save_checkpoint() -> None:
        """Everything the rest of the run depends on, as tensors and plain values (``weights_only`` loads
        it); written to a temp file, fsynced and renamed, so a kill leaves the previous checkpoint intact."""
        (mb,) = members
        generator.sync_members()
        critic.sync_members()
        path = hooks.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(
                    {"generator": generators[0].state_dict(), "critic": critics[0].state_dict(),
                     "generator_opt": generator_opt.state_dict(), "critic_opt": critic_opt.state_dict(),
                     "dataset": mb.dataset.state_dict(), "noise_rng": mb.noise_rng.get_state(),
                     "penalty_rng": mb.penalty_rng.get_state(), **state, "curves": mb.curves,
                     "final": mb.final, "labels": mb.labels,
                     "snapshots": {k: torch.as_tensor(v) for k, v in mb.snapshots.items()},
                     "artifacts": {k: torch.as_tensor(v) for k, v in mb.artifacts.items()}},
                    f,
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @torch.no_grad()
    def generated_samples(i: int) -> Tensor:
        mb, eval_fixed = members[i], seeding.generator(members[i].seed, "eval-fixed")
        chunks = []
        for j in range(0, len(mb.eval_noise), m):
            if g_cfg["fixed"]:
                real = mb.eval_real[j : j + m].to(device)
                chunks.append(real + torch.randn(real.shape, generator=eval_fixed, device="cpu").to(device))
            else:
                chunks.append(generator.members[i](mb.eval_noise[j : j + m].to(device)))
        return torch.cat(chunks).float().cpu()

    def evaluate(i: int, step: int, critic_loss: Tensor, generator_loss: Tensor | None) -> None:
        """Measure member ``i`` (its own plain generator and critic). Metric functions return numbers
        (curve points), strings (labels such as the feature space) or arrays (artifacts such as a critic
        value surface)."""
        mb, member_critic, member_loss = members[i], critic.members[i], member_losses[i]
        samples = generated_samples(i)
        values = {"critic_loss": float(critic_loss[i].detach())}
        if generator_loss is not None:
            values["generator_loss"] = float(generator_loss[i].detach())
        values.update(gradient_norms(member_critic, member_loss, mb.eval_real[:m].to(device), samples[:m].to(device)))
        ctx = EvalContext(samples, mb.eval_real, mb.dataset, member_critic, member_loss, configs[i], device)
        for name in ev["metrics"]:
            for key, value in METRICS.get(name)(ctx).items():
                if isinstance(value, str):
                    mb.labels[key] = value
                elif isinstance(value, np.ndarray):
                    mb.artifacts[f"{key}@{step}"] = value
                else:
                    values[key] = float(value)
        mb.final, mb.samples = values, samples
        mb.curves += [(step, state["train_s"], key, value) for key, value in values.items()]
        if ev["snapshot_samples"]:
            mb.snapshots[step] = samples[: ev["snapshot_samples"]].numpy()

    def result(i: int, status: Status, step: int, diverged_at: int | None = None) -> RunResult:
        mb = members[i]
        return RunResult(
            status=status, generator_iters=step, started_at=started_at, wall_s=time.perf_counter() - t_start,
            train_s=state["train_s"], curves=mb.curves, final=mb.final,
            samples=None if mb.samples is None else mb.samples.numpy(), snapshots=mb.snapshots,
            labels=mb.labels, artifacts=mb.artifacts, diverged_at=diverged_at, resumed_from=resumed_from,
            ensemble_size=k,
        )

    critic_loss = generator_loss = torch.full((k,), math.nan)
    status: Status = "ok"
    step = state["step"]
    live = list(range(k))  # members still training (a diverged one ends; the others go on)
    first_nonfinite = torch.full((k,), -1, device=device)  # generator step of each member's first NaN/inf
    tick = time.perf_counter()
    while step < tr["generator_iters"]:
        # Algorithm 1, lines 2-8: train the critic n_critic times. Losses have one value per member; the
        # gradient of their sum is each member's own gradient (members share no parameters).
        critic.requires_grad_(True)
        for _ in range(critic_steps(config, step)):
            real = real_batch()
            with torch.no_grad(), autocast:
                fake = generate(real, sample_noise(m)).float()
            if loss.clip_value is not None and loss.clip_when == "before":
                clip_weights_([critic_params.flat], loss.clip_value)
            with autocast:
                critic_loss = loss.critic(*score_real_and_fake(real, fake))
                if loss.gp_lambda:
                    eps = torch.stack([torch.rand(eps_shape, generator=mb.penalty_rng, device=device) for mb in members])
                    critic_loss = critic_loss + loss.gp_lambda * gradient_penalty(critic, real, fake, eps, batch_dims=2)
            critic_loss.sum().backward()
            critic_params.gather_grads()
            critic_opt.step()
            if loss.clip_value is not None and loss.clip_when == "after":
                clip_weights_([critic_params.flat], loss.clip_value)

        # Lines 9-11: one generator step against the critic (held fixed).
        finite = torch.isfinite(critic_loss)
        if not g_cfg["fixed"]:
            critic.requires_grad_(False)  # only G's parameters get gradients here
            with autocast:
                generator_loss = loss.generator(critic(generator(sample_noise(m))))
            generator_loss.sum().backward()
            generator_params.gather_grads()
            generator_opt.step()
            finite &= torch.isfinite(generator_loss)
        step += 1
        first_nonfinite = torch.where((first_nonfinite < 0) & ~finite, step, first_nonfinite)  # no host sync

        is_eval = step % ev["every"] == 0 or step == tr["generator_iters"]
        is_checkpoint = bool(hooks.checkpoint_path and tr["checkpoint_every"]) and (
            step % tr["checkpoint_every"] == 0 or step == tr["generator_iters"]
        )
        if not (is_eval or is_checkpoint):
            continue
        state["train_s"] += time.perf_counter() - tick  # the training clock stops while measuring
        state["step"] = step
        for i, at in enumerate(first_nonfinite.tolist()):
            if at >= 0 and i in live:
                members[i].result = result(i, "diverged", step, diverged_at=at)
                live.remove(i)
        if not live:
            break
        if is_eval:
            critic.requires_grad_(True)
            generator.sync_members()
            critic.sync_members()
            for i in live:
                evaluate(i, step, critic_loss, None if g_cfg["fixed"] else generator_loss)
        if is_checkpoint:
            save_checkpoint()
        if is_eval and hooks.on_eval is not None and hooks.on_eval(step, members[0].final):
            status = "pruned"
            break
        tick = time.perf_counter()
    for i in live:
        if members[i].samples is None and step == resumed_from:  # finished before its result was stored
            generator.sync_members()
            members[i].samples = generated_samples(i)
        members[i].result = result(i, status, step)
    return [mb.result for mb in members]
