"""What runs on a worker: one chunk of a batch, solved and checked.

:class:`~imle_solvers.scheduler.ChunkScheduler` hands each chunk (rows of the batch
handed to :class:`~imle_solvers.oracle.MAPOracle`, numpy, with their per-instance data)
to :func:`solve_task` on a worker of the pool, or to :func:`solve_chunk` in the calling
process. Every result passes :func:`check_states`; every failure becomes a
:class:`~imle_solvers.errors.SolverError` that names the instance's index in that batch,
whichever process solved it.

Solvers get private copies of their rows and data (:func:`_private`): a solver may write
into its arguments, as the idiom ``theta[~allowed] = -inf`` does, without changing the
caller's arrays (a model's parameters, under ``n_jobs=1``) or a later retry's input.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .adapters.registry import SolverEntry
from .errors import SolverError, bad_output_error, crashed_error, located_error
from .failures import STATUS_DTYPE, OnFailure, Status
from .instances import InstanceData, instance, rows
from .problems import Problem


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
    *,
    in_worker: bool = False,
    work_limit: float | None = None,
) -> ChunkResult:
    """Solve rows ``theta`` (``(n, *shape)``), the ``offset``-th onwards of the batch (or,
    for an array ``offset``, the rows of these ``n`` batch indices: a cache's misses), with
    their per-instance ``data`` (numpy, ``(n, *field.shape)`` each; see
    :mod:`imle_solvers.instances`).

    ``time_limit`` (seconds per instance) is passed on to solvers registered with
    ``time_limit=True``, ``work_limit`` (the solver's deterministic work units per
    instance) to those registered with ``work_limit=True``. A failure (an error, or a
    result that fails :func:`check_states`) is a :class:`SolverError` naming the instance's index in the
    batch: raised under ``on_failure="raise"``, otherwise recorded in the result. A
    batched solver that fails is asked again one instance at a time, to find the
    failing ones (under ``"raise"`` only when its error did not say which it was).
    """
    options: dict[str, Any] = {"time_limit": time_limit} if solver.time_limit and time_limit is not None else {}
    if solver.work_limit and work_limit is not None:
        options["work_limit"] = work_limit
    data = data or {}
    n = len(theta)
    positions = _positions(offset, n)
    status = np.zeros(n, dtype=STATUS_DTYPE)
    z = np.zeros_like(theta)
    failures: list[SolverError] = []

    def failed(i: int, error: SolverError) -> None:
        """Row ``i`` failed with ``error``: raised, or its placeholder or incumbent."""
        if on_failure == "raise":
            raise error
        status[i] = Status.FAILED
        if on_failure == "incumbent" and error.incumbent is not None:
            try:  # an incumbent is a result like any other: checked, as an instance's state
                index = int(positions[i])
                z[i] = check_states(error.incumbent, theta[i], problem, solver.backend, index, batched=False)
                status[i] = Status.INCUMBENT
            except SolverError as bad:
                error = bad
        failures.append(error)

    if solver.batched:
        try:
            return ChunkResult(_checked_solve(solver, problem, positions, theta, data, options, in_worker), status)
        except SolverError as error:
            located = isinstance(error.__cause__, SolverError) and error.__cause__.index is not None
            if on_failure == "raise" and located:
                raise
            if n == 1:  # the one row's failure: known without asking again
                failed(0, error)
                return ChunkResult(z, status, tuple(failures))
    for i in range(n):
        # a batched solver gets one-row batches: the same call, one instance at a time
        if solver.batched:
            one, its_data = theta[i : i + 1], rows(data, i, i + 1)
        else:
            one, its_data = theta[i], instance(data, i)
        try:
            z[i] = _checked_solve(solver, problem, positions[i : i + 1], one, its_data, options, in_worker).reshape(
                theta.shape[1:]
            )
        except SolverError as error:
            failed(i, error)
    return ChunkResult(z, status, tuple(failures))


def _private(theta: np.ndarray, data: InstanceData) -> tuple[np.ndarray, dict[str, Any]]:
    """Copies of a solver call's rows ``theta`` and ``data`` (a numpy scalar, immutable,
    as it is): what the solver may write into. On a worker the chunk is already a copy,
    but a batched solver that failed is asked again row by row, from the rows it may
    have written into; benchmarks/bench_input_copy.py measures what copying costs."""
    copies = {name: value.copy() if isinstance(value, np.ndarray) else value for name, value in data.items()}
    return theta.copy(), copies


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
    caller: int | None = None,
    work_limit: float | None = None,
) -> TaskOutput:
    """:func:`solve_chunk` on a worker; ``caller``: the process id of the oracle's process.

    The error is returned, not raised: joblib answers a raising task by killing and
    restarting every worker, and the oracle wants the batch's first failure anyway.

    A solver's ``SystemExit`` or ``KeyboardInterrupt`` on a worker (another process than
    ``caller``, or a thread other than the main one) is its instance's failure: it cannot
    be the user's Ctrl-C, which reaches the calling process's main thread. On
    ``"sequential"`` (the task runs in the caller's main thread) they propagate.
    """
    start = time.perf_counter()
    in_worker = os.getpid() != caller if caller is not None else False
    in_worker = in_worker or threading.current_thread() is not threading.main_thread()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: ChunkResult | SolverError = solve_chunk(
                solver, problem, theta, offset, time_limit, on_failure, data, in_worker=in_worker, work_limit=work_limit
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
    solver: SolverEntry,
    problem: Problem,
    positions: np.ndarray,
    theta: np.ndarray,
    data: InstanceData,
    options: dict[str, Any],
    in_worker: bool,
) -> np.ndarray:
    """``solver.solve(theta, problem, data=data, **options)`` on private copies of
    ``theta`` and ``data`` (``data=`` only where there are data), checked by
    :func:`check_states`, in ``theta``'s dtype and shape; a failure becomes a
    :class:`SolverError` naming the instance's batch index (``positions``: those of the
    call's rows; a batched call's first row where the solver did not say which), and so
    does a ``SystemExit`` or ``KeyboardInterrupt`` when ``in_worker``."""
    index = int(positions[0])
    rows_copy, data_copy = _private(theta, data)
    try:
        z = solver.solve(rows_copy, problem, **options, **({"data": data_copy} if data_copy else {}))
    except (KeyboardInterrupt, SystemExit) as error:
        if not in_worker:
            raise  # the calling process: a Ctrl-C, or an exit the program asked for
        raise crashed_error(error, index, problem.label, solver.backend, batched=solver.batched) from error
    except SolverError as error:
        row = error.index or 0
        where = int(positions[row]) if solver.batched and 0 <= row < len(positions) else index
        raise located_error(error, where, problem.label, solver.backend) from error
    except Exception as error:
        raise crashed_error(error, index, problem.label, solver.backend, batched=solver.batched) from error
    return check_states(z, theta, problem, solver.backend, positions, batched=solver.batched)


def check_states(
    z: Any, theta: np.ndarray, problem: Problem, backend: str, index: int | np.ndarray, *, batched: bool
) -> np.ndarray:
    """A solver's result ``z`` for ``theta`` as an array of ``theta``'s shape and dtype, or a
    :class:`SolverError` (status ``"bad-output"``) naming the instance and the backend:
    ``z`` must be numeric, have ``theta``'s exact shape (a transposed or flattened state
    would put its ones in the wrong cells), be finite, and be 0 or 1 where
    ``problem.binary_states``. ``index`` is the batch index of ``theta``'s first row
    (of its only instance when not ``batched``), or an array of its rows' batch indices."""

    def bad(what: str, row: int = 0) -> SolverError:
        where = index + row if isinstance(index, (int, np.integer)) else int(index[row])
        return bad_output_error(where, problem.label, backend, what)

    if z is None:
        raise bad("None instead of a state")
    try:
        values = np.asarray(z)
    except Exception as error:  # ragged lists, objects that refuse conversion
        raise bad(f"something that is not an array ({error!r})") from error
    if values.dtype.kind not in "biuf":
        raise bad(f"an array of dtype {values.dtype}, not numbers")
    if values.shape != theta.shape:
        raise bad(f"shape {values.shape}, expected {tuple(theta.shape)}")
    values = values.astype(theta.dtype, copy=False)
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

