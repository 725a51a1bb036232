"""The core examples really train (short versions)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quickstart_selects_the_relevant_items():
    assert load("quickstart").main(steps=150) > 0.5  # chance is 0.31


def test_custom_solver_learns_the_scoring_rule():
    assert load("custom_solver").main(steps=200) > 0.8  # chance is 0.1


def test_parallel_training_learns_with_two_workers():
    assert load("parallel_training").main(steps=30, n_jobs=2) > 0.8
