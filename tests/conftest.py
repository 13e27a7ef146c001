import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
MNIST_T10K = {"name": "mnist", "image_size": 32, "source": "t10k"}  # the MNIST file every image test reads

torch.set_num_threads(1)


def require_data(block: dict) -> None:
    """Skip the calling test, saying why, where the files of the data set ``block`` are not on this machine
    (the data root: ``$BENCH_DATA``, else ``<repo>/data``, else ``<repo>/../shared/data``)."""
    from bench.data import DataNotFound, check_available

    try:
        check_available(block)
    except DataNotFound as err:
        pytest.skip(f"{block['name']} data not on this machine: {err}")


@pytest.fixture
def mnist_files() -> None:
    """Skips the test where the MNIST test-set file is not in the data root."""
    require_data(MNIST_T10K)


@pytest.fixture
def lenet_classifier() -> Path:
    """The weights of the project's MNIST classifier (``lenet-mnist``), trained on first use from the MNIST
    test-set file; skips the test where neither the cached weights nor that file are on this machine."""
    from bench.metrics.features import classifier_path, ensure_classifier

    if not classifier_path().exists():
        require_data(MNIST_T10K)
    return ensure_classifier()


# the environment variables bench reads (and the tests' workers inherit); libraries set others of their own on import
WATCHED_ENV = ["BENCH_DATA", "BENCH_CACHE", "BENCH_INCEPTION_WEIGHTS", "XDG_CACHE_HOME", "OMP_NUM_THREADS",
               "PYTHONPATH"]


def global_state() -> dict:
    """What a test could leave changed for the tests after it (pytest-randomly runs them in a new order every
    time): bench's environment variables, the working directory, torch's threads and default dtype, the
    registries."""
    from bench.data import DATASETS
    from bench.losses import LOSSES
    from bench.metrics import METRICS
    from bench.models import CRITICS, GENERATORS
    from bench.optim import OPTIMIZERS

    registries = {f"{r.kind}s": r.names() for r in (DATASETS, LOSSES, METRICS, CRITICS, GENERATORS, OPTIMIZERS)}
    return {**{f"${name}": os.environ.get(name) for name in WATCHED_ENV}, "cwd": os.getcwd(),
            "torch threads": torch.get_num_threads(), "torch default dtype": torch.get_default_dtype(), **registries}


def _left_as_found(before: dict, where: str) -> None:
    after = global_state()
    changed = [f"{key} ({before[key]!r} -> {after[key]!r})" for key in before if before[key] != after[key]]
    assert not changed, f"{where} left global state changed for the tests after it: {', '.join(changed)}"


@pytest.fixture(autouse=True)
def unchanged_global_state(request):
    """Every test leaves the global state as it found it."""
    before = global_state()
    yield
    _left_as_found(before, request.node.nodeid)


@pytest.fixture(scope="module", autouse=True)
def unchanged_global_state_per_module(request):
    """And so does every module, its module-scoped fixtures included."""
    before = global_state()
    yield
    _left_as_found(before, request.node.nodeid)


DROP = object()


def edited(tree: dict, changes: dict, sep: str = ".") -> dict:
    """A deep copy of ``tree`` with each path (``"a.b.c"``, split at ``sep``) set to its value; ``DROP``
    removes the key."""
    import copy

    tree = copy.deepcopy(tree)
    for path, value in changes.items():
        *parents, leaf = path.split(sep)
        node = tree
        for key in parents:
            node = node[key]
        if value is DROP:
            del node[leaf]
        else:
            node[leaf] = value
    return tree


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
