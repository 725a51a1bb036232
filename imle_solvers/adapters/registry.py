"""The solver registry: ``(problem kind, backend name) -> solver``.

A solver is a function ``solve(theta, problem) -> z``, for one instance (``theta``
of shape ``problem.shape``) or, registered with ``batched=True``, for a batch
``(N, *problem.shape)``. Work that depends only on the problem (a graph's
structure, a solver model) is cached by the adapter per process, keyed by the
problem, so each instance only changes the objective.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError, UnknownBackendError, missing_dependency

SolveFn = Callable[[Any, Any], Any]

# What ``array_native=True`` means: code written against the array API (array_api_compat)
# runs on these; TensorFlow has no array-API namespace, so a solver must name it.
ARRAY_API_FRAMEWORKS = ("numpy", "torch", "jax")


@dataclass(frozen=True)
class SolverEntry:
    """One registered solver.

    Attributes:
        kind: the problem kind it solves (``Problem.kind``).
        backend: its name among the kind's solvers (``"numpy"``, ``"ortools"``, ...).
        solve: ``solve(theta, problem) -> z``.
        batched: ``solve`` takes a whole batch ``(N, *shape)`` rather than one instance.
        inline: cheap and vectorised: the oracle calls it in the calling process, never
            through the worker pool.
        array_native: the frameworks (``"numpy"``, ``"torch"``, ``"jax"``,
            ``"tensorflow"``) whose arrays ``solve`` takes as they are, on their device and
            inside ``jax.jit``/``tf.function``, returning an array of the same kind; empty
            for a solver that takes numpy only. Inline unless registered ``inline=False``.
        takes_data: ``solve`` accepts a ``data=`` keyword: the per-instance data of the
            instances it solves (see :mod:`imle_solvers.instances`), by field name, ``(N,
            *field.shape)`` for a batched solver and ``field.shape`` for one instance. It is
            passed only when a batch has data; a field not given takes the problem's value.
        time_limit: ``solve`` accepts a ``time_limit=`` keyword (seconds per instance, or
            None) and raises :class:`~imle_solvers.errors.SolverError` with
            ``status="time-limit"`` when it is hit without a proven optimum.
        work_limit: ``solve`` accepts a ``work_limit=`` keyword: a limit per instance in
            the solver's own deterministic unit of work (CP-SAT's deterministic seconds,
            SCIP's branch-and-bound nodes; see docs/parallel.md, "Work limits"), which
            stops it at the same point on any machine, under any load; it raises
            :class:`~imle_solvers.errors.SolverError` with ``status="work-limit"`` when it
            is hit without a proven optimum.
        priority: ``backend="auto"`` takes the installed solver of highest priority.
        requires: modules that must be importable.
        extra: the ``pip install 'imle_solvers[extra]'`` that provides ``requires``.
    """

    kind: str
    backend: str
    solve: SolveFn
    batched: bool = False
    inline: bool = False
    array_native: tuple[str, ...] = ()
    time_limit: bool = False
    work_limit: bool = False
    takes_data: bool = False
    priority: int = 0
    requires: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def runs_on(self, framework: str) -> bool:
        """Whether ``solve`` takes arrays of ``framework`` (see ``array_native``) as they are."""
        return framework in self.array_native


_REGISTRY: dict[tuple[str, str], SolverEntry] = {}


def register_solver(
    kind: str,
    backend: str,
    *,
    batched: bool = False,
    inline: bool | None = None,
    array_native: bool | Sequence[str] = False,
    time_limit: bool = False,
    work_limit: bool = False,
    priority: int = 0,
    requires: Sequence[str] = (),
    extra: str | None = None,
    replace: bool = False,
) -> Callable[[SolveFn], SolveFn]:
    """Register ``solve(theta, problem) -> z`` as the ``backend`` solver of ``kind``.

    Used as a decorator; returns the function unchanged::

        @register_solver("my-problem", backend="python")
        def solve(theta: np.ndarray, problem) -> np.ndarray: ...

    A function of ``theta`` alone (``def solve(theta)``) is accepted too, for solvers
    that need nothing from the problem.

    ``array_native=True`` declares a solver written against the array API (it takes
    numpy, torch and JAX arrays as they are); a list of framework names says exactly
    which (``("numpy", "torch", "jax", "tensorflow")``). Such a solver is ``inline``
    unless ``inline=False`` says otherwise: then ``n_jobs=1`` hands it the arrays as they
    are, and a pool hands it numpy chunks (it must take both).

    ``time_limit=True`` / ``work_limit=True`` declare a solver that takes a ``time_limit=``
    (wall-clock seconds) / ``work_limit=`` (its own deterministic work units) keyword
    (see :class:`SolverEntry`).

    A solver that takes per-instance data (``KSubset``'s mask, an ILP's batched
    parameters) declares a ``data=None`` keyword; it receives them only for batches that
    have some (see :mod:`imle_solvers.instances`).

    Registering a taken ``(kind, backend)`` raises unless ``replace=True``. The
    solver must be picklable (a module-level function) to run in worker processes.

    The entry's ``solve`` hands the function scores it can sum without overflow, and
    refuses those beyond the problem's range (:mod:`imle_solvers.adapters.exact_scores`).
    """

    def decorator(solve: SolveFn) -> SolveFn:
        key = (kind, backend)
        frameworks = _frameworks(array_native)
        if key in _REGISTRY and not replace:
            raise ValueError(
                f"a solver is already registered for kind {kind!r}, backend {backend!r}; "
                "pass replace=True to replace it"
            )
        from .exact_scores import ExactScores

        function = solve if _takes_problem(solve) else functools.partial(_without_problem, solve)
        _REGISTRY[key] = SolverEntry(
            kind=kind,
            backend=backend,
            solve=ExactScores(function, batched or bool(frameworks)),
            batched=batched or bool(frameworks),
            inline=bool(frameworks) if inline is None else inline,
            array_native=frameworks,
            time_limit=time_limit,
            work_limit=work_limit,
            takes_data=_takes_keyword(solve, "data"),
            priority=priority,
            requires=tuple(requires),
            extra=extra,
        )
        return solve

    return decorator


def _frameworks(array_native: bool | Sequence[str]) -> tuple[str, ...]:
    if array_native is True:
        return ARRAY_API_FRAMEWORKS
    if array_native is False:
        return ()
    known = (*ARRAY_API_FRAMEWORKS, "tensorflow")
    unknown = [name for name in array_native if name not in known]
    if unknown or isinstance(array_native, str):
        raise ValueError(f"array_native: expected True, False or frameworks among {known}, got {array_native!r}")
    return tuple(array_native)


def _takes_problem(solve: SolveFn) -> bool:
    try:
        parameters = inspect.signature(solve).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the full form
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _takes_keyword(solve: SolveFn, name: str) -> bool:
    """Whether ``solve`` accepts the keyword ``name`` (by name, or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(solve).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name and p.kind != p.POSITIONAL_ONLY or p.kind == p.VAR_KEYWORD for p in parameters)


def _without_problem(solve: Callable[[Any], Any], theta: Any, problem: Any, **options: Any) -> Any:
    return solve(theta, **options)


def check_work_limit(owner: str, solver: SolverEntry, work_limit: float | None) -> float | None:
    """``work_limit`` if ``solver`` honours it (or it is None); otherwise an error naming
    ``owner``, the backend and those of its kind that have a work limit."""
    if work_limit is None:
        return None
    if isinstance(work_limit, bool) or not isinstance(work_limit, numbers.Real) or not 0 < work_limit < math.inf:
        raise InvalidInputError(f"{owner}: work_limit must be a positive finite number or None, got {work_limit!r}")
    if not solver.work_limit:
        others = [e.backend for e in list_solvers(solver.kind) if e.work_limit]
        where = f"backends with one: {', '.join(others)}" if others else f"no backend for {solver.kind!r} has one"
        raise InvalidInputError(
            f"{owner}: backend {solver.backend!r} for {solver.kind!r} has no deterministic work limit, so "
            f"work_limit={work_limit} cannot be honoured ({where}; time_limit= is in wall-clock seconds)"
        )
    return float(work_limit)


def unregister_solver(kind: str, backend: str) -> None:
    """Remove a registered solver (raises ``KeyError`` if there is none)."""
    del _REGISTRY[(kind, backend)]


def list_solvers(kind: str | None = None) -> list[SolverEntry]:
    """The registered solvers (of one kind, if given), highest priority first."""
    entries = [e for e in _REGISTRY.values() if kind is None or e.kind == kind]
    return sorted(entries, key=lambda e: (e.kind, -e.priority, e.backend))


def resolve_native_solver(kind: str, framework: str) -> SolverEntry | None:
    """The installed solver of highest priority for ``kind`` that takes ``framework``'s arrays
    as they are (see ``array_native``), or None."""
    for entry in list_solvers(kind):
        if entry.runs_on(framework) and entry.installed:
            return entry
    return None


def resolve_solver(kind: str, backend: str = "auto") -> SolverEntry:
    """The solver entry for ``kind`` and ``backend``; ``"auto"`` picks the installed
    solver of highest priority.

    Raises:
        UnknownBackendError: no such kind or backend (the message lists the known ones).
        MissingDependencyError: the backend's dependency is not installed.
    """
    candidates = list_solvers(kind)
    if not candidates:
        kinds = sorted({e.kind for e in _REGISTRY.values()})
        raise UnknownBackendError(f"no solver is registered for problem kind {kind!r}; known kinds: {kinds}")
    if backend == "auto":
        for entry in candidates:
            if entry.installed:
                return entry
        entry = candidates[0]
    else:
        entry = _REGISTRY.get((kind, backend))
        if entry is None:
            known = [e.backend for e in candidates]
            raise UnknownBackendError(f"unknown backend {backend!r} for {kind!r}; known backends: {known}")
    if not entry.installed:
        missing = [m for m in entry.requires if importlib.util.find_spec(m) is None]
        raise missing_dependency(missing, entry.extra or missing[0], needed_by=f"backend {entry.backend!r} for {kind!r}")
    return entry
