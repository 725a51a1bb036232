r"""The regularized MAP solution by away-step Frank-Wolfe, the MAP oracle as the linear
minimisation oracle (Dalle et al., 2022: InferOpt's ``RegularizedFrankWolfe``; PyEPO's
``regularizedFrankWolfeOpt``).

For scores ``s`` of a max problem over the states ``Y`` and the quadratic regularizer
``Omega(mu) = lambda / 2 ||mu||^2``,

$$
\hat y_\lambda(s) = \arg\max_{\mu \in \mathrm{conv}(Y)} \langle s, \mu\rangle - \frac{\lambda}{2}\|\mu\|^2
= \arg\min_{\mu \in \mathrm{conv}(Y)} \frac12\Big\|\mu - \frac{s}{\lambda}\Big\|^2,
$$

the Euclidean projection of ``s / lambda`` onto the states' convex hull. Each iteration
makes one oracle call on all ``B`` rows (``MAP(s / lambda - mu)``, the Frank-Wolfe vertex),
takes the Frank-Wolfe or the away direction (from the worst active vertex), whichever has
the larger gap, with the exact line search of the quadratic; an instance stops moving once
its Frank-Wolfe gap is below ``tol``, the loop once every instance's is. The active set
lives in a buffer of ``2 n + 2`` slots (a support of at most ``n + 1`` by Caratheodory);
a full buffer drops its lightest atom, as PyEPO's.

Its derivative (:func:`regularized_map_vjp`, PyEPO's backward pass): on the optimal face
the projection moves with ``s / lambda`` along the face's affine hull, so the Jacobian
with respect to ``s`` is ``P / lambda``, ``P`` the orthogonal projector onto the span of the
active vertices' differences (centred on their mean; a ridge of ``1e-6`` times the Gram
matrix's largest diagonal entry, at least ``1e-6``, as PyEPO's). The active vertices span
the optimal face when it is a simplex; on a face with more vertices than its dimension plus
one, the decomposition Frank-Wolfe found may use fewer, and the projector is then onto a
smaller subspace than the face's (as PyEPO's).

Written on array-API arrays, eagerly: the loop's length depends on the values, so it does
not run inside a trace (``jax.jit``, ``tf.function``); the losses and layers of every
binding run it on numpy arrays inside one host call of their framework
(:meth:`imle_solvers.step.Plan.on_host`; the layers' passes are :mod:`imle_solvers.regularized`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ._array import Array, array_namespace, is_traced
from .errors import InvalidInputError
from .estimators import Solve

__all__ = ["ActiveSet", "check_settings", "regularized_map", "regularized_map_vjp"]

# a weight this small is no weight (floating-point residue of an away step)
_ZERO_WEIGHT = 1e-12
# two states this close (squared distance) are the same vertex
_SAME_VERTEX = 1e-6


class ActiveSet(NamedTuple):
    """The regularized solution and its convex decomposition: ``solution`` ``(B, *shape)``,
    ``vertices`` ``(B, W, n)`` the buffer of states (``n`` the flattened event size) and
    ``weights`` ``(B, W)`` theirs (0 for an empty slot), summing to 1 per instance."""

    solution: Array
    vertices: Array
    weights: Array


def check_settings(owner: str, lambd: float, max_iter: int, tol: float) -> None:
    """Raise an :class:`InvalidInputError` naming ``owner`` unless ``lambd`` is a number > 0,
    ``max_iter`` an integer >= 1 and ``tol`` a number >= 0 (:func:`regularized_map`'s)."""
    if isinstance(lambd, bool) or not isinstance(lambd, (int, float)) or not lambd > 0:
        raise InvalidInputError(f"{owner}: lambd must be a number > 0, got {lambd!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidInputError(f"{owner}: max_iter must be an integer >= 1, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise InvalidInputError(f"{owner}: tol must be a number >= 0, got {tol!r}")


def _one_hot(index: Array, slots: Array) -> Array:
    """``(B, W)`` booleans, True at ``index`` ``(B,)``; ``slots`` ``(B, W)`` each slot's number."""
    xp = array_namespace(slots)
    return slots == xp.astype(index, slots.dtype)[:, None]


def _pick(values: Array, one_hot: Array) -> Array:
    """The slot of ``values`` ``(B, W, ...)`` that ``one_hot`` ``(B, W)`` marks, ``(B, ...)``."""
    xp = array_namespace(values)
    mask = xp.reshape(one_hot, (*one_hot.shape, *(1,) * (values.ndim - 2)))
    return xp.sum(xp.where(mask, values, xp.zeros_like(values)), axis=1)


def regularized_map(s: Array, solve: Solve, *, lambd: float = 1.0, max_iter: int = 10000,
                    tol: float = 1e-6) -> ActiveSet:
    """The regularized solution ``argmax_{mu in conv(Y)} <s, mu> - lambd/2 ||mu||^2`` per instance.

    Args:
        s: ``(B, *shape)`` scores of a max problem.
        solve: the max problem's oracle ``(B, *shape) -> (B, *shape)``, called once per iteration.
        lambd: the regularization's strength ``lambda``, > 0.
        max_iter: the most Frank-Wolfe iterations (oracle calls after the first).
        tol: an instance's Frank-Wolfe gap (of ``1/2 ||mu - s/lambda||^2``) below which it stops.

    A row of ``s`` holding a non-finite score comes back NaN, the others as without it.
    """
    if is_traced(s):
        raise InvalidInputError("regularized Frank-Wolfe runs eagerly, not inside a trace (jax.jit, tf.function, "
                                "Keras' compiled fit: compile(run_eagerly=True))")
    xp = array_namespace(s)
    event = tuple(s.shape[1:])
    batch = s.shape[0]
    n = math.prod(event)  # not -1: an empty batch cannot infer it
    target = xp.reshape(s, (batch, n)) / lambd
    # a row with a non-finite score (one a traced call's check poisons) runs as zeros and
    # comes back NaN: the loop's reductions over the batch must not see it
    finite = xp.all(xp.isfinite(target), axis=1)[:, None]
    target = xp.where(finite, target, xp.zeros_like(target))

    def vertex(direction: Array) -> Array:
        return xp.astype(xp.reshape(solve(xp.reshape(direction, (batch, *event))), (batch, n)), s.dtype)

    width = 2 * n + 2
    v0 = vertex(target)
    mu = v0
    vertices = xp.zeros((batch, width, n), dtype=s.dtype)
    weights = xp.zeros((batch, width), dtype=s.dtype)
    slots = xp.cumulative_sum(xp.ones_like(weights), axis=1) - 1
    first = slots == 0
    vertices = xp.where(first[:, :, None], v0[:, None, :], vertices)
    weights = xp.where(first, xp.ones_like(weights), weights)
    for _ in range(max_iter):
        grad = mu - target
        v = vertex(-grad)
        gap_fw = xp.sum(grad * (mu - v), axis=1)
        moving = gap_fw >= tol
        if not bool(xp.any(moving)):
            break
        held = weights > 0
        scores = xp.sum(vertices * grad[:, None, :], axis=2)
        away = _one_hot(xp.argmax(xp.where(held, scores, -xp.max(-scores) - 1 + xp.zeros_like(scores)), axis=1), slots)
        v_away, alpha_away = _pick(vertices, away), _pick(weights, away)
        gap_away = xp.sum(grad * (v_away - mu), axis=1)
        use_fw = gap_fw >= gap_away
        direction = xp.where(use_fw[:, None], v - mu, mu - v_away)
        gap = xp.where(use_fw, gap_fw, gap_away)
        gamma_max = xp.where(use_fw, xp.ones_like(gap), alpha_away / xp.clip(1 - alpha_away, min=_ZERO_WEIGHT))
        denom = xp.clip(xp.sum(direction * direction, axis=1), min=_ZERO_WEIGHT)
        gamma = xp.minimum(xp.clip(gap / denom, min=0.0), gamma_max)
        gamma = xp.where(moving, gamma, xp.zeros_like(gamma))
        mu = mu + gamma[:, None] * direction
        weights = weights * xp.where(use_fw, 1 - gamma, 1 + gamma)[:, None]
        gamma_fw = xp.where(use_fw, gamma, xp.zeros_like(gamma))
        gamma_away = gamma - gamma_fw
        # the Frank-Wolfe vertex joins its copy in the active set, else a free (or the lightest) slot
        same = (xp.sum((vertices - v[:, None, :]) ** 2, axis=2) < _SAME_VERTEX) & held
        has_same = xp.any(same, axis=1)
        same_slot = _one_hot(xp.argmax(xp.astype(same, s.dtype), axis=1), slots)
        free = weights <= _ZERO_WEIGHT
        free_slot = xp.where(xp.any(free, axis=1), xp.argmax(xp.astype(free, s.dtype), axis=1),
                             xp.argmax(-weights, axis=1))
        new_slot = _one_hot(free_slot, slots) & (~has_same & use_fw & (gamma_fw > 0))[:, None]
        weights = weights + xp.where(same_slot & (has_same & use_fw)[:, None], gamma_fw[:, None], 0 * weights)
        vertices = xp.where(new_slot[:, :, None], v[:, None, :], vertices)
        weights = xp.where(new_slot, gamma_fw[:, None] + 0 * weights, weights)
        weights = weights - xp.where(away, gamma_away[:, None], 0 * weights)
        weights = xp.clip(weights, min=0.0)
        weights = xp.where(weights < _ZERO_WEIGHT, 0 * weights, weights)
    mu = xp.where(finite, mu, xp.full_like(mu, float("nan")))
    return ActiveSet(xp.reshape(mu, (batch, *event)), vertices, weights)


def regularized_map_vjp(active: ActiveSet, cotangent: Array, lambd: float = 1.0) -> Array:
    """``cotangent`` ``(B, *shape)`` times the Jacobian of :func:`regularized_map` with respect
    to ``s`` (``P cotangent / lambd``, see the module docstring), ``(B, *shape)``; needs
    ``xp.linalg.solve`` (numpy, torch)."""
    xp = array_namespace(cotangent)
    batch = cotangent.shape[0]
    g = xp.reshape(cotangent, (batch, math.prod(cotangent.shape[1:])))
    held = xp.astype(active.weights > 0, g.dtype)[:, :, None]  # (B, W, 1)
    count = xp.clip(xp.sum(held, axis=1), min=1.0)  # (B, 1)
    centre = xp.sum(active.vertices * held, axis=1) / count
    centred = (active.vertices - centre[:, None, :]) * held  # (B, W, n), empty slots 0
    gram = xp.matmul(centred, xp.permute_dims(centred, (0, 2, 1)))  # (B, W, W)
    diagonal = xp.sum(centred * centred, axis=2)  # (B, W)
    ridge = xp.clip(xp.max(diagonal, axis=1), min=1.0) * 1e-6
    width = gram.shape[1]
    eye = xp.eye(width, dtype=g.dtype)
    alpha = xp.linalg.solve(gram + ridge[:, None, None] * eye, xp.sum(centred * g[:, None, :], axis=2)[:, :, None])
    projected = xp.sum(centred * alpha, axis=1)  # (B, n)
    return xp.reshape(projected / lambd, cotangent.shape)
