"""Generator and critic architectures.

``GENERATORS`` builders take ``(params, data_shape)`` and return a module mapping noise of shape
``(batch, params.latent_dim)`` to samples of shape ``(batch, *data_shape)``; ``CRITICS`` builders take
``(params, data_shape)`` and return a module mapping samples to one raw score per sample, shape ``(batch,)``.

The trainer trains networks as *stacks* of members (``bench.ensemble``); an architecture whose class has a
``stacked(members)`` constructor trains several seeds as one batched module (the MLPs).
"""

from __future__ import annotations

from typing import Callable

from pydantic import Field
from torch import nn

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


def weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers that hold weight matrices or kernels (Linear, Conv), input to output: the "layers" of
    WGAN-GP Fig. 1b."""
    kinds = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    return [(name, m) for name, m in module.named_modules() if isinstance(m, kinds)]


from bench.models import dcgan, mlp  # noqa: E402,F401  (registers the architectures)
