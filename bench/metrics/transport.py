"""Exact optimal transport between generated and real samples, through POT."""

from __future__ import annotations

from torch import Tensor

from bench.metrics import METRICS, Column, EvalContext


def exact_w1(x: Tensor, y: Tensor) -> float:
    """W1 between the empirical measures of ``x`` and ``y`` (uniform weights, Euclidean ground cost),
    solved exactly by network simplex (``ot.emd2``)."""
    import ot  # imported here: POT imports scikit-learn, a second and a half that every process would pay

    cost = ot.dist(x.double().flatten(1).numpy(), y.double().flatten(1).numpy(), metric="euclidean")
    return float(ot.emd2([], [], cost, numItermax=10_000_000))


@METRICS.register(
    "w1_exact",
    requires={"toy"},
    columns=[Column("w1_exact", False, "exact W1(generated, real) on eval.w1_samples points each (POT)")],
)
def w1_exact(ctx: EvalContext) -> dict[str, float]:
    n = ctx.config["eval"]["w1_samples"]
    return {"w1_exact": exact_w1(ctx.samples[:n], ctx.real[:n])}
