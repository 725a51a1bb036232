"""The oracle on a local Ray instance: the serial answer, Ray's worker processes reused
across calls, recovery from workers killed from outside, a solver that aborts its
worker reported as ``worker-died``, and a timed-out task stopped with its worker.

The pool submits one Ray task per chunk (``max_retries=0``), so that it sees a
worker's death (``WorkerCrashedError``) at once and retries the task once itself.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from hostile_solvers import Hostile, expected, marked  # noqa: E402

import imle_solvers as ims  # noqa: E402
from imle_solvers.failures import Status  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray():
    # Ray's workers do not get the driver's sys.path: the hostile solvers' folder goes by PYTHONPATH
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def ray_workers() -> set[int]:
    """PIDs of the Ray worker processes that run tasks (titled ``ray::IDLE`` or by the task)."""
    pids = set()
    for process in psutil.Process().children(recursive=True):
        try:
            title = " ".join(process.cmdline())
            if title.startswith("ray::") and "Agent" not in title and process.status() != psutil.STATUS_ZOMBIE:
                pids.add(process.pid)
        except psutil.Error:
            continue
    return pids


def test_ray_gives_the_serial_answer_and_recovers_from_killed_workers(local_ray, rng):
    problem = ims.GridShortestPath(5, 5)
    costs = rng.uniform(0.1, 1.0, size=(13, 5, 5))
    expected_paths = ims.MAPOracle(problem, backend="scipy")(costs)
    with ims.MAPOracle(problem, backend="networkx", n_jobs=-1, parallel_backend="ray", chunk_size=2) as oracle:
        np.testing.assert_array_equal(oracle(costs), expected_paths)
        np.testing.assert_array_equal(oracle(costs[::-1]), expected_paths[::-1])
        assert oracle.pool.openings == 1 and oracle.pool.streams_results is True
        workers = ray_workers()
        assert workers, "Ray's workers run in processes of their own"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        np.testing.assert_array_equal(oracle(costs), expected_paths)  # on new workers
        assert ray_workers().isdisjoint(workers)


def test_a_solver_that_aborts_its_ray_worker_fails_alone_under_skip(local_ray, rng):
    scores = marked(rng, 8, 6, 3)
    with ims.MAPOracle(Hostile(n=6, k=1), backend="abort", n_jobs=-1, parallel_backend="ray", chunk_size=1,
                       on_failure="skip") as oracle:
        z, status = oracle.solve(scores)
    want = expected(scores)
    want[3] = 0
    np.testing.assert_array_equal(z, want)
    np.testing.assert_array_equal(status, [0, 0, 0, Status.FAILED, 0, 0, 0, 0])
    assert oracle.failures == {"worker-died": 1}


def test_a_timed_out_ray_task_is_stopped_with_its_worker(local_ray, rng, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    scores = marked(rng, 6, 6, 2)
    with ims.MAPOracle(Hostile(n=6, k=1), backend="spin", n_jobs=-1, parallel_backend="ray", chunk_size=1,
                       time_limit=0.5, on_failure="skip") as oracle:
        oracle.warm_up()
        z, status = oracle.solve(scores)
        np.testing.assert_array_equal(status, [0, 0, Status.FAILED, 0, 0, 0])
        assert oracle.failures == {"time-limit": 1}
        clean = rng.uniform(size=(6, 6))
        np.testing.assert_array_equal(oracle(clean), expected(clean))  # a core is free for it
    deadline = time.monotonic() + 30
    while _spinning() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _spinning(), "the timed-out task still spins"


def _spinning() -> set[int]:
    """Ray workers at a full core."""
    busy = set()
    for pid in ray_workers():
        try:
            if psutil.Process(pid).cpu_percent(0.3) > 80:
                busy.add(pid)
        except psutil.Error:
            continue
    return busy
