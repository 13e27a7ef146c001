"""The 2-D toy sets of the WGAN-GP toy code (gan_toy.py), exactly as there."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from bench.data import DATASETS
from bench.registry import NoParams, Params
from bench.seeding import generator

TOY_DEFAULTS = {"generator.latent_dim": 2}  # gan_toy.py feeds 2-D noise to the generator
TOY_METRICS = ["w_estimate", "w1_exact"]


class _Stream:
    """Training batches and held-out reference samples from independent seeded streams."""

    shape = (2,)

    def __init__(self, seed: int):
        self._train = generator(seed, "data")
        self._seed = seed

    def draw(self, n: int, gen: torch.Generator) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int) -> Tensor:
        return self.draw(n, self._train)

    def reference(self, n: int) -> Tensor:
        return self.draw(n, generator(self._seed, "reference"))

    def state_dict(self) -> dict[str, Any]:
        return {"train": self._train.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._train.set_state(state["train"])


class GaussianMixture(_Stream):
    """Isotropic Gaussians of standard deviation ``std`` around ``centers``; ``modes`` feeds mode metrics."""

    def __init__(self, centers: Tensor, std: float, seed: int, fixed_size: int | None = None):
        super().__init__(seed)
        self.centers, self.std = centers, std
        self._fixed: Tensor | None = None
        self._cursor = 0
        if fixed_size:
            # gan_toy.py: an equal number of points per center, shuffled once, then read in order.
            per_center = fixed_size // len(centers)
            which = torch.arange(len(centers)).repeat(per_center)
            points = centers[which] + std * torch.randn(len(which), 2, generator=self._train)
            self._fixed = points[torch.randperm(len(points), generator=self._train)]

    @property
    def modes(self) -> tuple[Tensor, float]:
        return self.centers, self.std

    def draw(self, n: int, gen: torch.Generator) -> Tensor:
        which = torch.randint(len(self.centers), (n,), generator=gen)
        return self.centers[which] + self.std * torch.randn(n, 2, generator=gen)

    def sample(self, n: int) -> Tensor:
        if self._fixed is None:
            return super().sample(n)
        if self._cursor + n > len(self._fixed):  # gan_toy.py drops the last partial batch of an epoch
            self._cursor = 0
        batch = self._fixed[self._cursor : self._cursor + n]
        self._cursor += n
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "cursor": self._cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._cursor = state["cursor"]


class MixtureParams(Params):
    fixed_size: int | None = Field(
        None, gt=0, description="draw a fixed, once-shuffled set of this many points (gan_toy.py: 100000)"
    )


class GridParams(MixtureParams):
    std: float = Field(0.05, gt=0, description="each Gaussian's standard deviation before dividing by scale")
    scale: float = Field(
        2.828, gt=0, description="centers and std divided by this: gan_toy.py 2.828; 1 gives the PacGAN / VEEGAN "
        "grid, centers {-4, -2, 0, 2, 4}^2 with std 0.05"
    )


@DATASETS.register(
    "25gaussians",
    params=GridParams,
    tags={"toy", "modes"},
    defaults=TOY_DEFAULTS,
    default_metrics=["modes", *TOY_METRICS],
)
def gaussians25(params: GridParams, seed: int) -> GaussianMixture:
    """A 5x5 grid: centers (2x, 2y), x, y in {-2..2}, std 0.05, everything divided by ``scale`` (gan_toy.py:
    2.828; PacGAN Table 1 and VEEGAN Table 1: 1)."""
    grid = torch.tensor([(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)])
    return GaussianMixture(grid / params.scale, params.std / params.scale, seed, params.fixed_size)


@DATASETS.register(
    "8gaussians",
    params=MixtureParams,
    tags={"toy", "modes"},
    defaults=TOY_DEFAULTS,
    default_metrics=["modes", *TOY_METRICS],
)
def gaussians8(params: MixtureParams, seed: int) -> GaussianMixture:
    """Eight centers 2 (cos k pi/4, sin k pi/4), std 0.02, everything divided by 1.414."""
    ring = torch.tensor([(2 * math.cos(k * math.pi / 4), 2 * math.sin(k * math.pi / 4)) for k in range(8)])
    return GaussianMixture(ring.float() / 1.414, 0.02 / 1.414, seed, params.fixed_size)


class SwissRoll(_Stream):
    def draw(self, n: int, gen: torch.Generator) -> Tensor:
        """sklearn's ``make_swiss_roll(noise=0.25)``, columns [0, 2], divided by 7.5 (as gan_toy.py)."""
        from sklearn.datasets import make_swiss_roll  # imported here: sklearn takes a second to import

        state = int(torch.randint(2**31 - 1, (1,), generator=gen))
        points, _ = make_swiss_roll(n_samples=n, noise=0.25, random_state=state)
        return torch.from_numpy(points[:, [0, 2]] / 7.5).float()


@DATASETS.register("swissroll", tags={"toy"}, defaults=TOY_DEFAULTS, default_metrics=TOY_METRICS)
def swissroll(params: NoParams, seed: int) -> SwissRoll:
    return SwissRoll(seed)
