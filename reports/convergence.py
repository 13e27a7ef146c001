"""Did a claim's preset reach the regime its claim is about? The curves that ``bench.claims.regime``
judges, with the two quarters of evaluations it compares (our check, no paper figure). ``table()`` is
``bench.claims.flattening`` per curve, ``draw()`` only plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from reports.section import FIGURES, Section, grid, save
from reports.stats import seaborn_args
from reports.study import Study


def _claims(study: Study) -> list[str]:
    """This study's claims whose flattening curve it stores (``bench.claims.regime``)."""
    from bench.claims import CLAIMS, names_for

    stored = set(study.curve_metrics())
    return [n for n in names_for(study) if CLAIMS.entry(n).meta["curve"] in stored]


def _judged(study: Study) -> dict[str, str]:
    """Each curve a claim of this study is judged by (``flattening``'s ``metric``) -> a claim judged by it."""
    from bench.claims import judged_curve

    out = {}
    for name in _claims(study):
        out.setdefault(judged_curve(name), name)
    return out


def points(study: Study) -> pd.DataFrame:
    """Tidy, one row per point of a judged curve: per (ok cell, curve metric, evaluation) ``study.curve``'s
    columns; for a pooled claim, its ``bench.claims.effect_curve`` (config ``effect``, one value per
    evaluation)."""
    from bench.claims import CLAIMS, EFFECT, effect_curve

    parts = []
    for metric, name in _judged(study).items():
        if CLAIMS.entry(name).meta["pooled"]:
            effect = effect_curve(study, name).dropna()
            parts.append(pd.DataFrame({"metric": metric, "config": EFFECT, "seed": 0, "status": "ok",
                                       "generator_iter": effect.index, "value": effect.to_numpy()}))
        else:
            parts.append(study.curve(metric).query("status == 'ok'"))
    return pd.concat(parts, ignore_index=True)


def table(study: Study) -> pd.DataFrame:
    """Tidy, one row per judged curve and config: ``bench.claims.regime``'s columns (``config``, ``metric``,
    ``evaluations``, ``from_iter``, ``scale``, ``previous``, ``last``, ``flattened``)."""
    from bench.claims import regime

    return pd.concat([regime(study, name) for name in _judged(study).values()], ignore_index=True)


def draw(points: pd.DataFrame, table: pd.DataFrame, metrics: list[str], order: list[str], name: str, out: Path,
         key: str = "claims_convergence") -> list[Path]:
    """One panel per curve metric of ``metrics``: its curve over generator iterations, mean and interval over the
    seeds of ``points`` per config of ``order``, the quarter of evaluations before the last (light) and the
    last quarter (dark) shaded, and whether ``table`` says every config flattened."""
    fig, axes = grid(len(metrics), 2, size=(5.5, 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        pts = points[points["metric"] == metric]
        present = set(pts["config"])
        sns.lineplot(pts, x="generator_iter", y="value", hue="config", hue_order=[c for c in order if c in present],
                     ax=ax, **seaborn_args(metric))
        iters = sorted(pts["generator_iter"].unique())
        q = len(iters) // 4
        if q:
            ax.axvspan(iters[-2 * q], iters[-q], color="0.9", zorder=0)
            ax.axvspan(iters[-q], iters[-1], color="0.75", zorder=0)
        judged = table[table["metric"] == metric]
        flat = "yes" if len(judged) and judged["flattened"].all() else "no"
        ax.set(title=f"{metric}: flattened {flat}", xlabel="generator iterations", ylabel="")
        ax.legend(fontsize=7, title=None)
    fig.suptitle(f"{name}: curves of the claims' flattening criterion (mean and 95% interval over seeds)", wrap=True)
    return save(fig, out, key)


@FIGURES.register("claims_convergence", applies=lambda study: bool(_claims(study)))
def claims_convergence(study: Study, out: Path) -> Section:
    """Each curve a claim's flattening criterion reads, mean and 95% interval over seeds per config, with
    the quarter of evaluations before the last (light) and the last quarter (dark) shaded."""
    from bench.claims import EFFECT, FLAT_TOLERANCE

    data = table(study)
    order = [study.labels[c] for c in study.config_order() if c in set(study.ok["config_id"])] + [EFFECT]
    return Section(
        key="claims_convergence",
        title="Claims: did the preset reach its regime",
        description=(
            "For each curve a claim of this study judges its convergence by: the mean over seeds per config "
            f"against generator iterations. Flattened: the mean of the last quarter of the evaluations (dark) "
            f"differs from that of the quarter before it (light) by at most {FLAT_TOLERANCE:.0%} of the "
            "curve's scale (the larger of its range and its last-quarter level), for every config "
            "(`bench.claims.flattening`). A claim about a quantity pooled over configs (Table 2's success "
            "rates) is judged instead on its effect recomputed at every evaluation (`effect of ...`)."
        ),
        data=data,
        seeds=sorted(study.ok["seed"].astype(int).unique().tolist()),
        files=draw(points(study), data, list(_judged(study)), order, study.name, out),
        notes=study.excluded(),
    )
