"""The classifier feature spaces (bench/metrics/features.py) never have seen the images they measure: no image
the classifier trains on is a reference image or a GAN training image of any shipped spec or any source."""

import gzip
import hashlib
from pathlib import Path

import pytest
import torch
from torch import Tensor

from bench.data import DATASETS, DataNotFound, check_available
from bench.data.images import DATA_ENV, MNIST_T10K, MNIST_TRAIN, classifier_arrays, data_root, resize_uint8
from bench.metrics.features import INCEPTION, LENET, LENET_STACKED, feature_space_label
from bench.spec import load

REPO = Path(__file__).resolve().parent.parent
SHIPPED_SPECS = sorted((REPO / "ablations").rglob("*.yaml"))
EVERY_SOURCE = [{"name": "mnist", "source": "full"}, {"name": "mnist", "source": "t10k"},
                {"name": "stacked_mnist", "source": "full"}, {"name": "stacked_mnist", "source": "t10k"},
                {"name": "digits"}]


def build(block: dict, seed: int = 0):
    entry = DATASETS.entry(block["name"])
    return entry.obj(entry.params.model_validate({k: v for k, v in block.items() if k != "name"}), seed)


def resolved(block: dict) -> dict:
    """A data set block with its option defaults filled in, as a spec resolves it."""
    entry = DATASETS.entry(block["name"])
    return {"name": block["name"], **entry.params.model_validate({k: v for k, v in block.items() if k != "name"})
            .model_dump(mode="json")}


def image_hashes(images: Tensor) -> set[str]:
    """sha1 of every single-channel uint8 image in (N, C, H, W); a Stacked-MNIST channel is one MNIST digit."""
    flat = images.reshape(-1, *images.shape[-2:]).contiguous().numpy()
    return {hashlib.sha1(image.tobytes()).hexdigest() for image in flat}


def served_as_uint8(images: Tensor) -> Tensor:
    """Images a data set serves, [-1, 1], back to the uint8 they were made from (exact)."""
    return ((images + 1) * 127.5).round().to(torch.uint8)


def write_idx(path: Path, data: Tensor) -> None:
    """An unsigned-byte IDX file (MNIST's format)."""
    header = bytes([0, 0, 0x08, data.dim()]) + b"".join(d.to_bytes(4, "big") for d in data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    """The data root. Where only MNIST's test set is on disk, a copy of it beside a stand-in for the 60,000
    training images (noise): ``source: full`` takes its reference images from the test set alone, so they are
    checked all the same; its GAN training images are checked where the real training set is on disk."""
    try:
        check_available({"name": "mnist", "source": "t10k", "image_size": 32})
    except DataNotFound as err:
        pytest.skip(f"MNIST test set not on this machine: {err}")
    raw = data_root()[0] / "MNIST" / "raw"
    if all((raw / name).is_file() for name in MNIST_TRAIN):
        yield data_root()[0]
        return
    root = tmp_path_factory.mktemp("data")
    (root / "MNIST" / "raw").mkdir(parents=True)
    for name in MNIST_T10K:
        packed = next(raw.glob(f"{name}*"))
        content = gzip.decompress(packed.read_bytes()) if packed.suffix == ".gz" else packed.read_bytes()
        (root / "MNIST" / "raw" / name).write_bytes(content)
    noise = torch.Generator().manual_seed(0)
    write_idx(root / "MNIST" / "raw" / MNIST_TRAIN[0], torch.randint(0, 256, (100, 28, 28), generator=noise,
                                                                     dtype=torch.uint8))
    write_idx(root / "MNIST" / "raw" / MNIST_TRAIN[1], torch.randint(0, 10, (100,), generator=noise, dtype=torch.uint8))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_ENV, str(root))
        yield root


def describe(block: dict) -> str:
    return f"{block['name']}({', '.join(f'{k}={v}' for k, v in sorted(block.items()) if k != 'name')})"


def uses_the_classifier(block: dict) -> bool:
    """Data sets whose metrics may be computed in a classifier space (auto picks it when there is no Inception)."""
    return DATASETS.entry(block["name"]).meta.get("classifier_space") is not None


def measured_sets() -> dict[str, tuple[dict, int | None]]:
    """label -> (data set block, reference size or None) for every shipped spec's and every source's data set
    measured in a classifier space; a shipped spec's reference is drawn at its ``eval.n_samples``."""
    sets = {}
    for path in SHIPPED_SPECS:
        for cell in load(path)[1]:
            block, n = cell.config["dataset"], cell.config["eval"]["n_samples"]
            if uses_the_classifier(block):
                sets[f"{path.relative_to(REPO)}: {describe(block)}, n={n}"] = (block, n)
    for block in EVERY_SOURCE:
        sets[f"source {describe(resolved(block))}"] = (resolved(block), None)
    return sets


def overlaps() -> dict[str, int]:
    """'<data set> <role>' -> how many of its distinct images (by sha1) the classifier was trained on, for its
    GAN training images, its held-out images (every reference image comes from them) and its reference set."""
    classifier_images = classifier_arrays()[0].unsqueeze(1)
    seen_by_size = {}
    found = {}
    for label, (block, n) in measured_sets().items():
        data = build(block)
        size = data.shape[-1]
        if size not in seen_by_size:
            seen_by_size[size] = image_hashes(resize_uint8(classifier_images, size))
        roles = {"GAN training images": data.train.images, "held-out images": data.held_out.images}
        if n is not None:
            roles["reference set"] = served_as_uint8(data.reference(n))
        for role, images in roles.items():
            found[f"{label}: {role}"] = len(image_hashes(images) & seen_by_size[size])
    return found


def test_the_classifier_never_saw_a_reference_or_training_image_of_any_spec_or_source(mnist_root):
    found = overlaps()
    assert any(label.startswith("ablations/paper/stacked_mnist.yaml: stacked_mnist(") for label in found)
    leaks = {label: count for label, count in found.items() if count}
    assert not leaks, f"images the classifier was trained on: {leaks}"


def test_results_name_the_classifiers_training_split(mnist_root):
    assert feature_space_label(LENET) == "lenet-mnist[t10k-seed0:5000-9999]"
    assert feature_space_label(LENET_STACKED) == "lenet-stacked-mnist[t10k-seed0:5000-9999]"
    assert feature_space_label(INCEPTION) == INCEPTION  # trained on ImageNet: no split of ours to name
    train_images, _, held_images, _ = classifier_arrays()  # held out: its accuracy is measured on them
    assert (len(train_images), len(held_images)) == (5000, 5000)
    assert not image_hashes(train_images.unsqueeze(1)) & image_hashes(held_images.unsqueeze(1))


def test_the_classifier_trains_with_gradients_when_first_used_inside_no_grad(tmp_path, monkeypatch):
    """Metrics classify under torch.no_grad(); on a machine without cached weights that call trains the
    classifier first, which needs autograd."""
    from bench.metrics import features

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    grad_enabled = []

    def train(log):
        grad_enabled.append(torch.is_grad_enabled())
        return features.LeNet().state_dict(), 0.99

    monkeypatch.setattr(features, "_train_classifier", train)
    with torch.no_grad():
        assert features.ensure_classifier().is_relative_to(tmp_path)
    assert grad_enabled == [True]
