"""The JAX function: the step (:mod:`imle_solvers.step`) inside a ``jax.custom_vjp``, a
pure function of ``(theta, key[, state])`` (see :mod:`imle_solvers.jax`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .. import _binding
from ..errors import InvalidInputError
from ..estimators import Estimator
from ..frameworks.jax import draw_noise, scores_and_value, traced_oracle, unwrapping_errors
from ..options import NoiseOptions, OracleOptions
from ..problems import Problem
from ..step import Plan, Step, StepHolder, check_estimator
from .state import State, as_state, one_update

__all__ = ["IMLEFunction", "imle"]


class IMLEFunction(StepHolder):
    """A differentiable discrete layer as a JAX function: ``f(theta, key[, state]) -> z``.

    ``theta`` is ``(B, *problem.shape)``; ``z`` is ``(B, *shape)``, or
    ``(B, samples, *shape)`` when the estimator draws several samples, in ``theta``'s
    dtype. ``key`` is a JAX PRNG key. A stateful estimator (AIMLE) takes its
    ``state`` (see :meth:`initial_state`) as third argument; see the module
    docstring for how the updated state comes back. :meth:`map` gives the MAP state
    (evaluation), without noise or gradient. With ``on_failure`` other than ``"raise"``
    both return ``(z, status)``, ``status`` ``(B,)`` int8; ``failures`` counts the
    failed solves of instances by reason.

    Build it with :func:`imle`.
    """

    def __init__(self, problem: Problem, estimator: Estimator, *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, noise_options: NoiseOptions | None = None,
                 **options: Any) -> None:
        check_estimator("imle", estimator)
        oracle, self.noise_source = traced_oracle("imle", problem, options, oracle_options, noise_options)
        self.problem = problem
        self.estimator = estimator
        self.step = Step(oracle, validate_args)
        self.state_fields = _binding.state_fields(estimator)
        # compiled once per shape and plan, so that an eager call costs one dispatch rather
        # than one per op (inside the caller's own jit they are inlined)
        self._compiled_sample = jax.jit(self._sample, static_argnums=0)
        self._compiled_map = jax.jit(lambda plan, *args: plan.map(*args), static_argnums=0)

    def __repr__(self) -> str:
        return (
            f"IMLEFunction({self.problem!r}, {self.estimator!r}, backend={self.oracle.solver.backend!r}, "
            f"noise_source={self.noise_source!r})"
        )

    def initial_state(self) -> State | None:
        """The estimator's initial state, its fields float scalars (None if stateless)."""
        initial = self.estimator.initial_state()
        return None if initial is None else as_state(initial)

    def __call__(
        self, theta: jax.Array, key: jax.Array, state: State | None = None, **data: Any
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Perturb-and-MAP samples of ``theta`` ``(B, *shape)`` with the estimator's gradient;
        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)`` (or one instance's, for all), carrying no gradient."""
        if (state is None) != (not self.state_fields):
            raise InvalidInputError(
                f"{type(self.estimator).__name__}: state must be "
                + ("passed (see initial_state())" if self.state_fields else "None: the estimator is stateless")
            )
        theta, value = scores_and_value(theta)
        plan, data, poison = self.step.prepare(value, data)
        state = None if state is None else as_state(state)
        return unwrapping_errors(self._compiled_sample, plan, theta, key, state, data, poison)

    def map(self, theta: jax.Array, **data: Any) -> jax.Array | tuple[jax.Array, jax.Array]:
        """The MAP states ``(B, *shape)`` of ``theta`` ``(B, *shape)`` (and ``data``, as for
        calls); no gradient flows."""
        theta = jax.lax.stop_gradient(jnp.asarray(theta))
        plan, data, poison = self.step.prepare(theta, data)
        return unwrapping_errors(self._compiled_map, plan, theta, data, poison)

    def _sample(self, plan: Plan, theta: jax.Array, key: jax.Array, state: State | None, data: dict,
                poison: jax.Array | None) -> Any:
        estimator, sign = self.estimator, self.problem.sign
        kinds: list[type] = []  # the residuals' type (an estimator's own), from forward to backward

        def forward(theta: jax.Array, noise: Any, state: Any, data: dict, poison: Any) -> tuple[Any, tuple]:
            z, status, residuals = plan.forward(estimator, theta, noise, data, poison)
            kinds.append(type(residuals))
            arrays = {f.name: getattr(residuals, f.name) for f in dataclasses.fields(residuals) if f.name != "sign"}
            return (z if status is None else (z, status)), (arrays, state, status, data, poison)

        def backward(saved: tuple, cotangent: Any) -> tuple:
            arrays, state, status, data, poison = saved
            grad_z = cotangent if status is None else cotangent[0]
            residuals = kinds[-1](**arrays, sign=sign)
            grad, new = plan.backward(estimator, residuals, grad_z, state, status, data, poison)
            update = None if state is None else jax.tree.map(one_update, new, state)
            noise = residuals.noise
            # noise, data and poison carry no gradient (None: a zero cotangent, whatever the dtypes)
            return grad, None if noise is None else jnp.zeros_like(noise), update, None, None

        core = jax.custom_vjp(lambda *args: forward(*args)[0])
        core.defvjp(forward, backward)
        return core(theta, draw_noise(estimator, self.noise_source, theta, key), state, data, poison)


def imle(problem: Problem, estimator: Estimator, **options: Any) -> IMLEFunction:
    """The differentiable JAX function of ``problem`` under ``estimator``; see :class:`IMLEFunction`.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)``, ``STE()``, ... (docs/estimators.md).
        **options: ``validate_args`` (check the scores and data, see the module docstring,
            and give NaN gradients to rows whose ``dL/dz`` is not finite; False skips
            both), the oracle's options (:class:`~imle_solvers.options.OracleOptions`, or
            its fields as keywords: ``backend``, ``n_jobs``, ``parallel_backend``,
            ``chunk_size``, ``time_limit``, ``on_failure``, ``cache``) and ``noise_source``
            (``"native"``: ``jax.random`` from the key, inside ``jit``; ``"numpy"``:
            ``numpy.random.default_rng(numpy_seed(key))`` on the host, identical in torch,
            JAX and Keras).
    """
    return IMLEFunction(problem, estimator, **options)


