"""What a run records of each cell: curve points, the last evaluation's values, labels, artifacts, samples,
and the ``RunResult`` it ends as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from torch import Tensor

Status = Literal["ok", "diverged", "failed", "timeout", "pruned"]
CurvePoint = tuple[int, float, str, float]  # (generator_iter, train_s, metric, value)


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


@dataclass
class Record:
    """One cell's measurements so far (what a checkpoint stores of them, ``bench.checkpoint``)."""

    curves: list[CurvePoint] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    samples: Tensor | None = None
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, step: int, train_s: float, values: dict[str, float], measured: list[dict], samples: Tensor,
            snapshot_samples: int) -> None:
        """One evaluation: ``values`` (losses, gradient norms) and the metrics' outputs, ``measured``, whose
        numbers become curve points, strings labels (such as the feature space) and arrays artifacts (such
        as a critic value surface); the samples, and the first ``snapshot_samples`` of them as a snapshot."""
        for outputs in measured:
            for key, value in outputs.items():
                if isinstance(value, str):
                    self.labels[key] = value
                elif isinstance(value, np.ndarray):
                    self.artifacts[f"{key}@{step}"] = value
                else:
                    values[key] = float(value)
        self.final, self.samples = values, samples
        self.curves += [(step, train_s, key, value) for key, value in values.items()]
        if snapshot_samples:
            self.snapshots[step] = samples[:snapshot_samples].numpy()

    def result(self, status: Status, step: int, *, started_at: str, wall_s: float, train_s: float,
               diverged_at: int | None, resumed_from: int | None, ensemble_size: int) -> RunResult:
        """The cell's ``RunResult`` after ``step`` generator steps."""
        return RunResult(
            status=status, generator_iters=step, started_at=started_at, wall_s=wall_s, train_s=train_s,
            curves=self.curves, final=self.final, samples=None if self.samples is None else self.samples.numpy(),
            snapshots=self.snapshots, labels=self.labels, artifacts=self.artifacts, diverged_at=diverged_at,
            resumed_from=resumed_from, ensemble_size=ensemble_size,
        )
