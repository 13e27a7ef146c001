"""Figures of *Improved Training of Wasserstein GANs* (Gulrajani et al. 2017): Fig. 1a, Fig. 1b, Fig. 3
and Table 2 (v3 numbering; Table 1 there describes the architecture space). Each figure is
``<figure>_table()`` (the tidy numbers the report prints and ``bench.claims`` reads), ``<figure>_draw()``
(plots only) and the registered function that composes them into a ``Section``."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.metrics import column
from reports.section import FIGURES, Section, fit_ylim, grid, save
from reports.stats import how, seaborn_args, summarize
from reports.study import Study

LAYER_PREFIX = "critic_grad_norm.layer_"
LAYER_METRIC = f"{LAYER_PREFIX}00"  # every layer column aggregates as the catalogue's layer_NN entry says


def _first_ok_cells(study: Study, need=lambda cell_id: True) -> pd.DataFrame:
    """One cell per config (its lowest ok seed that has what ``need`` asks for), in the figure order."""
    rows = []
    for config_id in study.config_order():
        cells = study.ok[study.ok["config_id"] == config_id].sort_values("seed")
        chosen = next((r for _, r in cells.iterrows() if need(r["cell_id"])), None)
        if chosen is not None:
            rows.append(chosen)
    return pd.DataFrame(rows).reset_index(drop=True)


def _ok_order(study: Study) -> list[str]:
    """The labels of the configs with an ok cell, in figure order."""
    return [study.labels[c] for c in study.config_order() if c in set(study.ok["config_id"])]


def _last(d: dict[int, np.ndarray]) -> tuple[int, np.ndarray]:
    step = max(d)
    return step, d[step]


# ------------------------------------------------------------------------------------------------ Fig. 1a

FIG1A_COLUMNS = ["column", "row", "cell_id", "seed", "generator_iter", "surface_min", "surface_max",
                 "grid_grad_norm_median", "grid_grad_norm_max", "w_estimate", "critic_input_grad_norm"]


def fig1a_table(study: Study) -> pd.DataFrame:
    """Tidy, one row per panel of WGAN-GP Fig. 1a (per config, its lowest ok seed with a value surface):
    ``column`` (the data set), ``row`` (the other axes), ``cell_id``, ``seed``, ``generator_iter`` of the last
    surface, its ``surface_min`` / ``surface_max``, the median and max of |grad D| on the grid (finite
    differences: ``grid_grad_norm_*``) and the cell's final ``w_estimate`` and ``critic_input_grad_norm``."""
    cells = _first_ok_cells(study, lambda c: "critic_surface" in study.artifacts(c))
    col_axis = ["dataset.name"] if "dataset.name" in study.axes else []
    row_axes = [a for a in study.axes if a not in col_axis]
    records = []
    for _, cell in cells.iterrows():
        step, (gx, gy, value) = _last(study.artifacts(cell["cell_id"])["critic_surface"])
        # |grad D| on the grid (finite differences): the optimal critic has norm 1 between the distributions.
        dy, dx = np.gradient(value, gy[:, 0], gx[0, :])
        grad = np.hypot(dx, dy)
        records.append({
            "column": study.label(cell["config_id"], col_axis), "row": study.label(cell["config_id"], row_axes),
            "cell_id": cell["cell_id"], "seed": int(cell["seed"]), "generator_iter": step,
            "surface_min": float(value.min()), "surface_max": float(value.max()),
            "grid_grad_norm_median": float(np.median(grad)), "grid_grad_norm_max": float(grad.max()),
            "w_estimate": cell.get("w_estimate", math.nan),
            "critic_input_grad_norm": cell.get("critic_input_grad_norm", math.nan),
        })
    return pd.DataFrame(records, columns=FIG1A_COLUMNS)


def surfaces(study: Study, table: pd.DataFrame) -> dict[str, tuple]:
    """Per cell of ``fig1a_table``: the grid ``(gx, gy, value)`` of its surface at ``generator_iter``, the
    held-out real samples stored with it (or None) and the cell's final generated samples (or None)."""
    out = {}
    for cell_id, step in zip(table["cell_id"], table["generator_iter"], strict=True):
        arts = study.artifacts(cell_id)
        out[cell_id] = (arts["critic_surface"][step], arts.get("critic_surface_real", {}).get(step),
                        study.samples(cell_id))
    return out


def fig1a_draw(table: pd.DataFrame, arrays: dict[str, tuple], name: str, out: Path,
               key: str = "wgangp_fig1a_value_surfaces") -> list[Path]:
    """One panel per row of ``table`` on a (row x data set) grid: contours of the critic's value with the
    real (orange) and generated (green) samples of ``arrays`` (``surfaces``)."""
    columns, rows = list(dict.fromkeys(table["column"])), list(dict.fromkeys(table["row"]))
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.3 * len(columns), 3.2 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_visible(False)
    for _, cell in table.iterrows():
        ax = axes[rows.index(cell["row"]), columns.index(cell["column"])]
        ax.set_visible(True)
        (gx, gy, value), real, generated = arrays[cell["cell_id"]]
        ax.contourf(gx, gy, value, levels=20, cmap="viridis", alpha=0.85)
        ax.contour(gx, gy, value, levels=20, colors="k", linewidths=0.3)
        if generated is not None and generated.shape[1:] == (2,):
            ax.scatter(*generated[:512].T, s=4, marker="+", c="tab:green", linewidths=0.5, label="generated")
        if real is not None:
            ax.scatter(*real.T, s=4, marker="+", c="tab:orange", linewidths=0.5, label="real")
        ax.set(xlim=(gx.min(), gx.max()), ylim=(gy.min(), gy.max()), xticks=[], yticks=[], aspect="equal")
        ax.set_title(f"{cell['column']}\n{cell['row']}", fontsize=8)
    handles, labels = next((a.get_legend_handles_labels() for a in axes.flat if a.get_visible()), ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, markerscale=4)
    fig.suptitle(f"{name}: critic value surfaces (generator fixed at real + N(0, I))")
    return save(fig, out, key)


@FIGURES.register("wgangp_fig1a_value_surfaces", applies=lambda study: study.has_artifact("critic_surface"))
def wgangp_fig1a_value_surfaces(study: Study, out: Path) -> Section:
    """WGAN-GP Fig. 1a: value surfaces of critics trained against a fixed generator (real data + N(0, I)),
    weight clipping vs gradient penalty, one column per toy data set."""
    data = fig1a_table(study)
    seeds = sorted(data["seed"].unique().tolist())
    return Section(
        key="wgangp_fig1a_value_surfaces",
        title="WGAN-GP Fig. 1a: critic value surfaces",
        description=(
            "Contours of the critic's value D(x) on a 128x128 grid over [-3, 3]^2 (as gan_toy.py draws it) at the "
            "last evaluation, with held-out real samples (orange) and the fixed generator's samples, real data + "
            "N(0, I) (green). The paper's claim: critics trained with weight clipping fail to capture the higher "
            "moments of the data and learn overly simple functions, while gradient-penalty critics follow the "
            "data's structure. `grid_grad_norm_*` are |grad D| on the grid by finite differences: the optimal "
            "WGAN-GP critic has gradient norm 1 almost everywhere between the two distributions; a clipped "
            "critic's is bounded by its weight range."
        ),
        data=data,
        seeds=seeds,
        files=fig1a_draw(data, surfaces(study, data), study.name, out),
        notes=[f"one cell per config: its lowest ok seed ({', '.join(map(str, seeds))})"] + study.excluded(),
    )


# ------------------------------------------------------------------------------------------------ Fig. 1b


def layer_norms(study: Study) -> pd.DataFrame:
    """Tidy, one row per (ok cell, critic layer) at the cell's last evaluation: the curve row (``value``: the
    gradient norm), ``config_id``, ``seed``, ``config``, ``layer`` and ``log10_grad_norm`` (NaN for 0);
    the points of Fig. 1b, left, and what ``bench.claims``' layer slopes read."""
    curves = study.curves[study.curves["metric"].str.startswith(LAYER_PREFIX)]
    curves = curves[curves["cell_id"].isin(study.ok["cell_id"])]
    last = curves[curves["generator_iter"] == curves.groupby("cell_id")["generator_iter"].transform("max")]
    pts = last.merge(study.ok[["cell_id", "config_id", "seed"]], on="cell_id")
    pts["config"] = pts["config_id"].map(study.labels)
    pts["layer"] = pts["metric"].str.removeprefix(LAYER_PREFIX).astype(int)
    pts["log10_grad_norm"] = np.log10(pts["value"].where(pts["value"] > 0))
    return pts


def fig1b_table(study: Study, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy, one row per (config, critic layer) of WGAN-GP Fig. 1b, left, in figure order: the seed
    statistics of log10 of the layer's gradient norm at the last evaluation (``n``, ``center``, ``lo``, ``hi``,
    ``aggregate``, ``interval``, ``seeds``) and ``zero_norms``, norms exactly 0 (no log). ``points``:
    ``layer_norms(study)``."""
    pts = layer_norms(study) if points is None else points
    norms = summarize(pts, ["config", "layer"], value="log10_grad_norm", metric=LAYER_METRIC)
    zeros = (pts["value"] == 0).groupby([pts["config"], pts["layer"]]).sum().rename("zero_norms").reset_index()
    norms = norms.merge(zeros, on=["config", "layer"])  # exactly 0 (float32 underflow): no point on a log axis
    norms["config"] = pd.Categorical(norms["config"], _ok_order(study))
    return norms.sort_values(["config", "layer"]).reset_index(drop=True)


WEIGHT_COLUMNS = ["config", "cell_id", "seed", "generator_iter", "n_weights", "clip_value", "std", "min", "max",
                  "share_at_clip"]


def fig1b_weights(study: Study) -> pd.DataFrame:
    """Tidy, one row per histogram of WGAN-GP Fig. 1b, right (per config, its lowest ok seed with critic
    weights): ``config``, ``cell_id``, ``seed``, ``generator_iter`` (last evaluation), ``n_weights``,
    ``clip_value`` (NaN without clipping), the weights' ``std``, ``min``, ``max`` and ``share_at_clip``
    (|w| >= 0.99 c)."""
    rows = []
    for _, cell in _first_ok_cells(study, lambda c: "critic_weights" in study.artifacts(c)).iterrows():
        step, w = _last(study.artifacts(cell["cell_id"])["critic_weights"])
        c = cell.get("loss.clip_value", math.nan)
        clipped = c is not None and not (isinstance(c, float) and math.isnan(c))
        rows.append({
            "config": study.labels[cell["config_id"]], "cell_id": cell["cell_id"], "seed": int(cell["seed"]),
            "generator_iter": step, "n_weights": len(w), "clip_value": float(c) if clipped else math.nan,
            "std": float(w.std()), "min": float(w.min()), "max": float(w.max()),
            "share_at_clip": float(np.mean(np.abs(w) >= 0.99 * c)) if clipped else math.nan,
        })
    return pd.DataFrame(rows, columns=WEIGHT_COLUMNS)


def fig1b_draw(points: pd.DataFrame, weights: pd.DataFrame, arrays: dict[str, np.ndarray], order: list[str],
               name: str, out: Path, key: str = "wgangp_fig1b_gradient_norms_and_weights") -> list[Path]:
    """Left: log10 gradient norm per layer, one line per config of ``order`` (``points``: ``layer_norms``);
    right: one histogram per row of ``weights`` (``fig1b_weights``) of its cell's weights in ``arrays``,
    with the clipping range dashed."""
    fig = plt.figure(figsize=(11, max(4.0, 1.6 * len(weights))), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.3, 1])
    ax = left.subplots()
    sns.lineplot(points, x="layer", y="log10_grad_norm", hue="config", hue_order=order, marker="o", ax=ax,
                 **seaborn_args(LAYER_METRIC))
    ax.set(xlabel="critic layer (0 = input layer)", ylabel="log10 ||grad of critic loss wrt layer weights||",
           title="gradient norm per layer (last evaluation)")
    ax.legend(fontsize=7, title=None)
    hist_axes = right.subplots(len(weights), 1, squeeze=False)[:, 0]
    for hax, (_, cell) in zip(hist_axes, weights.iterrows(), strict=True):
        clipped = not math.isnan(cell["clip_value"])
        sns.histplot(arrays[cell["cell_id"]], bins=100, ax=hax, color="tab:red" if clipped else "tab:blue",
                     edgecolor=None)
        if clipped:
            for v in (-cell["clip_value"], cell["clip_value"]):
                hax.axvline(v, ls="--", lw=0.8, c="k")
        hax.set_title(f"{cell['config']} (seed {cell['seed']}, iter {cell['generator_iter']})", fontsize=8)
        hax.set_ylabel("count", fontsize=7)
        hax.tick_params(labelsize=7)
    right.suptitle("critic weights (last evaluation)", fontsize=10)
    fig.suptitle(f"{name}: deep critics, weight clipping vs gradient penalty")
    return save(fig, out, key)


@FIGURES.register(
    "wgangp_fig1b_gradient_norms_and_weights",
    applies=lambda study: study.has_artifact("critic_weights")
    and any(m.startswith(LAYER_PREFIX) for m in study.curve_metrics()),
)
def wgangp_fig1b_gradient_norms_and_weights(study: Study, out: Path) -> Section:
    """WGAN-GP Fig. 1b: (left) critic gradient norm per layer, log scale, for each clipping threshold and
    for the gradient penalty; (right) histograms of the critic's weights, clipping vs gradient penalty."""
    pts = layer_norms(study)
    weights = fig1b_weights(study)
    arrays = {c: _last(study.artifacts(c)["critic_weights"])[1] for c in weights["cell_id"]}
    return Section(
        key="wgangp_fig1b_gradient_norms_and_weights",
        title="WGAN-GP Fig. 1b: gradient norms per layer and weight histograms",
        description=(
            "Left: log10 of the norm of the critic loss's gradient with respect to each layer's weights at the "
            "last evaluation, mean and 95% interval over seeds (of the log10 values), one line per config; norms "
            "that underflowed to exactly 0 have no log and are counted in `zero_norms` instead. The "
            "paper's claim: with weight clipping these norms explode (large c) or vanish (small c) geometrically "
            "through the layers of a deep critic; with a gradient penalty they stay level. Right: histogram of "
            "the critic's weights (one seed each): clipping piles the weights at the ends of [-c, c] (dashed "
            "lines; `share_at_clip` = fraction with |w| >= 0.99 c), the gradient penalty does not."
        ),
        data=fig1b_table(study, pts),
        seeds=sorted(pts["seed"].astype(int).unique().tolist()),
        files=fig1b_draw(pts, weights, arrays, _ok_order(study), study.name, out),
        notes=study.excluded(),
        tables={"Critic weights": weights},
    )


# ------------------------------------------------------------------------------------------------- Fig. 3


def fig3_points(study: Study) -> pd.DataFrame:
    """Tidy, one row per (ok cell, quality curve metric, evaluation): ``study.curve``'s columns."""
    return pd.concat([study.curve(m) for m in study.quality_curve_metrics()]).query("status == 'ok'")


def _panel_points(points: pd.DataFrame, metric: str, space: str | None) -> pd.DataFrame:
    pts = points[points["metric"] == metric]
    return pts if space is None else pts[pts["feature_space"] == space]


def fig3_table(study: Study, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy, one row per (panel ``metric`` [feature space], config, generator_iter) of WGAN-GP Fig. 3: the
    seed statistics of the quality there (``n``, ``center``, ``lo``, ``hi``, ``aggregate``, ``interval``,
    ``seeds``) and ``train_s``, the mean training clock of the cells trained alone (NaN: none was).
    ``points``: ``fig3_points(study)``."""
    points = fig3_points(study) if points is None else points
    tables = []
    for metric, space in study.panels(study.quality_curve_metrics()):
        pts = _panel_points(points, metric, space)
        agg = summarize(pts, ["config", "generator_iter"], metric=metric)
        timed = pts[_trained_alone(pts)]  # a stacked cell's train_s is its whole stack's: not its own time
        agg = agg.merge(timed.groupby(["config", "generator_iter"], as_index=False)["train_s"].mean(),
                        on=["config", "generator_iter"], how="left")
        agg.insert(1, "metric", metric if space is None else f"{metric} [{space}]")
        tables.append(agg)
    data = pd.concat(tables, ignore_index=True)
    data["config"] = pd.Categorical(data["config"], _ok_order(study))
    return data.sort_values(["metric", "config", "generator_iter"], kind="stable").reset_index(drop=True)


def fig3_draw(points: pd.DataFrame, table: pd.DataFrame, panels: list[tuple[str, str | None]], order: list[str],
              subtitle: str, name: str, out: Path, key: str = "wgangp_fig3_quality_vs_time") -> list[Path]:
    """Per (metric, feature space) of ``panels``: quality over generator iterations (left; the seeds of
    ``points``, mean and interval by seaborn with the catalogue's statistics) and over training time (right;
    ``table``'s ``center``, ``lo``, ``hi`` at its ``train_s``), one colour per config of ``order``."""
    palette = dict(zip(order, sns.color_palette(n_colors=len(order)), strict=True))
    fig, axes = grid(2 * len(panels), 2, size=(5.0, 3.0))
    cut = False
    for i, (metric, space) in enumerate(panels):
        pts = _panel_points(points, metric, space)
        timed = table[(table["metric"] == (metric if space is None else f"{metric} [{space}]"))
                      & table["train_s"].notna()]
        title = f"{metric}" + (f" [{space}]" if space else "")
        title += f" ({'higher' if column(metric).higher_is_better else 'lower'} is better)"
        ax_it, ax_t = axes[2 * i], axes[2 * i + 1]
        sns.lineplot(pts, x="generator_iter", y="value", hue="config", hue_order=order, palette=palette,
                     ax=ax_it, legend=i == 0, **seaborn_args(metric))
        for config in sorted(timed["config"].astype(str).unique()):  # the order summarize's groups come in
            d = timed[timed["config"] == config]
            ax_t.plot(d["train_s"], d["center"], color=palette[config])
            ax_t.fill_between(d["train_s"], d["lo"], d["hi"], color=palette[config], alpha=0.2, lw=0)
        for ax, xlabel in [(ax_it, "generator iterations"), (ax_t, "training wall-clock time (s)")]:
            ax.set(title=title, xlabel=xlabel, ylabel="")
            cut |= fit_ylim(ax, pts["value"])
        if i == 0 and ax_it.get_legend():
            sns.move_legend(ax_it, "best", fontsize=7, title=None)
    fig.suptitle(f"{name}: quality vs generator iterations and wall-clock (mean and 95% interval over seeds)"
                 f"\n{subtitle}" + ("\nintervals wider than an axis are cut there; the table has them in full"
                                    if cut else ""))
    return save(fig, out, key)


@FIGURES.register(
    "wgangp_fig3_quality_vs_time",
    applies=lambda study: study.trains_generator and bool(study.quality_curve_metrics()) and not study.ok.empty,
)
def wgangp_fig3_quality_vs_time(study: Study, out: Path) -> Section:
    """WGAN-GP Fig. 3: sample quality against generator iterations (left) and against training wall-clock
    time (right), one line per method."""
    points = fig3_points(study)
    data = fig3_table(study, points)
    timing = _timing(study)
    files = fig3_draw(points, data, study.panels(study.quality_curve_metrics()), _ok_order(study), timing,
                      study.name, out)
    last = data["generator_iter"] == data.groupby(["metric", "config"], observed=True)["generator_iter"].transform(
        "max")
    return Section(
        key="wgangp_fig3_quality_vs_time",
        title="WGAN-GP Fig. 3: quality vs generator iterations and wall-clock time",
        description=(
            "Each quality metric of the periodic evaluations against generator iterations (left) and against "
            "training wall-clock time (right; `train_s`, the training clock that stops while measuring), mean and "
            "95% interval over seeds per evaluation step, one line per config. The paper's claim (CIFAR-10 "
            "Inception score): WGAN-GP converges faster and to better scores than weight clipping at the same "
            "number of iterations, Adam beats RMSProp for it, and DCGAN converges faster in wall-clock time but "
            "is less stable. Time per cell is the mean over seeds of the training clock at that step. " + timing
        ),
        data=data,
        shown=data.loc[last, ["metric", "config", "generator_iter", "train_s", "n", "center", "lo", "hi", "seeds"]],
        seeds=sorted(study.ok["seed"].astype(int).unique().tolist()),
        files=files,
        notes=["the table shows each config's last evaluation"] + study.excluded() + _untimed(study),
    )


def _trained_alone(frame: pd.DataFrame) -> pd.Series:
    if "ensemble_size" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["ensemble_size"].fillna(1).astype(int) == 1


def _timing(study: Study) -> str:
    """How the wall-clock axis was measured, from the rows of the cells it shows."""
    alone = study.ok[_trained_alone(study.ok)]
    if alone.empty:
        return ("Wall-clock axis empty: every cell trained stacked (its train_s is its stack's); run with "
                "wall_clock: true.")
    workers = sorted(alone["workers"].dropna().astype(int).unique()) if "workers" in alone else []
    hosts = sorted(alone["host"].dropna().unique()) if "host" in alone else []
    return (f"Timed per cell: train_s, the training clock of each cell trained alone (no stacking), "
            f"{'/'.join(map(str, workers)) or 'unrecorded'} worker(s) at a time on "
            f"{', '.join(hosts) or 'an unrecorded host'}.")


def _untimed(study: Study) -> list[str]:
    stacked = study.ok[~_trained_alone(study.ok)]
    return [f"no wall-clock line for {study.labels[c]}: its cells trained stacked (train_s is the stack's)"
            for c in dict.fromkeys(stacked["config_id"])]


# ------------------------------------------------------------------------------------------------ Table 2

ROBUSTNESS_QUALITY = ("inception_score", "fid", "modes_captured", "w1_exact")  # the paper thresholds IS


def _sweeps_architectures(study: Study) -> bool:
    arch = [a for a in study.setting_axes if a.startswith(("generator.", "critic."))]
    return bool(arch) and bool(study.method_axes) and study.pick_quality(ROBUSTNESS_QUALITY) is not None


def table2_scores(study: Study) -> pd.DataFrame:
    """Tidy, one row per (architecture, method) of WGAN-GP Table 2: the seed statistics of the final quality
    (``reports.stats.summarize``; a failed or diverged run counts as no value), in the first feature space."""
    metric = study.pick_quality(ROBUSTNESS_QUALITY)
    runs = study.runs.copy()
    spaces = study.feature_spaces()
    if len(spaces) > 1:  # never mix feature spaces: the first one only
        runs = runs[runs["feature_space"].isin([spaces[0]]) | (runs["status"] != "ok")]
    runs["method"] = [study.label(c, study.method_axes) for c in runs["config_id"]]
    runs["architecture"] = [study.label(c, study.setting_axes) for c in runs["config_id"]]
    runs["value"] = runs[metric].where(runs["status"] == "ok")  # a failed or diverged run never passes
    return summarize(runs, ["architecture", "method"], metric=metric)


def table2_table(study: Study, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy, one row per quality threshold (the 10/25/50/75/90% quantiles of the architectures' scores,
    3 significant digits) of WGAN-GP Table 2: ``threshold``, ``architectures`` and per method
    ``<method> passes``; with two methods also ``only <method>`` (each), ``both`` and ``neither``.
    ``scores``: ``table2_scores(study)``."""
    higher = column(study.pick_quality(ROBUSTNESS_QUALITY)).higher_is_better
    per = table2_scores(study) if scores is None else scores
    methods = sorted(per["method"].unique())
    wide = per.pivot(index="architecture", columns="method", values="center")
    finite = per["center"][np.isfinite(per["center"])]
    quantiles = np.quantile(finite, [0.1, 0.25, 0.5, 0.75, 0.9]) if len(finite) else []
    rows = []
    for t in sorted({float(f"{q:.3g}") for q in quantiles}):
        passed = (wide >= t) if higher else (wide <= t)  # NaN compares False: no result, no pass
        row = {"threshold": t, "architectures": len(wide), **{f"{m} passes": int(passed[m].sum()) for m in methods}}
        if len(methods) == 2:
            a, b = passed[methods[0]], passed[methods[1]]
            row.update({f"only {methods[0]}": int((a & ~b).sum()), f"only {methods[1]}": int((~a & b).sum()),
                        "both": int((a & b).sum()), "neither": int((~a & ~b).sum())})
        rows.append(row)
    return pd.DataFrame(rows)


def table2_draw(table: pd.DataFrame, metric: str, name: str, out: Path,
                key: str = "wgangp_table2_architecture_robustness") -> list[Path]:
    """The share of architectures passing each threshold of ``table`` (``table2_table``), one line per method."""
    higher = column(metric).higher_is_better
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for passes in [c for c in table.columns if c.endswith(" passes")]:
        ax.plot(table["threshold"], table[passes] / table["architectures"], marker="o",
                label=passes.removesuffix(" passes"))
    ax.set(xlabel=f"threshold on {metric} ({'>=' if higher else '<='} passes)", ylabel="fraction of architectures",
           ylim=(-0.05, 1.05), title=f"{name}: architectures reaching each threshold")
    ax.legend(fontsize=7)
    return save(fig, out, key)


@FIGURES.register("wgangp_table2_architecture_robustness", applies=_sweeps_architectures)
def wgangp_table2_architecture_robustness(study: Study, out: Path) -> Section:
    """WGAN-GP Table 2: over many architectures, how often each method reaches a quality threshold - and,
    for two methods, how often only one, both or neither does."""
    metric = study.pick_quality(ROBUSTNESS_QUALITY)
    spaces = study.feature_spaces()
    scores = table2_scores(study)
    table = table2_table(study, scores)
    return Section(
        key="wgangp_table2_architecture_robustness",
        title="WGAN-GP Table 2: robustness over architectures",
        description=(
            f"Each architecture of the sweep (the non-method axes) is trained with each method (the loss / "
            f"optimizer axes); its score is the seed aggregate of the final `{metric}` (a failed or diverged run "
            f"never passes). For thresholds at the 10/25/50/75/90% quantiles of all scores, the table counts the "
            f"architectures that pass per method and, with two methods, those where only one, both or neither "
            f"pass - the analogue of the paper's 200 random architectures with Inception-score thresholds, where "
            f"WGAN-GP succeeds on far more architectures than the standard GAN."
        ),
        data=table,
        seeds=sorted(study.runs["seed"].astype(int).unique().tolist()),
        files=table2_draw(table, metric, study.name, out),
        tables={"Scores per architecture": scores.drop(columns=["aggregate"])},
        notes=[f"score: {how(metric)} of `{metric}` over seeds per (architecture, method)"]
        + ([f"scores in feature space `{spaces[0]}` only"] if len(spaces) > 1 else []),
    )
