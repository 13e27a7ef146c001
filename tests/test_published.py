"""bench/published.py: our rows beside the published ones, only for configs that follow the paper's protocol."""

import json

import pandas as pd
import pytest

from bench.published import SETUPS, match, published_table, rows
from bench.spec import load
from tests.conftest import REPO


def stored(spec: str, results: dict[str, list[tuple[str, float, float]]]) -> pd.DataFrame:
    """runs.parquet as the store writes it, for the cells of ``spec``: per method label, (status, modes,
    hq_fraction) of its seeds in order."""
    out, seen = [], {}
    for cell in load(REPO / spec)[1]:
        label = match(cell.config)[1]
        i = seen[label] = seen.get(label, -1) + 1
        status, modes, hq = results[label][i]
        out.append({"config_id": cell.config_id, "config_json": json.dumps(cell.config), "status": status,
                    "modes_captured": modes, "hq_fraction": hq, "git_sha": "0123456789abcdef"})
    return pd.DataFrame(out)


def test_our_rows_are_mean_and_standard_error_beside_the_published_ones():
    runs = stored("ablations/pacgan_grid.yaml", {
        "GAN": [("ok", 20, 0.90), ("ok", 22, 0.92), ("ok", 24, 0.94), ("diverged", None, None), ("ok", 18, 0.88)],
        "PacGAN4": [("ok", 25, 0.95)] * 5,
    })
    ((setup, table),) = rows(runs)
    assert setup.name == "PacGAN grid"
    assert [(r["row"], r["method"]) for r in table] == [
        ("published", "GAN"), ("ganbench", "GAN"), ("published", "PacGAN4"), ("ganbench", "PacGAN4")]
    published, ours = table[0], table[1]
    assert (published["modes"], published["hq"], published["trials"]) == ("17.3 ± 0.8", "94.8 ± 0.7", "10")
    # modes 20, 22, 24, 18: mean 21, std 2.58, standard error 1.29; HQ 91 %, standard error 1.29 points
    assert (ours["modes"], ours["hq"], ours["trials"]) == ("21.0 ± 1.3", "91.0 ± 1.3", "4/5 ok")
    assert ours["training"] == "1,000 of 400,000 steps" and "git 0123456" in ours["source"]
    assert table[3]["modes"] == "25.0 ± 0.0"
    text = published_table(runs)
    assert "ablations/paper/pacgan_grid.yaml" in text and "maxout" in text  # the protocol is in the table
    assert text.count("| published |") == 2 and "Lin et al. 2018) Table 1" in text


def test_a_config_off_the_protocol_gets_no_published_row():
    runs = stored("ablations/veegan_grid.yaml", {"GAN": [("ok", 5, 0.1)] * 5, "WGAN-GP": [("ok", 20, 0.3)] * 5})
    assert [setup.name for setup, _ in rows(runs)] == ["VEEGAN grid"]
    changed = json.loads(runs["config_json"].iloc[0])
    changed["optimizer"]["generator_lr"] = 2e-3  # one setting off the protocol
    assert match(changed) is None
    off = runs.assign(config_json=json.dumps(changed), config_id="other")
    assert published_table(off) is None
    quickstart = load(REPO / "ablations" / "quickstart.yaml")[1]
    assert all(match(cell.config) is None for cell in quickstart)


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_every_published_method_is_a_config_of_its_preset(setup):
    labels = {match(cell.config)[1] for cell in load(REPO / setup.spec)[1]}
    assert labels == {p.method for p in setup.published} == {name for name, _ in setup.methods}
