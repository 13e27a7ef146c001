"""Generator and critic architectures.

``GENERATORS`` builders take ``(params, data_shape)`` and return a module mapping noise of shape
``(batch, params.latent_dim)`` to samples of shape ``(batch, *data_shape)``; ``CRITICS`` builders take
``(params, data_shape)`` and return a module mapping samples to one raw score per sample, shape ``(batch,)``.

The trainer works on *stacks*: k independent copies of one network (one per seed) whose inputs and outputs
carry a leading member dimension, ``(k, batch, ...)``. ``stack(members)`` builds one: an architecture whose
class has a ``stacked(members)`` constructor gets its batched form, even for one member (the MLPs: one
batched matmul per layer for all members); any other trains alone, wrapped by ``Single``. Members never
interact, so a stack trains exactly as its members would one by one; ``stack.members`` are plain modules
holding each member's current weights after ``sync_members()`` (what evaluation and checkpoints look at).
"""

from __future__ import annotations

from typing import Callable

from pydantic import Field
from torch import Tensor, nn

from bench.registry import Params, Registry


class GeneratorParams(Params):
    latent_dim: int = Field(100, gt=0, description="noise dimension (toy sets default to 2, as gan_toy.py)")
    fixed: bool = Field(
        False,
        description="hold the generator fixed at real data + N(0, I) and train only the critic "
        "(gan_toy.py FIXED_GENERATOR, the setting of WGAN-GP Fig. 1a)",
    )


class CriticParams(Params):
    pass


GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator arch")
CRITICS: Registry[Callable[..., nn.Module]] = Registry("critic arch")


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


def weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers that hold weight matrices or kernels (Linear, Conv), input to output: the "layers" of
    WGAN-GP Fig. 1b."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


from bench.models import dcgan, mlp  # noqa: E402,F401  (registers the architectures)
