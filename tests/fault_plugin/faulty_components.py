"""Test-only components: a data set that raises or hangs on cue, and a metric that reports a label and an
array artifact. ``register()`` adds them to the registries; ``sitecustomize.py`` beside this file does so
in every Python process started with this directory on PYTHONPATH (pebble's spawned workers included)."""

from __future__ import annotations

import itertools
import time
from typing import Literal

from bench.data import DATASETS
from bench.data.toy import TOY_DEFAULTS, GridParams, gaussians25
from bench.metrics import METRICS, Column
from bench.registry import Params


class FaultParams(Params):
    fault: Literal["raise", "hang"]
    at_call: int = 3  # the training batch (sample() call) at which the fault happens


def faulty(params: FaultParams, seed: int):
    """25 Gaussians whose ``at_call``-th training batch raises ``RuntimeError`` or never returns."""
    data = gaussians25(GridParams(), seed)
    calls, clean_sample = itertools.count(1), data.sample

    def sample(n: int):
        if next(calls) == params.at_call:
            if params.fault == "raise":
                raise RuntimeError(f"injected fault at batch {params.at_call}")
            while True:
                time.sleep(1)
        return clean_sample(n)

    data.sample = sample
    return data


def probe(ctx) -> dict:
    """A number, a text label and an array artifact, as image metrics report them."""
    return {"probe_mean": float(ctx.samples.mean()), "probe_label": "probe-v1",
            "probe_array": ctx.samples[:4].numpy().copy()}


def register() -> None:
    DATASETS.register("faulty", params=FaultParams, tags={"toy", "modes"}, defaults=TOY_DEFAULTS,
                      default_metrics=["w_estimate"])(faulty)
    METRICS.register("probe", columns=[Column("probe_mean", None, "mean of the generated samples")])(probe)
