"""The array metrics of bench/metrics/critic.py: critic value surfaces (WGAN-GP Fig. 1a) and critic weights
(Fig. 1b), returned as arrays that the trainer stores as artifacts."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.metrics import METRICS, EvalContext, columns
from bench.metrics.critic import WEIGHT_SAMPLE
from bench.spec import resolve_config
from bench.train import train


class Linear(nn.Module):
    """D(x, y) = x + 2 y."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1, bias=False)
        self.fc.weight.data = torch.tensor([[1.0, 2.0]])

    def forward(self, x):
        return self.fc(x).squeeze(1)


def context(critic: nn.Module) -> EvalContext:
    real = torch.randn(600, 2, generator=torch.Generator().manual_seed(0))
    return EvalContext(samples=real + 1, real=real, dataset=None, critic=critic, loss=None, config={}, device="cpu")


def test_surface_is_the_critic_on_a_128_grid_over_minus3_3():
    out = METRICS.get("critic_surface")(context(Linear()))
    gx, gy, value = out["critic_surface"]
    assert out["critic_surface"].shape == (3, 128, 128) and out["critic_surface"].dtype == np.float32
    assert gx[0, 0] == -3 and gx[0, -1] == 3 and gy[0, 0] == -3 and gy[-1, 0] == 3  # columns: x; rows: y
    np.testing.assert_allclose(value, gx + 2 * gy, atol=1e-5)
    assert out["critic_surface_real"].shape == (512, 2)


def test_weights_are_the_weight_matrices_subsampled_when_large():
    small = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    w = METRICS.get("critic_weights")(context(small))["critic_weights"]
    expected = torch.cat([small[0].weight.flatten(), small[2].weight.flatten()]).detach().numpy()
    np.testing.assert_array_equal(w, expected)  # biases left out
    big = nn.Sequential(nn.Linear(2, 400), nn.ReLU(), nn.Linear(400, 400))
    w = METRICS.get("critic_weights")(context(big))["critic_weights"]
    assert len(w) == WEIGHT_SAMPLE and np.isin(w, big[2].weight.detach().numpy().ravel()).mean() > 0.9


def test_array_metrics_produce_no_columns_and_become_artifacts():
    assert "critic_surface" not in columns() and "critic_weights" not in columns()
    config = resolve_config({"preset": "toy", "dataset": {"name": "8gaussians"}, "generator": {"fixed": True},
                             "critic": {"width": 8}, "loss": {"name": "wgan-gp"}, "train": {"generator_iters": 2},
                             "eval": {"every": 1, "n_samples": 256, "metrics": ["critic_surface", "critic_weights"]}})
    result = train(config, seed=0)
    assert result.status == "ok"
    assert {"critic_surface@1", "critic_surface@2", "critic_weights@2", "critic_surface_real@2"} <= set(
        result.artifacts)
