"""Feature spaces of the image metrics: torch-fidelity's ``inception-v3-compat`` and the project's MNIST
classifier, registered with torch-fidelity as ``lenet-mnist`` (and ``lenet-stacked-mnist``).

The classifier is a LeNet-style CNN trained by ``python -m bench.metrics.features train`` with a fixed
recipe (``RECIPE``) on the MNIST test-set images at positions 5,000-9,999 of a fixed permutation
(``bench.data.images.CLASSIFIER_TRAIN``), from the only MNIST file every machine with MNIST has, so the
feature space is the same everywhere. No data set serves those images, as training or as reference images
(``bench.data.images`` splits the test set around them), so the feature space has never seen the images it
measures nor the generated images' real counterparts; the result rows name the split in their feature space
(``lenet-mnist[t10k-seed0:5000-9999]``, ``feature_space_label``). Its accuracy on the other 5,000 test images
is measured, must be >= 97 %, and is stored beside the weights in the cache (``$BENCH_CACHE``, default
``~/.cache/ganbench``). Metrics that need it train it on first use (under a file lock, so parallel workers
train it once).

Inception weights are never faked: ``inception_weights()`` finds a local file (``$BENCH_INCEPTION_WEIGHTS``
or torch-fidelity's own download in the torch hub cache) or reports that there is none.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from bench.configdict import short_hash
from bench.data.images import CLASSIFIER_SPLIT, FULL_REFERENCE

INCEPTION = "inception-v3-compat"
LENET = "lenet-mnist"
LENET_STACKED = "lenet-stacked-mnist"
FEATURE_SPACES = ("auto", INCEPTION, LENET, LENET_STACKED)
INCEPTION_ENV = "BENCH_INCEPTION_WEIGHTS"
CACHE_ENV = "BENCH_CACHE"
MIN_ACCURACY = 0.97
N_HELDOUT = FULL_REFERENCE.stop - FULL_REFERENCE.start  # test images its accuracy is measured on: not trained on

# Everything that determines the classifier: its id names the weights file.
RECIPE = {"arch": "lenet-16c5-32c5-fc128", "data": f"mnist {CLASSIFIER_SPLIT}, held-out: the rest of t10k",
          "optimizer": "adam", "lr": 2e-3, "lr_decay": 0.75, "batch_size": 64, "epochs": 10, "max_shift": 2, "seed": 0}


def cache_dir() -> Path:
    """``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/ganbench``, else ``~/.cache/ganbench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganbench"


# ------------------------------------------------------------------------------------------ classifier


class LeNet(nn.Module):
    """MNIST classifier on 28x28 grayscale images in [-1, 1]; its 128-d penultimate layer is the feature
    space of FID / KID / precision-recall, its logits that of the (MNIST) inception score."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(128-d features, 10 logits) of images (N, 1, H, W) in [-1, 1], resized to 28x28."""
        if x.shape[-2:] != (28, 28):
            x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        h = self.conv(x)
        return h, self.head(self.dropout(h))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[1]


def classifier_path() -> Path:
    return cache_dir() / "classifiers" / f"{LENET}-{short_hash(RECIPE)[:8]}.pt"


def _accuracy(net: LeNet, images: Tensor, labels: Tensor) -> float:
    net.eval()
    with torch.no_grad():
        predicted = torch.cat([net(chunk).argmax(1) for chunk in images.split(1000)])
    return float((predicted == labels).double().mean())


def _shift(x: Tensor, pixels: int, gen: torch.Generator) -> Tensor:
    """Augmentation: translate each image by up to ``pixels`` in x and y (background -1)."""
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (torch.rand(len(x), 2, generator=gen) * 2 - 1) * (2 * pixels / x.shape[-1])
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def train_classifier(log=print) -> tuple[dict, float]:
    """Train the LeNet of ``RECIPE`` on one thread (bit-reproducible on a given platform: a thread count
    changes floating-point summation order); returns (state_dict, held-out accuracy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():  # first use may come from inside a no_grad evaluation (``classify``)
            return _train_classifier(log)
    finally:
        torch.set_num_threads(threads)


def _train_classifier(log) -> tuple[dict, float]:
    from bench.data.images import classifier_arrays

    train_x, train_y, test_x, test_y = classifier_arrays()
    train_x, test_x = (x.unsqueeze(1).float() / 127.5 - 1 for x in (train_x, test_x))
    torch.manual_seed(RECIPE["seed"])
    net = LeNet()
    opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=RECIPE["lr_decay"])
    order_rng = torch.Generator().manual_seed(RECIPE["seed"])
    for epoch in range(RECIPE["epochs"]):
        net.train()
        for idx in torch.randperm(len(train_x), generator=order_rng).split(RECIPE["batch_size"]):
            loss = F.cross_entropy(net(_shift(train_x[idx], RECIPE["max_shift"], order_rng)), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
        log(f"epoch {epoch + 1}/{RECIPE['epochs']}: held-out accuracy {_accuracy(net, test_x, test_y):.4f}")
    return net.state_dict(), _accuracy(net, test_x, test_y)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_classifier(log=None, force: bool = False) -> Path:
    """The cached classifier weights, trained first if absent (once, under a file lock)."""
    from filelock import FileLock

    path = classifier_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists() and not force:
            return path
        state, accuracy = train_classifier(log or (lambda msg: None))
        if accuracy < MIN_ACCURACY:
            raise RuntimeError(f"{LENET}: held-out accuracy {accuracy:.4f} < {MIN_ACCURACY}; weights not cached")
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        meta = {"feature_space": feature_space_label(LENET), "recipe": RECIPE, "heldout_accuracy": accuracy,
                "n_heldout": N_HELDOUT,
                "sha256": _sha256(path), "torch_version": torch.__version__}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def classifier_info() -> dict:
    """The stored metadata of the cached classifier (training it first if needed)."""
    return json.loads(ensure_classifier().with_suffix(".json").read_text())


@lru_cache(maxsize=4)
def load_classifier(device: str = "cpu") -> LeNet:
    net = LeNet()
    net.load_state_dict(torch.load(ensure_classifier(), map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False).to(device)


@torch.no_grad()
def _logits(images: Tensor, device: str, batch_size: int) -> Tensor:
    """The classifier's logits per grayscale image, in batches: images (N, 1, H, W) in [-1, 1] -> (N, 10)."""
    net = load_classifier(str(device))
    return torch.cat([net(chunk.to(device)).cpu() for chunk in images.split(batch_size)])


def class_probabilities(images: Tensor, device: str = "cpu", batch_size: int = 1000) -> Tensor:
    """The classifier's softmax over the 10 digits per grayscale image: images (N, 1, H, W) in [-1, 1] -> (N, 10)."""
    return _logits(images, device, batch_size).softmax(1)


def classify(images: Tensor, device: str = "cpu", batch_size: int = 1000) -> Tensor:
    """Predicted digit per image and channel: images (N, C, H, W) in [-1, 1] -> labels (N, C)."""
    flat = images.reshape(-1, 1, *images.shape[-2:])
    return _logits(flat, device, batch_size).argmax(1).view(images.shape[0], images.shape[1])


# ------------------------------------------------------------------- torch-fidelity feature extractors


class LeNetFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor ``lenet-mnist``: uint8 RGB images (N, 3, H, W) -> the classifier's
    ``features`` (128-d; FID, KID, precision/recall) and ``logits`` (10; inception score). Colour
    channels are averaged (MNIST images reach torch-fidelity as three identical channels)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = LeNet()
        path = feature_extractor_weights_path or ensure_classifier()
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.eval().requires_grad_(False)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    def _to_unit(self, x: Tensor) -> Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"{self.name} expects uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        return x.float() / 127.5 - 1

    def forward(self, x: Tensor):
        features, logits = self.net.features(self._to_unit(x).mean(1, keepdim=True))
        out = {"features": features, "logits": logits}
        return tuple(out[name] for name in self.features_list)


class StackedLeNetFeatureExtractor(LeNetFeatureExtractor):
    """``lenet-stacked-mnist``: each channel of a Stacked-MNIST image through the classifier;
    ``features`` concatenated (384-d), ``logits`` the joint log-probabilities of the 1000 digit triples
    (index 100 a + 10 b + c), so the inception score is over the 1000 modes."""

    def forward(self, x: Tensor):
        x = self._to_unit(x)
        if x.shape[1] != 3:
            raise ValueError(f"{self.name} expects 3-channel Stacked-MNIST images, got {x.shape[1]} channels")
        feats, logps = zip(*[self.net.features(x[:, c : c + 1]) for c in range(3)])
        a, b, c = (F.log_softmax(lp, dim=1) for lp in logps)
        joint = (a[:, :, None, None] + b[:, None, :, None] + c[:, None, None, :]).flatten(1)
        out = {"features": torch.cat(feats, dim=1), "logits": joint}
        return tuple(out[name] for name in self.features_list)


for _name, _cls in ((LENET, LeNetFeatureExtractor), (LENET_STACKED, StackedLeNetFeatureExtractor)):
    if _name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_name, _cls)


# ------------------------------------------------------------------------------------- feature spaces


def inception_weights() -> Path | None:
    """A local Inception-v3 weights file: ``$BENCH_INCEPTION_WEIGHTS`` (must exist when set) or
    torch-fidelity's download in the torch hub cache; None when there is none."""
    if os.environ.get(INCEPTION_ENV):
        path = Path(os.environ[INCEPTION_ENV]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${INCEPTION_ENV} = {path}: no such file")
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[1]
    return hub if hub.is_file() else None


def resolve_feature_space(requested: str, dataset: str) -> tuple[str, Path | None]:
    """(feature space, weights file) for ``eval.feature_space``. ``auto``: Inception when its weights are
    on this machine, else the data set's classifier space. A weights file of None for Inception means
    torch-fidelity downloads it."""
    from bench.data import DATASETS

    if requested == "auto":
        weights = inception_weights()
        if weights is not None:
            return INCEPTION, weights
        requested = DATASETS.entry(dataset).meta.get("classifier_space")
        if requested is None:
            raise FileNotFoundError(
                f"eval.feature_space auto: no Inception weights on this machine (set ${INCEPTION_ENV} or put "
                f"torch-fidelity's {URL_INCEPTION_V3.rsplit('/', 1)[1]} "
                f"in {Path(torch.hub.get_dir()) / 'checkpoints'}) "
                f"and data set {dataset!r} has no offline feature space; or set eval.feature_space: {INCEPTION} "
                "to let torch-fidelity download the weights"
            )
    if requested == INCEPTION:
        return INCEPTION, inception_weights()
    return requested, ensure_classifier()


def feature_space_label(space: str) -> str:
    """The ``feature_space`` stored with each result: a classifier space names the images it was trained on."""
    return space if space == INCEPTION else f"{space}[{CLASSIFIER_SPLIT}]"


def weights_id(path: Path) -> str:
    """Short content hash of a weights file (recorded with the metrics, part of the real-data cache key)."""
    return _sha256(path)[:12]


# ---------------------------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.metrics.features",
                                description=f"Train (once) and report the {LENET} classifier.")
    p.add_argument("command", choices=["train", "show"])
    p.add_argument("--force", action="store_true", help="retrain even if cached")
    args = p.parse_args(argv)
    from bench.data import DataNotFound

    try:
        path = ensure_classifier(log=print, force=args.force and args.command == "train")
    except DataNotFound as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = json.loads(path.with_suffix(".json").read_text())
    print(f"{info['feature_space']}: {path}\n  held-out accuracy {info['heldout_accuracy']:.4f} on "
          f"{info['n_heldout']} MNIST test images not used for training\n  sha256 {info['sha256']}\n"
          f"  recipe {json.dumps(info['recipe'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
