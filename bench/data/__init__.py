"""Data sets: a registry of builders ``(params, seed) -> Dataset``.

A ``Dataset`` owns its random stream, so a cell's batches depend only on its seed:
``sample(n)`` draws the next training batch, ``reference(n)`` held-out real samples for metrics (always
the same for a given seed, independent of training), ``state_dict()`` / ``load_state_dict()`` its stream
position for checkpoints. Registry metadata: ``tags`` (what metrics may ask of it: ``toy``, ``modes``,
``images``), ``defaults`` (dotted config values it implies, e.g. ``generator.latent_dim``) and
``default_metrics``; ``locate``, for data sets read from files, a cheap check ``(params) -> None`` that
raises ``DataNotFound`` (used by ``check_available`` before a run starts); ``classifier_space``, the project
classifier's feature space that ``eval.feature_space: auto`` falls back to - declared only by data sets that
never serve the classifier's training images (``bench.spec`` refuses a classifier space for the others).
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


class DataNotFound(FileNotFoundError):
    """A data set's files are missing; the message says where it looked and how to provide them."""


def check_available(block: dict) -> None:
    """Raise ``DataNotFound`` if the data set of a resolved ``dataset`` config block has no files."""
    entry = DATASETS.entry(block["name"])
    locate = entry.meta.get("locate")
    if locate is not None:
        locate(DATASETS.params_of(block, "name"))


from bench.data import images, toy  # noqa: E402,F401  (registers the data sets)
