r"""The regularized Frank-Wolfe optimizer as a layer (PyEPO's ``regularizedFrankWolfeOpt``,
InferOpt's ``RegularizedFrankWolfe``): the bindings' ``RegularizedFrankWolfe``, written once.

For scores ``theta`` ``(B, *shape)`` of a max problem (costs of a min problem, whose
library sign ``-1`` makes them scores ``-theta``), the layer's value is the regularized
solution ``y_lambda(sign theta)`` of :func:`imle_solvers.frank_wolfe.regularized_map` and
the vector-Jacobian product of a cotangent ``v`` is ``sign P v / lambda``
(:func:`imle_solvers.frank_wolfe.regularized_map_vjp`), ``P`` the projector onto the
affine hull of the active vertices.

The Frank-Wolfe loop's length depends on the values, so the forward pass runs whole on
the host in one host call of the framework (:meth:`imle_solvers.step.Plan.on_host`: torch
eagerly, a ``jax.pure_callback``, a ``tf.numpy_function``), its solves through the plan's
solver, which makes it work under ``jax.jit`` and ``tf.function`` too. It keeps the active
set (vertices ``(B, 2n + 2, n)`` and weights ``(B, 2n + 2)``, ``n`` the flattened event
size) as the residual of the backward pass, a second host call. No failure policy: a
failed solve raises, naming its instance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import Array
from .errors import InvalidInputError
from .estimators import oriented
from .frank_wolfe import ActiveSet, check_settings, regularized_map, regularized_map_vjp
from .oracle import MAPOracle
from .step import Plan, nan_where_not_finite, poisoned

__all__ = ["FrankWolfeSettings", "backward", "forward"]

OWNER = "RegularizedFrankWolfe"


class FrankWolfeSettings:
    """A layer's Frank-Wolfe settings, checked (as :class:`imle_solvers.losses.RegularizedFenchelYoung`'s):
    ``lambd`` the regularization's strength (> 0), ``max_iter`` the most iterations (>= 1),
    ``tol`` the Frank-Wolfe gap at which an instance stops (>= 0)."""

    def __init__(self, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6) -> None:
        check_settings(OWNER, lambd, max_iter, tol)
        self.lambd, self.max_iter, self.tol = float(lambd), max_iter, float(tol)

    def config(self) -> dict[str, Any]:
        """The settings by keyword, for a layer's config."""
        return {"lambd": self.lambd, "max_iter": self.max_iter, "tol": self.tol}


def check_no_failure_policy(oracle: MAPOracle) -> MAPOracle:
    """``oracle`` if its failure policy is ``"raise"``; else an :class:`InvalidInputError`
    (a layer of regularized solutions has no value for a failed instance)."""
    if oracle.on_failure != "raise":
        raise InvalidInputError(f"{OWNER}: no failure policy, a failed solve raises; on_failure="
                                f"{oracle.on_failure!r} is not accepted (leave it at 'raise')")
    return oracle


def _vertex_count(event_size: int) -> int:
    """The slots of the active set's buffer (see :mod:`imle_solvers.frank_wolfe`)."""
    return 2 * event_size + 2


def forward(plan: Plan, settings: FrankWolfeSettings, theta: Array, data: dict[str, Array],
            poison: Array | None) -> tuple[Array, Array, Array]:
    """A binding's forward pass: ``(solution, vertices, weights)``, the regularized solution
    ``(B, *shape)`` of ``theta`` ``(B, *shape)`` (NaN rows where ``poison`` is) and its
    active set, ``(B, W, n)`` and ``(B, W)`` (the residuals of :func:`backward`), all in
    ``theta``'s framework and dtype; ``data`` as :meth:`imle_solvers.step.Step.prepare` gives them."""
    sign = plan.step.problem.sign
    batch, event = theta.shape[:1], tuple(plan.step.problem.shape)
    n = int(np.prod(event))

    def host(host_plan: Plan, scores: np.ndarray, _: list, rows: dict) -> tuple[np.ndarray, ...]:
        solve = host_plan.solves(rows, scores.shape[0])[0]
        s = sign * np.asarray(scores, dtype=np.float64)
        active = regularized_map(s, oriented(solve, sign), lambd=settings.lambd, max_iter=settings.max_iter,
                                 tol=settings.tol)
        return active.solution, active.vertices, active.weights

    shapes = ((*batch, *event), (*batch, _vertex_count(n), n), (*batch, _vertex_count(n)))
    solution, vertices, weights = plan.on_host(host, theta, [], data, shapes)
    return poisoned(solution, poison), vertices, weights


def backward(plan: Plan, settings: FrankWolfeSettings, vertices: Array, weights: Array, cotangent: Array,
             poison: Array | None) -> Array:
    """A binding's backward pass: the gradient ``sign P cotangent / lambd`` ``(B, *shape)`` of
    ``<cotangent, solution>`` from :func:`forward`'s active set, in one host call; with
    ``validate_args``, NaN rows where the cotangent is not finite or where ``poison`` is."""
    sign, lambd = plan.step.problem.sign, settings.lambd

    def host(v: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
        # a jax.vmap's leading axes: each row's projector is its own, so they flatten into the batch
        rows = g.reshape(-1, *g.shape[v.ndim - 2:])
        active = ActiveSet(None, np.asarray(v, np.float64).reshape(-1, *v.shape[-2:]),
                           np.asarray(w, np.float64).reshape(-1, w.shape[-1]))
        grad = sign * regularized_map_vjp(active, np.asarray(rows, np.float64), lambd)
        return (grad.reshape(g.shape).astype(g.dtype),)

    (grad,) = plan.framework.host_call(host, [vertices, weights, cotangent], [(cotangent.shape, cotangent.dtype)])
    if plan.step.validate_args:
        grad = poisoned(nan_where_not_finite(cotangent, grad, plan.framework), poison)
    return grad
