"""Figures of *Wasserstein GAN* (Arjovsky et al. 2017): Figs. 3-4 (the critic's estimate against sample
quality) and Figs. 5-7 (samples side by side)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from bench.grids import image_grid
from bench.metrics import column
from reports.section import FIGURES, Section, fit_ylim, grid, save
from reports.stats import median_filter, seaborn_args
from reports.study import Study, estimate_columns

ESTIMATE_QUALITY = ("fid", "w1_exact", "modes_captured", "inception_score")  # second axis, first one measured
MEDIAN_FILTER = 5  # at most this many evaluation points per running median of the estimate (as the paper)


def filter_size(n_points: int) -> int:
    """The running-median window for a curve of ``n_points``: odd, about a quarter of it, at most
    ``MEDIAN_FILTER``; 1 (no filtering) for short curves."""
    return min(MEDIAN_FILTER, (n_points // 4) | 1)


def _estimate_of(study: Study, cell_ids: set[str]) -> str | None:
    """The estimate column a config's critics report (``w_estimate`` for WGAN losses, ``js_estimate`` for
    sigmoid discriminators, ``critic_gap`` for the others)."""
    have = study.curves[study.curves["cell_id"].isin(cell_ids) & study.curves["metric"].isin(estimate_columns())]
    return have["metric"].iloc[0] if len(have) else None


@FIGURES.register(
    "wgan_fig3_4_estimate_vs_quality",
    applies=lambda study: study.trains_generator
    and bool(set(study.curve_metrics()) & set(estimate_columns()))
    and bool(study.quality_curve_metrics()),
)
def wgan_fig3_4_estimate_vs_quality(study: Study, out: Path) -> Section:
    """WGAN Figs. 3-4: the critic's estimate (W1 for WGAN critics; JS for a GAN discriminator) against
    generator iterations, with sample quality on a second axis, and its correlation with quality per run."""
    quality = [m for m in ESTIMATE_QUALITY if m in study.quality_curve_metrics()]
    quality = quality[0] if quality else study.quality_curve_metrics()[0]
    sign = -1.0 if column(quality).higher_is_better else 1.0  # +1: estimate and quality move together
    with_curves = set(study.runs.loc[study.runs["cell_id"].isin(study.curves["cell_id"]), "config_id"])
    order = [c for c in study.config_order() if c in with_curves]
    fig, axes = grid(len(order), 3, size=(4.8, 3.2))
    runs_table, cut = [], False
    for ax, config_id in zip(axes, order):
        cells = study.runs[study.runs["config_id"] == config_id]
        estimate = _estimate_of(study, set(cells["cell_id"]))
        if estimate is None:
            ax.set_visible(False)
            continue
        est = study.curve(estimate)
        est = est[est["config_id"] == config_id].copy()
        est["filtered"] = est.groupby("cell_id")["value"].transform(
            lambda v: median_filter(v.to_numpy(), filter_size(len(v))))
        q = study.curve(quality)
        q = q[q["config_id"] == config_id]
        if len(study.feature_spaces()) > 1:  # never mix feature spaces: the first one only
            q = q[q["feature_space"] == study.feature_spaces()[0]]
        sns.lineplot(est, x="generator_iter", y="filtered", ax=ax, color="tab:blue", **seaborn_args(estimate))
        ax.set_ylabel(estimate, color="tab:blue")
        ax.set_xlabel("generator iterations")
        twin = ax.twinx()
        sns.lineplot(q, x="generator_iter", y="value", ax=twin, color="tab:orange", linestyle="--", **seaborn_args(quality))
        twin.set_ylabel(quality, color="tab:orange")
        twin.grid(False)
        cut |= fit_ylim(ax, est["filtered"]) | fit_ylim(twin, q["value"])
        rhos = []
        for cell_id, e in est.groupby("cell_id"):
            pair = e[["generator_iter", "value"]].merge(q[q["cell_id"] == cell_id][["generator_iter", "value"]],
                                                       on="generator_iter", suffixes=("_est", "_q")).dropna()
            pearson = spearman = math.nan
            if len(pair) >= 3 and pair["value_est"].std() > 0 and pair["value_q"].std() > 0:
                pearson = float(stats.pearsonr(pair["value_est"], pair["value_q"]).statistic)
                spearman = float(stats.spearmanr(pair["value_est"], pair["value_q"]).statistic)
            run = cells[cells["cell_id"] == cell_id].iloc[0]
            runs_table.append({"config": study.labels[config_id], "seed": int(run["seed"]), "cell_id": cell_id,
                               "status": run["status"], "estimate": estimate, "quality": quality, "points": len(pair),
                               "pearson_r": pearson, "spearman_rho": spearman, "tracks_quality": sign * spearman})
            rhos.append(sign * spearman)
        finite = [r for r in rhos if np.isfinite(r)]
        ax.set_title(f"{study.labels[config_id]}\ntracks quality (sign-adjusted rho): "
                     + (f"{np.mean(finite):+.2f}" if finite else "n/a"), fontsize=8)
    fig.suptitle(f"{study.name}: the critic's estimate (blue, left axis, median-filtered per run) vs {quality} "
                 "(orange, right axis); mean and 95% interval over seeds"
                 + ("\nintervals wider than an axis are cut there" if cut else ""))
    table = pd.DataFrame(runs_table)
    if len(table):
        table = table.sort_values(["seed"], kind="stable").sort_values(
            "config", key=lambda c: c.map({study.labels[k]: i for i, k in enumerate(order)}), kind="stable")
    return Section(
        key="wgan_fig3_4_estimate_vs_quality",
        title="WGAN Figs. 3-4: the critic's estimate vs sample quality",
        description=(
            f"Per config: the critic's own estimate on held-out samples (blue: `w_estimate` = mean f(real) - mean "
            f"f(fake) for WGAN critics, WGAN Fig. 3; `js_estimate` = 1/2 L(D, g) + log 2 for a GAN discriminator, "
            f"Fig. 4), each run median-filtered (running median over about a quarter of its evaluations, at most "
            f"{MEDIAN_FILTER}) before the mean and 95% interval over seeds, and sample quality `{quality}` "
            f"(orange, right axis). The paper's claim: the WGAN estimate "
            f"falls as samples improve (it correlates with quality), the GAN's JS estimate does not, and a WGAN "
            f"that fails to train has a flat estimate. The table gives, per run, the Pearson r and Spearman rho "
            f"between the unfiltered estimate and `{quality}` over the evaluation steps, and `tracks_quality` = rho "
            f"signed so that +1 means the estimate falls exactly as quality improves."
        ),
        data=table,
        seeds=sorted(table["seed"].unique().tolist()) if len(table) else [],
        files=save(fig, out, "wgan_fig3_4_estimate_vs_quality"),
        notes=["all runs with curves are drawn, diverged ones included (their curves stop where they diverged)"]
        + ([f"quality in feature space `{study.feature_spaces()[0]}` only"] if len(study.feature_spaces()) > 1 else []),
    )


# --------------------------------------------------------------------------------------------- Figs. 5-7


@FIGURES.register("wgan_figs5_7_samples", applies=lambda study: study.trains_generator and study.has_samples())
def wgan_figs5_7_samples(study: Study, out: Path, n_images: int = 64, n_points: int = 1000) -> Section:
    """WGAN Figs. 5-7: final samples side by side, one panel per (loss x architecture) config: an 8x8 grid
    for images, a scatter of the generated points for 2-D data."""
    col_axes, row_axes = study.method_axes, study.setting_axes
    quality = study.quality_columns()
    records = []
    for config_id in study.config_order():
        cells = study.ok[study.ok["config_id"] == config_id].sort_values("seed")
        cell = next((r for _, r in cells.iterrows() if study.has_samples(r["cell_id"])), None)
        if cell is not None:
            records.append({"row": study.label(config_id, row_axes), "column": study.label(config_id, col_axes),
                            "config": study.labels[config_id], "cell_id": cell["cell_id"], "seed": int(cell["seed"]),
                            **({"feature_space": cell["feature_space"]} if study.feature_spaces() else {}),
                            **{m: cell[m] for m in quality}})
    data = pd.DataFrame(records)
    rows, columns = list(dict.fromkeys(data["row"])), list(dict.fromkeys(data["column"]))
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.2 * len(columns), 3.2 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_visible(False)
    points = [study.samples(r["cell_id"]) for r in records]
    is_2d = all(p.ndim == 2 and p.shape[1] == 2 for p in points)
    if is_2d:
        allp = np.concatenate([p[:n_points] for p in points])
        lo, hi = np.nanquantile(allp, [0.005, 0.995], axis=0)
        pad = 0.1 * (hi - lo)
    shown = []
    for rec, samples in zip(records, points):
        ax = axes[rows.index(rec["row"]), columns.index(rec["column"])]
        ax.set_visible(True)
        if is_2d:
            ax.scatter(*samples[:n_points].T, s=2, alpha=0.5, c="tab:green", linewidths=0)
            ax.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), ylim=(lo[1] - pad[1], hi[1] + pad[1]), aspect="equal")
            shown.append(min(n_points, len(samples)))
        else:
            ax.imshow(image_grid(samples[:n_images], ncols=8))
            shown.append(min(n_images, len(samples)))
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{rec['column']}\n{rec['row']} (seed {rec['seed']})", fontsize=8)
    data.insert(5, "shown", shown)
    fig.suptitle(f"{study.name}: final samples per config")
    return Section(
        key="wgan_figs5_7_samples",
        title="WGAN Figs. 5-7: samples per loss and architecture",
        description=(
            "Final generated samples of each config, one panel per (loss/optimizer x architecture/setting) "
            "config, from its lowest ok seed: an 8x8 grid of the first 64 images, or for 2-D data the first "
            f"{n_points} generated points. The paper's claims: with the DCGAN generator both GAN and WGAN give good "
            "samples (Fig. 5); without batch norm and with constant filters, and with a 4-layer 512-unit ReLU MLP "
            "generator, the GAN fails (collapse, poor samples) while the WGAN still produces reasonable samples "
            "(Figs. 6-7). The table lists each panel's cell and its final quality metrics."
        ),
        data=data,
        seeds=sorted(data["seed"].unique().tolist()) if len(data) else [],
        files=save(fig, out, "wgan_figs5_7_samples"),
        notes=study.excluded(),
    )
