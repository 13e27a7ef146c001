"""bench.regress: verdicts per config and metric against a baseline, and the exit codes CI relies on."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench import regress as regress_cli
from bench import store
from reports.regression import RegressError, compare, holm, load_runs, permutation_p
from tests.synthetic_study import make_cell, store_cell

MODES = {"nonsaturating": [14.0, 16.0, 15.0, 13.0, 17.0, 15.0, 14.0, 16.0],
         "wgan-gp": [21.0, 22.0, 23.0, 20.0, 24.0, 22.0, 21.0, 23.0]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("results") / "ci"
    for loss, modes in MODES.items():
        for seed, m in enumerate(modes):
            final = {"modes_captured": m, "hq_fraction": 0.5 + 0.01 * (seed % 3), "w1_exact": 0.2 + 0.01 * (seed % 3)}
            store_cell(study_dir, make_cell("ci", {"loss.name": loss}, seed), final=final)
    store.write_merged(study_dir)
    return study_dir


@pytest.fixture
def runs(run_dir):
    return load_runs(run_dir)


def verdict(cmp, config: str, metric: str) -> str:
    rows = cmp.rows
    return rows[(rows["config"] == config) & (rows["metric"] == metric)]["verdict"].item()


def test_identical_rerun_passes(run_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    shutil.copy(run_dir / "runs.parquet", baseline / "runs.parquet")  # a committed baseline: runs.parquet only
    out = tmp_path / "report.md"
    assert regress_cli.main([str(run_dir), "--baseline", str(baseline), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "**No regression**" in text and out.read_text().strip() == text.strip()
    cmp = compare(load_runs(run_dir), load_runs(baseline))
    assert set(cmp.rows["verdict"]) == {"unchanged"}
    assert set(cmp.rows["metric"]) == {"ok cells", "modes_captured", "hq_fraction", "w1_exact"}


def test_injected_regression_is_flagged(run_dir, runs, tmp_path, capsys):
    better = runs.copy()
    better.loc[better["loss.name"] == "wgan-gp", "modes_captured"] += 5  # the baseline captured more modes
    better.to_parquet(tmp_path / "runs.parquet")
    assert regress_cli.main([str(run_dir), "--baseline", str(tmp_path / "runs.parquet")]) == 1
    text = capsys.readouterr().out
    assert "**REGRESSED**: 1 regression(s) in 1 config(s) (loss=wgan-gp: modes_captured)" in text
    cmp = compare(runs, better)
    assert verdict(cmp, "loss=wgan-gp", "modes_captured") == "regressed"
    row = cmp.rows[(cmp.rows["config"] == "loss=wgan-gp") & (cmp.rows["metric"] == "modes_captured")].iloc[0]
    assert row["delta"] == pytest.approx(-5.0) and row["tolerance"] == pytest.approx(0.1 * 27.0, rel=1e-6)
    # 8 seeds a side, no overlap: 2 of the C(16, 8) splits are as extreme; Holm over the report's 8 tests
    assert row["test"] == "permutation" and row["p"] == pytest.approx(2 / math.comb(16, 8))
    assert row["p_holm"] == pytest.approx(8 * 2 / math.comb(16, 8))
    assert verdict(cmp, "loss=nonsaturating", "modes_captured") == "unchanged"


def test_direction_comes_from_the_catalogue(runs):
    worse_baseline = runs.copy()
    worse_baseline["modes_captured"] -= 5  # higher is better: the run improved
    worse_baseline["w1_exact"] += 0.2  # lower is better: the run improved
    cmp = compare(runs, worse_baseline)
    assert verdict(cmp, "loss=wgan-gp", "modes_captured") == "improved"
    assert verdict(cmp, "loss=wgan-gp", "w1_exact") == "improved"
    assert not cmp.regressed


def test_change_within_seed_noise_is_unchanged(runs):
    noisy = runs.copy()
    gp = noisy["loss.name"] == "wgan-gp"
    noisy.loc[gp, "modes_captured"] = [12.0, 32.0, 25.0, 15.0, 30.0, 20.0, 28.0, 14.0]  # mean 22: a wide spread
    noisy.loc[gp, "modes_captured"] += 2
    cmp = compare(runs, noisy, rel_tol=0.01)
    row = cmp.rows[(cmp.rows["config"] == "loss=wgan-gp") & (cmp.rows["metric"] == "modes_captured")].iloc[0]
    assert abs(row["delta"]) > row["tolerance"] and row["p_holm"] >= 0.01
    assert row["verdict"] == "unchanged" and "seed noise" in row["why"]


def test_a_significant_change_needs_the_holm_adjusted_p():
    """One metric of many at p just under alpha is what chance gives somewhere in a large report: the
    verdict asks the adjusted p."""
    base = pd.DataFrame({"study": "s", "config_id": "c", "seed": range(8), "status": "ok",
                         "loss.name": "wgan-gp", "modes_captured": [20.0, 21, 22, 23, 24, 25, 26, 27]})
    run = base.assign(modes_captured=base["modes_captured"] - 3)
    cmp = compare(run, base, rel_tol=0.01, alpha=0.05)
    row = cmp.rows[cmp.rows["metric"] == "modes_captured"].iloc[0]
    assert row["p"] < 0.05 <= row["p_holm"] and row["verdict"] == "unchanged"  # 2 tests: ok cells, modes


def test_permutation_p_is_exact_and_valid():
    a, b = np.arange(8.0), np.arange(8.0) + 100
    assert permutation_p(a, b) == pytest.approx(2 / math.comb(16, 8))  # every split enumerated
    assert permutation_p(a, a.copy()) == 1.0 and permutation_p(np.zeros(8), np.zeros(8)) == 1.0
    big_a, big_b = np.arange(16.0), np.arange(16.0) + 100  # C(32, 16) splits: random ones, a fixed seed
    assert permutation_p(big_a, big_b) == pytest.approx(1 / 20_001) == permutation_p(big_a, big_b)
    assert permutation_p(a, b, "median") < 0.01
    rng = np.random.default_rng(1)  # two draws of one (skewed) distribution: p <= alpha at most alpha of the time
    ps = np.array([permutation_p(rng.exponential(size=6), rng.exponential(size=6)) for _ in range(400)])
    assert (ps <= 0.05).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 400)
    x, y = rng.normal(size=20), rng.normal(0.8, size=20)  # large samples: close to Welch's t
    assert permutation_p(x, y) == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue, abs=0.01)


def test_holm():
    p = pd.Series([0.01, math.nan, 0.04, 0.03])
    assert holm(p).tolist()[0] == pytest.approx(0.03) and math.isnan(holm(p)[1])
    assert holm(p)[2] == pytest.approx(0.06) and holm(p)[3] == pytest.approx(0.06)  # monotone step-down


def test_single_seed_uses_the_tolerance_alone(runs):
    one = runs[runs["seed"] == 0]
    baseline = one.copy()
    baseline["modes_captured"] += 3  # 17 vs 14 on one seed: beyond 10% of 17
    cmp = compare(one, baseline)
    row = cmp.rows[(cmp.rows["config"] == "loss=nonsaturating") & (cmp.rows["metric"] == "modes_captured")].iloc[0]
    assert row["verdict"] == "regressed" and row["test"].startswith("none")


def test_lost_cells_and_configs_are_regressions(runs):
    run = runs.copy()
    gp = run["loss.name"] == "wgan-gp"
    run.loc[gp & (run["seed"] == 2), "status"] = "diverged"  # chaos may do that on another machine
    assert verdict(compare(run, runs), "loss=wgan-gp", "ok cells") == "unchanged"
    run.loc[gp, "status"] = "diverged"  # every seed: not seed noise
    cmp = compare(run, runs)
    assert verdict(cmp, "loss=wgan-gp", "ok cells") == "regressed"
    assert verdict(cmp, "loss=wgan-gp", "modes_captured") == "regressed"  # no ok seed left: metric missing
    run = runs.copy()
    run.loc[gp & (run["seed"] == 2), "status"] = "failed"  # a crash is code, not chaos
    cmp = compare(run, runs)
    assert verdict(cmp, "loss=wgan-gp", "ok cells") == "regressed" and "1 failed" in cmp.rows["why"].str.cat()
    only_gan = runs[runs["loss.name"] == "nonsaturating"]
    cmp = compare(only_gan, runs)
    assert verdict(cmp, "loss=wgan-gp", "(config)") == "regressed" and cmp.regressed
    cmp = compare(runs, only_gan)  # a config new in the run is reported, not a regression
    assert verdict(cmp, "loss=wgan-gp", "(config)") == "new" and not cmp.regressed


def test_configs_match_on_the_axes_and_other_differences_are_listed(runs):
    run = runs.copy()
    run["train.new_option"] = True  # an option added by newer code
    run["optimizer.lr"] = 2e-3  # a changed default: reported, still compared
    cmp = compare(run, runs)
    assert set(cmp.rows["verdict"]) == {"unchanged"}
    assert any("optimizer.lr" in n for n in cmp.notes["loss=wgan-gp"])


def test_bad_input_exits_2(run_dir, tmp_path, capsys):
    assert regress_cli.main([str(run_dir), "--baseline", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    other = load_runs(run_dir).assign(**{"loss.name": "hinge"})
    other["dataset.name"] = "8gaussians"
    other.to_parquet(tmp_path / "other.parquet")
    assert regress_cli.main([str(run_dir), "--baseline", str(tmp_path / "other.parquet")]) == 2
    assert "no config of the run matches" in capsys.readouterr().err


def test_feature_spaces_are_never_compared(runs):
    lenet = runs.assign(feature_space="lenet-mnist")
    inception = lenet.assign(feature_space="inception-v3-compat", modes_captured=lenet["modes_captured"] + 50)
    with pytest.raises(RegressError, match="feature_space"):  # same configs, other space: nothing in common
        compare(lenet, inception)
    mixed = pd.concat([lenet, inception[inception["loss.name"] == "wgan-gp"]])
    cmp = compare(mixed, lenet)  # the inception rows are a new config, never compared with lenet's
    assert verdict(cmp, "loss=wgan-gp, feature_space=inception-v3-compat", "(config)") == "new"
    assert verdict(cmp, "loss=wgan-gp, feature_space=lenet-mnist", "modes_captured") == "unchanged"
    failed = lenet.copy()
    failed.loc[failed.index[0], ["status", "feature_space", "modes_captured"]] = ["failed", None, None]
    cmp = compare(failed, lenet)  # a failed cell has no feature space: it still counts with its config
    label = cmp.rows["config"].iloc[0]
    assert "feature_space=lenet-mnist" in label and verdict(cmp, label, "ok cells") == "regressed"
