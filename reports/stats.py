"""Seed statistics shared by every figure: the centre and 95% interval of a metric over seeds.

How a metric aggregates comes from the metric catalogue (``bench.metrics.column(name).aggregate``):

* ``mean``: the mean, with the Student-t 95% confidence interval ``mean +- t(0.975, n-1) * s / sqrt(n)``;
* ``median``: the median, with the distribution-free 95% interval of ``scipy.stats.quantile_test`` (it
  needs at least 6 values; with fewer the interval shown is the full range [min, max]).

One value gives a centre and no interval (NaN bounds). Figures pass these same functions to seaborn
(``estimator=`` / ``errorbar=``), so the plotted numbers and the tables are the same numbers.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from bench.metrics import column

LEVEL = 0.95


def _values(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def how(metric: str) -> str:
    """The catalogue's seed aggregation of ``metric`` (``mean`` for derived plot quantities it does not know)."""
    try:
        return column(metric).aggregate
    except KeyError:
        return "mean"


def center(values, aggregate: str = "mean") -> float:
    v = _values(values)
    if not len(v):
        return math.nan
    return float(np.median(v) if aggregate == "median" else v.mean())


def interval(values, aggregate: str = "mean") -> tuple[float, float]:
    """The 95% interval over seeds (see the module docstring); NaN bounds for fewer than two values."""
    v = _values(values)
    if len(v) < 2:
        return math.nan, math.nan
    if aggregate == "median":
        ci = stats.quantile_test(v, q=np.median(v), p=0.5).confidence_interval(LEVEL)
        lo, hi = float(ci.low), float(ci.high)
        return (float(v.min()), float(v.max())) if math.isnan(lo) or math.isnan(hi) else (lo, hi)
    mean, sem = v.mean(), v.std(ddof=1) / math.sqrt(len(v))
    if sem == 0:
        return float(mean), float(mean)
    lo, hi = stats.t.interval(LEVEL, len(v) - 1, loc=mean, scale=sem)
    return float(lo), float(hi)


def seaborn_args(metric: str) -> dict[str, Callable]:
    """``estimator`` and ``errorbar`` for a seaborn plot of ``metric``: the same numbers as ``summarize``."""
    aggregate = how(metric)
    return {"estimator": lambda v: center(v, aggregate), "errorbar": lambda v: interval(v, aggregate)}


def summarize(df: pd.DataFrame, by: list[str], value: str = "value", metric: str | None = None) -> pd.DataFrame:
    """One row per group of ``by``: ``n`` (values over seeds), ``center``, ``lo``, ``hi`` and ``seeds``.

    ``metric`` names the catalogue column whose aggregation applies; by default each group's value of the
    ``metric`` column of a long-format frame.
    """
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        aggregate = how(metric or group["metric"].iloc[0])
        v = group[value]
        lo, hi = interval(v, aggregate)
        seeds = sorted(group.loc[np.isfinite(v.astype(float)), "seed"].tolist()) if "seed" in group else []
        rows.append({**dict(zip(by, key)), "n": len(_values(v)), "center": center(v, aggregate), "lo": lo, "hi": hi,
                     "aggregate": aggregate, "seeds": seeds})
    return pd.DataFrame(rows, columns=[*by, "n", "center", "lo", "hi", "aggregate", "seeds"])


def median_filter(values: np.ndarray, size: int = 5) -> np.ndarray:
    """The running median over ``size`` consecutive points (edges: the points available), as the WGAN
    paper smooths its training curves (Figs. 3 and 4)."""
    return pd.Series(values, dtype=float).rolling(size, center=True, min_periods=1).median().to_numpy()
