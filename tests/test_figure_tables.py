"""Each figure's ``table()`` on synthetic studies: tidy columns, one row per what the figure shows, and
values equal to what the stored runs hold (computed here from the numbers written, not by the reports);
each ``draw()`` plots from the tables alone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench import claims
from reports import Study, convergence, toy, wgan, wgangp
from reports.stats import median_filter
from tests.synthetic_study import make_cell, store_cell, write_spec

ITERS = [100, 200, 300, 400, 500, 600]
LOSSES = {"wgan": {"name": "wgan", "clip_value": 0.1}, "wgan-gp": {"name": "wgan-gp"}}
LAYERS = 3
STATS = ["n", "center", "lo", "hi", "aggregate", "interval", "seeds"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Two losses x three seeds with random curves, samples, surfaces and weights, plus a diverged fourth
    seed of wgan. Returns the study directory and every number written, by (loss, seed)."""
    study_dir = tmp_path_factory.mktemp("tables") / "tables"
    write_spec(study_dir, "tables")
    rng = np.random.default_rng(7)
    axis = np.linspace(-3, 3, 16, dtype=np.float32)
    gy, gx = np.meshgrid(axis, axis, indexing="ij")
    written = {}
    for loss_name, loss in LOSSES.items():
        for seed in range(4 if loss_name == "wgan" else 3):
            w1 = rng.uniform(0.1, 1.0, len(ITERS))
            modes = rng.uniform(5, 25, len(ITERS)).round()
            estimate = rng.normal(0, 1, len(ITERS))
            norms = 10.0 ** rng.normal(0, 1, LAYERS)
            train_s = np.cumsum(rng.uniform(1, 2, len(ITERS)))
            curves = []
            for k, it in enumerate(ITERS):
                curves += [(it, train_s[k], "w1_exact", w1[k]), (it, train_s[k], "modes_captured", modes[k]),
                           (it, train_s[k], "w_estimate", estimate[k])]
                curves += [(it, train_s[k], f"critic_grad_norm.layer_{j:02d}", norms[j] if k == len(ITERS) - 1
                            else 1e9) for j in range(LAYERS)]  # only the last evaluation counts
            surface = np.stack([gx, gy, rng.normal(0, 1) * gx + rng.normal(0, 1) * gy ** 2])
            weights = rng.normal(0, 0.05, 500).astype(np.float32)
            samples = rng.normal(size=(200 + 10 * seed, 2)).astype(np.float32)
            arts = {"critic_surface@300": np.zeros_like(surface), "critic_surface@600": surface,
                    "critic_weights@600": weights}
            status = "diverged" if seed == 3 else "ok"
            final = {"w1_exact": w1[-1], "modes_captured": modes[-1], "w_estimate": estimate[-1]}
            store_cell(study_dir, make_cell("tables", {"loss": loss}, seed), final=final, curves=curves,
                       status=status, samples=samples, artifacts=arts, train_s=float(train_s[-1]))
            written[(loss_name, seed)] = {"w1": w1, "modes": modes, "estimate": estimate, "norms": norms,
                                          "train_s": train_s, "surface": surface, "weights": weights,
                                          "samples": samples, "status": status}
    return study_dir, written


@pytest.fixture(scope="module")
def study(stored):
    return Study.load(stored[0])


def label(loss_name: str) -> str:
    return f"loss={loss_name}"


def ok_seeds(written, loss_name: str) -> list[int]:
    return [s for (n, s), v in written.items() if n == loss_name and v["status"] == "ok"]


# ------------------------------------------------------------------------------------------ toy summary


def test_toy_values_are_the_stored_final_metrics_of_the_ok_cells(study, stored):
    written = stored[1]
    points = toy.values(study)
    assert {"config_id", "seed", "metric", "value", "config", "loss.name"} <= set(points.columns)
    assert len(points) == 6 * 2  # six ok cells x (w1_exact, modes_captured); the diverged seed left out
    for (loss_name, seed), v in written.items():
        mine = points[(points["config"] == label(loss_name)) & (points["seed"] == seed)].set_index("metric")
        if v["status"] != "ok":
            assert mine.empty
            continue
        assert mine.loc["w1_exact", "value"] == pytest.approx(v["w1"][-1])
        assert mine.loc["modes_captured", "value"] == v["modes"][-1]


def test_toy_table_is_one_row_per_config_and_metric_with_seed_statistics(study, stored):
    written = stored[1]
    data = toy.table(study)
    assert list(data.columns) == ["config", "metric", *STATS, "n_seeds", "n_ok", "ok_lo", "ok_hi"]
    assert list(zip(data["config"].astype(str), data["metric"].astype(str), strict=True)) == [
        (label(n), m) for n in LOSSES for m in study.quality_columns()]
    for loss_name in LOSSES:
        row = data[(data["config"] == label(loss_name)) & (data["metric"] == "w1_exact")].iloc[0]
        seeds = ok_seeds(written, loss_name)
        assert row["center"] == pytest.approx(np.mean([written[(loss_name, s)]["w1"][-1] for s in seeds]))
        assert row["seeds"] == seeds and row["n_ok"] == 3
        assert row["n_seeds"] == (4 if loss_name == "wgan" else 3)


# ---------------------------------------------------------------------------------------- WGAN Figs. 3-4


def test_fig3_4_curves_hold_each_runs_filtered_estimate_and_quality(study, stored):
    written = stored[1]
    curves = wgan.fig3_4_curves(study)
    assert set(curves["curve"]) == {"estimate", "quality"}
    run = curves[(curves["config"] == label("wgan")) & (curves["seed"] == 3)]  # diverged runs are drawn
    est = run[run["curve"] == "estimate"].sort_values("generator_iter")
    raw = written[("wgan", 3)]["estimate"]
    assert est["value"].to_numpy() == pytest.approx(raw)
    assert est["filtered"].to_numpy() == pytest.approx(median_filter(raw, wgan.filter_size(len(raw))))
    quality = run[run["curve"] == "quality"]
    assert set(quality["metric"]) == {"w1_exact"} and quality["value"].to_numpy() == pytest.approx(
        written[("wgan", 3)]["w1"])


def test_fig3_4_table_correlates_the_stored_curves_of_every_run(study, stored):
    written = stored[1]
    data = wgan.fig3_4_table(study)
    assert list(data.columns) == ["config", "seed", "cell_id", "status", "estimate", "quality", "points",
                                  "pearson_r", "spearman_rho", "tracks_quality"]
    assert len(data) == len(written) and list(data["config"]) == [label("wgan")] * 4 + [label("wgan-gp")] * 3
    for _, row in data.iterrows():
        v = written[(row["config"].removeprefix("loss="), row["seed"])]
        assert row["status"] == v["status"] and row["points"] == len(ITERS)
        assert (row["estimate"], row["quality"]) == ("w_estimate", "w1_exact")
        assert row["pearson_r"] == pytest.approx(stats.pearsonr(v["estimate"], v["w1"]).statistic)
        rho = stats.spearmanr(v["estimate"], v["w1"]).statistic
        assert row["spearman_rho"] == pytest.approx(rho) and row["tracks_quality"] == pytest.approx(rho)
    modes = wgan.fig3_4_table(study, quality="modes_captured")  # higher is better: the sign turns
    assert (modes["tracks_quality"] == -modes["spearman_rho"]).all()


def test_the_tracking_claim_reads_the_figure_table(study):
    data = wgan.fig3_4_table(study, quality="w1_exact")
    ok = data[(data["status"] == "ok") & (data["config"] == label("wgan"))]
    rho = claims.tracking(study, claims.CLIP, "w1_exact")
    assert rho.to_dict() == pytest.approx(dict(zip(ok["seed"], ok["tracks_quality"], strict=True)))


# ---------------------------------------------------------------------------------------- WGAN Figs. 5-7


def test_figs5_7_table_is_each_configs_lowest_ok_seed(study, stored):
    written = stored[1]
    data = wgan.figs5_7_table(study, n_points=205)
    assert list(data.columns) == ["row", "column", "config", "cell_id", "seed", "shown", "w1_exact", "modes_captured"]
    assert list(data["config"]) == [label("wgan"), label("wgan-gp")] and (data["seed"] == 0).all()
    assert (data["shown"] == 200).all()  # seed 0 stored 200 points, fewer than n_points
    for _, row in data.iterrows():
        assert row["modes_captured"] == written[(row["config"].removeprefix("loss="), 0)]["modes"][-1]
        assert row["cell_id"] == study.ok[(study.ok["loss.name"] == row["config"].removeprefix("loss="))
                                          & (study.ok["seed"] == 0)]["cell_id"].iloc[0]
    assert (wgan.figs5_7_table(study, n_points=50)["shown"] == 50).all()


# ------------------------------------------------------------------------------------ WGAN-GP Figs. 1a, 1b


def test_fig1a_table_measures_each_configs_last_surface(study, stored):
    written = stored[1]
    data = wgangp.fig1a_table(study)
    assert list(data.columns) == wgangp.FIG1A_COLUMNS and len(data) == 2
    assert (data["generator_iter"] == 600).all() and (data["seed"] == 0).all()
    for _, row in data.iterrows():
        _, _, value = written[(row["row"].removeprefix("loss="), 0)]["surface"]
        assert (row["surface_min"], row["surface_max"]) == pytest.approx((value.min(), value.max()))
        assert row["w_estimate"] == pytest.approx(written[(row["row"].removeprefix("loss="), 0)]["estimate"][-1])


def test_fig1b_table_is_the_seed_statistics_of_each_layers_log_norm(study, stored):
    written = stored[1]
    points = wgangp.layer_norms(study)
    assert len(points) == 6 * LAYERS and (points["value"] < 1e9).all()  # the last evaluation of each ok cell
    data = wgangp.fig1b_table(study)
    assert list(data.columns) == ["config", "layer", *STATS, "zero_norms"]
    assert len(data) == 2 * LAYERS
    for _, row in data.iterrows():
        loss_name = str(row["config"]).removeprefix("loss=")
        logs = [np.log10(written[(loss_name, s)]["norms"][row["layer"]]) for s in ok_seeds(written, loss_name)]
        assert row["center"] == pytest.approx(np.mean(logs)) and row["zero_norms"] == 0


def test_fig1b_weights_describe_the_stored_weights(study, stored):
    written = stored[1]
    weights = wgangp.fig1b_weights(study).set_index("config")
    assert list(weights.columns) == wgangp.WEIGHT_COLUMNS[1:]
    for loss_name in LOSSES:
        w = written[(loss_name, 0)]["weights"]
        row = weights.loc[label(loss_name)]
        assert (row["n_weights"], row["std"], row["max"]) == pytest.approx((len(w), w.std(), w.max()))
    assert weights.loc[label("wgan"), "share_at_clip"] == pytest.approx(np.mean(np.abs(written[("wgan", 0)]["weights"])
                                                                               >= 0.099))
    assert math.isnan(weights.loc[label("wgan-gp"), "share_at_clip"])


# ------------------------------------------------------------------------------ WGAN-GP Fig. 3, Table 2


def test_fig3_table_is_quality_and_training_clock_per_step(study, stored):
    written = stored[1]
    data = wgangp.fig3_table(study)
    assert list(data.columns) == ["config", "metric", "generator_iter", *STATS, "train_s"]
    assert len(data) == 2 * 2 * len(ITERS)  # (modes, W1) x configs x evaluations
    for _, row in data[data["metric"] == "w1_exact"].iterrows():
        loss_name, k = str(row["config"]).removeprefix("loss="), ITERS.index(row["generator_iter"])
        seeds = ok_seeds(written, loss_name)
        assert row["center"] == pytest.approx(np.mean([written[(loss_name, s)]["w1"][k] for s in seeds]))
        assert row["train_s"] == pytest.approx(np.mean([written[(loss_name, s)]["train_s"][k] for s in seeds]))


@pytest.fixture(scope="module")
def architectures(tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("arch") / "arch"
    write_spec(study_dir, "arch")
    modes = {}
    for loss in ["nonsaturating", "wgan-gp"]:
        for depth in [2, 3, 4]:
            for seed in range(2):
                modes[(loss, depth, seed)] = float(3 * depth + (6 if loss == "wgan-gp" else 0) + seed)
                store_cell(study_dir, make_cell("arch", {"loss.name": loss, "generator.depth": depth}, seed),
                           final={"modes_captured": modes[(loss, depth, seed)]})
    return Study.load(study_dir), modes


def test_table2_scores_and_counts(architectures):
    study, modes = architectures
    scores = wgangp.table2_scores(study)
    assert list(scores.columns) == ["architecture", "method", *STATS] and len(scores) == 6
    for _, row in scores.iterrows():
        loss, depth = row["method"].removeprefix("loss="), int(row["architecture"].removeprefix("generator.depth="))
        assert row["center"] == pytest.approx(np.mean([modes[(loss, depth, s)] for s in range(2)]))
    data = wgangp.table2_table(study)
    assert list(data.columns) == ["threshold", "architectures", "loss=nonsaturating passes", "loss=wgan-gp passes",
                                  "only loss=nonsaturating", "only loss=wgan-gp", "both", "neither"]
    for _, row in data.iterrows():
        gan = [np.mean([modes[("nonsaturating", d, s)] for s in range(2)]) >= row["threshold"] for d in (2, 3, 4)]
        gp = [np.mean([modes[("wgan-gp", d, s)] for s in range(2)]) >= row["threshold"] for d in (2, 3, 4)]
        assert (row["loss=nonsaturating passes"], row["loss=wgan-gp passes"]) == (sum(gan), sum(gp))
        assert row["both"] == sum(a and b for a, b in zip(gan, gp, strict=True)) and row["architectures"] == 3


# ---------------------------------------------------------------------------------------- claims curves


def test_convergence_table_is_the_claims_flattening_of_each_curve(tmp_path):
    study_dir = tmp_path / "claims_gaussians25"
    write_spec(study_dir, "claims_gaussians25")
    for loss in ["wgan-gp", "minimax"]:
        for seed in range(3):
            curve = [(i * 100, float(i), "modes_captured", float(min(i * 3, 24) + seed)) for i in range(1, 13)]
            store_cell(study_dir, make_cell("claims_gaussians25", {"loss.name": loss}, seed),
                       final={"modes_captured": curve[-1][3]}, curves=curve)
    study = Study.load(study_dir)
    data = convergence.table(study)
    assert list(data.columns) == ["config", "metric", "evaluations", "from_iter", "scale", "previous", "last",
                                  "flattened"]
    assert set(data["metric"]) == {"modes_captured"} and len(data) == 2
    expected_last = np.mean([24.0 + s for s in range(3)])  # the last quarter: 24 modes + seed
    assert data["last"].to_numpy() == pytest.approx(expected_last) and data["flattened"].all()
    assert (data["from_iter"] == 1000).all()


# ---------------------------------------------------------------------------------- draw() plots tables


def test_draw_functions_plot_the_tables_without_the_study(study, tmp_path):
    """The draw functions take the tables (and, for pictures, the arrays) only: no study, no statistics."""
    points = toy.values(study)
    files = toy.draw(points, toy.trained(study), study.panels(study.quality_columns()),
                     sorted(points["config"].unique()), "t", tmp_path)
    curves = wgan.fig3_4_curves(study)
    files += wgan.fig3_4_draw(curves, wgan.fig3_4_table(study, curves=curves), [label(n) for n in LOSSES],
                              "w1_exact", "t", tmp_path)
    pts = wgangp.fig3_points(study)
    files += wgangp.fig3_draw(pts, wgangp.fig3_table(study, pts), study.panels(study.quality_curve_metrics()),
                              [label(n) for n in LOSSES], "timing", "t", tmp_path)
    table = pd.DataFrame({"threshold": [1.0, 2.0], "architectures": [2, 2], "a passes": [2, 1]})
    files += wgangp.table2_draw(table, "modes_captured", "t", tmp_path)
    assert [f.name for f in files if f.suffix == ".png"] == [
        "toy_summary.png", "wgan_fig3_4_estimate_vs_quality.png", "wgangp_fig3_quality_vs_time.png",
        "wgangp_table2_architecture_robustness.png"]
    assert all(f.stat().st_size > 1000 for f in files)


def test_the_toy_figure_is_the_same_file_whatever_numpys_global_state(study, tmp_path):
    """seaborn jitters the strip plot's dots with numpy's global generator: the figure seeds it for the draw,
    so two reports of one study are the same bytes, and the caller's global state is left as it was."""
    points = toy.values(study)
    args = (points, toy.trained(study), study.panels(study.quality_columns()), sorted(points["config"].unique()))
    files = []
    for k, seed in enumerate([1, 2]):
        np.random.seed(seed)
        state = np.random.get_state()[1].copy()
        files.append(toy.draw(*args, "t", tmp_path / str(k)))
        assert (np.random.get_state()[1] == state).all()
    pngs = [[f.read_bytes() for f in fs if f.suffix == ".png"] for fs in files]
    assert pngs[0] and pngs[0] == pngs[1]
