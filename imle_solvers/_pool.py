"""Persistent worker pools for :class:`~imle_solvers.oracle.MAPOracle`.

A :class:`WorkerPool` starts its workers once and reuses them for every call, so
they start once per training job, not once per step. On ``"loky"``, ``"dask"`` and
``"ray"`` it submits the tasks to an engine of its own (:mod:`imle_solvers.engines`)
and waits on them with a deadline per task; on other joblib backends (threads,
``"sequential"``, ``"multiprocessing"``) it wraps one ``joblib.Parallel``. It keeps
the order of the tasks, retries once the tasks a dead worker took with it, turns a
task past its time-out into an error that names the task (its workers are stopped),
and shuts down cleanly on :meth:`WorkerPool.close`, on ``KeyboardInterrupt``, when
garbage collected and at interpreter exit.

Calls from several threads are served one at a time (a lock per pool); a forked
child never touches the parent's workers (the pool notices the new process and
starts its own).

Two invariants hold whatever joblib does underneath:

- **Results never cross calls.** Every task is tagged with its call and its
  position, and a result is placed by its tag, never by the order it arrives in.
  A ``joblib.Parallel`` whose call was aborted (a dead worker, a timeout, an
  error) is never reused: joblib keeps batches it had sliced off the aborted
  call's task list in a queue that it does not clear, and a later call on the
  same ``Parallel`` would run them first and yield their results as its own.
  The pool exits it and enters a fresh one for the next call (with loky, on the
  same, restarted executor: no worker start-up is added).
- **Nothing is dropped silently.** A task whose result did not come back is
  either retried or named in the error.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import joblib
from joblib.externals.loky.process_executor import BrokenProcessPool, ShutdownExecutorError, TerminatedWorkerError

from .engines import Engine, cluster_slots, make_engine
from .errors import UnknownBackendError, missing_dependency

# Open loky pools of this process (each has workers of its own; kept for inspection).
_OPEN_LOKY_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
# Every pool of this process: a forked child resets them all (see WorkerPool._after_fork).
_ALL_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()

# What one task costs a backend beyond the solving, in seconds: pickling the chunk
# there and back and the scheduler's bookkeeping (benchmarks/bench_pool.py measures
# 64 empty tasks in one call on two workers, per task: loky 0.7-2 ms, Dask 10-18 ms).
# Dask goes through its scheduler, Ray through an actor call and its object store.
# Dask's figure is what its chunk-size sweep shows a task of real work costing, not
# the empty tasks' (pipelined in one call, they hide its latency): on two workers,
# eight tasks of 40 ms broke even with the serial loop, two of 160 ms gave 1.28x.
TASK_OVERHEAD_SECONDS = {
    "loky": 0.001,
    "multiprocessing": 0.001,
    "threading": 0.0002,
    "sequential": 0.0,
    "dask": 0.04,
    "ray": 0.005,
}
# A task should carry this many times its overhead in solving (the overhead is then
# under 20% of the task); the oracle still makes at least one task per worker.
OVERHEAD_FACTOR = 5
# The floor of a task's solving time: joblib polls for finished tasks every 10 ms,
# so on any backend a shorter task mostly waits.
MIN_TARGET_TASK_SECONDS = 0.02

# A warm-up task holds its worker this long, so that the first worker to start
# does not take every warm-up task of a round before the others are up.
WARM_UP_HOLD_SECONDS = 0.05
# Rounds of warm-up tasks before giving up on reaching every worker (one round
# reaches them all unless some start much later than others).
WARM_UP_ROUNDS = 5
# What starting the workers before a timed call may take: a spawn and the imports take
# seconds even on a loaded machine. A worker that has not answered by then is not
# starting but stuck (a Dask worker whose only thread still runs a cancelled task, a
# nanny its cluster closed): it is restarted, and the call goes on and times its own tasks.
START_UP_SECONDS = 60.0


class WorkersLost(Exception):
    """Workers died twice while holding ``tasks`` (indices into the mapped sequence);
    ``results`` holds the results of the other tasks (None for ``tasks``)."""

    def __init__(self, tasks: list[int], results: list[Any] | None = None) -> None:
        super().__init__(f"workers died holding tasks {tasks}")
        self.tasks = tasks
        self.results = results


class TaskTimedOut(Exception):
    """A task ran past the pool's per-task timeout; its workers were stopped.

    Attributes:
        task: the task that timed out (its index in the mapped sequence).
        tasks: every task it may be: ``[task]`` on backends that stream results;
            on those that return a call's results only all at once (see
            :attr:`WorkerPool.streams_results`), every task of the call, since
            which of them had finished is not known.
        results: the results of the tasks that finished (None for the others).
    """

    def __init__(self, task: int, tasks: list[int] | None = None, results: list[Any] | None = None) -> None:
        self.tasks = [task] if tasks is None else list(tasks)
        self.results = results
        super().__init__(f"task {task} timed out" if len(self.tasks) == 1 else f"one of tasks {self.tasks} timed out")
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
    # joblib.Parallel only knows registered backends: some register on demand
    # (joblib's EXTERNAL_BACKENDS)
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    if name not in BACKENDS and name in EXTERNAL_BACKENDS:
        EXTERNAL_BACKENDS[name]()


def effective_workers(n_jobs: int, backend: str) -> int:
    """How many tasks backend ``backend`` runs at once for ``n_jobs`` (-1: every core or,
    on Dask and Ray, every thread or CPU of the cluster; -2: all but one, and so on).

    Never waits for a cluster: with no Dask worker up (all of them restarting), 1."""
    check_backend(backend)
    if backend in ("dask", "ray"):
        if n_jobs > 0:
            return n_jobs
        return max(1, cluster_slots(backend) + 1 + n_jobs)
    _register(backend)
    with joblib.parallel_config(backend=backend):
        return joblib.effective_n_jobs(n_jobs)


def task_overhead_seconds(backend: str) -> float:
    """What one task costs ``backend`` beyond its solving (a measured figure; 10 ms for
    backends not measured here, as a cautious guess)."""
    return TASK_OVERHEAD_SECONDS.get(backend, 0.01)


def target_task_seconds(backend: str) -> float:
    """How much solving a task on ``backend`` should carry to be worth its dispatch:
    ``OVERHEAD_FACTOR`` times its overhead, and at least ``MIN_TARGET_TASK_SECONDS``
    (0.02 s on loky, 0.2 s on Dask)."""
    return max(MIN_TARGET_TASK_SECONDS, OVERHEAD_FACTOR * task_overhead_seconds(backend))


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


@dataclass(frozen=True)
class _Call:
    """One :meth:`WorkerPool.map`: ``fn`` of each of ``tasks``, into ``results`` (one slot
    a task), each with a ``timeout`` in seconds (or None)."""

    fn: Callable[..., Any]
    tasks: Sequence[tuple]
    results: list[Any]
    timeout: float | None


class _Holder:
    """What a pool runs on: its engine, or its live ``joblib.Parallel`` (None until
    opened). The pool's finalizer holds this (not the pool), so that it can stop
    whichever is current at the end."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.parallel: joblib.Parallel | None = None


class WorkerPool:
    """Persistent workers for ``n_jobs`` concurrent tasks on ``backend``, opened on first use.

    Args:
        n_jobs: concurrent tasks, as joblib counts them (-1: every core).
        backend: a joblib backend name (see :func:`known_backends`).

    Attributes:
        openings: how many times the pool was opened (first use, and first use after
            :meth:`close`).
        restarts: how many times the workers were replaced after an aborted call (a
            dead worker, a timeout, an error raised by a task).
    """

    def __init__(self, n_jobs: int, backend: str) -> None:
        check_backend(backend)
        self.n_jobs = n_jobs
        self.backend = backend
        self._holder = _Holder()
        self._open = False
        self._finalizer: weakref.finalize | None = None
        self._streams: bool | None = None  # known once opened
        self._calls = 0  # tags every call's tasks, so that no result is taken for another call's
        self.openings = 0
        self.restarts = 0
        self._warm = False  # workers known to be up: the last call on them succeeded
        self._reset_process_state()
        _ALL_POOLS.add(self)

    def _reset_process_state(self) -> None:
        # the lock serialises calls from threads: one call's tasks, time-outs and restarts
        # at a time on these workers (joblib.Parallel refuses a second concurrent call)
        self._lock = threading.RLock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"WorkerPool(n_jobs={self.n_jobs}, backend={self.backend!r}, {state})"

    def __getstate__(self) -> dict:
        # a copy (pickled oracle, deep-copied layer) starts closed and opens its own workers
        state = {**self.__dict__, "_holder": _Holder(), "_open": False, "_finalizer": None, "_warm": False}
        del state["_lock"], state["_pid"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_process_state()
        _ALL_POOLS.add(self)

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def streams_results(self) -> bool | None:
        """Whether results come back one task at a time, or a call's all at once
        (joblib's ``return_as="list"``: joblib backends without generator support, such as
        ``"multiprocessing"``); None until the pool was first opened.

        Streaming keeps what a call completed when a worker dies and names the one task
        that timed out. All at once, a dead worker makes the whole call run again, and a
        timeout names every task of the call. ``"loky"``, ``"dask"`` and ``"ray"`` stream.
        """
        return self._streams

    @property
    def target_task_seconds(self) -> float:
        """How much solving one task should carry on this pool's backend (see
        :func:`target_task_seconds`)."""
        return target_task_seconds(self.backend)

    def map(self, fn: Callable[..., Any], tasks: Sequence[tuple], timeout: float | None = None) -> list[Any]:
        """``[fn(*task) for task in tasks]`` on the workers, in order.

        Tasks lost with their workers are run once more on restarted workers. Workers
        that died between calls are found when the call dispatches its first task, and
        count as that loss. Calls from several threads run one after the other.

        Raises:
            WorkersLost: workers died again during the retry; names the unfinished tasks.
            TaskTimedOut: a task ran past ``timeout`` seconds (its workers are stopped).
            Whatever ``fn`` raises, unchanged.
        """
        return self._map(fn, tasks, timeout, start_workers=True)

    def _map(self, fn: Callable[..., Any], tasks: Sequence[tuple], timeout: float | None,
             start_workers: bool) -> list[Any]:
        """:meth:`map`; ``start_workers``: before timed tasks, start the workers untimed
        (within ``START_UP_SECONDS``), so that a timeout times tasks, not start-up and imports."""
        self._check_process()
        with self._lock:
            call = _Call(fn, tasks, [None] * len(tasks), timeout)
            results = call.results
            unfinished, lost = list(range(len(tasks))), None
            for _ in range(2):  # the tasks lost with their workers run once more, on restarted ones
                if start_workers and timeout is not None and not self._warm:
                    self._warm_up(None, (), START_UP_SECONDS, start_workers=False)
                unfinished, lost = self._attempt(call, unfinished)
                if not unfinished:
                    return results
                engine = self._holder.engine
                if engine is not None and engine.retries_lost:
                    break  # the cluster retried them already
            raise WorkersLost(unfinished, results) from lost

    def warm_up(self, fn: Callable[..., Any] | None = None, args: tuple = (), timeout: float | None = None) -> int:
        """Start every worker ahead of the first real call, and run ``fn(*args)`` in each
        (to import its module and build what it caches); the number of workers reached.

        What ``fn`` returns or raises is ignored: a warm-up builds, it does not solve.
        Rounds of one task per worker are sent until every worker answered (each task
        holds its worker ``WARM_UP_HOLD_SECONDS``, so that one worker does not take a
        whole round), ``WARM_UP_ROUNDS`` at most. With a ``timeout``, the workers are first
        started within ``START_UP_SECONDS`` (start-up is not what ``timeout`` times; a
        worker that does not answer by then is restarted), then a ``fn`` that runs past
        ``timeout`` is stopped (its workers are restarted) and the warm-up ends there.
        """
        return self._warm_up(fn, args, timeout, start_workers=True)

    def _warm_up(self, fn: Callable[..., Any] | None, args: tuple, timeout: float | None, start_workers: bool) -> int:
        workers = effective_workers(self.n_jobs, self.backend)
        reached: set[tuple[str, int, int]] = set()
        for _ in range(WARM_UP_ROUNDS):
            try:
                reached.update(self._map(_warm_task, [(fn, args)] * workers, timeout, start_workers))
            except (TaskTimedOut, WorkersLost):
                # what hangs or kills on the warm-up's instance, or workers that cannot start:
                # the first real call will say, naming its own tasks (never the warm-up's)
                break
            if len(reached) >= workers:
                break
        return len(reached)

    def _attempt(self, call: _Call, indices: list[int]) -> tuple[list[int], BaseException | None]:
        """Run ``call.tasks[i] for i in indices`` into ``call.results``: the indices lost
        workers left unfinished, and the error that said so."""
        self._ensure_open()
        self._warm = False  # until this call succeeds: an aborted call restarts the workers
        try:
            if self._holder.engine is not None:
                unfinished, lost = self._attempt_on_engine(self._holder.engine, call, indices)
            else:
                unfinished, lost = self._attempt_on_joblib(call, indices)
        except KeyboardInterrupt:
            self.close(kill=True)
            raise
        except TaskTimedOut:
            if self._holder.engine is not None:
                self.restarts += 1  # the engine stopped the timed-out task's workers (joblib: _restart)
            raise
        except BaseException:
            self._restart()  # the call was aborted: its workers must not run its leftovers
            raise
        if unfinished:
            self._restart()
        else:
            self._warm = True
        return unfinished, lost

    def _attempt_on_engine(
        self, engine: Engine, call: _Call, indices: list[int]
    ) -> tuple[list[int], BaseException | None]:
        fn, tasks, results, timeout = call.fn, call.tasks, call.results, call.timeout
        # At most one task per worker in flight when timed, so that a task's clock starts
        # when it does (its deadline runs from its submission); twice that otherwise, so
        # that no worker waits for the next task to arrive.
        workers = effective_workers(self.n_jobs, self.backend)
        capacity = workers if timeout is not None else 2 * workers
        queued = deque(indices)
        running: dict[Any, tuple[int, float]] = {}  # handle -> (task, deadline)
        lost: list[int] = []
        lost_error: BaseException | None = None
        try:
            while running or (queued and not (lost and engine.shared_losses)):
                while queued and not (lost and engine.shared_losses) and len(running) < capacity:
                    i = queued.popleft()
                    try:
                        handle = engine.submit(fn, tasks[i])
                    except engine.lost_errors as error:  # workers died between calls
                        lost.append(i)
                        lost_error = error
                        break
                    running[handle] = (i, time.monotonic() + timeout if timeout is not None else float("inf"))
                if not running:
                    break
                first_deadline = min(deadline for _, deadline in running.values())
                wait = None if timeout is None else max(0.0, first_deadline - time.monotonic())
                done = engine.wait(list(running), wait)
                for handle in done:
                    i, _ = running.pop(handle)
                    try:
                        results[i] = engine.result(handle)
                    except engine.lost_errors as error:
                        # with shared losses (loky: the dead worker broke the executor, the
                        # others are lost with it), no new task until the running ones are back
                        lost.append(i)
                        lost_error = error
                if not done and time.monotonic() >= first_deadline:
                    hung = min(running.items(), key=lambda item: item[1][1])[1][0]
                    raise TaskTimedOut(hung, [hung], results)
        except BaseException:
            if running:  # a time-out, an error, Ctrl-C: what still runs is stopped with its workers
                engine.abort(list(running))
            raise
        return sorted([*lost, *queued]), lost_error

    def _attempt_on_joblib(self, call: _Call, indices: list[int]) -> tuple[list[int], BaseException | None]:
        self._calls += 1
        number, results, fn, tasks = self._calls, call.results, call.fn, call.tasks
        pending = dict.fromkeys(indices)  # in dispatch order: joblib times out the oldest first
        try:
            for tag, position, result in self._run(_tagged, [(number, i, fn, tasks[i]) for i in indices], call.timeout):
                if tag != number or position not in pending:
                    continue  # another call's result (see the module docstring): never this call's
                results[position] = result
                del pending[position]
        except lost_worker_errors() as error:
            return list(pending), error  # results that came back are kept
        except (TimeoutError, multiprocessing.TimeoutError) as error:
            self._restart()
            unfinished = list(pending)
            # streaming, joblib times out the oldest unfinished task; all at once, any of them
            suspects = unfinished[:1] if self._streams else unfinished
            raise TaskTimedOut(unfinished[0], suspects, results) from error
        return list(pending), None  # pending: joblib ended the call without them and without an error

    def _run(self, fn: Callable[..., Any], tasks: list[tuple], timeout: float | None):
        parallel = self._parallel()
        parallel.timeout = timeout  # read at each call: a per-call limit on the persistent pool
        task = joblib.delayed(fn)
        return parallel(task(*args) for args in tasks)

    def _check_process(self) -> None:
        """After a fork (a pid other than the one the pool was made in), start afresh."""
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        """In a forked child: the workers, threads and pipes belong to the parent, and a
        lock may have been held by a thread that does not exist here. Forget them all
        (never stop them: they are the parent's), and open anew on the next call."""
        if self._finalizer is not None:
            self._finalizer.detach()  # its clean-up would act on the parent's workers
        engine = self._holder.engine
        if engine is not None:
            engine.forget()
        self._holder = _Holder()
        self._open = False
        self._warm = False
        _OPEN_LOKY_POOLS.discard(self)
        self._reset_process_state()

    def _ensure_open(self) -> None:
        if self._open:
            return
        self._open = True
        self.openings += 1
        self._warm = False
        self._holder.engine = make_engine(self.backend, self.n_jobs)
        if self._holder.engine is not None:
            self._streams = True
        self._finalizer = weakref.finalize(self, _shut_down, self._holder)
        if self.backend == "loky":
            _OPEN_LOKY_POOLS.add(self)

    def _parallel(self) -> joblib.Parallel:
        """The current ``joblib.Parallel``, entered (backends without an engine)."""
        if self._holder.parallel is None:
            self._holder.parallel = self._enter_parallel()
        return self._holder.parallel

    def _enter_parallel(self) -> joblib.Parallel:
        _register(self.backend)
        # batch_size=1: the oracle already chunks, and a chunk is what gets retried or timed out
        # the backend comes from parallel_config, not Parallel(backend=name), as for every
        # registered backend (joblib 1.6 passes its nesting level on to some backends' submit)
        with joblib.parallel_config(backend=self.backend):
            try:
                parallel = joblib.Parallel(n_jobs=self.n_jobs, batch_size=1, return_as="generator")
                self._streams = True
            except ValueError:  # joblib refuses generators on backends without them (multiprocessing)
                parallel = joblib.Parallel(n_jobs=self.n_jobs, batch_size=1, return_as="list")
                self._streams = False
        parallel.__enter__()
        return parallel

    def _restart(self) -> None:
        """Replace the workers (engine) or the ``joblib.Parallel`` after an aborted call
        (the module docstring says why); the next call gets fresh ones."""
        engine = self._holder.engine
        if engine is not None:
            self.restarts += 1
            engine.restart()
            return
        parallel, self._holder.parallel = self._holder.parallel, None
        if parallel is not None:
            self.restarts += 1
            _exit_parallel(parallel)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (a later :meth:`map` starts new ones); ``kill``: at once,
        whatever they run."""
        self._check_process()
        if not self._open:
            return
        _OPEN_LOKY_POOLS.discard(self)
        self._open = False
        self._warm = False
        if kill and self._holder.engine is not None:
            self._holder.engine.restart()
        self._finalizer()  # runs _shut_down; a finalizer never runs twice


def _reset_pools_after_fork() -> None:
    for pool in list(_ALL_POOLS):
        pool._after_fork()  # noqa: SLF001 - the pools' own fork hook


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_after_fork)


def _tagged(call: int, position: int, fn: Callable[..., Any], args: tuple) -> tuple[int, int, Any]:
    """``fn(*args)`` with the call and position it belongs to, to be placed by them."""
    return call, position, fn(*args)


def _warm_task(fn: Callable[..., Any] | None, args: tuple) -> tuple[str, int, int]:
    """Run ``fn(*args)`` ignoring its outcome, hold the worker ``WARM_UP_HOLD_SECONDS``,
    and say which worker this is (host, process, thread)."""
    start = time.perf_counter()
    if fn is not None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a warm-up builds; the first real call reports failures
            pass
    time.sleep(max(0.0, WARM_UP_HOLD_SECONDS - (time.perf_counter() - start)))
    return socket.gethostname(), os.getpid(), threading.get_ident()


def _exit_parallel(parallel: joblib.Parallel) -> None:
    """Leave an entered ``joblib.Parallel``."""
    parallel.__exit__(None, None, None)


def _shut_down(holder: _Holder) -> None:
    parallel, holder.parallel = holder.parallel, None
    if parallel is not None:
        _exit_parallel(parallel)
    engine, holder.engine = holder.engine, None
    if engine is not None:
        engine.shutdown()
