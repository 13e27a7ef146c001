"""Figures of *Wasserstein GAN* (Arjovsky et al. 2017): Figs. 3-4 (the critic's estimate against sample
quality) and Figs. 5-7 (samples side by side). Each figure is ``<figure>_table()`` (the tidy numbers the
report prints and ``bench.claims`` reads), ``<figure>_draw()`` (plots only) and the registered function
that composes them into a ``Section``."""

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


def quality_of(study: Study) -> str:
    """The quality metric Figs. 3-4 put beside the estimate: the first of ``ESTIMATE_QUALITY`` with curves."""
    quality = [m for m in ESTIMATE_QUALITY if m in study.quality_curve_metrics()]
    return quality[0] if quality else study.quality_curve_metrics()[0]


def _with_curves(study: Study) -> list[str]:
    """The configs (ids, in figure order) of which some run has curves: one panel each."""
    with_curves = set(study.runs.loc[study.runs["cell_id"].isin(study.curves["cell_id"]), "config_id"])
    return [c for c in study.config_order() if c in with_curves]


def fig3_4_curves(study: Study, quality: str | None = None) -> pd.DataFrame:
    """Tidy, one row per (run, curve, evaluation) of every run with curves, diverged ones included:
    ``study.curve``'s columns, ``curve`` (``estimate``: the config's estimate column; ``quality``: ``quality``,
    default ``quality_of``, in the first feature space only) and ``filtered`` (the estimate's running
    median per run, WGAN Figs. 3-4)."""
    quality = quality or quality_of(study)
    frames = []
    for config_id in _with_curves(study):
        estimate = _estimate_of(study, set(study.runs.loc[study.runs["config_id"] == config_id, "cell_id"]))
        if estimate is None:
            continue
        est = study.curve(estimate)
        est = est[est["config_id"] == config_id].copy()
        est["filtered"] = est.groupby("cell_id")["value"].transform(
            lambda v: median_filter(v.to_numpy(), filter_size(len(v))))
        q = study.curve(quality)
        q = q[q["config_id"] == config_id]
        if len(study.feature_spaces()) > 1:  # never mix feature spaces: the first one only
            q = q[q["feature_space"] == study.feature_spaces()[0]]
        frames += [est.assign(curve="estimate"), q.assign(curve="quality")]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["generator_iter", "metric", "value", "cell_id", "config_id", "seed", "status", "config", "filtered",
                 "curve"])


FIG3_4_COLUMNS = ["config", "seed", "cell_id", "status", "estimate", "quality", "points", "pearson_r", "spearman_rho",
                  "tracks_quality"]


def _correlation(e: pd.DataFrame, q: pd.DataFrame) -> tuple[int, float, float]:
    """Evaluation points both curves have, and Pearson r and Spearman rho of the unfiltered values there."""
    pair = e[["generator_iter", "value"]].merge(q[["generator_iter", "value"]], on="generator_iter",
                                               suffixes=("_est", "_q")).dropna()
    pearson = spearman = math.nan
    if len(pair) >= 3 and pair["value_est"].std() > 0 and pair["value_q"].std() > 0:
        pearson = float(stats.pearsonr(pair["value_est"], pair["value_q"]).statistic)
        spearman = float(stats.spearmanr(pair["value_est"], pair["value_q"]).statistic)
    return len(pair), pearson, spearman


def fig3_4_table(study: Study, quality: str | None = None, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy, one row per run with curves (WGAN Figs. 3-4), in figure order: ``config``, ``seed``,
    ``cell_id``, ``status``, ``estimate`` and ``quality`` (the two curves' metrics), ``points`` (evaluations
    both have), ``pearson_r`` and ``spearman_rho`` between them and ``tracks_quality``: rho signed so that
    +1 means the estimate falls exactly as quality improves. ``curves``: ``fig3_4_curves(study, quality)``."""
    quality = quality or quality_of(study)
    curves = fig3_4_curves(study, quality) if curves is None else curves
    sign = -1.0 if column(quality).higher_is_better else 1.0  # +1: estimate and quality move together
    order = _with_curves(study)
    rows = []
    for config_id in order:
        mine = curves[curves["config_id"] == config_id]
        q = mine[mine["curve"] == "quality"]
        for cell_id, e in mine[mine["curve"] == "estimate"].groupby("cell_id"):
            points, pearson, spearman = _correlation(e, q[q["cell_id"] == cell_id])
            run = study.runs[study.runs["cell_id"] == cell_id].iloc[0]
            rows.append({"config": study.labels[config_id], "seed": int(run["seed"]), "cell_id": cell_id,
                         "status": run["status"], "estimate": e["metric"].iloc[0], "quality": quality,
                         "points": points, "pearson_r": pearson, "spearman_rho": spearman,
                         "tracks_quality": sign * spearman})
    table = pd.DataFrame(rows, columns=FIG3_4_COLUMNS)
    rank = {study.labels[k]: i for i, k in enumerate(order)}
    return table.sort_values(["seed"], kind="stable").sort_values("config", key=lambda c: c.map(rank), kind="stable")


def fig3_4_draw(curves: pd.DataFrame, table: pd.DataFrame, panels: list[str], quality: str, name: str, out: Path,
                key: str = "wgan_fig3_4_estimate_vs_quality") -> list[Path]:
    """One panel per config label of ``panels`` (hidden without an estimate): the median-filtered estimate
    (left axis) and ``quality`` (right axis) over generator iterations, mean and interval over seeds; the
    title gives the config's mean ``tracks_quality`` from ``table``."""
    fig, axes = grid(len(panels), 3, size=(4.8, 3.2))
    cut = False
    for ax, config in zip(axes, panels, strict=True):
        est = curves[(curves["config"] == config) & (curves["curve"] == "estimate")]
        if est.empty:
            ax.set_visible(False)
            continue
        q = curves[(curves["config"] == config) & (curves["curve"] == "quality")]
        estimate = est["metric"].iloc[0]
        sns.lineplot(est, x="generator_iter", y="filtered", ax=ax, color="tab:blue", **seaborn_args(estimate))
        ax.set_ylabel(estimate, color="tab:blue")
        ax.set_xlabel("generator iterations")
        twin = ax.twinx()
        sns.lineplot(q, x="generator_iter", y="value", ax=twin, color="tab:orange", linestyle="--",
                     **seaborn_args(quality))
        twin.set_ylabel(quality, color="tab:orange")
        twin.grid(False)
        cut |= fit_ylim(ax, est["filtered"]) | fit_ylim(twin, q["value"])
        finite = [r for r in table.loc[table["config"] == config, "tracks_quality"] if np.isfinite(r)]
        ax.set_title(f"{config}\ntracks quality (sign-adjusted rho): "
                     + (f"{np.mean(finite):+.2f}" if finite else "n/a"), fontsize=8)
    fig.suptitle(f"{name}: the critic's estimate (blue, left axis, median-filtered per run) vs {quality} "
                 "(orange, right axis); mean and 95% interval over seeds"
                 + ("\nintervals wider than an axis are cut there" if cut else ""))
    return save(fig, out, key)


@FIGURES.register(
    "wgan_fig3_4_estimate_vs_quality",
    applies=lambda study: study.trains_generator
    and bool(set(study.curve_metrics()) & set(estimate_columns()))
    and bool(study.quality_curve_metrics()),
)
def wgan_fig3_4_estimate_vs_quality(study: Study, out: Path) -> Section:
    """WGAN Figs. 3-4: the critic's estimate (W1 for WGAN critics; JS for a GAN discriminator) against
    generator iterations, with sample quality on a second axis, and its correlation with quality per run."""
    quality = quality_of(study)
    curves = fig3_4_curves(study, quality)
    table = fig3_4_table(study, quality, curves)
    files = fig3_4_draw(curves, table, [study.labels[c] for c in _with_curves(study)], quality, study.name, out)
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
        files=files,
        notes=["all runs with curves are drawn, diverged ones included (their curves stop where they diverged)"]
        + ([f"quality in feature space `{study.feature_spaces()[0]}` only"] if len(study.feature_spaces()) > 1 else []),
    )


# --------------------------------------------------------------------------------------------- Figs. 5-7


def sample_cells(study: Study) -> pd.DataFrame:
    """Per config (in figure order) with final samples: its lowest ok seed that stored them, as ``row`` (the
    setting axes), ``column`` (the method axes), ``config``, ``cell_id``, ``seed``, ``feature_space`` (when
    the study has one) and the cell's final quality metrics."""
    records = []
    for config_id in study.config_order():
        cells = study.ok[study.ok["config_id"] == config_id].sort_values("seed")
        cell = next((r for _, r in cells.iterrows() if study.has_samples(r["cell_id"])), None)
        if cell is not None:
            records.append({"row": study.label(config_id, study.setting_axes),
                            "column": study.label(config_id, study.method_axes),
                            "config": study.labels[config_id], "cell_id": cell["cell_id"], "seed": int(cell["seed"]),
                            **({"feature_space": cell["feature_space"]} if study.feature_spaces() else {}),
                            **{m: cell[m] for m in study.quality_columns()}})
    return pd.DataFrame(records)


def _is_2d(points: list[np.ndarray]) -> bool:
    return all(p.ndim == 2 and p.shape[1] == 2 for p in points)


def figs5_7_table(study: Study, samples: dict[str, np.ndarray] | None = None, n_images: int = 64,
                  n_points: int = 1000) -> pd.DataFrame:
    """Tidy, one row per panel of WGAN Figs. 5-7: ``sample_cells`` with ``shown``, how many of the cell's
    samples the panel draws (``n_images`` images, or ``n_points`` points of 2-D data). ``samples``: the
    cells' final samples by cell id (default: read from the study)."""
    data = sample_cells(study)
    samples = {c: study.samples(c) for c in data["cell_id"]} if samples is None else samples
    points = [samples[c] for c in data["cell_id"]]
    limit = n_points if _is_2d(points) else n_images
    data.insert(5, "shown", [min(limit, len(p)) for p in points])
    return data


def figs5_7_draw(data: pd.DataFrame, samples: dict[str, np.ndarray], name: str, out: Path,
                 key: str = "wgan_figs5_7_samples") -> list[Path]:
    """One panel per row of ``data`` (``figs5_7_table``) on a (row x column) grid: the first ``shown`` of
    its cell's ``samples`` as an 8x8 image grid, or for 2-D data as a scatter on shared limits."""
    rows, columns = list(dict.fromkeys(data["row"])), list(dict.fromkeys(data["column"]))
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.2 * len(columns), 3.2 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_visible(False)
    points = [samples[c][:n] for c, n in zip(data["cell_id"], data["shown"], strict=True)]
    is_2d = _is_2d(points)
    if is_2d:
        lo, hi = np.nanquantile(np.concatenate(points), [0.005, 0.995], axis=0)
        pad = 0.1 * (hi - lo)
    for (_, rec), shown in zip(data.iterrows(), points, strict=True):
        ax = axes[rows.index(rec["row"]), columns.index(rec["column"])]
        ax.set_visible(True)
        if is_2d:
            ax.scatter(*shown.T, s=2, alpha=0.5, c="tab:green", linewidths=0)
            ax.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), ylim=(lo[1] - pad[1], hi[1] + pad[1]), aspect="equal")
        else:
            ax.imshow(image_grid(shown, ncols=8))
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{rec['column']}\n{rec['row']} (seed {rec['seed']})", fontsize=8)
    fig.suptitle(f"{name}: final samples per config")
    return save(fig, out, key)


@FIGURES.register("wgan_figs5_7_samples", applies=lambda study: study.trains_generator and study.has_samples())
def wgan_figs5_7_samples(study: Study, out: Path, n_images: int = 64, n_points: int = 1000) -> Section:
    """WGAN Figs. 5-7: final samples side by side, one panel per (loss x architecture) config: an 8x8 grid
    for images, a scatter of the generated points for 2-D data."""
    samples = {c: study.samples(c) for c in sample_cells(study)["cell_id"]}
    data = figs5_7_table(study, samples, n_images, n_points)
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
        files=figs5_7_draw(data, samples, study.name, out),
        notes=study.excluded(),
    )
