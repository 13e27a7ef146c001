"""Image data sets (bench/data/images.py): data root, splits, streams, clear errors for missing data."""

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import DATASETS, DataNotFound, check_available
from bench.data.images import DATA_ENV, data_root, read_idx
from bench.spec import SpecError, expand, parse_spec
from tests.conftest import MNIST_T10K, require_data


def build(block: dict, seed: int = 0):
    entry = DATASETS.entry(block["name"])
    return entry.obj(entry.params.model_validate({k: v for k, v in block.items() if k != "name"}), seed)


def test_digits_offline_set():
    data = build({"name": "digits", "image_size": 16})
    x = data.sample(10)
    assert x.shape == (10, 1, 16, 16) == (10, *data.shape)
    assert x.min() >= -1 and x.max() <= 1 and x.min() < 0 < x.max()


def test_streams_are_seeded_and_reference_is_shared_by_seeds():
    a, b, c = build({"name": "digits"}, 0), build({"name": "digits"}, 0), build({"name": "digits"}, 1)
    torch.testing.assert_close(a.sample(8), b.sample(8))
    assert not torch.equal(a.sample(8), c.sample(8))
    torch.testing.assert_close(a.reference(50), c.reference(50))  # same held-out set for every seed
    state = a.state_dict()
    nxt = a.sample(4)
    a.load_state_dict(state)
    torch.testing.assert_close(a.sample(4), nxt)


def test_reference_is_held_out_from_training():
    data = build({"name": "digits", "image_size": 8})
    train = {bytes(x.numpy()) for x in data.train.images}
    held = [bytes(x.numpy()) for x in data.held_out.images]
    assert len(data.train) + len(data.held_out) == 1797
    assert sum(h in train for h in held) < 10  # only exact duplicates present in the raw set itself
    with pytest.raises(ValueError, match="held-out images"):
        data.reference(len(data.held_out) + 1)


def test_mnist_t10k_from_the_genuine_idx_files(mnist_files):
    data = build(MNIST_T10K)
    assert (len(data.train), len(data.held_out)) == (3000, 2000)  # the other 5,000 train the classifier
    assert data.sample(3).shape == (3, 1, 32, 32)
    labels = read_idx(next((data_root()[0] / "MNIST" / "raw").glob("t10k-labels-idx1-ubyte*")))
    assert labels.shape == (10000,) and set(labels.tolist()) == set(range(10))


def test_stacked_mnist_stacks_three_different_digits(mnist_files):
    x = build({**MNIST_T10K, "name": "stacked_mnist"}).sample(16)
    assert x.shape == (16, 3, 32, 32)
    assert not torch.equal(x[:, 0], x[:, 1])


def test_missing_data_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    for block, where in [
        (MNIST_T10K, tmp_path / "MNIST" / "raw"),
        ({"name": "mnist", "image_size": 32, "source": "full"}, tmp_path / "MNIST" / "raw"),
        ({"name": "cifar10", "image_size": 32}, tmp_path / "cifar-10-batches-py"),
        ({"name": "lsun", "image_size": 64, "category": "bedroom", "held_out": 10}, tmp_path / "lsun"),
    ]:
        with pytest.raises(DataNotFound) as err:
            check_available(block)
        message = str(err.value)
        assert str(where) in message and DATA_ENV in message and "\n" not in message
        with pytest.raises(DataNotFound):  # building it fails the same way; no other data set is used
            build(block)


def test_a_test_whose_data_is_absent_skips_saying_why(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=f"mnist data not on this machine: .*{tmp_path}"):
        require_data(MNIST_T10K)


def test_data_root_comes_from_env_first(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root()[0] == tmp_path.resolve()
    monkeypatch.delenv(DATA_ENV)
    assert "default" in data_root()[1]


def test_data_root_is_not_part_of_cell_id():
    spec = {"name": "s", "base": {"dataset": {"name": "digits"}, "loss": {"name": "wgan"}}}
    one, two = expand(parse_spec(spec)), expand(parse_spec({**spec, "data_root": "/somewhere/else"}))
    assert [c.cell_id for c in one] == [c.cell_id for c in two]
    with pytest.raises(SpecError, match="data_root"):
        parse_spec({**spec, "data_root": 3})


def test_imagefolder(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    rng = np.random.default_rng(0)
    for i in range(20):
        folder = tmp_path / "faces" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    data = build({"name": "imagefolder", "path": "faces", "image_size": 16, "held_out_fraction": 0.25})
    assert (len(data.train), len(data.held_out)) == (15, 5)
    assert data.sample(4).shape == (4, 3, 16, 16)
    assert data.reference(5).shape == (5, 3, 16, 16)
