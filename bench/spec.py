"""Ablation specs: YAML -> validated ``Spec`` -> ``expand()`` -> fully resolved ``Cell`` s.

A cell's config is resolved in layers, each filling only what the layers above leave unset:

1. what the spec says (``base``, with the cell's matrix or include overrides applied on dotted paths);
2. the loss's preset (``preset: paper`` or ``toy``; see ``bench.losses``), then the data set's defaults
   (e.g. toy sets use 2-D noise) - a default applies only where the chosen component has that option;
3. each component's own option defaults.

The result is complete, so ``cell_id`` (a hash of config + seed) names exactly what was trained.
Every error is a ``SpecError``: one line naming the file, the dotted path and the reason.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.configdict import MISSING, canonical_json, get_dotted, set_dotted, short_hash
from bench.data import DATASETS
from bench.data.images import CLASSIFIER_SPLIT
from bench.losses import LOSSES
from bench.metrics import METRICS
from bench.models import CRITICS, GENERATORS
from bench.optim import OPTIMIZERS
from bench.registry import Params, Registry, UnknownName

PRESETS = ("paper", "toy")


class SpecError(ValueError):
    """Invalid spec input; ``str()`` is one line: ``file: dotted.path: reason``."""

    def __init__(self, path: str, reason: str, file: str | None = None):
        self.path, self.reason, self.file = path, reason, file
        super().__init__(path, reason, file)

    def in_file(self, file: str | Path) -> SpecError:
        return SpecError(self.path, self.reason, str(file))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.reason}" if where else self.reason


class TrainConfig(Params):
    batch_size: int = Field(64, gt=0, description="m, samples per critic and generator step")
    n_critic: int = Field(5, ge=1, description="critic steps per generator step")
    generator_iters: int = Field(1000, ge=1, description="generator steps (the papers' 'generator iterations')")
    precision: Literal["fp32", "bf16"] = "fp32"
    threads: int = Field(1, ge=1, description="CPU threads of the cell's tensor ops: a kernel may round differently on "
                         "another count, so it is part of the cell, never taken from the machine or --workers")
    checkpoint_every: int = Field(0, ge=0, description="generator steps between checkpoints; 0: none")
    critic_warmup: bool = Field(
        False, description="WGAN reference code: 100 critic steps while g < 25 or g % 500 == 0 (not in the paper)"
    )


class EvalConfig(Params):
    every: int = Field(100, ge=1, description="generator steps between evaluations (and at the end)")
    n_samples: int = Field(2500, gt=0, description="generated (and held-out real) samples per evaluation")
    metrics: list[str] | None = Field(None, description="registered metric names; default: the data set's")
    mode_min_count: int = Field(1, ge=1, description="high-quality samples a mode needs to count as captured")
    w1_samples: int = Field(1000, gt=0, description="points per side for the exact W1 (cost grows as n^3)")
    snapshot_samples: int = Field(64, ge=0, description="generated samples kept at each evaluation (sample grids)")
    feature_space: Literal["auto", "inception-v3-compat", "lenet-mnist", "lenet-stacked-mnist"] = Field(
        "auto", description="image metrics' feature space; auto: Inception if its weights are on this machine, "
        "else the data set's classifier (recorded per row as feature_space, with the classifier's training split); "
        "a classifier space only for data sets that never serve its training images"
    )


# section -> (registry, the key naming the component, default component)
COMPONENTS: dict[str, tuple[Registry, str, str | None]] = {
    "dataset": (DATASETS, "name", None),
    "generator": (GENERATORS, "arch", "mlp"),
    "critic": (CRITICS, "arch", "mlp"),
    "loss": (LOSSES, "name", None),
    "optimizer": (OPTIMIZERS, "name", None),
}
FIXED: dict[str, type[Params]] = {"train": TrainConfig, "eval": EvalConfig}
SECTIONS = ["preset", *COMPONENTS, *FIXED]


# ---------------------------------------------------------------------------------------------- helpers


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, path: str = "") -> M:
    """``model.model_validate(data)``, its first problem a ``SpecError`` at ``path`` + the problem's location;
    an unknown key lists the allowed ones (every spec and search model forbids extra keys)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(part for part in (path, *map(str, e["loc"])) if part)
        allowed = _fields_at(model, e["loc"][:-1]) if e["type"] == "extra_forbidden" else None
        if allowed is not None:
            raise SpecError(where, f"unknown key (allowed: {', '.join(allowed)})") from None
        raise SpecError(where, e["msg"].removeprefix("Value error, ")) from None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The field names of the model nested at ``loc`` in ``model``; None where that is not one model."""
    for key in loc:
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return list(model.model_fields)


# ------------------------------------------------------------------------------------------- resolution


def _mapping(raw: Any, path: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(path, f"must be a mapping, got {type(raw).__name__}")
    return raw


def _validate(model: type[Params], section: str, given: dict, defaults: dict, label: str) -> dict:
    """Validate ``given`` with ``model`` after filling the defaults it has fields for."""
    fields = model.model_fields
    for key in given:
        if key not in fields:
            raise SpecError(f"{section}.{key}", f"not an option of {label} (options: {', '.join(fields) or 'none'})")
    prefix = section + "."
    filled = {k[len(prefix) :]: v for k, v in defaults.items() if k.startswith(prefix) and k[len(prefix) :] in fields}
    return validated(model, {**filled, **given}, section).model_dump(mode="json")


def resolve_config(raw: Any) -> dict:
    """The complete, validated config of one cell (see the module docstring for the layers)."""
    raw = _mapping(raw, "base")
    for key in raw:
        if key not in SECTIONS:
            raise SpecError(key, f"unknown key (allowed: {', '.join(SECTIONS)})")
    preset = raw.get("preset", "paper")
    if preset not in PRESETS:
        raise SpecError("preset", f"must be one of {', '.join(PRESETS)}, got {preset!r}")

    blocks = {section: _mapping(raw.get(section), section) for section in [*COMPONENTS, *FIXED]}
    entries = {}
    for section in ("dataset", "loss"):  # they decide the defaults of the others
        registry, key, _ = COMPONENTS[section]
        if key not in blocks[section]:
            raise SpecError(f"{section}.{key}", "required")
        entries[section] = _lookup(registry, blocks[section][key], f"{section}.{key}")
    defaults = {**entries["dataset"].meta.get("defaults", {})}
    defaults.update(entries["loss"].meta["presets"][preset])

    config: dict[str, Any] = {"preset": preset}
    for section, (registry, key, fallback) in COMPONENTS.items():
        given = dict(blocks[section])
        name = given.pop(key, None) or defaults.get(f"{section}.{key}") or fallback
        if name is None:
            raise SpecError(f"{section}.{key}", "required")
        entry = entries.get(section) or _lookup(registry, name, f"{section}.{key}")
        config[section] = {key: name, **_validate(entry.params, section, given, defaults, f"{registry.kind} {name!r}")}
    for section, model in FIXED.items():
        config[section] = _validate(model, section, blocks[section], defaults, section)

    _check_metrics(config, entries["dataset"])
    _check_penalty_normalization(config)
    _check_packing(config)
    _check_feature_space(config, entries["dataset"])
    return config


def _batchnorm_path(critic: dict) -> str | None:
    """The dotted path that gives ``critic`` batch norm, or None when it has none."""
    if critic.get("norm") == "batch":
        return "critic.norm"
    if critic.get("norm") is None and critic.get("batchnorm"):
        return "critic.batchnorm"
    return None


def _check_penalty_normalization(config: dict) -> None:
    """WGAN-GP section 4: the gradient penalty constrains each sample's gradient, which batch norm (a sample's
    score depends on its batch) invalidates; the paper uses layer norm. Rejected unless the spec opts in."""
    loss, path = config["loss"], _batchnorm_path(config["critic"])
    if path and loss.get("gp_lambda") and not loss.get("allow_batchnorm_critic"):
        fix = "norm: layer" if "norm" in config["critic"] else "batchnorm: false"
        raise SpecError(path, f"a gradient penalty with a batch-norm critic is invalid (WGAN-GP section 4): use "
                        f"critic {fix}, drop the cell with exclude:, or opt in with loss.allow_batchnorm_critic: true")


def _check_packing(config: dict) -> None:
    """A packed critic (PacGAN) scores groups of ``pack`` samples: evaluation must hand it whole groups, and
    neither a per-sample gradient penalty nor a per-point value surface is defined for it."""
    pack = config["critic"].get("pack", 1)
    if pack == 1:
        return
    if config["loss"].get("gp_lambda"):
        raise SpecError("critic.pack", "a gradient penalty is per sample; a packed critic scores groups of samples")
    if config["eval"]["n_samples"] % pack:
        raise SpecError("eval.n_samples", f"must be a multiple of critic.pack ({pack})")
    if "critic_surface" in config["eval"]["metrics"]:
        raise SpecError("critic.pack", "a packed critic has no value per point: drop critic_surface from eval.metrics")


def _lookup(registry: Registry, name: Any, path: str):
    if not isinstance(name, str):
        raise SpecError(path, f"must be a name, got {name!r}")
    try:
        return registry.entry(name)
    except UnknownName as err:
        raise SpecError(path, str(err)) from None


def _check_metrics(config: dict, dataset_entry) -> None:
    ev = config["eval"]
    if ev["metrics"] is None:
        ev["metrics"] = list(dataset_entry.meta.get("default_metrics", ["w_estimate"]))
    tags = dataset_entry.meta.get("tags", set())
    for i, name in enumerate(ev["metrics"]):
        entry = _lookup(METRICS, name, f"eval.metrics[{i}]")
        missing = set(entry.meta.get("requires", ())) - tags
        if missing:
            raise SpecError(
                f"eval.metrics[{i}]",
                f"metric {name!r} needs a data set tagged {sorted(missing)}; {dataset_entry.name!r} is {sorted(tags)}",
            )


def _check_feature_space(config: dict, dataset_entry) -> None:
    """A feature space must never have seen the images it measures: the classifier spaces are only for the
    data sets that declare one (``classifier_space``), which never serve the classifier's training images
    (``bench.data.images``); any other data set could hold them."""
    space = config["eval"]["feature_space"]
    if space in ("auto", "inception-v3-compat") or dataset_entry.meta.get("classifier_space"):
        return
    disjoint = ", ".join(e.name for e in DATASETS if e.meta.get("classifier_space"))
    raise SpecError(
        "eval.feature_space",
        f"{space} was trained on MNIST test images ({CLASSIFIER_SPLIT}); only data sets that never serve them "
        f"may use it ({disjoint}), not {dataset_entry.name!r}: use inception-v3-compat or auto",
    )


# -------------------------------------------------------------------------------------------- spec, cells

_STUDY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Spec(BaseModel):
    """An ablation: a base config, a matrix of dotted-path alternatives, seeds, excludes and includes; or
    a search (``bench.search``): the same base and seeds with a ``search`` block."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_STUDY_NAME, description="study name: results go to results/<name>/")
    description: str = ""
    data_root: str | None = Field(
        None, description="directory of the image data sets, relative to the spec file; $BENCH_DATA overrides it. "
        "A machine setting: not part of any cell's config or cell_id"
    )
    wall_clock: bool = Field(
        False, description="the study compares training time (WGAN-GP Fig. 3): every cell trains alone, never "
        "stacked, so its train_s is its own, measured as every other cell's"
    )
    base: dict[str, Any]
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    matrix: dict[str, list[Any]] | None = None
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    include: list[dict[str, Any]] = Field(default_factory=list)
    search: dict[str, Any] | None = Field(None, description="Optuna search of bench.tune (validated by bench.search)")
    compare: list[dict[str, Any]] | None = Field(
        None, min_length=2, max_length=2, description="the question the study answers: two config selections "
        "(dotted path -> value), each matching at least one config; the summary prints first minus second on every "
        "quality metric with a 95% interval over seeds"
    )

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seeds repeat {repeated}: each seed is one run of every config")
        return seeds


@dataclass(frozen=True)
class Cell:
    """One training run: a resolved config and a seed."""

    study: str
    config: dict
    seed: int
    overrides: dict  # the matrix/include values that made this cell, for display

    @property
    def config_id(self) -> str:
        """Same for every seed of a config: what seeds are aggregated over."""
        return short_hash(self.config)

    @property
    def cell_id(self) -> str:
        return short_hash({"config": self.config, "seed": self.seed})


MAX_CELLS = 100_000  # a spec expanding to more is refused outright (split the study)


def _variants(spec: Spec) -> list[dict]:
    """The override dicts of the matrix's cartesian product, minus nothing yet (excludes need the configs)."""
    if spec.matrix is None:
        return [{}]
    if not spec.matrix:
        raise SpecError("matrix", "empty: give at least one dotted path with a list of values, or drop it")
    for path, values in spec.matrix.items():
        if not values:
            raise SpecError(f"matrix.{path}", "empty list of values")
    n_cells = math.prod(len(v) for v in spec.matrix.values()) * len(spec.seeds)
    if n_cells > MAX_CELLS:
        raise SpecError("matrix", f"{n_cells} cells; at most {MAX_CELLS} per study (split it into several)")
    keys = list(spec.matrix)
    return [dict(zip(keys, combo)) for combo in itertools.product(*spec.matrix.values())]


def _describe(overrides: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


def _build(base: dict, overrides: dict) -> dict:
    """The resolved config of ``base`` with a cell's ``overrides``. An error the base has by itself names
    ``base.<path>``; one that only this cell has names the cell."""
    raw = copy.deepcopy(base)
    for path, value in overrides.items():
        try:
            set_dotted(raw, path, value)
        except TypeError as err:
            raise SpecError(str(err),
                            f"is not a mapping, so {path!r} cannot be set (cell: {_describe(overrides)})") from None
    try:
        return resolve_config(raw)
    except SpecError as err:
        if not overrides or _same_error(base, err):
            raise in_base(err) from None
        raise SpecError(err.path, f"{err.reason} (cell: {_describe(overrides)})") from None


def in_base(err: SpecError) -> SpecError:
    """An error of ``resolve_config`` on the spec's ``base``, named as written there: ``base.<path>``."""
    return SpecError(f"base.{err.path}", err.reason, err.file)


def _same_error(base: dict, err: SpecError) -> bool:
    try:
        resolve_config(base)
    except SpecError as own:
        return (own.path, own.reason) == (err.path, err.reason)
    return False


def _matches(config: dict, rule: dict) -> bool:
    return all(
        (got := get_dotted(config, path, MISSING)) is not MISSING and canonical_json(got) == canonical_json(want)
        for path, want in rule.items()
    )


def expand(spec: Spec) -> list[Cell]:
    """Every cell of the spec: matrix product (minus excludes), then includes, times seeds; a config
    listed twice is trained once."""
    built = [(o, _build(spec.base, o)) for o in _variants(spec)]
    for i, rule in enumerate(spec.exclude):
        for path in rule:
            if all(get_dotted(c, path, MISSING) is MISSING for _, c in built):
                raise SpecError(f"exclude[{i}].{path}", "is not an option of any cell")
    built = [(o, c) for o, c in built if not any(_matches(c, rule) for rule in spec.exclude)]
    built += [(o, _build(spec.base, o)) for o in spec.include]
    if not built:
        raise SpecError("exclude", "excludes every cell of the matrix")
    for i, rule in enumerate(spec.compare or []):
        if not any(_matches(c, rule) for _, c in built):
            raise SpecError(f"compare[{i}]", f"selects no config of the study ({_describe(rule)})")
    cells, seen = [], set()
    for overrides, config in built:
        key = canonical_json(config)
        if key in seen:
            continue
        seen.add(key)
        cells += [Cell(spec.name, config, seed, overrides) for seed in spec.seeds]
    return cells


def parse_spec(data: Any) -> Spec:
    if not isinstance(data, dict):
        raise SpecError("", f"a spec must be a YAML mapping, got {type(data).__name__}")
    return validated(Spec, data)


MAX_YAML_NODES = 100_000  # values in a spec after expanding aliases: a YAML alias bomb stops here


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: no tags that construct objects or run code), which also
    refuses a mapping with a repeated key instead of silently keeping the last value."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"repeated key {key_node.value!r}",
                                                            key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _check_size(data: Any) -> None:
    """Count values as if every alias were written out; stop past ``MAX_YAML_NODES`` (alias bombs and
    recursive aliases both get there quickly)."""
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise SpecError("", f"more than {MAX_YAML_NODES} values once aliases are expanded (an alias bomb?)")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def read_yaml(path: str | Path) -> Any:
    """Safe-load one YAML document; a missing file or bad YAML is a one-line ``SpecError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", "file not found", str(path)) from None
    except UnicodeDecodeError as err:
        raise SpecError("", f"not UTF-8 text (byte {err.start})", str(path)) from None
    except OSError as err:
        raise SpecError("", f"cannot read: {err.strerror}", str(path)) from None
    try:
        data = yaml.load(text, Loader=_SpecLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = ", ".join(filter(None, [getattr(err, "context", None), getattr(err, "problem", None)]))
        problem = problem or str(err).splitlines()[0]
        raise SpecError("", f"invalid YAML: {where}{problem}", str(path)) from None
    except RecursionError:
        raise SpecError("", "invalid YAML: nested too deeply", str(path)) from None
    try:
        _check_size(data)
    except SpecError as err:
        raise err.in_file(path) from None
    return data


def load(path: str | Path) -> tuple[Spec, list[Cell]]:
    """Read, validate and expand a spec file."""
    try:
        spec = parse_spec(read_yaml(path))
        return spec, expand(spec)
    except SpecError as err:
        raise err.in_file(path) from None
