"""A stored study as the reports see it: the parquet tables (through ``bench.store.load``) and the files
beside them (``spec.yaml``, ``samples/<cell_id>.npz``, ``artifacts/<cell_id>.npz``). Nothing here trains."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench import store
from bench.metrics import METRICS, column
from bench.summary import label_columns, quality_columns, varying_columns

METHOD_PREFIXES = ("loss.", "optimizer.")
_ARTIFACT = re.compile(r"^(?P<name>.+)@(?P<iter>\d+)$")


class StudyError(ValueError):
    """A study directory that cannot be reported on; ``str()`` is one line naming the path."""


def estimate_columns() -> list[str]:
    """The columns in which a critic reports its own distance estimate (WGAN Figs. 3-4): read from the
    ``w_estimate`` metric's registration, not listed here."""
    return [c.name for c in METRICS.entry("w_estimate").meta["columns"]]


@dataclass
class Study:
    path: Path
    runs: pd.DataFrame
    curves: pd.DataFrame
    spec_text: str = ""
    spec: dict = field(default_factory=dict)
    _arrays: dict = field(default_factory=dict, repr=False)  # npz files already read

    @classmethod
    def load(cls, path: str | Path) -> Study:
        path = Path(path)
        if not path.is_dir():
            raise StudyError(f"{path}: not a study directory (expected results/<study>/)")
        tables = store.load(path)
        runs, curves = tables["runs"], tables["curves"]
        if runs.empty:
            raise StudyError(f"{path}: no stored cells (cells/*.parquet); run `python -m bench.run SPEC.yaml` first")
        spec_file = path / "spec.yaml"
        text = spec_file.read_text() if spec_file.exists() else ""
        try:
            spec = yaml.safe_load(text) if text else {}
        except yaml.YAMLError:
            spec = {}
        runs = runs.sort_values(["config_id", "seed"], kind="stable").reset_index(drop=True)
        return cls(path, runs, curves, text, spec if isinstance(spec, dict) else {})

    # ------------------------------------------------------------------------------------------ config axes

    @property
    def name(self) -> str:
        return str(self.runs["study"].iloc[0])

    @cached_property
    def axes(self) -> list[str]:
        """The config columns that tell this study's configs apart (``bench.summary.varying_columns``)."""
        return varying_columns(self.runs)

    @cached_property
    def labels(self) -> dict[str, str]:
        """config_id -> a short label built from the axes, e.g. ``loss=wgan, clip_value=0.01``."""
        out = {}
        for config_id, group in self.runs.groupby("config_id", sort=False):
            out[config_id] = describe(group.iloc[0], self.axes) or "base"
        return out

    def label(self, config_id: str, axes: list[str]) -> str:
        """The label of ``config_id`` on a subset of the axes."""
        row = self.runs[self.runs["config_id"] == config_id].iloc[0]
        return describe(row, axes) or "base"

    @property
    def method_axes(self) -> list[str]:
        """Axes that choose the training method (loss and optimizer); the others choose the setting
        (architecture, data set, schedule)."""
        return [a for a in self.axes if a.startswith(METHOD_PREFIXES)]

    @property
    def setting_axes(self) -> list[str]:
        return [a for a in self.axes if not a.startswith(METHOD_PREFIXES)]

    def config_order(self) -> list[str]:
        """config_ids sorted by their axis values (the order every figure uses)."""
        first = self.runs.drop_duplicates("config_id")
        if self.axes:
            first = first.sort_values(self.axes, kind="stable", na_position="first")
        return first["config_id"].tolist()

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.runs["seed"].unique())

    @property
    def is_budget(self) -> bool:
        """A budget study (``search.budget``: one Optuna study per loss; ``reports/budget.py``)."""
        search = self.spec.get("search")
        return isinstance(search, dict) and isinstance(search.get("budget"), dict)

    @property
    def trains_generator(self) -> bool:
        """False when every cell held the generator fixed (``generator.fixed``: only the critic trained)."""
        return "generator.fixed" not in self.runs or not self.runs["generator.fixed"].astype(bool).all()

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "ok"]

    def excluded(self, statuses: tuple[str, ...] = ("ok",)) -> list[str]:
        """One note per config with cells whose status is not in ``statuses`` (left out of a figure)."""
        bad = self.runs[~self.runs["status"].isin(statuses)]
        counts = bad.groupby(["config_id", "status"], sort=False).size()
        return [f"left out: {n} {status} cell(s) of {self.labels[cid]}" for (cid, status), n in counts.items()]

    def pick_quality(self, preference: tuple[str, ...]) -> str | None:
        """The first of ``preference`` this study measured, else its first quality column, else None."""
        cols = self.quality_columns()
        return next((c for c in preference if c in cols), cols[0] if cols else None)

    def quality_columns(self, *, estimates: bool = False) -> list[str]:
        """Final-metric columns the catalogue marks as quality measures (higher or lower is better), in
        catalogue order; the critics' own estimates only when ``estimates``."""
        cols = quality_columns(self.runs)
        return cols if estimates else [c for c in cols if c not in estimate_columns()]

    # ------------------------------------------------------------------------------------------- curves

    def curve(self, metric: str) -> pd.DataFrame:
        """Long-format points of ``metric`` joined with each cell's config_id, seed, status and label."""
        points = self.curves[self.curves["metric"] == metric]
        keep = ["cell_id", "config_id", "seed", "status", "feature_space", "ensemble_size"]
        points = points.merge(self.runs[[c for c in keep if c in self.runs]], on="cell_id")
        points["config"] = points["config_id"].map(self.labels)
        return points.sort_values(["config_id", "seed", "generator_iter"]).reset_index(drop=True)

    def curve_metrics(self) -> list[str]:
        return list(dict.fromkeys(self.curves["metric"]))

    def feature_spaces(self) -> list[str]:
        """The feature spaces the study's image metrics were measured in (``bench.summary.label_columns``)."""
        return [str(v) for c in label_columns(self.runs) for v in self.runs[c].dropna().unique()]

    def panels(self, metrics: list[str]) -> list[tuple[str, str | None]]:
        """(metric, feature space) pairs to draw: with more than one feature space in the study, a metric
        is split by it, so no panel or table row mixes values measured in different spaces."""
        spaces = self.feature_spaces()
        return [(m, s) for m in metrics for s in (spaces if len(spaces) > 1 else [None])]

    def quality_curve_metrics(self) -> list[str]:
        """Curve metrics the catalogue marks as quality measures, critics' own estimates left out."""
        return [m for m in self.curve_metrics() if _is_quality(m) and m not in estimate_columns()]

    # ----------------------------------------------------------------------------------- files beside it

    def samples(self, cell_id: str, key: str = "samples") -> np.ndarray | None:
        """One array of ``samples/<cell_id>.npz``: ``samples`` (final) or an ``iter_XXXXXXXX`` snapshot;
        None if absent. Only that array is read (image studies store thousands of samples per cell)."""
        path = self.path / "samples" / f"{cell_id}.npz"
        if not path.exists():
            return None
        with np.load(path) as z:
            return z[key] if key in z.files else None

    def artifacts(self, cell_id: str) -> dict[str, dict[int, np.ndarray]]:
        """``artifacts/<cell_id>.npz`` as ``{name: {generator_iter: array}}``; {} if none."""
        out: dict[str, dict[int, np.ndarray]] = {}
        for key, array in self._npz(self.path / "artifacts" / f"{cell_id}.npz").items():
            m = _ARTIFACT.match(key)
            if m:
                out.setdefault(m["name"], {})[int(m["iter"])] = array
        return out

    def has_artifact(self, name: str) -> bool:
        """Whether any ok cell stored artifact ``name`` (reads only the archives' key lists)."""
        for cell_id in self.ok["cell_id"]:
            path = self.path / "artifacts" / f"{cell_id}.npz"
            if path.exists():
                with np.load(path) as z:
                    if any(k.rpartition("@")[0] == name for k in z.files):
                        return True
        return False

    def _npz(self, path: Path) -> dict[str, np.ndarray]:
        if path not in self._arrays:
            if not path.exists():
                self._arrays[path] = {}
            else:
                with np.load(path) as z:
                    self._arrays[path] = {k: z[k] for k in z.files}
        return self._arrays[path]

    def has_samples(self, cell_id: str | None = None) -> bool:
        """Whether ``cell_id`` (default: any ok cell) stored its final samples."""
        for c in [cell_id] if cell_id else self.ok["cell_id"]:
            path = self.path / "samples" / f"{c}.npz"
            if path.exists():
                with np.load(path) as z:
                    if "samples" in z.files:
                        return True
        return False

    def spec_summary(self, short: bool = False) -> str:
        """One line: where the spec is and (unless ``short``) what it says it reproduces."""
        desc = "" if short else " ".join(str(self.spec.get("description", "")).split())
        where = self.path / "spec.yaml"
        return f"`{where}` (study `{self.spec.get('name', self.name)}`)" + (f": {desc}" if desc else "")


def _is_quality(name: str) -> bool:
    try:
        return column(name).higher_is_better is not None
    except KeyError:
        return False


def describe(row: pd.Series, axes: list[str]) -> str:
    """``loss=wgan, clip_value=0.01`` for a runs row: its values on the axes (missing ones left out; a
    section named once, so ``loss.clip_value`` after ``loss.name`` reads ``clip_value``)."""
    parts, sections = [], set()
    for a in axes:
        value = row.get(a)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        section, _, option = a.partition(".")
        if a.endswith((".name", ".arch")) and option in ("name", "arch"):
            name = section
        else:
            name = option if section in sections else a
        sections.add(section)
        parts.append(f"{name}={_short(value)}")
    return ", ".join(parts)


def _short(value) -> str:
    if isinstance(value, str) and value.startswith("["):
        try:
            return ",".join(map(str, json.loads(value)))
        except ValueError:
            return value
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)

