"""What a figure function returns, and the registry that lists the figures.

A figure is one function ``(study, out_dir) -> Section``, registered with ``applies(study) -> bool`` (does
the study hold the data it needs): it calls the figure's ``table()`` (numbers) and ``draw()`` (files) and
wraps them in a ``Section``. ``bench.report`` runs every figure that applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.registry import Registry  # noqa: E402


@dataclass
class Section:
    """One figure of the report: what it shows, the files, the numbers behind it, the seeds used."""

    key: str  # file stem of the figure: <key>.png / <key>.svg
    title: str
    description: str  # what the figure shows and what the paper claims about it
    data: pd.DataFrame  # the numbers behind the figure (also written as data/<key>.csv)
    seeds: list[int]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # cells left out and why, caveats
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further named tables (e.g. correlations)
    shown: pd.DataFrame | None = None  # the part of ``data`` the report prints (default: all of it)


FIGURES: Registry[Callable] = Registry("figure")


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)


def save(fig: plt.Figure, out: Path, key: str) -> list[Path]:
    """Write ``fig`` as ``<key>.png`` (150 dpi) and ``<key>.svg`` under ``out``, then close it."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{key}.png", out / f"{key}.svg"]
    fig.savefig(files[0], dpi=150)  # the constrained layout already fits titles and legends
    fig.savefig(files[1])
    plt.close(fig)
    return files


def grid(n: int, ncols: int, size: tuple[float, float] = (3.6, 3.0), **kw) -> tuple[plt.Figure, list[plt.Axes]]:
    """``n`` panels on rows of ``ncols``; unused panels are hidden."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                             layout="constrained", **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def fit_ylim(ax: plt.Axes, values, factor: float = 3.0) -> bool:
    """Keep the y axis on the data when seed intervals would stretch it more than ``factor`` times the
    data's span (few seeds give very wide t intervals); returns whether intervals were cut (tables keep them)."""
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return False
    lo, hi = values.min(), values.max()
    span = (hi - lo) or abs(hi) or 1.0
    y0, y1 = ax.get_ylim()
    if (y1 - y0) <= factor * span:
        return False
    ax.set_ylim(lo - 0.5 * span, hi + 0.5 * span)
    return True
