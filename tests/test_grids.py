"""PNG sample grids (bench/grids.py) and where the store writes them (bench/store.py)."""

import numpy as np
from PIL import Image

from bench import store
from bench.grids import image_grid, is_image_batch
from bench.spec import Cell
from bench.train import RunResult


def test_grid_layout_and_value_mapping():
    samples = np.full((5, 1, 4, 6), -1.0, dtype=np.float32)
    samples[0] = 1.0
    samples[4] = 5.0  # out of range: clipped
    grid = image_grid(samples, pad=2)
    assert grid.shape == (2 + 2 * (4 + 2), 2 + 3 * (6 + 2), 3) and grid.dtype == np.uint8
    assert (grid[2:6, 2:8] == 255).all()  # first image, white, grey -> RGB
    assert (grid[2:6, 10:16] == 0).all()  # second image, black
    assert (grid[8:12, 10:16] == 255).all()  # fifth image, second row, clipped to white


def test_is_image_batch():
    assert is_image_batch(np.zeros((2, 3, 8, 8))) and is_image_batch(np.zeros((2, 1, 8, 8)))
    assert not is_image_batch(np.zeros((2, 2))) and not is_image_batch(np.zeros((2, 2, 8, 8)))


def test_write_cell_stores_one_png_per_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    snapshots = {10: rng.uniform(-1, 1, (16, 3, 8, 8)), 20: rng.uniform(-1, 1, (16, 3, 8, 8))}
    result = RunResult("ok", 20, "2020-01-01T00:00:00+00:00", 1.0, 1.0, snapshots=snapshots)
    cell = Cell("study", {"dataset": {"name": "digits"}}, 0, {})
    store.write_cell(tmp_path, cell, result, {})
    pngs = sorted((tmp_path / "samples" / cell.cell_id).glob("*.png"))
    assert [p.name for p in pngs] == ["iter_00000010.png", "iter_00000020.png"]
    assert np.asarray(Image.open(pngs[0])).shape == image_grid(snapshots[10]).shape

    toy = RunResult("ok", 20, "2020-01-01T00:00:00+00:00", 1.0, 1.0, snapshots={20: np.zeros((16, 2))})
    toy_cell = Cell("study", {"dataset": {"name": "25gaussians"}}, 0, {})
    store.write_cell(tmp_path, toy_cell, toy, {})
    assert not (tmp_path / "samples" / toy_cell.cell_id).exists()
