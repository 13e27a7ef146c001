import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

torch.set_num_threads(1)


def tiny_base(**overrides) -> dict:
    """A toy config that trains in well under a second."""
    base = {
        "preset": "toy",
        "dataset": {"name": "8gaussians"},
        "generator": {"width": 16},
        "critic": {"width": 16},
        "loss": {"name": "wgan-gp"},
        "train": {"generator_iters": 20, "batch_size": 32},
        "eval": {"every": 10, "n_samples": 200, "w1_samples": 100},
    }
    base.update(overrides)
    return base


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m bench.<module> ...`` in a subprocess from the repo root."""

    def run(module: str, *args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", f"bench.{module}", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=full_env,
        )

    return run
