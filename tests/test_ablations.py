"""The shipped image ablations and their paper-scale variants (ablations/*.yaml, ablations/paper/*.yaml)."""

from pathlib import Path

import pytest

from bench.configdict import flatten
from bench.spec import load

ROOT = Path(__file__).resolve().parent.parent / "ablations"
IMAGE_SPECS = ["no_batchnorm", "mlp_generator", "dcgan", "stacked_mnist"]
# What a paper variant may change: the data set and its scale, widths, learning rates (the CPU specs raise
# WGAN's), iterations, evaluation size and frequency.
PAPER_MAY_CHANGE = ("dataset.", "generator.ngf", "critic.ndf", "optimizer.lr", "optimizer.generator_lr",
                    "optimizer.critic_lr", "train.generator_iters", "eval.every", "eval.n_samples")


def configs(path: Path) -> list[dict]:
    spec, cells = load(path)
    seen, out = set(), []
    for cell in cells:
        if cell.config_id not in seen:
            seen.add(cell.config_id)
            out.append(flatten(cell.config))
    return out


@pytest.mark.parametrize("name", IMAGE_SPECS)
def test_paper_variant_is_the_same_experiment_at_paper_scale(name):
    cpu, paper = configs(ROOT / f"{name}.yaml"), configs(ROOT / "paper" / f"{name}.yaml")
    assert len(cpu) == len(paper)
    for small, big in zip(cpu, paper):
        assert {k for k in small if not k.startswith("dataset.")} == {k for k in big if not k.startswith("dataset.")}
        changed = {k for k in small.keys() | big.keys() if small.get(k) != big.get(k)}
        assert all(k.startswith(PAPER_MAY_CHANGE) for k in changed), sorted(changed)
        assert big["optimizer.lr"] <= small["optimizer.lr"]  # the paper presets, never raised


@pytest.mark.parametrize("name", IMAGE_SPECS)
def test_cpu_budget(name):
    """CPU variants read the MNIST test-set file found on every machine with MNIST, one seed."""
    spec, cells = load(ROOT / f"{name}.yaml")
    assert len(spec.seeds) == 1 and len(cells) <= 4
    for cell in cells:
        assert cell.config["dataset"]["source"] == "t10k" and cell.config["train"]["generator_iters"] <= 1000


def test_stacked_mnist_reports_modes_per_loss():
    spec, cells = load(ROOT / "stacked_mnist.yaml")
    assert {c.config["loss"]["name"] for c in cells} == {"nonsaturating", "wgan", "wgan-gp"}
    assert all("stacked_modes" in c.config["eval"]["metrics"] for c in cells)


def test_gradient_penalty_critics_use_no_batch_norm():
    for name in ["dcgan", "stacked_mnist"]:
        for path in (ROOT / f"{name}.yaml", ROOT / "paper" / f"{name}.yaml"):
            for cell in load(path)[1]:
                if cell.config["loss"]["name"] == "wgan-gp":
                    assert cell.config["critic"]["norm"] == "layer"
