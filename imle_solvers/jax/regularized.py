"""The regularized Frank-Wolfe optimizer (:mod:`imle_solvers.regularized`) in JAX: PyEPO's
``regularizedFrankWolfeOpt``, InferOpt's ``RegularizedFrankWolfe``, as a pure function of
``theta`` inside a ``jax.custom_vjp``; its loop runs on the host in one
``jax.pure_callback``, so it jits, vmaps and differentiates (reverse mode)."""

from __future__ import annotations

from typing import Any

import jax

from .. import regularized as core
from ..frameworks.jax import scores_and_value, traced_oracle, unwrapping_errors
from ..options import OracleOptions
from ..problems import Problem
from ..step import Plan, Step, StepHolder

__all__ = ["RegularizedFrankWolfe"]


class RegularizedFrankWolfe(StepHolder):
    """The regularized solution ``y_lambda`` of ``problem`` as a JAX function:
    ``f(theta, **data)`` ``(B, *problem.shape)`` -> ``(B, *problem.shape)``, the point of
    the states' hull maximising ``<sign theta, mu> - lambd/2 ||mu||^2`` (``theta`` scores, or
    costs for a min problem), differentiable (the Jacobian ``P / lambd`` on its optimal face,
    PyEPO's; reverse mode only: ``jax.jvp`` is refused, as for every ``custom_vjp``). Pair it
    with a task loss (e.g. the squared distance to the true solution).

    Args:
        problem: the problem whose MAP oracle is the linear-minimisation oracle.
        lambd, max_iter, tol: as :class:`imle_solvers.losses.RegularizedFenchelYoung`'s.
        validate_args, oracle_options, **options: as :class:`imle_solvers.torch.RegularizedFrankWolfe`'s
            (no noise, so no ``noise_source``; a failed solve raises, no failure policy).
    """

    def __init__(self, problem: Problem, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6, *,
                 validate_args: bool = True, oracle_options: OracleOptions | None = None, **options: Any) -> None:
        self.settings = core.FrankWolfeSettings(lambd, max_iter, tol)
        oracle, _ = traced_oracle(core.OWNER, problem, options, oracle_options, None, takes=())
        self.problem, self.lambd, self.max_iter, self.tol = problem, self.settings.lambd, max_iter, self.settings.tol
        self.step = Step(core.check_no_failure_policy(oracle), validate_args)
        # compiled once per shape and plan: an eager call costs one dispatch
        self._compiled = jax.jit(self._map, static_argnums=0)

    def __repr__(self) -> str:
        return f"RegularizedFrankWolfe({self.problem!r}, lambd={self.lambd}, max_iter={self.max_iter}, tol={self.tol})"

    def __call__(self, theta: Any, **data: Any) -> jax.Array:
        """The regularized solutions ``(B, *shape)`` of ``theta`` ``(B, *shape)``; ``data``: the
        instances' own data by field name (``problem.instance_fields``), carrying no gradient."""
        theta, value = scores_and_value(theta)
        plan, data, poison = self.step.prepare(value, data)
        return unwrapping_errors(self._compiled, plan, theta, data, poison)

    def _map(self, plan: Plan, theta: jax.Array, data: dict, poison: jax.Array | None) -> jax.Array:
        settings = self.settings

        def forward(theta: jax.Array, data: dict, poison: Any) -> tuple[jax.Array, tuple]:
            solution, vertices, weights = core.forward(plan, settings, theta, data, poison)
            return solution, (vertices, weights, poison)

        def backward(saved: tuple, cotangent: jax.Array) -> tuple:
            vertices, weights, poison = saved
            # data and poison carry no gradient (None: a zero cotangent, whatever the dtypes)
            return core.backward(plan, settings, vertices, weights, cotangent, poison), None, None

        fn = jax.custom_vjp(lambda *args: forward(*args)[0])
        fn.defvjp(forward, backward)
        return fn(theta, data, poison)
