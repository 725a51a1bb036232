"""The oracle on a Dask cluster (a LocalCluster of two worker processes here): the
same answers as in-process, a torch layer that trains through it, a solver that
aborts its worker reported as ``worker-died`` under every policy, and a timed-out
task cancelled with its worker restarted.

The cluster runs with ``distributed.scheduler.allowed-failures: 0``: a crashing task
is reported at its first worker's death (the pool retries it once itself), rather than
after four nanny restarts (the default, 3, takes seconds more per crash).
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from hostile_solvers import Hostile, expected, marked  # noqa: E402

import imle_solvers as ims  # noqa: E402
from imle_solvers.failures import Status  # noqa: E402
from imle_solvers.adapters.grid_paths import solve_grid_networkx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::imle_solvers.NegativeCostWarning")

# a grid problem of its own kind, so the solver below can log where it ran
LOGGED_KIND = "test-dask-logged-grid"


@dataclass(frozen=True)
class LoggedGrid(ims.GridShortestPath):
    """A grid shortest path whose solver leaves a file named after its process in ``workdir``."""

    workdir: str = ""
    kind: ClassVar[str] = LOGGED_KIND


@ims.register_solver(LOGGED_KIND, "networkx-logged")
def solve_logged(theta: np.ndarray, problem: LoggedGrid) -> np.ndarray:
    Path(problem.workdir, f"pid-{os.getpid()}").touch()
    return solve_grid_networkx(theta, problem)


@ims.register_solver(LOGGED_KIND, "networkx-slow")
def solve_slowly(theta: np.ndarray, problem: LoggedGrid) -> np.ndarray:
    time.sleep(0.05)  # long enough for a worker to be killed while it solves
    return solve_logged(theta, problem)


@pytest.fixture(scope="module")
def client():
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_a_dask_cluster_gives_the_serial_answer_in_order(client, rng):
    problem = ims.GridShortestPath(5, 5)
    costs = rng.uniform(0.1, 1.0, size=(13, 5, 5))
    expected = ims.MAPOracle(problem, backend="scipy")(costs)
    with ims.MAPOracle(problem, backend="networkx", n_jobs=-1, parallel_backend="dask", chunk_size=2) as oracle:
        np.testing.assert_array_equal(oracle(costs), expected)


def train(layer, steps: int = 4, before_step=None) -> list[float]:
    """A few SGD steps of ``theta`` through ``layer`` towards a fixed path; the losses.
    ``before_step(step)`` runs before each step."""
    import torch

    target = torch.zeros(8, 4, 4)
    target[:, :, 0] = target[:, -1, :] = 1  # down the left edge, along the bottom
    theta = torch.nn.Parameter(torch.ones(8, 4, 4, dtype=torch.float64))
    optimiser = torch.optim.SGD([theta], lr=0.5)
    losses = []
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        optimiser.zero_grad()
        loss = (layer(theta) - target).abs().sum()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def test_a_torch_layer_trains_through_the_cluster(client, tmp_path):
    pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    problem = LoggedGrid(4, 4, workdir=str(tmp_path))
    estimator = ims.IMLE(ims.SumOfGamma(k=5), lambda_=10.0)
    in_process = IMLELayer(problem, estimator, backend="networkx-logged", seed=0)
    expected = train(in_process)
    for path in tmp_path.glob("pid-*"):
        path.unlink()

    layer = IMLELayer(
        problem, estimator, backend="networkx-logged", seed=0, n_jobs=-1, parallel_backend="dask", chunk_size=2
    )
    try:
        assert train(layer) == expected  # the same steps, solved on the cluster
        assert layer.oracle.pool.openings == 1  # forward and backward of every step: one pool
    finally:
        layer.oracle.close()
    dask_workers = set(client.run(os.getpid).values())
    assert {int(p.name.removeprefix("pid-")) for p in tmp_path.glob("pid-*")} == dask_workers


def test_auto_chunks_carry_more_solving_on_dask_than_on_loky(client):
    # a Dask task costs tens of times a loky one (see benchmarks/bench_pool.py): at the
    # same measured seconds per instance, automatic chunks are larger and fewer
    problem = ims.GridShortestPath(4, 4)
    chunks = {}
    for backend in ("loky", "dask"):
        oracle = ims.MAPOracle(problem, backend="networkx", n_jobs=2, parallel_backend=backend)
        oracle._scheduler.seconds_per_instance = 0.005
        chunks[backend] = len(oracle._scheduler.chunks(64, oracle.solver))
        oracle._scheduler.seconds_per_instance = 0.0025  # 64 of them are less than one Dask task's worth
        chunks[backend, "short"] = len(oracle._scheduler.chunks(64, oracle.solver))
    assert chunks == {"loky": 8, "dask": 2, ("loky", "short"): 8, ("dask", "short"): 1}


@pytest.mark.parametrize("time_limit", [None, 5.0])
def test_a_solver_that_aborts_its_dask_worker_fails_alone_under_skip(client, rng, time_limit):
    scores = marked(rng, 8, 6, 3)
    with ims.MAPOracle(Hostile(n=6, k=1), backend="abort", n_jobs=-1, parallel_backend="dask", chunk_size=1,
                       on_failure="skip", time_limit=time_limit) as oracle:
        z, status = oracle.solve(scores)
    want = expected(scores)
    want[3] = 0
    np.testing.assert_array_equal(z, want)
    np.testing.assert_array_equal(status, [0, 0, 0, Status.FAILED, 0, 0, 0, 0])
    assert oracle.failures == {"worker-died": 1}  # not "time-limit", with a limit or without


def test_a_solver_that_aborts_its_dask_worker_raises_worker_died(client, rng):
    scores = marked(rng, 8, 6, 5)
    with ims.MAPOracle(Hostile(n=6, k=1), backend="abort", n_jobs=-1, parallel_backend="dask",
                       chunk_size=1) as oracle:
        with pytest.raises(ims.SolverError, match="worker died") as caught:
            oracle(scores)
    assert caught.value.status == "worker-died" and 5 in caught.value.indices


def _erred_tasks(dask_scheduler) -> int:
    return sum(task.state == "erred" for task in dask_scheduler.tasks.values())


def test_the_futures_of_tasks_that_killed_their_worker_are_not_kept(client, rng):
    # Dask re-raises a failed future's error (here KilledWorker) with the caller's frames
    # attached, frames that hold the future: unless the engine releases it, the client keeps
    # the future, and the scheduler its erred task, for good (the Dask chaos soak's memory
    # grew with every such task).
    gc.collect()  # earlier tests' garbage, not counted against this one
    futures_before, erred_before = len(client.futures), client.run_on_scheduler(_erred_tasks)
    with ims.MAPOracle(Hostile(n=6, k=1), backend="abort", n_jobs=-1, parallel_backend="dask", chunk_size=1,
                       on_failure="skip") as oracle:
        for _ in range(2):
            _, status = oracle.solve(marked(rng, 4, 6, 1))
            np.testing.assert_array_equal(status, [0, Status.FAILED, 0, 0])
    assert oracle.failures == {"worker-died": 2}
    deadline = time.monotonic() + 10  # the client tells the scheduler on its event loop
    while (len(client.futures) > futures_before or client.run_on_scheduler(_erred_tasks) > erred_before) \
            and time.monotonic() < deadline:
        gc.collect()  # the error and the frames that held the futures: a cycle, garbage once released
        time.sleep(0.1)
    assert len(client.futures) <= futures_before
    assert client.run_on_scheduler(_erred_tasks) <= erred_before


def test_a_timed_out_dask_task_is_cancelled_and_its_worker_restarted(client, rng, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    scores = marked(rng, 6, 6, 2)
    oracle = ims.MAPOracle(Hostile(n=6, k=1), backend="spin", n_jobs=-1, parallel_backend="dask", chunk_size=1,
                           time_limit=0.5, on_failure="skip")
    oracle.warm_up()
    before = set(client.run(os.getpid).values())
    z, status = oracle.solve(scores)
    np.testing.assert_array_equal(status, [0, 0, Status.FAILED, 0, 0, 0])
    assert oracle.failures == {"time-limit": 1}
    client.wait_for_workers(2)
    deadline = time.monotonic() + 10  # the scheduler hears of cancelled tasks' ends from their workers
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(client.processing().values())  # nothing of ours runs on
    assert before - set(client.run(os.getpid).values())  # the spinning worker was restarted
    oracle.warm_up()  # and the next call's warm-up finds the workers free
    clean = rng.uniform(size=(6, 6))
    np.testing.assert_array_equal(oracle(clean), expected(clean))


def test_a_timed_call_on_a_cluster_whose_workers_never_answer_ends_within_its_limits(rng, monkeypatch):
    # Every worker's one thread is held (as by a cancelled task that still runs): the
    # start-up before the timed call gives up after START_UP_SECONDS instead of waiting
    # for a thread, restarts the workers that hold its tasks, and the call goes on. A
    # cluster of its own: under load, Dask's nannies may not bring every restarted worker
    # back (docs/parallel.md), which must not starve the module's other tests.
    monkeypatch.setattr("imle_solvers._pool.START_UP_SECONDS", 1.0)
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 0.5)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        holders = [client.submit(time.sleep, 40, pure=False, workers=[address]) for address in client.nthreads()]
        while not all(client.processing().values()):  # both started
            time.sleep(0.05)
        oracle = ims.MAPOracle(Hostile(n=6, k=1), backend="spin", n_jobs=-1, parallel_backend="dask", chunk_size=1,
                               time_limit=0.2, on_failure="skip")
        scores = rng.uniform(size=(2, 6))
        start = time.monotonic()
        z, status = oracle.solve(scores)
        took = time.monotonic() - start
        assert took < 30, took  # the held threads would keep the call waiting 40 s
        for row, state in enumerate(status):  # never a wrong state: each instance solved right, or failed
            assert state == Status.FAILED or (z[row] == expected(scores[row : row + 1])[0]).all()
        assert set(oracle.failures) <= {"time-limit", "worker-died"}
        client.cancel(holders, force=True)


def test_a_dask_worker_killed_mid_step_leaves_training_as_undisturbed(client, tmp_path):
    # last in this module: the cluster's nanny restarts the killed worker, but not at once
    pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    problem = LoggedGrid(4, 4, workdir=str(tmp_path))
    estimator = ims.IMLE(ims.SumOfGamma(k=5), lambda_=10.0)
    expected = train(IMLELayer(problem, estimator, backend="networkx-slow", seed=0), steps=4)
    victim = next(iter(client.run(os.getpid).values()))
    timer = threading.Timer(0.1, os.kill, (victim, signal.SIGKILL))

    def kill_during(step: int) -> None:
        if step == 2:
            timer.start()  # a forward pass takes 4 tasks x 2 instances x 0.05 s on 2 workers

    layer = IMLELayer(
        problem, estimator, backend="networkx-slow", seed=0, n_jobs=-1, parallel_backend="dask", chunk_size=2
    )
    try:
        assert train(layer, steps=4, before_step=kill_during) == expected
    finally:
        layer.oracle.close()
    timer.join()
    assert not any(victim == pid for pid in client.run(os.getpid).values())  # it did die
    assert victim in {int(p.name.removeprefix("pid-")) for p in tmp_path.glob("pid-*")}  # after solving


def test_a_nanny_its_cluster_closes_while_it_restarts_its_worker_is_reopened(rng):
    # A LocalCluster closes a nanny for good when, lost-worker-timeout after its worker
    # left, no worker of its name is registered, even while the nanny starts its
    # replacement (which takes seconds on a loaded machine): the chaos soak lost one nanny
    # after the other that way. With the timeout at 0 s, that check always lands during
    # the restart: the abort below costs the cluster its one nanny, which the engine must
    # have the cluster start anew, so that the next call solves.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.deploy.lost-worker-timeout": "0s"}), distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(1)
        first = cluster.workers[0]
        with ims.MAPOracle(Hostile(n=6, k=1), backend="abort", n_jobs=-1, parallel_backend="dask", chunk_size=1,
                           on_failure="skip") as oracle:
            scores = marked(rng, 4, 6, 1)
            z, status = oracle.solve(scores)
            assert status[1] == Status.FAILED
            for row in np.flatnonzero(status == 0):  # the others may have waited for a worker in vain
                np.testing.assert_array_equal(z[row], expected(scores[row : row + 1])[0])
            clean = rng.uniform(size=(4, 6))
            z, status = oracle.solve(clean)
            np.testing.assert_array_equal(status, [0, 0, 0, 0])
            np.testing.assert_array_equal(z, expected(clean))
        assert first.status.name == "closed" and cluster.workers[0] is not first  # the cluster did close it
        assert len(client.nthreads()) == 1  # and runs the one it reopened


class _FlakyFuture:
    """A future whose first ``result(timeout=...)`` fails as distributed's ``sync`` does when
    a cancellation crosses its timed wait (an ``UnboundLocalError``), then answers."""

    key = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def result(self, timeout: float | None = None) -> str:
        self.calls += 1
        if self.calls == 1:
            raise UnboundLocalError("cannot access local variable 'result' where it is not associated with a value")
        return "solved"


def test_a_result_lost_to_a_cancellation_in_dasks_timed_wait_is_fetched_again(client):
    from imle_solvers.engines.dask import DaskEngine

    future = _FlakyFuture()
    assert DaskEngine().result(future) == "solved" and future.calls == 2


class _NeverFetched:
    """A finished future whose result never comes back (lost with its worker, and its
    recomputation stuck behind a hung task)."""

    key = "never-fetched"

    def result(self, timeout: float | None = None) -> str:
        time.sleep(timeout or 0)
        raise TimeoutError


def test_a_result_not_fetched_within_its_limit_is_a_loss_not_a_hang(client, monkeypatch):
    from imle_solvers.engines import dask as dask_engine

    monkeypatch.setattr(dask_engine, "REFETCH_SECONDS", 1.5)
    engine = dask_engine.DaskEngine()
    start = time.monotonic()
    with pytest.raises(engine.lost_errors):  # the pool retries it once, then says worker-died
        engine.result(_NeverFetched())
    assert time.monotonic() - start < 10
