"""The scheduler's ensembles: which cells train together, and that doing so changes no result."""

import pytest

import bench.train
from bench import store
from bench.scheduler import ensembles, run_group, run_local
from bench.spec import Cell, resolve_config
from tests.conftest import tiny_base


def cells(seeds, study="s", **overrides):
    config = resolve_config(tiny_base(**overrides))
    return [Cell(study, config, seed, {}) for seed in seeds]


def ids(groups):
    return sorted(sorted(c.seed for c in g) for g in groups)


def test_seeds_of_one_config_train_together_up_to_the_limit():
    wgan, gp = cells(range(5), loss={"name": "wgan"}), cells(range(3))
    groups = ensembles(wgan + gp, workers=1, max_members=4)
    assert sorted(map(len, groups)) == [1, 3, 4]
    assert all(len({c.config_id for c in g}) == 1 for g in groups)  # WGAN and WGAN-GP never train together
    assert ids(ensembles(gp, workers=1, max_members=1)) == [[0], [1], [2]]


def test_losses_of_one_structure_train_together_in_config_order():
    gan = cells([1, 0], loss={"name": "minimax"}) + cells([0], loss={"name": "nonsaturating"})
    gp = (cells([0], loss={"name": "wgan-gp", "gp_lambda": 10.0})
          + cells([0], loss={"name": "wgan-gp", "gp_lambda": 1.0}))
    groups = ensembles(gan + gp, workers=1, max_members=8)
    assert sorted([(c.config["loss"]["name"], c.seed) for c in g] for g in groups) == [
        [("minimax", 0), ("minimax", 1), ("nonsaturating", 0)], [("wgan-gp", 0)], [("wgan-gp", 0)]]


def test_ensembles_are_split_so_that_every_worker_has_work():
    groups = ensembles(cells(range(4)), workers=2, max_members=8)
    assert ids(groups) == [[0, 1], [2, 3]]
    assert len(ensembles(cells(range(3)), workers=8, max_members=8)) == 3


def test_the_costliest_groups_start_first():
    gan, wgan = cells(range(2), loss={"name": "minimax"}), cells(range(2), loss={"name": "wgan"})
    gp = cells(range(2), loss={"name": "wgan-gp", "gp_lambda": 10.0})
    groups = ensembles(gan + wgan + gp, workers=1, max_members=8)
    assert [g[0].config["loss"]["name"] for g in groups] == ["wgan-gp", "wgan", "minimax"]


def test_a_stack_with_more_than_a_workers_share_of_the_work_is_split():
    """Two workers, a WGAN-GP stack costlier than the GANs' by its critic steps and penalty: trained whole, it
    would keep one worker busy long after the other ran out of work."""
    gan, gp = cells(range(4), loss={"name": "minimax"}), cells(range(4))
    groups = ensembles(gan + gp, workers=2, max_members=8)
    assert sorted((g[0].config["loss"]["name"], [c.seed for c in g]) for g in groups) == [
        ("minimax", [0, 1, 2, 3]), ("wgan-gp", [0, 1]), ("wgan-gp", [2, 3])]
    assert ids(ensembles(gan + gp, workers=1, max_members=8)) == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_cells_with_checkpoints_or_without_a_stacked_model_train_alone():
    checkpointed = cells(range(2), train={"generator_iters": 20, "batch_size": 32, "checkpoint_every": 10})
    dcgan = cells(range(2), dataset={"name": "digits", "image_size": 16},
                  generator={"arch": "dcgan", "ngf": 8}, critic={"arch": "dcgan", "ndf": 8, "norm": "layer"},
                  eval={"every": 10, "n_samples": 64, "metrics": []})
    assert sorted(map(len, ensembles(checkpointed + dcgan, workers=1, max_members=8))) == [1, 1, 1, 1]


def test_a_failing_ensemble_is_retrained_cell_by_cell(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("ensemble broke")

    monkeypatch.setattr(bench.train, "train_ensemble", broken)
    results = run_group(cells([0, 1]), "cpu", [None, None])
    assert [r.status for r in results] == ["ok", "ok"] and [r.ensemble_size for r in results] == [1, 1]


@pytest.mark.slow
def test_a_study_stores_bitwise_the_same_results_however_it_is_scheduled(tmp_path):
    # Alone on one worker (whose process has every core's threads) against stacked on two: the cells' own
    # train.threads decide their arithmetic, the workers and stacks do not.
    matrix = cells([0, 1, 2], loss={"name": "wgan"}) + cells([0, 1, 2])
    run_local(matrix, tmp_path / "alone", workers=1, ensemble=1, progress=False)
    report = run_local(matrix, tmp_path / "stacked", workers=2, ensemble=8, progress=False)
    assert sorted(map(sorted, report.groups)) == sorted(sorted(c.cell_id for c in g) for g in ensembles(matrix, 2, 8))
    alone, stacked = store.load(tmp_path / "alone"), store.load(tmp_path / "stacked")
    runs = {name: r["runs"].set_index("cell_id").sort_index() for name, r in (("alone", alone), ("stacked", stacked))}
    assert list(runs["alone"].index) == list(runs["stacked"].index) == sorted(c.cell_id for c in matrix)
    size = {cell_id: len(group) for group in report.groups for cell_id in group}
    assert set(runs["alone"]["ensemble_size"]) == {1} and max(size.values()) > 1
    assert runs["stacked"]["ensemble_size"].to_dict() == size
    assert (runs["stacked"]["status"] == "ok").all()
    for metric in ["w1_exact", "modes_captured", "hq_fraction", "critic_loss", "generator_loss"]:
        assert runs["stacked"][metric].tolist() == runs["alone"][metric].tolist(), metric
    key = ["cell_id", "generator_iter", "metric"]
    curves = [r["curves"].sort_values(key)[[*key, "value"]].reset_index(drop=True) for r in (alone, stacked)]
    assert curves[0].equals(curves[1])
