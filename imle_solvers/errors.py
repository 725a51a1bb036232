"""The exceptions the library raises, one family so users can catch ours alone."""

from __future__ import annotations

from typing import Any


class ImleSolversError(Exception):
    """Base class of every error raised by imle_solvers."""


class InvalidInputError(ImleSolversError, ValueError):
    """Scores or parameters that cannot be solved: wrong shape, NaN, out of range."""


class MissingDataError(InvalidInputError):
    """Per-instance data that a problem needs and was not given (a batched parameter
    without default).

    Attributes:
        subject: what is missing, without the hint (``"ILP 'rota': batched parameter
            'available' has no default"``).
        fields: the names of the missing fields.

    Build one with :func:`imle_solvers.instances.missing_data`, whose hint names the call
    that passes them; the checks of data re-word it for the call the user made.
    """

    def __init__(self, message: str, *, subject: str = "", fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.subject = subject or message
        self.fields = tuple(fields)

    def __reduce__(self):  # keep the attributes across process boundaries
        return (_rebuild_missing_data, (type(self), self.args[0], self.subject, self.fields))


def _rebuild_missing_data(cls, message, subject, fields):
    return cls(message, subject=subject, fields=fields)


class UnknownBackendError(ImleSolversError, ValueError):
    """A solver backend that is not registered for the problem kind."""


class MissingDependencyError(ImleSolversError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class SolverError(ImleSolversError, RuntimeError):
    """A solver failed on one instance of a batch.

    Attributes:
        index: position of the (first) failing instance in the batch handed to the oracle.
        indices: every instance the failure concerns (several when a worker died or a
            task timed out holding a chunk), ``(index,)`` otherwise.
        status: the solver's own word for what happened (``"infeasible"``, ...).
        incumbent: the best feasible state found before a time limit stopped the solver
            (shape ``problem.shape``), or None; ``on_failure="incumbent"`` uses it.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        status: str | None = None,
        indices: tuple[int, ...] | None = None,
        incumbent: Any = None,
    ):
        super().__init__(message)
        self.incumbent = incumbent
        self.index = index
        self.indices = tuple(indices) if indices is not None else (() if index is None else (index,))
        self.status = status

    def __reduce__(self):  # keep the attributes across process boundaries
        fields = (type(self), self.args[0], self.index, self.status, self.indices, self.incumbent)
        return (_rebuild_solver_error, fields)


def _rebuild_solver_error(cls, message, index, status, indices=None, incumbent=None):
    return cls(message, index=index, status=status, indices=indices, incumbent=incumbent)


def shape_text(dims: Any) -> str:
    """A shape as Python prints a tuple, whatever its entries: ``(4,)``, ``(B, 3)``, ``()``
    (a name such as ``"B"`` for an unknown size is printed bare, not quoted)."""
    parts = [str(d) for d in dims]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


# -- The oracle's errors, worded in one place ------------------------------------------------
# Each names the instances by their indices in the batch handed to the oracle, the problem's
# label and the backend, whichever process found the failure; the oracle's callers, the
# tests and the docs quote these texts.


def _about(instances: str, label: str, backend: str) -> str:
    """``"instances 0-3 (label, backend 'name')"``: how every message starts."""
    return f"{instances} ({label}, backend {backend!r})"


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


def _chunks_error(chunks: list[list[int]], label: str, backend: str, what: str, status: str) -> SolverError:
    """A failure of whole ``chunks`` (each the batch indices of its rows): every row is named."""
    indices = [i for chunk in chunks for i in chunk]
    instances = f"instance {indices[0]}" if len(indices) == 1 else f"instances {_spans(chunks)}"
    return SolverError(
        f"{_about(instances, label, backend)}: {what}",
        index=indices[0],
        status=status,
        indices=tuple(indices),
    )


def workers_lost_error(chunks: list[list[int]], label: str, backend: str, cause: BaseException | None) -> SolverError:
    """``chunks`` (each the batch indices of its rows) lost with their workers twice:
    status ``"worker-died"``."""
    it, was = ("it", "it was") if sum(map(len, chunks)) == 1 else ("them", "they were")
    what = f"a worker died while solving {it}, and again when {was} retried on restarted workers ({cause!r})"
    return _chunks_error(chunks, label, backend, what, "worker-died")


def time_limit_error(
    chunks: list[list[int]],
    label: str,
    backend: str,
    timeout: float,
    time_limit: float,
    grace: float,
    *,
    enforced: bool,
) -> SolverError:
    """A pool task holding ``chunks`` (each the batch indices of its rows) gave no result
    within ``timeout`` seconds (``time_limit`` per instance plus ``grace``): status
    ``"time-limit"``. ``enforced``: whether the backend stops at its time limit itself."""
    how = "" if enforced else f"; backend {backend!r} does not enforce time limits itself"
    what = (
        f"time limit hit, no result within {timeout:.3g} s (time_limit={time_limit} s per "
        f"instance, plus {grace} s grace); the workers were stopped{how}"
    )
    return _chunks_error(chunks, label, backend, what, "time-limit")


def located_error(error: SolverError, index: int, label: str, backend: str) -> SolverError:
    """A solver's own ``error``, for the instance at batch index ``index``; its status and
    incumbent are kept."""
    return SolverError(
        f"{_about(f'instance {index}', label, backend)}: {error}",
        index=index,
        status=error.status,
        incumbent=error.incumbent,
    )


def crashed_error(error: BaseException, index: int, label: str, backend: str, *, batched: bool) -> SolverError:
    """Anything else a solver raised at batch index ``index`` (``batched``: in a call of
    that row and the ones after it): status ``"error"``."""
    where = f"instance {index}{'+' if batched else ''}"
    return SolverError(f"{_about(where, label, backend)} failed: {error!r}", index=index, status="error")


def bad_output_error(index: int, label: str, backend: str, what: str) -> SolverError:
    """A result for the instance at batch index ``index`` that is not a state (``what``
    the solver returned instead): status ``"bad-output"``."""
    return SolverError(
        f"{_about(f'instance {index}', label, backend)}: the solver returned {what}", index=index, status="bad-output"
    )


def wrong_shape_error(
    shape: tuple[int, ...], expected: tuple[int, ...], label: str, backend: str
) -> SolverError:
    """An array-native solver's batch of states of ``shape`` for scores of shape
    ``expected`` (``(B, *problem.shape)``): status ``"bad-output"``, naming the whole batch."""
    where = f"instances 0-{expected[0] - 1}"
    return SolverError(
        f"{_about(where, label, backend)}: the solver returned shape {shape}, expected {expected}",
        index=0,
        status="bad-output",
    )


def takes_no_data_error(fields: list[str], label: str, backend: str) -> InvalidInputError:
    """Per-instance data ``fields`` given to a backend that takes none."""
    return InvalidInputError(
        f"{label}: backend {backend!r} takes no per-instance data, "
        f"and {', '.join(map(repr, fields))} {'was' if len(fields) == 1 else 'were'} given; "
        "pick a backend that does (imle_solvers.list_solvers shows them)"
    )


def missing_dependency(modules: str | list[str], extra: str, needed_by: str | None = None) -> MissingDependencyError:
    """The error for optional ``modules`` that are not installed, naming the ``extra`` that
    installs them (and what needs them)."""
    names = ", ".join(map(repr, [modules] if isinstance(modules, str) else modules))
    what = f"{names} is not installed" if needed_by is None else f"{needed_by} needs {names}"
    return MissingDependencyError(f"{what}; install with `pip install 'imle_solvers[{extra}]'`")


class UnknownProblemError(ImleSolversError, KeyError):
    """A name that no ILP is registered under (``named_ilp``); the message lists the
    registered names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class SerializationError(ImleSolversError, ValueError):
    """An object that has no JSON config (a class not registered with
    :func:`imle_solvers.serialization.register`, or a field of an unsupported type), or a
    config that cannot be read back; the message names the class or the config's path."""


def instance_error(error: SolverError, rows: int, per: int) -> SolverError:
    """``error`` of a solve of ``rows`` rows holding ``per`` consecutive rows per instance
    (an estimator's samples or a loss's ``M`` perturbed solves, instance-major), naming the
    instance rather than the row: row ``r`` is instance ``(r % rows) // per`` (the
    remainder: a ``jax.vmap``'s groups are solved as one call), its solve ``r % per + 1``
    of ``per``."""
    if error.index is None or per == 1:
        return error
    index = (error.index % rows) // per
    indices = tuple(dict.fromkeys((i % rows) // per for i in error.indices))
    text, prefix = str(error), f"instance {error.index}"
    where = f"instance {index}, solve {error.index % per + 1} of {per}"
    message = where + text[len(prefix):].lstrip("+") if text.startswith(prefix) else f"{where}: {text}"
    return SolverError(message, index=index, status=error.status, indices=indices, incumbent=error.incumbent)
