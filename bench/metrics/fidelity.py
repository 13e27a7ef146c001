"""IS, FID, KID and precision/recall of generated images, computed by torch-fidelity's ``calculate_metrics``.

The generated samples and the held-out real samples (both ``eval.n_samples``) go to torch-fidelity as
datasets of uint8 RGB images (grayscale repeated over three channels). All image metrics a cell asks for
are computed in one ``calculate_metrics`` call per evaluation (features extracted once) in the feature
space ``eval.feature_space`` resolves to (``bench.metrics.features``); every metric also returns that
space as the ``feature_space`` label, and values from different feature spaces are different quantities:
compare and aggregate them only within one ``feature_space``. A classifier space's label names the images
its classifier was trained on (``lenet-mnist[t10k-seed0:5000-9999]``), images no data set serves: the
feature space has seen neither the reference images nor the GAN's training images.

Real-data features and FID statistics are cached by torch-fidelity under ``$BENCH_CACHE/fidelity``, named
by (bench version, data set config, n, feature space, and the classifier's weights hash for the classifier
spaces); image
data sets' reference samples are the same for every seed, so every cell of a data set shares them.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

import bench
from bench.configdict import short_hash
from bench.metrics import METRICS, Column, EvalContext

# metric name -> calculate_metrics flag
FLAGS = {"fid": "fid", "kid": "kid", "inception_score": "isc", "precision_recall": "prc"}
# calculate_metrics result key (torch_fidelity.KEY_METRIC_*) -> our column
KEYS = {
    "frechet_inception_distance": "fid",
    "kernel_inception_distance_mean": "kid",
    "kernel_inception_distance_std": "kid_std",
    "inception_score_mean": "inception_score",
    "inception_score_std": "inception_score_std",
    "precision": "precision",
    "recall": "recall",
    "f_score": "f_score",
}
SPACE_NOTE = " (in the run's feature_space: compare only within one)"


class UInt8Images(Dataset):
    """Images in [-1, 1] (N, C, H, W) as torch-fidelity wants them: uint8, three channels."""

    def __init__(self, images: Tensor):
        x = ((images.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        self.images = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


def fidelity_metrics(
    generated: Tensor, real: Tensor, dataset: dict, feature_space: str, metrics: set[str], device="cpu"
) -> dict[str, float | str]:
    """torch-fidelity's ``calculate_metrics`` for ``metrics`` (names of ``FLAGS``) between generated and real
    images in [-1, 1]; real-data features are cached under a name built from ``dataset`` (its resolved
    config block) and n. Returns our column names plus the ``feature_space`` label."""
    import torch_fidelity

    from bench.metrics.features import INCEPTION, cache_dir, feature_space_label, resolve_feature_space, weights_id

    space, weights = resolve_feature_space(feature_space, dataset["name"])
    n = len(real)
    cache_name = f"ganbench{bench.__version__}-{dataset['name']}-{short_hash(dataset)}-n{n}"
    labels = {"feature_space": feature_space_label(space)}
    subset = min(1000, n, len(generated))  # KID's standard subset size, or all samples when fewer
    if space != INCEPTION:
        labels["feature_weights"] = weights_id(weights)
        cache_name += f"-w{labels['feature_weights']}"
    result = torch_fidelity.calculate_metrics(
        input1=UInt8Images(generated),
        input2=UInt8Images(real),
        input2_cache_name=cache_name,
        feature_extractor=space,
        feature_extractor_weights_path=None if weights is None else str(weights),
        cuda=torch.device(device).type == "cuda",
        cache_root=str(cache_dir() / "fidelity"),
        save_cpu_ram=True,  # no DataLoader worker processes inside our workers
        verbose=False,
        kid_subset_size=subset,
        kid_subsets=100 if subset < min(n, len(generated)) else 1,  # subsets of the whole set would all be equal
        **{FLAGS[m]: True for m in metrics},
    )
    return {**{KEYS[k]: float(v) for k, v in result.items() if k in KEYS}, **labels}


def _compute(ctx: EvalContext, names: list[str]) -> dict[str, float | str]:
    """The values of one metric, from one torch-fidelity call shared by all image metrics of this step."""
    if "fidelity" not in ctx.extras:
        wanted = {m for m in ctx.config["eval"]["metrics"] if m in FLAGS}
        ctx.extras["fidelity"] = fidelity_metrics(
            ctx.samples, ctx.real, ctx.config["dataset"], ctx.config["eval"]["feature_space"], wanted, ctx.device
        )
    values = ctx.extras["fidelity"]
    return {k: values[k] for k in [*names, "feature_space", "feature_weights"] if k in values}


@METRICS.register("fid", requires={"images"}, columns=[
    Column("fid", False, "Frechet distance of generated vs held-out real feature statistics" + SPACE_NOTE,
           bounded=True),
])
def fid(ctx: EvalContext) -> dict[str, float | str]:
    """FID (Heusel et al. 2017)."""
    return _compute(ctx, ["fid"])


@METRICS.register("kid", requires={"images"}, columns=[
    Column("kid", False, "kernel (cubic polynomial) MMD^2 between generated and real features" + SPACE_NOTE,
           bounded=True),
    Column("kid_std", None, "std of KID over torch-fidelity's subsets"),
])
def kid(ctx: EvalContext) -> dict[str, float | str]:
    """KID (Binkowski et al. 2018)."""
    return _compute(ctx, ["kid", "kid_std"])


@METRICS.register("inception_score", requires={"images"}, columns=[
    Column("inception_score", True, "exp E KL(p(y|x) || p(y)) of the feature space's classifier" + SPACE_NOTE,
           bounded=True),
    Column("inception_score_std", None, "std of the inception score over 10 splits"),
])
def inception_score(ctx: EvalContext) -> dict[str, float | str]:
    """Inception score (Salimans et al. 2016); with a classifier space, the MNIST score (max 10; 1000 for
    Stacked MNIST)."""
    return _compute(ctx, ["inception_score", "inception_score_std"])


@METRICS.register("precision_recall", requires={"images"}, columns=[
    Column("precision", True, "share of generated samples inside the real k-NN manifold (k = 3)" + SPACE_NOTE,
           bounded=True),
    Column("recall", True, "share of real samples inside the generated k-NN manifold (k = 3)" + SPACE_NOTE,
           bounded=True),
    Column("f_score", True, "harmonic mean of precision and recall", bounded=True),
])
def precision_recall(ctx: EvalContext) -> dict[str, float | str]:
    """Improved precision and recall (Kynkaanniemi et al. 2019)."""
    return _compute(ctx, ["precision", "recall", "f_score"])
