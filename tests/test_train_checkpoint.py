"""Checkpoints: a cell killed mid-run resumes from its last checkpoint and ends exactly as if never stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from bench.data import DATASETS
from bench.metrics import METRICS
from bench.spec import expand, parse_spec
from bench.train import Hooks, train
from tests.faultkit import PLUGIN_DIR, REPO, env, kill, tiny_spec, wait_for


@pytest.fixture
def probe_cell(monkeypatch):
    """A cell measured by the test-only ``probe`` metric (a number, a label and an array per evaluation),
    checkpointed every 10 of its 40 generator steps."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    import faulty_components

    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))  # registrations end with the test
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    faulty_components.register()
    spec = tiny_spec("ckpt", iters=40, checkpoint_every=10, metrics=["probe", "w_estimate"])
    return expand(parse_spec(spec))[0]


def assert_same_run(a, b):
    """Same curves (without the clock), final values, labels, artifacts, snapshots and samples."""
    assert [(i, k, v) for i, _, k, v in a.curves] == [(i, k, v) for i, _, k, v in b.curves]
    assert a.final == b.final and a.labels == b.labels and a.status == b.status
    assert a.artifacts.keys() == b.artifacts.keys() and a.snapshots.keys() == b.snapshots.keys()
    for key in a.artifacts:
        np.testing.assert_array_equal(a.artifacts[key], b.artifacts[key])
    for key in a.snapshots:
        np.testing.assert_array_equal(a.snapshots[key], b.snapshots[key])
    np.testing.assert_array_equal(a.samples, b.samples)


def test_sigkill_mid_cell_then_resume_equals_uninterrupted(probe_cell, tmp_path):
    ckpt, blocked = tmp_path / "ckpt.pt", tmp_path / "blocked"
    # A real process (the test components registered by sitecustomize) trains the cell and is SIGKILLed
    # while it sits after its step-20 checkpoint.
    script = textwrap.dedent(f"""
        import json, pathlib, time, torch
        from bench.train import Hooks, train
        torch.set_num_threads(1)
        def on_eval(step, values):
            if step == 20:
                pathlib.Path({str(blocked)!r}).touch()
                time.sleep(600)
        train(json.loads({json.dumps(probe_cell.config)!r}), {probe_cell.seed},
              Hooks(on_eval=on_eval, checkpoint_path=pathlib.Path({str(ckpt)!r})))
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env(plugin=True))
    try:
        wait_for(lambda: blocked.exists() or child.poll() is not None, "the child to reach step 20")
        assert child.poll() is None, "the training child exited early"
        kill(child.pid)
    finally:
        child.kill()
        child.wait()

    saved = torch.load(ckpt, weights_only=True)  # plain tensors and values only
    assert saved["step"] == 20
    assert {"generator", "critic", "generator_opt", "critic_opt"} <= saved.keys()
    assert max(i for i, *_ in saved["curves"]) == 20

    resumed = train(probe_cell.config, probe_cell.seed, Hooks(checkpoint_path=ckpt))
    uninterrupted = train(probe_cell.config, probe_cell.seed)
    assert resumed.resumed_from == 20 and uninterrupted.resumed_from is None
    assert_same_run(resumed, uninterrupted)
    steps = [i for i, _, k, _ in resumed.curves if k == "probe_mean"]
    assert steps == [10, 20, 30, 40]  # no gap, no duplicate
    assert set(resumed.artifacts) == {f"probe_array@{i}" for i in steps}  # collected before the kill too
    assert resumed.labels == {"probe_label": "probe-v1"}


def test_resume_from_the_final_checkpoint_returns_the_whole_result(probe_cell, tmp_path):
    """A cell that finished but whose result was never stored (driver killed, cell file corrupt)."""
    ckpt = tmp_path / "ckpt.pt"
    first = train(probe_cell.config, probe_cell.seed, Hooks(checkpoint_path=ckpt))
    again = train(probe_cell.config, probe_cell.seed, Hooks(checkpoint_path=ckpt))
    assert again.resumed_from == 40 and again.generator_iters == 40
    assert again.train_s == first.train_s
    assert_same_run(again, first)
    assert not list(tmp_path.glob(".*.tmp"))
