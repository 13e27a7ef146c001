import pytest
import torch

from bench.data import DATASETS


def make(name: str, seed: int = 0, **params):
    entry = DATASETS.entry(name)
    return entry.obj(entry.params(**params), seed)


def test_25gaussians_matches_gan_toy():
    data = make("25gaussians")
    centers, std = data.modes
    expected = torch.tensor([(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)]) / 2.828
    assert torch.allclose(centers, expected) and std == pytest.approx(0.05 / 2.828)
    x = data.sample(20000)
    offsets = x - centers[torch.cdist(x, centers).argmin(1)]
    assert offsets.std().item() == pytest.approx(std, rel=0.05)
    assert len(torch.cdist(x, centers).argmin(1).unique()) == 25


def test_8gaussians_matches_gan_toy():
    data = make("8gaussians")
    centers, std = data.modes
    assert torch.allclose(centers.norm(dim=1), torch.full((8,), 2 / 1.414)) and std == pytest.approx(0.02 / 1.414)


def test_swissroll_scale():
    x = make("swissroll").sample(5000)
    assert x.shape == (5000, 2)
    # make_swiss_roll's t spans [1.5 pi, 4.5 pi]: radius up to ~14.1, divided by 7.5
    assert 1.7 < x.abs().max().item() < 2.2


@pytest.mark.parametrize("name", ["25gaussians", "8gaussians", "swissroll"])
def test_streams_are_seeded_and_reference_is_independent_of_training(name):
    a, b, c = make(name, seed=1), make(name, seed=1), make(name, seed=2)
    assert torch.equal(a.sample(64), b.sample(64))
    assert not torch.equal(a.sample(64), c.sample(64))
    before = make(name, seed=1).reference(128)
    a.sample(999)
    assert torch.equal(a.reference(128), before)


def test_fixed_size_reads_a_shuffled_set_in_order_and_resumes_from_its_state():
    data = make("25gaussians", fixed_size=1000)
    first = data.sample(300)
    state = data.state_dict()
    second = data.sample(300)
    data.load_state_dict(state)
    assert torch.equal(data.sample(300), second)
    data.sample(300)  # 1200 > 1000: the next batch starts a new epoch, like gan_toy.py
    assert torch.equal(data.sample(300), first)
    # balanced: 40 points per center
    counts = torch.cdist(data._fixed, data.centers).argmin(1).bincount(minlength=25)
    assert counts.tolist() == [40] * 25


def test_25gaussians_at_scale_1_is_the_pacgan_and_veegan_grid():
    data = make("25gaussians", scale=1.0, std=0.05)
    centers, std = data.modes
    expected = torch.tensor([(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)], dtype=torch.float32)
    assert torch.equal(centers, expected) and std == 0.05
    x = data.sample(20000)
    offsets = x - centers[torch.cdist(x, centers).argmin(1)]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.05)


def test_a_fixed_training_set_repeats_after_one_pass():
    data = make("25gaussians", fixed_size=1000, scale=1.0)
    first = torch.cat([data.sample(100) for _ in range(10)])
    assert len(first.unique(dim=0)) == 1000 and torch.equal(torch.cat([data.sample(100) for _ in range(10)]), first)
