"""The pushforward (:mod:`imle_solvers.pushforward`) in JAX: the expectation of a
post-processing of perturbed MAP states as a pure function of ``(theta, key)``, inside a
``jax.custom_vjp`` (the score-function identity), so it jits, vmaps and differentiates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .. import pushforward as core
from ..frameworks.jax import draw_noise, scores_and_value, unwrapping_errors
from ..problems import Problem
from ..step import Plan
from .layer import IMLEFunction

__all__ = ["Pushforward"]


class Pushforward(IMLEFunction):
    r"""``f(theta, key, **data) -> mean_m g(MAP(theta + sigma Z_m))`` ``(B, *g_shape)``: the
    Monte-Carlo expectation of a post-processing ``g`` of ``samples`` perturbed MAP states
    (standard Normal ``Z_m`` from ``key``), differentiable in ``theta`` by
    ``E[<v, g(Y)> Z] / sigma`` (:mod:`imle_solvers.pushforward`), even where ``g`` is not
    differentiable (InferOpt's ``Pushforward``).

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        g: the post-processing, a function of JAX arrays, traced with the call (so written
            with ``jax.numpy``, not numpy, and jittable; it is never differentiated, so
            comparisons and indicators are fine): it takes all states ``(B, samples, *shape)``
            (``theta``'s dtype) and returns ``(B, samples, *g_shape)``, a function of one
            state vectorised over the leading axes, e.g. ``lambda y: y[..., 0]``.
        sigma: the noise's scale, > 0.
        samples: the draws ``M`` averaged per instance.
        **options: as :func:`imle_solvers.jax.imle`'s (``noise_source``, ``backend``,
            ``on_failure``, ...). Under a failure policy a call returns ``(value, status)``,
            a FAILED instance's value and gradient zero.
    """

    def __init__(self, problem: Problem, g: Callable[[jax.Array], jax.Array], *, sigma: float = 1.0,
                 samples: int = 1, **options: Any) -> None:
        estimator = core.perturbation("Pushforward", sigma, samples)
        self.g = core.check_post_processing("Pushforward", g)
        self.sigma, self.samples = float(sigma), samples
        super().__init__(problem, estimator, **options)

    def __repr__(self) -> str:
        return f"Pushforward({self.problem!r}, sigma={self.sigma}, samples={self.samples}, g={self.g!r})"

    def __call__(self, theta: Any, key: jax.Array, **data: Any) -> jax.Array | tuple[jax.Array, jax.Array]:  # type: ignore[override]
        """The expectation ``(B, *g_shape)`` (and the statuses ``(B,)``, under a failure policy)
        of ``theta`` ``(B, *shape)``, its noise from the PRNG ``key``; ``data``: the
        instances' own data by field name."""
        theta, value = scores_and_value(theta)
        plan, data, poison = self.step.prepare(value, data)
        return unwrapping_errors(self._compiled_sample, plan, theta, key, None, data, poison)

    def _sample(self, plan: Plan, theta: jax.Array, key: jax.Array, state: Any, data: dict,
                poison: jax.Array | None) -> Any:
        estimator, sigma, g = self.estimator, self.sigma, self.g

        def forward(theta: jax.Array, noise: jax.Array, data: dict, poison: Any) -> tuple[Any, tuple]:
            value, status, values = core.forward(plan, estimator, g, theta, noise, data, poison)
            return (value if status is None else (value, status)), (noise, values, status, poison)

        def backward(saved: tuple, cotangent: Any) -> tuple:
            noise, values, status, poison = saved
            grad_value = cotangent if status is None else cotangent[0]
            grad = core.backward(plan, noise, values, grad_value, sigma, status, poison)
            return grad, jnp.zeros_like(noise), None, None  # noise, data, poison carry no gradient

        fn = jax.custom_vjp(lambda *args: forward(*args)[0])
        fn.defvjp(forward, backward)
        return fn(theta, draw_noise(estimator, self.noise_source, theta, key), data, poison)
