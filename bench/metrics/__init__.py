"""Metrics: a registry of ``compute(ctx) -> {column: value}`` functions.

Every metric registers the columns it produces, whether higher is better and how seeds aggregate; reports
and the regression check read this catalogue (``column(name)``), never a hard-coded list. ``requires``
names dataset tags (``modes``, ``toy``, ``images``) a metric needs; specs asking for a metric their data
set cannot give are rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from torch import Tensor, nn

from bench.registry import Registry


@dataclass(frozen=True)
class Column:
    name: str
    higher_is_better: bool | None  # None: a diagnostic, not a quality measure
    description: str
    aggregate: Literal["mean", "median"] = "mean"  # how a config's seeds are summarized
    bounded: bool = False  # values live in a bounded range (a count, share, divergence or distance >= 0)


@dataclass
class EvalContext:
    """What a metric may look at, at one evaluation step of one cell."""

    samples: Tensor  # generated samples, (eval.n_samples, *data_shape), on CPU
    real: Tensor  # held-out real samples of the same size, on CPU
    dataset: Any
    critic: nn.Module
    loss: Any  # bench.losses.GANLoss
    config: dict  # the resolved cell config
    device: Any
    extras: dict = field(default_factory=dict)


METRICS: Registry[Callable[[EvalContext], dict[str, float]]] = Registry("metric")

# Logged by the trainer itself at every evaluation step (WGAN-GP Fig. 1b's gradient norms among them).
DIAGNOSTICS = [
    Column("critic_loss", None, "critic loss of the last critic step (penalty included)"),
    Column("generator_loss", None, "generator loss of the last generator step"),
    Column("critic_input_grad_norm", None, "mean ||grad_x D(x)||_2 over real and generated samples"),
    Column("critic_grad_norm.layer_NN", None, "norm of the critic loss gradient w.r.t. layer NN's weights"),
]
_LAYER = re.compile(r"^critic_grad_norm\.layer_\d+$")


def columns() -> dict[str, Column]:
    """Every known column, by name."""
    out = {c.name: c for c in DIAGNOSTICS}
    for entry in METRICS:
        out.update({c.name: c for c in entry.meta["columns"]})
    return out


def column(name: str) -> Column:
    """The catalogue entry of a runs/curves column; unknown names list the known ones."""
    if _LAYER.match(name):
        name = "critic_grad_norm.layer_NN"
    known = columns()
    if name not in known:
        raise KeyError(f"unknown metric column {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


from bench.metrics import critic, fidelity, modes, transport  # noqa: E402,F401  (register the metrics)
