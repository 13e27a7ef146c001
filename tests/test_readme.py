"""What README.md says about the commands and files matches the code: the exit codes of every command and the
names of the sample files the store writes."""

import re
from importlib import import_module

import numpy as np
import pytest

from bench import store
from bench.spec import expand, parse_spec
from bench.train import RunResult
from tests.conftest import REPO, tiny_base

README = (REPO / "README.md").read_text()
COMMANDS = ["bench.run", "bench.tune", "bench.report", "bench.regress", "bench.claims"]


def readme_exit_codes() -> dict[str, set[int]]:
    """The README's exit-code table: command -> the codes with a meaning ("-": none)."""
    header = re.search(r"^\| command \| 0 \| 1 \| 2 \|$", README, re.MULTILINE)
    assert header, "README.md: no exit-code table (| command | 0 | 1 | 2 |)"
    table = {}
    for line in README[header.end():].strip().splitlines()[1:]:
        row = re.fullmatch(r"\| `python -m ([\w.]+)` \|(.*)\|", line)
        if not row:
            break
        cells = [c.strip() for c in row.group(2).split("|")]
        table[row.group(1)] = {code for code, meaning in enumerate(cells) if meaning != "-"}
    return table


def docstring_exit_codes(module: str) -> set[int]:
    """The codes of the "Exit codes: 0 ...; 1 ...; 2 ..." sentence of a command's module docstring."""
    sentence = re.search(r"Exit codes: (.*?)\.\s*(?:\n\n|$)", import_module(module).__doc__, re.DOTALL)
    assert sentence, f"{module}: no 'Exit codes:' in its docstring"
    return {int(code) for code in re.findall(r"(?:^|; )(\d) ", sentence.group(1))}


def test_the_readme_gives_every_commands_exit_codes_as_its_docstring_does():
    table = readme_exit_codes()
    assert list(table) == COMMANDS
    for module in COMMANDS:
        assert table[module] == docstring_exit_codes(module), module


@pytest.mark.parametrize("module", COMMANDS)
def test_bad_input_is_exit_code_2(module, tmp_path, capsys):
    missing = str(tmp_path / "missing")
    args = {"bench.regress": [missing, "--baseline", missing]}.get(module, [missing])
    assert import_module(module).main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_readme_names_the_sample_files_the_store_writes(tmp_path):
    cell = expand(parse_spec({"name": "s", "base": tiny_base()}))[0]
    images = np.zeros((4, 1, 8, 8), np.float32)
    result = RunResult("ok", 200, "2026-01-01T00:00:00+00:00", 1.0, 0.5, samples=images, snapshots={200: images})
    store.write_cell(tmp_path, cell, result, {})
    written = {str(p.relative_to(tmp_path)).replace(cell.cell_id, "<cell_id>")
               for p in (tmp_path / "samples").rglob("*") if p.is_file()}
    documented = set(re.findall(r"`results/<study>/(samples/[^`]+)`", README))
    assert {d.replace("<generator_iter>", "00000200") for d in documented} == written
    assert "iter_00000200.png" in re.findall(r"e\.g\. `([^`]+)`", README)
    arrays = np.load(tmp_path / "samples" / f"{cell.cell_id}.npz")
    assert set(arrays) == {"samples", "iter_00000200"}


def test_the_readme_starts_with_install_and_tests_and_says_how_to_install_cpu_only_torch():
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == [
        'pip install -e ".[dev]" && python -m bench.run ablations/quickstart.yaml', "pytest"]
    cpu = README.index("pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu")
    assert README.index("```bash") < cpu < README.index("## Writing an ablation")
