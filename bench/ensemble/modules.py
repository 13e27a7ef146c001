"""Networks as stacks: N same-architecture networks as one module on ``(N, batch, ...)`` (see ``bench.ensemble``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Single(nn.Module):
    """One network behind the stack interface: a member dimension of 1 on inputs and outputs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.members = [net]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x[0]).unsqueeze(0)

    def sync_members(self) -> None:
        """Nothing to copy: the member is the module itself."""


def stackable(cls: type) -> bool:
    """Whether an architecture trains several members as one batched module."""
    return callable(getattr(cls, "stacked", None))


def stack(members: list[nn.Module]) -> nn.Module:
    """k same-architecture networks as one module mapping ``(k, batch, ...)`` to ``(k, batch, ...)``."""
    cls = type(members[0])
    if stackable(cls):
        return cls.stacked(members)
    if len(members) == 1:
        return Single(members[0])
    raise ValueError(f"{cls.__name__} has no stacked form: train its cells one at a time")


def scores_each_sample_alone(critic: nn.Module) -> bool:
    """Whether a critic's score of a sample depends on that sample only: true unless it has batch norm,
    which normalizes by the statistics of the batch the sample came in."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())


# Every product of a stack runs as one plain matrix product per member, never as one batched matmul: a
# batched kernel may pick another algorithm (and so another rounding) for another number of members (on an
# Intel Xeon, torch 2.14, a (1, B) x (B, n) product of a stack of one rounds differently from the same
# member's in a stack of two or more), and a member's numbers must not depend on which stack it trained in.
# So the matmuls of member i see exactly the operands they would see alone.


def per_member(op, *stacks: Tensor) -> Tensor:
    """``op`` applied to each member's slices of ``stacks`` (each (k, ...)), stacked: (k, ...). Under
    autograd the slices go through ``torch.stack``; otherwise each result is written in place."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in stacks):
        return torch.stack([op(*(t[i] for t in stacks)) for i in range(len(stacks[0]))])
    first = op(*(t[0] for t in stacks))
    out = first.new_empty((len(stacks[0]), *first.shape))
    out[0] = first
    for i in range(1, len(out)):
        op(*(t[i] for t in stacks), out=out[i])
    return out
