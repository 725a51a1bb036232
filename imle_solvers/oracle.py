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
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._array import Array, array_namespace, device, framework_of, from_numpy, stays_in_framework, to_numpy
from ._pool import TaskTimedOut, WorkerPool, WorkersLost, effective_workers
from .adapters import resolve_solver
from .adapters.registry import SolverEntry, resolve_native_solver
from .cache import SolutionCache, resolve_cache
from .errors import InvalidInputError, SolverError
from .failures import STATUS_DTYPE, OnFailure, Status, check_on_failure
from .instances import InstanceData, check_data, check_values, for_framework, instance, rows, to_host
from .problems import Problem

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
            per worker, but no task shorter than the pool's ``target_task_seconds`` (a few
            times its backend's per-task overhead) as measured on
            the previous call; a batch that makes a single task is solved in-process.
        time_limit: seconds per instance, or None. Solvers registered with
            ``time_limit=True`` get it as a keyword; on the pool, a chunk of ``m``
            instances is also stopped after ``m * time_limit + TIMEOUT_GRACE_SECONDS``
            seconds. Not enforced for other solvers in the calling process.
        on_failure: ``"raise"`` (default), ``"skip"`` or ``"incumbent"``: what a failing
            instance gives (see :mod:`imle_solvers.failures`).
        cache: a :class:`~imle_solvers.cache.SolutionCache` (``True``: one with the
            defaults), or None: states of instances seen before are answered in the calling
            process, and only the others go to the solver (see docs/parallel.md, "Solution
            cache"). Array-native solves bypass it.

    Row ``i`` of the output is the MAP state of row ``i`` of the input; the output has
    the input's array type, dtype and device. Per-instance data (the problem's
    ``instance_fields``: a mask, a source, an ILP's batched parameter) are passed by name,
    each with the batch axis first, ``oracle(theta, mask=mask)``; row ``i`` is solved with
    row ``i`` of each (see :mod:`imle_solvers.instances`). With ``on_failure="raise"`` a failing
    instance raises :class:`~imle_solvers.errors.SolverError` with its batch index,
    whichever process solved it; otherwise its row is the placeholder (zeros), and
    :meth:`solve` also returns each row's :class:`~imle_solvers.failures.Status`.
    Solvers' results are checked (shape, finite, binary where the problem's states are):
    a bad one is a failure like any other. ``failures`` counts failed solves of instances
    by reason since the oracle was built (an instance failing in a layer's forward and
    backward passes counts twice); ``last_failures`` holds the errors of the last call.
    Call :meth:`close` (or use ``with``) to stop the workers early; they
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
        on_failure: OnFailure = "raise",
        cache: SolutionCache | bool | None = None,
    ) -> None:
        if not isinstance(problem, Problem):
            raise InvalidInputError(f"MAPOracle: problem must be an imle_solvers Problem, got {type(problem).__name__}")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
            raise InvalidInputError(
                f"MAPOracle: n_jobs must be a non-zero int (1: in process, -1: every core), got {n_jobs!r}"
            )
        if isinstance(chunk_size, bool) or chunk_size != "auto" and not (isinstance(chunk_size, int) and chunk_size > 0):
            raise InvalidInputError(f"MAPOracle: chunk_size must be a positive int or 'auto', got {chunk_size!r}")
        if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
            raise InvalidInputError(f"MAPOracle: time_limit must be positive seconds or None, got {time_limit!r}")
        self.on_failure = check_on_failure("MAPOracle", on_failure)
        self.cache = resolve_cache(cache)
        if self.cache is not None:
            self.cache.bind(problem)
        self.failures: Counter[str] = Counter()
        self.last_failures: tuple[SolverError, ...] = ()
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
        extras += "" if self.on_failure == "raise" else f", on_failure={self.on_failure!r}"
        extras += "" if self.cache is None else f", cache={self.cache!r}"
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
        stays = self._auto and not self.solver.runs_on(framework) and stays_in_framework(theta)
        return self.solver_for_framework(framework, stays)

    def solver_for_framework(self, framework: str, stays: bool) -> SolverEntry:
        """The solver of a batch of ``framework``'s arrays that should (``stays``) or need not
        stay in their framework (see :meth:`solver_for`)."""
        if not (stays and self._auto) or self.solver.runs_on(framework):
            return self.solver
        if framework not in self._native_solvers:
            self._native_solvers[framework] = resolve_native_solver(self.problem.kind, framework)
        return self._native_solvers[framework] or self.solver

    def __call__(self, theta: Array, /, *, validate: bool = True, **data: Any) -> Array:
        """MAP states of a batch ``theta`` of shape ``(B, *problem.shape)``, same shape out.

        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)``; a field not given takes the problem's value for every row.
        ``validate=False`` skips the checks of ``theta``'s and the data's shapes and values,
        for callers that made them already (the bindings check once per step; a check of a
        GPU tensor's values waits for the device)."""
        return self._solve(theta, validate, data)[0]

    def solve(self, theta: Array, /, *, validate: bool = True, **data: Any) -> tuple[Array, Array]:
        """MAP states ``(B, *problem.shape)`` of ``theta`` (and ``data``, as for calls), and
        each row's :class:`~imle_solvers.failures.Status` ``(B,)`` (int8, in ``theta``'s
        framework and on its device): OK, INCUMBENT or FAILED (then the row is zeros). With
        ``on_failure="raise"`` every returned status is OK."""
        z, status = self._solve(theta, validate, data)
        xp = array_namespace(theta)
        if status is None:
            return z, xp.zeros((theta.shape[0],), dtype=getattr(xp, STATUS_DTYPE), device=device(theta))
        return z, xp.asarray(status, device=device(theta))

    def _solve(self, theta: Array, validate: bool, data: InstanceData) -> tuple[Array, np.ndarray | None]:
        """States, and the statuses as numpy ``(B,)`` (None: all OK, nothing left the framework)."""
        framework = framework_of(theta)
        solver = self._solver_for(theta, framework)
        if data:
            self.check_takes_data(solver, data)
            if validate:
                check_data(self.problem, data, theta.shape[0])
        native = self.runs_natively(solver, framework)
        data = for_framework(self.problem, data, theta) if native else to_host(self.problem, data)
        if validate:
            self.problem.validate(theta if native else to_numpy(theta))
            check_values(self.problem, data)
        return self.solve_with(solver, native, theta, data)

    def runs_natively(self, solver: SolverEntry, framework: str) -> bool:
        """Whether ``solver`` (from :meth:`solver_for`) takes a batch of ``framework``'s arrays
        as they are, in the calling process: else its batches go to the host (numpy)."""
        return solver.runs_on(framework) and not (solver is self.solver and self._pooled)

    def solve_with(
        self, solver: SolverEntry, native: bool, theta: Array, data: InstanceData
    ) -> tuple[Array, np.ndarray | None]:
        """States ``(N, *shape)`` of ``theta`` by ``solver`` and the statuses as numpy ``(N,)``
        (None: all OK), for a caller that chose the solver once (:meth:`solver_for`,
        :meth:`runs_natively`) and checked ``theta`` and ``data`` already: ``data`` are in
        ``theta``'s framework when ``native``, numpy (:func:`~imle_solvers.instances.to_host`)
        otherwise. ``theta`` may be any framework's array either way."""
        self.last_failures = ()
        if native:
            z = solver.solve(theta, self.problem, data=data) if data else solver.solve(theta, self.problem)
            if tuple(z.shape) != tuple(theta.shape):
                raise SolverError(
                    f"instances 0-{theta.shape[0] - 1} ({self.problem.label}, backend {solver.backend!r}): the "
                    f"solver returned shape {tuple(z.shape)}, expected {tuple(theta.shape)}",
                    index=0,
                    status="bad-output",
                )
            return z, None
        values = to_numpy(theta)
        if len(values) == 0:
            return from_numpy(np.zeros_like(values), like=theta), None
        if self.cache is None:
            z, status = self._solve_batch(values, data, np.arange(len(values)))
            return from_numpy(z, like=theta), status
        plan = self.cache.plan(values, data, self.problem.sign)
        z, status = plan.states, np.zeros(len(values), dtype=STATUS_DTYPE)
        if len(plan.to_solve):
            todo = plan.to_solve
            solved, solved_status = self._solve_batch(values[todo], {k: v[todo] for k, v in data.items()}, todo)
            z[todo], status[todo] = solved, solved_status
            self.cache.add([plan.keys[i] for i in todo], solved, solved_status == Status.OK)
        return from_numpy(z, like=theta), status

    def _solve_batch(
        self, values: np.ndarray, host: InstanceData, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """States and statuses of the rows ``values`` (numpy, non-empty), rows ``positions``
        of the caller's batch (the indices that errors name)."""
        chunks = self._chunks(len(values))
        if len(chunks) == 1 and not (self._pooled and self._task_timeout_needed):
            results, seconds = self._solve_in_process(values, host, positions)
        else:
            results, seconds = self._solve_on_pool(values, host, chunks, positions)
        self._seconds_per_instance = seconds / len(values)
        status = np.concatenate([result.status for result in results])
        self.last_failures = tuple(error for result in results for error in result.failures)
        for error in self.last_failures:  # per instance: a lost chunk's error names all of its
            self.failures[_reason(error, self.on_failure)] += max(len(error.indices), 1)
        return np.concatenate([result.z for result in results]), status

    def check_takes_data(self, solver: SolverEntry, data: InstanceData) -> None:
        """Raise unless ``solver`` takes per-instance data (where ``data`` are given)."""
        if not solver.takes_data:
            raise InvalidInputError(
                f"{self.problem.label}: backend {solver.backend!r} takes no per-instance data, "
                f"and {', '.join(map(repr, data))} {'was' if len(data) == 1 else 'were'} given; "
                "pick a backend that does (imle_solvers.list_solvers shows them)"
            )

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
        if worthwhile >= n:  # the whole batch is less solving than one task should carry: in-process
            return n
        # larger chunks, but never fewer tasks than workers: an idle worker is the worst overhead
        return min(math.ceil(n / workers), max(balanced, worthwhile))

    def _solve_in_process(
        self, values: np.ndarray, data: InstanceData, positions: np.ndarray
    ) -> tuple[list[ChunkResult], float]:
        start = time.perf_counter()
        result = solve_chunk(self.solver, self.problem, values, positions, self.time_limit, self.on_failure, data)
        return [result], time.perf_counter() - start

    def _solve_on_pool(
        self, values: np.ndarray, data: InstanceData, chunks: list[Chunk], positions: np.ndarray
    ) -> tuple[list[ChunkResult], float]:
        tasks = [
            (self.solver, self.problem, values[a:b], positions[a:b], self.time_limit, self.on_failure, rows(data, a, b))
            for a, b in chunks
        ]
        timeout = None
        if self.time_limit is not None:
            timeout = self.time_limit * max(b - a for a, b in chunks) + TIMEOUT_GRACE_SECONDS
        outputs: list[TaskOutput | None] = [None] * len(tasks)
        pending, one_at_a_time = list(range(len(tasks))), False
        while pending:  # more than one round only where a policy other than "raise" skips chunks
            batch = pending[:1] if one_at_a_time else pending
            try:
                for i, output in zip(batch, self.pool.map(solve_task, [tasks[i] for i in batch], timeout=timeout)):
                    outputs[i] = output
            except (WorkersLost, TaskTimedOut) as fault:
                suspects = [batch[t] for t in fault.tasks]
                lost = [[int(p) for p in positions[chunks[i][0] : chunks[i][1]]] for i in suspects]
                if isinstance(fault, WorkersLost):
                    error = self._lost_error(lost, fault.__cause__)
                else:
                    error = self._timeout_error(lost, timeout)
                if self.on_failure == "raise":
                    raise error from fault
                for i, output in zip(batch, fault.results or ()):
                    if output is not None:  # finished before the fault: kept
                        outputs[i] = output
                if len(suspects) > 1:
                    one_at_a_time = True  # which chunk was it? each suspect alone tells
                else:
                    outputs[suspects[0]] = self._placeholder(chunks[suspects[0]], error)
            pending = [i for i in pending if outputs[i] is None]
        for category, message in dict.fromkeys(w for output in outputs for w in output.warnings):
            warnings.warn(message, category, stacklevel=4)  # the workers' warnings, once each
        for output in outputs:
            if isinstance(output.result, SolverError):  # the first failing instance, as in-process
                raise output.result
        return [output.result for output in outputs], sum(output.seconds for output in outputs)

    def _placeholder(self, chunk: Chunk, error: SolverError) -> TaskOutput:
        """A skipped chunk: zeros, every row FAILED, ``error`` its failure."""
        a, b = chunk
        result = ChunkResult(
            z=np.zeros((b - a, *self.problem.shape)),
            status=np.full(b - a, Status.FAILED, dtype=STATUS_DTYPE),
            failures=(error,),
        )
        return TaskOutput(result=result, seconds=0.0, warnings=())

    def _lost_error(self, chunks: list[list[int]], cause: BaseException | None) -> SolverError:
        """The error for lost ``chunks`` (each the caller's batch indices of its rows)."""
        indices = [i for chunk in chunks for i in chunk]
        return SolverError(
            f"instances {_spans(chunks)} ({self.problem.label}, backend {self.solver.backend!r}): "
            f"a worker died while solving them, and again when they were retried on restarted "
            f"workers ({cause!r})",
            index=indices[0],
            status="worker-died",
            indices=tuple(indices),
        )

    def _timeout_error(self, chunks: list[list[int]], timeout: float | None) -> SolverError:
        """The error for a task timeout among ``chunks`` (each the caller's batch indices of
        its rows; one chunk, on backends that stream results)."""
        indices = [i for chunk in chunks for i in chunk]
        how = "" if self.solver.time_limit else f"; backend {self.solver.backend!r} does not enforce time limits itself"
        return SolverError(
            f"instances {_spans(chunks)} ({self.problem.label}, backend {self.solver.backend!r}): "
            f"time limit hit, no result within {timeout:.3g} s (time_limit={self.time_limit} s per "
            f"instance, plus {TIMEOUT_GRACE_SECONDS} s grace); the workers were stopped{how}",
            index=indices[0],
            status="time-limit",
            indices=tuple(indices),
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


@dataclass(frozen=True)
class ChunkResult:
    """The solved rows of a chunk.

    Attributes:
        z: ``(n, *shape)`` MAP states; a failed row is zeros.
        status: ``(n,)`` int8 :class:`~imle_solvers.failures.Status` per row.
        failures: the errors of the rows that failed (or gave an incumbent).
    """

    z: np.ndarray
    status: np.ndarray
    failures: tuple[SolverError, ...] = ()


def solve_chunk(
    solver: SolverEntry,
    problem: Problem,
    theta: np.ndarray,
    offset: int | np.ndarray,
    time_limit: float | None = None,
    on_failure: OnFailure = "raise",
    data: InstanceData | None = None,
) -> ChunkResult:
    """Solve rows ``theta`` (``(n, *shape)``), the ``offset``-th onwards of the batch (or,
    for an array ``offset``, the rows of these ``n`` batch indices: a cache's misses), with
    their per-instance ``data`` (numpy, ``(n, *field.shape)`` each; see
    :mod:`imle_solvers.instances`).

    ``time_limit`` (seconds per instance) is passed on to solvers registered with
    ``time_limit=True``. A failure (an error, or a result that fails
    :func:`check_states`) is a :class:`SolverError` naming the instance's index in the
    batch: raised under ``on_failure="raise"``, otherwise recorded in the result. A
    batched solver that fails is asked again one instance at a time, to find the
    failing ones (under ``"raise"`` only when its error did not say which it was).
    """
    options: dict[str, Any] = {"time_limit": time_limit} if solver.time_limit and time_limit is not None else {}
    data = data or {}
    n = len(theta)
    positions = _positions(offset, n)
    status = np.zeros(n, dtype=STATUS_DTYPE)
    if solver.batched:
        try:
            return ChunkResult(_checked_solve(solver, problem, positions, theta, options | _data_option(data)), status)
        except SolverError as error:
            located = isinstance(error.__cause__, SolverError) and error.__cause__.index is not None
            if n == 1 or (on_failure == "raise" and located):
                raise
    z = np.zeros_like(theta)
    failures: list[SolverError] = []
    for i in range(n):
        # a batched solver gets one-row batches: the same call, one instance at a time
        if solver.batched:
            one, its_data = theta[i : i + 1], rows(data, i, i + 1)
        else:
            one, its_data = theta[i], instance(data, i)
        try:
            z[i] = _checked_solve(solver, problem, positions[i : i + 1], one, options | _data_option(its_data)).reshape(
                theta.shape[1:]
            )
        except SolverError as error:
            if on_failure == "raise":
                raise
            failures.append(error)
            if on_failure == "incumbent" and error.incumbent is not None:
                z[i] = np.asarray(error.incumbent, dtype=theta.dtype).reshape(theta.shape[1:])
                status[i] = Status.INCUMBENT
            else:
                status[i] = Status.FAILED
    return ChunkResult(z, status, tuple(failures))


def _data_option(data: InstanceData) -> dict[str, InstanceData]:
    """The ``data=`` keyword of a solver call: only for instances that have data."""
    return {"data": data} if data else {}


@dataclass(frozen=True)
class TaskOutput:
    """What a worker sends back for a chunk.

    Attributes:
        result: the chunk's :class:`ChunkResult`, or, under ``on_failure="raise"``, the
            :class:`SolverError` of its first failing instance.
        seconds: time spent solving.
        warnings: ``(category, message)`` of the warnings raised, for the caller to
            re-emit (a worker's own warnings would never reach the user).
    """

    result: ChunkResult | SolverError
    seconds: float
    warnings: tuple[tuple[type[Warning], str], ...]


def solve_task(
    solver: SolverEntry,
    problem: Problem,
    theta: np.ndarray,
    offset: int | np.ndarray,
    time_limit: float | None,
    on_failure: OnFailure = "raise",
    data: InstanceData | None = None,
) -> TaskOutput:
    """:func:`solve_chunk` on a worker.

    The error is returned, not raised: joblib answers a raising task by killing and
    restarting every worker, and the oracle wants the batch's first failure anyway.
    """
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: ChunkResult | SolverError = solve_chunk(
                solver, problem, theta, offset, time_limit, on_failure, data
            )
        except SolverError as error:
            result = error
    raised = tuple((w.category, str(w.message)) for w in caught)
    return TaskOutput(result=result, seconds=time.perf_counter() - start, warnings=raised)


def _positions(offset: int | np.ndarray, n: int) -> np.ndarray:
    """The batch indices of ``n`` rows: ``offset`` onwards, or ``offset`` itself (an array)."""
    if isinstance(offset, (int, np.integer)):
        return np.arange(int(offset), int(offset) + n)
    return np.asarray(offset, dtype=np.int64).reshape(n)


def _checked_solve(
    solver: SolverEntry, problem: Problem, positions: np.ndarray, theta: np.ndarray, options: dict[str, Any]
) -> np.ndarray:
    """``solver.solve(theta, problem, **options)``, checked by :func:`check_states`, in
    ``theta``'s dtype and shape; a failure becomes a :class:`SolverError` naming the
    instance's batch index (``positions``: those of the call's rows; a batched call's first
    row where the solver did not say which)."""
    index = int(positions[0])
    try:
        z = solver.solve(theta, problem, **options)
    except SolverError as error:
        row = error.index or 0
        where = int(positions[row]) if solver.batched and 0 <= row < len(positions) else index
        raise SolverError(
            f"instance {where} ({problem.label}, backend {solver.backend!r}): {error}",
            index=where,
            status=error.status,
            incumbent=error.incumbent,
        ) from error
    except Exception as error:
        raise SolverError(
            f"instance {index}{'+' if solver.batched else ''} ({problem.label}, backend {solver.backend!r}) "
            f"failed: {error!r}",
            index=index,
            status="error",
        ) from error
    return check_states(z, theta, problem, solver.backend, positions, batched=solver.batched)


def check_states(
    z: Any, theta: np.ndarray, problem: Problem, backend: str, index: int | np.ndarray, *, batched: bool
) -> np.ndarray:
    """A solver's result ``z`` for ``theta`` as an array of ``theta``'s shape and dtype, or a
    :class:`SolverError` (status ``"bad-output"``) naming the instance and the backend:
    ``z`` must be numeric, hold as many entries as ``theta``, be finite, and be 0 or 1
    where ``problem.binary_states``. ``index`` is the batch index of ``theta``'s first row
    (of its only instance when not ``batched``), or an array of its rows' batch indices."""

    def bad(what: str, row: int = 0) -> SolverError:
        where = index + row if isinstance(index, (int, np.integer)) else int(index[row])
        return SolverError(
            f"instance {where} ({problem.label}, backend {backend!r}): the solver returned {what}",
            index=where,
            status="bad-output",
        )

    if z is None:
        raise bad("None instead of a state")
    try:
        values = np.asarray(z)
    except Exception as error:  # ragged lists, objects that refuse conversion
        raise bad(f"something that is not an array ({error!r})") from error
    if values.dtype.kind not in "biuf":
        raise bad(f"an array of dtype {values.dtype}, not numbers")
    if values.size != theta.size:
        raise bad(f"shape {values.shape} ({values.size} entries), expected {tuple(theta.shape)}")
    values = values.astype(theta.dtype, copy=False).reshape(theta.shape)
    rows = values.reshape(len(values), -1) if batched else values.reshape(1, -1)
    finite = np.isfinite(rows)
    if not finite.all():
        row = int(np.argmin(finite.all(axis=1)))
        raise bad(f"a non-finite value ({rows[row][np.argmin(finite[row])]})", row)
    if problem.binary_states:
        binary = (rows == 0) | (rows == 1)
        if not binary.all():
            row = int(np.argmin(binary.all(axis=1)))
            raise bad(f"the value {rows[row][np.argmin(binary[row])]} in a state of zeros and ones", row)
    return values


def _reason(error: SolverError, on_failure: OnFailure) -> str:
    """The key a failure is counted under in ``MAPOracle.failures``: the error's status, or
    ``"incumbent"`` where the policy kept the solver's incumbent."""
    return "incumbent" if on_failure == "incumbent" and error.incumbent is not None else (error.status or "error")


def _spans(chunks: list[list[int]]) -> str:
    """``[[0, 1, 2, 3], [8], [10, 12, 13]] -> "0-3, 8, 10, 12-13"``: each chunk's runs."""
    runs: list[list[int]] = []
    for chunk in chunks:
        start = len(runs)
        for i in chunk:
            if len(runs) > start and i == runs[-1][1] + 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)

