"""How long a run of a spec's cells will take, for ``bench.run --dry-run``.

A cell's time is its generator steps (``steady_steps``: a critic warm-up's steps count at their cost) times
the seconds per steady-state step of its config's shape (``shape``: what the time per step depends on). That
rate comes from the stored runs of this host, in every study under the results directory (``wall_s`` per step
and ensemble member, evaluation included), or else from a quick calibration: ``CALIBRATION_STEPS`` generator
steps of one cell of the shape, trained alone here with evaluation and warm-up off. The run time is the
longest worker's share when the cells are dealt out to the workers costliest first. An estimate: stacked
seeds usually finish sooner than cells calibrated alone, and a machine shared with others is slower than one
that is not.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.configdict import short_hash
from bench.spec import Cell

CALIBRATION_STEPS = 10
MAX_CALIBRATED = 8  # shapes without stored runs beyond this: no estimate (a dry run stays quick)


@dataclass
class Estimate:
    seconds: float | None  # None: no estimate (``basis`` says why)
    basis: str

    def __str__(self) -> str:
        if self.seconds is None:
            return f"no run-time estimate: {self.basis}"
        return f"estimated run time {_duration(self.seconds)} ({self.basis})"


def shape(config: dict) -> str:
    """What a cell's time per generator step depends on: its config without the optimizer, the loss's
    hyperparameters (its name stays), the number of generator steps, the checkpoint interval and the critic
    warm-up (rates are per steady-state step)."""
    reduced = copy.deepcopy(config)
    reduced.pop("optimizer", None)
    reduced["loss"] = {"name": config["loss"]["name"]}
    for key in ("generator_iters", "checkpoint_every", "critic_warmup"):
        reduced["train"].pop(key, None)
    return short_hash(reduced)


def stored_rates(results_dir: Path, host: str) -> dict[str, float]:
    """Median seconds per steady-state generator step and cell of the ok runs of ``host``, by shape, from every study's
    ``runs.parquet`` under ``results_dir``."""
    import pandas as pd

    needed = {"status", "host", "config_json", "wall_s", "generator_iters"}
    rates: dict[str, list[float]] = {}
    for path in sorted(Path(results_dir).glob("*/runs.parquet")):
        try:
            runs = pd.read_parquet(path)
        except (OSError, ValueError):
            continue
        if not needed <= set(runs.columns):
            continue
        members = runs["ensemble_size"].fillna(1) if "ensemble_size" in runs else 1
        runs = runs.assign(per_member=runs["wall_s"] / members)
        for row in runs[(runs["status"] == "ok") & (runs["host"] == host) & (runs["generator_iters"] > 0)].itertuples():
            config = json.loads(row.config_json)
            config["train"]["generator_iters"] = row.generator_iters  # where it stopped (pruned runs stop early)
            rates.setdefault(shape(config), []).append(row.per_member / steady_steps(config))
    return {key: statistics.median(values) for key, values in rates.items()}


def steady_steps(config: dict) -> float:
    """The cell's generator steps counted at their steady-state cost: the WGAN preset's critic warm-up (100
    critic steps per generator step at first) makes its first steps many times costlier."""
    from bench.train import warmup_share

    return config["train"]["generator_iters"] * warmup_share(config)


def calibrate(config: dict, device: str, steps: int = CALIBRATION_STEPS) -> float:
    """Seconds per steady-state generator step (no warm-up) of ``config`` trained alone here for ``steps``
    steps, evaluation off."""
    from bench.train import train

    quick = copy.deepcopy(config)
    quick["train"].update(generator_iters=steps, checkpoint_every=0, critic_warmup=False)
    quick["eval"].update(every=steps, metrics=[], n_samples=min(quick["eval"]["n_samples"], 64), snapshot_samples=0)
    result = train(quick, 0, device=device)
    if result.status != "ok":
        why = (result.error or "").strip().splitlines()
        raise RuntimeError(f"a {result.status} cell" + (f": {why[-1]}" if why else ""))
    return result.train_s / steps


def makespan(costs: list[float], workers: int) -> float:
    """The busiest worker's seconds when the costs are dealt out costliest first, each to the least loaded."""
    loads = [0.0] * workers
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def estimate(cells: list[Cell], results_dir: Path, workers: int | None, device: str) -> Estimate:
    """The run time of ``cells`` (the ones not stored yet) on ``workers`` worker processes."""
    if not cells:
        return Estimate(0.0, "every cell is stored")
    from bench.scheduler import default_workers, resolve_device

    workers = workers or default_workers(len(cells))
    rates = stored_rates(results_dir, socket.gethostname())
    shapes = {shape(c.config): c.config for c in cells}
    missing = [key for key in shapes if key not in rates]
    if len(missing) > MAX_CALIBRATED:
        return Estimate(None, f"{len(missing)} configs have no stored runs on this host (at most {MAX_CALIBRATED} "
                              "are calibrated in a dry run)")
    try:
        with _worker_threads(workers):
            calibrated = {key: calibrate(shapes[key], resolve_device(device)) for key in missing}
    except Exception as err:  # a missing data set, no CUDA device, a cell that fails: the run will say
        return Estimate(None, f"calibration failed ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})")
    per_step = {**rates, **calibrated}
    costs = [per_step[shape(c.config)] * steady_steps(c.config) for c in cells]
    return Estimate(makespan(costs, workers), _basis(len(shapes) - len(missing), len(missing), len(cells), workers))


def _basis(stored: int, calibrated: int, cells: int, workers: int) -> str:
    parts = []
    if stored:
        parts.append(f"{_count(stored, 'config')} from stored runs on this host")
    if calibrated:
        parts.append(f"calibrated: {CALIBRATION_STEPS} generator steps of each of {_count(calibrated, 'config')}, "
                     "evaluation not included")
    return f"{_count(cells, 'cell')} on {_count(workers, 'worker')}; " + "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


@contextmanager
def _worker_threads(workers: int) -> Iterator[None]:
    """torch's threads as ``run_local`` gives each of its workers (``$OMP_NUM_THREADS``, else the cores
    split evenly) while the block runs; as before after it."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // workers))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
