"""Data sets: a registry of builders ``(params, seed) -> Dataset``.

A ``Dataset`` owns its random stream, so a cell's batches depend only on its seed:
``sample(n)`` draws the next training batch, ``reference(n)`` held-out real samples for metrics (always
the same for a given seed, independent of training), ``state_dict()`` / ``load_state_dict()`` its stream
position for checkpoints. Registry metadata: ``tags`` (what metrics may ask of it: ``toy``, ``modes``,
``images``), ``defaults`` (dotted config values it implies, e.g. ``generator.latent_dim``) and
``default_metrics``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from torch import Tensor

from bench.registry import Params, Registry


class Dataset(Protocol):
    shape: tuple[int, ...]

    def sample(self, n: int) -> Tensor: ...

    def reference(self, n: int) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


DATASETS: Registry[Callable[[Params, int], Dataset]] = Registry("dataset")

from bench.data import toy  # noqa: E402,F401  (registers the toy sets)
