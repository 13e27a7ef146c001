import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.spec import Spec, SpecError, expand, load, parse_spec, resolve_config
from tests.conftest import tiny_base


def spec(**fields) -> Spec:
    return parse_spec({"name": "t", "base": tiny_base(), **fields})


def write(tmp_path, data) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


# ------------------------------------------------------------------------------------------- expansion


def test_matrix_is_a_cartesian_product_times_seeds():
    cells = expand(spec(seeds=[0, 1, 2], matrix={"loss.name": ["wgan", "minimax"], "critic.batchnorm": [True, False]}))
    assert len(cells) == 2 * 2 * 3
    combos = {(c.config["loss"]["name"], c.config["critic"]["batchnorm"], c.seed) for c in cells}
    assert len(combos) == 12


@pytest.mark.parametrize("critic", [{"arch": "mlp", "batchnorm": True}, {"arch": "dcgan", "norm": "batch"}])
def test_a_gradient_penalty_with_a_batchnorm_critic_is_rejected_unless_opted_in(critic):
    dataset = {"name": "digits"} if critic["arch"] == "dcgan" else {"name": "8gaussians"}
    generator = {"arch": critic["arch"]}
    field = "critic.norm" if "norm" in critic else "critic.batchnorm"
    with pytest.raises(SpecError, match=rf"{field}: .*WGAN-GP section 4.*exclude:.*allow_batchnorm_critic"):
        resolve_config(tiny_base(dataset=dataset, generator=generator, critic=critic, loss={"name": "wgan-gp"}))
    opted_in = resolve_config(tiny_base(dataset=dataset, generator=generator, critic=critic,
                                        loss={"name": "wgan-gp", "allow_batchnorm_critic": True}))
    assert opted_in["loss"]["allow_batchnorm_critic"]
    resolve_config(tiny_base(critic={"batchnorm": True}, loss={"name": "wgan"}))  # clipping: no penalty, no rule


def test_dict_values_replace_the_whole_block():
    base = tiny_base(loss={"name": "wgan", "clip_value": 0.1})
    cells = expand(parse_spec({"name": "t", "base": base,
                               "matrix": {"loss": [{"name": "wgan-gp"}, {"name": "minimax"}]}}))
    assert [c.config["loss"] for c in cells] == [{"name": "wgan-gp", "gp_lambda": 0.1, "allow_batchnorm_critic": False},
                                                  {"name": "minimax"}]


def test_exclude_drops_matching_cells_and_include_adds_cells():
    s = spec(
        matrix={"loss": [{"name": "minimax"}, {"name": "wgan-gp"}], "generator.batchnorm": [True, False]},
        exclude=[{"loss.name": "minimax", "generator.batchnorm": True}],
        include=[{"loss": {"name": "hinge"}}],
    )
    got = {(c.config["loss"]["name"], c.config["generator"]["batchnorm"]) for c in expand(s)}
    assert got == {("minimax", False), ("wgan-gp", True), ("wgan-gp", False), ("hinge", False)}


def test_a_config_listed_twice_is_trained_once():
    cells = expand(spec(matrix={"loss.name": ["wgan-gp"]}, include=[{"loss": {"name": "wgan-gp"}}]))
    assert len(cells) == 1


def test_presets_fill_only_what_the_spec_leaves_unset():
    paper = resolve_config({**tiny_base(), "preset": "paper", "train": {}, "loss": {"name": "wgan-gp"}})
    assert paper["optimizer"] == {"name": "adam", "lr": 1e-4, "generator_lr": 1e-4, "critic_lr": 1e-4,
                                  "betas": [0.0, 0.9], "eps": 1e-8}
    assert (paper["loss"]["gp_lambda"], paper["train"]["n_critic"], paper["train"]["batch_size"]) == (10.0, 5, 64)
    toy = resolve_config({**tiny_base(), "train": {}})
    assert (toy["optimizer"]["betas"], toy["loss"]["gp_lambda"], toy["train"]["batch_size"]) == ([0.5, 0.9], 0.1, 256)
    wgan = resolve_config({**tiny_base(), "preset": "paper", "loss": {"name": "wgan"}})
    assert (wgan["optimizer"]["name"], wgan["optimizer"]["lr"], wgan["loss"]["clip_value"]) == ("rmsprop", 5e-5, 0.01)
    # A value the spec gives wins; an optimizer other than the preset's keeps only the preset's lr.
    mine = resolve_config({**tiny_base(), "optimizer": {"name": "rmsprop"},
                           "loss": {"name": "wgan-gp", "gp_lambda": 3}})
    assert mine["optimizer"]["name"] == "rmsprop" and mine["optimizer"]["lr"] == 1e-4
    assert "betas" not in mine["optimizer"]
    assert mine["loss"]["gp_lambda"] == 3.0


def test_toy_sets_default_to_two_dimensional_noise_and_separate_lrs_default_to_lr():
    cfg = resolve_config({**tiny_base(), "optimizer": {"lr": 1e-3, "critic_lr": 2e-3}})
    assert cfg["generator"]["latent_dim"] == 2
    assert (cfg["optimizer"]["generator_lr"], cfg["optimizer"]["critic_lr"]) == (1e-3, 2e-3)


def test_cell_id_is_stable_and_depends_on_config_and_seed():
    a = expand(spec(seeds=[0, 1]))
    b = expand(spec(seeds=[0, 1]))
    assert [c.cell_id for c in a] == [c.cell_id for c in b]
    assert a[0].cell_id != a[1].cell_id and a[0].config_id == a[1].config_id
    other = expand(parse_spec({"name": "t", "base": tiny_base(train={"generator_iters": 21, "batch_size": 32})}))
    assert other[0].cell_id != a[0].cell_id
    # Spelling a default explicitly names the same cell, in any study.
    explicit = copy.deepcopy(tiny_base())
    explicit["critic"]["batchnorm"] = False
    explicit["optimizer"] = {"name": "adam", "lr": 1e-4}
    assert expand(parse_spec({"name": "other-study", "base": explicit}))[0].cell_id == a[0].cell_id
    # A float written as an int is the same value.
    as_int = expand(parse_spec({"name": "t", "base": tiny_base(optimizer={"lr": 1})}))
    as_float = expand(parse_spec({"name": "t", "base": tiny_base(optimizer={"lr": 1.0})}))
    assert as_int[0].cell_id == as_float[0].cell_id


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 64), min_size=1, max_size=4, unique=True),
    seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True),
    losses=st.lists(st.sampled_from(["minimax", "nonsaturating", "wgan", "wgan-gp", "lsgan", "hinge"]),
                    min_size=1, max_size=6, unique=True),
)
def test_expansion_size_and_unique_ids(widths, seeds, losses):
    cells = expand(spec(seeds=seeds, matrix={"critic.width": widths, "loss.name": losses}))
    assert len(cells) == len(widths) * len(seeds) * len(losses)
    assert len({c.cell_id for c in cells}) == len(cells)


# ------------------------------------------------------------------------------------------- bad input

BAD = [
    ("unknown top-level key", {"name": "t", "base": tiny_base(), "matirx": {}}, "matirx"),
    ("unknown config key", {"name": "t", "base": {**tiny_base(), "trian": {}}}, "base.trian"),
    ("unknown option", {"name": "t", "base": tiny_base(critic={"widht": 3})}, "base.critic.widht"),
    ("wrong type", {"name": "t", "base": tiny_base(train={"batch_size": "many"})}, "base.train.batch_size"),
    ("out of range", {"name": "t", "base": tiny_base(train={"batch_size": 0})}, "base.train.batch_size"),
    ("negative clip", {"name": "t", "base": tiny_base(loss={"name": "wgan", "clip_value": -1})},
     "base.loss.clip_value"),
    ("unknown loss", {"name": "t", "base": tiny_base(loss={"name": "wgan-pg"})}, "base.loss.name"),
    ("unknown dataset", {"name": "t", "base": tiny_base(dataset={"name": "cifar11"})}, "base.dataset.name"),
    ("unknown generator", {"name": "t", "base": tiny_base(generator={"arch": "resnet9000"})}, "base.generator.arch"),
    ("unknown optimizer", {"name": "t", "base": tiny_base(optimizer={"name": "adamw2"})}, "base.optimizer.name"),
    ("unknown metric", {"name": "t", "base": tiny_base(eval={"metrics": ["fidd"]})}, "base.eval.metrics[0]"),
    ("metric the data cannot give",
     {"name": "t", "base": tiny_base(dataset={"name": "swissroll"}, eval={"metrics": ["modes"]})},
     "base.eval.metrics[0]"),
    ("clip value on wgan-gp", {"name": "t", "base": tiny_base(loss={"name": "wgan-gp", "clip_value": 0.01})},
     "base.loss.clip_value"),
    ("clip value on wgan-gp in a cell",
     {"name": "t", "base": tiny_base(loss={"name": "wgan", "clip_value": 0.01}),
      "matrix": {"loss.name": ["wgan", "wgan-gp"]}},
     "loss.clip_value"),
    ("empty matrix", {"name": "t", "base": tiny_base(), "matrix": {}}, "matrix"),
    ("empty value list", {"name": "t", "base": tiny_base(), "matrix": {"critic.width": []}}, "matrix.critic.width"),
    ("missing loss", {"name": "t", "base": {"dataset": {"name": "8gaussians"}}}, "base.loss.name"),
    ("bad study name", {"name": "../evil", "base": tiny_base()}, "name"),
    ("seeds not a list", {"name": "t", "base": tiny_base(), "seeds": 3}, "seeds"),
    ("exclude on nothing", {"name": "t", "base": tiny_base(), "exclude": [{"loss.nme": "x"}]}, "exclude[0].loss.nme"),
]


@pytest.mark.parametrize("case,data,path", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_naming_file_and_path(tmp_path, case, data, path):
    file = write(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load(file)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{file}: {path}: "), message


def image_base(dataset: dict, feature_space: str) -> dict:
    mlp = {"arch": "mlp", "width": 16}
    return tiny_base(dataset=dataset, generator=mlp, critic=mlp, eval={"feature_space": feature_space})


@pytest.mark.parametrize("dataset", [{"name": "imagefolder", "path": "digits_as_pngs"}, {"name": "cifar10"},
                                     {"name": "25gaussians"}])
@pytest.mark.parametrize("space", ["lenet-mnist", "lenet-stacked-mnist"])
def test_a_classifier_space_is_refused_for_data_sets_that_may_hold_its_training_images(dataset, space):
    with pytest.raises(SpecError) as err:
        resolve_config(image_base(dataset, space))
    assert err.value.path == "eval.feature_space" and "\n" not in str(err.value)
    assert "t10k-seed0:5000-9999" in err.value.reason and repr(dataset["name"]) in err.value.reason


@pytest.mark.parametrize("dataset", ["mnist", "stacked_mnist", "digits"])
def test_a_classifier_space_is_accepted_for_data_sets_built_disjoint_from_its_training_images(dataset):
    for space in ("lenet-mnist", "lenet-stacked-mnist", "auto", "inception-v3-compat"):
        assert resolve_config(image_base({"name": dataset}, space))


@pytest.mark.parametrize(
    "text,reason",
    [("name: t\nbase: {dataset: [unclosed\n", "invalid YAML: line"), ("- just\n- a list\n", "must be a YAML mapping")],
)
def test_bad_yaml(tmp_path, text, reason):
    with pytest.raises(SpecError, match=reason):
        load(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load(tmp_path / "nope.yaml")


TRAIN_OPTIONS = "batch_size, n_critic, generator_iters, precision, threads, checkpoint_every, critic_warmup"
SPEC_KEYS = "name, description, data_root, wall_clock, base, seeds, matrix, exclude, include, search, compare"


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"base": {**tiny_base(), "trian": {}}, "matrix": {"critic.width": [8, 16]}},
         "base.trian: unknown key (allowed: preset, dataset, generator, critic, loss, optimizer, train, eval)"),
        ({"base": tiny_base(train={"bach_size": 4}), "matrix": {"critic.width": [8, 16]}},
         f"base.train.bach_size: not an option of train (options: {TRAIN_OPTIONS})"),
        ({"base": tiny_base(train={"bach_size": 4}), "include": [{"critic.width": 8}]},
         f"base.train.bach_size: not an option of train (options: {TRAIN_OPTIONS})"),
        ({"base": tiny_base(train={"bach_size": 4})},
         f"base.train.bach_size: not an option of train (options: {TRAIN_OPTIONS})"),
        ({"base": tiny_base(), "seed": [0]}, f"seed: unknown key (allowed: {SPEC_KEYS})"),
    ],
    ids=["section-with-matrix", "option-with-matrix", "option-with-include", "option-alone", "top-level"],
)
def test_a_typo_names_where_it_is_written_and_lists_the_allowed_keys(tmp_path, data, reason):
    """A typo in ``base`` is the base's error, not the first cell's; a top-level typo lists the allowed keys."""
    file = write(tmp_path, {"name": "t", **data})
    with pytest.raises(SpecError) as err:
        load(file)
    assert str(err.value) == f"{file}: {reason}"


def test_an_error_only_some_cells_have_names_the_cell(tmp_path):
    base = tiny_base(loss={"name": "wgan", "clip_value": 0.01})
    file = write(tmp_path, {"name": "t", "base": base, "matrix": {"loss.name": ["wgan", "wgan-gp"]}})
    with pytest.raises(SpecError) as err:
        load(file)
    assert str(err.value) == (f"{file}: loss.clip_value: not an option of loss 'wgan-gp' "
                              "(options: gp_lambda, allow_batchnorm_critic) (cell: loss.name='wgan-gp')")
