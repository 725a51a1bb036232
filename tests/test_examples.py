"""The core examples really train (short versions)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from example_scripts import load_example as load  # noqa: E402


def test_quickstart_selects_the_relevant_items():
    assert load("quickstart").main(steps=150) > 0.5  # chance is 0.31


def test_custom_solver_learns_the_scoring_rule():
    assert load("custom_solver").main(steps=200) > 0.8  # chance is 0.1


def test_parallel_training_learns_with_two_workers():
    assert load("parallel_training").main(steps=30, n_jobs=2) > 0.8
