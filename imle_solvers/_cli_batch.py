"""``imle-solvers solve`` on a batch: solved in slices (so that a progress bar moves), every
instance's state, objective and status kept, and each failure named by its index in the
whole batch (see docs/cli.md).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ._pool import effective_workers
from .errors import SolverError, _spans
from .instances import check_data, check_values, to_host
from .oracle import MAPOracle

# The bar moves about this many times over a batch ...
PROGRESS_STEPS = 20
# ... but a slice handed to a pool holds at least this many instances per worker, so that
# slicing leaves the scheduler whole chunks to spread (docs/parallel.md, "Chunking")
SLICE_PER_WORKER = 64

# how every SolverError's message starts (errors._about): "instance 3" / "instances 0-3, 8"
# (a "+" after the index: a batched solver's call of that row and the rows after it)
_NAMED = re.compile(r"^instances? ([\d, -]+?)(\+?) \(")


@dataclass(frozen=True)
class Failure:
    """An instance that was not solved to a proven optimum.

    Attributes:
        instance: its index in the whole batch.
        status: the solver's word (``"infeasible"``, ``"time-limit"``, ``"work-limit"``, ...).
        message: the error, naming the instance by that index.
    """

    instance: int
    status: str
    message: str


@dataclass(frozen=True)
class BatchResult:
    """``z`` ``(B, *shape)``, ``status`` ``(B,)`` int8 (:class:`~imle_solvers.failures.Status`),
    and the failures (one per instance not OK, in batch order)."""

    z: np.ndarray
    status: np.ndarray
    failures: tuple[Failure, ...]


def slice_length(n: int, n_jobs: int, parallel_backend: str = "loky") -> int:
    """Instances per oracle call for a batch of ``n``: ``n / PROGRESS_STEPS``, and on a pool at
    least ``SLICE_PER_WORKER`` per worker."""
    length = math.ceil(n / PROGRESS_STEPS)
    if n_jobs != 1:
        length = max(length, SLICE_PER_WORKER * effective_workers(n_jobs, parallel_backend))
    return max(length, 1)


def solve_in_slices(
    oracle: MAPOracle, batch: np.ndarray, data: dict[str, np.ndarray], *, progress: bool | None
) -> BatchResult:
    """States and statuses of ``batch`` ``(B, *shape)`` with per-instance ``data`` (``(B, ...)``
    each), the oracle called on consecutive slices; ``progress``: show a bar on stderr (None:
    where stderr is a terminal and there is more than one slice).

    Raises :class:`~imle_solvers.errors.InvalidInputError` for a bad batch or bad data,
    naming the batch index. Under ``on_failure="raise"`` the first failure raises a
    :class:`SolverError` that names the instance by its index in ``batch``.
    """
    # the whole batch checked once, so that a bad row is named by its index in the batch
    problem, n = oracle.problem, len(batch)
    if data:
        oracle.check_takes_data(oracle.solver, data)
        check_data(problem, data, n)
    data = to_host(problem, data)
    if n == 0:  # nothing to solve (nor to validate: Problem.validate refuses an empty batch's reshape)
        return BatchResult(np.zeros_like(batch), np.zeros(0, dtype=np.int8), ())
    problem.validate(batch)
    check_values(problem, data)
    step = slice_length(n, oracle.n_jobs, oracle.parallel_backend)
    z, status, failures = np.zeros_like(batch), np.zeros(n, dtype=np.int8), []
    show = progress if progress is not None else n > step and sys.stderr.isatty()
    with tqdm(total=n, unit="instance", disable=not show, leave=False, file=sys.stderr) as bar:
        for start in range(0, n, step):
            stop = min(start + step, n)
            rows = {name: value[start:stop] for name, value in data.items()}
            try:
                z[start:stop], status[start:stop] = oracle.solve(batch[start:stop], validate=False, **rows)
            except SolverError as error:
                raise SolverError(
                    renumbered(str(error), start), index=start + (error.index or 0), status=error.status,
                    indices=tuple(start + i for i in error.indices), incumbent=error.incumbent,
                ) from error
            failures += _failures(oracle.last_failures, start)
            bar.update(stop - start)
    return BatchResult(z, status, tuple(sorted(failures, key=lambda f: f.instance)))


def _failures(errors: tuple[SolverError, ...], start: int) -> list[Failure]:
    """The failures of a slice from ``start`` on, one per instance its errors name."""
    return [
        Failure(start + i, error.status or "error", renumbered(str(error), start))
        for error in errors
        for i in (error.indices or (error.index or 0,))
    ]


def renumbered(message: str, offset: int) -> str:
    """A SolverError's ``message`` about a slice's instances, naming them by their index in
    the whole batch (``offset`` + their index in the slice)."""
    named = _NAMED.match(message)
    if named is None:
        return message
    runs = [[int(i) for i in part.split("-")] for part in named.group(1).split(", ")]
    indices = [[i + offset for i in range(run[0], run[-1] + 1)] for run in runs]
    flat = [i for run in indices for i in run]
    what = f"instance {flat[0]}" if len(flat) == 1 else f"instances {_spans(indices)}"
    return f"{what}{named.group(2)} (" + message[named.end():]
