"""Figures of *Improved Training of Wasserstein GANs* (Gulrajani et al. 2017): Fig. 1a, Fig. 1b, Fig. 3
and Table 2 (v3 numbering; Table 1 there describes the architecture space)."""

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


def _first_ok_cells(study: Study, need=lambda cell_id: True) -> pd.DataFrame:
    """One cell per config (its lowest ok seed that has what ``need`` asks for), in the figure order."""
    rows = []
    for config_id in study.config_order():
        cells = study.ok[study.ok["config_id"] == config_id].sort_values("seed")
        chosen = next((r for _, r in cells.iterrows() if need(r["cell_id"])), None)
        if chosen is not None:
            rows.append(chosen)
    return pd.DataFrame(rows).reset_index(drop=True)


def _last(d: dict[int, np.ndarray]) -> tuple[int, np.ndarray]:
    step = max(d)
    return step, d[step]


# ------------------------------------------------------------------------------------------------ Fig. 1a


@FIGURES.register("wgangp_fig1a_value_surfaces", applies=lambda study: study.has_artifact("critic_surface"))
def wgangp_fig1a_value_surfaces(study: Study, out: Path) -> Section:
    """WGAN-GP Fig. 1a: value surfaces of critics trained against a fixed generator (real data + N(0, I)),
    weight clipping vs gradient penalty, one column per toy data set."""
    cells = _first_ok_cells(study, lambda c: "critic_surface" in study.artifacts(c))
    col_axis = ["dataset.name"] if "dataset.name" in study.axes else []
    row_axes = [a for a in study.axes if a not in col_axis]
    cells["column"] = [study.label(c, col_axis) for c in cells["config_id"]]
    cells["row"] = [study.label(c, row_axes) for c in cells["config_id"]]
    columns, rows = list(dict.fromkeys(cells["column"])), list(dict.fromkeys(cells["row"]))

    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.3 * len(columns), 3.2 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_visible(False)
    records = []
    for _, cell in cells.iterrows():
        ax = axes[rows.index(cell["row"]), columns.index(cell["column"])]
        ax.set_visible(True)
        arts = study.artifacts(cell["cell_id"])
        step, (gx, gy, value) = _last(arts["critic_surface"])
        real = arts.get("critic_surface_real", {}).get(step)
        generated = study.samples(cell["cell_id"])
        ax.contourf(gx, gy, value, levels=20, cmap="viridis", alpha=0.85)
        ax.contour(gx, gy, value, levels=20, colors="k", linewidths=0.3)
        if generated is not None and generated.shape[1:] == (2,):
            ax.scatter(*generated[:512].T, s=4, marker="+", c="tab:green", linewidths=0.5, label="generated")
        if real is not None:
            ax.scatter(*real.T, s=4, marker="+", c="tab:orange", linewidths=0.5, label="real")
        ax.set(xlim=(gx.min(), gx.max()), ylim=(gy.min(), gy.max()), xticks=[], yticks=[], aspect="equal")
        ax.set_title(f"{cell['column']}\n{cell['row']}", fontsize=8)
        # |grad D| on the grid (finite differences): the optimal critic has norm 1 between the distributions.
        dy, dx = np.gradient(value, gy[:, 0], gx[0, :])
        grad = np.hypot(dx, dy)
        records.append({
            "column": cell["column"], "row": cell["row"], "cell_id": cell["cell_id"], "seed": int(cell["seed"]),
            "generator_iter": step, "surface_min": float(value.min()), "surface_max": float(value.max()),
            "grid_grad_norm_median": float(np.median(grad)), "grid_grad_norm_max": float(grad.max()),
            "w_estimate": cell.get("w_estimate", math.nan),
            "critic_input_grad_norm": cell.get("critic_input_grad_norm", math.nan),
        })
    handles, labels = next((a.get_legend_handles_labels() for a in axes.flat if a.get_visible()), ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, markerscale=4)
    fig.suptitle(f"{study.name}: critic value surfaces (generator fixed at real + N(0, I))")
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
        data=pd.DataFrame(records),
        seeds=sorted(cells["seed"].astype(int).unique().tolist()),
        files=save(fig, out, "wgangp_fig1a_value_surfaces"),
        notes=[f"one cell per config: its lowest ok seed ({', '.join(map(str, sorted(cells['seed'].unique())))})"]
        + study.excluded(),
    )


# ------------------------------------------------------------------------------------------------ Fig. 1b


def _layer_norms(study: Study) -> pd.DataFrame:
    """log10 of each critic layer's gradient norm at each ok cell's last evaluation."""
    curves = study.curves[study.curves["metric"].str.startswith(LAYER_PREFIX)]
    curves = curves[curves["cell_id"].isin(study.ok["cell_id"])]
    last = curves[curves["generator_iter"] == curves.groupby("cell_id")["generator_iter"].transform("max")]
    pts = last.merge(study.ok[["cell_id", "config_id", "seed"]], on="cell_id")
    pts["config"] = pts["config_id"].map(study.labels)
    pts["layer"] = pts["metric"].str.removeprefix(LAYER_PREFIX).astype(int)
    pts["log10_grad_norm"] = np.log10(pts["value"].where(pts["value"] > 0))
    return pts


@FIGURES.register(
    "wgangp_fig1b_gradient_norms_and_weights",
    applies=lambda study: study.has_artifact("critic_weights")
    and any(m.startswith(LAYER_PREFIX) for m in study.curve_metrics()),
)
def wgangp_fig1b_gradient_norms_and_weights(study: Study, out: Path) -> Section:
    """WGAN-GP Fig. 1b: (left) critic gradient norm per layer, log scale, for each clipping threshold and
    for the gradient penalty; (right) histograms of the critic's weights, clipping vs gradient penalty."""
    order = [study.labels[c] for c in study.config_order() if c in set(study.ok["config_id"])]
    pts = _layer_norms(study)
    metric = f"{LAYER_PREFIX}00"  # every layer column aggregates as the catalogue's layer_NN entry says
    norms = summarize(pts, ["config", "layer"], value="log10_grad_norm", metric=metric)
    zeros = (pts["value"] == 0).groupby([pts["config"], pts["layer"]]).sum().rename("zero_norms").reset_index()
    norms = norms.merge(zeros, on=["config", "layer"])  # exactly 0 (float32 underflow): no point on a log axis
    norms["config"] = pd.Categorical(norms["config"], order)
    norms = norms.sort_values(["config", "layer"]).reset_index(drop=True)

    cells = _first_ok_cells(study, lambda c: "critic_weights" in study.artifacts(c))
    fig = plt.figure(figsize=(11, max(4.0, 1.6 * len(cells))), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.3, 1])
    ax = left.subplots()
    sns.lineplot(pts, x="layer", y="log10_grad_norm", hue="config", hue_order=order, marker="o", ax=ax,
                 **seaborn_args(metric))
    ax.set(xlabel="critic layer (0 = input layer)", ylabel="log10 ||grad of critic loss wrt layer weights||",
           title="gradient norm per layer (last evaluation)")
    ax.legend(fontsize=7, title=None)
    hist_axes = right.subplots(len(cells), 1, squeeze=False)[:, 0]
    weights = []
    for hax, (_, cell) in zip(hist_axes, cells.iterrows()):
        step, w = _last(study.artifacts(cell["cell_id"])["critic_weights"])
        c = cell.get("loss.clip_value", math.nan)
        clipped = c is not None and not (isinstance(c, float) and math.isnan(c))
        sns.histplot(w, bins=100, ax=hax, color="tab:red" if clipped else "tab:blue", edgecolor=None)
        if clipped:
            for v in (-c, c):
                hax.axvline(v, ls="--", lw=0.8, c="k")
        hax.set_title(f"{study.labels[cell['config_id']]} (seed {cell['seed']}, iter {step})", fontsize=8)
        hax.set_ylabel("count", fontsize=7)
        hax.tick_params(labelsize=7)
        weights.append({
            "config": study.labels[cell["config_id"]], "cell_id": cell["cell_id"], "seed": int(cell["seed"]),
            "generator_iter": step, "n_weights": len(w), "clip_value": float(c) if clipped else math.nan,
            "std": float(w.std()), "min": float(w.min()), "max": float(w.max()),
            "share_at_clip": float(np.mean(np.abs(w) >= 0.99 * c)) if clipped else math.nan,
        })
    right.suptitle("critic weights (last evaluation)", fontsize=10)
    fig.suptitle(f"{study.name}: deep critics, weight clipping vs gradient penalty")
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
        data=norms,
        seeds=sorted(pts["seed"].astype(int).unique().tolist()),
        files=save(fig, out, "wgangp_fig1b_gradient_norms_and_weights"),
        notes=study.excluded(),
        tables={"Critic weights": pd.DataFrame(weights)},
    )


# ------------------------------------------------------------------------------------------------- Fig. 3


@FIGURES.register(
    "wgangp_fig3_quality_vs_time",
    applies=lambda study: study.trains_generator and bool(study.quality_curve_metrics()) and not study.ok.empty,
)
def wgangp_fig3_quality_vs_time(study: Study, out: Path) -> Section:
    """WGAN-GP Fig. 3: sample quality against generator iterations (left) and against training wall-clock
    time (right), one line per method."""
    order = [study.labels[c] for c in study.config_order() if c in set(study.ok["config_id"])]
    palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
    panels = study.panels(study.quality_curve_metrics())
    fig, axes = grid(2 * len(panels), 2, size=(5.0, 3.0))
    tables, cut = [], False
    for i, (metric, space) in enumerate(panels):
        pts = study.curve(metric)
        pts = pts[pts["status"] == "ok"]
        if space is not None:
            pts = pts[pts["feature_space"] == space]
        agg = summarize(pts, ["config", "generator_iter"], metric=metric)
        agg = agg.merge(pts.groupby(["config", "generator_iter"], as_index=False)["train_s"].mean(),
                        on=["config", "generator_iter"])
        agg.insert(1, "metric", metric if space is None else f"{metric} [{space}]")
        tables.append(agg)
        title = f"{metric}" + (f" [{space}]" if space else "")
        title += f" ({'higher' if column(metric).higher_is_better else 'lower'} is better)"
        ax_it, ax_t = axes[2 * i], axes[2 * i + 1]
        sns.lineplot(pts, x="generator_iter", y="value", hue="config", hue_order=order, palette=palette,
                     ax=ax_it, legend=i == 0, **seaborn_args(metric))
        for config, d in agg.groupby("config", sort=False, observed=True):
            ax_t.plot(d["train_s"], d["center"], color=palette[config])
            ax_t.fill_between(d["train_s"], d["lo"], d["hi"], color=palette[config], alpha=0.2, lw=0)
        for ax, xlabel in [(ax_it, "generator iterations"), (ax_t, "training wall-clock time (s)")]:
            ax.set(title=title, xlabel=xlabel, ylabel="")
            cut |= fit_ylim(ax, pts["value"])
        if i == 0 and ax_it.get_legend():
            sns.move_legend(ax_it, "best", fontsize=7, title=None)
    fig.suptitle(f"{study.name}: quality vs generator iterations and wall-clock (mean and 95% interval over seeds)"
                 + ("\nintervals wider than an axis are cut there; the table has them in full" if cut else ""))
    data = pd.concat(tables, ignore_index=True)
    data["config"] = pd.Categorical(data["config"], order)
    data = data.sort_values(["metric", "config", "generator_iter"], kind="stable").reset_index(drop=True)
    last = data[data["generator_iter"] == data.groupby(["metric", "config"], observed=True)["generator_iter"].transform("max")]
    return Section(
        key="wgangp_fig3_quality_vs_time",
        title="WGAN-GP Fig. 3: quality vs generator iterations and wall-clock time",
        description=(
            "Each quality metric of the periodic evaluations against generator iterations (left) and against "
            "training wall-clock time (right; `train_s`, the training clock that stops while measuring), mean and "
            "95% interval over seeds per evaluation step, one line per config. The paper's claim (CIFAR-10 "
            "Inception score): WGAN-GP converges faster and to better scores than weight clipping at the same "
            "number of iterations, Adam beats RMSProp for it, and DCGAN converges faster in wall-clock time but "
            "is less stable. Time per cell is the mean over seeds of the training clock at that step."
        ),
        data=data,
        shown=last[["metric", "config", "generator_iter", "train_s", "n", "center", "lo", "hi", "seeds"]],
        seeds=sorted(study.ok["seed"].astype(int).unique().tolist()),
        files=save(fig, out, "wgangp_fig3_quality_vs_time"),
        notes=["the table shows each config's last evaluation"] + study.excluded(),
    )


# ------------------------------------------------------------------------------------------------ Table 2

ROBUSTNESS_QUALITY = ("inception_score", "fid", "modes_captured", "w1_exact")  # the paper thresholds IS


def _sweeps_architectures(study: Study) -> bool:
    arch = [a for a in study.setting_axes if a.startswith(("generator.", "critic."))]
    return bool(arch) and bool(study.method_axes) and study.pick_quality(ROBUSTNESS_QUALITY) is not None


@FIGURES.register("wgangp_table2_architecture_robustness", applies=_sweeps_architectures)
def wgangp_table2_architecture_robustness(study: Study, out: Path) -> Section:
    """WGAN-GP Table 2: over many architectures, how often each method reaches a quality threshold - and,
    for two methods, how often only one, both or neither does."""
    metric = study.pick_quality(ROBUSTNESS_QUALITY)
    higher = column(metric).higher_is_better
    runs = study.runs.copy()
    spaces = study.feature_spaces()
    if len(spaces) > 1:  # never mix feature spaces: the first one only
        runs = runs[runs["feature_space"].isin([spaces[0]]) | (runs["status"] != "ok")]
    runs["method"] = [study.label(c, study.method_axes) for c in runs["config_id"]]
    runs["architecture"] = [study.label(c, study.setting_axes) for c in runs["config_id"]]
    runs["value"] = runs[metric].where(runs["status"] == "ok")  # a failed or diverged run never passes
    per = summarize(runs, ["architecture", "method"], metric=metric)
    methods = sorted(per["method"].unique())
    wide = per.pivot(index="architecture", columns="method", values="center")

    finite = per["center"][np.isfinite(per["center"])]
    thresholds = sorted({float(f"{q:.3g}") for q in np.quantile(finite, [0.1, 0.25, 0.5, 0.75, 0.9])}) if len(finite) else []
    rows = []
    for t in thresholds:
        passed = (wide >= t) if higher else (wide <= t)  # NaN compares False: no result, no pass
        row = {"threshold": t, "architectures": len(wide)}
        for m in methods:
            row[f"{m} passes"] = int(passed[m].sum())
        if len(methods) == 2:
            a, b = passed[methods[0]], passed[methods[1]]
            row.update({f"only {methods[0]}": int((a & ~b).sum()), f"only {methods[1]}": int((~a & b).sum()),
                        "both": int((a & b).sum()), "neither": int((~a & ~b).sum())})
        rows.append(row)
    table = pd.DataFrame(rows)

    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for m in methods:
        ax.plot(table["threshold"], table[f"{m} passes"] / len(wide), marker="o", label=m)
    ax.set(xlabel=f"threshold on {metric} ({'>=' if higher else '<='} passes)", ylabel="fraction of architectures",
           ylim=(-0.05, 1.05), title=f"{study.name}: architectures reaching each threshold")
    ax.legend(fontsize=7)
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
        files=save(fig, out, "wgangp_table2_architecture_robustness"),
        tables={"Scores per architecture": per.drop(columns=["aggregate"])},
        notes=[f"score: {how(metric)} of `{metric}` over seeds per (architecture, method)"]
        + ([f"scores in feature space `{spaces[0]}` only"] if len(spaces) > 1 else []),
    )
