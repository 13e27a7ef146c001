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
    columns=[Column("w1_exact", False, "exact W1(generated, real) on eval.w1_samples points each (POT)", bounded=True)],
)
def w1_exact(ctx: EvalContext) -> dict[str, float]:
    n = ctx.config["eval"]["w1_samples"]
    return {"w1_exact": exact_w1(ctx.samples[:n], ctx.real[:n])}


def real_vs_real_w1(dataset: dict, n: int, seeds: tuple[int, ...] = (0, 1, 2)) -> float:
    """The floor of ``w1_exact`` at ``n`` points: the mean over ``seeds`` of the exact W1 between the held-out
    real sample a cell is measured against and an independent real sample of the same size. A generator
    that matched the data exactly would score this, not 0 (finite samples never match)."""
    from bench import seeding
    from bench.data import DATASETS

    values = []
    for seed in seeds:
        data = DATASETS.build(dataset, "name", seed)
        values.append(exact_w1(data.reference(n), data.draw(n, seeding.generator(seed, "w1-floor"))))
    return sum(values) / len(values)
