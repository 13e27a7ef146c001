import math

import pytest
import torch

from bench.metrics import column
from bench.metrics.modes import mode_metrics
from bench.metrics.transport import exact_w1

CENTERS = torch.tensor([(float(x), float(y)) for x in range(-2, 3) for y in range(-2, 3)])
STD = 0.05


def around(center_ids, per_center=100, spread=STD, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.tensor(center_ids).repeat_interleave(per_center)
    return CENTERS[idx] + spread * torch.randn(len(idx), 2, generator=g)


def test_all_modes_covered_uniformly():
    m = mode_metrics(around(list(range(25))), CENTERS, STD)
    assert m["modes_captured"] == 25
    assert m["hq_fraction"] > 0.97  # 3 std in 2-D holds ~98.9% of the mass
    assert m["mode_kl"] == pytest.approx(0.0, abs=0.01) and m["mode_jsd"] == pytest.approx(0.0, abs=0.01)


def test_one_mode():
    m = mode_metrics(around([7], per_center=500), CENTERS, STD)
    assert m["modes_captured"] == 1
    assert m["mode_kl"] == pytest.approx(math.log(25), rel=1e-3)  # KL(delta || uniform over 25) = log 25
    mid = (1 + 1 / 25) / 2  # the mixture's mass on the captured mode; 1/50 on each other mode
    kl_p = math.log(1 / mid)
    kl_u = (1 / 25) * math.log((1 / 25) / mid) + (24 / 25) * math.log(2)
    assert m["mode_jsd"] == pytest.approx(0.5 * kl_p + 0.5 * kl_u, rel=1e-6)


def test_off_grid_noise_is_not_high_quality():
    g = torch.Generator().manual_seed(0)
    between = torch.tensor([0.5, 0.5]) + 0.02 * torch.randn(1000, 2, generator=g)  # midway between centers
    m = mode_metrics(between, CENTERS, STD)
    assert (m["modes_captured"], m["hq_fraction"]) == (0, 0)
    assert math.isnan(m["mode_kl"])


def test_min_count_makes_capture_stricter():
    samples = torch.cat([around([0], per_center=50), around([1], per_center=3)])
    assert mode_metrics(samples, CENTERS, STD, min_count=1)["modes_captured"] == 2
    assert mode_metrics(samples, CENTERS, STD, min_count=10)["modes_captured"] == 1


def test_exact_w1_of_a_translation_is_its_length():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert exact_w1(x, x + torch.tensor([0.3, 0.4])) == pytest.approx(0.5, rel=1e-6)
    assert exact_w1(x, x) == pytest.approx(0.0, abs=1e-9)


def test_catalogue_knows_directions_and_rejects_unknown_names():
    assert column("modes_captured").higher_is_better is True
    assert column("w1_exact").higher_is_better is False
    assert column("critic_grad_norm.layer_07").higher_is_better is None
    with pytest.raises(KeyError, match="known:"):
        column("fidd")
