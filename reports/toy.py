"""The toy-ablation summary: every quality metric of the study's final evaluation, per config (no single
paper figure: the mode metrics follow the VEEGAN / PacGAN protocol). ``values()`` holds the seeds,
``table()`` their statistics (what the report prints), ``draw()`` only plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from bench.metrics import column
from bench.summary import success_interval
from reports.section import FIGURES, Section, fit_ylim, grid, save
from reports.stats import seaborn_args, summarize
from reports.study import Study


def trained(study: Study) -> pd.DataFrame:
    """Per config label: seeds, seeds that trained (status ok), the Wilson 95% interval of that share, and
    the text the figure prints under each config ("2/3 ok, 1 diverged")."""
    rows = {}
    for config_id, group in study.runs.groupby("config_id", sort=False):
        n_ok, n = int((group["status"] == "ok").sum()), len(group)
        others = group.loc[group["status"] != "ok", "status"].value_counts()
        lo, hi = success_interval(n_ok, n)
        text = f"{n_ok}/{n} ok" + "".join(f", {k} {status}" for status, k in others.items())
        rows[study.labels[config_id]] = {"n_seeds": n, "n_ok": n_ok, "ok_lo": lo, "ok_hi": hi, "text": text}
    return pd.DataFrame.from_dict(rows, orient="index")


def crossed_axes(study: Study) -> list[str] | None:
    """Two axes whose every combination is a config, as (hue, x) of the figure; None otherwise."""
    if len(study.axes) != 2:
        return None
    configs = study.runs.drop_duplicates("config_id")[study.axes]
    full = len(configs) == configs[study.axes[0]].nunique() * configs[study.axes[1]].nunique()
    return list(study.axes) if full and not configs.isna().any().any() else None


def values(study: Study) -> pd.DataFrame:
    """Tidy, one row per (ok cell, quality metric): ``config_id``, ``seed``, the study's axes (as text when
    they are ``crossed_axes``), ``feature_space`` (with several), ``metric``, ``value`` and ``config``."""
    metrics = study.quality_columns()
    split = any(space is not None for _, space in study.panels(metrics))  # several feature spaces: never mixed
    ids = ["config_id", "seed", *study.axes, *(["feature_space"] if split else [])]
    long = study.ok.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")
    long["config"] = long["config_id"].map(study.labels)
    for axis in crossed_axes(study) or []:
        long[axis] = long[axis].astype(str)
    return long


def table(study: Study, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy, one row per (config, metric[, feature_space]) in figure order: the seed statistics of the ok
    seeds (``n``, ``center``, ``lo``, ``hi``, ``aggregate``, ``interval``, ``seeds``; ``reports.stats``) and
    the config's ``n_seeds``, ``n_ok`` with the Wilson interval ``ok_lo``, ``ok_hi``. ``points``: ``values()``."""
    points = values(study) if points is None else points
    data = summarize(points, ["config", "metric", *(["feature_space"] if "feature_space" in points else [])])
    data = data.merge(trained(study)[["n_seeds", "n_ok", "ok_lo", "ok_hi"]], left_on="config", right_index=True)
    data["config"] = pd.Categorical(data["config"], [study.labels[c] for c in study.config_order()])
    data["metric"] = pd.Categorical(data["metric"], study.quality_columns())
    return data.sort_values(["config", "metric"], kind="stable").reset_index(drop=True)


def _panel(ax, d: pd.DataFrame, metric: str, x: str, hue: str | None, x_order: list[str], hue_order,
           legend: bool) -> bool:
    """One metric's seed means and intervals per config (diamonds) over its seeds (dots); True if cut."""
    sns.pointplot(d, x=x, y="value", hue=hue, order=x_order, hue_order=hue_order, ax=ax, linestyle="none",
                  dodge=0.3 if hue else False, capsize=0.15, marker="D", legend=legend, **seaborn_args(metric))
    state = np.random.get_state()  # seaborn jitters the dots with numpy's global generator: seed it, then restore
    np.random.seed(0)
    try:
        sns.stripplot(d, x=x, y="value", hue=hue, order=x_order, hue_order=hue_order, ax=ax, dodge=bool(hue),
                      color=None if hue else "0.4", alpha=0.45, size=3, legend=False)
    finally:
        np.random.set_state(state)
    long_labels = max(map(len, x_order)) > 8
    ax.set_xlabel(x if hue else "")
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=30 if long_labels else 0)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right" if long_labels else "center")
    return fit_ylim(ax, d["value"])


def draw(points: pd.DataFrame, trained: pd.DataFrame, panels: list[tuple[str, str | None]], order: list[str],
         name: str, out: Path, crossed: list[str] | None = None, key: str = "toy_summary") -> list[Path]:
    """One panel per (metric, feature space) of ``panels``: x = the configs in ``order`` (or, with two
    ``crossed`` axes, x = the second and one colour per value of the first); under each config its
    ``trained`` text. ``points``: ``values()``."""
    hue, x = crossed if crossed else (None, "config")
    x_order = sorted(points[x].unique()) if crossed else order
    hue_order = sorted(points[hue].unique()) if crossed else None
    cut = False
    fig, axes = grid(len(panels), 3, size=(max(3.6, 0.9 * len(x_order) + 1.5), 3.2))
    for i, (ax, (metric, space)) in enumerate(zip(axes, panels, strict=True)):
        d = points[points["metric"] == metric]
        if space is not None:
            d = d[d["feature_space"] == space]
        cut |= _panel(ax, d, metric, x, hue, x_order, hue_order, legend=i == 0 and hue is not None)
        better = "higher" if column(metric).higher_is_better else "lower"
        ax.set_title(f"{metric}{f' [{space}]' if space else ''} ({better} is better)")
    failing = [f"{config}: {row.text}" for config, row in trained.iterrows() if row.n_ok < row.n_seeds]
    if hue is None:
        for ax in axes:
            ax.set_xticks(ax.get_xticks(), [f"{label}\n{trained.loc[label, 'text']}" for label in x_order])
    fig.suptitle(f"{name}: final quality per config (mean and 95% interval over the seeds that trained; dots: "
                 f"seeds)" + (f"\nseeds that did not train (not in the means): {'; '.join(failing)}" if failing else "")
                 + ("\nintervals wider than an axis are cut there; the table has them in full" if cut else ""))
    return save(fig, out, key)


@FIGURES.register("toy_summary", applies=lambda study: bool(study.quality_columns()) and not study.ok.empty)
def toy_summary(study: Study, out: Path) -> Section:
    """Modes captured, high-quality fraction, W1 and every other quality metric per ablation axis: the
    figure of ``toy_clipping``, ``toy_optimizer``, ``toy_batchnorm`` and ``quickstart``."""
    points = values(study)
    order = [study.labels[c] for c in study.config_order()]
    files = draw(points, trained(study), study.panels(study.quality_columns()), order, study.name, out,
                 crossed_axes(study))
    return Section(
        key="toy_summary",
        title="Toy summary: quality per ablation axis",
        description=(
            "Each panel is one quality metric of the final evaluation (catalogue direction in the title); each "
            "point is a config of the study, with its seed aggregate (mean, or median where the catalogue says so) "
            "and 95% interval over seeds; small dots are the individual seeds. On the mode metrics (VEEGAN/PacGAN "
            "protocol) a better method captures more of the modes with a larger high-quality fraction and a lower "
            "mode KL; `w1_exact` is the exact W1 between generated and real samples (POT). Means cover the "
            "seeds that trained: each config's `n_ok`/`n_seeds` is printed under it and in the table, with the "
            "Wilson 95% interval of that share (`ok_lo`, `ok_hi`); seeds that diverged or failed are named above."
        ),
        data=table(study, points),
        seeds=sorted(study.ok["seed"].unique().tolist()),
        files=files,
        notes=study.excluded(),
    )
