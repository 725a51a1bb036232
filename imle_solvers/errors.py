"""The exceptions the library raises, one family so users can catch ours alone."""

from __future__ import annotations

from typing import Any


class ImleSolversError(Exception):
    """Base class of every error raised by imle_solvers."""


class InvalidInputError(ImleSolversError, ValueError):
    """Scores or parameters that cannot be solved: wrong shape, NaN, out of range."""


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


def missing_dependency(modules: str | list[str], extra: str, needed_by: str | None = None) -> MissingDependencyError:
    """The error for optional ``modules`` that are not installed, naming the ``extra`` that
    installs them (and what needs them)."""
    names = ", ".join(map(repr, [modules] if isinstance(modules, str) else modules))
    what = f"{names} is not installed" if needed_by is None else f"{needed_by} needs {names}"
    return MissingDependencyError(f"{what}; install with `pip install imle_solvers[{extra}]`")


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
