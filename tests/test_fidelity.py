"""Image metrics through torch-fidelity (bench/metrics/fidelity.py), the project classifier's feature
space (bench/metrics/features.py) and the Stacked-MNIST and MNIST-digit mode counts (bench/metrics/modes.py)."""

import math

import pytest
import torch
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from bench.data import DATASETS
from bench.data.images import mnist_arrays, resize_uint8
from bench.metrics.features import (
    FEATURE_SPACES,
    INCEPTION,
    INCEPTION_ENV,
    LENET,
    LENET_STACKED,
    MIN_ACCURACY,
    N_HELDOUT,
    cache_dir,
    class_probabilities,
    classifier_info,
    classify,
    feature_space_label,
    inception_weights,
    resolve_feature_space,
)
from bench.metrics.fidelity import fidelity_metrics
from bench.metrics.modes import class_metrics, stacked_mode_metrics
from tests.conftest import MNIST_T10K as MNIST
from tests.conftest import require_data

STACKED = {**MNIST, "name": "stacked_mnist"}
ALL = {"fid", "kid", "inception_score", "precision_recall"}


def build(block: dict, seed: int = 0):
    entry = DATASETS.entry(block["name"])
    return entry.obj(entry.params.model_validate({k: v for k, v in block.items() if k != "name"}), seed)


@pytest.fixture(scope="module")
def mnist():
    require_data(MNIST)
    return build(MNIST)


def test_classifier_is_registered_and_accurate(mnist):
    assert {LENET, LENET_STACKED} <= set(FEATURE_EXTRACTORS_REGISTRY)
    info = classifier_info()  # trains it once per machine (cached in $BENCH_CACHE)
    assert info["heldout_accuracy"] >= MIN_ACCURACY
    _, _, held_images, held_labels = mnist_arrays("t10k")  # never seen by the classifier
    as_gan_sees_them = resize_uint8(held_images.unsqueeze(1), 32).float() / 127.5 - 1
    accuracy = float((classify(as_gan_sees_them).squeeze(1) == held_labels).double().mean())
    assert accuracy >= MIN_ACCURACY


def test_fid_small_for_real_data_large_for_noise(mnist):
    real, other = mnist.reference(500), mnist.sample(500)  # held-out vs training images
    noise = torch.rand(500, 1, 32, 32) * 2 - 1
    same = fidelity_metrics(other, real, MNIST, LENET, ALL)
    far = fidelity_metrics(noise, real, MNIST, LENET, ALL)
    assert same["feature_space"] == far["feature_space"] == feature_space_label(LENET)
    assert same["fid"] < 20 and far["fid"] > 200
    assert same["kid"] < 0.05 * far["kid"]
    assert same["inception_score"] > 8 > 2 > far["inception_score"]  # MNIST IS: at most 10 classes
    assert same["recall"] > 0.8 > 0.1 > far["recall"]


def test_real_statistics_are_cached(mnist):
    real = mnist.reference(600)
    first = fidelity_metrics(mnist.sample(600), real, MNIST, LENET, {"fid"})
    cached = list((cache_dir() / "fidelity").glob(f"ganbench*-mnist-*-n600-w{first['feature_weights']}-{LENET}-*"))
    assert cached, "real-data features/statistics not cached per (data set, feature space, n)"
    again = fidelity_metrics(mnist.sample(600), real, MNIST, LENET, {"fid"})
    assert again["fid"] != first["fid"]  # generated side recomputed, real side from the cache
    assert abs(again["fid"] - first["fid"]) < 10


def test_stacked_mnist_real_data_covers_all_modes(mnist):
    stacked = build(STACKED)
    real = stacked_mode_metrics(classify(stacked.reference(5000)))
    assert real["stacked_modes"] >= 980  # 1000 * (1 - e^-5) ~ 993 expected
    assert real["stacked_kl"] < 0.3
    collapsed = stacked.reference(10).repeat(50, 1, 1, 1)
    few = stacked_mode_metrics(classify(collapsed))
    assert few["stacked_modes"] <= 10 and few["stacked_kl"] > 4  # log(1000 / 10) for 10 equal modes


@pytest.mark.parametrize("size", [16, 32])
def test_digit_classes_count_the_digits_a_generator_makes_recognisably(size):
    require_data(MNIST)
    mnist = build({**MNIST, "image_size": size})
    real = mnist.reference(1000)
    covered = class_metrics(class_probabilities(real))
    assert covered["digit_classes"] == 10 and covered["recognisable_fraction"] > 0.8 and covered["digit_kl"] < 0.05
    digits = class_probabilities(real).argmax(1)
    collapsed = torch.cat([real[digits == 3][:1].repeat(700, 1, 1, 1), real[digits == 7][:1].repeat(300, 1, 1, 1)])
    two = class_metrics(class_probabilities(collapsed))
    assert two["digit_classes"] == 2 and two["recognisable_fraction"] == 1.0
    assert two["digit_kl"] == pytest.approx(math.log(10) - (-0.7 * math.log(0.7) - 0.3 * math.log(0.3)))
    stray = torch.cat([collapsed[:995], real[digits == 1][:5]])  # 5 of 1000 samples: under the 1 % a mode needs
    assert class_metrics(class_probabilities(stray))["digit_classes"] == 2
    grey = class_metrics(class_probabilities(torch.zeros(1000, 1, size, size)))  # no digit at all
    assert grey["digit_classes"] == 0 and grey["recognisable_fraction"] == 0 and math.isnan(grey["digit_kl"])


def test_stacked_feature_space_scores_1000_modes(mnist):
    stacked = build(STACKED)
    out = fidelity_metrics(stacked.sample(1000), stacked.reference(1000), STACKED, LENET_STACKED,
                           {"inception_score", "fid"})
    assert out["feature_space"] == feature_space_label(LENET_STACKED)
    assert out["inception_score"] > 50  # out of 1000 digit triples (at most 100 with 100 samples per split)


NO_INCEPTION = "Inception-v3 weights not on this machine (set $BENCH_INCEPTION_WEIGHTS to torch-fidelity's "\
    "weights file, or let torch-fidelity download them); they are never faked"


@pytest.mark.skipif(inception_weights() is not None, reason="Inception weights present: auto picks them")
def test_auto_falls_back_to_the_data_sets_classifier_only(monkeypatch, lenet_classifier):
    assert resolve_feature_space("auto", "mnist")[0] == LENET
    assert resolve_feature_space("auto", "stacked_mnist")[0] == LENET_STACKED
    with pytest.raises(FileNotFoundError, match=INCEPTION_ENV):  # no offline space for CIFAR-10
        resolve_feature_space("auto", "cifar10")
    monkeypatch.setenv(INCEPTION_ENV, "/no/such/weights.pth")  # a named file that is missing is an error
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_feature_space("auto", "mnist")


@pytest.mark.skipif(inception_weights() is None, reason=NO_INCEPTION)
def test_auto_uses_inception_when_its_weights_are_present(mnist):
    """The standard feature space, through torch-fidelity's real InceptionV3 (slow on CPU: small n)."""
    real, other = mnist.reference(200), mnist.sample(200)
    noise = torch.rand(200, 1, 32, 32) * 2 - 1
    same = fidelity_metrics(other, real, MNIST, "auto", {"fid", "inception_score"})
    far = fidelity_metrics(noise, real, MNIST, "auto", {"fid"})
    assert same["feature_space"] == far["feature_space"] == INCEPTION and "feature_weights" not in same
    assert same["fid"] < far["fid"] / 3


def test_spec_accepts_exactly_the_known_feature_spaces():
    from typing import get_args

    from bench.spec import EvalConfig

    assert set(get_args(EvalConfig.model_fields["feature_space"].annotation)) == set(FEATURE_SPACES)


def test_classifier_weights_and_accuracy_are_recorded(lenet_classifier):
    info = classifier_info()  # this recipe's metadata, not some other recipe's in a shared cache
    assert info["n_heldout"] == N_HELDOUT == 5000 and len(info["sha256"]) == 64
    assert info["feature_space"] == "lenet-mnist[t10k-seed0:5000-9999]"
