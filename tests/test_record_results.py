"""scripts/record_results.py: each recipe names scripts of the repository and outputs its
commands write; ``--adopt`` records a finished run's outputs as the same record."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recorder():
    spec = importlib.util.spec_from_file_location("record_results", ROOT / "scripts" / "record_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["record_results"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_recipe_runs_scripts_of_the_repository_and_writes_its_outputs(recorder):
    for name, recipe in recorder.RECIPES.items():
        for command in recipe.commands:
            assert command.startswith("python "), name
            assert (ROOT / command.split()[1]).is_file(), (name, command)
        written = " ".join(recipe.commands)
        for file in recipe.outputs.values():  # a file of {out}, or written into the folder {out} itself
            assert "{out}/" + file in written or re.search(r"--out \{out\}(\s|$)", written), (name, file)


def test_adopt_records_a_finished_runs_outputs(recorder, tmp_path, monkeypatch):
    """The committed benchmark record's outputs, written back as files, adopt into the same
    results, with the pages' commands (no --json/--out) and no invented wall time."""
    committed = json.loads((ROOT / "docs" / "results" / "bench-pyepo-problems.json").read_text())
    recipe = recorder.RECIPES["bench-pyepo-problems"]
    run = tmp_path / "run"
    run.mkdir()
    for key, file in recipe.outputs.items():
        (run / file).write_text(json.dumps(committed["results"][key]))
    monkeypatch.setattr(recorder, "RESULTS", tmp_path)
    monkeypatch.setattr(recorder, "ROOT", tmp_path)  # where the command line prints the record's path from
    recorder.main(["bench-pyepo-problems", "--adopt", str(run)])
    record = json.loads((tmp_path / "bench-pyepo-problems.json").read_text())
    assert record["results"] == committed["results"]
    assert record["commands"] == committed["commands"]
    assert not any("--json" in c or "--out" in c for c in record["commands"])
    assert record["wall seconds"] is None and "first output written" in record["date"]
    assert record["seeds"] == list(recipe.seeds)


def test_adopt_refuses_a_folder_without_the_outputs(recorder, tmp_path):
    with pytest.raises(FileNotFoundError):
        recorder.adopt("bench-pyepo-problems", tmp_path)
