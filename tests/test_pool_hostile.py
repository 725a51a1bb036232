"""The loky pool under a hostile caller: calls from threads, a time-out in a neighbour
oracle, a fork, a parent killed with SIGKILL, a warm-up whose instance hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_solvers import Hostile, expected, marked

import imle_solvers as ims
from imle_solvers.failures import Status

TESTS = Path(__file__).resolve().parent


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until_gone(pids: set[int], seconds: float = 20.0) -> set[int]:
    """The PIDs among ``pids`` still alive after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while {pid for pid in pids if alive(pid)} and time.monotonic() < deadline:
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def test_one_oracle_called_from_three_threads_answers_every_call(rng):
    problem = Hostile(n=6, k=1)
    batches = [rng.uniform(size=(8, 6)) for _ in range(15)]
    answers: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def calls(oracle: ims.MAPOracle, which: range) -> None:
        for i in which:
            try:
                answers[i] = oracle(batches[i])
            except BaseException as error:  # noqa: BLE001 - every error is the test's failure
                errors.append(error)

    with ims.MAPOracle(problem, backend="best", n_jobs=2, chunk_size=2) as oracle:
        threads = [threading.Thread(target=calls, args=(oracle, range(t, 15, 3))) for t in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    for i, scores in enumerate(batches):
        np.testing.assert_array_equal(answers[i], expected(scores))


def test_a_time_out_in_one_oracle_never_touches_another_oracles_calls(rng, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    problem = Hostile(n=6, k=1)
    hung = ims.MAPOracle(problem, backend="spin", n_jobs=2, chunk_size=1, time_limit=0.5, on_failure="skip")
    busy = ims.MAPOracle(problem, backend="best", n_jobs=2, chunk_size=1)
    done = threading.Event()
    answers: list[tuple[np.ndarray, np.ndarray]] = []
    errors: list[BaseException] = []

    def keep_calling() -> None:
        while not done.is_set() or len(answers) < 3:
            scores = rng.uniform(size=(6, 6))
            try:
                answers.append((scores, busy(scores)))
            except BaseException as error:  # noqa: BLE001
                errors.append(error)
                return

    try:
        busy(rng.uniform(size=(4, 6)))  # workers up before the time-out
        hung.warm_up()
        thread = threading.Thread(target=keep_calling)
        thread.start()
        scores = marked(rng, 4, 6, 2)
        z, status = hung.solve(scores)
        done.set()
        thread.join()
    finally:
        hung.close()
        busy.close()
    assert errors == []  # the other oracle's workers were not killed under its calls
    for scores, z_busy in answers:
        np.testing.assert_array_equal(z_busy, expected(scores))
    np.testing.assert_array_equal(status, [0, 0, Status.FAILED, 0])
    assert hung.failures == {"time-limit": 1}


def test_a_forked_child_solves_on_workers_of_its_own_and_leaves_the_parents(rng):
    problem = Hostile(n=6, k=1)
    scores = rng.uniform(size=(8, 6))
    with ims.MAPOracle(problem, backend="best", n_jobs=2, chunk_size=2) as oracle:
        oracle(scores)  # the pool is open, its workers and threads running
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the oracle it inherited, and a fresh one
            try:
                z = oracle(scores)
                with ims.MAPOracle(problem, backend="best", n_jobs=2, chunk_size=2) as fresh:
                    ok = np.array_equal(z, expected(scores)) and np.array_equal(fresh(scores), z)
                os.write(write, b"ok" if ok else b"wrong")
            finally:
                os._exit(0)
        os.close(write)
        deadline = time.monotonic() + 120
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on its oracle")
        answer = os.read(read, 16)
        os.close(read)
        assert answer == b"ok"
        np.testing.assert_array_equal(oracle(scores), expected(scores))  # the parent's workers still answer


@pytest.mark.xfail(strict=False, reason="on some machines one loky worker outlives its SIGKILLed parent "
                   "(docs/parallel.md, a known limit): cause not found yet")
def test_workers_exit_within_seconds_of_their_parents_sigkill(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(TESTS)!r})
        import numpy as np
        import imle_solvers as ims
        from hostile_solvers import Hostile

        if __name__ == "__main__":
            oracle = ims.MAPOracle(Hostile(n=6, k=1), backend="best", n_jobs=2, chunk_size=1)
            oracle(np.ones((4, 6)))
            print("up", flush=True)
            time.sleep(600)
        """
    )
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert trainer.stdout.readline().strip() == "up"
        children = {
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if alive(int(stat.parent.name)) and _ppid(stat) == trainer.pid
        }
        assert len(children) >= 2  # its workers
    finally:
        trainer.kill()  # SIGKILL: no clean-up runs in the trainer
        trainer.wait()
    # a watchdog polls every 0.5 s; the bound leaves room for a loaded CI machine (loky's own idle
    # time-out, which this replaces, is 300 s)
    assert wait_until_gone(children, seconds=60.0) == set()


def _ppid(stat: Path) -> int:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_warm_up_stops_a_solver_that_hangs_on_zeros_at_the_time_limit(rng, monkeypatch):
    monkeypatch.setattr("imle_solvers.scheduler.TIMEOUT_GRACE_SECONDS", 1.0)
    problem = Hostile(n=6, k=1)
    with ims.MAPOracle(problem, backend="hang-on-zeros", n_jobs=2, chunk_size=2, time_limit=0.5) as oracle:
        warming = threading.Thread(target=oracle.warm_up, daemon=True)
        warming.start()
        warming.join(timeout=120)
        assert not warming.is_alive(), "warm_up hung on its instance of zeros"
        scores = rng.uniform(size=(8, 6))
        np.testing.assert_array_equal(oracle(scores), expected(scores))  # the hung workers were replaced
