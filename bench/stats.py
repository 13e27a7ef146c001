"""Intervals over training seeds: one policy for the terminal summary (``bench.summary``), the report's
figures and tables (``reports.stats``) and the claims (``bench.claims``).

* Fewer than ``MIN_SEEDS`` values: a centre and no interval (NaN bounds); two seeds say nothing about the
  spread of a third.
* ``median`` aggregation (the catalogue's ``Column.aggregate``): the distribution-free interval of
  ``scipy.stats.quantile_test`` (it needs 6 values; with fewer the interval is the full range [min, max]).
* ``mean`` of a bounded metric (``Column.bounded``: counts, shares, divergences, distances): the percentile
  bootstrap of the mean (``scipy.stats.bootstrap``, 9,999 resamples, fixed seed). Its bounds are means of
  resampled seeds, so they never leave the metric's range (a Student t interval over 2 seeds can read
  "modes -38.7 .. 75.7" of 25).
* ``mean`` otherwise (the critics' own estimates, derived quantities): Student t, ``mean +- t(0.975, n-1) s/sqrt(n)``.

Rates (seeds or runs that pass a test) get Wilson intervals, differences of two rates Newcombe's hybrid
score interval built from them (Newcombe 1998, method 10): both stay inside [0, 1] and [-1, 1].
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from bench.metrics import column

LEVEL = 0.95
MIN_SEEDS = 3
RESAMPLES = 9999
SEED = 0  # bootstrap resampling stream: the same data give the same interval


def values_of(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def how(metric: str) -> str:
    """The catalogue's seed aggregation of ``metric`` (``mean`` for derived quantities it does not know)."""
    try:
        return column(metric).aggregate
    except KeyError:
        return "mean"


def is_bounded(metric: str | None) -> bool:
    try:
        return metric is not None and column(metric).bounded
    except KeyError:
        return False


def method(metric: str | None, n: int) -> str:
    """The name of the interval ``interval`` gives for ``n`` values of ``metric`` (tables print it)."""
    if n < MIN_SEEDS:
        return f"none (n < {MIN_SEEDS})"
    if how(metric or "") == "median":
        return "quantile test" if n >= 6 else "range"
    return "bootstrap" if is_bounded(metric) else "t"


def center(values, aggregate: str = "mean") -> float:
    v = values_of(values)
    if not len(v):
        return math.nan
    return float(np.median(v) if aggregate == "median" else v.mean())


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def bootstrap(*samples) -> tuple[float, float]:
    """The percentile bootstrap 95% interval of the mean of one sample, or of the difference of the means
    of two independent samples (each resampled on its own); constant samples give a point interval."""
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    statistic = _mean if len(samples) == 1 else _mean_difference
    if all(len(np.unique(s)) == 1 for s in samples):
        value = float(statistic(*samples))
        return value, value
    res = stats.bootstrap(samples, statistic, n_resamples=RESAMPLES, confidence_level=LEVEL, method="percentile",
                          rng=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def interval(values, aggregate: str = "mean", metric: str | None = None) -> tuple[float, float]:
    """The 95% interval over seeds of ``metric``'s values (see the module docstring for which one)."""
    v = values_of(values)
    if len(v) < MIN_SEEDS:
        return math.nan, math.nan
    if aggregate == "median":
        ci = stats.quantile_test(v, q=np.median(v), p=0.5).confidence_interval(LEVEL)
        lo, hi = float(ci.low), float(ci.high)
        return (float(v.min()), float(v.max())) if math.isnan(lo) or math.isnan(hi) else (lo, hi)
    if is_bounded(metric):
        return bootstrap(v)
    mean, sem = v.mean(), v.std(ddof=1) / math.sqrt(len(v))
    if sem == 0:
        return float(mean), float(mean)
    lo, hi = stats.t.interval(LEVEL, len(v) - 1, loc=mean, scale=sem)
    return float(lo), float(hi)


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of a share k of n (inside [0, 1] whatever k and n)."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def rate_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """k1/n1 - k2/n2 with Newcombe's hybrid score 95% interval (from the two Wilson intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)
