"""JAX binding: the step (:mod:`imle_solvers.step`) as a pure function of ``(theta, key[, state])``.

The step runs on JAX arrays inside a ``jax.custom_vjp``, so it is traced, compiled and
vmapped with the rest of the model; an eager call runs it compiled too (one ``jax.jit``
per shape and plan). What is JAX's own here: the ``custom_vjp``, the random source (the
key, drawn with ``jax.random``, or ``numpy.random.default_rng(numpy_seed(key))`` with
``noise_source="numpy"``), and the adaptive state as a pytree.

An array-native solver (top-k; the grid's Bellman-Ford, which ``backend="auto"`` picks
for JAX, whose arrays are always traced here, and which the layer then reports) runs as
JAX ops: such a step never leaves the device, checks included (inside a trace a bad row
is NaN), so it exports with ``jax.export``. Other solvers are reached through one
``jax.pure_callback`` per solve; under ``jax.vmap`` all mapped calls are solved in one
oracle call. See docs/frameworks.md.

Adaptive state (AIMLE): an :class:`~imle_solvers.AdaptiveState` passed in; its update
is only known in the backward pass, so it comes back as the *cotangent of the state*:
:func:`value_and_grad` returns the next state as a value. Mapped calls (``jax.vmap``)
sharing one state move it once, by their mean update.

Failure policy: with ``on_failure`` other than ``"raise"`` a call returns ``(z, status)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from . import _binding
from .errors import InvalidInputError, missing_dependency
from .estimators import AdaptiveState, Estimator
from .losses import FenchelYoung, LossDefinition, SPOPlus, check_reduction, perturbation, reduce
from .noise import JaxSource
from .options import NoiseOptions, OracleOptions, take_options
from .problems import Problem
from .step import LossStep, Plan, Step, StepHolder, check_estimator

try:
    import jax
    import jax.numpy as jnp

    from .frameworks.jax import FRAMEWORK, unwrapping_errors
except ImportError as error:  # pragma: no cover - exercised without jax installed
    raise missing_dependency("jax", "jax") from error

__all__ = ["FenchelYoungLoss", "IMLEFunction", "SPOPlusLoss", "apply_state_update", "imle", "numpy_seed", "value_and_grad"]

State = AdaptiveState
_NOISE_OPTIONS = ("noise_source",)  # no seed: every call takes a key


def numpy_seed(key: jax.Array) -> int:
    """The numpy seed a call with ``key`` draws its noise from when ``noise_source="numpy"``
    (``key`` must be concrete)."""
    return _binding.seed_from_words(np.asarray(_seed_words(key)))


def _seed_words(key: jax.Array) -> jax.Array:
    return jax.random.bits(key, (2,), jnp.uint32)


def apply_state_update(state: State, update: State) -> State:
    """The next state: ``state + update``, ``update`` being the state's cotangent."""
    return jax.tree.map(jnp.add, state, update)


def value_and_grad(fun: Any, argnums: int | tuple[int, ...] = 0, *, state_argnum: int = 1) -> Any:
    """``jax.value_and_grad`` of ``fun``, a loss whose argument ``state_argnum`` is an adaptive
    estimator's state: ``(value, next_state), grads``, the next state returned as a value
    (as ``has_aux=True`` returns its aux), ``grads`` those of ``argnums``.

    ``next_state`` is ``state`` plus its cotangent (:func:`apply_state_update`): a state used
    in one call per step moves as that call's backward pass says; unused, it stays."""
    many = not isinstance(argnums, int)
    wanted = tuple(argnums) if many else (argnums,)

    def value_grads_state(*args: Any, **kwargs: Any) -> tuple[tuple[Any, State], Any]:
        value, grads = jax.value_and_grad(fun, argnums=(*wanted, state_argnum))(*args, **kwargs)
        state = apply_state_update(args[state_argnum], grads[-1])
        return (value, state), (grads[:-1] if many else grads[0])

    return value_grads_state


def _oracle(owner: str, problem: Problem, options: dict[str, Any], oracle_options: OracleOptions | None,
            noise_options: NoiseOptions | None) -> tuple[Any, str]:
    """The oracle of a JAX layer or loss, its ``backend="auto"`` resolved as a traced JAX call
    resolves it (so the backend reported is the one that runs), and the noise source."""
    oracle, noise, _ = take_options(owner, options, oracle_options, noise_options, noise=_NOISE_OPTIONS)
    built = oracle.oracle(problem)
    traced = built.solver_for_framework("jax", stays=True)
    if traced is not built.solver:
        built = dataclasses.replace(oracle, backend=traced.backend).oracle(problem)
    return built, noise.noise_source


def _draw(estimator: Estimator, noise_source: str, theta: jax.Array, key: jax.Array) -> jax.Array | None:
    """A call's noise ``(B, samples, marginal_samples, *shape)`` from ``key``, or None."""
    if estimator.noise is None:
        return None
    if noise_source == "native":
        return estimator.draw(theta, JaxSource(key, theta.dtype))
    shape = _binding.noise_shape(estimator, theta.shape)
    host = _binding.NumpyNoiseOfKeys(estimator, theta.shape, theta.dtype)
    return FRAMEWORK.host_call(host, [_seed_words(key)], [(shape, theta.dtype)])[0]


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
        oracle, self.noise_source = _oracle("imle", problem, options, oracle_options, noise_options)
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
        return None if initial is None else _as_state(initial)

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
        theta = theta if isinstance(theta, jax.Array) else jnp.asarray(theta)
        # checked without its tangent: under an eager grad the values are concrete then
        plan, data, poison = self.step.prepare(jax.lax.stop_gradient(theta), data)
        state = None if state is None else _as_state(state)
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
            update = None if state is None else jax.tree.map(_one_update, new, state)
            noise = residuals.noise
            # noise, data and poison carry no gradient (None: a zero cotangent, whatever the dtypes)
            return grad, None if noise is None else jnp.zeros_like(noise), update, None, None

        core = jax.custom_vjp(lambda *args: forward(*args)[0])
        core.defvjp(forward, backward)
        return core(theta, _draw(estimator, self.noise_source, theta, key), state, data, poison)


@jax.custom_batching.custom_vmap
def _one_update(new: jax.Array, old: jax.Array) -> jax.Array:
    """The cotangent that moves a state field from ``old`` to ``new``."""
    return jnp.asarray(new - old, old.dtype)


@_one_update.def_vmap
def _one_update_mapped(size: int, batched: list[bool], new: jax.Array, old: jax.Array) -> tuple[jax.Array, bool]:
    # The mapped calls of a jax.vmap share one state (old not mapped): JAX adds their
    # cotangents, so each gives 1/size of the mean update, and the state takes one step.
    if batched[0] and not batched[1]:
        mean = jnp.mean(jnp.asarray(new - old, old.dtype), axis=0)
        return jnp.broadcast_to(mean / size, new.shape), True
    old = old if batched[1] or not batched[0] else jnp.broadcast_to(old, new.shape)
    return jnp.asarray(new - old, old.dtype), batched[0] or batched[1]


def _as_state(state: AdaptiveState | dict[str, Any]) -> State:
    """An adaptive state whose fields are float scalars (traced ones stay traced); a dict
    (a ``state_dict()``) is taken too."""
    values = state._asdict() if isinstance(state, AdaptiveState) else dict(state)
    return AdaptiveState(**{name: jnp.asarray(value, dtype=jnp.result_type(float)) for name, value in values.items()})


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


# --- losses (imle_solvers.losses) ------------------------------------------------------


class _Loss(StepHolder):
    """A loss over the step (:class:`~imle_solvers.step.LossStep`) as a JAX function, reduced
    over the batch, differentiable through a ``jax.custom_vjp``."""

    def __init__(self, problem: Problem, definition: LossDefinition, reduction: str, validate_args: bool,
                 oracle_options: OracleOptions | None, noise_options: NoiseOptions | None, options: dict) -> None:
        owner = type(self).__name__
        oracle, self.noise_source = _oracle(owner, problem, options, oracle_options, noise_options)
        self.problem = problem
        self.reduction = check_reduction(owner, reduction)
        self.step = LossStep(oracle, definition, validate_args)
        self._compiled = jax.jit(self._values, static_argnums=0)

    def _loss(self, prediction: Any, targets: dict[str, Any], data: dict[str, Any], key: Any = None) -> jax.Array:
        prediction = jnp.asarray(prediction)
        fixed = jax.lax.stop_gradient(prediction)
        plan, targets, data, poison = self.step.prepare_loss(fixed, targets, data)
        perturbation = self.step.definition.perturbation
        noise = None if perturbation is None else _draw(perturbation, self.noise_source, fixed, key)
        return reduce(unwrapping_errors(self._compiled, plan, prediction, targets, noise, data, poison), self.reduction)

    def _values(self, plan: Plan, prediction: jax.Array, *inputs: Any) -> jax.Array:
        def forward(prediction: jax.Array, *inputs: Any) -> tuple[jax.Array, tuple]:
            result = self.step.values(plan, prediction, *inputs)
            return result.value, (result.gradient, inputs)

        def backward(saved: tuple, grad_out: jax.Array) -> tuple:
            gradient, inputs = saved
            # targets, noise, data and poison carry no gradient
            zeros = tuple(None if isinstance(x, dict) and not x else jax.tree.map(jnp.zeros_like, x) for x in inputs)
            return (jnp.reshape(grad_out, (-1, *(1,) * (gradient.ndim - 1))) * gradient, *zeros)

        core = jax.custom_vjp(lambda *args: forward(*args)[0])
        core.defvjp(forward, backward)
        return core(prediction, *inputs)


class FenchelYoungLoss(_Loss):
    """The perturbed Fenchel-Young loss (:class:`imle_solvers.losses.FenchelYoung`, whose
    docstring lists the arguments) as a JAX function: ``loss_fn(theta, y_true, key, **data)``,
    ``key`` a PRNG key (``noise_source="numpy"``: ``default_rng(numpy_seed(key))``)."""

    def __init__(self, problem: Problem, noise: Any = None, sigma: float = 1.0, samples: int = 1,
                 reduction: str = "mean", multiplicative: bool = False, *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, noise_options: NoiseOptions | None = None,
                 **options: Any) -> None:
        definition = FenchelYoung(perturbation(noise, sigma, samples, multiplicative))
        super().__init__(problem, definition, reduction, validate_args, oracle_options, noise_options, options)
        self.sigma, self.multiplicative = sigma, multiplicative

    def __call__(self, theta: Any, y_true: Any, key: jax.Array, **data: Any) -> jax.Array:
        return self._loss(theta, {"y_true": y_true}, data, key)


class SPOPlusLoss(_Loss):
    """SPO+ (:class:`imle_solvers.losses.SPOPlus`) as a JAX function: ``loss_fn(c_hat, c,
    w_true=None, z_true=None, **data)``."""

    def __init__(self, problem: Problem, reduction: str = "mean", *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, **options: Any) -> None:
        super().__init__(problem, SPOPlus(), reduction, validate_args, oracle_options, None, options)

    def __call__(self, c_hat: Any, c: Any, w_true: Any = None, z_true: Any = None, **data: Any) -> jax.Array:
        return self._loss(c_hat, {"c": c, "w_true": w_true, "z_true": z_true}, data)
