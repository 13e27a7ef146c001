"""bench/summary.py: the end-of-run table says how many seeds each mean covers, how many trained, and what
exact W1 would be for a perfect generator."""

import pandas as pd
import pytest
from rich.console import Console

from bench import store
from bench.spec import SpecError, expand, parse_spec
from bench.summary import by_config, comparison, success_interval, summary_table
from tests.synthetic_study import make_cell, store_cell, write_spec


def study(tmp_path):
    """wgan-gp: 3 seeds that trained; wgan: 2 that trained and 1 that diverged."""
    study_dir = tmp_path / "s"
    write_spec(study_dir, "s")
    for name, statuses in (("wgan-gp", ["ok", "ok", "ok"]), ("wgan", ["ok", "ok", "diverged"])):
        for seed, status in enumerate(statuses):
            final = {"modes_captured": 20.0 + seed, "w1_exact": 0.2, "mode_samples": 2500.0}
            store_cell(study_dir, make_cell("s", {"loss.name": name}, seed), final=final, status=status)
    return store.load(study_dir)["runs"]


def rendered(table) -> str:
    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_every_mean_shows_the_seeds_behind_it_and_the_share_that_trained(tmp_path):
    runs = study(tmp_path)
    agg = by_config(runs).set_index("loss.name")
    assert (agg.loc["wgan", "ok"], agg.loc["wgan", "seeds"], agg.loc["wgan", "modes_captured_n"]) == (2, 3, 2)
    assert agg.loc["wgan", "modes_captured_mean"] == 20.5  # the diverged seed is not averaged in...
    text = rendered(summary_table(runs))
    assert "20.5 (2/3)" in text  # ...and the table says so, with no interval from 2 seeds...
    assert "21 [20, 22] (3/3)" in text  # ...and a bootstrap one inside the seeds' range (20, 21, 22) from 3
    assert "bootstrap" in text and "none with fewer than 3 seeds" in text  # the caption names the statistic
    lo, hi = success_interval(2, 3)
    assert f"2/3 [{lo:.0%}, {hi:.0%}]" in text and "3/3 [44%, 100%]" in text
    assert "modes_captured ↑ @2500" in text  # the protocol's sample count in the header


def test_success_intervals_stay_inside_zero_and_one():
    for n in range(1, 8):
        for k in range(n + 1):
            lo, hi = success_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_exact_w1_is_printed_beside_its_real_vs_real_floor(tmp_path):
    runs = study(tmp_path)
    floor = by_config(runs)["w1_floor"]
    assert floor.nunique() == 1 and 0.06 < floor.iloc[0] < 0.12  # 25 Gaussians, 1,000 points a side
    assert "w1 real-vs-real floor" in rendered(summary_table(runs))


def test_the_comparison_is_a_difference_with_an_interval_only_from_3_seeds_a_side(tmp_path):
    runs = study(tmp_path)  # wgan-gp modes 20, 21, 22; wgan 20, 21 (seed 2 diverged)
    rule = [{"loss.name": "wgan-gp"}, {"loss.name": "wgan"}]
    line = next(line for line in comparison(runs, rule) if "modes_captured" in line)
    assert line.startswith("wgan-gp vs wgan: modes_captured +0.5 (no interval: fewer than 3 seeds a side)")
    assert "21 vs 20.5, 3 vs 2 seeds" in line
    runs = runs[runs["status"] == "ok"].assign(status="ok")
    extra = runs[runs["loss.name"] == "wgan"].iloc[[0]].assign(seed=5, modes_captured=22.0)
    line = next(line for line in comparison(pd.concat([runs, extra]), rule) if "modes_captured" in line)
    lo, hi = (float(v) for v in line.split("[")[1].split("]")[0].split(", "))
    assert -2 <= lo <= 0 <= hi <= 2  # within the range a difference of means of 20..22 can take


def test_a_comparison_that_selects_no_config_is_a_spec_error():
    spec = parse_spec({"name": "s", "base": {"preset": "toy", "dataset": {"name": "25gaussians"},
                                              "loss": {"name": "wgan-gp"}},
                       "matrix": {"loss.name": ["wgan-gp", "minimax"]},
                       "compare": [{"loss.name": "wgan-gp"}, {"loss.name": "hinge"}]})
    with pytest.raises(SpecError, match=r"compare\[1\]: selects no config"):
        expand(spec)
