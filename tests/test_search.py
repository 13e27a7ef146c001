"""Search specs: parsing, load-time validation (one-line errors), trial configs."""

from __future__ import annotations

import copy

import pytest
import yaml

from bench import search
from bench.spec import SpecError

BASE = {
    "name": "s",
    "base": {
        "preset": "toy",
        "dataset": {"name": "25gaussians"},
        "generator": {"arch": "mlp", "width": 16},
        "critic": {"arch": "mlp", "width": 16},
        "loss": {"name": "wgan", "clip_value": 0.01},
        "optimizer": {"lr": 1e-4},
        "eval": {"metrics": ["modes", "w1_exact"]},
    },
    "search": {
        "objective": {"metric": "modes_captured"},
        "n_trials": 3,
        "space": {
            "loss.clip_value": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "train.n_critic": {"type": "int", "low": 1, "high": 10},
            "optimizer.name": {"type": "categorical", "choices": ["rmsprop", "adam"]},
        },
    },
}


def load(tmp_path, edit=lambda d: None):
    data = copy.deepcopy(BASE)
    edit(data)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return search.load(path)


def error(tmp_path, edit) -> str:
    with pytest.raises(SpecError) as info:
        load(tmp_path, edit)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "search.yaml"))
    return message


def test_valid_spec_fills_direction_from_catalogue(tmp_path):
    _, s = load(tmp_path)
    assert s.direction == "maximize"  # modes_captured: higher is better
    assert s.sampler.name == "tpe" and s.sampler.seed == 0 and s.pruner.name == "median"
    assert list(s.space) == ["loss.clip_value", "train.n_critic", "optimizer.name"]


def test_trial_config_sets_dotted_values_then_resolves(tmp_path):
    spec, _ = load(tmp_path)
    config = search.trial_config(spec, {"loss.clip_value": 0.05, "train.n_critic": 3, "optimizer.name": "adam"})
    assert config["loss"] == {"name": "wgan", "clip_value": 0.05, "clip_when": "after"}
    assert config["train"]["n_critic"] == 3 and config["train"]["batch_size"] == 256  # toy preset
    assert config["optimizer"]["name"] == "adam" and config["optimizer"]["lr"] == 1e-4


def test_non_scalar_choices_round_trip_through_labels(tmp_path):
    def edit(d):
        d["base"]["loss"] = {"name": "wgan-gp"}
        d["search"]["space"] = {"optimizer.betas": {"type": "categorical", "choices": [[0.0, 0.9], [0.5, 0.9]]}}
        d["search"]["enqueue"] = [{"optimizer.betas": [0.5, 0.9]}]

    spec, s = load(tmp_path, edit)
    param = s.space["optimizer.betas"]
    assert param.labels() == ["[0.0,0.9]", "[0.5,0.9]"]
    assert param.value("[0.5,0.9]") == [0.5, 0.9] and param.label([0.5, 0.9]) == "[0.5,0.9]"
    assert search.trial_config(spec, {"optimizer.betas": param.value("[0.0,0.9]")})["optimizer"]["betas"] == [0.0, 0.9]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d.pop("search"), "search: required"),
        (lambda d: d["search"].pop("n_trials"), "search.n_trials: Field required"),
        (lambda d: d["search"]["objective"].update(metric="fidd"),
         "search.objective.metric: unknown metric column 'fidd'"),
        (lambda d: d["search"]["objective"].update(metric="w_estimate"),
         "search.objective.metric: 'w_estimate' is not produced by eval.metrics ['modes', 'w1_exact'] "
         "(add w_estimate)"),
        (lambda d: d["search"]["objective"].update(direction="minimize"),
         "search.objective.direction: 'modes_captured' is better higher: use maximize"),
        (lambda d: d["search"]["objective"].update(metric="critic_loss"), "search.objective.direction: required"),
        (lambda d: d["search"].update(space={}), "search.space: must be a non-empty mapping"),
        (lambda d: d["search"]["space"]["train.n_critic"].update(low=10, high=2),
         "search.space.train.n_critic: low (10) must be less than high (2)"),
        (lambda d: d["search"]["space"]["loss.clip_value"].update(low=0.0),
         "search.space.loss.clip_value: log scale needs low > 0"),
        (lambda d: d["search"]["space"]["optimizer.name"].update(choices=[]), "search.space.optimizer.name.choices:"),
        (lambda d: d["search"]["space"]["optimizer.name"].update(choices=["adam", "adam"]), "choices must be distinct"),
        (lambda d: d["search"]["space"]["optimizer.name"].update(type="choice"),
         "search.space.optimizer.name.type: must be one of float, int, categorical"),
        (lambda d: d["base"].update(train={"bach_size": 4}), "base.train.bach_size: not an option of train"),
        (lambda d: d["search"].update(n_trails=3),
         "search.n_trails: unknown key (allowed: objective, n_trials, sampler, pruner, space, enqueue, budget)"),
        (lambda d: d["search"]["objective"].update(metrc="w1_exact"),
         "search.objective.metrc: unknown key (allowed: metric, direction)"),
        (lambda d: d["search"]["space"]["train.n_critic"].update(lo=1),
         "search.space.train.n_critic.lo: unknown key (allowed: type, low, high, log, step)"),
        (lambda d: d["search"]["space"].update({"optimizer.lrr": {"type": "float", "low": 1e-5, "high": 1e-3}}),
         "search.space.optimizer.lrr: 1e-05 gives an invalid config: optimizer.lrr: not an option of optimizer"),
        (lambda d: d["search"]["space"].update({"bogus.path": {"type": "int", "low": 1, "high": 2}}),
         "search.space.bogus.path: 1 gives an invalid config: bogus: unknown key"),
        (lambda d: d["search"]["space"]["optimizer.name"].update(choices=["rmsprop", "adamw"]),
         "search.space.optimizer.name: 'adamw' gives an invalid config: optimizer.name: unknown optimizer 'adamw'"),
        (lambda d: d["search"]["space"]["loss.clip_value"].update(log=False, low=-0.1),
         "search.space.loss.clip_value: -0.1 gives an invalid config: loss.clip_value: Input should be greater than 0"),
        (lambda d: d["search"]["space"].update({"loss.name": {"type": "categorical", "choices": ["wgan", "wgan-gp"]}}),
         ("search.space.loss.clip_value: 0.001 gives an invalid config with loss.name='wgan-gp': loss.clip_value: "
          "not an option of loss 'wgan-gp'")),
        (lambda d: d["search"]["space"].update({"loss": {"type": "categorical", "choices": [{"name": "hinge"}]}}),
         "search.space.loss.clip_value: overlaps search.space.loss"),
        (lambda d: d["search"].update(sampler={"name": "grid"}),
         "search.space.loss.clip_value: the grid sampler needs a step for float parameters"),
        (lambda d: d["search"].update(sampler={"name": "bayes"}), "search.sampler.name: Input should be"),
        (lambda d: d["search"].update(enqueue=[{"train.n_critic": 50}]),
         "search.enqueue[0].train.n_critic: 50 is outside [1, 10]"),
        (lambda d: d["search"].update(enqueue=[{"optimizer.lr": 1e-3}]),
         "search.enqueue[0].optimizer.lr: not a parameter"),
    ],
)
def test_invalid_search_specs_are_one_line_errors(tmp_path, edit, expected):
    assert expected in error(tmp_path, edit)


def test_grid_values_cover_the_range(tmp_path):
    def edit(d):
        d["search"]["sampler"] = {"name": "grid"}
        d["search"]["space"]["loss.clip_value"] = {"type": "float", "low": 0.01, "high": 0.1, "step": 0.03}
        d["search"]["space"]["train.n_critic"] = {"type": "int", "low": 1, "high": 9, "step": 4}

    _, s = load(tmp_path, edit)
    assert s.space["loss.clip_value"].grid() == [0.01, 0.04, 0.07, 0.1]
    assert s.space["train.n_critic"].grid() == [1, 5, 9]
    assert s.space["optimizer.name"].grid() == ["rmsprop", "adam"]


def test_fingerprint_ignores_the_trial_budget_only(tmp_path):
    spec, s = load(tmp_path)
    _, more = load(tmp_path, lambda d: d["search"].update(n_trials=50))
    _, other = load(tmp_path, lambda d: d["search"]["space"]["train.n_critic"].update(high=5))
    assert search.fingerprint(spec, s) == search.fingerprint(spec, more) != search.fingerprint(spec, other)


def test_an_invalid_base_is_reported_as_such(tmp_path):
    message = error(tmp_path, lambda d: d["base"]["dataset"].update(name="50gaussians"))
    assert "search.yaml: base.dataset.name: unknown dataset '50gaussians' (known: 25gaussians, 8gaussians, " in message
