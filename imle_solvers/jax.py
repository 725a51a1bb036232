"""JAX binding: the estimators as a pure function of ``(theta, key[, state])``.

The estimator's math (:mod:`imle_solvers.estimators`) runs on JAX arrays inside a
``jax.custom_vjp``, so it is traced, compiled and vmapped with the rest of the model;
an eager call runs it compiled too (one ``jax.jit`` per shape). Noise is drawn from
the key with ``jax.random`` (``noise_source="native"``, the default). An array-native
solver (top-k; the grid shortest path's Bellman-Ford, which ``backend="auto"`` picks
for JAX, whose arrays are always traced here) runs as JAX ops too: a step of such a
problem never leaves the device and its jaxpr holds no callback. Other solvers are
reached through one ``jax.pure_callback`` per solve; under ``jax.vmap`` all mapped
calls reach the host in that one callback and are solved in one oracle call.

Randomness: with ``noise_source="numpy"`` a call's noise comes from
``numpy.random.default_rng(numpy_seed(key))`` (a host callback), so the same key gives
the same noise as a torch or Keras layer built with ``seed=numpy_seed(key)`` and
``noise_source="numpy"`` (first call).

Adaptive state (AIMLE): an :class:`~imle_solvers.AdaptiveState` (a named tuple, hence
a pytree) of scalars passed in and updated functionally. The update is only known in
the backward pass, so it comes back as the *cotangent of the state argument*, to be
added to the state::

    f = imle(problem, AIMLE(...))
    state = f.initial_state()
    (g_params, g_state) = jax.grad(loss, argnums=(0, 1))(params, state, key)
    state = apply_state_update(state, g_state)   # state + g_state

An unused output (no backward pass) leaves the cotangent zero, i.e. the state unchanged.

Failure policy: with ``on_failure`` other than ``"raise"`` a call returns ``(z, status)``
(see :mod:`imle_solvers.failures`); the statuses come back from the host with the states.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _binding
from ._binding import NoiseSource
from .errors import InvalidInputError, missing_dependency
from .estimators import AdaptiveState, Estimator, Residuals
from .failures import OnFailure, gradient_with_status, sample_with_status
from .noise import JaxSource
from .instances import check_values, invalid_on_device, per_instance
from .oracle import MAPOracle
from .problems import Problem
from .problems.base import check_batch_shape, check_finite, non_finite_error

try:
    import jax
    import jax.numpy as jnp
except ImportError as error:  # pragma: no cover - exercised without jax installed
    raise missing_dependency("jax", "jax") from error

__all__ = ["FenchelYoungLoss", "IMLEFunction", "SPOPlusLoss", "apply_state_update", "imle", "numpy_seed"]

State = AdaptiveState


def numpy_seed(key: jax.Array) -> int:
    """The numpy seed a call with ``key`` draws its noise from when ``noise_source="numpy"``
    (``key`` must be concrete)."""
    return _binding.seed_from_words(np.asarray(_seed_words(key)))


def _seed_words(key: jax.Array) -> jax.Array:
    return jax.random.bits(key, (2,), jnp.uint32)


def apply_state_update(state: State, update: State) -> State:
    """The next state: ``state + update``, ``update`` being the state's cotangent."""
    return jax.tree.map(jnp.add, state, update)


class IMLEFunction:
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

    def __init__(
        self,
        problem: Problem,
        estimator: Estimator,
        backend: str = "auto",
        noise_source: NoiseSource = "native",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
    ) -> None:
        _binding.check_estimator("imle", estimator)
        self.problem = problem
        self.estimator = estimator
        self.noise_source = _binding.check_noise_source(noise_source)
        self.validate_args = validate_args
        self.oracle = MAPOracle(
            problem,
            backend=backend,
            n_jobs=n_jobs,
            parallel_backend=parallel_backend,
            chunk_size=chunk_size,
            time_limit=time_limit,
            on_failure=on_failure,
            cache=cache,
        )
        self._with_status = on_failure != "raise"
        self.state_fields = _binding.state_fields(estimator)
        core = jax.custom_vjp(self._primal)
        core.defvjp(self._forward, self._backward)
        self._core = core
        # Compiled once per shape, so that an eager call costs one dispatch rather than one
        # per op (inside the caller's own jit they are inlined).
        self._compiled_sample = jax.jit(self._sample)
        self._compiled_map = jax.jit(self._map)

    def __repr__(self) -> str:
        return (
            f"IMLEFunction({self.problem!r}, {self.estimator!r}, backend={self.oracle.solver.backend!r}, "
            f"noise_source={self.noise_source!r})"
        )

    @property
    def failures(self) -> Any:
        """Failed solves of instances by reason, since built (``oracle.failures``, a ``Counter``)."""
        return self.oracle.failures

    def initial_state(self) -> State | None:
        """The estimator's initial state, its fields float scalars (None if stateless)."""
        initial = self.estimator.initial_state()
        return None if initial is None else _as_state(initial)

    def __call__(
        self, theta: jax.Array, key: jax.Array, state: State | None = None, **data: Any
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Perturb-and-MAP samples of ``theta`` ``(B, *shape)`` with the estimator's gradient;
        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)``, carrying no gradient."""
        theta = jnp.asarray(theta)
        check_batch_shape(theta.shape, self.problem.shape, "theta")
        if (state is None) != (not self.state_fields):
            raise InvalidInputError(
                f"{type(self.estimator).__name__}: state must be "
                + ("passed (see initial_state())" if self.state_fields else "None: the estimator is stateless")
            )
        self._check_theta(theta)
        data = self._instance_data(data, theta)
        state = None if state is None else _as_state(state)
        return _unwrapping_errors(self._compiled_sample, theta, key, state, data)

    def map(self, theta: jax.Array, **data: Any) -> jax.Array | tuple[jax.Array, jax.Array]:
        """The MAP states ``(B, *shape)`` of ``theta`` ``(B, *shape)`` (and ``data``, as for
        calls); no gradient flows."""
        theta = jax.lax.stop_gradient(jnp.asarray(theta))
        check_batch_shape(theta.shape, self.problem.shape, "theta")
        self._check_theta(theta)
        return _unwrapping_errors(self._compiled_map, theta, self._instance_data(data, theta))

    # --- pieces -------------------------------------------------------------------------

    def _sample(self, theta: jax.Array, key: jax.Array, state: State | None, data: dict[str, jax.Array]) -> jax.Array:
        return self._core(theta, self._draw(theta, key), state, data)

    def _map(self, theta: jax.Array, data: dict[str, jax.Array]) -> jax.Array | tuple[jax.Array, jax.Array]:
        return self._solve_with_status(theta, data) if self._with_status else self._solve(theta, data)

    def _instance_data(self, data: dict[str, Any], theta: jax.Array) -> dict[str, jax.Array]:
        """The call's data as JAX arrays, checked; traced values are checked on the host
        through a callback when ``validate_args`` (a concrete call reads them directly)."""
        data = _binding.instance_data(self.oracle, data, theta, self.validate_args)
        if self.validate_args and any(isinstance(v, jax.core.Tracer) for v in data.values()):
            check = functools.partial(_recording_errors, _check_data_on_host, self.problem, tuple(data))
            bad = invalid_on_device(self.problem, data)
            if bad is None:  # the problem checks on the host only
                jax.debug.callback(check, *data.values())
            else:  # the host is called only when an instance is bad (under vmap: always, and it checks)
                jax.lax.cond(jnp.any(bad), lambda *v: jax.debug.callback(check, *v), _nothing, *data.values())
        return data

    def _solves(self, data: dict[str, jax.Array], batch: int) -> tuple[Callable, Callable]:
        """The estimator's solves, each row with its instance's data (see :mod:`imle_solvers.instances`)."""
        return per_instance(self._naming_solve(batch), data, batch), per_instance(self._solve_with_status, data, batch)

    def _naming_solve(self, batch: int) -> Callable:
        """:meth:`_solve` for a batch of ``batch`` instances, whose errors name the instance."""
        return lambda x, data: self._solve(x, data, per=_binding.rows_per_instance(x, batch))

    def _draw(self, theta: jax.Array, key: jax.Array) -> jax.Array | None:
        """The call's noise ``(B, samples, marginal_samples, *shape)``, or None."""
        if self.estimator.noise is None:
            return None
        if self.noise_source == "native":
            return self.estimator.draw(theta, JaxSource(key, theta.dtype))
        spec = jax.ShapeDtypeStruct(_binding.noise_shape(self.estimator, theta.shape), theta.dtype)
        host = functools.partial(_recording_errors, _NumpyNoise(self.estimator, theta.shape, theta.dtype))
        return jax.pure_callback(host, spec, _seed_words(key), vmap_method="broadcast_all")

    def _solve(self, theta: jax.Array, data: dict[str, jax.Array], per: int = 1) -> jax.Array:
        """MAP states of ``(N, *shape)`` with their rows' ``data``: as JAX ops when the solver
        is array-native, else on the host (``per``: rows per instance, which a failure's
        error then names, see :func:`imle_solvers._binding.instance_error`)."""
        if self.oracle.solver_for(theta).runs_on("jax"):
            return self.oracle(theta, validate=False, **data)
        spec = jax.ShapeDtypeStruct(theta.shape, theta.dtype)
        wrap = _recording_errors if per == 1 else _binding.InstanceErrors(self.oracle, per, _recording_errors)
        host = _binding.HostSolve(self.oracle, tuple(data), wrap).states
        return jax.pure_callback(host, spec, theta, *data.values(), vmap_method="broadcast_all")

    def _solve_with_status(self, theta: jax.Array, data: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """:meth:`_solve`, and the ``(N,)`` statuses (see :mod:`imle_solvers.failures`)."""
        if self.oracle.solver_for(theta).runs_on("jax"):
            return self.oracle.solve(theta, validate=False, **data)
        specs = (jax.ShapeDtypeStruct(theta.shape, theta.dtype), jax.ShapeDtypeStruct(theta.shape[:1], jnp.int8))
        host = _binding.HostSolve(self.oracle, tuple(data), _recording_errors)
        return jax.pure_callback(host, specs, theta, *data.values(), vmap_method="broadcast_all")

    def _check_theta(self, theta: jax.Array) -> None:
        """Raise naming the first non-finite batch index of ``theta``, if ``validate_args``. A
        traced ``theta`` is checked on the device; only a failing check calls the host."""
        if not self.validate_args or theta.shape[0] == 0:
            return
        if isinstance(theta, jax.core.Tracer):  # under jit: nothing runs here; under grad: it runs
            _unwrapping_errors(_check_theta_on_device, theta)
        else:
            check_finite(theta, "theta")

    # --- custom_vjp -----------------------------------------------------------------

    def _primal(self, theta: jax.Array, noise: jax.Array | None, state: State | None, data: dict) -> Any:
        return self._forward(theta, noise, state, data)[0]

    def _forward(
        self, theta: jax.Array, noise: jax.Array | None, state: State | None, data: dict[str, jax.Array]
    ) -> tuple[Any, tuple]:
        sign = self.problem.sign
        solve, solve_with_status = self._solves(data, theta.shape[0])
        if self._with_status:
            z, status, residuals = sample_with_status(self.estimator, theta, noise, solve_with_status, sign)
            return (z, status), (self._residual_arrays(residuals), state, status, data)
        z, residuals = self.estimator.sample_with(theta, noise, solve, sign=sign)
        return z, (self._residual_arrays(residuals), state, None, data)

    def _residual_arrays(self, residuals: Residuals) -> dict[str, Any]:
        """The residuals' arrays (a pytree, as custom_vjp keeps them); the type, whatever the
        estimator's (a subclass may carry more), and the sign are kept to rebuild them."""
        self._residual_type = type(residuals)
        return {f.name: getattr(residuals, f.name) for f in dataclasses.fields(residuals) if f.name != "sign"}

    def _backward(self, saved: tuple, cotangent: Any) -> tuple[jax.Array, jax.Array | None, State | None, None]:
        arrays, state, status, data = saved
        grad_z = cotangent[0] if self._with_status else cotangent
        residuals = self._residual_type(**arrays, sign=self.problem.sign)
        noise = residuals.noise
        solve, solve_with_status = self._solves(data, residuals.theta.shape[0])
        if status is None:
            grad, new = self.estimator.gradient(residuals, grad_z, solve, state)
        else:
            grad, new = gradient_with_status(self.estimator, residuals, grad_z, solve_with_status, state, status)
        if self.validate_args:
            grad = _binding.nan_where_not_finite(grad_z, grad)
        update = None if state is None else jax.tree.map(lambda n, o: jnp.asarray(n - o, dtype=o.dtype), new, state)
        # the data carry no gradient (None: a zero cotangent, whatever their dtypes)
        return grad, None if noise is None else jnp.zeros_like(noise), update, None


def _as_state(state: AdaptiveState | dict[str, Any]) -> State:
    """An adaptive state whose fields are float scalars (traced ones stay traced); a dict
    (a ``state_dict()``) is taken too."""
    values = state._asdict() if isinstance(state, AdaptiveState) else dict(state)
    return AdaptiveState(**{name: jnp.asarray(value, dtype=jnp.result_type(float)) for name, value in values.items()})


class _NumpyNoise:
    """The host side of ``noise_source="numpy"``: one numpy generator per group (mapped call)."""

    def __init__(self, estimator: Estimator, theta_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.estimator, self.theta_shape, self.dtype = estimator, theta_shape, dtype

    def __call__(self, words: np.ndarray) -> np.ndarray:
        words = np.asarray(words)
        lead = words.shape[:-1]
        generators = [_binding.generator(_binding.seed_from_words(w)) for w in words.reshape(-1, 2)]
        noise = _binding.numpy_noise(self.estimator, self.theta_shape, self.dtype, generators)
        return noise.reshape(*lead, *noise.shape[1:])


@jax.jit  # one definition, so that the check compiles once per shape, also under eager grad
def _check_theta_on_device(theta: jax.Array) -> None:
    rows = jnp.reshape(theta, (theta.shape[0], -1))
    finite = jnp.isfinite(rows)
    all_finite = jnp.all(finite)
    # the host is called only when a value is not finite (under vmap: always, and it checks)
    jax.lax.cond(all_finite, _nothing, _report_non_finite, all_finite, finite, rows)


def _nothing(*_: jax.Array) -> None:
    return None


def _check_data_on_host(problem: Problem, names: tuple[str, ...], *values: np.ndarray) -> None:
    """Host side of the traced check of per-instance data; under ``jax.vmap`` the values gain
    leading axes (each mapped call is checked as a batch of its own)."""
    fields = problem.instance_fields
    arrays = {name: np.asarray(value) for name, value in zip(names, values)}
    lead = next(iter(arrays.values())).shape[: -len(fields[names[0]].shape) - 1]
    for group in np.ndindex(*lead):
        check_values(problem, {name: value[group] for name, value in arrays.items()})


def _report_non_finite(all_finite: jax.Array, finite: jax.Array, rows: jax.Array) -> None:
    index = jnp.argmin(jnp.all(finite, axis=1))
    report = functools.partial(_recording_errors, _raise_if_not_finite)
    jax.debug.callback(report, all_finite, index, rows[index, jnp.argmin(finite[index])])


def _raise_if_not_finite(all_finite: np.ndarray, index: np.ndarray, value: np.ndarray) -> None:
    """Host side of the traced check of ``theta``; under ``jax.vmap`` the arguments gain leading axes."""
    all_finite, index, value = np.asarray(all_finite), np.asarray(index), np.asarray(value)
    if not all_finite.all():
        first = np.unravel_index(np.argmin(all_finite), all_finite.shape)
        raise non_finite_error("theta", int(index[first]), float(value[first]))


# --- errors: ours, not JAX's wrapping of them ---------------------------------------
#
# An exception raised in a host callback reaches the caller as a JaxRuntimeError (or, under
# some transformations, another type) whose message is XLA's "INTERNAL: CpuCallback error
# calling callback: Traceback ...", our message last; and JAX logs the traceback before.
# The host side therefore records what it raises: an eager call re-raises the recorded
# original, and JAX's log of it is dropped (the exception carries the same traceback).
# Recorded errors are matched to the wrapping error by their text, not by thread: on an
# accelerator the callback runs on another thread than the call.

_RECENT_ERRORS: collections.deque[BaseException] = collections.deque(maxlen=8)  # bounded: a jit's are never taken
_RECENT_LOCK = threading.Lock()


def _recording_errors(host: Callable[..., Any], *args: Any) -> Any:
    """``host(*args)``, recording the exception it raises (see above)."""
    try:
        return host(*args)
    except Exception as error:
        with _RECENT_LOCK:
            _RECENT_ERRORS.append(error)
        raise


def _recorded(error: BaseException | None) -> bool:
    with _RECENT_LOCK:
        return any(error is e for e in _RECENT_ERRORS)


def _take_original(wrapped: BaseException) -> BaseException | None:
    """The recorded exception that ``wrapped`` wraps (the latest whose ``Type: message``
    its message holds), forgotten once taken; None if there is none."""
    text = str(wrapped)
    with _RECENT_LOCK:
        for error in reversed(_RECENT_ERRORS):
            if f"{type(error).__name__}: {error}" in text:
                _RECENT_ERRORS.remove(error)
                return error
    return None


def _unwrapping_errors(compiled: Callable[..., jax.Array], *args: Any) -> jax.Array:
    """``compiled(*args)``, run to completion, raising a host callback's own exception
    (e.g. a :class:`~imle_solvers.errors.SolverError` with its ``index``) instead of
    JAX's wrapping of it. Under an outer ``jax.jit`` (traced ``args``) nothing runs here,
    and errors arrive as JAX raises them."""
    try:
        # block: with asynchronous dispatch the error would otherwise surface later, elsewhere
        return jax.block_until_ready(compiled(*args))
    except Exception as wrapped:
        original = _take_original(wrapped)
        if original is None:
            raise
    # raised outside the except block: no "During handling of the above exception" wrapper
    raise original


class _DropRecordedErrors(logging.Filter):
    """Drops JAX's log of an exception our host side raised: it reaches the caller anyway,
    with the same traceback, and was printed twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _recorded(record.exc_info[1]))


# the loggers of jax.pure_callback's and jax.debug.callback's failures (jax/_src/callback.py,
# jax/_src/debugging.py); a filter on a logger sees only that logger's own records
for _name in ("jax._src.callback", "jax._src.debugging"):
    logging.getLogger(_name).addFilter(_DropRecordedErrors())
del _name


def imle(
    problem: Problem,
    estimator: Estimator,
    backend: str = "auto",
    noise_source: NoiseSource = "native",
    validate_args: bool = True,
    n_jobs: int = 1,
    parallel_backend: str = "loky",
    chunk_size: int | str = "auto",
    time_limit: float | None = None,
    on_failure: OnFailure = "raise",
    cache: Any = None,
) -> IMLEFunction:
    """The differentiable JAX function of ``problem`` under ``estimator``; see :class:`IMLEFunction`.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)`` or ``STE(...)``.
        backend: solver name (see ``imle_solvers.list_solvers``) or ``"auto"``.
        noise_source: ``"native"`` (default) draws from the key with ``jax.random``, inside
            ``jit``; ``"numpy"`` draws on the host from ``numpy.random.default_rng(numpy_seed(key))``,
            identical in torch, JAX and Keras.
        validate_args: check that ``theta`` is finite (under ``jit`` on the device; only a
            failing check calls the host, through ``jax.debug.callback``), and give NaN
            gradients to rows whose ``dL/dz`` is not finite; False skips both.
        n_jobs, parallel_backend, chunk_size, time_limit, on_failure, cache: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md and docs/failures.md).
    """
    return IMLEFunction(
        problem,
        estimator,
        backend=backend,
        noise_source=noise_source,
        validate_args=validate_args,
        n_jobs=n_jobs,
        parallel_backend=parallel_backend,
        chunk_size=chunk_size,
        time_limit=time_limit,
        on_failure=on_failure,
        cache=cache,
    )


# --- losses (imle_solvers.losses) ------------------------------------------------------


class _OracleLoss:
    """What both losses share: an :class:`IMLEFunction` whose solves, draws and checks they
    use (its oracle has the failure policy and the cache), the reduction, and a
    ``jax.custom_vjp`` over :mod:`imle_solvers.losses`."""

    def __init__(self, problem: Problem, estimator: Estimator, reduction: str, options: dict[str, Any]) -> None:
        from .losses import check_reduction

        self.problem = problem
        self.reduction = check_reduction(type(self).__name__, reduction)
        self._function = IMLEFunction(problem, estimator, **options)
        self.oracle = self._function.oracle
        core = jax.custom_vjp(self._primal)
        core.defvjp(self._forward, self._backward)
        self._core = core

    @property
    def failures(self) -> Any:
        """Failed solves by reason, since built (``oracle.failures``, a ``Counter``)."""
        return self.oracle.failures

    def _prepare(self, prediction: Any, data: dict[str, Any]) -> tuple[jax.Array, dict[str, jax.Array]]:
        prediction = jnp.asarray(prediction)
        check_batch_shape(prediction.shape, self.problem.shape, "prediction")
        self._function._check_theta(prediction)
        return prediction, self._function._instance_data(data, prediction)

    def _values(self, prediction: jax.Array, inputs: tuple, data: dict) -> jax.Array:
        """The reduced loss; a failing solve's own error (e.g. a ``SolverError`` naming the
        instance) when called outside ``jit``."""
        from .losses import reduce

        return reduce(_unwrapping_errors(self._core, prediction, inputs, data), self.reduction)

    def _primal(self, prediction: jax.Array, inputs: tuple, data: dict) -> jax.Array:
        return self._forward(prediction, inputs, data)[0]

    def _forward(self, prediction: jax.Array, inputs: tuple, data: dict) -> tuple[jax.Array, tuple]:
        from .losses import under_policy

        batch, function = prediction.shape[0], self._function
        solve = per_instance(function._naming_solve(batch), data, batch)
        with_status = per_instance(function._solve_with_status, data, batch)
        result = under_policy(lambda s: self._compute(prediction, inputs, s), prediction, solve, with_status,
                              self.oracle.on_failure)
        return result.value, (result.gradient, inputs)

    def _backward(self, saved: tuple, grad_out: jax.Array) -> tuple[jax.Array, tuple, None]:
        gradient, inputs = saved
        grad = jnp.reshape(grad_out, (-1, *(1,) * (gradient.ndim - 1))) * gradient
        # the other inputs (targets, noise) carry no gradient
        return grad, jax.tree.map(jnp.zeros_like, inputs), None


class FenchelYoungLoss(_OracleLoss):
    """The perturbed Fenchel-Young loss (Berthet et al., 2020) as a JAX function:
    ``loss_fn(theta, y_true, key, **data)``, ``theta`` and ``y_true`` ``(B, *problem.shape)``,
    ``key`` a PRNG key, reduced over the batch (``reduction``: ``"mean"``, ``"sum"``, or
    ``"none"`` for ``(B,)``); differentiable with respect to ``theta`` (a ``jax.custom_vjp``
    whose gradient is ``y_sigma(theta) - y_true``, ``y_true - y_sigma(w)`` for a min problem).

    Args: as :class:`imle_solvers.torch.FenchelYoungLoss` (``noise``, ``sigma``, ``samples``,
    ``reduction``, ``multiplicative``, and the options of :func:`imle`, ``on_failure`` and
    ``cache`` included); ``noise_source="numpy"`` draws from
    ``numpy.random.default_rng(numpy_seed(key))``, as the torch and Keras losses with that seed.
    """

    def __init__(
        self,
        problem: Problem,
        noise: Any = None,
        sigma: float = 1.0,
        samples: int = 1,
        reduction: str = "mean",
        backend: str = "auto",
        noise_source: NoiseSource = "native",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
        multiplicative: bool = False,
    ) -> None:
        from .losses import perturbation

        estimator = perturbation(noise, sigma, samples, multiplicative)
        options = _binding.options_of(locals(), (*_binding.ORACLE_OPTIONS, "noise_source", "validate_args"))
        super().__init__(problem, estimator, reduction, options)
        self.sigma, self.multiplicative = sigma, multiplicative

    def __call__(self, theta: Any, y_true: Any, key: jax.Array, **data: Any) -> jax.Array:
        theta, data = self._prepare(theta, data)
        y_true = jnp.asarray(y_true, dtype=theta.dtype)
        noise = self._function._draw(jax.lax.stop_gradient(theta), key)
        return self._values(theta, (y_true, noise), data)

    def _compute(self, theta: jax.Array, inputs: tuple, solve: Callable) -> Any:
        from .losses import fenchel_young

        y_true, noise = inputs
        return fenchel_young(theta, y_true, noise, solve, sign=self.problem.sign, sigma=self.sigma,
                             multiplicative=self.multiplicative)


class SPOPlusLoss(_OracleLoss):
    """SPO+ (Elmachtoub and Grigas) as a JAX function: ``loss_fn(c_hat, c, w_true=None,
    z_true=None, **data)`` (see :class:`imle_solvers.torch.SPOPlusLoss`), differentiable with
    respect to ``c_hat`` (a ``jax.custom_vjp`` giving the subgradient ``2 (w*(c) - w*(2 c_hat - c))``
    for a min problem). Options as :class:`FenchelYoungLoss`'s (no noise), ``on_failure`` and
    ``cache`` included."""

    def __init__(
        self,
        problem: Problem,
        reduction: str = "mean",
        backend: str = "auto",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
    ) -> None:
        from .estimators import STE

        options = _binding.options_of(locals(), (*_binding.ORACLE_OPTIONS, "validate_args"))
        super().__init__(problem, STE(), reduction, options)

    def __call__(self, c_hat: Any, c: Any, w_true: Any = None, z_true: Any = None, **data: Any) -> jax.Array:
        c_hat, data = self._prepare(c_hat, data)
        inputs = tuple(None if x is None else jnp.asarray(x, dtype=c_hat.dtype) for x in (c, w_true, z_true))
        return self._values(c_hat, inputs, data)

    def _compute(self, c_hat: jax.Array, inputs: tuple, solve: Callable) -> Any:
        from .losses import spo_plus

        c, w_true, z_true = inputs
        return spo_plus(c_hat, c, solve, sign=self.problem.sign, w_true=w_true, z_true=z_true)
