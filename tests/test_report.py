"""bench.report and the figures of reports/: each figure's data must be what it claims (right cells, right
metric, seed intervals), checked against numbers computed here from synthetic studies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench import report as report_cli
from reports import FIGURES, Study, build
from tests.synthetic_study import make_cell, store_cell, write_spec

ITERS = list(range(100, 1001, 100))
LOSSES = {"wgan": {"name": "wgan", "clip_value": 0.1}, "wgan-gp": {"name": "wgan-gp"},
          "nonsaturating": {"name": "nonsaturating"}}
MODES = {"wgan": [18.0, 20.0, 25.0], "wgan-gp": [22.0, 23.0, 24.0], "nonsaturating": [10.0, 15.0, 11.0]}
SECONDS_PER_ITER = {"wgan": 0.02, "wgan-gp": 0.05, "nonsaturating": 0.01}


def t_interval(values):
    v = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean() - half, v.mean() + half


def bootstrap_interval(values):
    """The percentile bootstrap of the mean (bench/stats.py's policy for bounded metrics such as modes and W1)."""
    v = np.asarray(values, float)
    ci = stats.bootstrap((v,), np.mean, n_resamples=9999, method="percentile", rng=np.random.default_rng(0))
    lo, hi = ci.confidence_interval
    assert v.min() <= lo <= v.mean() <= hi <= v.max()
    return lo, hi


def w1_curve(seed: int) -> list[float]:
    return [1.0 / (1 + i / 200) + 0.01 * seed for i in ITERS]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Three losses x three seeds, plus a diverged fourth seed of wgan whose numbers must never show up."""
    study_dir = tmp_path_factory.mktemp("results") / "toy"
    write_spec(study_dir, "toy")
    rng = np.random.default_rng(0)
    for name, loss in LOSSES.items():
        for seed in range(4):
            if seed == 3 and name != "wgan":
                continue
            cell = make_cell("toy", {"loss": loss}, seed)
            w1 = w1_curve(seed)
            modes = np.linspace(5, MODES[name][seed] if seed < 3 else 999.0, len(ITERS))
            estimate = "js_estimate" if name == "nonsaturating" else "w_estimate"
            est = [-w for w in w1] if name == "nonsaturating" else [0.5 * w + 0.1 for w in w1]  # JS moves against
            curves = []
            for k, it in enumerate(ITERS):
                t = SECONDS_PER_ITER[name] * it + 0.1 * seed
                curves += [(it, t, "w1_exact", w1[k]), (it, t, "modes_captured", float(modes[k])),
                           (it, t, estimate, est[k]), (it, t, "critic_loss", -est[k])]
            final = {"w1_exact": w1[-1], "modes_captured": float(modes[-1]), estimate: est[-1], "critic_loss": 0.0}
            store_cell(study_dir, cell, final=final, curves=curves, status="diverged" if seed == 3 else "ok",
                       samples=rng.normal(size=(300, 2)).astype(np.float32), train_s=curves[-1][1])
    return study_dir


@pytest.fixture(scope="module")
def toy_report(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("toy_report")
    sections, paths = build(toy, out)
    return {s.key: s for s in sections}, paths, out


def test_picks_the_figures_that_fit_the_data(toy_report):
    sections, paths, out = toy_report
    assert set(sections) == {"toy_summary", "wgan_fig3_4_estimate_vs_quality", "wgan_figs5_7_samples",
                             "wgangp_fig3_quality_vs_time"}  # no surfaces/weights, no architecture sweep
    for key, s in sections.items():
        assert [f.name for f in s.files] == [f"{key}.png", f"{key}.svg"]
        assert all(f.stat().st_size > 1000 for f in s.files)
        assert (out / "data" / f"{key}.csv").exists()


def test_toy_summary_is_mean_and_bootstrap_interval_of_the_ok_seeds(toy_report):
    data = toy_report[0]["toy_summary"].data
    assert set(data["metric"]) == {"modes_captured", "w1_exact"}  # quality metrics, critics' estimates left out
    for name in LOSSES:
        row = data[(data["config"] == f"loss={name}") & (data["metric"] == "modes_captured")].iloc[0]
        assert row["n"] == 3 and row["seeds"] == [0, 1, 2]  # the diverged seed 3 (999 modes) is left out
        assert row["center"] == pytest.approx(np.mean(MODES[name]))
        assert (row["lo"], row["hi"]) == pytest.approx(bootstrap_interval(MODES[name]))
        assert row["interval"] == "bootstrap"
    assert "left out: 1 diverged cell(s) of loss=wgan" in toy_report[0]["toy_summary"].notes


def test_toy_summary_shows_the_seeds_that_did_not_train_as_a_result(toy_report):
    data = toy_report[0]["toy_summary"].data.drop_duplicates("config").set_index("config")
    assert (data.loc["loss=wgan", "n_ok"], data.loc["loss=wgan", "n_seeds"]) == (3, 4)
    assert (data.loc["loss=wgan-gp", "n_ok"], data.loc["loss=wgan-gp", "n_seeds"]) == (3, 3)
    lo, hi = data.loc["loss=wgan", ["ok_lo", "ok_hi"]]
    assert 0 < lo < 0.75 < hi < 1  # Wilson: 3 of 4 is no proof of a 100 % success rate


def test_fig3_4_correlates_each_runs_estimate_with_quality(toy_report):
    corr = toy_report[0]["wgan_fig3_4_estimate_vs_quality"].data
    assert len(corr) == 10 and set(corr["quality"]) == {"w1_exact"}  # every run with curves, diverged included
    wgan = corr[corr["config"] == "loss=wgan"]
    assert set(wgan["estimate"]) == {"w_estimate"} and set(wgan["seed"]) == {0, 1, 2, 3}
    assert wgan["pearson_r"].to_numpy() == pytest.approx(1.0)  # the estimate is 0.5 W1 + 0.1
    assert wgan["tracks_quality"].to_numpy() == pytest.approx(1.0)  # W1 is lower-is-better: same direction
    gan = corr[corr["config"] == "loss=nonsaturating"]
    assert set(gan["estimate"]) == {"js_estimate"}
    assert gan["spearman_rho"].to_numpy() == pytest.approx(-1.0)
    assert gan["tracks_quality"].to_numpy() == pytest.approx(-1.0)
    assert (gan["points"] == len(ITERS)).all()


def test_wgangp_fig3_aggregates_quality_and_training_clock_per_step(toy_report):
    s = toy_report[0]["wgangp_fig3_quality_vs_time"]
    data = s.data
    row = data[(data["metric"] == "w1_exact") & (data["config"] == "loss=wgan-gp")
               & (data["generator_iter"] == 500)].iloc[0]
    values = [w1_curve(seed)[4] for seed in range(3)]
    assert row["n"] == 3 and row["center"] == pytest.approx(np.mean(values))
    assert (row["lo"], row["hi"]) == pytest.approx(bootstrap_interval(values))
    assert row["train_s"] == pytest.approx(np.mean([0.05 * 500 + 0.1 * seed for seed in range(3)]))
    assert set(s.shown["generator_iter"]) == {1000}  # the printed table: each config's last evaluation


def test_wgangp_fig3_times_only_cells_trained_alone_and_says_how(tmp_path):
    study_dir = tmp_path / "timed"
    write_spec(study_dir, "timed")
    for name, stacked in (("wgan", False), ("wgan-gp", True)):
        for seed in range(3):
            curves = [(it, SECONDS_PER_ITER[name] * it, "w1_exact", w1_curve(seed)[k]) for k, it in enumerate(ITERS)]
            store_cell(study_dir, make_cell("timed", {"loss": LOSSES[name]}, seed), final={"w1_exact": curves[-1][3]},
                       curves=curves, train_s=curves[-1][1], ensemble_size=3 if stacked else 1)
    s = FIGURES.get("wgangp_fig3_quality_vs_time")(Study.load(study_dir), tmp_path / "out")
    by_config = s.data.groupby("config", observed=True)["train_s"]
    assert by_config.count()["loss=wgan"] == len(ITERS) and by_config.count()["loss=wgan-gp"] == 0
    assert "Timed per cell" in s.description and "trained alone" in s.description
    assert any("no wall-clock line for loss=wgan-gp" in note for note in s.notes)


def test_toy_samples_panel_per_config_from_the_lowest_ok_seed(toy, toy_report):
    data = toy_report[0]["wgan_figs5_7_samples"].data
    runs = Study.load(toy).runs
    assert len(data) == 3
    for _, row in data.iterrows():
        cell = runs[runs["cell_id"] == row["cell_id"]].iloc[0]
        assert cell["seed"] == 0 and cell["status"] == "ok" and row["shown"] == 300
        assert row["modes_captured"] == cell["modes_captured"]


def test_report_files_are_self_contained(toy_report):
    _, paths, out = toy_report
    md, page = paths["md"].read_text(), paths["html"].read_text()
    for title in ["Toy summary", "WGAN Figs. 3-4", "WGAN-GP Fig. 3", "WGAN Figs. 5-7"]:
        assert f"## {title}" in md
    assert "**Seeds.** 0, 1, 2" in md and "synthetic test study" in md and "| loss=wgan-gp" in md
    assert page.count("data:image/png;base64,") == 4 and 'src="toy' not in page


# ------------------------------------------------------------------------------------ Figs. 5-7 (images)


def test_image_sample_grids(tmp_path):
    study_dir = tmp_path / "imgs"
    write_spec(study_dir, "imgs")
    cells = {}
    for loss in ["nonsaturating", "wgan-gp"]:
        for bn in [True, False]:
            for seed in [1, 0]:
                cell = make_cell("imgs", {"loss.name": loss, "generator.batchnorm": bn}, seed)
                level = (0.5 if loss == "wgan-gp" else -0.5) + 0.1 * seed
                images = np.full((80, 1, 6, 6), level, dtype=np.float32)
                store_cell(study_dir, cell, final={"w1_exact": level}, samples=images)
                cells[(loss, bn, seed)] = cell.cell_id
    s = FIGURES.get("wgan_figs5_7_samples")(Study.load(study_dir), tmp_path / "out")
    assert len(s.data) == 4 and (s.data["shown"] == 64).all()
    for _, row in s.data.iterrows():
        loss, bn = row["column"].split("=")[1], row["row"] == "generator.batchnorm=True"
        assert row["cell_id"] == cells[(loss, bn, 0)]  # the lowest seed of that (loss x architecture) config


# ---------------------------------------------------------------------------- WGAN-GP Figs. 1a and 1b


def test_fig1a_uses_each_configs_last_surface(tmp_path):
    study_dir = tmp_path / "fig1a"
    write_spec(study_dir, "fig1a")
    axis = np.linspace(-3, 3, 128, dtype=np.float32)
    gy, gx = np.meshgrid(axis, axis, indexing="ij")
    for dataset in ["8gaussians", "swissroll"]:
        for loss in [{"name": "wgan", "clip_value": 0.01}, {"name": "wgan-gp"}]:
            cell = make_cell("fig1a", {"dataset.name": dataset, "loss": loss, "generator.fixed": True}, 0)
            slope = 0.01 if loss["name"] == "wgan" else 1.0  # D(x, y) = slope * x at the last step
            arts = {"critic_surface@100": np.stack([gx, gy, 0 * gx]),
                    "critic_surface@200": np.stack([gx, gy, slope * gx]),
                    "critic_surface_real@200": np.zeros((10, 2), np.float32)}
            store_cell(study_dir, cell, final={"w_estimate": slope}, artifacts=arts,
                       samples=np.zeros((50, 2), np.float32))
    study = Study.load(study_dir)
    assert {e.name for e in FIGURES if e.meta["applies"](study)} == {"wgangp_fig1a_value_surfaces"}
    s = FIGURES.get("wgangp_fig1a_value_surfaces")(study, tmp_path / "out")
    assert len(s.data) == 4 and set(s.data["generator_iter"]) == {200}
    assert set(s.data["column"]) == {"dataset=8gaussians", "dataset=swissroll"}
    gp = s.data[s.data["row"].str.contains("wgan-gp")]
    clip = s.data[~s.data["row"].str.contains("wgan-gp")]
    assert gp["surface_max"].to_numpy() == pytest.approx(3.0)
    assert gp["grid_grad_norm_median"].to_numpy() == pytest.approx(1.0, rel=1e-4)
    assert clip["grid_grad_norm_median"].to_numpy() == pytest.approx(0.01, rel=1e-4)


def test_fig1b_layer_norms_and_weight_histograms(tmp_path):
    study_dir = tmp_path / "fig1b"
    write_spec(study_dir, "fig1b")
    configs = {"c=0.01": {"name": "wgan", "clip_value": 0.01}, "gp": {"name": "wgan-gp"}}
    expected = {}
    for key, loss in configs.items():
        for seed in range(3):
            cell = make_cell("fig1b", {"loss": loss, "critic.depth": 5}, seed)
            # clipping: norms fall 10x per layer; GP: about 1 everywhere. Earlier step: decoy values.
            norms = [10.0 ** (-layer + 0.1 * seed) if key != "gp" else 10.0 ** (0.05 * seed) for layer in range(5)]
            expected[(key, seed)] = np.log10(norms)
            curves = [(it, 1.0, f"critic_grad_norm.layer_{layer:02d}", 1e6 if it == 100 else norms[layer])
                      for it in (100, 200) for layer in range(5)]
            w = np.full(1000, 0.0, np.float32)
            if key != "gp":
                w[:700] = np.where(np.arange(700) % 2, 0.01, -0.01)  # 70% piled at +-c
                w[700:] = np.linspace(-0.005, 0.005, 300)
            else:
                w[:] = np.random.default_rng(seed).normal(0, 0.05, 1000)
            store_cell(study_dir, cell, final={"w1_exact": 0.1}, curves=curves,
                       artifacts={"critic_weights@100": np.zeros(5, np.float32), "critic_weights@200": w})
    s = FIGURES.get("wgangp_fig1b_gradient_norms_and_weights")(Study.load(study_dir), tmp_path / "out")
    norms = s.data
    assert len(norms) == 2 * 5
    for key in configs:
        label = "loss=wgan-gp" if key == "gp" else "loss=wgan"  # clip_value separates nothing more: not an axis
        for layer in range(5):
            row = norms[(norms["config"] == label) & (norms["layer"] == layer)].iloc[0]
            values = [expected[(key, seed)][layer] for seed in range(3)]
            assert row["center"] == pytest.approx(np.mean(values))
            assert (row["lo"], row["hi"]) == pytest.approx(t_interval(values)) and row["zero_norms"] == 0
    weights = s.tables["Critic weights"].set_index("config")
    assert weights.loc["loss=wgan", "share_at_clip"] == pytest.approx(0.7)
    assert weights.loc["loss=wgan", "n_weights"] == 1000  # the last step's array
    assert math.isnan(weights.loc["loss=wgan-gp", "share_at_clip"])


# -------------------------------------------------------------------- feature spaces, architecture sweep


def test_wgangp_fig3_never_mixes_feature_spaces(tmp_path):
    study_dir = tmp_path / "spaces"
    write_spec(study_dir, "spaces")
    for loss, space, value in [("nonsaturating", "space-a", 1.0), ("wgan-gp", "space-b", 100.0)]:
        for seed in range(2):
            cell = make_cell("spaces", {"loss.name": loss}, seed)
            curves = [(it, float(it), "w1_exact", value + seed) for it in (100, 200)]
            store_cell(study_dir, cell, final={"w1_exact": value + seed}, curves=curves,
                       labels={"feature_space": space})
    s = FIGURES.get("wgangp_fig3_quality_vs_time")(Study.load(study_dir), tmp_path / "out")
    assert set(s.data["metric"]) == {"w1_exact [space-a]", "w1_exact [space-b]"}
    a = s.data[s.data["metric"] == "w1_exact [space-a]"].dropna(subset=["center"])
    assert set(a["config"]) == {"loss=nonsaturating"} and a["center"].to_numpy() == pytest.approx(1.5)
    summary = FIGURES.get("toy_summary")(Study.load(study_dir), tmp_path / "out").data.dropna(subset=["center"])
    assert sorted(zip(summary["config"], summary["feature_space"], summary["center"])) == [
        ("loss=nonsaturating", "space-a", 1.5), ("loss=wgan-gp", "space-b", 100.5)]


def test_architecture_robustness_counts(tmp_path):
    study_dir = tmp_path / "arch"
    write_spec(study_dir, "arch")
    score = {}
    for loss in ["nonsaturating", "wgan-gp"]:
        for g in [2, 4]:
            for c in [2, 4]:
                modes = (5.0 * g + c) if loss == "wgan-gp" else (3.0 * g + c)
                status = "diverged" if (loss, g, c) == ("nonsaturating", 4, 4) else "ok"
                cell = make_cell("arch", {"loss.name": loss, "generator.depth": g, "critic.depth": c}, 0)
                store_cell(study_dir, cell, final={"modes_captured": modes}, status=status)
                score[(loss, g, c)] = modes if status == "ok" else math.nan
    study = Study.load(study_dir)
    assert FIGURES.entry("wgangp_table2_architecture_robustness").meta["applies"](study)
    s = FIGURES.get("wgangp_table2_architecture_robustness")(study, tmp_path / "out")
    finite = [v for v in score.values() if not math.isnan(v)]
    expected_thresholds = sorted({float(f"{q:.3g}") for q in np.quantile(finite, [0.1, 0.25, 0.5, 0.75, 0.9])})
    assert s.data["threshold"].tolist() == expected_thresholds
    for _, row in s.data.iterrows():
        t = row["threshold"]
        ok = {k: v >= t for k, v in score.items()}  # NaN (diverged) never passes
        gan = [ok[("nonsaturating", g, c)] for g in (2, 4) for c in (2, 4)]
        gp = [ok[("wgan-gp", g, c)] for g in (2, 4) for c in (2, 4)]
        assert row["loss=nonsaturating passes"] == sum(gan) and row["loss=wgan-gp passes"] == sum(gp)
        assert row["both"] == sum(a and b for a, b in zip(gan, gp))
        assert row["only loss=wgan-gp"] == sum(b and not a for a, b in zip(gan, gp))
        assert row["neither"] == sum(not a and not b for a, b in zip(gan, gp))
        assert row["architectures"] == 4


# --------------------------------------------------------------------------------------------- the CLI


def test_cli_writes_the_report(tmp_path, capsys):
    study_dir = tmp_path / "small"
    for seed in range(2):
        store_cell(study_dir, make_cell("small", {}, seed), final={"modes_captured": 20.0 + seed})
    assert report_cli.main([str(study_dir)]) == 0  # default --out: <study>/report
    assert (study_dir / "report" / "report.html").exists() and (study_dir / "report" / "toy_summary.svg").exists()
    assert "report:" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert report_cli.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing" in err and "\n" not in err
    (tmp_path / "empty" / "cells").mkdir(parents=True)
    assert report_cli.main([str(tmp_path / "empty")]) == 2
    assert "no stored cells" in capsys.readouterr().err
