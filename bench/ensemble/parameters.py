"""A stack's parameters in one buffer, one tensor per member for the optimizer (see ``bench.ensemble``)."""

from __future__ import annotations

import torch


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.insert(0, step)
        step *= size
    return tuple(strides)


class FlatParameters:
    """A stack's parameters in one buffer, ``flat``, member after member: ``members[i]`` is member i's
    parameters as one contiguous tensor, laid out exactly as a stack of one lays them out, and the module's
    parameters become strided views of the buffer. Give the optimizer ``members``: Adam, RMSProp and SGD
    update each tensor of their list on its own, so a member's update runs through the same kernel calls
    on the same numbers whatever else shares its stack (an update over one flat tensor would not: fused
    Adam rounds its last few elements in a scalar tail that a longer tensor computes vectorized). Weight
    clipping, which is exact anywhere, acts on ``flat`` at once. Call ``gather_grads()`` between
    ``backward()`` and ``step()``.

    ``n_members``: the size of the leading member dimension of every parameter of a stack (1: the
    parameters are one network's, without a member dimension)."""

    def __init__(self, module: torch.nn.Module, n_members: int = 1):
        self.params = list(module.parameters())
        sizes = [p.numel() // n_members for p in self.params]
        member_size = sum(sizes)
        self.flat = torch.empty(n_members * member_size, dtype=self.params[0].dtype, device=self.params[0].device)
        self._views: list[tuple[tuple[int, ...], tuple[int, ...], int]] = []  # shape, strides, offset
        offset = 0
        for p, size in zip(self.params, sizes, strict=True):
            inner = _contiguous_strides(tuple(p.shape[1:]) if n_members > 1 else tuple(p.shape))
            strides = (member_size, *inner) if n_members > 1 else inner
            self._views.append((tuple(p.shape), strides, offset))
            view = self.flat.as_strided(p.shape, strides, offset)
            view.copy_(p.detach())
            p.data = view
            offset += size
        self.members = [torch.nn.Parameter(self.flat[i * member_size : (i + 1) * member_size])
                        for i in range(n_members)]

    def gather_grads(self) -> None:
        """Move the parameters' gradients into the members' ``grad`` (the same layout as ``flat``) and clear
        theirs, so the next backward starts from none. Every parameter must have one: an optimizer skips a
        tensor without a gradient (no Adam moment or momentum update), which a member's tensor cannot do."""
        if any(p.grad is None for p in self.params):
            raise ValueError("FlatParameters: a parameter got no gradient; every one must take part in the loss")
        grad = torch.empty_like(self.flat)
        for p, (shape, strides, offset) in zip(self.params, self._views, strict=True):
            grad.as_strided(shape, strides, offset).copy_(p.grad)
            p.grad = None
        size = len(self.flat) // len(self.members)
        for i, member in enumerate(self.members):
            member.grad = grad[i * size : (i + 1) * size]
