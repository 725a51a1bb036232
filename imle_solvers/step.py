"""One differentiable step, written once for every framework.

A binding (``imle_solvers.torch``, ``.jax``, ``.tensorflow``) holds only what is its
framework's own: the autograd hook, its random source, its persistence. Everything else
of a call is here, on array-API arrays, through the hooks of the scores' framework
(:mod:`imle_solvers.frameworks`):

1. :meth:`Step.prepare` checks the call once: the scores' shape and dtype, their values
   (read now, or checked on the device while traced), the per-instance data (``None``
   dropped, an unbatched value broadcast, names, shapes, kinds and values checked); it
   chooses the solver once and converts the data once to the form that solver takes.
   It returns a :class:`Plan` and the prepared data.
2. :meth:`Plan.forward` and :meth:`Plan.backward` run the estimator's two passes, under the
   failure policy (:mod:`imle_solvers.failures`), every solve through :meth:`Plan.solve`:
   the array-native solver on the arrays themselves, or a host call
   (:class:`HostSolve`), a failure's error naming the instance, not the row.
3. :meth:`Plan.loss` runs a loss (:mod:`imle_solvers.losses`) over the same solves, under
   the same policy; :meth:`Plan.map` gives MAP states for evaluation.

Vocabulary: a *call* is one use of a layer on a batch of ``B`` instances; a *solve* is one
oracle call on ``N`` rows (``N / B`` consecutive rows per instance); a *step* is a call
with its backward pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._array import Array, array_namespace, device, framework, reshape, total
from .adapters.registry import SolverEntry
from .errors import InvalidInputError, SolverError, instance_error
from .estimators import Estimator, Residuals
from .failures import STATUS_DTYPE, batch_size, gradient_with_status, sample_with_status
from .frameworks import Framework
from .instances import (
    LAYER_CALL,
    InstanceData,
    broadcast_data,
    check_data,
    check_values,
    dtype_name,
    for_framework,
    invalid_on_device,
    per_instance,
    to_host,
)
from .losses import LossDefinition, LossValue, under_policy
from .oracle import MAPOracle
from .pool import pool_for_call
from .problems.base import NON_FINITE_MESSAGE, Problem, check_batch_shape, check_finite

__all__ = ["HostSolve", "LossStep", "Plan", "Step", "StepHolder", "check_estimator", "nan_where_not_finite", "poisoned",
           "rows_per_instance"]

Solve = Callable[[Array], Array]


def check_estimator(owner: str, estimator: Any) -> None:
    """Raise unless ``estimator`` is an estimator object (``IMLE(...)``, not the class)."""
    required = ("sample_with", "gradient", "draw", "initial_state")
    if isinstance(estimator, type) or not all(callable(getattr(estimator, name, None)) for name in required):
        raise InvalidInputError(
            f"{owner}: estimator must be an estimator such as IMLE(...), AIMLE(...) or STE(), got {estimator!r}"
        )


class StepHolder:
    """What a layer or loss of every binding shows of its :class:`Step` (``self.step``)."""

    step: Step

    @property
    def oracle(self) -> MAPOracle:
        """The batched MAP oracle that solves (its pool, cache and failure policy)."""
        return self.step.oracle

    @property
    def validate_args(self) -> bool:
        return self.step.validate_args

    @property
    def failures(self) -> Any:
        """Failed solves of instances by reason, since built (``oracle.failures``, a
        ``Counter``; a loss counts each of an instance's failed perturbed solves)."""
        return self.step.oracle.failures


class Step:
    """What a layer or loss of any framework holds: the problem, its oracle (with the
    failure policy and the cache) and ``validate_args``; :meth:`prepare` plans one call.

    Args:
        oracle: the batched MAP oracle of the problem.
        validate_args: check the scores' and the data's values (see :meth:`prepare`), and
            give NaN gradient rows where the upstream gradient is not finite.
    """

    #: the call that errors about per-instance data tell the user to make
    call: str = LAYER_CALL

    def __init__(self, oracle: MAPOracle, validate_args: bool = True) -> None:
        self.oracle = oracle
        self.problem: Problem = oracle.problem
        self.validate_args = validate_args
        self._plans: dict[tuple, Plan] = {}  # (framework, whether a batch stays in it) -> plan
        self._needs_no_data = False  # a call without data passed the problem's check once
        self._names_checked: set[tuple[str, ...]] = set()  # sets of data names that passed check_values

    @property
    def with_status(self) -> bool:
        """Whether calls return each instance's status beside ``z`` (a policy other than raise)."""
        return self.oracle.on_failure != "raise"

    def prepare(
        self, theta: Array, data: Mapping[str, Any], name: str = "theta"
    ) -> tuple[Plan, dict[str, Array], Array | None]:
        """Check a call of ``theta`` ``(B, *shape)`` with ``data`` (per-instance arrays by field
        name, ``(B, *field.shape)``; ``None`` values are dropped and a value without the
        batch axis is broadcast) and plan it.

        Returns the plan, the data in the form its solver takes (``theta``'s framework for an
        array-native solver or a traced call, numpy otherwise), and the poison ``(B,)`` (0,
        or NaN in rows whose scores or data failed a check on the device) or None. Raises
        :class:`InvalidInputError` naming the field and batch index."""
        home = framework(theta)
        check_batch_shape(tuple(theta.shape), self.problem.shape, name)
        if "float" not in dtype_name(theta):
            raise InvalidInputError(f"{name}: expected real numbers (a floating dtype), got dtype {dtype_name(theta)}")
        traced = home.is_traced(theta)
        plan = self._plan(home, theta, traced)
        if data:
            data = broadcast_data(self.problem, data, home.batch_size(theta))
        if data:
            self.oracle.check_takes_data(plan.solver, data)
            check_data(self.problem, data, home.batch_size(theta), self.call)
            in_framework = plan.native or home.traces
            data = for_framework(self.problem, data, theta) if in_framework else to_host(self.problem, data)
        if not self.validate_args:
            return plan, data, None
        if traced and data and not plan.native and problem_checks_on_host(self.problem, data):
            plan = dataclasses.replace(plan, check_data_on_host=True)  # the host solve checks them
            data_poison = None
        else:
            data_poison = self._check_data(home, data, traced)
        return plan, data, _sum_poisons(self._check_scores(home, theta, name), data_poison)

    def _plan(self, home: Framework, theta: Array, traced: bool) -> Plan:
        """The plan of calls on arrays like ``theta``: the solver chosen once per framework and
        place (traced or on an accelerator, where ``backend="auto"`` stays in the framework)."""
        key = (home.name, traced or home.on_accelerator(theta))
        plan = self._plans.get(key)
        if plan is None:
            solver = self.oracle.solver_for(theta)
            plan = self._plans[key] = Plan(self, home, solver, self.oracle.runs_natively(solver, home.name))
        return plan

    def _check_scores(self, home: Framework, theta: Array, name: str) -> Array | None:
        """Finite scores: one reduction read back when concrete, else checked on the device."""
        if theta.shape[0] == 0:
            return None
        summed = total(theta)
        if not home.is_traced(summed):  # concrete values (a constant inside a trace is not)
            if not math.isfinite(float(summed)):
                check_finite(home.to_numpy(theta), name)
            return None
        xp = home.namespace(theta)
        rows = xp.reshape(theta, (home.batch_size(theta), -1))
        finite = xp.isfinite(rows)
        first_bad = xp.sum(xp.where(finite, xp.zeros_like(rows), rows), axis=1)  # NaN or inf where a row has one
        template = NON_FINITE_MESSAGE.format(name=name, index="{index}", value="{value}")
        return home.check_rows(xp.all(finite, axis=1), lambda values: check_finite(values, name), [theta], template,
                               first_bad)

    def _check_data(self, home: Framework, data: dict[str, Array], traced: bool) -> Array | None:
        """The data's values (and a field without default that must be given): read now
        when concrete; when traced, on the device where the problem can tell a bad instance
        there, else by a host call."""
        if not data and (self._needs_no_data or not self.problem.instance_fields):
            return None
        if not data or not traced:
            names = tuple(data)
            # once a set of names passed the host's checks (a field that must be given is),
            # the problem's own check of the values in their framework suffices: one bool
            # read back, the host asked for the message only when an instance is bad
            bad = invalid_on_device(self.problem, data) if names in self._names_checked else None
            if bad is None or bool(array_namespace(bad).any(bad)):
                check_values(self.problem, data, self.call)  # also without data: a field may have no default
                self._names_checked.add(names)
                self._needs_no_data = self._needs_no_data or not data
            return None
        names, problem = tuple(data), self.problem

        def report(*values: np.ndarray) -> None:
            _check_groups(problem, names, values)

        bad = invalid_on_device(problem, data)
        return home.check_rows(None if bad is None else ~bad, report, list(data.values()))


@dataclass(frozen=True)
class Plan:
    """One call's decisions, shared by all its solves: the step, the scores' framework, the
    solver and whether it runs on the arrays themselves (``native``) or on the host. It
    holds no array: a call's data travel beside it (JAX keeps them among its residuals)."""

    step: Step
    framework: Framework
    solver: SolverEntry
    native: bool
    check_data_on_host: bool = False  # traced data that the device cannot check: the host solve does

    @property
    def oracle(self) -> MAPOracle:
        return self.step.oracle

    def solve(self, x: Array, data: InstanceData, per: int = 1) -> tuple[Array, Array | None]:
        """MAP states ``(N, *shape)`` of ``x`` with their rows' ``data``, and the statuses
        ``(N,)`` (int8; None: all OK, nothing left the framework); ``per`` rows per instance,
        which a failure's error names."""
        if self.native:
            try:
                return self.oracle.solve_with(self.solver, True, x, data)
            except SolverError as error:
                raise instance_error(error, x.shape[0], per) from error
        xp = array_namespace(x)
        host = HostSolve(self.oracle, self.solver, tuple(data), per, check_data=self.check_data_on_host)
        results = ((x.shape, x.dtype), (x.shape[:1], getattr(xp, STATUS_DTYPE)))
        z, status = self.framework.host_call(host, [x, *data.values()], results)
        return z, status

    def solves(self, data: InstanceData, batch: Any) -> tuple[Solve, Callable[[Array], tuple[Array, Array]]]:
        """An estimator's two solves for a batch of ``batch`` instances: states, and states
        with statuses, each row with its instance's data (instance-major)."""

        def states(x: Array, rows: InstanceData = data) -> Array:
            return self.solve(x, rows, rows_per_instance(x, batch))[0]

        def with_status(x: Array, rows: InstanceData = data) -> tuple[Array, Array]:
            z, status = self.solve(x, rows, rows_per_instance(x, batch))
            return z, _all_ok(x) if status is None else status

        if not data:  # no rows to repeat: a frame fewer per solve
            return states, with_status
        return per_instance(states, data, batch), per_instance(with_status, data, batch)

    def forward(
        self, estimator: Estimator, theta: Array, noise: Array | None, data: InstanceData, poison: Array | None = None
    ) -> tuple[Array, Array | None, Residuals]:
        """``(z, status, residuals)``: the estimator's forward pass (``status`` ``(B,)`` under a
        failure policy, else None); rows of ``z`` NaN where ``poison`` is."""
        states, with_status = self.solves(data, self.framework.batch_size(theta))
        sign = self.step.problem.sign
        if self.step.with_status:
            z, status, residuals = sample_with_status(estimator, theta, noise, with_status, sign)
        else:
            (z, residuals), status = estimator.sample_with(theta, noise, states, sign=sign), None
        return poisoned(z, poison), status, residuals

    def backward(
        self,
        estimator: Estimator,
        residuals: Residuals,
        grad_z: Array,
        state: Any,
        status: Array | None,
        data: InstanceData,
        poison: Array | None = None,
    ) -> tuple[Array, Any]:
        """``(grad_theta, state)``: the estimator's backward pass (zero rows for FAILED
        instances), NaN rows where ``grad_z`` is not finite (``validate_args``) or where
        ``poison`` is (the rows forward made NaN)."""
        states, with_status = self.solves(data, self.framework.batch_size(residuals.theta))
        if status is None:
            grad, state = estimator.gradient(residuals, grad_z, states, state)
        else:
            grad, state = gradient_with_status(estimator, residuals, grad_z, with_status, state, status)
        if self.step.validate_args:
            grad = poisoned(nan_where_not_finite(grad_z, grad, self.framework), poison)
        return grad, state

    def map(self, theta: Array, data: InstanceData, poison: Array | None = None) -> Array | tuple[Array, Array]:
        """MAP states ``(B, *shape)`` of ``theta`` (and the statuses, under a failure policy)."""
        z, status = self.solve(theta, data)
        z = poisoned(z, poison)
        return (z, _all_ok(theta) if status is None else status) if self.step.with_status else z

    def loss_on_host(
        self,
        prediction: Array,
        targets: dict[str, Array],
        data: InstanceData,
        compute: Callable[[Array, dict[str, Array], Solve], LossValue],
    ) -> LossValue:
        """``compute(prediction, targets, solve)`` run whole in one host call (:meth:`on_host`),
        its solves on the host through the same solver under the same failure policy
        (:meth:`loss`): for a loss whose number of solves depends on the values (the
        regularized Frank-Wolfe loop), which a trace cannot unroll."""
        names = tuple(targets)

        def host(plan: Plan, p: np.ndarray, given: list[np.ndarray], rows: InstanceData) -> tuple[np.ndarray, ...]:
            host_targets = dict(zip(names, given))
            return tuple(plan.loss(p, rows, lambda q, solve: compute(q, host_targets, solve)))

        batch = prediction.shape[:1]
        return LossValue(*self.on_host(host, prediction, list(targets.values()), data,
                                       (batch, prediction.shape, prediction.shape)))

    def on_host(
        self,
        compute: Callable[[Plan, np.ndarray, list[np.ndarray], InstanceData], tuple[np.ndarray, ...]],
        theta: Array,
        arrays: list[Array],
        data: InstanceData,
        shapes: tuple[tuple[Any, ...], ...],
    ) -> tuple[Array, ...]:
        """``compute(host_plan, theta, arrays, data)`` run whole in one host call of the
        framework (torch eagerly, a ``jax.pure_callback``, a ``tf.numpy_function``), on numpy
        copies: ``host_plan`` is this plan on the host (its solves through the same solver),
        ``data`` in the form that solver takes, as :meth:`Step.prepare` gives it. For a
        computation whose number of solves depends on the values, which a trace cannot
        unroll. The results have ``shapes`` (each led by the batch ``(B,)``) and ``theta``'s
        dtype. The calls of a ``jax.vmap`` (leading axes on every input) are computed one
        after the other."""
        from .frameworks.numpy import FRAMEWORK as NUMPY

        host_plan = dataclasses.replace(self, framework=NUMPY, native=self.oracle.runs_natively(self.solver, "numpy"))
        fields, count = tuple(data), len(arrays)
        event_ndim, problem = len(self.step.problem.shape), self.step.problem

        def host(theta: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
            lead = theta.shape[: theta.ndim - event_ndim - 1]
            batch = theta.shape[len(lead)]  # a traced graph's shapes may leave it unknown (None)
            results = [np.zeros((*lead, batch, *shape[1:]), theta.dtype) for shape in shapes]
            for group in np.ndindex(*lead):
                own = [np.asarray(v)[group] for v in values]
                rows = dict(zip(fields, own[count:]))
                own_theta = np.asarray(theta[group])
                if rows:
                    rows = for_framework(problem, rows, own_theta) if host_plan.native else to_host(problem, rows)
                for out, part in zip(results, compute(host_plan, own_theta, own[:count], rows)):
                    out[group] = np.asarray(part, dtype=theta.dtype)
            return tuple(results)

        specs = tuple((shape, theta.dtype) for shape in shapes)
        return self.framework.host_call(host, [theta, *arrays, *data.values()], specs)

    def loss(
        self, prediction: Array, data: InstanceData, compute: Callable[[Array, Solve], LossValue]
    ) -> LossValue:
        """``compute(prediction, solve)`` under the failure policy (see
        :func:`imle_solvers.losses.under_policy`), its solves those of this plan."""
        states, with_status = self.solves(data, self.framework.batch_size(prediction))
        return under_policy(lambda solve: compute(prediction, solve), prediction, states, with_status,
                            self.oracle.on_failure)


class HostSolve:
    """A solve on the host (the function a framework's host call runs): ``(theta, *values)
    -> (states, statuses)``, numpy in and out, ``values`` the rows' data of ``names`` in
    order. Leading axes in front of the rows (the calls of a ``jax.vmap``) are solved in
    the same oracle call. ``check_data``: check the data's values first (traced data whose
    problem cannot check them on the device)."""

    def __init__(
        self, oracle: MAPOracle, solver: SolverEntry, names: tuple[str, ...], per: int = 1, check_data: bool = False
    ) -> None:
        self.oracle, self.solver, self.names, self.per, self.check_data = oracle, solver, names, per, check_data

    def __call__(self, theta: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        problem = self.oracle.problem
        theta = np.asarray(theta)
        lead = theta.shape[: theta.ndim - len(problem.shape)]
        if self.check_data and values:
            _check_groups(problem, self.names, values)
        fields = problem.instance_fields
        flat = {name: np.asarray(v).reshape(-1, *fields[name].shape) for name, v in zip(self.names, values)}
        rows = theta.reshape(-1, *problem.shape)
        if rows.dtype.itemsize < 4:  # float16, bfloat16: widened exactly, for solvers that take float32 or more
            rows = rows.astype(np.float32)
        try:
            z, status = self.oracle.solve_with(self.solver, False, rows, to_host(problem, flat))
        except SolverError as error:  # rows of every group in one call: name the instance of its group
            raise instance_error(error, lead[-1], self.per) from error
        status = np.zeros(len(rows), dtype=STATUS_DTYPE) if status is None else status
        return np.asarray(z, dtype=theta.dtype).reshape(theta.shape), np.asarray(status).reshape(lead)


def problem_checks_on_host(problem: Problem, data: InstanceData) -> bool:
    """Whether ``problem`` can tell a bad instance of ``data`` only on the host."""
    return invalid_on_device(problem, data) is None


def rows_per_instance(x: Any, batch: Any) -> int:
    """How many consecutive rows of a solve's ``x`` ``(N, *shape)`` are each instance's, for
    a batch of ``batch`` instances (instance-major, ``N / batch``); 1 where either size is
    unknown while a graph is traced (an error then names the row)."""
    rows = x.shape[0]
    if isinstance(batch, int) and isinstance(rows, int) and batch > 0:
        return max(rows // batch, 1)
    return 1


def nan_where_not_finite(grad_z: Array, grad: Array, home: Framework | None = None) -> Array:
    """``grad`` ``(B, *shape)`` with NaN in every row whose upstream gradient ``grad_z``
    ``(B, ...)`` holds NaN or infinity, as any differentiable op would give.

    The backward pass's check, with ``validate_args``: it reads nothing back from a
    device, yet a non-finite ``dL/dz`` cannot pass as a finite gradient computed from a
    meaningless target. Concrete arrays in host memory (``home``, their framework, says
    so) are read once instead: a finite sum means every entry is finite."""
    if home is not None and not home.is_traced(grad_z) and not home.on_accelerator(grad_z):
        # a NaN or an infinity makes the sum non-finite; a sum that overflows takes the exact path
        if math.isfinite(float(total(grad_z))):
            return grad
    xp = array_namespace(grad)
    # 0 * x is 0 for a finite x and NaN for NaN and +-inf: each row's sum is 0 or NaN, exactly
    # (a sum over the event axes, not over a reshape to (B, -1), which an empty batch cannot take)
    poison = xp.sum(grad_z * 0, axis=tuple(range(1, grad_z.ndim)))  # (B,)
    poison = reshape(poison, (-1, *(1,) * (grad.ndim - 1)))
    return grad + (poison if poison.dtype == grad.dtype else xp.astype(poison, grad.dtype))


def _all_ok(x: Array) -> Array:
    """``(N,)`` OK statuses for the rows of ``x`` (int8, in its framework, on its device)."""
    xp = array_namespace(x)
    return xp.zeros((batch_size(x),), dtype=getattr(xp, STATUS_DTYPE), device=device(x))


def poisoned(x: Array, poison: Array | None) -> Array:
    """``x`` ``(B, ...)`` plus ``poison`` ``(B,)`` on every row (NaN rows where it is NaN)."""
    if poison is None:
        return x
    xp = array_namespace(x)
    return x + reshape(xp.astype(poison, x.dtype), (-1, *(1,) * (x.ndim - 1)))


def _sum_poisons(first: Array | None, second: Array | None) -> Array | None:
    """The sum of two poisons ``(B,)``, either of which may be None (none)."""
    if first is None or second is None:
        return second if first is None else first
    return first + second


def _check_groups(problem: Problem, names: tuple[str, ...], values: tuple[np.ndarray, ...]) -> None:
    """:func:`check_values` of host copies of traced data; under ``jax.vmap`` they gain
    leading axes, and each mapped call is checked as a batch of its own."""
    fields = problem.instance_fields
    arrays = {name: np.asarray(value) for name, value in zip(names, values)}
    lead = next(iter(arrays.values())).shape[: -len(fields[names[0]].shape) - 1]
    for group in np.ndindex(*lead):
        check_values(problem, {name: value[group] for name, value in arrays.items()})


class LossStep(Step):
    """What a loss of any framework holds: a :class:`Step` and the loss's definition
    (:class:`~imle_solvers.losses.FenchelYoung`, :class:`~imle_solvers.losses.SPOPlus`)."""

    call = "loss_fn(prediction, target, {fields})"

    def __init__(self, oracle: MAPOracle, definition: LossDefinition, validate_args: bool = True) -> None:
        super().__init__(oracle, validate_args)
        self.definition = definition
        # a definition whose solves depend on values runs whole in one host call (Plan.loss_on_host)
        self.on_host: bool = getattr(definition, "whole_on_host", False)

    def prepare_loss(
        self, prediction: Array, targets: Mapping[str, Any], data: Mapping[str, Any]
    ) -> tuple[Plan, dict[str, Array], dict[str, Array], Array | None]:
        """:meth:`prepare` for a loss of ``prediction`` ``(B, *shape)`` (no gradient flowing),
        and the ``targets`` (by name; None dropped) in its framework, dtype and device."""
        plan, data, poison = self.prepare(prediction, data, "prediction")
        pool = getattr(self.definition, "pool", None)
        if pool is not None:  # a pool loss: the pool after its growth step, a target of the call
            targets = {**targets, "pool": pool_for_call(self.definition.owner, pool, self.oracle, prediction,
                                                         targets.get("pool"), data)}
        xp, where = array_namespace(prediction), device(prediction)
        converted = {name: xp.asarray(value, dtype=prediction.dtype, device=where)
                     for name, value in targets.items() if value is not None}
        return plan, converted, data, poison

    def values(
        self,
        plan: Plan,
        prediction: Array,
        targets: dict[str, Array],
        noise: Array | None,
        data: InstanceData,
        poison: Array | None = None,
    ) -> LossValue:
        """The loss per instance ``(B,)``, its gradient and solution (``LossValue``), under the
        failure policy; NaN values in rows that failed a check on the device (``poison``)."""
        sign, definition = self.problem.sign, self.definition
        if self.on_host:
            result = plan.loss_on_host(prediction, targets, data,
                                       lambda p, given, solve: definition(p, given, noise, solve, sign))
        else:
            result = plan.loss(prediction, data, lambda p, solve: definition(p, targets, noise, solve, sign))
        return result._replace(value=poisoned(result.value, poison))
