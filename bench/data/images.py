"""Image data sets for the WGAN / WGAN-GP image experiments, read from one data root.

Images are served as float tensors ``(n, C, H, W)`` in [-1, 1] (the WGAN reference code's
``Normalize(0.5, 0.5)``). Training batches are drawn uniformly with replacement from the training images by
the cell's seeded data stream; ``reference(n)`` is the first ``n`` images of a fixed permutation of the
held-out images - the same for every seed, so real-data feature statistics are computed once per
(data set, feature space, n) and cached (``bench.metrics.fidelity``).

**MNIST splits.** The project's classifier (``bench.metrics.features``, the ``lenet-mnist`` feature space)
trains on MNIST test images, so the 10,000 test images are cut by position in one fixed permutation
(``SPLIT_SEED``): positions 5,000-9,999 train the classifier (``CLASSIFIER_TRAIN``) and no data set ever
serves them; positions 0-4,999 are the data. ``source: t10k`` trains the GAN on positions 2,000-4,999 and
takes its reference images from positions 0-1,999; ``source: full`` trains it on the 60,000 training images
and takes its reference images from positions 0-4,999. So a feature space never has seen a reference image
or a GAN's training image (``tests/test_features.py`` checks it by hashing the images of every shipped spec
and source). ``digits`` and the other sets share no image with MNIST.

**Data root** (the first that applies): the environment variable ``BENCH_DATA``; the spec's top-level
``data_root`` (``bench.run`` passes it to its workers as ``BENCH_DATA``); otherwise ``<repo>/data`` if it
exists, else ``<repo>/../shared/data`` (this project's CI layout). It is a machine setting, never part of a
cell's config, so it does not change ``cell_id``. Files are looked up in torchvision's layout under it.
A missing data set raises ``DataNotFound`` saying where it looked and how to get it; nothing falls back
to another data set. ``python -m bench.data.images download mnist|cifar10 [--data-root DIR]`` fetches
the sets torchvision can download.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from bench.data import DATASETS, DataNotFound
from bench.registry import Params
from bench.seeding import generator

DATA_ENV = "BENCH_DATA"
SPLIT_SEED = 0  # fixed train / held-out splits and reference order: identical on every machine and seed

IMAGE_DEFAULTS = {
    "generator.arch": "dcgan",
    "critic.arch": "dcgan",
    "generator.latent_dim": 100,  # WGAN / DCGAN code: nz = 100
    "generator.output": "tanh",  # for the MLP generator; DCGAN always ends in tanh
    "eval.n_samples": 2000,
}
IMAGE_METRICS = ["fid", "kid", "inception_score", "w_estimate"]


# ------------------------------------------------------------------------------------------- data root


def default_roots() -> list[Path]:
    repo = Path(__file__).resolve().parents[2]
    return [repo / "data", repo.parent / "shared" / "data"]


# The spec's data_root while bench.run checks and calibrates in its own process (its workers get $BENCH_DATA)
_spec_root: ContextVar[Path | None] = ContextVar("spec_data_root", default=None)


@contextmanager
def spec_data_root(root: Path | None) -> Iterator[None]:
    """``root`` as the data root of this process while the block runs, unless ``$BENCH_DATA`` is set; nothing
    (no environment variable) is left behind."""
    token = _spec_root.set(root)
    try:
        yield
    finally:
        _spec_root.reset(token)


def data_root() -> tuple[Path, str]:
    """The data root and a note on where it came from (see the module docstring)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve(), f"from ${DATA_ENV}"
    if _spec_root.get() is not None:
        return _spec_root.get(), "from the spec's data_root"
    roots = default_roots()
    root = next((r for r in roots if r.is_dir()), roots[0])
    return root, f"default: the first existing of {', '.join(map(str, roots))}"


def _not_found(what: str, looked: list[Path], how: str) -> DataNotFound:
    root, origin = data_root()
    return DataNotFound(
        f"{what} not found: looked for {', '.join(map(str, looked))} (data root {root}, {origin}). "
        f"{how} Set ${DATA_ENV} or the spec's data_root to the directory that holds it."
    )


# ------------------------------------------------------------------------------------- image containers


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def resize_uint8(images: Tensor, size: int) -> Tensor:
    """Antialiased bilinear resize of uint8 images (N, C, h, w) to (N, C, size, size)."""
    if images.shape[-2:] == (size, size):
        return images
    out = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        .round_().clamp_(0, 255).to(torch.uint8)
        for chunk in images.split(4096)
    ]
    return torch.cat(out)


class TensorImages:
    """uint8 images (N, C, H, W) held in memory."""

    def __init__(self, images: Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: Tensor) -> Tensor:
        return self.images[idx]


class LazyImages:
    """Images decoded on demand from a torchvision data set (LSUN, ImageFolder) at ``indices``."""

    def __init__(self, dataset, indices: Tensor):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, idx: Tensor) -> Tensor:
        return torch.stack([self.dataset[int(self.indices[i])][0] for i in idx])


def _split(n: int, n_held_out: int) -> tuple[Tensor, Tensor]:
    """A fixed (seed-independent) split of range(n) into training and held-out indices."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return perm[n_held_out:], perm[:n_held_out]


class ImageDataset:
    """Training images and held-out reference images (see the module docstring)."""

    def __init__(self, train, held_out, shape: tuple[int, ...], seed: int, name: str):
        self.train, self.held_out, self.shape, self.name = train, held_out, tuple(shape), name
        self._rng = generator(seed, "data")

    def sample(self, n: int) -> Tensor:
        return to_unit_range(self.train.take(torch.randint(len(self.train), (n,), generator=self._rng)))

    def reference(self, n: int) -> Tensor:
        if n > len(self.held_out):
            raise ValueError(
                f"eval.n_samples = {n}, but {self.name} has {len(self.held_out)} held-out images; ask for fewer"
            )
        order = torch.randperm(len(self.held_out), generator=torch.Generator().manual_seed(SPLIT_SEED))
        return to_unit_range(self.held_out.take(order[:n]))

    def state_dict(self) -> dict[str, Any]:
        return {"train": self._rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.set_state(state["train"])


class StackedImageDataset(ImageDataset):
    """Stacked MNIST (VEEGAN / PacGAN): three independently drawn digits as the three channels, so
    1000 modes (digit triples). Both training and reference triples are drawn with replacement (from the
    training and the held-out digits); the reference draw uses a fixed stream, the same for every seed."""

    def _stack(self, images, n: int, gen: torch.Generator) -> Tensor:
        idx = torch.randint(len(images), (n * 3,), generator=gen)
        return to_unit_range(images.take(idx).view(n, 3, *self.shape[1:]))

    def sample(self, n: int) -> Tensor:
        return self._stack(self.train, n, self._rng)

    def reference(self, n: int) -> Tensor:
        return self._stack(self.held_out, n, torch.Generator().manual_seed(SPLIT_SEED))


# ----------------------------------------------------------------------------------------------- MNIST

MNIST_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
MNIST_T10K = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Positions in the fixed permutation (SPLIT_SEED) of the 10,000 MNIST test images (see the module docstring):
T10K_REFERENCE = slice(0, 2000)  # source t10k: the reference images
T10K_TRAIN = slice(2000, 5000)  # source t10k: the GAN's training images
FULL_REFERENCE = slice(0, 5000)  # source full: the reference images (the GAN trains on the 60,000 training images)
CLASSIFIER_TRAIN = slice(5000, 10000)  # the classifier's training images: no data set serves them
CLASSIFIER_SPLIT = f"t10k-seed{SPLIT_SEED}:{CLASSIFIER_TRAIN.start}-{CLASSIFIER_TRAIN.stop - 1}"  # its name


def read_idx(path: Path) -> Tensor:
    """An IDX file (MNIST's format), gzipped or not, as a uint8 tensor."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: truncated IDX file ({data.size} values, header says {dims})")
    return torch.from_numpy(data.reshape(dims).copy())


def _mnist_raw() -> Path:
    return data_root()[0] / "MNIST" / "raw"


def _find_idx(name: str) -> Path | None:
    for candidate in (_mnist_raw() / name, _mnist_raw() / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


class MNISTParams(Params):
    image_size: int = Field(32, ge=8, description="side in pixels (28 -> image_size, antialiased bilinear)")
    source: Literal["full", "t10k"] = Field(
        "full",
        description="full: the 60,000 training images, reference = the 5,000 test images the classifier did not "
        "train on; t10k: only the test-set file, 3,000 training / 2,000 reference images of those 5,000",
    )


def _missing(names: tuple[str, ...]) -> list[Path]:
    return [_mnist_raw() / f"{n}[.gz]" for n in names if _find_idx(n) is None]


def locate_mnist(params: MNISTParams) -> None:
    if params.source == "t10k":
        missing = _missing(MNIST_T10K)
        if missing:
            raise _not_found(
                "MNIST test set (source t10k)", missing,
                "Copy t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz there, or run "
                "`python -m bench.data.images download mnist`.",
            )
        return
    missing = _missing((*MNIST_TRAIN, *MNIST_T10K))
    if missing:
        raise _not_found(
            "MNIST (source full)", missing,
            "Run `python -m bench.data.images download mnist` (torchvision's downloader), or use "
            "dataset.source: t10k to train on the test set file alone.",
        )


def t10k_part(positions: slice) -> tuple[Tensor, Tensor]:
    """(images, labels) at ``positions`` of the fixed permutation of the MNIST test set, images uint8 (N, 28, 28)."""
    images, labels = (read_idx(_find_idx(n)) for n in MNIST_T10K)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))[positions]
    return images[order], labels[order]


def mnist_arrays(source: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, held-out images, held-out labels) of a source, images uint8 (N, 28, 28);
    none of them is a classifier training image (see the module docstring)."""
    locate_mnist(MNISTParams(source=source))
    if source == "t10k":
        return (*t10k_part(T10K_TRAIN), *t10k_part(T10K_REFERENCE))
    train_images, train_labels = (read_idx(_find_idx(n)) for n in MNIST_TRAIN)
    return (train_images, train_labels, *t10k_part(FULL_REFERENCE))


def classifier_arrays() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, held-out images, held-out labels) of the classifier: the test images at
    ``CLASSIFIER_TRAIN``, and for its accuracy the other 5,000 (``FULL_REFERENCE``)."""
    locate_mnist(MNISTParams(source="t10k"))
    return (*t10k_part(CLASSIFIER_TRAIN), *t10k_part(FULL_REFERENCE))


def _gray(images: Tensor, size: int) -> TensorImages:
    return TensorImages(resize_uint8(images.unsqueeze(1), size))


@DATASETS.register(
    "mnist", params=MNISTParams, tags={"images", "mnist_digits"}, defaults=IMAGE_DEFAULTS,
    default_metrics=IMAGE_METRICS, locate=locate_mnist, classifier_space="lenet-mnist",
)
def mnist(params: MNISTParams, seed: int) -> ImageDataset:
    train, _, held, _ = mnist_arrays(params.source)
    size = params.image_size
    return ImageDataset(_gray(train, size), _gray(held, size), (1, size, size), seed, f"mnist ({params.source})")


@DATASETS.register(
    "stacked_mnist", params=MNISTParams, tags={"images", "stacked_mnist"}, defaults=IMAGE_DEFAULTS,
    default_metrics=["stacked_modes", *IMAGE_METRICS], locate=locate_mnist, classifier_space="lenet-stacked-mnist",
)
def stacked_mnist(params: MNISTParams, seed: int) -> StackedImageDataset:
    """Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): 3 x image_size x image_size, 1000 modes."""
    train, _, held, _ = mnist_arrays(params.source)
    size = params.image_size
    return StackedImageDataset(_gray(train, size), _gray(held, size), (3, size, size), seed,
                               f"stacked_mnist ({params.source})")


# ---------------------------------------------------------------------------------------------- digits


class SizeParams(Params):
    image_size: int = Field(32, ge=8, description="side in pixels (antialiased bilinear resize)")


DIGITS_HELD_OUT = 297  # of scikit-learn's 1,797 digits; 1,500 train


@DATASETS.register(
    "digits", params=SizeParams, tags={"images"}, defaults={**IMAGE_DEFAULTS, "eval.n_samples": DIGITS_HELD_OUT},
    default_metrics=IMAGE_METRICS, classifier_space="lenet-mnist",
)
def digits(params: SizeParams, seed: int) -> ImageDataset:
    """scikit-learn's bundled 8x8 handwritten digits (no download), upscaled: a tiny offline image set."""
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().images)  # (1797, 8, 8), values 0..16
    images = resize_uint8((raw * (255 / 16)).round().to(torch.uint8).unsqueeze(1), params.image_size)
    train, held = _split(len(images), DIGITS_HELD_OUT)
    size = params.image_size
    return ImageDataset(TensorImages(images[train]), TensorImages(images[held]), (1, size, size), seed, "digits")


# --------------------------------------------------------------------------------------------- CIFAR-10


def locate_cifar10(params: SizeParams) -> None:
    folder = data_root()[0] / "cifar-10-batches-py"
    if not (folder / "data_batch_1").is_file():
        raise _not_found("CIFAR-10", [folder], "Run `python -m bench.data.images download cifar10`.")


@DATASETS.register(
    "cifar10", params=SizeParams, tags={"images"}, defaults=IMAGE_DEFAULTS, default_metrics=IMAGE_METRICS,
    locate=locate_cifar10, classifier_space=None,
)
def cifar10(params: SizeParams, seed: int) -> ImageDataset:
    """CIFAR-10 (torchvision): 50,000 training images; reference = the 10,000 test images."""
    from torchvision.datasets import CIFAR10

    locate_cifar10(params)
    root = str(data_root()[0])
    train, test = (torch.from_numpy(CIFAR10(root, train=t).data).permute(0, 3, 1, 2) for t in (True, False))
    size = params.image_size
    return ImageDataset(TensorImages(resize_uint8(train, size)), TensorImages(resize_uint8(test, size)),
                        (3, size, size), seed, "cifar10")


# ------------------------------------------------------------------------------------ LSUN, image folders


def _decode_transform(size: int):
    """WGAN reference code: Scale(size), CenterCrop(size); kept as uint8 until batching."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])


class LSUNParams(Params):
    image_size: int = Field(64, ge=8, description="side in pixels (resize shorter side, center crop)")
    category: str = Field("bedroom", description="LSUN scene category; reads <category>_train_lmdb")
    held_out: int = Field(10000, gt=0, description="images of the training lmdb held out as the reference set")


def locate_lsun(params: LSUNParams) -> None:
    folder = data_root()[0] / "lsun" / f"{params.category}_train_lmdb"
    if not folder.is_dir():
        raise _not_found(f"LSUN {params.category}", [folder],
                         "Download it with the LSUN tools (github.com/fyu/lsun) and unzip it there.")
    try:
        import lmdb  # noqa: F401
    except ImportError:
        raise DataNotFound("LSUN needs the lmdb package: pip install 'ganbench[lsun]'") from None


@DATASETS.register(
    "lsun", params=LSUNParams, tags={"images"}, defaults=IMAGE_DEFAULTS, default_metrics=IMAGE_METRICS,
    locate=locate_lsun, classifier_space=None,
)
def lsun(params: LSUNParams, seed: int) -> ImageDataset:
    """LSUN scenes (WGAN Figs. 5-7 use bedrooms at 64x64), decoded on demand."""
    from torchvision.datasets import LSUN

    locate_lsun(params)
    data = LSUN(str(data_root()[0] / "lsun"), classes=[f"{params.category}_train"],
                transform=_decode_transform(params.image_size))
    train, held = _split(len(data), params.held_out)
    size = params.image_size
    return ImageDataset(LazyImages(data, train), LazyImages(data, held), (3, size, size), seed,
                        f"lsun {params.category}")


class FolderParams(Params):
    path: str = Field(description="directory of class subfolders of images (torchvision ImageFolder), "
                                  "relative to the data root or absolute")
    image_size: int = Field(64, ge=8, description="side in pixels (resize shorter side, center crop)")
    held_out_fraction: float = Field(0.1, gt=0, lt=1, description="share of images held out as the reference set")


def _folder(params: FolderParams) -> Path:
    return data_root()[0] / params.path  # an absolute path replaces the root


def locate_folder(params: FolderParams) -> None:
    if not _folder(params).is_dir():
        raise _not_found(f"image folder {params.path!r}", [_folder(params)],
                         "Put images in class subfolders there (torchvision ImageFolder layout).")


@DATASETS.register(
    "imagefolder", params=FolderParams, tags={"images"}, defaults=IMAGE_DEFAULTS, default_metrics=IMAGE_METRICS,
    locate=locate_folder, classifier_space=None,
)
def imagefolder(params: FolderParams, seed: int) -> ImageDataset:
    """Any folder of RGB images in torchvision's ImageFolder layout, decoded on demand."""
    from torchvision.datasets import ImageFolder

    locate_folder(params)
    try:
        data = ImageFolder(str(_folder(params)), transform=_decode_transform(params.image_size))
    except FileNotFoundError as err:
        raise _not_found(f"images in {params.path!r} ({err})", [_folder(params)],
                         "Put images in class subfolders there (torchvision ImageFolder layout).") from None
    train, held = _split(len(data), max(1, round(params.held_out_fraction * len(data))))
    size = params.image_size
    return ImageDataset(LazyImages(data, train), LazyImages(data, held), (3, size, size), seed,
                        f"imagefolder {params.path}")


# ------------------------------------------------------------------------------------------ downloading


def download(name: str, root: Path) -> None:
    """Fetch a data set with torchvision's downloader into ``root``."""
    from torchvision.datasets import CIFAR10, MNIST

    kind = {"mnist": MNIST, "cifar10": CIFAR10}[name]
    for train in (True, False):
        kind(str(root), train=train, download=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.data.images", description="Download image data sets.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fetch a data set with torchvision's downloader")
    d.add_argument("name", choices=["mnist", "cifar10"])
    d.add_argument("--data-root", type=Path, default=None, help=f"default: ${DATA_ENV} or the default data root")
    args = p.parse_args(argv)
    root = args.data_root or data_root()[0]
    try:
        download(args.name, root)
    except Exception as err:  # network errors come in many types
        print(f"error: download of {args.name} into {root} failed: {err}", file=sys.stderr)
        return 1
    print(f"{args.name} is in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
