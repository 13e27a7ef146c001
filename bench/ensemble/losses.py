"""The members' losses of a stack as one ``GANLoss`` with one value per member (see ``bench.ensemble``)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from bench.losses import GANLoss


def stack_losses(losses: list[GANLoss]) -> GANLoss:
    """The losses of a stacked ensemble's members (one per member, in order) as one ``GANLoss`` on
    ``(members, batch)`` critic outputs: each member's rows go through its own loss, e.g. minimax and -log D
    members in one stack. The losses must share their ``structure`` (clipping, penalty, family)."""
    if len({loss.structure for loss in losses}) > 1:
        raise ValueError("stack_losses: members' losses differ in clipping, gradient penalty or family")
    if all(loss is losses[0] for loss in losses):
        return losses[0]
    runs: list[tuple[GANLoss, slice]] = []  # consecutive members with the same loss: one call each
    for i, loss in enumerate(losses):
        if runs and runs[-1][0] is loss:
            runs[-1] = (loss, slice(runs[-1][1].start, i + 1))
        else:
            runs.append((loss, slice(i, i + 1)))

    def critic(critic_real: Tensor, critic_fake: Tensor) -> Tensor:
        return torch.cat([loss.critic(critic_real[rows], critic_fake[rows]) for loss, rows in runs])

    def generator(critic_fake: Tensor) -> Tensor:
        return torch.cat([loss.generator(critic_fake[rows]) for loss, rows in runs])

    return replace(losses[0], critic=critic, generator=generator)  # the shared structure, the members' functions
