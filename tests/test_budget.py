"""Expected best after n trials (bench.budget), budget studies (bench.search, bench.tune) and their report
section (reports/budget.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from bench import budget, store, tune
from bench.search import arms, load, parse, trial_config
from bench.spec import Cell, SpecError, parse_spec
from bench.train import RunResult
from reports import Study, build
from reports import budget as section
from tests.conftest import edited
from tests.synthetic_study import PROV

ROOT = Path(__file__).resolve().parents[1]
SCORES = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]


# ------------------------------------------------------------------------------------------- estimator


@pytest.mark.parametrize("higher", [True, False])
def test_expected_best_is_the_mean_best_over_all_n_tuples_drawn_with_replacement(higher):
    best = max if higher else min
    mean, std = budget.expected_best(SCORES, higher_is_better=higher)
    for n in range(1, 5):
        tuples = [best(t) for t in itertools.product(SCORES, repeat=n)]
        assert mean[n - 1] == pytest.approx(np.mean(tuples), rel=1e-12)
        assert std[n - 1] == pytest.approx(np.std(tuples), rel=1e-9)


def test_without_replacement_is_the_mean_best_over_all_n_subsets():
    mean, std = budget.expected_best(SCORES, method="without_replacement")
    for n in range(1, len(SCORES) + 1):
        subsets = [max(t) for t in itertools.combinations(SCORES, n)]
        assert mean[n - 1] == pytest.approx(np.mean(subsets), rel=1e-12)
        assert std[n - 1] == pytest.approx(np.std(subsets), abs=1e-9)
    assert mean[-1] == max(SCORES) and std[-1] == pytest.approx(0, abs=1e-6)


def test_expected_best_agrees_with_monte_carlo():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=12)
    mean, _ = budget.expected_best(scores)
    wo, _ = budget.expected_best(scores, method="without_replacement")
    for n in (1, 3, 8):
        draws = rng.choice(scores, size=(100_000, n), replace=True).max(axis=1)
        subsets = np.array([rng.choice(scores, size=n, replace=False).max() for _ in range(20_000)])
        assert mean[n - 1] == pytest.approx(draws.mean(), abs=4 * draws.std() / np.sqrt(len(draws)))
        assert wo[n - 1] == pytest.approx(subsets.mean(), abs=4 * subsets.std() / np.sqrt(len(subsets)) + 1e-9)


@pytest.mark.parametrize("higher", [True, False])
def test_curve_is_monotone_in_n_and_its_band_stays_in_the_scores_range(higher):
    curve = budget.curve(SCORES, higher_is_better=higher, n_boot=300)
    step = np.diff(curve["expected_best"])
    assert (step >= -1e-12).all() if higher else (step <= 1e-12).all()
    assert curve["expected_best"].iloc[0] == pytest.approx(np.mean(SCORES))
    assert ((curve["lo"] <= curve["hi"]) & (curve["lo"] >= min(SCORES)) & (curve["hi"] <= max(SCORES))).all()
    assert list(curve.columns) == ["n", "expected_best", "std", "lo", "hi"]
    assert curve.equals(budget.curve(SCORES, higher_is_better=higher, n_boot=300))  # seeded


def test_lower_is_better_is_the_negated_maximum():
    low, low_std = budget.expected_best(SCORES, higher_is_better=False)
    high, high_std = budget.expected_best([-s for s in SCORES])
    assert np.allclose(low, -high) and np.allclose(low_std, high_std)
    assert low[-1] < np.mean(SCORES) < budget.expected_best(SCORES)[0][-1]


@pytest.mark.parametrize("scores", [[], [1.0, float("nan")], [[1.0]]])
def test_bad_scores_are_refused(scores):
    with pytest.raises(ValueError):
        budget.expected_best(scores)


# --------------------------------------------------------------------------------------------- spec


TINY = {
    "preset": "toy",
    "dataset": {"name": "25gaussians"},
    "generator": {"arch": "mlp", "width": 16, "depth": 3},
    "critic": {"arch": "mlp", "width": 16, "depth": 3},
    "loss": {"name": "nonsaturating"},
    "optimizer": {"name": "adam"},
    "train": {"generator_iters": 10, "batch_size": 64},
    "eval": {"every": 5, "n_samples": 256, "snapshot_samples": 0, "metrics": ["modes"]},
}
BETAS = {"type": "categorical", "choices": [[0.5, 0.9], [0.0, 0.9]]}


def budget_spec(**change) -> dict:
    search = {
        "objective": {"metric": "modes_captured"}, "n_trials": 3, "pruner": {"name": "none"},
        "space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "budget": {"threshold": 2, "samplers": [{"name": "random", "seed": 0}], "losses": {
            "minimax": {"set": {"loss": {"name": "minimax"}}, "space": {"optimizer.betas": BETAS}},
            "wgan-gp": {"set": {"loss": {"name": "wgan-gp"}},
                        "space": {"loss.gp_lambda": {"type": "float", "low": 0.01, "high": 10.0, "log": True}}},
        }},
    }
    return {"name": "tiny_budget", "base": TINY, "seeds": [0, 1], "search": edited(search, change)}


def test_a_budget_spec_is_one_plain_search_per_loss_and_sampler():
    spec = parse_spec(budget_spec(**{"budget.samplers": [{"name": "random", "seed": 0}, {"name": "tpe", "seed": 0}]}))
    plan = arms(spec, parse(spec))
    assert [(a.loss, a.sampler) for a in plan] == [("minimax", "random"), ("minimax", "tpe"), ("wgan-gp", "random"),
                                                   ("wgan-gp", "tpe")]
    assert plan[0].spec.base["loss"] == {"name": "minimax"} and plan[2].spec.base["loss"] == {"name": "wgan-gp"}
    assert list(plan[0].search.space) == ["optimizer.lr", "optimizer.betas"]
    assert list(plan[2].search.space) == ["optimizer.lr", "loss.gp_lambda"]
    assert plan[0].search.sampler.seed != plan[2].search.sampler.seed  # each loss its own random stream
    assert all(a.search.budget is None for a in plan) and plan[0].study_name("s") == "s.minimax.random"


@pytest.mark.parametrize("change, where", [
    ({"pruner": {"name": "median"}}, "search.pruner"),
    ({"sampler": {"name": "random"}}, "search.sampler"),
    ({"budget.samplers": [{"name": "tpe"}]}, "search.budget.samplers"),
    ({"budget.losses.minimax.space": {}}, "search.budget.losses"),
    ({"budget.losses.minimax.space": {"optimizer.lr": {"type": "float", "low": 0.1, "high": 1.0}}},
     "search.budget.losses.minimax.space.optimizer.lr"),
    ({"budget.losses.wgan-gp.space": {"critic.batchnorm": {"type": "categorical", "choices": [False, True]}}},
     "search.budget.losses.wgan-gp"),
    ({"budget.threshold": None}, "search.budget.threshold"),
])
def test_a_bad_budget_spec_is_a_one_line_error_naming_the_field(tmp_path, capsys, change, where):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(budget_spec(**change)))
    with pytest.raises(SpecError) as err:
        load(path)
    assert err.value.path == where
    assert tune.main([str(path), "--results-dir", str(tmp_path / "results")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and where in message and not (tmp_path / "results").exists()


def test_the_shipped_budget_presets_load():
    for name in ["budget_toy.yaml", "budget_image.yaml", "paper/budget_image.yaml"]:
        spec, search = load(ROOT / "ablations" / name)
        plan = arms(spec, search)
        assert len({a.loss for a in plan}) >= 3 and len({len(a.search.space) for a in plan}) == 1
        assert search.n_trials >= 24 and len(spec.seeds) >= 2 and search.pruner.name == "none"


# ------------------------------------------------------------------------------------ end to end


def test_random_sampling_draws_the_same_trials_after_a_killed_trial_is_re_queued():
    def objective(trial):
        return trial.suggest_float("x", 0, 1) + trial.suggest_int("n", 1, 5)

    straight = optuna.create_study(sampler=tune.TrialSeededRandomSampler(3))
    straight.optimize(objective, n_trials=4)
    broken = optuna.create_study(sampler=tune.TrialSeededRandomSampler(3))
    broken.optimize(objective, n_trials=2)

    def killed(trial):
        objective(trial)
        raise tune.TrialFailed("killed")

    broken.optimize(killed, n_trials=1, catch=(tune.TrialFailed,))
    optuna.storages.RetryHeartbeatStaleTrialCallback()(broken, broken.trials[-1])  # what bench.tune's storage does
    broken.sampler = tune.TrialSeededRandomSampler(3)  # a new process
    broken.optimize(objective, n_trials=2)
    done = [t.params for t in broken.trials if t.state == TrialState.COMPLETE]
    assert done == [t.params for t in straight.trials] and len({t["x"] for t in done}) == 4


def run_tiny(tmp_path: Path, *args: str) -> int:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "tiny_budget.yaml"
    path.write_text(yaml.safe_dump(budget_spec()))
    return tune.main([str(path), "--results-dir", str(tmp_path / "results"), "--quiet", *args])


def test_an_interrupted_budget_study_resumes_to_the_same_table(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "save_figures", lambda study, out: {})  # Optuna's figures: tests/test_tune.py
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_tiny(whole) == 0
    assert run_tiny(parts, "--n-trials", "1") == 0  # stopped after one trial per loss ...
    assert run_tiny(parts) == 0  # ... then continued
    runs = store.load(whole / "results" / "tiny_budget")["runs"]
    assert len(runs) == 12 and set(runs["ensemble_size"]) == {2}  # a trial's 2 seeds train stacked
    assert set(runs["optuna_study"]) == {"tiny_budget.minimax.random", "tiny_budget.wgan-gp.random"}
    tables = [section.table(Study.load(d / "results" / "tiny_budget")) for d in (whole, parts)]
    assert len(tables[0]) == 2 * 2 * 3  # losses x estimators x n
    pd.testing.assert_frame_equal(tables[0].drop(columns="seconds"), tables[1].drop(columns="seconds"))
    assert set(tables[0]["direction"]) == {"maximize"} and set(tables[0]["seeds"]) == {2}

    paths = Study.load(whole / "results" / "tiny_budget")
    sections, files = build(paths.path)
    assert [s.key for s in sections] == ["budget_vs_best"]
    text = files["md"].read_text()
    assert "At 3 trials the expected best modes_captured is" in text and "mean of 2 training seeds" in text
    pd.testing.assert_frame_equal(pd.read_parquet(paths.path / "report" / "data" / "budget_vs_best.parquet"), tables[0])
    assert len(pd.read_csv(paths.path / "report" / "data" / "budget_vs_best.csv")) == len(tables[0])


# ----------------------------------------------------------------------------------- report section


def synthetic_study(tmp_path: Path, scores: dict[str, list[float | None]], metric_higher: bool = True) -> Study:
    """A stored budget study with made-up trial scores (None: the trial diverged), 2 seeds per trial."""
    raw = budget_spec()
    if not metric_higher:
        raw["search"]["objective"] = {"metric": "mode_kl"}
    spec = parse_spec(raw)
    study_dir = tmp_path / "results" / raw["name"]
    for arm in arms(spec, parse(spec)):
        for trial, score in enumerate(scores[arm.loss]):
            values = {p: param.probes()[trial % len(param.probes())] for p, param in arm.search.space.items()}
            values["optimizer.lr"] = 1e-4 * (1 + trial)
            config = trial_config(arm.spec, values)
            for seed in spec.seeds:
                status = "ok" if score is not None else "diverged"
                final = {"modes_captured": score, "mode_kl": score} if score is not None else {}
                result = RunResult(status, 10, "2026-01-01T00:00:00+00:00", 4.0, 4.0, final=final, ensemble_size=2,
                                   diverged_at=5 if score is None else None)
                store.write_cell(study_dir, Cell(spec.name, config, seed, values), result, PROV,
                                 extra={"trial": trial, "optuna_study": arm.study_name(spec.name)})
    store.write_merged(study_dir)
    (study_dir / "spec.yaml").write_text(yaml.safe_dump(raw))
    return Study.load(study_dir)


def test_the_answer_claims_only_what_the_bootstrap_supports(tmp_path):
    study = synthetic_study(tmp_path, {"minimax": [1.0, 2.0, 3.0, 2.0, 1.0, 3.0, 2.0, 1.0],
                                       "wgan-gp": [20.0, 21.0, 22.0, 20.0, 21.0, 22.0, 20.0, 21.0]})
    data = section.table(study)
    text = section.answer(study, data)
    assert "wgan-gp beats minimax" in text and "do not separate" not in text
    at8 = data[(data["n"] == 8) & (data["estimator"] == "with_replacement")].set_index("loss")
    assert f"wgan-gp {at8.loc['wgan-gp', 'expected_best']:.3g} [{at8.loc['wgan-gp', 'lo']:.3g}" in text

    close = synthetic_study(tmp_path / "close", {"minimax": [5.0, 9.0, 4.0, 8.0, 6.0, 7.0, 5.0, 9.0],
                                             "wgan-gp": [6.0, 8.0, 5.0, 9.0, 4.0, 7.0, 6.0, 8.0]})
    assert "do not separate them" in section.answer(close, section.table(close))


def test_curves_that_change_order_are_reported_crossing(tmp_path):
    # minimax: mostly poor but sometimes excellent; wgan-gp: always middling. One trial: wgan-gp is better in
    # expectation; with enough trials minimax's excellent ones win.
    minimax = [0.0] * 6 + [25.0, 25.0]
    study = synthetic_study(tmp_path, {"minimax": minimax, "wgan-gp": [10.0] * 8})
    data = section.table(study)
    curve = data[(data["estimator"] == "with_replacement") & (data["loss"] == "minimax")]["expected_best"].to_numpy()
    first = int(np.argmax(curve > 10.0)) + 1  # brute force: the first n at which minimax leads
    assert f"minimax and wgan-gp cross at n = {first}" in section.answer(study, data)
    assert "No two point curves cross" in section._crossings(data[(data["loss"] == "wgan-gp")
                                                                  & (data["estimator"] == "with_replacement")])


def test_diverged_trials_count_as_the_worst_score_and_do_not_train(tmp_path):
    study = synthetic_study(tmp_path, {"minimax": [None, 3.0, 1.0, None], "wgan-gp": [5.0, 2.0, 4.0, 6.0]},
                            metric_higher=False)  # mode_kl: lower is better
    data = section.table(study)
    assert set(data["direction"]) == {"minimize"} and set(data["metric"]) == {"mode_kl"}
    one = data[(data["n"] == 1) & (data["estimator"] == "with_replacement")].set_index("loss")["expected_best"]
    assert one["minimax"] == pytest.approx(np.mean([6.0, 3.0, 1.0, 6.0]))  # the study's worst: 6.0
    robust = section.robustness(study).set_index("loss")
    assert robust.loc["minimax", ["n_ok", "n", "diverged_or_failed"]].tolist() == [1, 4, 2]  # only 1.0 < 2
    assert robust.loc["wgan-gp", "n_ok"] == 0 and 0 <= robust.loc["wgan-gp", "lo"] <= robust.loc["wgan-gp", "hi"] <= 1
    imp = section.importance(study)
    assert set(imp["loss"]) == {"minimax", "wgan-gp"} and np.allclose(imp.groupby("loss")["importance"].sum(), 1)
