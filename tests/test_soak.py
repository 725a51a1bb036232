"""Training through the worker pool for many steps and under faults (the runs of
benchmarks/soak.py): memory stays flat, nothing leaks, killed workers change
nothing, a hung solver is stopped at its time limit.

The default run has short versions; ``-m slow`` runs 10,000 torch steps and 1,000
JAX steps.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ortools")

import imle_solvers as ims  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def soak():
    # loky workers get this process's sys.path, so they import the script's hanging solver too
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("soak", BENCHMARKS / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses and pickling look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))


def assert_nothing_leaked(run: dict) -> None:
    assert run["after"] == run["before"], "file descriptors, threads or processes grew during training"
    assert run["after_close"]["processes"] < run["before"]["processes"]  # closing stopped the workers


def test_torch_training_with_killed_workers_ends_with_the_undisturbed_parameters(soak):
    undisturbed = soak.train_torch(150, n_jobs=1)
    faulty = soak.train_torch(150, kill_every=50)  # one kill between steps, one during a step
    assert faulty["steps_done"] == 150 and faulty["kills"] == 2 and faulty["restarts"] >= 1
    assert soak._params_equal(faulty, undisturbed)
    assert_nothing_leaked(faulty)


def test_jax_training_through_the_pool_gives_the_in_process_parameters(soak):
    pytest.importorskip("jax")
    pooled = soak.train_jax(60)
    assert soak._params_equal(pooled, soak.train_jax(60, n_jobs=1))
    assert_nothing_leaked(pooled)


def test_a_hung_solver_stops_at_its_time_limit_naming_its_instances(soak, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    hang = soak.hang_run(time_limit=0.5)
    error = hang["error"]
    assert isinstance(error, ims.SolverError), "the hung instance went unnoticed"
    assert error.status == "time-limit" and error.index == 5 and error.indices == (5,)  # not its chunk-mate 4


@pytest.mark.slow
def test_10000_torch_steps_keep_memory_flat_and_survive_a_kill_every_500(soak):
    undisturbed = soak.train_torch(10_000)
    assert undisturbed["rss_growth_pct"] < 5
    assert_nothing_leaked(undisturbed)
    faulty = soak.train_torch(10_000, kill_every=500)
    assert faulty["steps_done"] == 10_000 and faulty["kills"] == 19
    assert soak._params_equal(faulty, undisturbed)
    assert faulty["rss_growth_pct"] < 5
    assert_nothing_leaked(faulty)


@pytest.mark.slow
def test_1000_jax_steps_keep_memory_flat(soak):
    pytest.importorskip("jax")
    run = soak.train_jax(1_000)
    assert run["steps_done"] == 1_000 and run["rss_growth_pct"] < 5
    assert_nothing_leaked(run)
    assert np.isfinite(run["params"][0]).all()
