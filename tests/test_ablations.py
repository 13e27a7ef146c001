"""The shipped image ablations and their paper-scale variants (ablations/*.yaml, ablations/paper/*.yaml)."""

from pathlib import Path

import pytest

from bench.configdict import flatten
from bench.data import DATASETS
from bench.metrics import METRICS
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
        changed = {k for k in small.keys() | big.keys() if small.get(k) != big.get(k)} - {"eval.metrics"}
        assert all(k.startswith(PAPER_MAY_CHANGE) for k in changed), sorted(changed)
        # metrics differ only where the paper's data set cannot give one (digit_classes is MNIST's)
        paper_tags = DATASETS.entry(big["dataset.name"]).meta.get("tags", set())
        for extra in set(small["eval.metrics"]) ^ set(big["eval.metrics"]):
            assert not set(METRICS.entry(extra).meta.get("requires", ())) <= paper_tags, extra
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


def test_every_shipped_mode_count_uses_the_protocols_2500_samples():
    checked = 0
    for path in sorted(ROOT.glob("*.yaml")) + sorted((ROOT / "paper").glob("*.yaml")):
        for cell in load(path)[1]:  # a search spec: its base config
            if "modes" in cell.config["eval"]["metrics"]:
                assert cell.config["eval"]["n_samples"] == 2500, path.name
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", ["pacgan_grid", "veegan_grid"])
def test_a_grid_preset_runs_here_at_a_shorter_length_only(name):
    """The CPU spec of a published grid protocol is the protocol (ablations/paper) but for its length and
    trials: bench.published compares its rows with the paper's only on that condition."""
    (cpu_spec, _cpu), (paper_spec, _paper) = load(ROOT / f"{name}.yaml"), load(ROOT / "paper" / f"{name}.yaml")
    assert set(cpu_spec.seeds) <= set(paper_spec.seeds)
    cpu_configs, paper_configs = configs(ROOT / f"{name}.yaml"), configs(ROOT / "paper" / f"{name}.yaml")
    assert len(cpu_configs) == len(paper_configs)
    for small, big in zip(cpu_configs, paper_configs):
        changed = {k for k in small.keys() | big.keys() if small.get(k) != big.get(k)}
        assert changed <= {"train.generator_iters", "eval.every"}
        assert small["train.generator_iters"] < big["train.generator_iters"]


def test_the_pacgan_preset_is_table_1s_protocol():
    gan, pacgan4 = configs(ROOT / "paper" / "pacgan_grid.yaml")
    assert (gan["critic.pack"], pacgan4["critic.pack"]) == (1, 4)
    # 100k examples of pack samples
    assert (gan["dataset.fixed_size"], pacgan4["dataset.fixed_size"]) == (100_000, 400_000)
    assert gan["dataset.scale"] == 1 and gan["dataset.std"] == 0.05
    assert (gan["generator.latent_dim"], gan["generator.width"], gan["generator.depth"]) == (2, 400, 5)
    assert gan["generator.batchnorm"] and not gan["generator.bias"] and gan["generator.init"] == "normal_0.02"
    assert (gan["critic.activation"], gan["critic.maxout_pieces"], gan["critic.width"], gan["critic.depth"]) == (
        "maxout", 5, 200, 4)
    assert (gan["loss.name"], gan["optimizer.name"], gan["optimizer.betas"]) == ("nonsaturating", "adam", [0.8, 0.999])
    assert gan["optimizer.generator_lr"] == gan["optimizer.critic_lr"] == 1e-4
    assert (gan["train.batch_size"], gan["train.n_critic"], gan["train.generator_iters"]) == (100, 1, 400 * 1000)
    assert len(load(ROOT / "paper" / "pacgan_grid.yaml")[0].seeds) == 10


def test_the_veegan_preset_is_gdpps_synthetic_setup():
    gan, wgangp = configs(ROOT / "paper" / "veegan_grid.yaml")
    assert (gan["loss.name"], wgangp["loss.name"]) == ("nonsaturating", "wgan-gp")
    for net in ("generator", "critic"):
        assert (gan[f"{net}.width"], gan[f"{net}.depth"], gan[f"{net}.activation"]) == (128, 3, "tanh")
        assert (gan[f"{net}.init"], gan[f"{net}.init_gain"]) == ("orthogonal", 1.4)
    assert gan["generator.latent_dim"] == 256 and gan["dataset.scale"] == 1 and gan["dataset.fixed_size"] is None
    assert (gan["optimizer.generator_lr"], gan["optimizer.critic_lr"], gan["optimizer.betas"]) == (
        1e-3, 1e-4, [0.5, 0.999])
    assert (gan["train.batch_size"], gan["train.generator_iters"], gan["eval.n_samples"]) == (512, 25_000, 2500)
    assert len(load(ROOT / "paper" / "veegan_grid.yaml")[0].seeds) == 5
