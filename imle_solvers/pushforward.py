r"""The pushforward of a perturbed optimizer (InferOpt's ``Pushforward``): the expectation
of a post-processing ``g`` of the perturbed MAP states, differentiable in ``theta`` even
where ``g`` is not (Berthet, Blondel, Teboul, Cuturi, Vert, Bach, NeurIPS 2020).

For a max problem, Gaussian noise ``Z`` and a scale ``sigma > 0``,

$$
F(\theta) = \mathbb{E}_Z\, g\big(\mathrm{MAP}(\theta + \sigma Z)\big), \qquad
\nabla_\theta F = \frac{1}{\sigma}\,\mathbb{E}_Z\, g\big(\mathrm{MAP}(\theta + \sigma Z)\big)\, Z^\top,
$$

the gradient coming from the noise's density (the score-function identity), not from ``g``.
With ``M`` draws ``Z_m`` and states ``y_m = MAP(theta + sigma Z_m)``, the Monte-Carlo
value is ``mean_m g(y_m)`` and the vector-Jacobian product of a cotangent ``v`` (of
``g``'s shape) is ``mean_m <v, g(y_m)> Z_m / sigma``; both are unbiased. For a min
problem the library solves the max problem over ``-theta`` (see
:mod:`imle_solvers.estimators`), so the product changes sign.

Written once on array-API arrays. The perturbed states come from the layers' step (a
:class:`~imle_solvers.estimators.PerturbedOptimizer` with ``Normal()`` noise, its solves,
failure policy and per-instance data), which the bindings' ``Pushforward`` use.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from ._array import Array, array_namespace
from .errors import InvalidInputError
from .estimators import PerturbedOptimizer, check_perturbations
from .failures import zero_failed_rows
from .noise import Normal
from .step import Plan, nan_where_not_finite, poisoned

__all__ = ["backward", "check_post_processing", "expectation", "forward", "perturbation", "post_process",
           "pushforward_vjp"]


def perturbation(owner: str, sigma: float, samples: int) -> PerturbedOptimizer:
    """The estimator whose forward pass gives a pushforward's ``samples`` perturbed states
    per instance: ``Normal()`` noise of scale ``sigma``, one output of ``samples`` draws.

    Raises:
        InvalidInputError: ``sigma`` not a finite number > 0, or ``samples`` not a
            positive integer (named as ``owner``'s arguments).
    """
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < float(sigma) < float("inf"):
        raise InvalidInputError(f"{owner}: sigma must be a finite number > 0, got {sigma!r}")
    check_perturbations(owner, samples=samples)
    return PerturbedOptimizer(Normal(), noise_temperature=float(sigma), marginal_samples=samples,
                              variance_reduction=False)


def check_post_processing(owner: str, g: Any) -> Callable[[Any], Any]:
    """``g`` if it is callable; else an :class:`InvalidInputError`."""
    if not callable(g):
        raise InvalidInputError(f"{owner}: g must be a function of the states, got {g!r}")
    return g


def post_process(owner: str, g: Callable[[Array], Array], states: Array, dtype: Any) -> Array:
    """``g``'s values ``(B, M, *g_shape)`` of the states ``(B, M, *shape)``, in ``dtype``.

    ``g`` is applied to the whole batch at once and must keep the two leading axes (it
    maps one state ``(*shape)`` to ``(*g_shape)``, vectorised over leading axes)."""
    values = g(states)
    xp = array_namespace(states)
    lead = tuple(states.shape[:2])
    if not hasattr(values, "shape") or tuple(values.shape[:2]) != lead:
        got = tuple(values.shape) if hasattr(values, "shape") else type(values).__name__
        raise InvalidInputError(
            f"{owner}: g must map the states {tuple(states.shape)} to values with the same leading axes "
            f"{lead} (g acts on the last axes, one state at a time), got {got}"
        )
    return xp.astype(values, dtype) if values.dtype != dtype else values


def expectation(values: Array) -> Array:
    """The Monte-Carlo value ``mean_m g(y_m)``: ``(B, M, *g_shape) -> (B, *g_shape)``."""
    return array_namespace(values).mean(values, axis=1)


def pushforward_vjp(noise: Array, values: Array, cotangent: Array, sigma: float, sign: int) -> Array:
    """The vector-Jacobian product ``sign * mean_m <v, g(y_m)> Z_m / sigma`` ``(B, *shape)``.

    Args:
        noise: ``(B, M, *shape)`` the standard Normal draws ``Z_m`` of the states.
        values: ``(B, M, *g_shape)`` ``g(y_m)``.
        cotangent: ``(B, *g_shape)`` ``v``, the upstream gradient of the value.
        sigma: the noise's scale.
        sign: the problem's sign (1 for a max problem, -1 for a min problem).
    """
    xp = array_namespace(values)
    g_axes = tuple(range(2, values.ndim))
    inner = xp.sum(values * cotangent[:, None, ...], axis=g_axes) if g_axes else values * cotangent[:, None]
    inner = xp.reshape(inner, (*inner.shape, *(1,) * (noise.ndim - 2)))  # (B, M, 1, ...)
    return xp.mean(inner * noise, axis=1) * (sign / sigma)


def forward(plan: Plan, estimator: PerturbedOptimizer, g: Callable[[Array], Array], theta: Array, noise: Array,
            data: dict[str, Array], poison: Array | None) -> tuple[Array, Array | None, Array]:
    """A binding's forward pass: ``(value, status, values)``, the expectation ``(B, *g_shape)``
    of ``g`` over the perturbed states of ``theta`` ``(B, *shape)`` with the drawn ``noise``
    ``(B, 1, M, *shape)`` (NaN rows where ``poison`` is, zero rows for FAILED instances), the
    statuses ``(B,)`` under a failure policy (else None) and ``g``'s values ``(B, M, *g_shape)``
    (a residual of :func:`backward`)."""
    _, status, residuals = plan.forward(estimator, theta, noise, data, poison)
    values = post_process("Pushforward", g, residuals.states[:, 0], theta.dtype)
    value = poisoned(expectation(values), poison)
    return (value if status is None else zero_failed_rows(value, status)), status, values


def backward(plan: Plan, noise: Array, values: Array, cotangent: Array, sigma: float, status: Array | None,
             poison: Array | None) -> Array:
    """A binding's backward pass: the gradient ``(B, *shape)`` of ``<cotangent, value>`` from
    :func:`forward`'s residuals (zero rows for FAILED instances; with ``validate_args``, NaN
    rows where the cotangent is not finite or where ``poison`` is)."""
    grad = pushforward_vjp(noise[:, 0], values, cotangent, sigma, plan.step.problem.sign)
    if status is not None:
        grad = zero_failed_rows(grad, status)
    if plan.step.validate_args:
        grad = poisoned(nan_where_not_finite(cotangent, grad, plan.framework), poison)
    return grad
