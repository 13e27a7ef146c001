"""Search specs: the ``search`` block of a spec, validated, and the configs of its trials.

A search spec is an ablation spec (``bench.spec``) whose ``search`` block says what ``bench.tune`` asks
Optuna to optimize::

    search:
      objective: {metric: w1_exact, direction: minimize}   # direction defaults from the metric catalogue
      n_trials: 20
      sampler: {name: tpe, seed: 0}        # tpe | random | cmaes | grid; other keys go to Optuna's sampler
      pruner: {name: median}               # median | hyperband | none; other keys go to Optuna's pruner
      space:                               # dotted config paths
        loss.clip_value: {type: float, low: 0.001, high: 0.1, log: true}
        train.n_critic: {type: int, low: 1, high: 10}
        optimizer.betas: {type: categorical, choices: [[0.0, 0.9], [0.5, 0.9]]}
      enqueue:                             # trials to run first (e.g. the paper's values), optional
        - {loss.clip_value: 0.01, train.n_critic: 5, optimizer.betas: [0.5, 0.9]}

A ``budget`` block inside ``search`` (``losses``: per loss the blocks it ``set``s on ``base`` and its own
``space``; ``samplers``, which must include random; ``threshold``) makes one plain search per loss and
sampler (``arms``), each loss searching as many parameters as the others; ``reports/budget.py`` reads them.

A trial's config is ``base`` with the trial's values set on their dotted paths, then resolved like any
cell (``bench.spec.resolve_config``). Everything that can be checked before a trial runs is checked at load
time, each problem a one-line ``SpecError``: the objective is a known column produced by the configs'
``eval.metrics`` and its direction agrees with the catalogue; every bound and every choice of every
parameter gives a valid config; bounds, steps and choices are well formed. This module knows nothing of
Optuna; ``bench.tune`` turns it into Optuna calls.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.configdict import canonical_json, set_dotted, short_hash
from bench.metrics import DIAGNOSTICS, METRICS, column
from bench.spec import Spec, SpecError, in_base, parse_spec, read_yaml, resolve_config, validated

Scalar = (str, int, float, bool, type(None))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatParam(_Strict):
    """``trial.suggest_float``: uniform on [low, high], log-uniform with ``log``, on a grid with ``step``."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _bounds(self):
        _check_bounds(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples a log scale continuously)")
        return self

    def probes(self) -> list[float]:
        return [self.low, self.grid()[-1] if self.step else self.high]

    def grid(self) -> list[float]:
        """low, low + step, ... <= high (what the grid sampler enumerates)."""
        if self.step is None:
            raise ValueError("needs a step")
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + k * self.step, 12) for k in range(n)]


class IntParam(_Strict):
    """``trial.suggest_int``: integers low..high (inclusive), every ``step``, log scale with ``log``."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _bounds(self):
        _check_bounds(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("log needs step 1 (as in Optuna)")
        return self

    def probes(self) -> list[int]:
        return [self.low, self.grid()[-1]]

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


class CategoricalParam(_Strict):
    """``trial.suggest_categorical``. Choices may be any YAML value (lists such as Adam's betas, mappings
    such as a whole ``loss`` block); Optuna stores scalars only, so non-scalar choices are handed to it as
    their canonical JSON (``labels()``) and turned back into values by ``value(label)``."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self):
        seen = [canonical_json(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError(f"choices must be distinct, got {self.choices}")
        return self

    @property
    def encoded(self) -> bool:
        return not all(isinstance(c, Scalar) for c in self.choices)

    def labels(self) -> list[Any]:
        return [canonical_json(c) for c in self.choices] if self.encoded else list(self.choices)

    def label(self, value: Any) -> Any:
        return canonical_json(value) if self.encoded else value

    def value(self, label: Any) -> Any:
        return self.choices[self.labels().index(label)]

    def probes(self) -> list[Any]:
        return list(self.choices)

    def grid(self) -> list[Any]:
        return self.labels()


Param = FloatParam | IntParam | CategoricalParam
PARAM_TYPES: dict[str, type[Param]] = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}


def _check_bounds(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low ({low}) must be less than high ({high})")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got {low}")


class Objective(_Strict):
    metric: str
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="default: from the metric catalogue (higher_is_better)"
    )


class Sampler(BaseModel):
    """Optuna sampler by name; ``seed`` and any other key are passed to its constructor."""

    model_config = ConfigDict(extra="allow")
    name: Literal["tpe", "random", "cmaes", "grid"] = "tpe"
    seed: int | None = 0

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Pruner(BaseModel):
    """Optuna pruner by name; any other key is passed to its constructor (e.g. ``n_startup_trials``)."""

    model_config = ConfigDict(extra="allow")
    name: Literal["median", "hyperband", "none"] = "median"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class LossArm(_Strict):
    """One loss of a budget study: the blocks it sets on ``base`` and the parameters it adds to the space."""

    set: dict[str, Any] = Field(min_length=1, description="dotted path -> value set on base (loss, optimizer)")
    space: dict[str, Any] = Field(default_factory=dict, description="this loss's own parameters")


class Budget(_Strict):
    """Budget-vs-best: the same search for several losses, one Optuna study per (loss, sampler)."""

    losses: dict[str, LossArm] = Field(min_length=2)
    samplers: list[Sampler] = Field(default_factory=lambda: [Sampler(name="random")], min_length=1)
    threshold: float = Field(description="a trial trains when its objective is better than this")


class Search(_Strict):
    objective: Objective
    n_trials: int = Field(ge=1, description="trials that complete or are pruned (see bench.tune)")
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    space: dict[str, Param]
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    budget: Budget | None = None

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        assert self.objective.direction is not None  # filled by parse()
        return self.objective.direction


# ------------------------------------------------------------------------------------------------ parse


def _parse_space(raw: Any, at: str, allow_empty: bool = False) -> dict[str, Param]:
    if not isinstance(raw, dict) or not (raw or allow_empty):
        raise SpecError(at, "must be a non-empty mapping of dotted config paths to parameters")
    space: dict[str, Param] = {}
    for path, block in raw.items():
        where = f"{at}.{path}"
        if not isinstance(block, dict):
            raise SpecError(where, f"must be a mapping with a type ({', '.join(PARAM_TYPES)})")
        kind = block.get("type")
        if kind not in PARAM_TYPES:
            raise SpecError(f"{where}.type", f"must be one of {', '.join(PARAM_TYPES)}, got {kind!r}")
        space[path] = validated(PARAM_TYPES[kind], block, where)
    for path in space:
        for other in space:
            if other.startswith(path + "."):
                raise SpecError(f"{at}.{other}", f"overlaps {at}.{path} (one sets the other)")
    return space


def parse(spec: Spec) -> Search:
    """The validated ``search`` block of ``spec`` (see the module docstring for what is checked)."""
    raw = spec.search
    if raw is None:
        raise SpecError("search", "required: bench.tune needs a search block (objective, n_trials, space)")
    if not isinstance(raw, dict):
        raise SpecError("search", f"must be a mapping, got {type(raw).__name__}")
    search = validated(Search, {**raw, "space": {}}, "search")
    search.space = _parse_space(raw.get("space"), "search.space")
    _check_objective(search.objective)
    if search.budget is not None:
        _check_budget(spec, search, raw)
        return search
    search.enqueue = [_check_enqueued(i, trial, search.space) for i, trial in enumerate(search.enqueue)]
    if len(search.enqueue) > search.n_trials:
        raise SpecError("search.enqueue",
                        f"{len(search.enqueue)} trials queued, more than n_trials ({search.n_trials})")
    if search.sampler.name == "grid":
        for path, param in search.space.items():
            if isinstance(param, FloatParam) and param.step is None:
                raise SpecError(f"search.space.{path}", "the grid sampler needs a step for float parameters")
    for config in probe_configs(spec, search):
        _check_produced(search.objective.metric, config)
    return search


def _check_budget(spec: Spec, search: Search, raw: dict) -> None:
    """A budget study: every trial trained to the end, sampled the same way for every loss, spaces of one
    size, and every loss's probe configs valid (each problem one ``SpecError`` naming its field)."""
    budget = search.budget
    if "sampler" in raw:
        raise SpecError("search.sampler", "a budget study sets search.budget.samplers instead")
    if search.pruner.name != "none":
        raise SpecError("search.pruner", "a budget study trains every trial: use {name: none}")
    if search.enqueue:
        raise SpecError("search.enqueue", "a budget study samples every trial (no queue)")
    names = [s.name for s in budget.samplers]
    if "random" not in names:
        raise SpecError("search.budget.samplers", "must include random (the estimate needs i.i.d. trials)")
    if len(set(names)) != len(names) or "grid" in names:
        raise SpecError("search.budget.samplers", f"distinct, not grid, got {names}")
    sizes = {}
    for loss, arm in budget.losses.items():
        at = f"search.budget.losses.{loss}.space"
        own = _parse_space(arm.space, at, allow_empty=True)
        for path in own:
            if any(path == p or path.startswith(p + ".") or p.startswith(path + ".") for p in search.space):
                raise SpecError(f"{at}.{path}", "overlaps search.space")
        arm.space = own
        sizes[loss] = len(search.space) + len(own)
    if len(set(sizes.values())) > 1:
        raise SpecError("search.budget.losses", f"spaces differ in size: {sizes}")
    for arm in arms(spec, search):
        try:
            for config in probe_configs(arm.spec, arm.search):
                _check_produced(search.objective.metric, config)
        except SpecError as err:
            raise SpecError(f"search.budget.losses.{arm.loss}", f"{err.path}: {err.reason}") from None


@dataclass
class Arm:
    """One study of a budget study: a loss searched by one sampler, as a plain search."""

    loss: str
    sampler: str
    spec: Spec
    search: Search

    def study_name(self, prefix: str) -> str:
        return f"{prefix}.{self.loss}.{self.sampler}"


def arms(spec: Spec, search: Search) -> list[Arm]:
    """The plain searches of a budget study, loss by loss, each sampler in turn: ``base`` with the loss's
    ``set`` blocks, the shared space plus the loss's own, no budget block."""
    out = []
    for loss, arm in search.budget.losses.items():
        base = copy.deepcopy(spec.base)
        for path, value in arm.set.items():
            set_dotted(base, path, copy.deepcopy(value))
        arm_spec = spec.model_copy(update={"base": base})
        for sampler in search.budget.samplers:
            if sampler.seed is not None:  # each loss draws its own random stream, independent of the others
                sampler = sampler.model_copy(update={"seed": int(short_hash([sampler.seed, loss]), 16) % 2**31})
            arm_search = search.model_copy(update={"space": {**search.space, **arm.space}, "sampler": sampler,
                                                   "budget": None})
            out.append(Arm(loss, sampler.name, arm_spec, arm_search))
    return out


def _check_objective(objective: Objective) -> None:
    try:
        info = column(objective.metric)
    except KeyError as err:
        raise SpecError("search.objective.metric", err.args[0]) from None
    if info.higher_is_better is None:
        if objective.direction is None:
            raise SpecError("search.objective.direction", f"required: {objective.metric!r} is a diagnostic")
        return
    implied = "maximize" if info.higher_is_better else "minimize"
    if objective.direction is None:
        objective.direction = implied
    elif objective.direction != implied:
        better = "higher" if info.higher_is_better else "lower"
        raise SpecError("search.objective.direction", f"{objective.metric!r} is better {better}: use {implied}")


def _check_produced(metric: str, config: dict) -> None:
    produced = {c.name for c in DIAGNOSTICS}
    for name in config["eval"]["metrics"]:
        produced |= {c.name for c in METRICS.entry(name).meta["columns"]}
    if metric not in produced and not metric.startswith("critic_grad_norm.layer_"):
        owners = [e.name for e in METRICS if metric in {c.name for c in e.meta["columns"]}]
        raise SpecError(
            "search.objective.metric",
            f"{metric!r} is not produced by eval.metrics {config['eval']['metrics']} (add {' or '.join(owners)})",
        )


def _check_enqueued(i: int, trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """An enqueued trial: known parameters with values inside their range, as the parameter's type."""
    if not isinstance(trial, dict) or not trial:
        raise SpecError(f"search.enqueue[{i}]", "must be a mapping of search.space paths to values")
    out = {}
    for path, value in trial.items():
        where = f"search.enqueue[{i}].{path}"
        param = space.get(path)
        if param is None:
            raise SpecError(where, f"not a parameter of search.space ({', '.join(space)})")
        if isinstance(param, CategoricalParam):
            if canonical_json(value) not in {canonical_json(c) for c in param.choices}:
                raise SpecError(where, f"{value!r} is not one of the choices {param.choices}")
            out[path] = value
            continue
        number = float if isinstance(param, FloatParam) else int
        if isinstance(value, bool) or not isinstance(value, (int, float)) or number(value) != value:
            raise SpecError(where, f"must be {'a number' if number is float else 'an integer'}, got {value!r}")
        if not param.low <= value <= param.high:
            raise SpecError(where, f"{value!r} is outside [{param.low}, {param.high}]")
        out[path] = number(value)
    return out


# ----------------------------------------------------------------------------------------- trial configs


def trial_config(spec: Spec, values: dict[str, Any]) -> dict:
    """The resolved config of a trial: ``base`` with ``values`` (dotted path -> config value) set."""
    raw = copy.deepcopy(spec.base)
    for path, value in values.items():
        try:
            set_dotted(raw, path, value)
        except TypeError as err:
            raise SpecError(str(err), f"is not a mapping, so {path!r} cannot be set") from None
    return resolve_config(raw)


def probe_configs(spec: Spec, search: Search) -> list[dict]:
    """Configs at every bound and every choice of each parameter, the others at their first probe value:
    an unknown path, a value a component rejects or an incompatible choice fails here, before any trial."""
    first = {path: param.probes()[0] for path, param in search.space.items()}

    def attempt(values: dict[str, Any], varied: str | None = None) -> dict:
        try:
            return trial_config(spec, values)
        except SpecError as err:  # blame the parameter the error is about, else the one being varied
            culprit = next((p for p in search.space if err.path == p or err.path.startswith(p + ".")
                            or p.startswith(err.path + ".")), varied)
            if culprit is None:  # the base itself is invalid
                raise in_base(err) from None
            beside = f" with {varied}={values[varied]!r}" if varied and culprit != varied else ""
            raise SpecError(f"search.space.{culprit}",
                            f"{values[culprit]!r} gives an invalid config{beside}: {err}") from None

    configs = [attempt(first)]
    for path, param in search.space.items():
        configs += [attempt({**first, path: value}, path) for value in param.probes()[1:]]
    for i, trial in enumerate(search.enqueue):
        try:
            configs.append(trial_config(spec, {**first, **trial}))
        except SpecError as err:
            raise SpecError(f"search.enqueue[{i}]", f"gives an invalid config: {err}") from None
    return configs


def fingerprint(spec: Spec, search: Search) -> str:
    """What makes a study: base, seeds and the search (its trial budget aside). A study continued with a
    different fingerprint would mix trials of different problems."""
    return short_hash({"base": spec.base, "seeds": spec.seeds,
                       "search": search.model_dump(mode="json", exclude={"n_trials", "budget"})})


def load(path: str | Path) -> tuple[Spec, Search]:
    """Read and validate a search spec; every problem is a one-line ``SpecError`` naming the file."""
    try:
        spec = parse_spec(read_yaml(path))
        return spec, parse(spec)
    except SpecError as err:
        raise err.in_file(path) from None
