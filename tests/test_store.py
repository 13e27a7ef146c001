import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench import store
from bench.spec import expand, parse_spec
from bench.train import RunResult
from tests.conftest import tiny_base

PROV = {"torch_version": "x", "bench_version": "y", "python_version": "z", "numpy_version": "n", "git_sha": "abc",
        "host": "h"}


def cells():
    return expand(parse_spec({"name": "s", "base": tiny_base(), "seeds": [0, 1],
                              "matrix": {"loss.name": ["wgan", "wgan-gp"]}}))


def result(status="ok", w=0.5):
    return RunResult(status, 20, "2026-01-01T00:00:00+00:00", 1.0, 0.5,
                     curves=[(10, 0.2, "w_estimate", w * 2), (20, 0.5, "w_estimate", w)],
                     final={"w_estimate": w}, samples=np.zeros((4, 2), np.float32),
                     snapshots={10: np.ones((2, 2), np.float32)})


def test_cells_round_trip_into_runs_and_curves(tmp_path):
    for i, cell in enumerate(cells()):
        store.write_cell(tmp_path, cell, result(w=i), PROV)
    tables = store.load(tmp_path)
    runs, curves = tables["runs"], tables["curves"]
    assert len(runs) == 4 and set(runs["cell_id"]) == {c.cell_id for c in cells()}
    for col in ["study", "cell_id", "seed", "status", "error", "started_at", "wall_s", "generator_iters", "loss.name",
                "optimizer.name", "generator.batchnorm", "w_estimate", "feature_space", "torch_version",
                "bench_version", "git_sha", "host", "config_json"]:
        assert col in runs.columns, col
    assert list(curves.columns) == store.CURVE_COLUMNS and len(curves) == 8
    one = curves[curves["cell_id"] == cells()[1].cell_id].sort_values("generator_iter")
    assert one["value"].tolist() == [2.0, 1.0]
    npz = np.load(tmp_path / "samples" / f"{cells()[0].cell_id}.npz")
    assert npz["samples"].shape == (4, 2) and "iter_00000010" in npz


def test_writes_leave_no_temp_files_and_merged_tables_match(tmp_path):
    for cell in cells():
        store.write_cell(tmp_path, cell, result(), PROV)
    merged = store.write_merged(tmp_path)
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert pd.read_parquet(tmp_path / "runs.parquet").shape == merged["runs"].shape
    assert store.load(tmp_path / "runs.parquet")["curves"].shape == merged["curves"].shape


def test_truncated_cell_file_is_reported_and_counts_as_not_done(tmp_path):
    good, bad = cells()[:2]
    store.write_cell(tmp_path, good, result(), PROV)
    path = store.write_cell(tmp_path, bad, result(), PROV)
    path.write_bytes(path.read_bytes()[:50])
    readable, problems = store.scan(tmp_path)
    assert readable == [store.cell_path(tmp_path, good.cell_id)] and len(problems) == 1
    assert store.done_cells(tmp_path) == {good.cell_id}
    assert len(store.load(tmp_path)["runs"]) == 1


def test_damage_anywhere_in_a_cell_file_is_detected(tmp_path):
    """A flipped byte in a data page (page checksum) or in the footer that names the columns (content digest)
    makes the cell not done; parquet alone reads a renamed column back without complaint."""
    cell = cells()[0]
    path = store.write_cell(tmp_path, cell, result(), PROV)
    intact = path.read_bytes()
    footer_start = len(intact) - 8 - int.from_bytes(intact[-8:-4], "little")
    name_at = intact.index(b"generator_iters", footer_start)
    data_at = pq.ParquetFile(path).metadata.row_group(0).column(0).data_page_offset
    data_end = data_at + pq.ParquetFile(path).metadata.row_group(0).column(0).total_compressed_size
    for offset in [name_at, data_end - 1]:
        damaged = bytearray(intact)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        assert store.scan(tmp_path) == ([], [store.scan(tmp_path)[1][0]])
        assert store.done_cells(tmp_path) == set()
    path.write_bytes(intact)
    assert store.scan(tmp_path) == ([path], [])
