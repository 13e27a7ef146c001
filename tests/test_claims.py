"""bench/claims.py: every verdict is reachable from stored results, intervals stay in their metric's range,
and the command line finds a claim's cells, writes claims.parquet and refuses bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from bench import claims
from bench.claims import Evidence, quadratic_r2, verdict
from bench.spec import load
from reports.study import Study
from tests.synthetic_study import make_cell, store_cell, write_spec

GAUSSIANS = claims.ROOT / claims.CLAIMS.entry("gaussians25_gan_fewer").meta["spec"]


def gaussians_study(tmp_path, gp_modes, gan_modes, results="results"):
    """The claim spec's own cells (same cell ids), with made-up final modes per seed."""
    spec, cells = load(GAUSSIANS)
    study_dir = tmp_path / results / spec.name
    write_spec(study_dir, spec.name)
    modes = {"wgan-gp": gp_modes, "minimax": gan_modes}
    for cell in cells:
        values = modes[cell.config["loss"]["name"]]
        if cell.seed < len(values):
            final = float(values[cell.seed])
            curves = [(i * 250, i * 1.0, "modes_captured", final * min(1.0, i / 4)) for i in range(1, 9)]
            store_cell(study_dir, cell, final={"modes_captured": final, "mode_samples": 2500.0}, curves=curves)
    return study_dir


def test_verdicts_follow_the_side_of_the_threshold_the_interval_lies_on():
    assert verdict(Evidence(2.0, 1.0, 3.0, 5, "bootstrap")) == "supported"
    assert verdict(Evidence(-2.0, -3.0, -1.0, 5, "bootstrap")) == "contradicted"
    assert verdict(Evidence(0.5, -1.0, 2.0, 5, "bootstrap")) == "inconclusive"
    assert verdict(Evidence(5.0, math.nan, math.nan, 2, "none (n < 3)")) == "inconclusive"  # too few seeds
    assert verdict(None) == "not run"
    assert verdict(Evidence(24.6, 24.0, 25.0, 5, "bootstrap"), threshold=24.0, inclusive=True) == "supported"
    assert verdict(Evidence(24.6, 24.0, 25.0, 5, "bootstrap"), threshold=24.0) == "inconclusive"


@pytest.mark.parametrize("gp, gan, expected", [
    ([25, 24, 25, 25, 24], [12, 15, 9, 14, 11], "supported"),
    ([10, 12, 9, 11, 13], [20, 22, 21, 23, 19], "contradicted"),
    ([25, 10, 24, 12, 20], [22, 11, 23, 14, 18], "inconclusive"),
    ([25, 24], [10, 12], "inconclusive"),  # 2 seeds: no interval at all
])
def test_the_mode_claim_reaches_each_verdict_from_stored_cells(tmp_path, gp, gan, expected):
    study = Study.load(gaussians_study(tmp_path, gp, gan))
    row = claims.evaluate("gaussians25_gan_fewer", study)
    assert row["verdict"] == expected
    assert row["effect"] == pytest.approx(np.mean(gp) - np.mean(gan))
    assert row["n_seeds"] == len(gp)
    if len(gp) < 3:
        assert math.isnan(row["lo"]) and math.isnan(row["hi"]) and row["interval"] == "none (n < 3)"
    else:  # a difference of two means of counts in [0, 25]: inside [-25, 25] and around the effect
        assert -25 <= row["lo"] <= row["effect"] <= row["hi"] <= 25


def test_at_least_24_modes_uses_an_interval_inside_the_seeds_range(tmp_path):
    study = Study.load(gaussians_study(tmp_path, [25, 25, 24, 25, 25], [3, 4, 5, 6, 7]))
    row = claims.evaluate("gaussians25_wgangp_modes", study)
    assert row["verdict"] == "supported" and 24 <= row["lo"] <= row["hi"] <= 25
    study = Study.load(gaussians_study(tmp_path / "b", [25, 22, 25, 21, 25], [3, 4, 5, 6, 7]))
    assert claims.evaluate("gaussians25_wgangp_modes", study)["verdict"] == "inconclusive"


def test_command_line_finds_the_spec_cells_writes_the_table_and_says_not_run(tmp_path, capsys):
    gaussians_study(tmp_path, [25, 24, 25, 25, 24], [12, 15, 9, 14, 11])
    out = tmp_path / "claims.parquet"
    code = claims.main([str(tmp_path / "results"), "--only", "gaussians25_gan_fewer", "wgangp_fig1b_clip_explodes",
                        "--out", str(out)])
    assert code == 0
    table = pd.read_parquet(out).set_index("claim_id")
    assert list(table.reset_index().columns[:12]) == ["claim_id", "paper", "where", "statement", "metric", "effect",
                                                      "lo", "hi", "n_seeds", "verdict", "spec", "git_sha"]
    assert table.loc["gaussians25_gan_fewer", "verdict"] == "supported"
    assert table.loc["gaussians25_gan_fewer", "git_sha"] == "synthetic"
    assert table.loc["wgangp_fig1b_clip_explodes", "verdict"] == "not run"
    assert "1 supported" in capsys.readouterr().out


def test_cells_of_another_config_under_the_study_name_are_not_evidence(tmp_path):
    spec, _ = load(GAUSSIANS)
    study_dir = tmp_path / spec.name
    write_spec(study_dir, spec.name)
    for seed in range(5):  # same study name, but not the spec's configs (width 16)
        store_cell(study_dir, make_cell(spec.name, {"loss.name": "wgan-gp"}, seed), final={"modes_captured": 25.0})
    assert claims.evaluate_all([tmp_path], ["gaussians25_wgangp_modes"])["verdict"].item() == "not run"


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert claims.main([str(tmp_path / "missing")]) == 2
    assert claims.main([str(tmp_path), "--only", "no_such_claim"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "missing: not a directory" in err[0] and "no_such_claim" in err[1]


def test_rate_claim_uses_newcombe_inside_minus_one_one(tmp_path):
    study_dir = tmp_path / "t2"
    write_spec(study_dir, "t2")
    for depth in (2, 4):
        for seed in range(3):
            for loss, modes, status in (("wgan-gp", 25.0, "ok"), ("nonsaturating", 8.0, "ok" if seed else "diverged")):
                cell = make_cell("t2", {"loss.name": loss, "generator.depth": depth}, seed)
                store_cell(study_dir, cell, final={"modes_captured": modes}, status=status)
    row = claims.evaluate("wgangp_table2_architectures", Study.load(study_dir))
    assert row["effect"] == 1.0 and row["interval"] == "newcombe" and -1 <= row["lo"] < 1 and row["hi"] <= 1
    assert row["verdict"] == "supported" and "6/6 vs GAN 0/6" in row["detail"]


def _table2_study(tmp_path, name, deep_gp_modes):
    """GP at generator depth 2 succeeds from the 4th evaluation on; GP at depth 4 follows ``deep_gp_modes``;
    the GAN never succeeds."""
    study_dir = tmp_path / name
    write_spec(study_dir, name)
    shallow = [float(min(6 * i, 24)) for i in range(1, 13)]
    for depth, gp_modes in ((2, shallow), (4, deep_gp_modes)):
        for seed in range(3):
            for loss, modes in (("wgan-gp", gp_modes), ("nonsaturating", [10.0] * 12)):
                curves = [(i * 100, float(i), "modes_captured", m) for i, m in enumerate(modes, 1)]
                store_cell(study_dir, make_cell(name, {"loss.name": loss, "generator.depth": depth}, seed),
                           final={"modes_captured": modes[-1]}, curves=curves)
    return Study.load(study_dir)


def test_a_pooled_claim_has_reached_its_regime_when_its_effect_stops_moving(tmp_path):
    # one architecture's mode count still rises (never reaching success): the per-config rule says it has
    # not flattened, but the success rates Table 2 compares stopped changing at the 4th evaluation
    study = _table2_study(tmp_path, "settled", [float(i) for i in range(1, 13)])
    effect = claims.effect_curve(study, "wgangp_table2_architectures")
    assert effect.loc[100] == 0.0 and effect.loc[400] == effect.loc[1200] == 0.5
    assert not claims.flattening(study, "modes_captured")["flattened"].all()
    assert claims.evaluate("wgangp_table2_architectures", study)["flattened"] is True
    # the same architecture crossing the success threshold in the last quarter moves the effect: not flattened
    study = _table2_study(tmp_path, "moving", [float(2 * i) for i in range(1, 13)])
    assert claims.effect_curve(study, "wgangp_table2_architectures").loc[1200] == 1.0
    assert claims.evaluate("wgangp_table2_architectures", study)["flattened"] is False


def test_layer_slopes_tell_exploding_from_vanishing_gradients(tmp_path):
    study_dir = tmp_path / "fig1b"
    write_spec(study_dir, "fig1b")
    for clip, per_layer in ((0.1, 0.5), (0.01, -0.4), (0.001, -0.8), (None, 0.0)):
        loss = {"loss": {"name": "wgan", "clip_value": clip}} if clip else {"loss": {"name": "wgan-gp"}}
        for seed in range(4):
            cell = make_cell("fig1b", {**loss, "critic.depth": 6}, seed)
            # layer 0 is the input layer: growth toward the input is per_layer decades per layer
            curves = [(300, 1.0, f"critic_grad_norm.layer_{k:02d}", 10 ** (per_layer * (5 - k) + 0.01 * seed))
                      for k in range(6)]
            store_cell(study_dir, cell, final={"w_estimate": 0.1}, curves=curves)
    study = Study.load(study_dir)
    explodes = claims.evaluate("wgangp_fig1b_clip_explodes", study)
    assert explodes["verdict"] == "supported" and explodes["effect"] == pytest.approx(0.5)
    assert claims.evaluate("wgangp_fig1b_clip_vanishes", study)["effect"] == pytest.approx(0.4)
    level = claims.evaluate("wgangp_fig1b_penalty_level", study)
    assert level["verdict"] == "supported" and level["effect"] == pytest.approx(0.4)


def test_quadratic_fit_separates_a_ramp_from_a_critic_that_follows_modes():
    axis = np.linspace(-3, 3, 64)
    gy, gx = np.meshgrid(axis, axis, indexing="ij")
    ramp = np.stack([gx, gy, 0.3 * gx - 0.1 * gy + 0.02 * gx * gx])
    bumps = sum(np.exp(-((gx - a) ** 2 + (gy - b) ** 2) / 0.1) for a in (-2, 0, 2) for b in (-2, 0, 2))
    assert quadratic_r2(ramp) == pytest.approx(1.0)
    assert quadratic_r2(np.stack([gx, gy, bumps])) < 0.2


def test_flattening_compares_the_last_quarter_with_the_one_before(tmp_path):
    study_dir = tmp_path / "flat"
    write_spec(study_dir, "flat")
    for seed in range(3):
        rising = [(i * 100, float(i), "modes_captured", float(min(i * 5, 25))) for i in range(1, 13)]
        store_cell(study_dir, make_cell("flat", {}, seed), final={"modes_captured": 25.0}, curves=rising)
    assert claims.flattening(Study.load(study_dir), "modes_captured")["flattened"].all()
    study_dir = tmp_path / "rising"
    write_spec(study_dir, "rising")
    for seed in range(3):
        rising = [(i * 100, float(i), "modes_captured", float(2 * i)) for i in range(1, 13)]
        store_cell(study_dir, make_cell("rising", {}, seed), final={"modes_captured": 24.0}, curves=rising)
    assert not claims.flattening(Study.load(study_dir), "modes_captured")["flattened"].any()


def test_the_study_report_opens_with_its_claims_linked_to_their_figure(tmp_path):
    from reports import build

    study_dir = gaussians_study(tmp_path, [25, 24, 25, 25, 24], [12, 15, 9, 14, 11])
    _, paths = build(study_dir)
    md = paths["md"].read_text()
    assert md.index("## Claims") < md.index("## Toy summary")
    claims_part = md[md.index("## Claims"): md.index("## Toy summary")]
    assert "`gaussians25_gan_fewer`" in claims_part and "`gaussians25_wgangp_modes`" in claims_part
    assert claims_part.count("**supported**") == 2
    assert "[Toy summary: quality per ablation axis](#toy-summary-quality-per-ablation-axis)" in claims_part
    assert 'id="toy-summary-quality-per-ablation-axis"' in paths["html"].read_text()
    assert "| yes " in claims_part  # the curves reach their final value at 1000 of 2000 steps: flattened
    assert "![Claims: did the preset reach its regime](claims_convergence.png)" in md


def test_estimate_tracking_is_a_spearman_rho_per_seed_signed_by_the_quality_direction(tmp_path):
    study_dir = tmp_path / "fig3"
    write_spec(study_dir, "fig3")
    rng = np.random.default_rng(0)
    for seed in range(4):
        w1 = [1.0 / (1 + i) + 0.01 * seed for i in range(10)]
        wgan = [(100 * i, 1.0 * i, "w1_exact", w) for i, w in enumerate(w1)]
        wgan += [(100 * i, 1.0 * i, "w_estimate", 0.5 * w + 0.1) for i, w in enumerate(w1)]
        gan = [(100 * i, 1.0 * i, "w1_exact", w) for i, w in enumerate(w1)]
        gan += [(100 * i, 1.0 * i, "js_estimate", v) for i, v in enumerate(rng.uniform(0.6, 0.7, 10))]
        store_cell(study_dir, make_cell("fig3", {"loss": {"name": "wgan", "clip_value": 0.1}}, seed),
                   final={"w1_exact": w1[-1]}, curves=wgan)
        store_cell(study_dir, make_cell("fig3", {"loss.name": "minimax"}, seed), final={"w1_exact": w1[-1]}, curves=gan)
    study = Study.load(study_dir)
    tracks = claims.evaluate("wgan_fig3_estimate_tracks_quality", study)
    assert tracks["effect"] == pytest.approx(1.0) and tracks["verdict"] == "supported"  # falls exactly as W1 falls
    js = claims.evaluate("wgan_fig4_js_does_not_track", study)
    assert js["verdict"] in ("supported", "inconclusive") and 0 < js["effect"] <= 2 and -2 <= js["lo"] <= js["hi"] <= 2


def test_wall_clock_compares_both_methods_at_the_time_the_shortest_run_reached(tmp_path):
    study_dir = tmp_path / "time"
    write_spec(study_dir, "time")
    for seed in range(3):
        for loss, opt, per_s in (({"name": "wgan-gp"}, {"name": "adam"}, 2.0), ({"name": "wgan", "clip_value": 0.1},
                                                                                {"name": "rmsprop"}, 1.0)):
            # 10 evaluations; WGAN-GP is 3x slower per step but gains 2 modes per second against 1
            seconds = [(3.0 if loss["name"] == "wgan-gp" else 1.0) * i for i in range(1, 11)]
            curves = [(100 * i, s, "modes_captured", min(25.0, per_s * s)) for i, s in enumerate(seconds, 1)]
            store_cell(study_dir, make_cell("time", {"loss": loss, "optimizer": opt}, seed),
                       final={"modes_captured": curves[-1][3]}, curves=curves, train_s=seconds[-1])
    study = Study.load(study_dir)
    same_time = claims.evaluate("wgangp_fig3_wall_clock", study)
    assert same_time["effect"] == pytest.approx(2.0 * 10 - 1.0 * 10) and "at 10 s" in same_time["detail"]
    same_iters = claims.evaluate("wgangp_fig3_iterations", study)
    assert same_iters["effect"] == pytest.approx(25.0 - 10.0)


def test_edge_share_sees_weights_piled_at_the_clip_value():
    rng = np.random.default_rng(0)
    clipped = np.clip(rng.normal(0, 0.05, 10_000), -0.01, 0.01)  # most weights end at +-c
    penalized = rng.normal(0, 0.05, 10_000)
    assert claims.edge_share(clipped) > 0.8 and claims.edge_share(penalized) < 0.001


def test_mlp_generator_claim_counts_the_digits_each_loss_covers(tmp_path):
    study_dir = tmp_path / "fig7"
    write_spec(study_dir, "fig7")
    for seed in range(5):
        for loss, digits, share in (("wgan", 9.0 + seed % 2, 0.6), ("nonsaturating", 1.0 + (seed == 0), 0.9)):
            cell = make_cell("fig7", {"loss.name": loss}, seed)
            store_cell(study_dir, cell, final={"digit_classes": digits, "recognisable_fraction": share, "recall": 0.0})
    row = claims.evaluate("wgan_fig7_mlp_generator", Study.load(study_dir))
    assert row["metric"] == "digit_classes" and row["n_seeds"] == 5
    assert row["effect"] == pytest.approx(9.4 - 1.2) and 0 < row["lo"] <= row["effect"] <= row["hi"] <= 10
    assert row["verdict"] == "supported" and "digits WGAN 9.4 (n=5) vs GAN 1.2 (n=5)" in row["detail"]
