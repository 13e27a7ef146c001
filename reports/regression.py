"""Regression report: a run's final metrics against a baseline's, config by config.

Configs are matched on the study's axes (the config columns that vary within the run or the baseline) and
the feature space of image metrics, so a baseline keeps matching when the code adds an option with a
default, and values from different feature spaces are never compared; any other config column that differs
is listed. For every quality metric of the catalogue (``bench.metrics.column``: its direction and seed
aggregation) present on either side:

* ``delta`` = aggregate(run) - aggregate(baseline) over the ok seeds;
* ``tolerance`` = ``rel_tol`` x the larger of the two aggregates' magnitudes (plus 1e-9 for float noise);
* with at least two seeds on both sides, a two-sided test over seeds: Welch's t test for mean-aggregated
  metrics, Mann-Whitney U for median-aggregated ones;
* verdict: ``unchanged`` when |delta| <= tolerance or the test's p >= ``alpha`` (within seed noise);
  otherwise ``improved`` or ``regressed`` by the metric's direction. A metric the baseline has and the run
  lacks, a config of the baseline missing from the run, and fewer ok cells than the baseline are
  regressions too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench import store
from bench.metrics import column
from bench.summary import config_columns, label_columns, quality_columns, varying_columns
from reports.stats import center
from reports.study import describe

FLOAT_NOISE = 1e-9


class RegressError(ValueError):
    """Unusable input (a path without results, nothing in common with the baseline)."""


def load_runs(path: str | Path) -> pd.DataFrame:
    """The runs table of a study directory, of a directory holding a merged ``runs.parquet`` (a committed
    baseline), or of a ``runs.parquet`` file."""
    path = Path(path)
    if path.is_dir() and not (path / "cells").is_dir() and (path / "runs.parquet").exists():
        path = path / "runs.parquet"
    if not path.exists():
        raise RegressError(f"{path}: no such study directory or parquet file")
    try:
        runs = store.load(path)["runs"]
    except (OSError, ValueError) as err:
        raise RegressError(f"{path}: unreadable results ({err})") from None
    if runs.empty:
        raise RegressError(f"{path}: no stored cells")
    return runs


@dataclass
class Comparison:
    rows: pd.DataFrame  # one row per (config, metric): values, delta, tolerance, p, verdict
    notes: dict[str, list[str]] = field(default_factory=dict)  # config -> notes (config differences, ...)
    run: str = ""
    baseline: str = ""
    rel_tol: float = 0.1
    alpha: float = 0.05

    @property
    def regressed(self) -> bool:
        return bool((self.rows["verdict"] == "regressed").any())


def _axes(run: pd.DataFrame, baseline: pd.DataFrame) -> list[str]:
    """The match key: the axes of either side, and the feature space of image metrics (values measured in
    different feature spaces are never compared)."""
    both = set(run.columns) & set(baseline.columns)
    axes = dict.fromkeys([*varying_columns(run), *varying_columns(baseline), *label_columns(run),
                          *label_columns(baseline)])
    return [a for a in axes if a in both]


def _fill_labels(df: pd.DataFrame) -> pd.DataFrame:
    """A cell without a feature space (it failed before measuring) takes its config's, as in the summary."""
    for label in label_columns(df):
        df = df.assign(**{label: df.groupby("config_id")[label].transform(
            lambda s: s.fillna(s.dropna().iloc[0]) if s.notna().any() else s)})
    return df


def _key(df: pd.DataFrame, axes: list[str]) -> pd.Series:
    if not axes:
        return pd.Series("base", index=df.index)
    return df[axes].astype(str).agg(" | ".join, axis=1)


def _test(current: np.ndarray, base: np.ndarray, aggregate: str) -> tuple[str, float]:
    if len(current) < 2 or len(base) < 2:
        return "none (fewer than 2 seeds)", math.nan
    if aggregate == "median":
        return "Mann-Whitney U", float(stats.mannwhitneyu(current, base, alternative="two-sided").pvalue)
    if current.std() == 0 and base.std() == 0:  # no seed noise at all: any difference is real
        return "Welch t", 1.0 if current.mean() == base.mean() else 0.0
    return "Welch t", float(stats.ttest_ind(current, base, equal_var=False).pvalue)


def _spread(v: np.ndarray) -> str:
    if not len(v):
        return "-"
    sd = f" ± {v.std(ddof=1):.3g}" if len(v) > 1 else ""
    return f"{v.mean():.4g}{sd} (n={len(v)})"


def _metric_row(metric: str, base: np.ndarray, current: np.ndarray, rel_tol: float, alpha: float) -> dict:
    info = column(metric)
    row = {"metric": metric, "higher_is_better": info.higher_is_better, "baseline": _spread(base),
           "current": _spread(current), "baseline_value": math.nan, "current_value": math.nan, "delta": math.nan,
           "tolerance": math.nan, "test": "", "p": math.nan}
    if not len(current):
        return {**row, "verdict": "regressed", "why": "metric missing from the run"}
    if not len(base):
        return {**row, "verdict": "new", "why": "metric not in the baseline"}
    b, c = center(base, info.aggregate), center(current, info.aggregate)
    delta = c - b
    tol = rel_tol * max(abs(b), abs(c)) + FLOAT_NOISE
    test, p = _test(current, base, info.aggregate)
    row.update(baseline_value=b, current_value=c, delta=delta, tolerance=tol, test=test, p=p)
    if abs(delta) <= tol:
        return {**row, "verdict": "unchanged", "why": "within tolerance"}
    if not math.isnan(p) and p >= alpha:
        return {**row, "verdict": "unchanged", "why": f"within seed noise (p >= {alpha})"}
    better = delta > 0 if info.higher_is_better else delta < 0
    return {**row, "verdict": "improved" if better else "regressed", "why": "beyond tolerance"
            + ("" if math.isnan(p) else f" and p < {alpha}")}


def _values(group: pd.DataFrame, metric: str) -> np.ndarray:
    if metric not in group:
        return np.array([])
    v = pd.to_numeric(group.loc[group["status"] == "ok", metric], errors="coerce").to_numpy(dtype=float)
    return v[np.isfinite(v)]


def compare(run: pd.DataFrame, baseline: pd.DataFrame, *, rel_tol: float = 0.1, alpha: float = 0.05,
            run_name: str = "", baseline_name: str = "") -> Comparison:
    """Compare ``run`` with ``baseline`` (runs tables) config by config; see the module docstring."""
    run, baseline = _fill_labels(run), _fill_labels(baseline)
    axes = _axes(run, baseline)
    run, baseline = run.assign(_key=_key(run, axes)), baseline.assign(_key=_key(baseline, axes))
    metrics = list(dict.fromkeys([*quality_columns(baseline), *quality_columns(run)]))
    shared_config = [c for c in config_columns(run) if c in baseline.columns and c not in axes]
    matched = set(run["_key"]) & set(baseline["_key"])
    if not matched:
        raise RegressError(f"no config of the run matches the baseline on the axes {axes or '(none)'}")
    rows, notes = [], {}
    for key in dict.fromkeys([*baseline["_key"], *run["_key"]]):
        b, c = baseline[baseline["_key"] == key], run[run["_key"] == key]
        label = describe((c if len(c) else b).iloc[0], axes) or "base"
        if not len(c):
            rows.append({"config": label, "metric": "(config)", "verdict": "regressed", "why": "config missing from the run"})
            continue
        if not len(b):
            rows.append({"config": label, "metric": "(config)", "verdict": "new", "why": "config not in the baseline"})
            continue
        notes[label] = [f"`{col}`: baseline {b[col].iloc[0]}, run {c[col].iloc[0]}" for col in shared_config
                        if not _same(b[col].iloc[0], c[col].iloc[0])]
        ok_b, ok_c = (b["status"] == "ok").mean(), (c["status"] == "ok").mean()
        rows.append({"config": label, "metric": "ok cells", "baseline": f"{int((b['status'] == 'ok').sum())}/{len(b)}",
                     "current": f"{int((c['status'] == 'ok').sum())}/{len(c)}",
                     "verdict": "regressed" if ok_c < ok_b else "improved" if ok_c > ok_b else "unchanged",
                     "why": ", ".join(f"{n} {s}" for s, n in c["status"].value_counts().items() if s != "ok")})
        for m in metrics:
            vb, vc = _values(b, m), _values(c, m)
            if len(vb) or len(vc):
                rows.append({"config": label, **_metric_row(m, vb, vc, rel_tol, alpha)})
    return Comparison(pd.DataFrame(rows), notes, run_name, baseline_name, rel_tol, alpha)


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    return str(a) == str(b)


def _sha(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(runs["git_sha"].dropna().astype(str).unique())) if "git_sha" in runs else "unknown"


def markdown(cmp: Comparison, run_sha: str = "", baseline_sha: str = "") -> str:
    """The report, to paste into a pull request."""
    rows = cmp.rows
    counts = rows["verdict"].value_counts()
    bad = rows[rows["verdict"] == "regressed"]
    head = (f"**REGRESSED**: {len(bad)} regression(s) in {bad['config'].nunique()} config(s)" if len(bad)
            else "**No regression**")
    lines = [
        f"## Regression report: `{cmp.run}` vs baseline `{cmp.baseline}`",
        "",
        head + " (" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")",
        "",
        f"- run: `{cmp.run}` (code {run_sha or 'unknown'}); baseline: `{cmp.baseline}` (code {baseline_sha or 'unknown'})",
        f"- a metric changes when |delta| > tolerance = {cmp.rel_tol:g} x max(|baseline|, |run|) and, with two or "
        f"more seeds on both sides, the test over seeds gives p < {cmp.alpha:g} (Welch t for mean-aggregated "
        "metrics, Mann-Whitney U for median-aggregated ones); direction and aggregation from the metric catalogue",
        "",
    ]
    for config, group in rows.groupby("config", sort=False):
        lines += [f"### {config}", ""]
        table = pd.DataFrame({
            "metric": [f"{m} {_arrow(h)}" for m, h in zip(group["metric"], group.get("higher_is_better", [None] * len(group)))],
            "baseline": group.get("baseline"), "run": group.get("current"),
            "delta": [_num(v, signed=True) for v in group.get("delta", [math.nan] * len(group))],
            "tolerance": [_num(v) for v in group.get("tolerance", [math.nan] * len(group))],
            "test": group.get("test"), "p": [_num(v) for v in group.get("p", [math.nan] * len(group))],
            "verdict": [f"**{v}**" if v == "regressed" else v for v in group["verdict"]],
            "why": group.get("why"),
        }).fillna("")
        lines += [table.to_markdown(index=False), ""]
        lines += [f"- config differs: {n}" for n in cmp.notes.get(config, [])]
        lines += [""] if cmp.notes.get(config) else []
    return "\n".join(lines)


def _arrow(higher) -> str:
    return "" if higher is None or (isinstance(higher, float) and math.isnan(higher)) else ("↑" if higher else "↓")


def _num(v, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def report(run_path: str | Path, baseline_path: str | Path, **kw) -> tuple[Comparison, str]:
    run, baseline = load_runs(run_path), load_runs(baseline_path)
    cmp = compare(run, baseline, run_name=str(run_path), baseline_name=str(baseline_path), **kw)
    return cmp, markdown(cmp, _sha(run), _sha(baseline))
