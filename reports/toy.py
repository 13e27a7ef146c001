"""The toy-ablation summary: every quality metric of the study's final evaluation, per config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from bench.metrics import column
from reports.section import FIGURES, Section, fit_ylim, grid, save
from reports.stats import seaborn_args, summarize
from reports.study import Study


def _is_full_product(study: Study) -> bool:
    """Two axes whose every combination is a config (so one can be x and the other the hue)."""
    if len(study.axes) != 2:
        return False
    configs = study.runs.drop_duplicates("config_id")[study.axes]
    return not configs.isna().any().any() and len(configs) == configs[study.axes[0]].nunique() * configs[study.axes[1]].nunique()


@FIGURES.register("toy_summary", applies=lambda study: bool(study.quality_columns()) and not study.ok.empty)
def toy_summary(study: Study, out: Path) -> Section:
    """Modes captured, high-quality fraction, W1 and every other quality metric per ablation axis: the
    figure of ``toy_clipping``, ``toy_optimizer``, ``toy_batchnorm`` and ``quickstart``."""
    metrics = study.quality_columns()
    panels = study.panels(metrics)
    split = any(space is not None for _, space in panels)  # several feature spaces: never mixed
    ok = study.ok
    ids = ["config_id", "seed", *study.axes, *(["feature_space"] if split else [])]
    long = ok.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")
    long["config"] = long["config_id"].map(study.labels)
    order = [study.labels[c] for c in study.config_order()]

    if _is_full_product(study):  # x = the last axis, one colour per value of the other
        hue_axis, x_axis = study.axes
        x, hue = x_axis, hue_axis
        long[x], long[hue] = long[x].astype(str), long[hue].astype(str)
        x_order, hue_order = sorted(long[x].unique()), sorted(long[hue].unique())
    else:
        x, hue, x_order, hue_order = "config", None, order, None

    cut = False
    fig, axes = grid(len(panels), 3, size=(max(3.6, 0.9 * len(x_order) + 1.5), 3.2))
    for i, (ax, (metric, space)) in enumerate(zip(axes, panels)):
        d = long[long["metric"] == metric]
        if space is not None:
            d = d[d["feature_space"] == space]
        sns.pointplot(d, x=x, y="value", hue=hue, order=x_order, hue_order=hue_order, ax=ax, linestyle="none",
                      dodge=0.3 if hue else False, capsize=0.15, marker="D", legend=i == 0 and hue is not None,
                      **seaborn_args(metric))
        sns.stripplot(d, x=x, y="value", hue=hue, order=x_order, hue_order=hue_order, ax=ax, dodge=bool(hue),
                      color=None if hue else "0.4", alpha=0.45, size=3, legend=False)
        cut |= fit_ylim(ax, d["value"])
        info = column(metric)
        ax.set_title(f"{metric}{f' [{space}]' if space else ''} ({'higher' if info.higher_is_better else 'lower'} is better)")
        ax.set_xlabel(x if hue else "")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=30 if max(map(len, x_order)) > 8 else 0)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right" if max(map(len, x_order)) > 8 else "center")
    fig.suptitle(f"{study.name}: final quality per config (mean and 95% interval over seeds; dots: seeds)"
                 + ("\nintervals wider than an axis are cut there; the table has them in full" if cut else ""))
    files = save(fig, out, "toy_summary")

    data = summarize(long, ["config", "metric", *(["feature_space"] if split else [])])
    data["config"] = pd.Categorical(data["config"], order)
    data["metric"] = pd.Categorical(data["metric"], metrics)
    data = data.sort_values(["config", "metric"], kind="stable").reset_index(drop=True)
    return Section(
        key="toy_summary",
        title="Toy summary: quality per ablation axis",
        description=(
            "Each panel is one quality metric of the final evaluation (catalogue direction in the title); each "
            "point is a config of the study, with its seed aggregate (mean, or median where the catalogue says so) "
            "and 95% interval over seeds; small dots are the individual seeds. On the mode metrics (VEEGAN/PacGAN "
            "protocol) a better method captures more of the modes with a larger high-quality fraction and a lower "
            "mode KL; `w1_exact` is the exact W1 between generated and real samples (POT)."
        ),
        data=data,
        seeds=sorted(ok["seed"].unique().tolist()),
        files=files,
        notes=study.excluded(),
    )

