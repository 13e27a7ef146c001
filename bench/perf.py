"""``python -m bench.perf [--quick] [--end-to-end]``: how fast the harness trains, against a plain loop.

Each case times, in this one process, the harness's trainer (``bench.train``) and ``bench.reference``, the
textbook Algorithm 1 with torch's default optimizers and nothing else (``reference_train``), on the same
config, networks, data and random streams: generator iterations per second of training (initialization and
evaluation excluded; the first iterations are a warm-up). The two alternate in ``--rounds`` pairs; the result is the
median of the pairs' ratios, reported with their range and the share of CPU time the hypervisor gave
other guests meanwhile (``steal``). Cases with several seeds train them as one stacked ensemble and report
per-cell throughput (k x iterations / s). ``outcome`` trains the same config to the end with the
reference (fp32) and the harness (fp32 and bf16, stacked seeds) and compares the mode metrics they reach:
speed must not come from computing something else. ``--end-to-end`` times the quickstart ablation: the
same cells trained one after another by the reference loop, against ``bench.run``'s scheduler (worker per
core, stacked seeds) as the spec is written (fp32) and with ``train.precision: bf16``, each evaluated at
the end with the same metrics.

Every row is appended to ``results/perf/history.parquet`` (with versions, git sha, host, threads) so the
numbers have a history; a table is printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from bench import reference, seeding, store
from bench.data import DATASETS
from bench.metrics.modes import mode_metrics
from bench.metrics.transport import exact_w1
from bench.spec import load, resolve_config
from bench.train import train, train_ensemble

TOY = {"preset": "toy", "dataset": {"name": "25gaussians"}, "eval": {"metrics": ["modes"], "n_samples": 2500}}


def toy_config(loss: dict, width: int, optimizer: dict | None = None, **train) -> dict:
    return resolve_config({**TOY, "generator": {"arch": "mlp", "width": width},
                           "critic": {"arch": "mlp", "width": width},
                           "loss": loss, "optimizer": optimizer or {}, "train": train})


def dcgan_config(**train) -> dict:
    return resolve_config({"preset": "paper", "dataset": {"name": "digits", "image_size": 32},
                           "generator": {"arch": "dcgan", "ngf": 32}, "critic": {"arch": "dcgan", "ndf": 32},
                           "loss": {"name": "wgan", "clip_value": 0.01},
                           "train": {"critic_warmup": False, **train},  # steady-state steps, not the warm-up's 100
                           "eval": {"metrics": [], "n_samples": 64}})


# --------------------------------------------------------------------------------------- the reference


def reference_train(
    config: dict, seed: int, iters: int, warmup: int | None = None
) -> tuple[float, torch.nn.Module, object]:
    """``bench.reference``'s plain Algorithm 1 (torch's default optimizers; fp32, whatever ``config``'s
    precision) on ``config``'s networks, data, optimizer settings and ``seed``'s streams: seconds for
    ``iters`` generator steps after ``warmup`` steps (default: a tenth of ``iters``) that are trained but
    not timed; returns (seconds, generator, dataset)."""
    warmup = max(1, iters // 10) if warmup is None else warmup
    config = {**config, "train": {**config["train"], "generator_iters": warmup + iters, "precision": "fp32"}}
    run = reference.train(config, seed)
    return run.clock[warmup + iters] - run.clock[warmup], run.generator, run.dataset


def final_modes(G: torch.nn.Module, data, seed: int, n: int = 2500) -> dict[str, float]:
    """Mode metrics of ``n`` samples of a reference-trained generator (what the harness's ``modes`` gives)."""
    with torch.no_grad():
        z = torch.randn(n, G.net[0].in_features, generator=seeding.generator(seed, "eval"))
        samples = G(z)
    centers, std = data.modes
    return mode_metrics(samples, centers, std)


# -------------------------------------------------------------------------------------------- the cases


def harness_rate(config: dict, iters: int, seeds: list[int]) -> tuple[float, list]:
    """Generator iterations per second per cell of the harness's trainer (training clock only), warm-up
    excluded: a run of a tenth of ``iters`` is subtracted from the full run. The cell computes with the
    process's torch threads, as the reference beside it does (a cell's own default is one thread)."""
    warmup = max(1, iters // 10)

    def run(n: int):
        cfg = copy.deepcopy(config)
        cfg["train"]["generator_iters"] = n
        cfg["train"]["threads"] = torch.get_num_threads()
        cfg["eval"]["every"] = n
        results = train_ensemble(cfg, seeds) if len(seeds) > 1 else [train(cfg, seeds[0])]
        return results[0].train_s, results

    short, _ = run(warmup)
    full, results = run(warmup + iters)
    return len(seeds) * iters / max(full - short, 1e-9), results


def speed_cases(quick: bool) -> list[dict]:
    n512, n128, ndc = (15, 80, 8) if quick else (30, 200, 15)  # per round
    k = 4
    cases = []
    for name, loss, width, iters in [("toy wgan-gp w512", {"name": "wgan-gp"}, 512, n512),
                                     ("toy wgan-gp w128", {"name": "wgan-gp"}, 128, n128),
                                     ("toy wgan-clip w512", {"name": "wgan", "clip_value": 0.01}, 512, n512)]:
        for precision in ("fp32", "bf16"):
            cases.append({"case": name, "config": toy_config(loss, width, precision=precision), "iters": iters,
                          "seeds": [0], "variant": f"harness {precision}"})
        if width == 128:
            for precision in ("fp32", "bf16"):
                cases.append({"case": name, "config": toy_config(loss, width, precision=precision), "iters": iters,
                              "seeds": list(range(k)), "variant": f"harness {precision}, {k} seeds stacked"})
    for precision in ("fp32", "bf16"):
        cases.append({"case": "dcgan 32x32 wgan", "config": dcgan_config(precision=precision), "iters": ndc,
                      "seeds": [0], "variant": f"harness {precision}"})
    return cases


def steal_meter() -> Callable[[], float]:
    """Start measuring the share of CPU time the hypervisor gave to other guests (``steal`` in
    /proc/stat); the returned function gives it since the start, nan where /proc/stat is not there. On a
    shared virtual machine it explains runs that are slow for no reason of their own."""

    def read() -> np.ndarray | None:
        try:
            with open("/proc/stat") as f:
                # the cpu line: user nice system idle iowait irq softirq steal
                return np.array(f.readline().split()[1:9], dtype=float)
        except (OSError, ValueError):
            return None

    start = read()

    def since() -> float:
        end = read()
        if start is None or end is None or (end - start).sum() <= 0:
            return float("nan")
        delta = end - start
        return float(delta[7] / delta.sum())

    return since


def run_speed(quick: bool, rounds: int, console: Console) -> list[dict]:
    """Each variant against the reference in ``rounds`` alternating pairs (reference, harness), so that a
    machine whose speed drifts (other guests, frequency) slows both sides alike: the ratio is the median of
    the pairs' ratios, with their range; the rates are medians."""
    rows = []
    for case in speed_cases(quick):
        name, config, iters = case["case"], case["config"], case["iters"]
        steal = steal_meter()
        pairs = []
        for _ in range(rounds):
            seconds, _, _ = reference_train(config, 0, iters)
            rate, _ = harness_rate(config, iters, case["seeds"])
            pairs.append((iters / seconds, rate))
        ref_rates, rates = np.array(pairs).T
        ratios = rates / ref_rates
        rows.append({"case": name, "variant": case["variant"], "iters_per_s": float(np.median(rates)),
                     "reference_iters_per_s": float(np.median(ref_rates)), "ratio": float(np.median(ratios)),
                     "ratio_min": float(ratios.min()), "ratio_max": float(ratios.max()), "rounds": rounds,
                     "cpu_steal": steal()})
        console.print(f"{name}: {case['variant']} {np.median(rates):.2f} it/s per cell, reference "
                      f"{np.median(ref_rates):.2f}: {np.median(ratios):.2f}x ({ratios.min():.2f}-{ratios.max():.2f})")
    return rows


def run_outcome(quick: bool, console: Console) -> list[dict]:
    """Same config to the end: reference fp32 vs harness fp32 and harness bf16 with two stacked seeds."""
    iters = 500 if quick else 2000
    base = {"name": "wgan-gp"}
    rows = []
    quickstart_lr = {"lr": 1e-3}
    for seed in (0, 1):
        cfg = toy_config(base, 128, quickstart_lr, generator_iters=iters)
        seconds, G, data = reference_train(cfg, seed, iters)
        rows.append({"case": f"outcome wgan-gp w128 {iters} it", "variant": "reference fp32", "seed": seed,
                     "iters_per_s": iters / seconds, **final_modes(G, data, seed)})
    for precision in ("fp32", "bf16"):
        cfg = toy_config(base, 128, quickstart_lr, generator_iters=iters, precision=precision)
        cfg["eval"]["every"] = iters
        for seed, result in zip((0, 1), train_ensemble(cfg, [0, 1])):
            rows.append({"case": f"outcome wgan-gp w128 {iters} it", "variant": f"harness {precision}, 2 seeds stacked",
                         "seed": seed, "iters_per_s": 2 * iters / result.train_s,
                         **{k: result.final[k] for k in ("modes_captured", "hq_fraction", "mode_kl")}})
    for r in rows:
        console.print(f"{r['case']}: {r['variant']} seed {r['seed']}: {r['modes_captured']:.0f} modes, "
                      f"hq {r['hq_fraction']:.3f}")
    return rows


def run_metrics(console: Console) -> list[dict]:
    """Evaluation throughput: mode metrics on 2,500 toy samples; exact W1 (POT) on 1,000 + 1,000 points;
    LeNet feature extraction (the ``lenet-mnist`` space's network; untrained weights, the same compute)."""
    from bench.metrics.features import LeNet

    data = DATASETS.get("25gaussians")(DATASETS.entry("25gaussians").params(), 0)
    x = data.sample(2500)
    centers, std = data.modes
    rows = []
    for name, fn, n, reps in [("mode metrics (2500 samples)", lambda: mode_metrics(x, centers, std), 2500, 50),
                              ("exact W1 via POT (1000 vs 1000)", lambda: exact_w1(x[:1000], x[1000:2000]), 1000, 5)]:
        fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        rows.append({"case": name, "variant": "harness", "samples_per_s": n * reps / (time.perf_counter() - t)})
    net = LeNet().eval()
    images = torch.rand(1000, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        net.features(images)
        t = time.perf_counter()
        for _ in range(5):
            net.features(images)
    rows.append({"case": "lenet features (32x32)", "variant": "harness",
                 "samples_per_s": 5000 / (time.perf_counter() - t)})
    for r in rows:
        console.print(f"{r['case']}: {r['samples_per_s']:.0f} samples/s")
    return rows


def run_end_to_end(console: Console, workers: int | None) -> list[dict]:
    """The quickstart: the same cells trained one after another by the reference loop, then by
    ``bench.run``'s local scheduler as the spec is written (fp32), then by the scheduler with
    ``train.precision: bf16``. Each side evaluates at the end with the same metrics (the harness also
    evaluates every ``eval.every`` steps). Each harness row names the scheduler's groups and their wall
    times (``groups``): the two workers' loads, which bound the end-to-end time."""
    from bench.scheduler import ENSEMBLE, run_local

    spec, cells = load(Path(__file__).resolve().parent.parent / "ablations" / "quickstart.yaml")
    t = time.perf_counter()
    reference_rows = []
    for cell in cells:
        _, G, data = reference_train(cell.config, cell.seed, cell.config["train"]["generator_iters"], warmup=0)
        reference_rows.append({"loss": cell.config["loss"]["name"], **final_modes(G, data, cell.seed)})
        with torch.no_grad():
            samples = G(torch.randn(1000, G.net[0].in_features))
        exact_w1(samples, data.reference(1000))  # the harness measures W1 at the end too
    reference_s = time.perf_counter() - t
    modes = {"reference": pd.DataFrame(reference_rows).groupby("loss")["modes_captured"].mean()}
    rows = [{"case": "quickstart end to end", "variant": "reference, cells in turn", "wall_s": reference_s,
             "ratio": 1.0, "modes_captured": float(modes["reference"].mean())}]
    for precision in ("fp32", "bf16"):
        variant = [dataclasses.replace(c, config=copy.deepcopy(c.config)) for c in cells]
        for cell in variant:
            cell.config["train"]["precision"] = precision
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            report = run_local(variant, Path(tmp) / spec.name, workers=workers, progress=False, ensemble=ENSEMBLE)
            harness_s = time.perf_counter() - t
            runs = store.load(Path(tmp) / spec.name)["runs"]
        assert len(report.ran) == len(cells) and set(report.statuses.values()) == {"ok"}, report
        modes[precision] = runs.groupby("loss.name")["modes_captured"].mean()
        by_id = runs.set_index("cell_id")  # a group's cells share their ensemble's wall time
        groups = ", ".join(
            f"{'+'.join(dict.fromkeys(by_id.loc[group, 'loss.name']))} {by_id.loc[group, 'wall_s'].max():.0f} s"
            for group in report.groups)
        rows.append({"case": "quickstart end to end", "variant": f"harness {precision} (bench.run scheduler)",
                     "wall_s": harness_s, "ratio": reference_s / harness_s,
                     "modes_captured": float(modes[precision].mean()), "groups": groups})
        console.print(f"quickstart end to end: reference loop, cells in turn {reference_s:.0f} s; harness {precision} "
                      f"{harness_s:.0f} s ({reference_s / harness_s:.2f}x); groups: {groups}")
    console.print("mean modes captured per loss (reference / harness fp32 / harness bf16): " + ", ".join(
        f"{loss} " + " / ".join(f"{modes[k][loss]:.1f}" for k in ("reference", "fp32", "bf16"))
        for loss in modes["reference"].index))
    return rows


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer iterations (about a minute)")
    p.add_argument("--end-to-end", action="store_true", help="also time the quickstart ablation (several minutes)")
    p.add_argument("--only-end-to-end", action="store_true", help="time the quickstart ablation and nothing else")
    p.add_argument("--rounds", type=_positive_int, default=None,
                   help="alternating reference/harness pairs per speed case (default 3; 2 with --quick)")
    p.add_argument("--no-outcome", action="store_true", help="skip the trained-to-the-end comparison")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: torch's, all cores)")
    p.add_argument("--out", default="results/perf/history.parquet", help="parquet the rows are appended to")
    args = p.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=None if sys.stdout.isatty() else 200)
    stamp = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
             "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), **store.provenance()}
    rows = []
    if not args.only_end_to_end:
        rows += run_speed(args.quick, rounds, console) + run_metrics(console)
    if not (args.no_outcome or args.only_end_to_end):
        rows += run_outcome(args.quick, console)
    if args.end_to_end or args.only_end_to_end:
        steal = steal_meter()
        rows += [{**r, "cpu_steal": steal()} for r in run_end_to_end(console, None)]
    frame = pd.DataFrame([{**stamp, **r} for r in rows])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        frame = pd.concat([pd.read_parquet(out), frame], ignore_index=True)
    frame.to_parquet(out, index=False)

    title = (f"bench.perf ({torch.get_num_threads()} threads; speed: median of {rounds} alternating reference/harness "
             f"pairs; steal: CPU time taken by other guests of this VM; history: {out})")
    table = Table(title=title, title_justify="left")
    for col in ("case", "variant", "it/s per cell", "reference it/s", "x reference", "(range)", "samples/s",
                "wall s", "modes", "hq", "steal"):
        table.add_column(col, justify="left" if col in ("case", "variant") else "right")

    def fmt(r, key, spec):
        value = r.get(key)
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)

    for r in rows:
        spread = f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}" if "ratio_min" in r else ""
        table.add_row(r["case"], r["variant"], fmt(r, "iters_per_s", ".2f"), fmt(r, "reference_iters_per_s", ".2f"),
                      fmt(r, "ratio", ".2f"), spread,
                      fmt(r, "samples_per_s", ".0f"), fmt(r, "wall_s", ".0f"), fmt(r, "modes_captured", ".0f"),
                      fmt(r, "hq_fraction", ".3f"), fmt(r, "cpu_steal", ".0%"))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
