"""The parallel MAP oracle: same results on every backend, one persistent pool,
recovery from dead workers, time limits, errors that name the instance, clean shutdown.

The toy solvers below are module-level functions registered under kinds of their
own, so that loky workers can import them by reference.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.failures import Status
from imle_solvers import _pool
from imle_solvers.errors import InvalidInputError, SolverError, UnknownBackendError
from imle_solvers.problems.base import Problem, Sense

pytestmark = pytest.mark.filterwarnings("ignore::imle_solvers.NegativeCostWarning")


@dataclass(frozen=True)
class Pick(Problem):
    """Pick the best of ``n`` items: theta ``(n,)``, z the one-hot of its argmax.

    ``workdir`` is where the toy solvers leave files: a "killed once" marker, and
    one file per process that solved something.
    """

    n: int = 4
    workdir: str = ""
    kind: ClassVar[str] = "test-oracle-pick"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> Sense:
        return "max"


def one_hot_argmax(theta: np.ndarray) -> np.ndarray:
    """``(..., n) -> (..., n)``: one-hot of the largest entry."""
    return np.eye(theta.shape[-1])[np.argmax(theta, axis=-1)]


def _log_pid(problem: Pick) -> None:
    Path(problem.workdir, f"pid-{os.getpid()}").touch()


@ims.register_solver(Pick.kind, "argmax")
def solve_argmax(theta: np.ndarray, problem: Pick) -> np.ndarray:
    _log_pid(problem)
    time.sleep(0.01)  # long enough that both workers get tasks
    return one_hot_argmax(theta)


@ims.register_solver(Pick.kind, "kill-once")
def solve_killing_once(theta: np.ndarray, problem: Pick) -> np.ndarray:
    marker = Path(problem.workdir, "killed")
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return one_hot_argmax(theta)


@ims.register_solver(Pick.kind, "kill-always")
def solve_killing_always(theta: np.ndarray, problem: Pick) -> np.ndarray:
    os.kill(os.getpid(), signal.SIGKILL)


@ims.register_solver(Pick.kind, "kill-marked")
def solve_killing_on_marked(theta: np.ndarray, problem: Pick) -> np.ndarray:
    if theta[0] > 100:  # the marked instance kills its worker, every time
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
    return one_hot_argmax(theta)


@ims.register_solver(Pick.kind, "fail-negative")
def solve_failing_on_negative(theta: np.ndarray, problem: Pick) -> np.ndarray:
    if theta[0] < 0:
        raise ValueError("negative first score")
    return one_hot_argmax(theta)


@ims.register_solver(Pick.kind, "sleepy")
def solve_sleepy(theta: np.ndarray, problem: Pick) -> np.ndarray:
    if theta[0] > 100:  # the marked instance hangs
        time.sleep(120)
    return one_hot_argmax(theta)


@ims.register_solver(Pick.kind, "limited", time_limit=True)
def solve_with_time_limit(theta: np.ndarray, problem: Pick, time_limit: float | None = None) -> np.ndarray:
    """Answers the time limit it was given, and "times out" on a marked instance."""
    if theta[0] > 100:
        raise SolverError("stopped at the time limit", status="time-limit")
    return np.full(theta.shape, -1.0 if time_limit is None else time_limit)


@ims.register_solver(Pick.kind, "interrupt")
def solve_interrupting(theta: np.ndarray, problem: Pick) -> np.ndarray:
    try:  # one Ctrl-C only: a second one could land after the test has caught the first
        os.close(os.open(Path(problem.workdir, "interrupted"), os.O_CREAT | os.O_EXCL))
        os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C in the training process
    except FileExistsError:
        pass
    time.sleep(120)


def loky_workers() -> set[int]:
    """PIDs of this process's live loky worker processes."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = Path(stat.parent, "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"LokyProcess" in cmdline:
            pids.add(int(stat.parent.name))
    return pids


def wait_until_gone(pids: set[int], seconds: float = 20.0) -> set[int]:
    """The PIDs among ``pids`` still alive after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)}
        if not alive:
            return alive
        time.sleep(0.1)
    return alive


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def logged_pids(workdir: Path) -> set[int]:
    return {int(path.name.removeprefix("pid-")) for path in workdir.glob("pid-*")}


@pytest.fixture(scope="module", autouse=True)
def warm_workers(tmp_path_factory: pytest.TempPathFactory):
    """An oracle open for the whole module, whose workers the other tests' ``close()``
    leaves running (each oracle has workers of its own)."""
    problem = Pick(n=5, workdir=str(tmp_path_factory.mktemp("warm")))
    with ims.MAPOracle(problem, backend="argmax", n_jobs=2, chunk_size=1) as oracle:
        oracle(np.zeros((4, problem.n)))
        yield oracle


@pytest.fixture
def alone(warm_workers: ims.MAPOracle):
    """For tests of stopping the workers: no other oracle holds them."""
    warm_workers.close()
    gc.collect()  # an unreachable oracle still in a reference cycle holds its pool open
    assert not _pool._OPEN_LOKY_POOLS, f"an earlier test left loky pools open: {list(_pool._OPEN_LOKY_POOLS)}"
    yield
    warm_workers(np.zeros((4, warm_workers.problem.n)))


@pytest.fixture
def pick(tmp_path: Path) -> Pick:
    return Pick(n=5, workdir=str(tmp_path))


@pytest.fixture
def scores(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(12, 5))


# -- same answers everywhere ------------------------------------------------------------


@pytest.mark.parametrize(
    "n_jobs, parallel_backend",
    [(1, "loky"), (2, "loky"), (-1, "loky"), (2, "threading"), (2, "sequential")],
)
def test_every_backend_gives_the_serial_answer_in_order(rng, n_jobs, parallel_backend):
    problem = ims.GridShortestPath(5, 5)
    costs = rng.uniform(0.1, 1.0, size=(14, 5, 5))
    expected = ims.MAPOracle(problem, backend="scipy")(costs)
    with ims.MAPOracle(
        problem, backend="networkx", n_jobs=n_jobs, parallel_backend=parallel_backend, chunk_size=3
    ) as oracle:
        np.testing.assert_array_equal(oracle(costs), expected)


def test_auto_chunks_spread_a_slow_batch_and_keep_a_tiny_one_in_process(pick):
    with ims.MAPOracle(pick, backend="argmax", n_jobs=2) as oracle:
        # 4 per worker
        assert oracle._scheduler.chunks(40, oracle.solver) == [(start, start + 5) for start in range(0, 40, 5)]
        oracle._scheduler.seconds_per_instance = 1e-6  # 40 instances: far less than one task's worth
        assert oracle._scheduler.chunks(40, oracle.solver) == [(0, 40)]
        oracle._scheduler.seconds_per_instance = 0.01  # 2 instances make a worthwhile task
        assert oracle._scheduler.chunks(40, oracle.solver) == [(start, start + 5) for start in range(0, 40, 5)]
        oracle._scheduler.seconds_per_instance = 0.002  # 10 instances make one
        assert oracle._scheduler.chunks(40, oracle.solver) == [(0, 10), (10, 20), (20, 30), (30, 40)]
        oracle._scheduler.seconds_per_instance = 0.0006  # 34 would make one: still a task for each worker
        assert oracle._scheduler.chunks(40, oracle.solver) == [(0, 20), (20, 40)]


def test_inline_solvers_skip_the_pool(rng):
    with ims.MAPOracle(ims.KSubset(6, 2), n_jobs=2) as oracle:
        z = oracle(rng.normal(size=(50, 6)))
        assert (z.sum(axis=1) == 2).all()
        assert not oracle.pool.is_open


# -- one persistent pool --------------------------------------------------------------------


def test_the_pool_is_created_once_and_reused_across_calls(pick, scores, tmp_path):
    with ims.MAPOracle(pick, backend="argmax", n_jobs=2, chunk_size=1) as oracle:
        for _ in range(3):
            np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
        assert oracle.pool.openings == 1
        workers = logged_pids(tmp_path)
        assert os.getpid() not in workers and 1 <= len(workers) <= 2
        assert workers <= loky_workers()


def test_forward_and_backward_of_every_step_share_one_pool(pick, tmp_path):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    # chunk_size=1: several tasks per call even for this small batch
    layer = IMLELayer(pick, ims.IMLE(ims.Gumbel(), lambda_=10.0), backend="argmax", seed=0, n_jobs=2, chunk_size=1)
    theta = torch.randn(8, pick.n, requires_grad=True)
    target = torch.zeros(8, pick.n)
    target[:, 0] = 1
    try:
        for _ in range(3):
            loss = ((layer(theta) - target) ** 2).sum()
            loss.backward()
        assert theta.grad is not None and theta.grad.abs().sum() > 0
        assert layer.oracle.pool.openings == 1
        workers = logged_pids(tmp_path)
        assert os.getpid() not in workers and 1 <= len(workers) <= 2
    finally:
        layer.oracle.close()


def test_closing_one_oracle_leaves_the_workers_of_another_running(pick, scores, tmp_path, warm_workers):
    others = loky_workers()
    with ims.MAPOracle(pick, backend="argmax", n_jobs=2, chunk_size=2) as oracle:
        oracle(scores)
    # each oracle has workers of its own: closing this one stopped only its own
    assert logged_pids(tmp_path).isdisjoint(others) and wait_until_gone(logged_pids(tmp_path)) == set()
    assert loky_workers() == others
    assert warm_workers(np.ones((4, pick.n))).shape == (4, pick.n)


def test_close_stops_the_workers_and_a_later_call_starts_new_ones(pick, scores, tmp_path, alone):
    oracle = ims.MAPOracle(pick, backend="argmax", n_jobs=2, chunk_size=2)
    oracle(scores)
    workers = logged_pids(tmp_path)
    oracle.close()
    assert not oracle.pool.is_open
    assert wait_until_gone(workers) == set()
    np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
    assert oracle.pool.openings == 2
    oracle.close()


def test_workers_stop_at_interpreter_exit_without_close(tmp_path):
    script = textwrap.dedent(
        """
        import numpy as np, os
        from pathlib import Path
        import imle_solvers as ims

        if __name__ == "__main__":
            oracle = ims.MAPOracle(ims.GridShortestPath(4, 4), backend="networkx", n_jobs=2, chunk_size=1)
            oracle(np.ones((8, 4, 4)))
            children = [p.parent.name for p in Path("/proc").glob("[0-9]*/stat")
                        if p.read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid())]
            print(" ".join(children))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    children = {int(pid) for pid in done.stdout.split()}
    assert children  # the workers it started
    assert wait_until_gone(children) == set()


def test_keyboard_interrupt_stops_the_workers(pick, alone):
    oracle = ims.MAPOracle(pick, backend="interrupt", n_jobs=2, chunk_size=1)
    with pytest.raises(KeyboardInterrupt):
        oracle(np.zeros((4, pick.n)))
    assert not oracle.pool.is_open
    assert wait_until_gone(loky_workers()) == set()


def test_warm_up_starts_every_worker_and_builds_its_model_before_the_first_call(pick, scores, tmp_path, alone):
    oracle = ims.MAPOracle(pick, backend="argmax", n_jobs=2, chunk_size=2)
    try:
        assert oracle.warm_up() > 0
        workers = loky_workers()
        assert len(workers) == 2 and oracle.pool.openings == 1
        # each worker solved the instance of zeros (the argmax solver logs its process), and
        # so did the calling process, which solves batches too small to ship
        assert logged_pids(tmp_path) == workers | {os.getpid()}
        np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
        assert oracle.pool.openings == 1 and oracle.pool.restarts == 0
        assert loky_workers() == workers  # the call started no worker
    finally:
        oracle.close()


def test_warm_up_of_an_oracle_without_a_pool_does_nothing():
    with ims.MAPOracle(ims.KSubset(6, 2), n_jobs=2) as oracle:
        assert oracle.warm_up() == 0.0
        assert not oracle.pool.is_open


# -- failures ---------------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_its_instances_retried(pick, scores, tmp_path):
    with ims.MAPOracle(pick, backend="kill-once", n_jobs=2, chunk_size=2) as oracle:
        np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
        assert (tmp_path / "killed").exists()  # a worker really died
        np.testing.assert_array_equal(oracle(scores[:4]), one_hot_argmax(scores[:4]))


def test_workers_killed_between_calls_are_restarted_and_no_result_crosses_calls(pick, rng):
    # as an out-of-memory killer would: from outside, while no call runs. The next call
    # must restart them and answer its own batch; joblib keeps batches of an aborted call
    # queued, which a reused joblib.Parallel would run and yield as the next call's
    with ims.MAPOracle(pick, backend="argmax", n_jobs=2, chunk_size=2) as oracle:
        killed: set[int] = set()
        for _ in range(3):
            scores = rng.normal(size=(12, pick.n))  # a new batch each call: a stale result would show
            np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
            workers = loky_workers()
            assert workers
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            assert wait_until_gone(workers) == set()
            killed |= workers
        scores = rng.normal(size=(12, pick.n))
        np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
        assert loky_workers() and loky_workers().isdisjoint(killed)  # new workers answered
        assert oracle.pool.openings == 1 and oracle.pool.restarts >= 3


def test_a_torch_layer_whose_workers_are_killed_between_steps_trains_as_undisturbed(pick):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    def train(kill: bool, **kwargs) -> torch.Tensor:
        layer = IMLELayer(pick, ims.IMLE(ims.SumOfGamma(k=3), lambda_=10.0), backend="argmax", seed=0, **kwargs)
        theta = torch.nn.Parameter(torch.linspace(-1, 1, 8 * pick.n, dtype=torch.float64).reshape(8, pick.n))
        target = torch.zeros(8, pick.n, dtype=torch.float64)
        target[:, 0] = 1
        optimiser = torch.optim.SGD([theta], lr=0.1)
        try:
            for _ in range(4):
                optimiser.zero_grad()
                ((layer(theta) - target) ** 2).sum().backward()
                optimiser.step()
                if kill:
                    workers = loky_workers()
                    for pid in workers:
                        os.kill(pid, signal.SIGKILL)
                    wait_until_gone(workers)
        finally:
            layer.oracle.close()
        return theta.detach()

    torch.testing.assert_close(train(kill=True, n_jobs=2, chunk_size=4), train(kill=False), rtol=0, atol=0)


def test_a_task_error_leaves_no_work_behind_for_the_next_call():
    # an aborted call (here a task raising) must not hand anything to the next one
    pool = _pool.WorkerPool(2, "loky")
    try:
        with pytest.raises(ZeroDivisionError):
            pool.map(divmod, [(1, 1)] * 5 + [(1, 0)] + [(1, 1)] * 10)
        assert pool.map(divmod, [(i, 3) for i in range(16)]) == [divmod(i, 3) for i in range(16)]
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_backend_without_streamed_results_solves_and_times_out_naming_every_task(pick, scores):
    # joblib's multiprocessing backend, like Ray's, returns a call's results all at once
    with ims.MAPOracle(pick, backend="argmax", n_jobs=2, parallel_backend="multiprocessing", chunk_size=3) as oracle:
        np.testing.assert_array_equal(oracle(scores), one_hot_argmax(scores))
        assert oracle.pool.streams_results is False
    pool = _pool.WorkerPool(2, "multiprocessing")
    try:
        with pytest.raises(_pool.TaskTimedOut) as caught:
            pool.map(time.sleep, [(0.0,), (60.0,), (0.0,)], timeout=1.0)
        assert caught.value.tasks == [0, 1, 2]  # which one hung is not known
        assert pool.map(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]  # the hung worker was stopped
    finally:
        pool.close()


def test_workers_dying_twice_raise_an_error_naming_the_instance_that_killed_them(pick, scores):
    # the chunks in flight all lost their results, but only instance 3 kills its worker:
    # the chunks, then the instances of the chunk at fault, are run again alone to find it
    scores[3, 0] = 1000.0
    with ims.MAPOracle(pick, backend="kill-marked", n_jobs=2, chunk_size=2) as oracle:
        with pytest.raises(SolverError, match=r"^instance 3 \(test-oracle-pick, .*worker died") as caught:
            oracle(scores[:8])
        assert caught.value.status == "worker-died"
        assert caught.value.index == 3 and caught.value.indices == (3,)
        np.testing.assert_array_equal(oracle(scores[4:]), one_hot_argmax(scores[4:]))  # the pool answers again


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_failing_instance_is_named_by_its_batch_index(pick, scores, n_jobs):
    scores = np.abs(scores)
    scores[[5, 9], 0] = -1.0
    with ims.MAPOracle(pick, backend="fail-negative", n_jobs=n_jobs, chunk_size=2) as oracle:
        with pytest.raises(SolverError, match="instance 5 .*negative first score") as caught:
            oracle(scores)
        assert caught.value.index == 5 and caught.value.indices == (5,) and caught.value.status == "error"
        # the pool survives a solver error
        np.testing.assert_array_equal(oracle(np.abs(scores)), one_hot_argmax(np.abs(scores)))


# -- time limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_time_limit_reaches_solvers_that_take_it(pick, scores, n_jobs):
    with ims.MAPOracle(pick, backend="limited", n_jobs=n_jobs, chunk_size=3, time_limit=0.25) as oracle:
        np.testing.assert_array_equal(oracle(scores), np.full(scores.shape, 0.25))
        scores[7, 0] = 1000.0
        with pytest.raises(SolverError, match="instance 7 .*time limit") as caught:
            oracle(scores)
    assert caught.value.index == 7 and caught.value.status == "time-limit"


def test_a_hung_solver_without_time_limits_is_stopped_on_the_pool(pick, scores, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)  # the workers are warm already
    scores[7, 0] = 1000.0
    with ims.MAPOracle(pick, backend="sleepy", n_jobs=2, chunk_size=2, time_limit=0.5) as oracle:
        # the chunk of instances 6-7 timed out; run again alone, instance 7 hangs, not 6
        with pytest.raises(SolverError, match=r"^instance 7 .*time limit.*does not enforce") as caught:
            oracle(scores)
        assert caught.value.index == 7 and caught.value.status == "time-limit"
        assert caught.value.indices == (7,)
        # the hung worker was stopped; the pool answers again
        np.testing.assert_array_equal(oracle(scores[:4]), one_hot_argmax(scores[:4]))


def test_skip_fails_a_hung_instance_alone_and_solves_its_chunk_mates(pick, rng, monkeypatch):
    # a grace that a loaded machine's worker restarts fit in (1 s failed under load)
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 2.5)
    scores = rng.normal(size=(64, pick.n))
    scores[13, 0] = 1000.0
    with ims.MAPOracle(pick, backend="sleepy", n_jobs=2, time_limit=0.25, on_failure="skip") as oracle:
        assert oracle._scheduler.chunks(64, oracle.solver)[1] == (8, 16)  # automatic chunks of 8
        z, status = oracle.solve(scores)
    expected = one_hot_argmax(scores)
    expected[13] = 0
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(status, [Status.FAILED if i == 13 else Status.OK for i in range(64)])
    assert oracle.failures == {"time-limit": 1}
    assert [(e.index, e.indices) for e in oracle.last_failures] == [(13, (13,))]


def test_skip_fails_the_instance_that_kills_its_workers_and_only_it(pick, scores):
    scores[5, 0] = 1000.0
    with ims.MAPOracle(pick, backend="kill-marked", n_jobs=2, chunk_size=4, on_failure="skip") as oracle:
        z, status = oracle.solve(scores)
        np.testing.assert_array_equal(oracle(scores[:4]), one_hot_argmax(scores[:4]))  # the pool answers again
    expected = one_hot_argmax(scores)
    expected[5] = 0
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(status, [Status.FAILED if i == 5 else Status.OK for i in range(12)])
    assert oracle.failures == {"worker-died": 1}
    assert oracle.last_failures == ()  # the last call had none


def test_time_limit_that_cannot_be_enforced_in_process_warns(pick):
    with pytest.warns(UserWarning, match="not enforced"):
        ims.MAPOracle(pick, backend="sleepy", n_jobs=1, time_limit=1.0)


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"parallel_backend": "mpi"}, UnknownBackendError),
        ({"chunk_size": 0}, InvalidInputError),
        ({"chunk_size": "big"}, InvalidInputError),
        ({"time_limit": -1.0}, InvalidInputError),
    ],
)
def test_bad_arguments_fail_before_any_worker_starts(pick, kwargs, error):
    with pytest.raises(error):
        ims.MAPOracle(pick, backend="argmax", **kwargs)


def test_unknown_backend_lists_the_known_ones(pick):
    with pytest.raises(UnknownBackendError, match="loky.*threading"):
        ims.MAPOracle(pick, backend="argmax", n_jobs=2, parallel_backend="mpi")


def test_ray_without_ray_names_the_extra(pick):
    if importlib.util.find_spec("ray") is not None:
        pytest.skip("ray is installed: only its absence is tested here")
    with pytest.raises(ims.MissingDependencyError, match=r"imle_solvers\[ray\]"):
        ims.MAPOracle(pick, backend="argmax", n_jobs=2, parallel_backend="ray")


def test_a_pickled_oracle_starts_closed_and_solves(pick, scores):
    import pickle

    with ims.MAPOracle(pick, backend="argmax", n_jobs=2, chunk_size=3) as oracle:
        oracle(scores)
        copy = pickle.loads(pickle.dumps(oracle))
    assert not copy.pool.is_open
    with copy:
        np.testing.assert_array_equal(copy(scores), one_hot_argmax(scores))


def test_warnings_raised_in_workers_reach_the_caller(rng):
    costs = rng.uniform(0.5, 2.0, size=(16, 6, 6))
    costs[9, 2, 3] = -1.0
    with ims.MAPOracle(ims.GridShortestPath(6, 6), n_jobs=2, chunk_size=4) as oracle:
        with pytest.warns(ims.NegativeCostWarning, match="clamped to 0"):
            z = oracle(costs)
        assert oracle.pool.openings == 1  # it did go through the pool
    np.testing.assert_array_equal(z, ims.MAPOracle(ims.GridShortestPath(6, 6))(np.maximum(costs, 0)))
