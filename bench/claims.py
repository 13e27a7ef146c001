"""``python -m bench.claims [--run] [--out FILE] [RESULTS_DIR ...]``: the papers' claims as verdicts.

Each claim is one small function registered in ``CLAIMS`` (like losses and metrics): it names its paper,
figure or section, the statement, the spec that tests it (``ablations/claims/``), the metric, and returns
an ``Evidence``: an effect size oriented so that larger supports the claim, with a 95% interval over
training seeds (``bench.stats``: bootstrap for bounded metrics and correlations, Wilson / Newcombe for
rates, none with fewer than 3 seeds). The verdict compares that interval with the claim's threshold:
``supported`` (the interval lies above it), ``contradicted`` (below), ``inconclusive`` (it straddles the
threshold, or has no interval) or ``not run`` (no stored cell of the spec in any RESULTS_DIR, default
``results``). Writes ``claims.parquet`` (default: in the first RESULTS_DIR) and prints the table; ``--run``
first runs the specs with missing cells (``bench.run``, timed per spec).

Exit codes: 0 every claim has a verdict; 1 a spec run with ``--run`` failed; 2 bad input (a spec, a
results directory, an option).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.registry import Registry
from bench.stats import MIN_SEEDS, bootstrap, rate_difference
from bench.summary import select
from reports.study import Study

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ("supported", "contradicted", "inconclusive", "not run")
COLUMNS = ["claim_id", "paper", "where", "statement", "metric", "effect", "lo", "hi", "n_seeds", "verdict",
           "spec", "git_sha", "threshold", "interval", "detail", "flattened", "study"]
WGAN, WGANGP = "WGAN (Arjovsky et al. 2017)", "WGAN-GP (Gulrajani et al. 2017)"


@dataclass
class Evidence:
    """An effect (larger supports the claim), its 95% interval over seeds, and how it was obtained."""

    effect: float
    lo: float
    hi: float
    n_seeds: int
    interval: str  # which interval: "bootstrap", "newcombe", or "none (n < 3)"
    detail: str = ""  # the numbers the effect is made of


CLAIMS: Registry[Callable[[Study], Evidence]] = Registry("claim")


def claim(name: str, *, paper: str, where: str, statement: str, spec: str, metric: str, figure: str,
          threshold: float = 0.0, inclusive: bool = False, curve: str | None = None, pooled: bool = False):
    """Register a claim. ``spec`` is relative to the repository root; ``figure`` is the key of the report
    figure (``reports.FIGURES``) that shows the evidence; ``curve`` the curve metric whose flattening says
    the preset reached its regime (default ``metric``), judged per config, or, with ``pooled`` (a claim about
    a quantity pooled over configs, like Table 2's success rates), on the claim's effect recomputed at every
    evaluation from that curve (``effect_curve``); ``inclusive``: an interval starting exactly at the
    threshold supports the claim ("at least 24 modes")."""
    return CLAIMS.register(name, paper=paper, where=where, statement=statement, spec=spec, metric=metric,
                           figure=figure, threshold=threshold, inclusive=inclusive, curve=curve or metric,
                           pooled=pooled)


def verdict(ev: Evidence | None, threshold: float = 0.0, inclusive: bool = False) -> str:
    """``not run`` without evidence; ``inconclusive`` without an interval (fewer than 3 seeds) or when it
    holds the threshold; else ``supported`` or ``contradicted`` by the side the interval lies on."""
    if ev is None:
        return "not run"
    if ev.n_seeds < MIN_SEEDS or not (np.isfinite(ev.lo) and np.isfinite(ev.hi)):
        return "inconclusive"
    if ev.lo > threshold or (inclusive and ev.lo >= threshold):
        return "supported"
    if ev.hi < threshold:
        return "contradicted"
    return "inconclusive"


# ------------------------------------------------------------------------------------- evidence helpers


def cells(study: Study, where: dict, ok: bool = True) -> pd.DataFrame:
    """The runs of ``study`` (only those that trained, when ``ok``) whose config matches ``where``."""
    return select(study.runs, where, ok)


def per_seed(study: Study, where: dict, metric: str) -> pd.Series:
    """The final ``metric`` of each ok seed of the config selected by ``where``, indexed by seed."""
    sel = cells(study, where)
    return sel.set_index("seed")[metric].dropna() if metric in sel else pd.Series(dtype=float)


NO_INTERVAL = f"none (n < {MIN_SEEDS})"


def mean_of(values: pd.Series, detail: str = "") -> Evidence:
    """The mean over seeds with its percentile-bootstrap interval (inside the range of the values)."""
    v = values.to_numpy(dtype=float)
    if len(v) < MIN_SEEDS:
        return Evidence(float(v.mean()) if len(v) else math.nan, math.nan, math.nan, len(v), NO_INTERVAL, detail)
    return Evidence(float(v.mean()), *bootstrap(v), len(v), "bootstrap", detail)


def difference(a: pd.Series, b: pd.Series, detail: str = "") -> Evidence:
    """mean(a) - mean(b) over two sets of training seeds (each resampled on its own), bootstrap interval."""
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    n = min(len(x), len(y))
    effect = float(x.mean() - y.mean()) if n else math.nan
    if n < MIN_SEEDS:
        return Evidence(effect, math.nan, math.nan, n, NO_INTERVAL, detail)
    return Evidence(effect, *bootstrap(x, y), n, "bootstrap", detail)


def _fmt(v: pd.Series) -> str:
    return f"{v.mean():.3g} (n={len(v)})" if len(v) else "- (n=0)"


def curve_of(study: Study, cell_id: str, metric: str) -> pd.Series:
    """One cell's ``metric`` curve, indexed by generator iteration."""
    c = study.curves
    c = c[(c["cell_id"] == cell_id) & (c["metric"] == metric)]
    return c.set_index("generator_iter")["value"].sort_index()


FLAT_TOLERANCE = 0.1  # share of a curve's scale (the larger of its range and its final level) the last quarter may move


FLAT_COLUMNS = ["config", "metric", "evaluations", "from_iter", "scale", "previous", "last", "flattened"]


def _flat(curve: pd.Series, config: str, metric: str) -> dict:
    """The flattening rule on one curve indexed by generator iteration (``flattening``)."""
    curve = curve.sort_index()
    q = len(curve) // 4
    previous = float(curve.iloc[-2 * q: -q].mean()) if q else math.nan
    last = float(curve.iloc[-q:].mean()) if q else math.nan
    scale = max(float(curve.max() - curve.min()), abs(last))
    return {"config": config, "metric": metric, "evaluations": len(curve),
            "from_iter": int(curve.index[-q]) if q else None, "scale": scale, "previous": previous,
            "last": last, "flattened": bool(q) and abs(last - previous) <= FLAT_TOLERANCE * scale}


def flattening(study: Study, metric: str) -> pd.DataFrame:
    """Per config, the seed-mean curve of ``metric``: its ``scale`` (the larger of its range and the size of
    its last-quarter level, so that a curve that was flat from the start but noisy is not judged by its
    noise alone), the mean of the quarter of evaluations before the last (``previous``) and of the last
    quarter (``last``, from ``from_iter``), and ``flattened``: the two differ by at most ``FLAT_TOLERANCE``
    of the scale."""
    c = study.curves[(study.curves["metric"] == metric) & study.curves["cell_id"].isin(study.ok["cell_id"])]
    rows = [_flat(group.groupby("generator_iter")["value"].mean(), study.labels[config_id], metric)
            for config_id, group in c.merge(study.ok[["cell_id", "config_id"]], on="cell_id").groupby("config_id")]
    return pd.DataFrame(rows, columns=FLAT_COLUMNS)


def effect_curve(study: Study, name: str) -> pd.Series:
    """Claim ``name``'s effect at each evaluation, indexed by generator iteration: every run's final value of
    the claim's curve metric replaced by its value at that evaluation (a run without one there, e.g. one that
    diverged earlier, has none, as a run that did not train)."""
    metric = CLAIMS.entry(name).meta["curve"]
    c = study.curves[study.curves["metric"] == metric]
    out = {}
    for it, at in c.groupby("generator_iter"):
        runs = study.runs.drop(columns=[metric], errors="ignore").merge(
            at[["cell_id", "value"]].rename(columns={"value": metric}), on="cell_id", how="left")
        out[int(it)] = CLAIMS.get(name)(replace(study, runs=runs)).effect
    return pd.Series(out, dtype=float).sort_index()


EFFECT = "effect"  # the config label of a pooled claim's effect curve in ``regime``'s rows


def judged_curve(name: str) -> str:
    """The curve ``regime`` judges claim ``name`` by: its curve metric, or ``effect of <curve>`` when pooled."""
    meta = CLAIMS.entry(name).meta
    return f"{EFFECT} of {meta['curve']}" if meta["pooled"] else meta["curve"]


def regime(study: Study, name: str) -> pd.DataFrame:
    """``flattening``'s rows for claim ``name``: per config of its curve metric, or, for a ``pooled`` claim,
    one row for its ``effect_curve`` (config ``EFFECT``, metric ``judged_curve``)."""
    meta = CLAIMS.entry(name).meta
    if not meta["pooled"]:
        return flattening(study, meta["curve"])
    curve = effect_curve(study, name).dropna()
    return pd.DataFrame([_flat(curve, EFFECT, judged_curve(name))] if len(curve) else [], columns=FLAT_COLUMNS)


def flattened(study: Study, name: str) -> bool | None:
    """The preset reached the regime of claim ``name``: every curve of ``regime`` moved over the last quarter
    of its evaluations by at most ``FLAT_TOLERANCE`` of its scale (``flattening``: mean of the last quarter
    against the mean of the quarter before). None where the study has no such curve."""
    table = regime(study, name)
    return None if table.empty else bool(table["flattened"].all())


# ------------------------------------------------------------------------------------------ the claims

GP = {"loss.name": "wgan-gp"}
MINIMAX = {"loss.name": "minimax"}
CLIP = {"loss.name": "wgan"}


@claim("gaussians25_wgangp_modes", paper=WGANGP, where="25 Gaussians (gan_toy.py; PacGAN/VEEGAN protocol)",
       statement="WGAN-GP captures at least 24 of the 25 modes.", spec="ablations/claims/gaussians25.yaml",
       metric="modes_captured", figure="toy_summary", threshold=24.0, inclusive=True)
def gaussians25_wgangp_modes(study: Study) -> Evidence:
    """Mean over seeds of the modes WGAN-GP captures (2,500 samples, 3-std high-quality rule)."""
    modes = per_seed(study, GP, "modes_captured")
    return mean_of(modes, f"WGAN-GP modes per seed: {modes.astype(int).tolist()}")


@claim("gaussians25_gan_fewer", paper=WGANGP, where="25 Gaussians", spec="ablations/claims/gaussians25.yaml",
       statement="The minimax GAN captures fewer of the 25 modes than WGAN-GP.", metric="modes_captured",
       figure="toy_summary")
def gaussians25_gan_fewer(study: Study) -> Evidence:
    """modes(WGAN-GP) - modes(minimax GAN), means over seeds."""
    gp, gan = per_seed(study, GP, "modes_captured"), per_seed(study, MINIMAX, "modes_captured")
    return difference(gp, gan, f"WGAN-GP {_fmt(gp)} vs minimax {_fmt(gan)} modes")


def tracking(study: Study, where: dict, quality: str) -> pd.Series:
    """Per ok seed: Spearman's rho between the critic's own estimate and ``quality`` over the evaluation
    steps, signed so that +1 means the estimate falls exactly as quality improves (WGAN Figs. 3-4: the
    figure table's ``tracks_quality``, ``reports.wgan.fig3_4_table``)."""
    from reports.wgan import fig3_4_table

    rho = fig3_4_table(study, quality).dropna(subset=["tracks_quality"]).set_index("cell_id")["tracks_quality"]
    runs = cells(study, where)
    return pd.Series({int(r["seed"]): float(rho[r["cell_id"]]) for _, r in runs.iterrows() if r["cell_id"] in rho},
                     dtype=float)


@claim("wgan_fig3_estimate_tracks_quality", paper=WGAN, where="Figs. 3-4 (toy: 25 Gaussians, quality = exact W1)",
       statement="The WGAN critic's W estimate falls as sample quality rises over training (Spearman rho per "
       "seed > 0.5).", spec="ablations/claims/wgan_fig3.yaml", metric="w_estimate vs w1_exact",
       figure="wgan_fig3_4_estimate_vs_quality", threshold=0.5, curve="w1_exact")
def wgan_fig3_estimate_tracks_quality(study: Study) -> Evidence:
    """Mean over seeds of the sign-adjusted Spearman rho between ``w_estimate`` and ``w1_exact`` (clipping)."""
    return _clipping_tracks(study, "w1_exact")


@claim("wgan_fig3_estimate_tracks_quality_mnist", paper=WGAN, where="Figs. 3-4 (images: MNIST 16x16, quality = FID)",
       statement="The WGAN critic's W estimate falls as FID falls over training (Spearman rho per seed > 0.5).",
       spec="ablations/claims/wgan_fig3_mnist.yaml", metric="w_estimate vs fid",
       figure="wgan_fig3_4_estimate_vs_quality", threshold=0.5, curve="fid")
def wgan_fig3_estimate_tracks_quality_mnist(study: Study) -> Evidence:
    """As the toy claim, with FID in the study's feature space as the quality."""
    return _clipping_tracks(study, "fid")


def _clipping_tracks(study: Study, quality: str) -> Evidence:
    """The clipped WGAN's tracking rho per seed against ``quality``, as their mean with its interval."""
    rho = tracking(study, CLIP, quality)
    return mean_of(rho, f"rho per seed: {[round(r, 2) for r in rho]}")


@claim("wgan_fig4_js_does_not_track", paper=WGAN, where="Fig. 4 (toy: 25 Gaussians, quality = exact W1)",
       statement="The minimax GAN's JS estimate tracks sample quality less than the WGAN's W estimate does.",
       spec="ablations/claims/wgan_fig3.yaml", metric="rho(W) - rho(JS)",
       figure="wgan_fig3_4_estimate_vs_quality", curve="w1_exact")
def wgan_fig4_js_does_not_track(study: Study) -> Evidence:
    """Mean tracking rho of the WGAN critic minus that of the minimax GAN's discriminator."""
    w, js = tracking(study, CLIP, "w1_exact"), tracking(study, MINIMAX, "w1_exact")
    return difference(w, js, f"rho WGAN {_fmt(w)} vs minimax JS {_fmt(js)}")


NO_BN_GENERATOR = {"generator.batchnorm": False}


@claim("wgan_fig6_no_batchnorm", paper=WGAN, where="Figs. 5-6 (MNIST 16x16, DCGAN generator without batch norm)",
       statement="Without batch norm in the DCGAN generator, WGAN learns and the standard GAN does not "
       "(FID of the GAN minus FID of WGAN > 0).", spec="ablations/claims/wgan_fig6_mnist.yaml", metric="fid",
       figure="wgan_figs5_7_samples")
def wgan_fig6_no_batchnorm(study: Study) -> Evidence:
    """FID(-log D GAN) - FID(WGAN), both with the Fig. 6 generator."""
    gan = per_seed(study, {"loss.name": "nonsaturating", **NO_BN_GENERATOR}, "fid")
    wgan = per_seed(study, {**CLIP, **NO_BN_GENERATOR}, "fid")
    return difference(gan, wgan, f"FID GAN {_fmt(gan)} vs WGAN {_fmt(wgan)}")


@claim("wgan_fig7_mlp_generator", paper=WGAN, where="Fig. 7 (MNIST 16x16, 4-layer ReLU MLP generator)",
       statement="With an MLP generator the standard GAN collapses and WGAN does not (WGAN's samples cover "
       "more of the ten digits).", spec="ablations/claims/wgan_fig7_mnist.yaml", metric="digit_classes",
       figure="wgan_figs5_7_samples", curve="fid")
def wgan_fig7_mlp_generator(study: Study) -> Evidence:
    """digit_classes(WGAN) - digit_classes(-log D GAN): the digits (modes) the MNIST classifier recognises in
    at least 1 % of the samples (``bench.metrics.modes.class_metrics``). Collapse is the loss of modes; on MNIST
    the digits are the modes, as the 25 centres are on the toy set. (Improved recall, the share of real images
    inside the generated k-NN manifold, was this claim's measure first: at 16x16 it is 0 for every run of
    either loss, so it cannot tell collapse from low quality.) The preset's regime is judged on FID, the
    samples' quality: a generator that has not collapsed keeps adding digits slowly as its samples sharpen,
    while a collapsed one stays at its one digit."""
    gan = {"loss.name": "nonsaturating"}
    wgan, other = per_seed(study, CLIP, "digit_classes"), per_seed(study, gan, "digit_classes")
    return difference(wgan, other, f"digits WGAN {_fmt(wgan)} vs GAN {_fmt(other)}; recognisable share WGAN "
                      f"{_fmt(per_seed(study, CLIP, 'recognisable_fraction'))} vs GAN "
                      f"{_fmt(per_seed(study, gan, 'recognisable_fraction'))}")


def oscillation(study: Study, where: dict, metric: str) -> pd.Series:
    """Per ok seed: the mean absolute change of ``metric`` between consecutive evaluations over the second
    half of training, where a stable run has settled."""
    out = {}
    for _, run in cells(study, where).iterrows():
        c = curve_of(study, run["cell_id"], metric)
        late = c[c.index > c.index.max() / 2]
        if len(late) >= 2:
            out[int(run["seed"])] = float(np.abs(np.diff(late.to_numpy())).mean())
    return pd.Series(out, dtype=float)


@claim("wgan_sec4_adam_unstable", paper=WGAN, where="Section 4 (toy: 25 Gaussians, weight clipping c = 0.1)",
       statement="WGAN with weight clipping trains less stably with Adam than with RMSProp (its quality "
       "oscillates more once training has settled).", spec="ablations/claims/wgan_optimizer.yaml",
       metric="oscillation of modes_captured", figure="wgangp_fig3_quality_vs_time", curve="modes_captured")
def wgan_sec4_adam_unstable(study: Study) -> Evidence:
    """Oscillation (mean |change| of modes captured per evaluation, second half) with Adam minus RMSProp."""
    adam = oscillation(study, {**CLIP, "optimizer.name": "adam"}, "modes_captured")
    rms = oscillation(study, {**CLIP, "optimizer.name": "rmsprop"}, "modes_captured")
    return difference(adam, rms, f"modes per evaluation, Adam {_fmt(adam)} vs RMSProp {_fmt(rms)}")


def quadratic_r2(surface: np.ndarray) -> float:
    """The share of a value surface's variance over the grid that its least-squares quadratic in (x, y)
    explains."""
    gx, gy, value = (a.ravel().astype(float) for a in surface)
    design = np.stack([np.ones_like(gx), gx, gy, gx * gx, gx * gy, gy * gy], axis=1)
    fit, *_ = np.linalg.lstsq(design, value, rcond=None)
    residual = value - design @ fit
    total = ((value - value.mean()) ** 2).sum()
    return float(1 - (residual ** 2).sum() / total) if total > 0 else 1.0


@claim("wgangp_fig1a_simpler_surfaces", paper=WGANGP, where="Fig. 1a (8 Gaussians, 25 Gaussians, Swiss roll; "
       "generator fixed at real + N(0, I))", statement="Weight-clipped critics learn simpler value surfaces than "
       "gradient-penalty critics (a quadratic in (x, y) explains more of their variance).",
       spec="ablations/claims/wgangp_fig1a.yaml", metric="quadratic R^2 of the value surface",
       figure="wgangp_fig1a_value_surfaces", curve="w_estimate")
def wgangp_fig1a_simpler_surfaces(study: Study) -> Evidence:
    """R^2 of the best quadratic fit to the critic's surface, clipping minus penalty, per seed averaged over
    the data sets. Why a quadratic: the paper's clipped critics are smooth bowls and ramps that miss the
    data's modes and higher moments; any such surface is nearly quadratic over [-3, 3]^2, while a critic that
    follows 8 or 25 modes or a spiral has bumps and ridges no quadratic explains. The measure is free of the
    surface's scale (clipping shrinks values by orders of magnitude) and needs no threshold."""
    r2 = {}
    for _, run in study.ok.iterrows():
        surfaces = study.artifacts(run["cell_id"]).get("critic_surface")
        if surfaces:
            r2[(run["loss.name"], run["dataset.name"], int(run["seed"]))] = quadratic_r2(surfaces[max(surfaces)])
    r2 = pd.Series(r2, dtype=float)
    if r2.empty:
        return mean_of(r2)
    r2.index.names = ["loss", "dataset", "seed"]
    per = r2.groupby(["loss", "seed"]).mean()
    clip = per.xs("wgan", level="loss") if "wgan" in per.index.get_level_values(0) else pd.Series(dtype=float)
    gp = per.xs("wgan-gp", level="loss") if "wgan-gp" in per.index.get_level_values(0) else pd.Series(dtype=float)
    return difference(clip, gp, f"quadratic R^2 clipping {_fmt(clip)} vs penalty {_fmt(gp)}")


def layer_slopes(study: Study) -> pd.DataFrame:
    """Per ok cell: the change of log10 (critic gradient norm per layer) per layer, going from the output
    layer back to the input layer (least squares over the layers at the last evaluation): > 0 explodes
    towards the input, < 0 vanishes."""
    from reports.wgangp import layer_norms

    pts = layer_norms(study).dropna(subset=["log10_grad_norm"])
    rows = []
    for cell_id, g in pts.groupby("cell_id"):
        if len(g) >= 2:
            slope = -float(np.polyfit(g["layer"], g["log10_grad_norm"], 1)[0])
            run = study.ok[study.ok["cell_id"] == cell_id].iloc[0]
            rows.append({"seed": int(run["seed"]), "loss": run["loss.name"],
                         "clip_value": float(run["loss.clip_value"]) if run["loss.name"] == "wgan" else math.nan,
                         "slope": slope})
    return pd.DataFrame(rows, columns=["seed", "loss", "clip_value", "slope"])


def _slopes(study: Study, loss: str, clip_value: float | None = None) -> pd.Series:
    s = layer_slopes(study)
    s = s[s["loss"] == loss]
    if clip_value is not None:
        s = s[np.isclose(s["clip_value"], clip_value)]
    return s.set_index("seed")["slope"]


FIG1B = dict(paper=WGANGP, spec="ablations/claims/wgangp_fig1b.yaml", figure="wgangp_fig1b_gradient_norms_and_weights",
             metric="log10 gradient norm per layer (toward the input)", curve="w1_exact")


@claim("wgangp_fig1b_clip_explodes", where="Fig. 1b (Swiss roll, 12-layer critic, c = 0.1)", **FIG1B,
       statement="With clipping at c = 0.1 the critic's gradient norms grow through the layers toward the input.")
def wgangp_fig1b_clip_explodes(study: Study) -> Evidence:
    """Mean over seeds of the per-layer log10 growth of the gradient norm toward the input, c = 0.1."""
    s = _slopes(study, "wgan", 0.1)
    return mean_of(s, f"log10 per layer, c = 0.1: {[round(v, 3) for v in s]}")


@claim("wgangp_fig1b_clip_vanishes", where="Fig. 1b (Swiss roll, 12-layer critic, c = 0.01 and 0.001)", **FIG1B,
       statement="With clipping at c = 0.01 the critic's gradient norms shrink through the layers toward the "
       "input (at c = 0.001 they underflow to exactly 0, which has no slope: counted in the evidence).")
def wgangp_fig1b_clip_vanishes(study: Study) -> Evidence:
    """Minus the per-layer log10 growth toward the input at c = 0.01 (> 0: vanishing); the evidence also
    counts the layer norms of c = 0.001 that are exactly 0 (float32 underflow, vanished entirely)."""
    from reports.wgangp import layer_norms

    slopes = _slopes(study, "wgan", 0.01)
    pts = layer_norms(study)
    tiny = pts[pts["cell_id"].isin(cells(study, {**CLIP, "loss.clip_value": 0.001})["cell_id"])]
    return mean_of(-slopes, f"log10 per layer, c = 0.01: {[round(v, 3) for v in slopes]}; c = 0.001: "
                   f"{int((tiny['value'] == 0).sum())} of {len(tiny)} layer norms exactly 0")


@claim("wgangp_fig1b_penalty_level", where="Fig. 1b (Swiss roll, 12-layer critic)", **FIG1B,
       statement="With the gradient penalty the gradient norms stay nearer constant through the layers than "
       "with any of the three clipping values.")
def wgangp_fig1b_penalty_level(study: Study) -> Evidence:
    """Per seed: the smallest |slope| of the clipped critics minus the penalized critic's |slope|."""
    s = layer_slopes(study)
    clip = s[s["loss"] == "wgan"].groupby("seed")["slope"].apply(lambda v: v.abs().min())
    gp = s[s["loss"] == "wgan-gp"].set_index("seed")["slope"].abs()
    both = pd.concat([clip, gp], axis=1, join="inner")
    return mean_of(both.iloc[:, 0] - both.iloc[:, 1],
                   f"|log10 per layer| clipping (least) {_fmt(clip)} vs penalty {_fmt(gp)}")


def edge_share(weights: np.ndarray) -> float:
    """The share of weights within 1% of the largest magnitude: a clipped critic's largest is c."""
    w = np.abs(weights)
    return float(np.mean(w >= 0.99 * w.max()))


@claim("wgangp_fig1b_weights_pile_up", where="Fig. 1b, right (Swiss roll, 12-layer critic)", **{**FIG1B,
       "metric": "share of weights at the edge of their range"},
       statement="Clipped critic weights pile up at +-c; gradient-penalty weights do not.")
def wgangp_fig1b_weights_pile_up(study: Study) -> Evidence:
    """Per seed: the edge share (|w| >= 0.99 max |w|, at the last evaluation) of the clipped critics, mean
    over c, minus that of the penalized critic."""
    rows = []
    for _, run in study.ok.iterrows():
        weights = study.artifacts(run["cell_id"]).get("critic_weights")
        if weights:
            rows.append({"seed": int(run["seed"]), "loss": run["loss.name"],
                         "share": edge_share(weights[max(weights)])})
    shares = pd.DataFrame(rows, columns=["seed", "loss", "share"])
    clip = shares[shares["loss"] == "wgan"].groupby("seed")["share"].mean()
    gp = shares[shares["loss"] == "wgan-gp"].groupby("seed")["share"].mean()
    both = pd.concat([clip, gp], axis=1, join="inner")
    return mean_of(both.iloc[:, 0] - both.iloc[:, 1], f"edge share clipping {_fmt(clip)} vs penalty {_fmt(gp)}")


TABLE2_SUCCESS = 20  # modes captured (of 25) for a run to count as trained successfully


@claim("wgangp_table2_architectures", paper=WGANGP, where=f"Table 2 / Fig. 2, reduced: 8 MLP architectures x 5 "
       f"seeds on 25 Gaussians, success = at least {TABLE2_SUCCESS} of 25 modes",
       statement="Over architectures, WGAN-GP trains successfully more often than the standard (-log D) GAN.",
       spec="ablations/claims/wgangp_table2.yaml", metric=f"success rate (modes >= {TABLE2_SUCCESS})",
       figure="wgangp_table2_architecture_robustness", curve="modes_captured", pooled=True)
def wgangp_table2_architectures(study: Study) -> Evidence:
    """Success rate of WGAN-GP minus that of the GAN over all (architecture, seed) runs; a failed or diverged
    run is a failure. Newcombe's interval for the difference of two rates."""
    def rate(where):
        runs = cells(study, where, ok=False)
        ok = (runs["status"] == "ok") & (runs.get("modes_captured", pd.Series(dtype=float)) >= TABLE2_SUCCESS)
        return int(ok.sum()), len(runs), runs["seed"].nunique()

    (k1, n1, s1), (k2, n2, s2) = rate(GP), rate({"loss.name": "nonsaturating"})
    if not (n1 and n2):
        return Evidence(math.nan, math.nan, math.nan, 0, NO_INTERVAL)
    d, lo, hi = rate_difference(k1, n1, k2, n2)
    n, detail = min(s1, s2), f"WGAN-GP {k1}/{n1} vs GAN {k2}/{n2} runs succeed"
    if n < MIN_SEEDS:
        return Evidence(d, math.nan, math.nan, n, NO_INTERVAL, detail)
    return Evidence(d, lo, hi, n, "newcombe", detail)


def at_time(study: Study, where: dict, metric: str, seconds: float) -> pd.Series:
    """Per ok seed: ``metric`` linearly interpolated at ``seconds`` of the cell's own training clock."""
    out = {}
    for _, run in cells(study, where).iterrows():
        c = study.curves[(study.curves["cell_id"] == run["cell_id"]) & (study.curves["metric"] == metric)]
        c = c.sort_values("train_s")
        if len(c) and c["train_s"].max() >= seconds:
            out[int(run["seed"])] = float(np.interp(seconds, c["train_s"], c["value"]))
    return pd.Series(out, dtype=float)


FIG3 = dict(paper=WGANGP, spec="ablations/claims/wgangp_fig3.yaml", metric="modes_captured",
            figure="wgangp_fig3_quality_vs_time")
FIG3_GP, FIG3_CLIP = {**GP, "optimizer.name": "adam"}, {**CLIP, "optimizer.name": "rmsprop"}


@claim("wgangp_fig3_iterations", where="Fig. 3, left (toy: 25 Gaussians, equal generator iterations)", **FIG3,
       statement="WGAN-GP (Adam) reaches a better score than weight-clipped WGAN (RMSProp) at equal generator "
       "iterations.")
def wgangp_fig3_iterations(study: Study) -> Evidence:
    """Final modes captured, WGAN-GP minus clipping, after the same number of generator iterations."""
    gp, clip = per_seed(study, FIG3_GP, "modes_captured"), per_seed(study, FIG3_CLIP, "modes_captured")
    return difference(gp, clip, f"modes WGAN-GP {_fmt(gp)} vs clipping {_fmt(clip)}")


@claim("wgangp_fig3_wall_clock", where="Fig. 3, right (toy: 25 Gaussians, equal training time, each cell "
       "timed alone)", **FIG3, statement="WGAN-GP (Adam) reaches a better score than weight-clipped WGAN "
       "(RMSProp) at equal wall-clock training time.")
def wgangp_fig3_wall_clock(study: Study) -> Evidence:
    """Modes captured of both at the training time every run of both reached (the shortest run's clock),
    interpolated on each cell's own ``train_s`` (cells trained alone, ``wall_clock: true``)."""
    runs = pd.concat([cells(study, FIG3_GP), cells(study, FIG3_CLIP)])
    if runs.empty:
        return mean_of(pd.Series(dtype=float))
    seconds = float(runs["train_s"].min())
    gp, clip = at_time(study, FIG3_GP, "modes_captured", seconds), at_time(study, FIG3_CLIP, "modes_captured", seconds)
    return difference(gp, clip, f"at {seconds:.0f} s: modes WGAN-GP {_fmt(gp)} vs clipping {_fmt(clip)}")


# ------------------------------------------------------------------------------------------- evaluation


def spec_cells(spec: str) -> tuple[str, set[str]]:
    """The study name and cell ids of a claim's spec (``bench.spec.SpecError`` on a bad spec)."""
    from bench.spec import load

    parsed, expanded = load(ROOT / spec)
    return parsed.name, {c.cell_id for c in expanded}


def find_study(spec: str, results_dirs: list[Path]) -> Study | None:
    """The stored cells of ``spec`` in the first results directory that holds any, as a Study of only
    those cells (a stale config of an older spec is never evaluated); None when none is stored."""
    from bench import store

    name, ids = spec_cells(spec)
    for results in results_dirs:
        path = results / name
        if not store.done_cells(path) & ids:
            continue
        study = Study.load(path)
        keep = study.runs["cell_id"].isin(ids)
        return Study(study.path, study.runs[keep].reset_index(drop=True),
                     study.curves[study.curves["cell_id"].isin(set(study.runs.loc[keep, "cell_id"]))],
                     study.spec_text, study.spec)
    return None


def evaluate(name: str, study: Study | None) -> dict:
    """One row of ``claims.parquet`` for claim ``name`` on ``study`` (None: not run)."""
    entry = CLAIMS.entry(name)
    meta = entry.meta
    ev = entry.obj(study) if study is not None else None
    shas = sorted(study.runs["git_sha"].dropna().unique()) if study is not None and "git_sha" in study.runs else []
    return {
        "claim_id": name, "paper": meta["paper"], "where": meta["where"], "statement": meta["statement"],
        "metric": meta["metric"], "effect": ev.effect if ev else math.nan, "lo": ev.lo if ev else math.nan,
        "hi": ev.hi if ev else math.nan, "n_seeds": ev.n_seeds if ev else 0,
        "verdict": verdict(ev, meta["threshold"], meta["inclusive"]), "spec": meta["spec"],
        "git_sha": ",".join(shas), "threshold": meta["threshold"], "interval": ev.interval if ev else "",
        "detail": ev.detail if ev else "",
        "flattened": flattened(study, name) if study is not None else None,
        "study": str(study.path) if study is not None else "",
    }


def evaluate_all(results_dirs: list[Path], names: list[str] | None = None) -> pd.DataFrame:
    rows, studies = [], {}
    for name in names or [e.name for e in CLAIMS]:
        spec = CLAIMS.entry(name).meta["spec"]
        if spec not in studies:
            studies[spec] = find_study(spec, results_dirs)
        rows.append(evaluate(name, studies[spec]))
    return pd.DataFrame(rows, columns=COLUMNS).astype({"flattened": object})


def names_for(study: Study) -> list[str]:
    """The claims whose spec trains ``study`` (its spec names the study, or its directory, results/<name>)."""
    from bench.spec import SpecError, parse_spec, read_yaml

    names = []
    for entry in CLAIMS:
        try:
            if parse_spec(read_yaml(ROOT / entry.meta["spec"])).name in (study.name, study.path.name):
                names.append(entry.name)
        except SpecError:
            continue
    return names


def for_study(study: Study) -> pd.DataFrame:
    """The claims of ``study`` evaluated on it: the report's claims section."""
    return pd.DataFrame([evaluate(n, study) for n in names_for(study)], columns=COLUMNS)


def effect_text(row: pd.Series) -> str:
    """``+9.2 [6.4, 12.0]``, or the effect alone where there is no interval."""
    if pd.isna(row["effect"]):
        return "-"
    if pd.isna(row["lo"]):
        return f"{row['effect']:+.3g} (no interval: n < {MIN_SEEDS})"
    return f"{row['effect']:+.3g} [{row['lo']:+.3g}, {row['hi']:+.3g}]"


# ------------------------------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.claims", description=__doc__.splitlines()[0])
    p.add_argument("results_dirs", nargs="*", default=["results"], metavar="RESULTS_DIR",
                   help="directories holding the studies (results/<study>/); the first also gets the runs of --run")
    p.add_argument("--run", action="store_true", help="run the claims' specs whose cells are not all stored")
    p.add_argument("--only", nargs="+", default=None, metavar="CLAIM", help="only these claims")
    p.add_argument("--out", default=None, help="claims table (default: RESULTS_DIR/claims.parquet)")
    p.add_argument("--workers", type=int, default=None, help="bench.run's worker processes for --run")
    return p


def _run_missing(names: list[str], results: Path, workers: int | None) -> tuple[dict[str, float], int]:
    """Run every spec of ``names`` with cells missing under ``results``; seconds per spec and bench.run's
    worst exit code."""
    from bench import run, store

    seconds, worst = {}, 0
    for spec in dict.fromkeys(CLAIMS.entry(n).meta["spec"] for n in names):
        name, ids = spec_cells(spec)
        if ids <= store.done_cells(results / name):
            continue
        start = time.perf_counter()
        code = run.main([str(ROOT / spec), "--results-dir", str(results), "--quiet",
                         *(["--workers", str(workers)] if workers else [])])
        seconds[spec] = time.perf_counter() - start
        print(f"ran {spec}: {seconds[spec]:.0f} s (exit {code})", flush=True)
        worst = max(worst, code)
    return seconds, worst


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench.spec import SpecError

    args = parser().parse_args(argv)
    results = [Path(d) for d in args.results_dirs]
    for d in results if not args.run else results[1:]:
        if not d.is_dir():
            print(f"error: {d}: not a directory", file=sys.stderr)
            return 2
    try:
        names = [CLAIMS.entry(n).name for n in args.only] if args.only else [e.name for e in CLAIMS]
    except KeyError as err:
        print(f"error: --only: {err}", file=sys.stderr)
        return 2
    seconds, code = {}, 0
    try:
        if args.run:
            results[0].mkdir(parents=True, exist_ok=True)
            seconds, code = _run_missing(names, results[0], args.workers)
        table = evaluate_all(results, names)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table["run_s"] = table["spec"].map(seconds)
    out = Path(args.out) if args.out else results[0] / "claims.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)

    console = Console(width=None if sys.stdout.isatty() else 200)
    view = Table(title=f"claims ({out})", title_justify="left")
    for col in ("claim", "verdict", "effect [95% interval]", "interval", "n_seeds", "flattened", "run s"):
        view.add_column(col)
    for _, row in table.iterrows():
        flat = "-" if row["flattened"] is None or pd.isna(row["flattened"]) else ("yes" if row["flattened"] else "no")
        view.add_row(row["claim_id"], row["verdict"], effect_text(row), row["interval"] or "-", str(row["n_seeds"]),
                     flat, "-" if pd.isna(row["run_s"]) else f"{row['run_s']:.0f}")
    view.caption = ("effect: larger supports the claim; 95% interval over training seeds (bootstrap of the mean, "
                    "or Newcombe for rates; none with fewer than 3 seeds); run s: bench.run time of the claim's spec")
    console.print(view)
    counts = table["verdict"].value_counts()
    console.print(", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS))
    return 1 if code == 1 else 0


if __name__ == "__main__":
    sys.exit(main())
