"""Training through the worker pool for many steps and under faults (the runs of
benchmarks/soak.py): memory stays flat, nothing leaks, killed workers change
nothing, a hung solver is stopped at its time limit, and chaos (solvers that abort,
hang or raise at random, calls from threads, a fork) on loky and Dask never hangs
nor reports a wrong state as solved.

The default run has short versions; ``-m slow`` runs 10,000 torch steps and 1,000
JAX steps.
"""

from __future__ import annotations

import importlib.util
import os
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


def test_chaos_on_loky_never_hangs_nor_reports_a_wrong_state_and_leaks_nothing(soak, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    # seeds 38 and 60 draw every kind of fault in 12 steps (one hang); threads at steps 4 and 8, a fork at 6
    run = soak.chaos_run(12, faults={"abort": 0.03, "hang": 0.01, "raise": 0.05}, seed=38, thread_every=4,
                         fork_at=6)
    assert run["steps_done"] == 12 and run["hangs"] == 0
    assert run["wrong"] == 0 and run["solved"] > 0
    assert {"worker-died", "time-limit", "error"} <= set(run["failures"])  # each fault struck
    assert run["unmarked_failed"] <= run["marked"]  # a fault costs its chunk (of 2) at most
    assert run["fork"] is True and run["thread_calls"] == 6
    assert run["leaked_processes"] == 0


def test_chaos_on_a_dask_cluster_reports_every_fault_and_no_wrong_state(soak, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    run = soak.chaos_dask_run(12, faults={"abort": 0.03, "hang": 0.01, "raise": 0.05}, seed=60, thread_every=4)
    assert run["steps_done"] == 12 and run["hangs"] == 0
    assert run["wrong"] == 0 and run["solved"] > 0
    assert {"worker-died", "time-limit", "error"} <= set(run["failures"])
    assert run["thread_calls"] == 6
    assert run["workers_end"] == 2 and run["leaked_processes"] == 0  # no nanny lost, none left running


def test_the_soaks_dask_scheduler_runs_apart_from_the_measured_process(soak):
    # a LocalCluster's scheduler runs in this process, and its own growing records (a span
    # per call, a worker's events for an hour after it left) would count as the library's
    distributed = pytest.importorskip("distributed")
    with soak.dask_cluster() as cluster, distributed.Client(cluster) as client:
        scheduler_pid = client.run_on_scheduler(os.getpid)
        assert scheduler_pid != os.getpid() and scheduler_pid == cluster.scheduler.process.pid
        assert sorted(client.nthreads().values()) == [1, 1]
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures) == 0
    assert not soak.child_pids() & {scheduler_pid}  # ended with the cluster


@pytest.mark.slow
def test_2000_chaos_steps_on_loky_and_dask_run_clean(soak):
    for run in (soak.chaos_run(2_000), soak.chaos_dask_run(2_000)):
        assert run["steps_done"] == 2_000 and run["hangs"] == 0 and run["wrong"] == 0
        assert run["leaked_processes"] == 0 and run["rss_growth_pct"] < 5
    assert run["workers_end"] == 2  # the Dask run's: no nanny lost for good


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
