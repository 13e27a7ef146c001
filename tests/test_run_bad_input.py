"""Bad input: every malformed spec or option is refused with exit code 2 and one line naming the file, the
dotted path and the reason; nothing is written, nothing in a spec is run as code."""

from __future__ import annotations

import sys

import pytest
import yaml

from bench.run import CELL_LIMIT, main
from bench.spec import MAX_CELLS, MAX_YAML_NODES
from tests.conftest import DROP, edited

VALID = {
    "name": "bad",
    "base": {"preset": "toy", "dataset": {"name": "25gaussians"}, "loss": {"name": "wgan"},
             "generator": {"width": 16}, "critic": {"width": 16}, "train": {"generator_iters": 10}},
}


def changed(**paths) -> dict:
    """VALID with keys replaced (``base__train`` is ``spec["base"]["train"]``); ``DROP`` removes one."""
    return edited(VALID, paths, sep="__")
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + "name: bomb\nbase: {dataset: {name: 25gaussians}, loss: {name: wgan}}\nmatrix: {train.batch_size: *i}\n"

# (id, spec: YAML text | bytes | dict, extra arguments, fragments the error line must contain)
CASES = [
    # YAML itself
    ("syntax", "name: x\nbase: {dataset: {name: 25gaussians}\n", [], ["invalid YAML", "line 3"]),
    ("tab-indent", "name: x\nbase:\n\tdataset: {}\n", [], ["invalid YAML", "line 3"]),
    ("empty-file", "", [], ["must be a YAML mapping, got NoneType"]),
    ("list-document", "- name: x\n- base: {}\n", [], ["must be a YAML mapping, got list"]),
    ("scalar-document", "just some text\n", [], ["must be a YAML mapping, got str"]),
    ("two-documents", "name: a\n---\nname: b\n", [], ["invalid YAML", "single document"]),
    ("python-object-tag", "!!python/object/apply:os.system ['touch {marker}']\n", [],
     ["invalid YAML", "python/object"]),
    ("python-name-tag", "name: !!python/name:os.system\n", [], ["invalid YAML", "python/name"]),
    ("alias-bomb", BOMB, [], [f"more than {MAX_YAML_NODES} values", "alias"]),
    ("recursive-alias", "name: &n [*n]\n", [], [f"more than {MAX_YAML_NODES} values"]),
    ("repeated-key", "name: a\nname: b\nbase: {}\n", [], ["invalid YAML", "repeated key 'name'"]),
    ("deep-nesting", "[" * 5000 + "]" * 5000, [], ["invalid YAML", "nested too deeply"]),
    ("not-utf8", b"name: \xff\xfe\n", [], ["not UTF-8"]),
    # the spec's own fields
    ("unknown-top-key", changed(matrx={"loss.name": ["wgan"]}), [],
     ["matrx: unknown key (allowed: name, description, data_root, wall_clock, base, seeds, matrix, exclude, include, "
      "search, compare)"]),
    ("missing-name", changed(name=DROP), [], ["name", "required"]),
    ("name-not-string", changed(name=42), [], ["name", "valid string"]),
    ("name-traversal", changed(name="../escape"), [], ["name", "pattern"]),
    ("name-absolute", changed(name="/tmp/escape"), [], ["name", "pattern"]),
    ("name-dotdot", changed(name=".."), [], ["name", "pattern"]),
    ("name-slash", changed(name="a/b"), [], ["name", "pattern"]),
    ("missing-base", changed(base=DROP), [], ["base", "required"]),
    ("base-not-mapping", changed(base=[1, 2]), [], ["base", "dictionary"]),
    ("description-not-string", changed(description=["x"]), [], ["description", "valid string"]),
    ("seeds-empty", changed(seeds=[]), [], ["seeds", "at least 1"]),
    ("seeds-not-ints", changed(seeds=["a"]), [], ["seeds.0", "valid integer"]),
    ("seeds-negative", changed(seeds=[-1]), [], ["seeds.0", "greater than or equal to 0"]),
    ("seeds-repeated", changed(seeds=[0, 1, 0]), [], ["seeds", "repeat [0]"]),
    # names in the registries
    ("unknown-section", changed(base__losses={"name": "wgan"}), [], ["losses", "unknown key"]),
    ("unknown-dataset", changed(base__dataset={"name": "cifar11"}), [],
     ["dataset.name", "unknown dataset 'cifar11'", "25gaussians"]),
    ("unknown-loss", changed(base__loss={"name": "wgan-gpp"}), [], ["loss.name", "unknown loss 'wgan-gpp'"]),
    ("unknown-optimizer", changed(base__optimizer={"name": "adamw"}), [], ["optimizer.name", "unknown optimizer"]),
    ("unknown-arch", changed(base__generator={"arch": "resnet"}), [], ["generator.arch", "unknown generator arch"]),
    ("unknown-metric", changed(base__eval={"metrics": ["fid2"]}), [], ["eval.metrics[0]", "unknown metric 'fid2'"]),
    ("metric-needs-modes", changed(base__dataset={"name": "swissroll"}, base__eval={"metrics": ["modes"]}), [],
     ["eval.metrics[0]", "needs a data set tagged ['modes']"]),
    ("unknown-preset", changed(base__preset="paperz"), [], ["preset", "paperz"]),
    ("unknown-train-option", changed(base__train={"epochs": 3}), [], ["base.train.epochs: not an option of train"]),
    ("base-typo-with-matrix", changed(base__train={"bach_size": 4}, matrix={"loss.clip_value": [0.1, 0.01]}), [],
     ["base.train.bach_size: not an option of train (options: batch_size, "]),
    ("base-section-typo-with-matrix", changed(base__trian={}, matrix={"loss.clip_value": [0.1, 0.01]}), [],
     ["base.trian: unknown key (allowed: preset, "]),
    ("option-of-other-loss", changed(base__loss={"name": "wgan-gp", "clip_value": 0.01}), [],
     ["loss.clip_value", "not an option of loss 'wgan-gp'"]),
    # types and ranges
    ("negative-clip", changed(base__loss={"name": "wgan", "clip_value": -0.01}), [],
     ["loss.clip_value", "greater than 0"]),
    ("nan-clip", changed(base__loss={"name": "wgan", "clip_value": float("nan")}), [], ["loss.clip_value", "finite"]),
    ("zero-batch", changed(base__train={"batch_size": 0}), [], ["train.batch_size", "greater than 0"]),
    ("batch-text", changed(base__train={"batch_size": "abc"}), [], ["train.batch_size", "valid integer"]),
    ("batch-fraction", changed(base__train={"batch_size": 64.5}), [], ["train.batch_size", "fractional"]),
    ("zero-n-critic", changed(base__train={"n_critic": 0}), [], ["train.n_critic", "greater than or equal to 1"]),
    ("negative-iters", changed(base__train={"generator_iters": -5}), [], ["train.generator_iters"]),
    ("negative-lr", changed(base__optimizer={"lr": -1e-4}), [], ["optimizer.lr", "greater than 0"]),
    ("infinite-lr", changed(base__optimizer={"lr": float("inf")}), [], ["optimizer.lr", "finite"]),
    ("lr-text", changed(base__optimizer={"lr": "fast"}), [], ["optimizer.lr", "valid number"]),
    ("zero-width", changed(base__generator={"width": 0}), [], ["generator.width", "greater than 0"]),
    ("zero-depth", changed(base__critic={"depth": 0}), [], ["critic.depth", "greater than or equal to 1"]),
    ("bad-precision", changed(base__train={"precision": "fp8"}), [], ["train.precision", "'fp32' or 'bf16'"]),
    ("zero-fixed-size", changed(base__dataset={"name": "25gaussians", "fixed_size": 0}), [], ["dataset.fixed_size"]),
    ("zero-eval-every", changed(base__eval={"every": 0}), [], ["eval.every"]),
    ("feature-space-may-leak", changed(base__dataset={"name": "imagefolder", "path": "mnist_pngs"},
                                       base__generator={"arch": "mlp"}, base__critic={"arch": "mlp"},
                                       base__eval={"feature_space": "lenet-mnist"}), [],
     ["eval.feature_space", "t10k-seed0:5000-9999", "'imagefolder'"]),
    # matrix, exclude, include
    ("matrix-empty", changed(matrix={}), [], ["matrix", "empty"]),
    ("matrix-empty-values", changed(matrix={"loss.clip_value": []}), [], ["matrix.loss.clip_value", "empty list"]),
    ("matrix-not-mapping", changed(matrix=["loss.clip_value"]), [], ["matrix", "dictionary"]),
    ("matrix-through-value", changed(matrix={"loss.name.x": [1]}), [], ["loss.name", "not a mapping"]),
    ("matrix-bad-value", changed(matrix={"loss.clip_value": [0.1, -1]}), [], ["loss.clip_value", "loss.clip_value=-1"]),
    ("exclude-unknown-path", changed(matrix={"loss.clip_value": [0.1, 0.01]}, exclude=[{"loss.clipvalue": 0.1}]), [],
     ["exclude[0].loss.clipvalue", "not an option"]),
    ("exclude-everything", changed(exclude=[{"loss.name": "wgan"}]), [], ["exclude", "every cell"]),
    ("include-not-list", changed(include={"loss.name": "hinge"}), [], ["include", "valid list"]),
    ("include-bad-value", changed(include=[{"train.batch_size": 0}]), [], ["train.batch_size", "greater than 0"]),
    # size
    ("over-cell-limit", changed(seeds=list(range(CELL_LIMIT + 1))), [], [f"{CELL_LIMIT + 1} cells", "--yes"]),
    ("over-max-cells", changed(matrix={f"train.{k}": list(range(1, 41))
                                       for k in ("batch_size", "n_critic", "generator_iters")}, seeds=[0, 1]),
     ["--yes"], [f"at most {MAX_CELLS}"]),
    # command line
    ("zero-workers", VALID, ["--workers", "0"], ["--workers", ">= 1"]),
    ("negative-timeout", VALID, ["--cell-timeout", "-1"], ["--cell-timeout", "> 0"]),
    ("negative-retries", VALID, ["--retries", "-1"], ["--retries", ">= 0"]),
    ("address-without-ray", VALID, ["--ray-address", "10.0.0.1:6379"], ["--ray-address", "--executor ray"]),
]


@pytest.mark.parametrize("content, args, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_is_refused_with_one_line(tmp_path, capsys, content, args, fragments):
    marker = tmp_path / "evaluated"
    spec = tmp_path / "spec.yaml"
    if isinstance(content, dict):
        spec.write_text(yaml.safe_dump(content))
    elif isinstance(content, bytes):
        spec.write_bytes(content)
    else:
        spec.write_text(content.replace("{marker}", str(marker)))
    results = tmp_path / "results"

    assert main([str(spec), "--results-dir", str(results), *args, "--quiet"]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("error: ")
    if not any(a.startswith("--") and a in fragments for a in args):  # spec errors name the file
        assert lines[0].startswith(f"error: {spec}: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert not results.exists() and not (tmp_path / "escape").exists() and not marker.exists()


def test_ray_executor_without_ray_installed(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(VALID))
    assert main([str(spec), "--executor", "ray", "--results-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "error: --executor: ray is not installed (pip install 'ganbench[ray]')"
    assert not (tmp_path / "r").exists()


def test_missing_spec_file_and_directory(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert main([str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'nope.yaml'}: file not found",
                     f"error: {tmp_path}: cannot read: Is a directory"]


def test_more_than_the_cell_limit_runs_with_yes(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(changed(seeds=list(range(CELL_LIMIT + 1)))))
    assert main([str(spec), "--dry-run", "--yes", "--results-dir", str(tmp_path / "r")]) == 0
    assert f"{CELL_LIMIT + 1} cells" in capsys.readouterr().out


def test_yaml_aliases_within_bounds_are_fine(tmp_path, capsys):
    """Anchors, aliases and merge keys are ordinary YAML; only their blow-up is refused."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: aliases\nbase:\n  dataset: {name: 25gaussians}\n  generator: &mlp {arch: mlp, width: 16}\n"
                    "  critic: {<<: *mlp, depth: 3}\n  loss: {name: wgan}\n")
    assert main([str(spec), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
