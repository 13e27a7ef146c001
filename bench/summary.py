"""The end-of-run summary: one line per distinct config, the mean over the seeds that trained with its 95%
interval (``bench.stats``: the same statistic as the report's; bootstrap for bounded metrics, none with fewer
than 3 seeds), ``n_ok / n_seeds`` beside every mean, the share of seeds that trained (a Wilson 95% interval: a
loss whose seeds diverge shows it as a result, not as a shorter average) and exact W1's real-vs-real floor."""

from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.metrics import column
from bench.stats import MIN_SEEDS, bootstrap, center, how, interval, wilson

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
    """One row per config_id (and feature space): the axes, seed count, status counts, and per quality
    metric the seed aggregate (mean, or median where the catalogue says so), its 95% interval (``lo``,
    ``hi``; ``bench.stats``) and std."""
    axes, metrics, labels = varying_columns(runs), quality_columns(runs), label_columns(runs)
    for label in labels:  # a failed seed has no label: count it with its config's (first) labelled rows
        runs = runs.assign(**{label: runs.groupby("config_id")[label].transform(
            lambda s: s.fillna(s.dropna().iloc[0]) if s.notna().any() else s)})
    rows = []
    for key, group in runs.groupby(["config_id", *labels], sort=False, dropna=False):
        row = {"config_id": key[0], **{a: group[a].iloc[0] for a in [*axes, *labels]}, "seeds": len(group)}
        row.update({s: int((group["status"] == s).sum()) for s in STATUSES})
        row["ok_lo"], row["ok_hi"] = success_interval(row["ok"], len(group))
        ok = group[group["status"] == "ok"]
        for m in metrics:
            values = ok[m].dropna() if m in ok else pd.Series(dtype=float)
            row[f"{m}_mean"] = center(values, how(m))
            row[f"{m}_lo"], row[f"{m}_hi"] = interval(values, how(m), m)
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            row[f"{m}_n"] = len(values)
        if "w1_exact" in metrics:
            row["w1_floor"] = w1_floor(group["config_json"].iloc[0]) if "config_json" in group else math.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values(axes, kind="stable") if axes else pd.DataFrame(rows)


def success_interval(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of the share of seeds that trained, k of n (in [0, 1] whatever k and n)."""
    return wilson(k, n)


@lru_cache(maxsize=None)
def _floor(dataset_json: str, n: int) -> float:
    from bench.metrics.transport import real_vs_real_w1

    return real_vs_real_w1(json.loads(dataset_json), n)


def w1_floor(config_json: str) -> float:
    """``w1_exact``'s real-vs-real floor for the data set and ``eval.w1_samples`` of a config."""
    config = json.loads(config_json)
    return _floor(json.dumps(config["dataset"], sort_keys=True), config["eval"]["w1_samples"])


def _fmt(mean: float, lo: float, hi: float, n: int, seeds: int) -> str:
    """``mean [lo, hi] (n_ok/n_seeds)``: the seeds behind the mean beside it; no interval below 3 seeds."""
    if math.isnan(mean):
        return f"- (0/{seeds})"
    value = f"{mean:.3g}" if math.isnan(lo) else f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"
    return f"{value} ({n}/{seeds})"


def _trained(row: pd.Series) -> str:
    return f"{row['ok']}/{row['seeds']} [{row['ok_lo']:.0%}, {row['ok_hi']:.0%}]"


def summary_table(runs: pd.DataFrame, title: str = "") -> Table:
    axes, metrics = varying_columns(runs) + label_columns(runs), quality_columns(runs)
    agg = by_config(runs)
    table = Table(title=title, title_justify="left")
    for a in axes:
        table.add_column(a)
    table.add_column("trained ok [Wilson 95%]", justify="right")
    table.add_column("status")
    samples = _mode_samples(runs)
    for m in metrics:
        arrow = "↑" if column(m).higher_is_better else "↓"
        table.add_column(f"{m} {arrow}" + (f" @{samples}" if m in MODE_COLUMNS and samples else ""), justify="right")
        if m == "w1_exact" and "w1_floor" in agg:
            table.add_column("w1 real-vs-real floor", justify="right")
    for _, row in agg.iterrows():
        status = " ".join(f"{s} {row[s]}" for s in STATUSES if row[s])
        cells = []
        for m in metrics:
            cells.append(_fmt(row[f"{m}_mean"], row[f"{m}_lo"], row[f"{m}_hi"], row[f"{m}_n"], row["seeds"]))
            if m == "w1_exact" and "w1_floor" in agg:
                cells.append("-" if pd.isna(row["w1_floor"]) else f"{row['w1_floor']:.3g}")
        table.add_row(*["-" if pd.isna(row[a]) else str(row[a]) for a in axes], _trained(row), status, *cells)
    table.caption = ("mean [95% interval] over the seeds that trained (n_ok/n_seeds), median where the catalogue says "
                     "so; " + INTERVALS)
    return table


INTERVALS = ("intervals: bootstrap percentile of the mean for bounded metrics (modes, shares, divergences, "
             "distances), Student t otherwise, quantile test for medians; none with fewer than 3 seeds "
             "(bench/stats.py)")
MODE_COLUMNS = ("modes_captured", "hq_fraction", "mode_kl", "mode_jsd")


def _mode_samples(runs: pd.DataFrame) -> str:
    """The generated-sample count(s) behind the mode metrics, as the column headers print it."""
    if "mode_samples" not in runs or runs["mode_samples"].isna().all():
        return ""
    return "/".join(str(int(n)) for n in sorted(runs["mode_samples"].dropna().unique()))


def select(runs: pd.DataFrame, rule: dict, ok: bool = True) -> pd.DataFrame:
    """The runs (only those that trained, when ``ok``) whose config has every dotted path of ``rule`` at its
    value (floats to 1e-9)."""
    mask = pd.Series(True, index=runs.index)
    for path, want in rule.items():
        if path not in runs:
            return runs.iloc[:0]
        got = runs[path]
        mask &= np.isclose(got.astype(float), want) if isinstance(want, float) else got.astype(str) == str(want)
    return runs[mask & (runs["status"] == "ok")] if ok else runs[mask]


def _label(rule: dict) -> str:
    return ", ".join(str(v) for v in rule.values())


def comparison(runs: pd.DataFrame, compare: list[dict]) -> list[str]:
    """One line per quality metric: first selection minus second, difference of the means over seeds with
    its percentile-bootstrap 95% interval (each side resampled on its own; none with fewer than 3 seeds a
    side), the direction that is better, and both means, e.g.
    ``WGAN-GP vs minimax: modes_captured +9.2 [6.4, 12] (higher is better; 24.6 vs 15.4, 5 vs 5 seeds)``."""
    a, b = (select(runs, rule) for rule in compare)
    lines = []
    for m in quality_columns(runs):
        x, y = a[m].dropna().to_numpy(float), b[m].dropna().to_numpy(float)
        if not (len(x) and len(y)):
            continue
        d = x.mean() - y.mean()
        n = min(len(x), len(y))
        if n >= MIN_SEEDS:
            lo, hi = bootstrap(x, y)
            ci = f" [{lo:+.3g}, {hi:+.3g}]"
        else:
            ci = f" (no interval: fewer than {MIN_SEEDS} seeds a side)"
        better = "higher" if column(m).higher_is_better else "lower"
        lines.append(f"{_label(compare[0])} vs {_label(compare[1])}: {m} {d:+.3g}{ci} ({better} is better; "
                     f"{x.mean():.3g} vs {y.mean():.3g}, {len(x)} vs {len(y)} seeds)")
    return lines


def print_summary(runs: pd.DataFrame, title: str = "", console: Console | None = None,
                  compare: list[dict] | None = None) -> None:
    console = console or Console()
    if runs.empty:
        console.print("no stored cells")
        return
    console.print(summary_table(runs, title))
    if compare:
        console.print("difference of the means, 95% bootstrap interval over seeds:")
        for line in comparison(runs, compare):
            console.print("  " + line, highlight=False)
    counts = runs["status"].value_counts()
    console.print("cells: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0)))
