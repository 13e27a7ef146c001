"""Mode coverage: on Gaussian mixtures (the VEEGAN / PacGAN protocol), on Stacked MNIST's digit triples and on
MNIST's ten digit classes."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bench.metrics import METRICS, Column, EvalContext


def mode_metrics(samples: Tensor, centers: Tensor, std: float, min_count: int = 1) -> dict[str, float]:
    """Assign each sample to its nearest center; it is *high quality* when within 3 std of it.

    ``modes_captured``: centers with at least ``min_count`` high-quality samples; ``hq_fraction``: share
    of high-quality samples; ``mode_kl`` = KL(p || uniform) and ``mode_jsd`` = JSD(p, uniform) of the
    histogram p of high-quality samples over modes (NaN when no sample is high quality).
    """
    dist = torch.cdist(samples.double(), centers.double())
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= 3 * std
    counts = torch.bincount(nearest[hq], minlength=len(centers)).double()
    k = len(centers)
    out = {
        "modes_captured": float((counts >= min_count).sum()),
        "hq_fraction": float(hq.double().mean()),
        "mode_kl": math.nan,
        "mode_jsd": math.nan,
    }
    if counts.sum() > 0:
        p = counts / counts.sum()
        u = torch.full_like(p, 1.0 / k)
        out["mode_kl"] = float(torch.special.xlogy(p, p / u).sum())
        m = (p + u) / 2
        out["mode_jsd"] = float(0.5 * torch.special.xlogy(p, p / m).sum() + 0.5 * (u * (u / m).log()).sum())
    return out


@METRICS.register(
    "modes",
    requires={"modes"},
    columns=[
        Column("modes_captured", True, "modes with >= min_count high-quality samples", bounded=True),
        Column("hq_fraction", True, "fraction of samples within 3 std of their nearest center", bounded=True),
        Column("mode_kl", False, "KL(high-quality histogram over modes || uniform)", bounded=True),
        Column("mode_jsd", False, "JSD(high-quality histogram over modes, uniform)", bounded=True),
        Column("mode_samples", None, "generated samples the mode metrics counted (the protocol: 2,500)"),
    ],
)
def modes(ctx: EvalContext) -> dict[str, float]:
    centers, std = ctx.dataset.modes
    out = mode_metrics(ctx.samples, centers, std, ctx.config["eval"]["mode_min_count"])
    return {**out, "mode_samples": float(len(ctx.samples))}


def stacked_mode_metrics(digits: Tensor) -> dict[str, float]:
    """Stacked MNIST (VEEGAN / PacGAN protocol) from the classified digits (n, 3) of n samples: a mode (a
    digit triple, 1000 in all) counts if at least one sample falls in it; ``stacked_kl`` = KL(histogram of
    triples || uniform over 1000)."""
    counts = torch.bincount(digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2], minlength=1000).double()
    p = counts / counts.sum()
    return {"stacked_modes": float((counts > 0).sum()), "stacked_kl": float(torch.special.xlogy(p, p * 1000).sum())}


@METRICS.register(
    "stacked_modes",
    requires={"stacked_mnist"},
    columns=[
        Column("stacked_modes", True, "digit triples (of 1000) seen among the generated samples", bounded=True),
        Column("stacked_kl", False, "KL(generated digit-triple histogram || uniform over 1000)", bounded=True),
    ],
)
def stacked_modes(ctx: EvalContext) -> dict[str, float]:
    """Each channel classified by the project's MNIST classifier (``bench.metrics.features``), on
    ``eval.n_samples`` generated samples (the protocol uses 26,000)."""
    from bench.metrics.features import classify

    return stacked_mode_metrics(classify(ctx.samples, str(ctx.device)))


CLASS_CONFIDENCE = 0.9  # a generated image is a recognisable digit when the classifier gives it this probability
CLASS_MIN_SHARE = 0.01  # a digit class is covered when at least this share of the samples are recognisably it


def class_metrics(probabilities: Tensor) -> dict[str, float]:
    """MNIST's ten digit classes as modes, from the classifier's probabilities (n, 10) for n generated images:
    an image is *recognisable* when its most likely digit has probability >= ``CLASS_CONFIDENCE`` (the analogue
    of a high-quality sample); ``digit_classes`` counts the digits that at least ``CLASS_MIN_SHARE`` of all
    samples recognisably are (a tenth of the 10 % each digit gets from a generator that matches MNIST, so that
    a few stray samples do not make a mode); ``recognisable_fraction`` is the share of recognisable images and
    ``digit_kl`` = KL(histogram of recognisable digits || uniform over 10), NaN when none is recognisable."""
    confidence, digit = probabilities.double().max(dim=1)
    sure = confidence >= CLASS_CONFIDENCE
    counts = torch.bincount(digit[sure], minlength=10).double()
    out = {"digit_classes": float((counts >= CLASS_MIN_SHARE * len(digit)).sum()),
           "recognisable_fraction": float(sure.double().mean()), "digit_kl": math.nan}
    if counts.sum() > 0:
        p = counts / counts.sum()
        out["digit_kl"] = float(torch.special.xlogy(p, p * 10).sum())
    return out


@METRICS.register(
    "digit_classes",
    requires={"mnist_digits"},
    columns=[
        Column("digit_classes", True, "digits (of 10) that >= 1% of the samples are, classifier probability >= 0.9",
               bounded=True),
        Column("recognisable_fraction", True, "share of samples classified with probability >= 0.9", bounded=True),
        Column("digit_kl", False, "KL(histogram of recognisable digits || uniform over 10)", bounded=True),
    ],
)
def digit_classes(ctx: EvalContext) -> dict[str, float]:
    """Mode collapse on MNIST (WGAN Fig. 7): the project's MNIST classifier (``bench.metrics.features``)
    labels each of the ``eval.n_samples`` generated images."""
    from bench.metrics.features import class_probabilities

    return class_metrics(class_probabilities(ctx.samples, str(ctx.device)))
