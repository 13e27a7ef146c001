"""Published 25-Gaussians results beside ours, under the same protocol.

Published grids use different setups (network, data scale, optimizer, length, evaluation), so a number of
ours compares with a published one only when it was trained under that paper's protocol. Each ``Setup``
names the paper-scale preset that writes its protocol down (``ablations/paper/*_grid.yaml``): a stored
config belongs to a setup when it equals one of that preset's configs in everything but its length
(``train.generator_iters``, ``eval.every``), and the table says how long it trained against the protocol.
The published rows are the papers' numbers, copied from the tables named in ``source``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from bench.configdict import flatten

REPO = Path(__file__).resolve().parent.parent
LENGTH = ("train.generator_iters", "eval.every")  # what a shorter budget of a protocol may change


@dataclass(frozen=True)
class Published:
    """One published row: modes captured (of 25) and high-quality samples (%), with the error the paper
    gives (None where it gives none), over ``trials`` runs (None where not stated)."""

    method: str
    modes: float
    modes_err: float | None
    hq_percent: float
    hq_err: float | None
    trials: int | None
    source: str


@dataclass(frozen=True)
class Setup:
    name: str
    spec: str  # the paper-scale preset, relative to the repository: its configs are the protocol
    protocol: str  # the protocol in one line, for the table
    methods: tuple[tuple[str, dict], ...]  # label, and the dotted config values that pick it among the preset's configs
    published: tuple[Published, ...]


SETUPS = (
    Setup(
        name="PacGAN grid",
        spec="ablations/paper/pacgan_grid.yaml",
        protocol="centres {-4..4}^2, std 0.05, fixed 100k set; G 2-400x4-2 BN+ReLU; D 3 maxout (200 x 5); "
        "N(0, 0.02^2); non-saturating; Adam 1e-4, beta1 0.8; batch 100; 400 epochs; 2,500 samples; HQ: 3 std",
        methods=(("GAN", {"critic.pack": 1}), ("PacGAN4", {"critic.pack": 4})),
        published=(
            Published("GAN", 17.3, 0.8, 94.8, 0.7, 10, "PacGAN (Lin et al. 2018) Table 1, ± standard error"),
            Published("PacGAN4", 24.8, 0.2, 93.6, 0.6, 10, "PacGAN (Lin et al. 2018) Table 1, ± standard error"),
        ),
    ),
    Setup(
        name="VEEGAN grid",
        spec="ablations/paper/veegan_grid.yaml",
        protocol="centres {-4..4}^2, std 0.05; G, D 2 x 128 tanh, orthogonal (gain 1.4); z 256-d; batch 512; "
        "Adam G 1e-3 / D 1e-4, beta1 0.5; 25,000 iterations; 2,500 samples; HQ: 3 std",
        methods=(("GAN", {"loss.name": "nonsaturating"}), ("WGAN-GP", {"loss.name": "wgan-gp"})),
        published=(
            Published("GAN", 3.3, None, 0.5, None, None, "VEEGAN (Srivastava et al. 2017) Table 1"),
            Published("WGAN-GP", 24.2, None, 28.7, None, None, "GDPP (Elfeki et al. 2019) Table 1"),
        ),
    ),
)


def _without_length(config: dict) -> str:
    flat = flatten(config)
    return json.dumps({k: v for k, v in flat.items() if k not in LENGTH}, sort_keys=True)


def _protocol_configs(setup: Setup) -> dict[str, tuple[str, int]]:
    """The preset's configs without their length -> (method label, the protocol's generator steps)."""
    return _preset_configs(setup.spec, tuple((name, tuple(picks.items())) for name, picks in setup.methods))


@lru_cache(maxsize=None)
def _preset_configs(spec: str, methods: tuple) -> dict[str, tuple[str, int]]:
    from bench.spec import load

    out = {}
    for cell in load(REPO / spec)[1]:
        flat = flatten(cell.config)
        label = next(name for name, picks in methods if all(flat.get(k) == v for k, v in picks))
        out[_without_length(cell.config)] = (label, cell.config["train"]["generator_iters"])
    return out


def match(config: dict) -> tuple[Setup, str, int] | None:
    """The setup whose protocol ``config`` follows (all but its length), its method label and the protocol's
    generator steps; None when it follows none."""
    key = _without_length(config)
    for setup in SETUPS:
        if key in _protocol_configs(setup):
            return (setup, *_protocol_configs(setup)[key])
    return None


def _value(mean: float, err: float | None, digits: int = 1) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if err is None or math.isnan(err) else f"{mean:.{digits}f} ± {err:.{digits}f}"


def _mean_se(values: pd.Series) -> tuple[float, float]:
    """Mean and standard error (std / sqrt(n)) over trials; NaN where there are too few."""
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    return mean, float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan


def rows(runs: pd.DataFrame) -> list[tuple[Setup, list[dict]]]:
    """Per setup that some stored config follows: its published rows, then ours (one per config: mean ±
    standard error over the trials that trained, n_ok / n), in the order the setup lists its methods."""
    ours: dict[str, list[dict]] = {}
    for _, group in runs.groupby("config_id", sort=False):
        config = json.loads(group["config_json"].iloc[0])
        found = match(config)
        if found is None:
            continue
        setup, method, protocol_steps = found
        ok = group[group["status"] == "ok"]
        modes, modes_se = _mean_se(ok["modes_captured"].dropna())
        hq, hq_se = _mean_se(100 * ok["hq_fraction"].dropna())
        steps = config["train"]["generator_iters"]
        ours.setdefault(setup.name, []).append({
            "row": "ganbench", "method": method, "modes": _value(modes, modes_se), "hq": _value(hq, hq_se),
            "trials": f"{len(ok)}/{len(group)} ok",
            "training": f"{steps:,} of {protocol_steps:,} steps" if steps != protocol_steps else f"{steps:,} steps",
            "source": f"this study, mean ± standard error, git {str(group['git_sha'].iloc[0])[:7]}",
        })
    out = []
    for setup in SETUPS:
        if setup.name not in ours:
            continue
        order = [name for name, _ in setup.methods]
        published = [{"row": "published", "method": p.method, "modes": _value(p.modes, p.modes_err),
                      "hq": _value(p.hq_percent, p.hq_err), "trials": "-" if p.trials is None else str(p.trials),
                      "training": "the protocol", "source": p.source} for p in setup.published]
        out.append((setup, sorted(published + ours[setup.name],
                                  key=lambda r: (order.index(r["method"]), r["row"] != "published"))))
    return out


HEADER = ("", "method", "modes (of 25)", "high quality %", "trials", "training", "source")


def published_table(runs: pd.DataFrame) -> str | None:
    """Markdown: per setup, the protocol and a table of the published rows beside ours; None when no
    stored config follows a published protocol."""
    blocks = []
    for setup, table in rows(runs):
        lines = [f"{setup.name} ({setup.spec}): {setup.protocol}", "",
                 "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
        lines += ["| " + " | ".join(r[k] for k in ("row", "method", "modes", "hq", "trials", "training", "source"))
                  + " |"
                  for r in table]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) or None
