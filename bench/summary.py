"""The end-of-run summary: one line per distinct config, mean +- std over seeds, status counts."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.metrics import column

CONFIG_PREFIXES = ("preset", "dataset.", "generator.", "critic.", "loss.", "optimizer.", "train.", "eval.")
STATUSES = ["ok", "diverged", "failed", "timeout", "pruned"]


def config_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith(CONFIG_PREFIXES)]


def varying_columns(runs: pd.DataFrame) -> list[str]:
    """The ablation's axes: config columns that tell configs apart, each kept only if it separates
    configs that the columns before it do not (``optimizer.name`` adds nothing when it follows from
    ``loss.name``'s preset)."""
    text = runs[config_columns(runs)].astype(str)
    cols: list[str] = []
    n_groups = 1
    for c in text.columns:
        n = len(text.groupby([*cols, c]).size()) if cols else text[c].nunique()
        if n > n_groups:
            cols.append(c)
            n_groups = n
    return cols


def quality_columns(runs: pd.DataFrame) -> list[str]:
    """Metric columns present in ``runs`` that the catalogue marks as quality measures (or W estimates)."""
    out = []
    for c in runs.columns:
        try:
            info = column(c)
        except KeyError:
            continue
        if info.higher_is_better is not None and runs[c].notna().any():
            out.append(c)
    return out


def label_columns(runs: pd.DataFrame) -> list[str]:
    """Labels that say what a metric value means (the image metrics' ``feature_space``): values are only
    aggregated and compared within one label value."""
    return [c for c in ("feature_space",) if c in runs and runs[c].notna().any()]


def by_config(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config_id (and feature space): the axes, seed count, status counts, and mean/std of
    each quality metric."""
    axes, metrics, labels = varying_columns(runs), quality_columns(runs), label_columns(runs)
    for label in labels:  # a failed seed has no label: count it with its config's (first) labelled rows
        runs = runs.assign(**{label: runs.groupby("config_id")[label].transform(
            lambda s: s.fillna(s.dropna().iloc[0]) if s.notna().any() else s)})
    rows = []
    for key, group in runs.groupby(["config_id", *labels], sort=False, dropna=False):
        row = {"config_id": key[0], **{a: group[a].iloc[0] for a in [*axes, *labels]}, "seeds": len(group)}
        row.update({s: int((group["status"] == s).sum()) for s in STATUSES})
        ok = group[group["status"] == "ok"]
        for m in metrics:
            values = ok[m].dropna() if m in ok else pd.Series(dtype=float)
            row[f"{m}_mean"] = values.mean() if len(values) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values(axes, kind="stable") if axes else pd.DataFrame(rows)


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.3g}" if math.isnan(std) else f"{mean:.3g} ± {std:.2g}"


def summary_table(runs: pd.DataFrame, title: str = "") -> Table:
    axes, metrics = varying_columns(runs) + label_columns(runs), quality_columns(runs)
    agg = by_config(runs)
    table = Table(title=title, title_justify="left")
    for a in axes:
        table.add_column(a)
    table.add_column("seeds", justify="right")
    table.add_column("status")
    for m in metrics:
        arrow = "↑" if column(m).higher_is_better else "↓"
        table.add_column(f"{m} {arrow}", justify="right")
    for _, row in agg.iterrows():
        status = " ".join(f"{s} {row[s]}" for s in STATUSES if row[s])
        table.add_row(*["-" if pd.isna(row[a]) else str(row[a]) for a in axes], str(row["seeds"]), status,
                      *[_fmt(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics])
    return table


def print_summary(runs: pd.DataFrame, title: str = "", console: Console | None = None) -> None:
    console = console or Console()
    if runs.empty:
        console.print("no stored cells")
        return
    console.print(summary_table(runs, title))
    counts = runs["status"].value_counts()
    console.print("cells: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0)))
