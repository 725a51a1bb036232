"""Persistent joblib worker pools for :class:`~imle_solvers.oracle.MAPOracle`.

A :class:`WorkerPool` wraps one ``joblib.Parallel`` that is entered once and
reused for every call, so the workers (loky's reusable executor, a thread pool,
a Dask or Ray cluster) start once per training job, not once per step. It keeps
the order of the tasks, retries once the tasks a dead worker took with it, turns
joblib's per-task timeout into an error that names the task, and shuts down
cleanly on :meth:`WorkerPool.close`, on ``KeyboardInterrupt``, when garbage
collected and at interpreter exit.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import joblib
from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.process_executor import BrokenProcessPool, ShutdownExecutorError, TerminatedWorkerError

from .errors import UnknownBackendError, missing_dependency

# Open loky pools of this process: loky's executor is a process-wide singleton,
# so the last pool to close is the one that stops its workers.
_OPEN_LOKY_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


class WorkersLost(Exception):
    """Workers died twice while holding ``tasks`` (indices into the mapped sequence)."""

    def __init__(self, tasks: list[int]) -> None:
        super().__init__(f"workers died holding tasks {tasks}")
        self.tasks = tasks


class TaskTimedOut(Exception):
    """Task ``task`` ran past the pool's per-task timeout; its workers were stopped."""

    def __init__(self, task: int) -> None:
        super().__init__(f"task {task} timed out")
        self.task = task


def known_backends() -> list[str]:
    """The joblib backend names a pool accepts (registered, lazily registered, and ``"ray"``)."""
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    return sorted({*BACKENDS, *EXTERNAL_BACKENDS, "ray"})


def check_backend(name: str) -> None:
    """Raise before any worker starts if backend ``name`` is unknown or not installed."""
    if name not in known_backends():
        raise UnknownBackendError(f"unknown parallel_backend {name!r}; known joblib backends: {known_backends()}")
    extra_modules = {"dask": "distributed", "ray": "ray"}
    module = extra_modules.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        raise missing_dependency(module, name, needed_by=f"parallel_backend {name!r}")


def _register(name: str) -> None:
    # joblib.Parallel only knows registered backends: "dask" is registered on demand
    # (joblib's EXTERNAL_BACKENDS), Ray ships its backend and registers it on request.
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    if name == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    elif name not in BACKENDS and name in EXTERNAL_BACKENDS:
        EXTERNAL_BACKENDS[name]()


def effective_workers(n_jobs: int, backend: str) -> int:
    """How many tasks backend ``backend`` runs at once for ``n_jobs`` (-1: every core or cluster thread)."""
    check_backend(backend)
    _register(backend)
    with joblib.parallel_config(backend=backend):
        return joblib.effective_n_jobs(n_jobs)


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    """What each backend raises when the workers went away under a task.

    A worker process died (killed, segfault, out of memory), or, for loky, another
    user of its process-wide executor restarted or shut it down.
    """
    errors: list[type[BaseException]] = [TerminatedWorkerError, BrokenProcessPool, ShutdownExecutorError]
    # only backends already imported can have raised their errors
    if "distributed" in sys.modules:
        from distributed.scheduler import KilledWorker

        errors.append(KilledWorker)
    if "ray" in sys.modules:
        from ray.exceptions import RayActorError, WorkerCrashedError

        errors += [RayActorError, WorkerCrashedError]
    return tuple(errors)


class WorkerPool:
    """A persistent ``joblib.Parallel(n_jobs, backend)``, opened on first use.

    Args:
        n_jobs: concurrent tasks, as joblib counts them (-1: every core).
        backend: a joblib backend name (see :func:`known_backends`).
    """

    def __init__(self, n_jobs: int, backend: str) -> None:
        check_backend(backend)
        self.n_jobs = n_jobs
        self.backend = backend
        self._parallel: joblib.Parallel | None = None
        self._finalizer: weakref.finalize | None = None
        self.openings = 0  # how many times the pool was opened
        self._warm = False  # workers known to be up: the last call on them succeeded

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"WorkerPool(n_jobs={self.n_jobs}, backend={self.backend!r}, {state})"

    def __getstate__(self) -> dict:
        # a copy (pickled oracle, deep-copied layer) starts closed and opens its own workers
        return {**self.__dict__, "_parallel": None, "_finalizer": None}

    @property
    def is_open(self) -> bool:
        return self._parallel is not None

    def map(self, fn: Callable[..., Any], tasks: Sequence[tuple], timeout: float | None = None) -> list[Any]:
        """``[fn(*task) for task in tasks]`` on the workers, in order.

        Tasks lost with their workers are run once more on restarted workers (joblib
        restarts them when it aborts the failed call).

        Raises:
            WorkersLost: workers died again during the retry; names the unfinished tasks.
            TaskTimedOut: a task ran past ``timeout`` seconds (its workers are stopped).
            Whatever ``fn`` raises, unchanged.
        """
        if timeout is not None and not self._warm:
            self._warm_up()
        results: list[Any] = [None] * len(tasks)
        unfinished, lost = self._attempt(fn, tasks, list(range(len(tasks))), results, timeout)
        if unfinished:  # joblib restarted the workers when it aborted the call: once more
            unfinished, lost = self._attempt(fn, tasks, unfinished, results, timeout)
        if unfinished:
            raise WorkersLost(unfinished) from lost
        return results

    def _attempt(
        self,
        fn: Callable[..., Any],
        tasks: Sequence[tuple],
        indices: list[int],
        results: list[Any],
        timeout: float | None,
    ) -> tuple[list[int], BaseException | None]:
        """Run ``tasks[i] for i in indices`` into ``results``: the indices lost workers
        left unfinished, and the error that said so."""
        done = 0
        self._warm = False  # until this call succeeds: an aborted call restarts the workers
        try:
            for result in self._run(fn, [tasks[i] for i in indices], timeout):
                results[indices[done]] = result
                done += 1
        except lost_worker_errors() as error:
            return indices[done:], error  # results come in order: those before `done` are kept
        except (TimeoutError, multiprocessing.TimeoutError) as error:
            # in ordered mode joblib times out the oldest unfinished task, the `done`-th
            raise TaskTimedOut(indices[done]) from error
        except KeyboardInterrupt:
            self.close()
            raise
        self._warm = True
        return [], None

    def _warm_up(self) -> None:
        """Start every worker, so that a timeout times tasks, not start-up and imports."""
        list(self._run(_ready, [()] * effective_workers(self.n_jobs, self.backend), None))

    def _run(self, fn: Callable[..., Any], tasks: list[tuple], timeout: float | None):
        parallel = self._open()
        parallel.timeout = timeout  # read at each call: a per-call limit on the persistent pool
        task = joblib.delayed(fn)
        return parallel(task(*args) for args in tasks)

    def _open(self) -> joblib.Parallel:
        if self._parallel is None:
            _register(self.backend)
            # batch_size=1: the oracle already chunks, and a chunk is what gets retried or timed out
            # the backend comes from parallel_config, not Parallel(backend=name): joblib 1.6 then
            # passes its nesting level on to Dask's client.submit, which fails every task
            with joblib.parallel_config(backend=self.backend):
                parallel = joblib.Parallel(n_jobs=self.n_jobs, batch_size=1, return_as="generator")
            parallel.__enter__()
            self._parallel = parallel
            self._warm = False
            self._finalizer = weakref.finalize(self, _shut_down, parallel, self.backend == "loky")
            self.openings += 1
            if self.backend == "loky":
                _OPEN_LOKY_POOLS.add(self)
        return self._parallel

    def close(self) -> None:
        """Stop the workers (a later :meth:`map` starts new ones)."""
        if self._parallel is None:
            return
        _OPEN_LOKY_POOLS.discard(self)
        self._parallel = None
        self._finalizer()  # runs _shut_down; a finalizer never runs twice


def _ready() -> None:
    """A task that only makes a worker start (and import this package)."""


def _shut_down(parallel: joblib.Parallel, stop_loky: bool) -> None:
    parallel.__exit__(None, None, None)
    if stop_loky and not _OPEN_LOKY_POOLS:
        # joblib leaves loky's workers idling for 300 s; nobody else here uses them
        get_reusable_executor(reuse=True).shutdown(wait=True)
