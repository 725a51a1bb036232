"""The batched MAP oracle: a batch of scores in, a batch of MAP states out.

It validates the batch, looks the solver up in the registry, and runs it: in the
calling process for cheap vectorised solvers, for ``n_jobs=1`` and for batches
too small to be worth shipping; otherwise in chunks on a persistent joblib pool
(:mod:`imle_solvers._pool`) that is created once and reused across calls. See
``docs/parallel.md`` for the pool's lifecycle, backends, failures and time limits.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._array import Array, framework_of, from_numpy, stays_in_framework, to_numpy
from ._pool import TaskTimedOut, WorkerPool, WorkersLost, effective_workers
from .adapters import resolve_solver
from .adapters.registry import SolverEntry, resolve_native_solver
from .errors import InvalidInputError, SolverError
from .problems import Problem

# A task should carry at least this much solving: loky's round trip costs about a
# millisecond and joblib polls for results every 10 ms, so shorter tasks mostly wait.
TARGET_TASK_SECONDS = 0.02
# Several tasks per worker even out instances of uneven difficulty.
TASKS_PER_WORKER = 4
# Added to a chunk's time limit: a fresh worker's start-up and a solver model's first build.
TIMEOUT_GRACE_SECONDS = 5.0

Chunk = tuple[int, int]  # rows [start, stop) of the batch


class MAPOracle:
    """Batched MAP states of ``problem``: ``(B, *problem.shape) -> (B, *problem.shape)``.

    Args:
        problem: what to solve.
        backend: a registered solver name for ``problem.kind``, or ``"auto"`` for the
            installed one of highest priority (see :func:`imle_solvers.list_solvers`);
            with ``"auto"``, a batch traced by ``jax.jit``/``tf.function`` or living on a
            GPU goes to the best array-native solver instead, if the default is not one
            (see :meth:`solver_for`).
        n_jobs: concurrent tasks; 1 solves in the calling process, -1 uses every core
            (with ``"dask"`` or ``"ray"``: every thread of the cluster).
        parallel_backend: a joblib backend: ``"loky"`` (processes), ``"threading"``,
            ``"sequential"``, ``"dask"`` (needs a ``distributed.Client``), ``"ray"``.
        chunk_size: instances per task, or ``"auto"``: about ``TASKS_PER_WORKER`` tasks
            per worker, but no task shorter than ``TARGET_TASK_SECONDS`` as measured on
            the previous call; a batch that makes a single task is solved in-process.
        time_limit: seconds per instance, or None. Solvers registered with
            ``time_limit=True`` get it as a keyword; on the pool, a chunk of ``m``
            instances is also stopped after ``m * time_limit + TIMEOUT_GRACE_SECONDS``
            seconds. Not enforced for other solvers in the calling process.

    Row ``i`` of the output is the MAP state of row ``i`` of the input; the output has
    the input's array type, dtype and device. A failing instance raises
    :class:`~imle_solvers.errors.SolverError` with its batch index, whichever process
    solved it. Call :meth:`close` (or use ``with``) to stop the workers early; they
    are also stopped when the oracle is garbage collected and at interpreter exit.
    """

    def __init__(
        self,
        problem: Problem,
        backend: str = "auto",
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
    ) -> None:
        if chunk_size != "auto" and not (isinstance(chunk_size, int) and chunk_size > 0):
            raise InvalidInputError(f"MAPOracle: chunk_size must be a positive int or 'auto', got {chunk_size!r}")
        if time_limit is not None and not time_limit > 0:
            raise InvalidInputError(f"MAPOracle: time_limit must be positive seconds or None, got {time_limit!r}")
        self.problem = problem
        self.solver: SolverEntry = resolve_solver(problem.kind, backend)
        self._auto = backend == "auto"
        self._native_solvers: dict[str, SolverEntry | None] = {}
        self.chunk_size = chunk_size
        self.time_limit = time_limit
        self.pool = WorkerPool(n_jobs, parallel_backend)
        # a scheduling hint from the last call (seconds per instance); results never depend on it
        self._seconds_per_instance: float | None = None
        if time_limit is not None and not self.solver.time_limit and not self._pooled:
            warnings.warn(
                f"MAPOracle: backend {self.solver.backend!r} does not enforce time limits and runs in "
                f"the calling process (n_jobs={n_jobs}), so time_limit={time_limit} is not enforced",
                stacklevel=2,
            )

    @property
    def n_jobs(self) -> int:
        return self.pool.n_jobs

    @property
    def parallel_backend(self) -> str:
        return self.pool.backend

    def __repr__(self) -> str:
        extras = "" if self.time_limit is None else f", time_limit={self.time_limit}"
        return (
            f"MAPOracle({self.problem!r}, backend={self.solver.backend!r}, n_jobs={self.n_jobs}, "
            f"parallel_backend={self.parallel_backend!r}, chunk_size={self.chunk_size!r}{extras})"
        )

    def solver_for(self, theta: Array) -> SolverEntry:
        """The solver that takes ``theta``: the oracle's own, except that with ``backend="auto"``
        a batch that should stay in its framework (traced by ``jax.jit``/``tf.function``, or
        on a GPU) goes to the best installed array-native solver for that framework, where
        the default one would need a host copy."""
        return self._solver_for(theta, framework_of(theta))

    def _solver_for(self, theta: Array, framework: str) -> SolverEntry:
        if self._auto and not self.solver.runs_on(framework) and stays_in_framework(theta):
            if framework not in self._native_solvers:
                self._native_solvers[framework] = resolve_native_solver(self.problem.kind, framework)
            return self._native_solvers[framework] or self.solver
        return self.solver

    def __call__(self, theta: Array, *, validate: bool = True) -> Array:
        """MAP states of a batch ``theta`` of shape ``(B, *problem.shape)``, same shape out.

        ``validate=False`` skips the checks of ``theta``'s shape and values, for callers
        that made them already (the bindings check ``theta`` once per step; a check of a
        GPU tensor's values waits for the device)."""
        framework = framework_of(theta)
        solver = self._solver_for(theta, framework)
        if solver.runs_on(framework):
            if validate:
                self.problem.validate(theta)
            return solver.solve(theta, self.problem)
        values = to_numpy(theta)
        if validate:
            self.problem.validate(values)
        if len(values) == 0:
            return from_numpy(np.zeros_like(values), like=theta)
        chunks = self._chunks(len(values))
        if len(chunks) == 1 and not (self._pooled and self._task_timeout_needed):
            results, seconds = self._solve_in_process(values)
        else:
            results, seconds = self._solve_on_pool(values, chunks)
        self._seconds_per_instance = seconds / len(values)
        return from_numpy(np.concatenate(results), like=theta)

    @property
    def _pooled(self) -> bool:
        """Whether batches may go to the worker pool at all."""
        return self.n_jobs != 1 and not self.solver.inline

    @property
    def _task_timeout_needed(self) -> bool:
        """Only a pool task timeout can enforce ``time_limit`` on this solver."""
        return self.time_limit is not None and not self.solver.time_limit

    def _chunks(self, n: int) -> list[Chunk]:
        """Row ranges of the tasks for a batch of ``n`` instances, in order."""
        size = self._chunk_length(n) if self._pooled else n
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def _chunk_length(self, n: int) -> int:
        if self.chunk_size != "auto":
            return int(self.chunk_size)
        workers = effective_workers(self.n_jobs, self.parallel_backend)
        balanced = math.ceil(n / (TASKS_PER_WORKER * workers))
        if self._seconds_per_instance is None:
            return balanced
        worthwhile = math.ceil(self.pool.target_task_seconds / max(self._seconds_per_instance, 1e-9))
        return min(n, max(balanced, worthwhile))

    def _solve_in_process(self, values: np.ndarray) -> tuple[list[np.ndarray], float]:
        start = time.perf_counter()
        z = solve_chunk(self.solver, self.problem, values, 0, self.time_limit)
        return [z], time.perf_counter() - start

    def _solve_on_pool(self, values: np.ndarray, chunks: list[Chunk]) -> tuple[list[np.ndarray], float]:
        tasks = [(self.solver, self.problem, values[a:b], a, self.time_limit) for a, b in chunks]
        timeout = None
        if self.time_limit is not None:
            timeout = self.time_limit * max(b - a for a, b in chunks) + TIMEOUT_GRACE_SECONDS
        try:
            outputs = self.pool.map(solve_task, tasks, timeout=timeout)
        except WorkersLost as lost:
            raise self._lost_error([chunks[i] for i in lost.tasks], lost.__cause__) from lost
        except TaskTimedOut as timed_out:
            raise self._timeout_error(chunks[timed_out.task], timeout) from timed_out
        for category, message in dict.fromkeys(w for output in outputs for w in output.warnings):
            warnings.warn(message, category, stacklevel=3)  # the workers' warnings, once each
        for output in outputs:
            if isinstance(output.z, SolverError):  # the first failing instance, as in-process
                raise output.z
        return [output.z for output in outputs], sum(output.seconds for output in outputs)

    def _lost_error(self, chunks: list[Chunk], cause: BaseException | None) -> SolverError:
        return SolverError(
            f"instances {_spans(chunks)} ({self.problem.kind}, backend {self.solver.backend!r}): "
            f"a worker died while solving them, and again when they were retried on restarted "
            f"workers ({cause!r})",
            index=chunks[0][0],
            status="worker-died",
            indices=tuple(i for a, b in chunks for i in range(a, b)),
        )

    def _timeout_error(self, chunk: Chunk, timeout: float | None) -> SolverError:
        how = "" if self.solver.time_limit else f"; backend {self.solver.backend!r} does not enforce time limits itself"
        return SolverError(
            f"instances {_spans([chunk])} ({self.problem.kind}, backend {self.solver.backend!r}): "
            f"time limit hit, no result within {timeout:.3g} s (time_limit={self.time_limit} s per "
            f"instance, plus {TIMEOUT_GRACE_SECONDS} s grace); the workers were stopped{how}",
            index=chunk[0],
            status="time-limit",
            indices=tuple(range(*chunk)),
        )

    def warm_up(self) -> float:
        """Start every worker and build the solver's model in each, ahead of training; the
        seconds it took.

        A pool's first call otherwise pays for the workers' start-up, their imports and
        each worker's first model build (seconds with loky), which looks like a hang in
        the first training step. Each worker, and the calling process (which solves
        batches too small to ship), solves one instance of zeros; its result or failure
        is ignored. Inline solvers and ``n_jobs=1`` use no pool: nothing to do.
        """
        if not self._pooled:
            return 0.0
        start = time.perf_counter()
        task = (self.solver, self.problem, np.zeros((1, *self.problem.shape)), 0, self.time_limit)
        solve_task(*task)  # returns a failure rather than raise it
        self.pool.warm_up(solve_task, task)
        return time.perf_counter() - start

    def close(self) -> None:
        """Stop the worker pool (a later call starts a new one)."""
        self.pool.close()

    def __enter__(self) -> MAPOracle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def solve_chunk(
    solver: SolverEntry, problem: Problem, theta: np.ndarray, offset: int, time_limit: float | None = None
) -> np.ndarray:
    """Solve rows ``theta`` (``(n, *shape)``), the ``offset``-th onwards of the batch.

    ``time_limit`` (seconds per instance) is passed on to solvers registered with
    ``time_limit=True``. A failure becomes a :class:`SolverError` naming the
    instance's index in the batch.
    """
    options = {"time_limit": time_limit} if solver.time_limit and time_limit is not None else {}
    if solver.batched:
        return _named_failure(solver, problem, offset, theta, options)
    z = np.empty_like(theta)
    for i, instance in enumerate(theta):
        z[i] = _named_failure(solver, problem, offset + i, instance, options)
    return z


@dataclass(frozen=True)
class TaskOutput:
    """What a worker sends back for a chunk.

    Attributes:
        z: the chunk's MAP states ``(n, *shape)``, or the :class:`SolverError` of its
            first failing instance.
        seconds: time spent solving.
        warnings: ``(category, message)`` of the warnings raised, for the caller to
            re-emit (a worker's own warnings would never reach the user).
    """

    z: np.ndarray | SolverError
    seconds: float
    warnings: tuple[tuple[type[Warning], str], ...]


def solve_task(
    solver: SolverEntry, problem: Problem, theta: np.ndarray, offset: int, time_limit: float | None
) -> TaskOutput:
    """:func:`solve_chunk` on a worker.

    The error is returned, not raised: joblib answers a raising task by killing and
    restarting every worker, and the oracle wants the batch's first failure anyway.
    """
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            z: np.ndarray | SolverError = solve_chunk(solver, problem, theta, offset, time_limit)
        except SolverError as error:
            z = error
    raised = tuple((w.category, str(w.message)) for w in caught)
    return TaskOutput(z=z, seconds=time.perf_counter() - start, warnings=raised)


def _named_failure(
    solver: SolverEntry, problem: Problem, index: int, theta: np.ndarray, options: dict[str, Any]
) -> np.ndarray:
    """``solver.solve(theta, problem, **options)`` in ``theta``'s dtype and shape; a failure
    becomes a :class:`SolverError` naming instance ``index`` of the batch."""
    try:
        z = solver.solve(theta, problem, **options)
    except SolverError as error:
        where = index + (error.index or 0) if solver.batched else index
        raise SolverError(
            f"instance {where} ({problem.kind}, backend {solver.backend!r}): {error}",
            index=where,
            status=error.status,
        ) from error
    except Exception as error:
        raise SolverError(
            f"instance {index}{'+' if solver.batched else ''} ({problem.kind}, backend {solver.backend!r}) "
            f"failed: {error!r}",
            index=index,
            status="error",
        ) from error
    return np.asarray(z, dtype=theta.dtype).reshape(theta.shape)


def _spans(chunks: list[Chunk]) -> str:
    """``[(0, 4), (8, 9)] -> "0-3, 8"``."""
    return ", ".join(f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in chunks)

