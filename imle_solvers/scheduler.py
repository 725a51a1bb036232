"""How :class:`~imle_solvers.oracle.MAPOracle` spreads the rows it solves on the host over its pool.

A :class:`ChunkScheduler` cuts those rows into chunks (``chunk_size="auto"``: sized by
the seconds per instance its last call measured), solves a single chunk in the calling
process and several on the :class:`~imle_solvers._pool.WorkerPool`, each task with a
time-out where a time limit needs one, and re-emits the warnings the workers raised.
When a pool call loses its workers or times out, the pool names the chunks that may be
to blame; the scheduler reruns them one at a time to find the one that is, then that
chunk's instances one at a time to find the instance: under ``"raise"`` its error names
it, otherwise it gets a placeholder, so that one bad instance costs itself, not its
chunk or the batch. See ``docs/parallel.md``.
"""

from __future__ import annotations

import math
import time
import warnings
import os
from dataclasses import dataclass, field

import numpy as np

from ._pool import TaskTimedOut, WorkerPool, WorkersLost, effective_workers
from .adapters.registry import SolverEntry
from .chunks import ChunkResult, TaskOutput, solve_chunk, solve_task
from .errors import SolverError, time_limit_error, workers_lost_error
from .failures import STATUS_DTYPE, OnFailure, Status
from .instances import InstanceData, rows
from .problems import Problem

# Several tasks per worker even out instances of uneven difficulty.
TASKS_PER_WORKER = 4
# Added to a chunk's time limit: a fresh worker's start-up and a solver model's first build.
TIMEOUT_GRACE_SECONDS = 5.0

Chunk = tuple[int, int]  # rows [start, stop) of the batch


class ChunkScheduler:
    """Chunks of a batch, solved in the calling process or on ``pool``.

    Args:
        pool: the workers (opened on first use).
        chunk_size: instances per task, or ``"auto"`` (see :meth:`chunks`).

    Attributes:
        seconds_per_instance: what the last call measured, or None before the first; it
            sizes automatic chunks, and results never depend on it.
    """

    def __init__(self, pool: WorkerPool, chunk_size: int | str) -> None:
        self.pool = pool
        self.chunk_size = chunk_size
        self.seconds_per_instance: float | None = None

    def pooled(self, solver: SolverEntry) -> bool:
        """Whether batches of ``solver`` may go to the pool at all."""
        return self.pool.n_jobs != 1 and not solver.inline

    def chunks(self, n: int, solver: SolverEntry) -> list[Chunk]:
        """Row ranges ``[start, stop)`` of the tasks for a batch of ``n`` instances of
        ``solver``, in order. ``"auto"``: about ``TASKS_PER_WORKER`` per worker, but none
        shorter than the pool's ``target_task_seconds`` of solving, and at least one per
        worker unless the whole batch is less than that (then one chunk)."""
        size = self._chunk_length(n) if self.pooled(solver) else n
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def _chunk_length(self, n: int) -> int:
        if self.chunk_size != "auto":
            return int(self.chunk_size)
        workers = effective_workers(self.pool.n_jobs, self.pool.backend)
        balanced = math.ceil(n / (TASKS_PER_WORKER * workers))
        if self.seconds_per_instance is None:
            return balanced
        worthwhile = math.ceil(self.pool.target_task_seconds / max(self.seconds_per_instance, 1e-9))
        if worthwhile >= n:  # the whole batch is less solving than one task should carry: in-process
            return n
        # larger chunks, but never fewer tasks than workers: an idle worker is the worst overhead
        return min(math.ceil(n / workers), max(balanced, worthwhile))

    def solve(
        self, settings: SolveSettings, values: np.ndarray, data: InstanceData, positions: np.ndarray
    ) -> list[ChunkResult]:
        """The chunks' results, in order, for rows ``values`` (numpy ``(n, *problem.shape)``,
        ``n > 0``) with their ``data`` (numpy, ``(n, *field.shape)`` each), rows
        ``positions`` ``(n,)`` of the caller's batch (the indices that errors name).

        Under ``on_failure="raise"`` the first failing instance's
        :class:`~imle_solvers.errors.SolverError` is raised, as in the calling process;
        otherwise the instance that loses its workers or times out (found by
        :meth:`_map_with_reruns`) is a placeholder result of its own (zeros, FAILED)
        holding the error.
        """
        solver = settings.solver
        chunks = self.chunks(len(values), solver)
        # only a pool task's time-out can enforce time_limit on a solver that does not take it
        needs_timeout = settings.time_limit is not None and not solver.time_limit
        if len(chunks) == 1 and not (self.pooled(solver) and needs_timeout):
            start = time.perf_counter()
            results = [settings.solve_here(values, positions, data)]
            seconds = time.perf_counter() - start
        else:
            results, seconds = _collect(self._map_with_reruns(settings, values, positions, data, chunks))
        self.seconds_per_instance = seconds / len(values)
        return results

    def _map_with_reruns(
        self,
        settings: SolveSettings,
        values: np.ndarray,
        positions: np.ndarray,
        data: InstanceData,
        chunks: list[Chunk],
    ) -> list[TaskOutput]:
        """:func:`~imle_solvers.chunks.solve_task` of every chunk of rows ``values`` (at
        batch indices ``positions``, with their ``data``) on the pool: the outputs, in the
        order of the rows.

        When workers are lost or a task times out, the chunks the pool names as suspects
        are run again alone (one pool call each), and the instances of a chunk that faults
        alone are run again one at a time: the instance that faults alone is the culprit.
        Under ``"raise"`` its error is raised, naming it; otherwise it gets a placeholder,
        and every other instance its own result, whichever chunk it shared.
        """
        outputs: dict[Chunk, TaskOutput] = {}  # chunks, or single rows of a chunk at fault
        rounds: list[list[Chunk]] = [chunks]  # the chunks of each pool call to come
        while rounds:
            group = rounds.pop(0)
            timeout = settings.timeout(group)
            tasks = [settings.task(values[a:b], positions[a:b], rows(data, a, b)) for a, b in group]
            try:
                outputs.update(zip(group, self.pool.map(solve_task, tasks, timeout=timeout)))
                continue
            except (WorkersLost, TaskTimedOut) as fault:
                for chunk, output in zip(group, fault.results or ()):
                    if output is not None:  # finished before the fault: kept
                        outputs[chunk] = output
                suspects = [group[t] for t in fault.tasks]
                rest = [chunk for chunk in group if chunk not in outputs and chunk not in suspects]
                (a, b), isolate = suspects[0], []
                if len(suspects) > 1:  # which of these chunks? each alone tells
                    isolate = [[chunk] for chunk in suspects]
                elif b - a > 1:  # this chunk: which of its instances? each alone tells
                    isolate = [[(i, i + 1)] for i in range(a, b)]
                else:  # this instance, alone: the culprit
                    error = settings.fault_error(fault, [positions[a:b]], timeout)
                    if settings.on_failure == "raise":
                        raise error from fault
                    outputs[a, b] = settings.placeholder(1, error)
                # the search first, so that "raise" raises before the rest is solved again
                rounds = isolate + ([rest] if rest else []) + rounds
        return [outputs[chunk] for chunk in sorted(outputs)]  # a chunk or its rows: never both


@dataclass(frozen=True)
class SolveSettings:
    """What every chunk of a call is solved with: the arguments of
    :func:`~imle_solvers.chunks.solve_chunk` other than its rows."""

    solver: SolverEntry
    problem: Problem
    time_limit: float | None
    on_failure: OnFailure
    work_limit: float | None = None  # deterministic work units per instance, as time_limit

    caller: int = field(default_factory=os.getpid)  # the oracle's process (not a worker's)

    def task(self, values: np.ndarray, positions: np.ndarray, data: InstanceData) -> tuple:
        """The arguments of :func:`~imle_solvers.chunks.solve_task` for rows ``values``
        ``(m, *shape)`` at batch indices ``positions`` ``(m,)``, with their ``data``: those
        of :func:`~imle_solvers.chunks.solve_chunk`, and the caller's process id."""
        return (self.solver, self.problem, values, positions, self.time_limit, self.on_failure, data, self.caller,
                self.work_limit)

    def solve_here(self, values: np.ndarray, positions: np.ndarray, data: InstanceData) -> ChunkResult:
        """:func:`~imle_solvers.chunks.solve_chunk` of these rows in the calling process."""
        return solve_chunk(self.solver, self.problem, values, positions, self.time_limit, self.on_failure, data,
                           work_limit=self.work_limit)

    def timeout(self, chunks: list[Chunk]) -> float | None:
        """The wall-clock limit of each task of a pool call of ``chunks``, in seconds: the
        time limit of the longest chunk's instances plus ``TIMEOUT_GRACE_SECONDS``."""
        if self.time_limit is None:
            return None
        return self.time_limit * max(b - a for a, b in chunks) + TIMEOUT_GRACE_SECONDS

    def fault_error(
        self, fault: WorkersLost | TaskTimedOut, suspects: list[np.ndarray], timeout: float | None
    ) -> SolverError:
        """The error for a pool ``fault`` among chunks at batch indices ``suspects``."""
        lost = [[int(p) for p in positions] for positions in suspects]
        label, backend = self.problem.label, self.solver.backend
        if isinstance(fault, WorkersLost):
            return workers_lost_error(lost, label, backend, fault.__cause__)
        return time_limit_error(
            lost, label, backend, timeout, self.time_limit, TIMEOUT_GRACE_SECONDS, enforced=self.solver.time_limit
        )

    def placeholder(self, n: int, error: SolverError) -> TaskOutput:
        """A skipped chunk of ``n`` rows: zeros ``(n, *shape)``, every row FAILED, ``error`` its failure."""
        z = np.zeros((n, *self.problem.shape))
        result = ChunkResult(z=z, status=np.full(n, Status.FAILED, dtype=STATUS_DTYPE), failures=(error,))
        return TaskOutput(result=result, seconds=0.0, warnings=())


def _collect(outputs: list[TaskOutput]) -> tuple[list[ChunkResult], float]:
    """The chunks' results and the seconds spent solving them; the workers' warnings are
    re-emitted (once each), and the first failing instance's error raised, as the calling
    process would have."""
    for category, message in dict.fromkeys(w for output in outputs for w in output.warnings):
        warnings.warn(message, category, stacklevel=5)  # attributed to the oracle's caller
    for output in outputs:
        if isinstance(output.result, SolverError):
            raise output.result
    return [output.result for output in outputs], sum(output.seconds for output in outputs)
