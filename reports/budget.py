"""Budget vs best: which loss gives the best model for the tuning one can afford (Lucic et al. 2018).

For a budget study (``search.budget``, one Optuna study per loss and sampler; ``bench.search.arms``) the
expected best score after n = 1..N trials per loss (Dodge et al. 2019, ``bench.budget``), with its standard
deviation and a bootstrap band; the share of trials that train; which hyperparameters matter (Optuna's
fANOVA importance); and the answer in words. ``table()`` computes the tidy table, ``draw()`` only plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
import seaborn as sns

from bench import budget
from bench.configdict import get_dotted
from bench.metrics import column
from bench.search import CategoricalParam, FloatParam, IntParam, arms, parse
from bench.spec import SpecError, parse_spec
from bench.summary import success_interval
from reports.section import FIGURES, Section, save
from reports.study import Study, StudyError

N_BOOT = 1000
STATED_N = 8  # the sentence reads the curves here (and at N), as Dodge et al. read theirs at a few budgets


def _arms(study: Study):
    try:
        spec = parse_spec(study.spec)
        return arms(spec, parse(spec))
    except SpecError as err:
        raise StudyError(f"{study.path / 'spec.yaml'}: {err}") from None


def trials(study: Study) -> pd.DataFrame:
    """One row per stored trial: ``loss``, ``sampler``, ``trial``, ``score`` (mean over its seeds; NaN when a
    seed diverged or failed), ``seeds``, ``trained_all`` (every seed ok), ``seconds`` (its cells' wall time,
    an ensemble's shared among its members) and ``params`` (the searched values, by dotted path)."""
    metric = study.spec["search"]["objective"]["metric"]
    rows = []
    for arm in _arms(study):
        suffix = f".{arm.loss}.{arm.sampler}"
        cells = study.runs[study.runs["optuna_study"].astype(str).str.endswith(suffix)]
        for number, group in cells.groupby("trial", sort=True):
            ok = bool((group["status"] == "ok").all()) and group[metric].notna().all()
            config = json.loads(group["config_json"].iloc[0])
            rows.append({
                "loss": arm.loss, "sampler": arm.sampler, "trial": int(number),
                "score": float(group[metric].mean()) if ok else math.nan, "seeds": len(group), "trained_all": ok,
                "seconds": float((group["wall_s"] / group["ensemble_size"].clip(lower=1)).sum()),
                "params": {p: get_dotted(config, p) for p in arm.search.space},
            })
    columns = ["loss", "sampler", "trial", "score", "seeds", "trained_all", "seconds", "params"]
    return pd.DataFrame(rows, columns=columns)


def _filled(scores: pd.Series, floor: float) -> np.ndarray:
    """A trial without a score (diverged or failed: no model) counts as the study's worst score."""
    return scores.fillna(floor).to_numpy(dtype=float)


def _floor(all_trials: pd.DataFrame, higher_is_better: bool) -> float:
    scores = all_trials["score"].dropna()
    return float(scores.min() if higher_is_better else scores.max())


def table(study: Study) -> pd.DataFrame:
    """Tidy: one row per (loss, sampler, estimator, n) with ``expected_best``, ``std``, ``lo``, ``hi`` (95%
    bootstrap band), ``seconds`` (n x the loss's mean trial time), ``metric``, ``direction``, ``n_trials``
    and ``seeds`` (training seeds per trial)."""
    metric = study.spec["search"]["objective"]["metric"]
    higher = bool(column(metric).higher_is_better)
    every = trials(study)
    if every["score"].notna().sum() == 0:
        raise StudyError(f"{study.path}: no trial of the budget study has a score yet")
    floor = _floor(every, higher)
    frames = []
    for i, ((loss, sampler), group) in enumerate(every.groupby(["loss", "sampler"], sort=False)):
        scores = _filled(group["score"], floor)
        for method in budget.METHODS:
            curve = budget.curve(scores, higher, method, n_boot=N_BOOT, seed=i)
            curve.insert(0, "estimator", method)
            curve.insert(0, "sampler", sampler)
            curve.insert(0, "loss", loss)
            curve["seconds"] = curve["n"] * group["seconds"].mean()
            curve["metric"], curve["direction"] = metric, "maximize" if higher else "minimize"
            curve["n_trials"], curve["seeds"] = len(scores), int(group["seeds"].min())
            frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def robustness(study: Study) -> pd.DataFrame:
    """Per loss and sampler: trials that train (every seed ok and the score better than
    ``search.budget.threshold``), ``n_ok / n`` with the Wilson 95% interval."""
    metric = study.spec["search"]["objective"]["metric"]
    threshold = float(study.spec["search"]["budget"]["threshold"])
    higher = bool(column(metric).higher_is_better)
    rows = []
    for (loss, sampler), group in trials(study).groupby(["loss", "sampler"], sort=False):
        beat = group["score"] > threshold if higher else group["score"] < threshold
        n_ok, n = int((group["trained_all"] & beat).sum()), len(group)
        lo, hi = success_interval(n_ok, n)
        rows.append({"loss": loss, "sampler": sampler, "n_ok": n_ok, "n": n, "share": n_ok / n, "lo": lo, "hi": hi,
                     "diverged_or_failed": int((~group["trained_all"]).sum()),
                     "rule": f"{metric} {'>' if higher else '<'} {threshold:g}"})
    return pd.DataFrame(rows)


def _distribution(param):
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log, step=param.step)
    return optuna.distributions.CategoricalDistribution(param.labels())


def importance(study: Study) -> pd.DataFrame:
    """Per loss and sampler: each hyperparameter's fANOVA importance (Optuna's ``FanovaImportanceEvaluator``,
    seed 0) for the score, over the trials that have one (needs at least 2)."""
    spaces = {(arm.loss, arm.sampler): arm.search.space for arm in _arms(study)}
    rows = []
    for (loss, sampler), group in trials(study).groupby(["loss", "sampler"], sort=False):
        scored = group.dropna(subset=["score"])
        if len(scored) < 2:
            continue
        space = spaces[(loss, sampler)]
        dists = {p: _distribution(param) for p, param in space.items()}
        probe = optuna.create_study(direction="maximize")
        probe.add_trials([optuna.trial.create_trial(
            params={p: space[p].label(v) if isinstance(space[p], CategoricalParam) else v for p, v in t.params.items()},
            distributions=dists, value=t.score) for t in scored.itertuples()])
        try:
            ranked = optuna.importance.get_param_importances(
                probe, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except RuntimeError:  # every scored trial has the same score: nothing to attribute
            continue
        rows += [{"loss": loss, "sampler": sampler, "param": p, "importance": v, "trials": len(scored)}
                 for p, v in ranked.items()]
    return pd.DataFrame(rows, columns=["loss", "sampler", "param", "importance", "trials"])


def _difference(study_table: pd.DataFrame, a: str, b: str, n: int, every: pd.DataFrame, higher: bool,
                ) -> tuple[float, float, float]:
    """E[best_n](a) - E[best_n](b) and the 95% interval of that difference over the two losses' bootstrap
    curves (the same resamples as their bands)."""
    floor = _floor(every, higher)
    random = every[every["sampler"] == "random"]
    keys = list(dict.fromkeys(zip(every["loss"], every["sampler"])))
    boots = {}
    for loss in (a, b):
        scores = _filled(random.loc[random["loss"] == loss, "score"], floor)
        boots[loss] = budget.bootstrap(scores, higher, n_boot=N_BOOT, seed=keys.index((loss, "random")))[:, n - 1]
    lo, hi = np.quantile(boots[a] - boots[b], [0.025, 0.975])
    est = study_table.set_index("loss")["expected_best"]
    return float(est[a] - est[b]), float(lo), float(hi)


def answer(study: Study, data: pd.DataFrame) -> str:
    """The answer in words, from the random-search curves (Dodge et al.'s estimator): each loss's expected
    best at STATED_N trials and at N with its band, which differences the bootstrap supports, and where
    the point curves cross."""
    curves = data[(data["sampler"] == "random") & (data["estimator"] == "with_replacement")]
    metric, direction = curves["metric"].iloc[0], curves["direction"].iloc[0]
    higher = direction == "maximize"
    every = trials(study)
    n_max = int(curves.groupby("loss")["n"].max().min())
    seeds = int(curves["seeds"].min())
    seed_text = "one training seed per trial" if seeds == 1 else f"each trial the mean of {seeds} training seeds"
    better = "higher" if higher else "lower"
    intro = (f"Random search, {n_max} trials per loss, {seed_text}; {metric} ({better} is better), expected best "
             "with 95% bootstrap band.")
    parts = [intro]
    for n in sorted({min(STATED_N, n_max), n_max}):
        at = curves[curves["n"] == n].sort_values("expected_best", ascending=not higher)
        listed = ", ".join(f"{r.loss} {r.expected_best:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in at.itertuples())
        parts.append(f"At {n} trials the expected best {metric} is {listed}.")
        leader = at["loss"].iloc[0]
        if n_max < 2:
            parts.append("One trial per loss: too few to compare.")
            break
        for other in at["loss"].iloc[1:]:
            d, lo, hi = _difference(at, leader, other, n, every, higher)
            if lo > 0 or hi < 0:
                verdict = f"{leader} beats {other}" if (d > 0) == higher else f"{other} beats {leader}"
                parts.append(f"{verdict}: difference {d:+.3g} [{lo:+.3g}, {hi:+.3g}] excludes 0.")
            else:
                parts.append(f"{leader} vs {other}: difference {d:+.3g} [{lo:+.3g}, {hi:+.3g}] includes 0, "
                             "so the data do not separate them.")
    parts.append(_crossings(curves))
    return " ".join(parts)


def _crossings(curves: pd.DataFrame) -> str:
    """Where two losses' point curves change order (n of the first trial count on the new side)."""
    wide = curves.pivot(index="n", columns="loss", values="expected_best")
    found = []
    losses = list(wide.columns)
    for i, a in enumerate(losses):
        for b in losses[i + 1:]:
            sign = np.sign((wide[a] - wide[b]).to_numpy())
            changes = [int(wide.index[k]) for k in range(1, len(sign))
                       if sign[k] != 0 and sign[k] != next((s for s in sign[:k][::-1] if s != 0), sign[k])]
            found += [f"{a} and {b} cross at n = {', '.join(map(str, changes))}"] if changes else []
    if not found:
        return "No two point curves cross for n = 1.." + f"{int(wide.index.max())}."
    return "The point curves of " + "; ".join(found) + " (point estimates; see the bands)."


def draw(data: pd.DataFrame, out: Path, key: str) -> list[Path]:
    """Expected best vs trials (log axis) and vs summed wall-clock seconds, one line and band per loss
    (dashed: a sampler other than random); Dodge et al.'s estimator only."""
    d = data[data["estimator"] == "with_replacement"]
    metric, direction = d["metric"].iloc[0], d["direction"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", sharey=True)
    palette = dict(zip(d["loss"].unique(), sns.color_palette(n_colors=d["loss"].nunique())))
    for ax, x in zip(axes, ["n", "seconds"]):
        for (loss, sampler), g in d.groupby(["loss", "sampler"], sort=False):
            style = "-" if sampler == "random" else "--"
            ax.plot(g[x], g["expected_best"], style, color=palette[loss], label=f"{loss} ({sampler})")
            ax.fill_between(g[x], g["lo"], g["hi"], color=palette[loss], alpha=0.15 if sampler == "random" else 0.07)
        ax.set_xscale("log")
        ax.set_xlabel("trials (n)" if x == "n" else "summed training wall-clock seconds (n x mean trial time)")
    axes[0].set_ylabel(f"expected best {metric}")
    axes[0].legend(title="loss (sampler)", fontsize="small")
    seeds = int(d["seeds"].min())
    better = "higher" if direction == "maximize" else "lower"
    fig.suptitle(f"Expected best {metric} after n trials ({better} is better)\nDodge et al. 2019, 95% bootstrap "
                 f"band; {'1 seed' if seeds == 1 else f'mean of {seeds} seeds'} per trial")
    return save(fig, out, key)


@FIGURES.register("budget_vs_best", applies=lambda study: "optuna_study" in study.runs, budget=True)
def budget_vs_best(study: Study, out: Path) -> Section:
    """Expected best score per loss after n random-search trials, robustness and importances."""
    data = table(study)
    (out / "data").mkdir(parents=True, exist_ok=True)
    data.to_parquet(out / "data" / "budget_vs_best.parquet", index=False)
    every = trials(study)
    higher = data["direction"].iloc[0] == "maximize"
    unscored = every[~every["trained_all"]]
    notes = [f"{len(unscored)} of {len(every)} trials diverged or failed (no model): each counts as the study's "
             f"worst score, {_floor(every, higher):.4g}" if len(unscored) else "every trial trained to the end"]
    if (every["sampler"] != "random").any():
        notes.append("trials of a sampler other than random are not i.i.d. draws: their curves describe, they do "
                     "not estimate (Dodge et al. assume random search)")
    notes.append("the table holds Dodge et al.'s estimator (`with_replacement`) and Tang et al. 2020's "
                 "without-replacement variant (`without_replacement`); the figure and the answer use the first; "
                 "also in `data/budget_vs_best.parquet`")
    return Section(
        key="budget_vs_best",
        title="Budget vs best: expected best score after n trials per loss",
        description=("**Answer.** " + answer(study, data) + " The curves are the expected maximum (minimum for a "
                     "lower-is-better metric) of n trials drawn from each loss's empirical distribution of trial "
                     "scores (Dodge et al. 2019, eq. 1), with its standard deviation and a 95% percentile "
                     "bootstrap band over the trials; the right panel puts n x the mean trial time on the x axis. "
                     "Robustness: trials that train (every seed ok and the score past the spec's threshold), "
                     "n_ok/n with the Wilson 95% interval. Importance: Optuna's fANOVA over the scored trials."),
        data=data,
        seeds=study.seeds,
        files=draw(data, out, "budget_vs_best"),
        notes=notes,
        tables={"Robustness": robustness(study), "Hyperparameter importance (fANOVA)": importance(study)},
        shown=data[(data["estimator"] == "with_replacement") & data["n"].isin(_shown_n(data))],
    )


def _shown_n(data: pd.DataFrame) -> list[int]:
    n_max = int(data["n"].max())
    return sorted({1, 2, 4, STATED_N, 16, n_max} & set(range(1, n_max + 1)))
