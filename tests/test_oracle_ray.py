"""The oracle on a local Ray instance: the serial answer, one pool of actors across
calls, and recovery from actors killed from outside.

Ray's joblib backend returns a call's results all at once (joblib refuses
``return_as="generator"`` on it), so the pool runs it in that mode: a call whose
workers died runs again as a whole, once.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

import imle_solvers as ims  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def local_ray():
    from joblib.pool import PicklingPool

    bases = PicklingPool.__bases__  # Ray's joblib backend rebases it onto Ray's pool, process-wide
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    PicklingPool.__bases__ = bases  # joblib's "multiprocessing" backend in later tests: processes again


def pool_actors() -> set[int]:
    """PIDs of this process's Ray pool actors (Ray titles their processes ``ray::PoolActor``)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "ray::PoolActor" in " ".join(_cmdline(p)) and p.status() != psutil.STATUS_ZOMBIE
    }


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_ray_gives_the_serial_answer_and_recovers_from_killed_actors(local_ray, rng):
    problem = ims.GridShortestPath(5, 5)
    costs = rng.uniform(0.1, 1.0, size=(13, 5, 5))
    expected = ims.MAPOracle(problem, backend="scipy")(costs)
    with ims.MAPOracle(problem, backend="networkx", n_jobs=-1, parallel_backend="ray", chunk_size=2) as oracle:
        np.testing.assert_array_equal(oracle(costs), expected)
        np.testing.assert_array_equal(oracle(costs[::-1]), expected[::-1])
        assert oracle.pool.openings == 1 and oracle.pool.streams_results is False
        actors = pool_actors()
        assert actors, "the pool's actors run in processes of their own"
        for pid in actors:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        np.testing.assert_array_equal(oracle(costs), expected)  # the call ran again on new actors
        assert oracle.pool.restarts >= 1 and pool_actors().isdisjoint(actors)
