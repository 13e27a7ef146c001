"""Did a claim's preset reach the regime its claim is about? The curves that ``bench.claims.flattened``
judges, with the two quarters of evaluations it compares (our check, no paper figure). ``table()`` is
``bench.claims.flattening`` per curve, ``draw()`` only plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from reports.section import FIGURES, Section, grid, save
from reports.stats import seaborn_args
from reports.study import Study


def _curve_metrics(study: Study) -> list[str]:
    from bench.claims import CLAIMS, names_for

    wanted = dict.fromkeys(CLAIMS.entry(n).meta["curve"] for n in names_for(study))
    return [m for m in wanted if m in set(study.curve_metrics())]


def points(study: Study) -> pd.DataFrame:
    """Tidy, one row per (ok cell, claim curve metric, evaluation): ``study.curve``'s columns."""
    return pd.concat([study.curve(m) for m in _curve_metrics(study)]).query("status == 'ok'")


def table(study: Study) -> pd.DataFrame:
    """Tidy, one row per (claim curve metric, config): ``bench.claims.flattening``'s columns (``config``,
    ``metric``, ``evaluations``, ``from_iter``, ``scale``, ``previous``, ``last``, ``flattened``)."""
    from bench.claims import flattening

    return pd.concat([flattening(study, metric) for metric in _curve_metrics(study)], ignore_index=True)


def draw(points: pd.DataFrame, table: pd.DataFrame, metrics: list[str], order: list[str], name: str, out: Path,
         key: str = "claims_convergence") -> list[Path]:
    """One panel per curve metric of ``metrics``: its curve over generator iterations, mean and interval over the
    seeds of ``points`` per config of ``order``, the quarter of evaluations before the last (light) and the
    last quarter (dark) shaded, and whether ``table`` says every config flattened."""
    fig, axes = grid(len(metrics), 2, size=(5.5, 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        pts = points[points["metric"] == metric]
        sns.lineplot(pts, x="generator_iter", y="value", hue="config", hue_order=order, ax=ax, **seaborn_args(metric))
        iters = sorted(pts["generator_iter"].unique())
        q = len(iters) // 4
        if q:
            ax.axvspan(iters[-2 * q], iters[-q], color="0.9", zorder=0)
            ax.axvspan(iters[-q], iters[-1], color="0.75", zorder=0)
        judged = table[table["metric"] == metric]
        flat = "yes" if len(judged) and judged["flattened"].all() else "no"
        ax.set(title=f"{metric}: flattened {flat}", xlabel="generator iterations", ylabel="")
        ax.legend(fontsize=7, title=None)
    fig.suptitle(f"{name}: curves of the claims' flattening criterion (mean and 95% interval over seeds)")
    return save(fig, out, key)


@FIGURES.register("claims_convergence", applies=lambda study: bool(_curve_metrics(study)))
def claims_convergence(study: Study, out: Path) -> Section:
    """Each curve a claim's flattening criterion reads, mean and 95% interval over seeds per config, with
    the quarter of evaluations before the last (light) and the last quarter (dark) shaded."""
    from bench.claims import FLAT_TOLERANCE

    data = table(study)
    order = [study.labels[c] for c in study.config_order() if c in set(study.ok["config_id"])]
    return Section(
        key="claims_convergence",
        title="Claims: did the preset reach its regime",
        description=(
            "For each curve a claim of this study judges its convergence by: the mean over seeds per config "
            f"against generator iterations. Flattened: the mean of the last quarter of the evaluations (dark) "
            f"differs from that of the quarter before it (light) by at most {FLAT_TOLERANCE:.0%} of the "
            "curve's scale (the larger of its range and its last-quarter level), for every config "
            "(`bench.claims.flattening`)."
        ),
        data=data,
        seeds=sorted(study.ok["seed"].astype(int).unique().tolist()),
        files=draw(points(study), data, _curve_metrics(study), order, study.name, out),
        notes=study.excluded(),
    )
