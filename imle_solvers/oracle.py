"""The batched MAP oracle: a batch of scores in, a batch of MAP states out.

It validates the batch, looks the solver up in the registry, and runs it: in the
calling process for cheap vectorised solvers (and for ``n_jobs=1``), otherwise in
chunks on a joblib pool that is created once and reused across calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import Array, from_numpy, to_numpy
from .adapters import resolve_solver
from .adapters.registry import SolverEntry
from .errors import SolverError
from .problems import Problem


class MAPOracle:
    """Batched MAP states of ``problem``: ``(B, *problem.shape) -> (B, *problem.shape)``.

    Args:
        problem: what to solve.
        backend: a registered solver name for ``problem.kind``, or ``"auto"`` for the
            installed one of highest priority (see :func:`imle_solvers.list_solvers`).
        n_jobs: worker processes; 1 solves in the calling process, -1 uses every core.
        parallel_backend: any joblib backend name (``"loky"``, ``"threading"``, ...).
        chunk_size: instances per task, or ``"auto"`` (about four tasks per worker).

    The output has the input's array type, dtype and device. Row ``i`` of the
    output is the MAP state of row ``i`` of the input.
    """

    def __init__(
        self,
        problem: Problem,
        backend: str = "auto",
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
    ) -> None:
        self.problem = problem
        self.solver: SolverEntry = resolve_solver(problem.kind, backend)
        self.n_jobs = n_jobs
        self.parallel_backend = parallel_backend
        self.chunk_size = chunk_size
        self._pool: Any = None

    def __repr__(self) -> str:
        return (
            f"MAPOracle({self.problem!r}, backend={self.solver.backend!r}, n_jobs={self.n_jobs}, "
            f"parallel_backend={self.parallel_backend!r})"
        )

    def __call__(self, theta: Array) -> Array:
        """MAP states of a batch ``theta`` of shape ``(B, *problem.shape)``."""
        self.problem.validate(theta)
        if self.solver.array_native:
            return self.solver.solve(theta, self.problem)
        values = to_numpy(theta)
        chunks = self._chunks(len(values))
        if self.solver.inline or self.n_jobs == 1 or len(chunks) <= 1:
            results = [solve_chunk(self.solver, self.problem, values[a:b], a) for a, b in chunks]
        else:
            results = self._parallel(values, chunks)
        z = np.concatenate(results) if results else np.zeros_like(values)
        return from_numpy(z, like=theta)

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        if self.chunk_size == "auto":
            size = max(1, -(-n // (4 * self._workers())))
        else:
            size = int(self.chunk_size)
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def _workers(self) -> int:
        import joblib

        return joblib.effective_n_jobs(self.n_jobs)

    def _parallel(self, values: np.ndarray, chunks: list[tuple[int, int]]) -> list[np.ndarray]:
        import joblib

        if self._pool is None:
            self._pool = joblib.Parallel(n_jobs=self.n_jobs, backend=self.parallel_backend)
            self._pool.__enter__()
        task = joblib.delayed(solve_chunk)
        return self._pool(task(self.solver, self.problem, values[a:b], a) for a, b in chunks)

    def close(self) -> None:
        """Release the worker pool (a later call creates a new one)."""
        if self._pool is not None:
            self._pool.__exit__(None, None, None)
            self._pool = None

    def __enter__(self) -> MAPOracle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None}


def solve_chunk(solver: SolverEntry, problem: Problem, theta: np.ndarray, offset: int) -> np.ndarray:
    """Solve rows ``theta`` (``(n, *shape)``), the ``offset``-th onwards of the batch.

    A failure becomes a :class:`SolverError` naming the instance's index in the batch.
    """
    if solver.batched:
        return _named_failure(solver, problem, offset, lambda: solver.solve(theta, problem), theta)
    z = np.empty_like(theta)
    for i, instance in enumerate(theta):
        z[i] = _named_failure(solver, problem, offset + i, lambda: solver.solve(instance, problem), instance)
    return z


def _named_failure(solver: SolverEntry, problem: Problem, index: int, solve, theta: np.ndarray) -> np.ndarray:
    try:
        z = solve()
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
