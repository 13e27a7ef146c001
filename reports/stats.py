"""Seed statistics shared by every figure: the centre and 95% interval of a metric over seeds.

How a metric aggregates (mean or median) comes from the metric catalogue (``bench.metrics.column(name)``);
which interval goes with it is ``bench.stats``'s policy, the same as the terminal summary's: bootstrap of
the mean for bounded metrics, Student t for the others, the quantile test for medians, and no interval with
fewer than 3 seeds. Figures pass these same functions to seaborn (``estimator=`` / ``errorbar=``), so the
plotted numbers and the tables are the same numbers.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from bench.stats import center, how, interval, method, values_of


def seaborn_args(metric: str) -> dict[str, Callable]:
    """``estimator`` and ``errorbar`` for a seaborn plot of ``metric``: the same numbers as ``summarize``."""
    aggregate = how(metric)
    return {"estimator": lambda v: center(v, aggregate), "errorbar": lambda v: interval(v, aggregate, metric)}


def summarize(df: pd.DataFrame, by: list[str], value: str = "value", metric: str | None = None) -> pd.DataFrame:
    """One row per group of ``by``: ``n`` (values over seeds), ``center``, ``lo``, ``hi``, ``interval`` (which
    one, ``bench.stats.method``) and ``seeds``.

    ``metric`` names the catalogue column whose aggregation applies; by default each group's value of the
    ``metric`` column of a long-format frame.
    """
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        name = metric or group["metric"].iloc[0]
        aggregate = how(name)
        v = group[value]
        lo, hi = interval(v, aggregate, name)
        seeds = sorted(group.loc[np.isfinite(v.astype(float)), "seed"].tolist()) if "seed" in group else []
        n = len(values_of(v))
        rows.append({**dict(zip(by, key)), "n": n, "center": center(v, aggregate), "lo": lo, "hi": hi,
                     "aggregate": aggregate, "interval": method(name, n), "seeds": seeds})
    return pd.DataFrame(rows, columns=[*by, "n", "center", "lo", "hi", "aggregate", "interval", "seeds"])


def median_filter(values: np.ndarray, size: int = 5) -> np.ndarray:
    """The running median over ``size`` consecutive points (edges: the points available), as the WGAN
    paper smooths its training curves (Figs. 3 and 4)."""
    return pd.Series(values, dtype=float).rolling(size, center=True, min_periods=1).median().to_numpy()
