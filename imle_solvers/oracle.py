"""The batched MAP oracle: a batch of scores in, a batch of MAP states out.

It validates the batch, looks the solver up in the registry, and runs it: in the
calling process for cheap vectorised solvers, for ``n_jobs=1`` and for batches
too small to be worth shipping; otherwise in chunks (:mod:`imle_solvers.scheduler`)
on a persistent joblib pool (:mod:`imle_solvers._pool`) that is created once and reused
across calls. See ``docs/parallel.md`` for the pool's lifecycle, backends, failures and
time limits.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from typing import Any

import numpy as np

from ._array import Array, array_namespace, device, framework_of, from_numpy, stays_in_framework, to_numpy
from ._pool import WorkerPool
from .adapters import resolve_solver
from .adapters.registry import SolverEntry, check_work_limit, resolve_native_solver
from .cache import SolutionCache, resolve_cache
from .chunks import check_states as check_states  # re-exported: docs/architecture.md names oracle.check_states
from .chunks import solve_task
from .errors import InvalidInputError, SolverError, takes_no_data_error, wrong_shape_error
from .failures import STATUS_DTYPE, OnFailure, Status, check_on_failure
from .instances import ORACLE_CALL, InstanceData, broadcast_data, check_data, check_values, for_framework, to_host
from .problems import Problem
from . import scheduler
from .scheduler import ChunkScheduler, SolveSettings


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
            per worker (see :mod:`imle_solvers.scheduler`), but no task shorter than the
            pool's ``target_task_seconds`` (a few times its backend's per-task overhead) as
            measured on the previous call; a batch that makes a single task is solved in-process.
        time_limit: seconds per instance, or None. Solvers registered with
            ``time_limit=True`` get it as a keyword; on the pool, a chunk of ``m``
            instances is also stopped after ``m * time_limit + TIMEOUT_GRACE_SECONDS``
            seconds. Not enforced for other solvers in the calling process.
        work_limit: a limit per instance in the solver's own deterministic work units
            (CP-SAT: deterministic seconds; SCIP: branch-and-bound nodes), or None: the
            same stop, so the same statuses and incumbents, in the process and on the pool,
            under any load (docs/parallel.md, "Work limits"). Refused for a solver without
            one (registered without ``work_limit=True``).
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
    Solvers' results are checked (exact shape, finite, binary where the problem's states
    are): a bad one is a failure like any other. A host solver gets copies of its rows and
    data, which it may write into; an array-native one the caller's arrays (numpy's
    read-only). ``failures`` counts failed solves of instances
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
        work_limit: float | None = None,
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
        self.time_limit = time_limit
        self.work_limit = check_work_limit("MAPOracle", self.solver, work_limit)
        self._scheduler = ChunkScheduler(WorkerPool(n_jobs, parallel_backend), chunk_size)
        if time_limit is not None and not self.solver.time_limit and not self._pooled:
            warnings.warn(
                f"MAPOracle: backend {self.solver.backend!r} does not enforce time limits and runs in "
                f"the calling process (n_jobs={n_jobs}), so time_limit={time_limit} is not enforced",
                stacklevel=2,
            )

    @property
    def pool(self) -> WorkerPool:
        """The workers (opened on first use, stopped by :meth:`close`)."""
        return self._scheduler.pool

    @pool.setter
    def pool(self, pool: WorkerPool) -> None:
        self._scheduler.pool = pool

    @property
    def chunk_size(self) -> int | str:
        """Instances per task, or ``"auto"``."""
        return self._scheduler.chunk_size

    @chunk_size.setter
    def chunk_size(self, chunk_size: int | str) -> None:
        self._scheduler.chunk_size = chunk_size

    @property
    def n_jobs(self) -> int:
        return self.pool.n_jobs

    @property
    def parallel_backend(self) -> str:
        return self.pool.backend

    def __repr__(self) -> str:
        extras = "" if self.time_limit is None else f", time_limit={self.time_limit}"
        extras += "" if self.work_limit is None else f", work_limit={self.work_limit}"
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
        ``(B, *field.shape)``, or one instance's value (a Python number for a scalar field)
        for every row; a field not given takes the problem's value for every row.
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
        data = broadcast_data(self.problem, data, theta.shape[0])
        if data:
            self.check_takes_data(solver, data)
            if validate:
                check_data(self.problem, data, theta.shape[0], ORACLE_CALL)
        native = self.runs_natively(solver, framework)
        data = for_framework(self.problem, data, theta) if native else to_host(self.problem, data)
        if validate:
            self.problem.validate(theta if native else to_numpy(theta))
            check_values(self.problem, data, ORACLE_CALL)
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
            # the caller's arrays as they are, numpy's read-only (host solvers get copies,
            # see chunks.py; a copy would cost a vectorised solver a good part of its solve)
            theta = _read_only(theta)
            if data:
                z = solver.solve(theta, self.problem, data={name: _read_only(value) for name, value in data.items()})
            else:
                z = solver.solve(theta, self.problem)
            if tuple(z.shape) != tuple(theta.shape):
                raise wrong_shape_error(tuple(z.shape), tuple(theta.shape), self.problem.label, solver.backend)
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
        settings = SolveSettings(self.solver, self.problem, self.time_limit, self.on_failure, self.work_limit)
        results = self._scheduler.solve(settings, values, host, positions)
        # the failure policy's bookkeeping, in one place: failed rows arrive as zeros (or an
        # incumbent) with their status and error, whichever process or placeholder made them
        self.last_failures = tuple(error for result in results for error in result.failures)
        for error in self.last_failures:  # per instance: an error may name several
            self.failures[_reason(error, self.on_failure)] += max(len(error.indices), 1)
        return np.concatenate([result.z for result in results]), np.concatenate([result.status for result in results])

    def check_takes_data(self, solver: SolverEntry, data: InstanceData) -> None:
        """Raise unless ``solver`` takes per-instance data (where ``data`` are given)."""
        if not solver.takes_data:
            raise takes_no_data_error(list(data), self.problem.label, solver.backend)

    @property
    def _pooled(self) -> bool:
        """Whether batches may go to the worker pool at all."""
        return self._scheduler.pooled(self.solver)

    def warm_up(self) -> float:
        """Start every worker and build the solver's model in each, ahead of training; the
        seconds it took.

        A pool's first call otherwise pays for the workers' start-up, their imports and
        each worker's first model build (seconds with loky), which looks like a hang in
        the first training step. Each worker solves one instance of zeros; its result or
        failure is ignored. With a ``time_limit`` that solve is stopped at the limit of
        a one-instance chunk, and only the workers solve it; without one, the calling
        process (which solves batches too small to ship) solves it too. Inline solvers
        and ``n_jobs=1`` use no pool: nothing to do.
        """
        if not self._pooled:
            return 0.0
        start = time.perf_counter()
        # as a call's tasks are: a solver's SystemExit on a worker is its failure, not the worker's exit
        settings = scheduler.SolveSettings(self.solver, self.problem, self.time_limit, "raise")
        task = settings.task(np.zeros((1, *self.problem.shape)), np.arange(1), None)
        timeout = None if self.time_limit is None else self.time_limit + scheduler.TIMEOUT_GRACE_SECONDS
        if timeout is None:  # nothing could stop it in this process: with a limit, workers only
            solve_task(*task)  # returns a failure rather than raise it
        self.pool.warm_up(solve_task, task, timeout=timeout)
        return time.perf_counter() - start

    def close(self) -> None:
        """Stop the worker pool (a later call starts a new one)."""
        self.pool.close()

    def __enter__(self) -> MAPOracle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_only(x: Any) -> Any:
    """``x``, or a read-only view of it where it is a writeable numpy array."""
    if isinstance(x, np.ndarray) and x.flags.writeable:
        x = x.view()
        x.flags.writeable = False
    return x


def _reason(error: SolverError, on_failure: OnFailure) -> str:
    """The key a failure is counted under in ``MAPOracle.failures``: the error's status, or
    ``"incumbent"`` where the policy kept the solver's incumbent."""
    return "incumbent" if on_failure == "incumbent" and error.incumbent is not None else (error.status or "error")
