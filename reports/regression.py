"""Regression report: a run's final metrics against a baseline's, config by config.

Configs are matched on the study's axes (the config columns that vary within the run or the baseline) and
the feature space of image metrics, so a baseline keeps matching when the code adds an option with a
default, and values from different feature spaces are never compared; any other config column that differs
is listed. For every quality metric of the catalogue (``bench.metrics.column``: its direction and seed
aggregation) present on either side:

* ``delta`` = aggregate(run) - aggregate(baseline) over the ok seeds;
* ``tolerance`` = ``rel_tol`` x the larger of the two aggregates' magnitudes (plus 1e-9 for float noise):
  the smallest change that matters in practice;
* with at least two seeds on both sides, ``p``: a two-sided permutation test over seeds of the difference
  in the aggregate (``permutation_p``; exact, distribution-free), and ``p_holm``: that p adjusted (Holm)
  for every test in the report, so ``alpha`` bounds the chance that a comparison of two draws of one
  distribution shows any change at all;
* verdict: ``improved`` or ``regressed`` (by the metric's direction) when |delta| > tolerance and
  ``p_holm`` < ``alpha``, or, with fewer than two seeds on a side (no test), on the tolerance alone;
  otherwise ``unchanged``.

Training amplifies float rounding: on another CPU, thread count or precision a run's final metrics differ
from the baseline's as much as another seed's would. The test asks exactly whether the run's seeds could be
another draw of the baseline's seed distribution, so such changes pass and a change of the distribution
itself (a bug) does not. The share of ok cells is tested the same way (a ``diverged`` cell is a result that
chaos may give on one machine and not another); a cell that ``failed`` or timed out where the baseline's did
not, a metric the baseline has and the run lacks, and a config of the baseline missing from the run are
regressions outright.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import store
from bench.metrics import column
from bench.summary import config_columns, label_columns, quality_columns, varying_columns
from reports.stats import center
from reports.study import describe

FLOAT_NOISE = 1e-9
PERMUTATIONS = 20_000  # splits the permutation test enumerates at most; beyond, as many random ones
CRASHED = ("failed", "timeout")  # statuses that are no result at all (a diverged cell is a result)


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
    alpha: float = 0.01

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


@functools.lru_cache(maxsize=64)
def _splits(total: int, n: int) -> tuple[np.ndarray, bool]:
    """Boolean rows, each picking ``n`` of ``total`` pooled values for the first group: every such split when
    there are at most ``PERMUTATIONS`` (exact), else ``PERMUTATIONS`` random ones from a fixed seed."""
    exact = math.comb(total, n) <= PERMUTATIONS
    if exact:
        picks = np.array(list(itertools.combinations(range(total), n)))
    else:
        picks = np.argsort(np.random.default_rng(0).random((PERMUTATIONS, total)), axis=1)[:, :n]
    first = np.zeros((len(picks), total), dtype=bool)
    np.put_along_axis(first, picks, True, axis=1)
    return first, exact


def permutation_p(current: np.ndarray, base: np.ndarray, aggregate: str = "mean") -> float:
    """Two-sided permutation test of ``center(current) - center(base)`` (the catalogue's aggregate): the share
    of the splits of the pooled seeds into groups of the two sizes whose difference is at least as large
    (``_splits``: exact, or random splits counted with the observed one; the same p on every machine)."""
    pooled = np.concatenate([current, base])
    n, total = len(current), len(pooled)
    first, exact = _splits(total, n)
    values = np.broadcast_to(pooled, first.shape)
    centre = np.median if aggregate == "median" else np.mean
    diffs = centre(values[first].reshape(-1, n), axis=1) - centre(values[~first].reshape(-1, total - n), axis=1)
    observed = abs(center(current, aggregate) - center(base, aggregate))
    hits = int((np.abs(diffs) >= observed - FLOAT_NOISE * np.abs(pooled).max()).sum())
    return hits / len(first) if exact else (hits + 1) / (len(first) + 1)


def holm(p: pd.Series) -> pd.Series:
    """Holm's step-down adjustment of the p-values in ``p`` (NaN: no test, left out of the family)."""
    tested = p.dropna().sort_values(kind="stable")
    m = len(tested)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * tested.to_numpy(dtype=float)))
    return pd.Series(adjusted, index=tested.index).reindex(p.index)


def _spread(v: np.ndarray) -> str:
    if not len(v):
        return "-"
    sd = f" ± {v.std(ddof=1):.3g}" if len(v) > 1 else ""
    return f"{v.mean():.4g}{sd} (n={len(v)})"


def _metric_row(metric: str, base: np.ndarray, current: np.ndarray, rel_tol: float) -> dict:
    """A metric's numbers; the verdict comes later (``_verdicts``), once every test of the report is known."""
    info = column(metric)
    row = {"metric": metric, "higher_is_better": info.higher_is_better, "baseline": _spread(base),
           "current": _spread(current)}
    if not len(current):
        return {**row, "verdict": "regressed", "why": "metric missing from the run"}
    if not len(base):
        return {**row, "verdict": "new", "why": "metric not in the baseline"}
    b, c = center(base, info.aggregate), center(current, info.aggregate)
    tested = len(current) >= 2 and len(base) >= 2
    return {**row, "baseline_value": b, "current_value": c, "delta": c - b,
            "tolerance": rel_tol * max(abs(b), abs(c)) + FLOAT_NOISE,
            "test": "permutation" if tested else "none (fewer than 2 seeds)",
            "p": permutation_p(current, base, info.aggregate) if tested else math.nan}


def _cells_row(b: pd.DataFrame, c: pd.DataFrame) -> dict:
    """The share of ok cells: a crash the baseline did not have is a regression; fewer ok cells (diverged
    ones) are tested over cells like a metric."""
    ok_b, ok_c = (b["status"] == "ok").to_numpy(dtype=float), (c["status"] == "ok").to_numpy(dtype=float)
    row = {"metric": "ok cells", "higher_is_better": True, "baseline": f"{int(ok_b.sum())}/{len(b)}",
           "current": f"{int(ok_c.sum())}/{len(c)}",
           "note": ", ".join(f"{n} {s}" for s, n in c["status"].value_counts().items() if s != "ok")}
    if c["status"].isin(CRASHED).mean() > b["status"].isin(CRASHED).mean():
        return {**row, "verdict": "regressed", "why": f"cells crashed: {row['note']}"}
    tested = len(ok_b) >= 2 and len(ok_c) >= 2
    return {**row, "baseline_value": ok_b.mean(), "current_value": ok_c.mean(), "delta": ok_c.mean() - ok_b.mean(),
            "tolerance": FLOAT_NOISE, "test": "permutation" if tested else "none (fewer than 2 cells)",
            "p": permutation_p(ok_c, ok_b) if tested else math.nan}


def _verdicts(rows: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Holm-adjust every test of the report, then judge each row that has no verdict yet."""
    rows = rows.assign(p_holm=holm(rows["p"]))
    judged = [(r["verdict"], r["why"]) if isinstance(r["verdict"], str) else _judge(r, alpha)
              for _, r in rows.iterrows()]
    verdicts, whys = zip(*judged)
    return rows.assign(verdict=list(verdicts), why=list(whys)).drop(columns="note")


def _judge(r: pd.Series, alpha: float) -> tuple[str, str]:
    note = r["note"] if isinstance(r["note"], str) else ""
    if abs(r["delta"]) <= r["tolerance"]:
        verdict, reason = "unchanged", "within tolerance"
    elif not math.isnan(r["p_holm"]) and r["p_holm"] >= alpha:
        verdict, reason = "unchanged", f"within seed noise (p_holm >= {alpha:g})"
    else:
        better = r["delta"] > 0 if r["higher_is_better"] else r["delta"] < 0
        verdict = "improved" if better else "regressed"
        reason = "beyond tolerance" + ("" if math.isnan(r["p_holm"]) else f" and p_holm < {alpha:g}")
    return verdict, "; ".join(filter(None, [reason, note]))


def _values(group: pd.DataFrame, metric: str) -> np.ndarray:
    if metric not in group:
        return np.array([])
    v = pd.to_numeric(group.loc[group["status"] == "ok", metric], errors="coerce").to_numpy(dtype=float)
    return v[np.isfinite(v)]


def compare(run: pd.DataFrame, baseline: pd.DataFrame, *, rel_tol: float = 0.1, alpha: float = 0.01,
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
            rows.append({"config": label, "metric": "(config)", "verdict": "regressed",
                         "why": "config missing from the run"})
            continue
        if not len(b):
            rows.append({"config": label, "metric": "(config)", "verdict": "new", "why": "config not in the baseline"})
            continue
        notes[label] = [f"`{col}`: baseline {b[col].iloc[0]}, run {c[col].iloc[0]}" for col in shared_config
                        if not _same(b[col].iloc[0], c[col].iloc[0])]
        rows.append({"config": label, **_cells_row(b, c)})
        for m in metrics:
            vb, vc = _values(b, m), _values(c, m)
            if len(vb) or len(vc):
                rows.append({"config": label, **_metric_row(m, vb, vc, rel_tol)})
    columns = ["config", "metric", "higher_is_better", "baseline", "current", "baseline_value", "current_value",
               "delta", "tolerance", "test", "p", "note", "verdict", "why"]
    rows = _verdicts(pd.DataFrame(rows).reindex(columns=columns), alpha)
    return Comparison(rows, notes, run_name, baseline_name, rel_tol, alpha)


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    return str(a) == str(b)


def _sha(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(runs["git_sha"].dropna().astype(str).unique())) if "git_sha" in runs else "unknown"


def markdown(cmp: Comparison, run_sha: str = "", baseline_sha: str = "") -> str:
    """The report, to paste into a pull request (or a CI job's summary)."""
    rows = cmp.rows
    counts = rows["verdict"].value_counts()
    bad = rows[rows["verdict"] == "regressed"]
    head = "**No regression**"
    if len(bad):
        named = "; ".join(f"{config}: {', '.join(g['metric'])}" for config, g in bad.groupby("config", sort=False))
        head = f"**REGRESSED**: {len(bad)} regression(s) in {bad['config'].nunique()} config(s) ({named})"
    lines = [
        f"## Regression report: `{cmp.run}` vs baseline `{cmp.baseline}`",
        "",
        head,
        "",
        "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
        "",
        f"- run: `{cmp.run}` (code {run_sha or 'unknown'}); "
        f"baseline: `{cmp.baseline}` (code {baseline_sha or 'unknown'})",
        f"- a metric changes when |delta| > tolerance = {cmp.rel_tol:g} x max(|baseline|, |run|) and, with two or "
        f"more seeds on both sides, p_holm < {cmp.alpha:g}: p is a two-sided permutation test over seeds of the "
        "difference in the seed aggregate, p_holm the same p adjusted (Holm) for all the report's tests; "
        "direction and aggregation from the metric catalogue",
        "",
    ]
    for config, group in rows.groupby("config", sort=False):
        lines += [f"### {config}", ""]
        table = pd.DataFrame({
            "metric": [f"{m} {_arrow(h)}" for m, h in zip(group["metric"], group["higher_is_better"])],
            "baseline": group["baseline"], "run": group["current"],
            "delta": [_num(v, signed=True) for v in group["delta"]],
            "tolerance": [_num(v) for v in group["tolerance"]],
            "test": group["test"], "p": [_num(v) for v in group["p"]],
            "p_holm": [_num(v) for v in group["p_holm"]],
            "verdict": [f"**{v}**" if v == "regressed" else v for v in group["verdict"]],
            "why": group["why"],
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
