"""What the three framework bindings share: where noise comes from, how an estimator's
state travels as a vector, and the host side of solver callbacks.

Every binding runs the estimator's math (:mod:`imle_solvers.estimators`) on its own
arrays. Only two things may leave the framework: a solver that is not array-native
(through ``jax.pure_callback`` or ``tf.numpy_function``; torch copies to the host) and,
with ``noise_source="numpy"``, the noise draw.

Noise sources (the ``noise_source`` argument of every binding):

- ``"native"`` (default): the framework's own generator draws on the scores' device
  and in their dtype (torch: a ``torch.Generator`` per device, or torch's default one
  when the layer has no seed; JAX: the key passed in; Keras: stateless TensorFlow draws
  keyed by the layer's weight ``noise_state``).
- ``"numpy"``: every call draws from a ``numpy.random.Generator`` on the host, so one
  seed gives the same noise, hence the same ``z`` and gradients, in every framework.
  The torch and Keras layers make one ``generator(seed)`` and draw each call from it in
  turn; a JAX call makes a fresh one from ``seed_from_words(bits(key))``, see
  :func:`imle_solvers.jax.numpy_seed`.

Arrays given to callbacks may carry leading axes in front of the batch (the calls of
a ``jax.vmap``, each a *group*); :func:`solve_on_host` solves all groups in one oracle
call and :func:`numpy_noise` draws each group's noise from its own generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ._array import Array, array_namespace, device, state_float
from .errors import InvalidInputError, SolverError
from .estimators import Estimator, draw_noise
from .failures import batch_size
from .instances import InstanceData, check_data, check_values, for_framework, per_instance
from .oracle import MAPOracle

NoiseSource = Literal["native", "numpy"]

__all__ = [
    "NoiseSource",
    "ORACLE_OPTIONS",
    "InstanceErrors",
    "check_estimator",
    "instance_error",
    "naming_instances",
    "options_of",
    "check_noise_source",
    "generator",
    "seed_from_words",
    "noise_shape",
    "numpy_noise",
    "nan_where_not_finite",
    "instance_data",
    "oracle_solves",
    "solve_on_host",
    "HostSolve",
    "state_fields",
    "state_to_vector",
    "state_from_vector",
]


# the arguments every layer and loss passes to its MAPOracle, by name
ORACLE_OPTIONS = ("backend", "n_jobs", "parallel_backend", "chunk_size", "time_limit", "on_failure", "cache")


def options_of(arguments: Mapping[str, Any], names: Sequence[str] = ORACLE_OPTIONS) -> dict[str, Any]:
    """The entries ``names`` of a constructor's ``arguments`` (its ``locals()``): the
    options it hands on, named once here rather than in every binding."""
    return {name: arguments[name] for name in names if name in arguments}


def check_estimator(owner: str, estimator: Any) -> None:
    """Raise unless ``estimator`` is an estimator object (``IMLE(...)``, not the class)."""
    required = ("sample_with", "gradient", "draw", "initial_state")
    if isinstance(estimator, type) or not all(callable(getattr(estimator, name, None)) for name in required):
        raise InvalidInputError(
            f"{owner}: estimator must be an estimator such as IMLE(...), AIMLE(...) or STE(), got {estimator!r}"
        )


def check_noise_source(noise_source: str) -> NoiseSource:
    """``noise_source`` if it is ``"native"`` or ``"numpy"``; otherwise an error saying so."""
    if noise_source not in ("native", "numpy"):
        raise InvalidInputError(f"noise_source must be 'native' or 'numpy', got {noise_source!r}")
    return noise_source  # type: ignore[return-value]


def generator(seed: int | None) -> np.random.Generator:
    """The numpy noise generator of every binding: ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed)


def seed_from_words(words: np.ndarray) -> int:
    """The integer seed ``w0 + 2**32 * w1`` of two uint32 words (e.g. ``jax.random.bits``)."""
    w = np.asarray(words, dtype=np.uint32).reshape(2)
    return int(w[0]) | (int(w[1]) << 32)


def noise_shape(estimator: Estimator, theta_shape: Sequence[int | None]) -> tuple[int | None, ...] | None:
    """The shape ``(B, samples, marginal_samples, *shape)`` of a call's noise, or None without noise."""
    if estimator.noise is None:
        return None
    batch, *event = theta_shape
    return (batch, estimator.samples, estimator.marginal_samples, *event)


def numpy_noise(
    estimator: Estimator, theta_shape: Sequence[int], dtype: Any, generators: Sequence[np.random.Generator]
) -> np.ndarray:
    """The noise of ``G`` groups, each drawn from its own numpy generator, in ``dtype``.

    Args:
        theta_shape: ``(B, *shape)``, one group's scores.
        generators: ``G`` generators, one per group.
    Returns:
        ``(G, B, samples, marginal_samples, *shape)``.
    """
    placeholder = np.broadcast_to(np.zeros((), dtype=dtype), tuple(theta_shape))  # shape and dtype only
    return np.stack([draw_noise(estimator.noise, g, placeholder, estimator.samples, estimator.marginal_samples)
                     for g in generators])


def nan_where_not_finite(grad_z: Array, grad: Array) -> Array:
    """``grad`` ``(B, *shape)`` with NaN in every row whose upstream gradient ``grad_z``
    ``(B, ...)`` holds NaN or infinity, as any differentiable op would give.

    The backward pass's check, with ``validate_args``: it reads nothing back from the
    device (forward's check of ``theta`` is the step's one read), yet a non-finite ``dL/dz``
    cannot pass as a finite gradient computed from a meaningless target."""
    xp = array_namespace(grad)
    # 0 * x is 0 for a finite x and NaN for NaN and +-inf: each row's sum is 0 or NaN, exactly
    poison = xp.sum(xp.reshape(grad_z * 0, (batch_size(grad_z), -1)), axis=1)
    return grad + xp.reshape(xp.astype(poison, grad.dtype), (-1, *(1,) * (grad.ndim - 1)))


def instance_data(oracle: MAPOracle, data: dict[str, Any], theta: Array, validate: bool) -> dict[str, Array]:
    """A call's per-instance data in ``theta``'s framework and on its device, their names,
    shapes and kinds checked, and with ``validate`` their values too (one read back from
    the device; arrays being traced are left to the binding's own check)."""
    if not data:
        if validate and oracle.problem.instance_fields:
            check_values(oracle.problem, {})  # a field without default must be given
        return {}
    check_data(oracle.problem, data, batch_size(theta))
    converted = for_framework(oracle.problem, data, theta)
    if validate:
        check_values(oracle.problem, converted)
    return converted


def rows_per_instance(x: Any, batch: Any) -> int:
    """How many consecutive rows of a solve's ``x`` ``(N, *shape)`` are each instance's, for
    a batch of ``batch`` instances (instance-major, ``N / batch``); 1 where either size is
    unknown while a graph is traced (an error then names the row)."""
    rows = x.shape[0]
    if isinstance(batch, int) and isinstance(rows, int) and batch > 0:
        return max(rows // batch, 1)
    return 1


def oracle_solves(oracle: MAPOracle, data: InstanceData, batch: Any) -> tuple[Any, Any]:
    """The two solves a binding hands an estimator for a batch of ``batch`` instances with
    ``data``: ``(N, *shape) -> states`` and ``-> (states, statuses)``, each row solved with
    its own instance's data (:func:`imle_solvers.instances.per_instance`); a failure's
    error names the batch index of its instance, not the row (:func:`instance_error`)."""

    def solve_rows(x: Any, rows: Any) -> Any:
        solve = naming_instances(lambda y: oracle(y, validate=False, **rows), rows_per_instance(x, batch))
        return solve(x)

    states = per_instance(solve_rows, data, batch)
    with_status = per_instance(lambda x, rows: oracle.solve(x, validate=False, **rows), data, batch)
    return states, with_status


def instance_error(error: SolverError, rows: int, per: int) -> SolverError:
    """``error`` of a solve of ``rows`` rows holding ``per`` consecutive rows per instance
    (a loss's ``M`` perturbed solves, instance-major), naming the instance rather than the
    row: row ``r`` is instance ``(r % rows) // per`` (the remainder: a ``jax.vmap``'s groups
    are solved as one call), its solve ``r % per + 1`` of ``per``."""
    if error.index is None or per == 1:
        return error
    index = (error.index % rows) // per
    indices = tuple(dict.fromkeys((i % rows) // per for i in error.indices))
    text, prefix = str(error), f"instance {error.index}"
    where = f"instance {index}, solve {error.index % per + 1} of {per}"
    message = where + text[len(prefix):].lstrip("+") if text.startswith(prefix) else f"{where}: {text}"
    return SolverError(message, index=index, status=error.status, indices=indices, incumbent=error.incumbent)


def naming_instances(solve: Any, per: int) -> Any:
    """An in-process ``solve`` of ``per`` rows per instance whose :class:`SolverError` names
    the instance (:func:`instance_error`)."""
    if per == 1:
        return solve

    def solve_naming(x: Any) -> Any:
        try:
            return solve(x)
        except SolverError as error:
            raise instance_error(error, batch_size(x), per) from error

    return solve_naming


class InstanceErrors:
    """A :class:`HostSolve` ``wrap`` for a solve of ``per`` rows per instance: its
    :class:`SolverError` names the instance (:func:`instance_error`); ``then``, another
    wrap it runs within (JAX's recording of errors)."""

    def __init__(self, oracle: MAPOracle, per: int, then: Any = None) -> None:
        self.event_ndim, self.per, self.then = len(oracle.problem.shape), per, then

    def __call__(self, solve: Any, oracle: MAPOracle, theta: np.ndarray, data: Any) -> Any:
        def naming(*args: Any) -> Any:
            try:
                return solve(*args)
            except SolverError as error:
                rows = np.shape(theta)[-self.event_ndim - 1]
                raise instance_error(error, rows, self.per) from error

        return naming(oracle, theta, data) if self.then is None else self.then(naming, oracle, theta, data)


def solve_on_host(
    oracle: MAPOracle, theta: np.ndarray, data: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MAP states of ``theta`` ``(..., *problem.shape)``: every leading axis (the batch, and
    the groups of a ``jax.vmap``) in one oracle call; in ``theta``'s dtype and shape; and
    the statuses ``(...)`` (int8, see :mod:`imle_solvers.failures`). ``data``: the rows'
    per-instance data, with the same leading axes."""
    theta = np.asarray(theta)
    lead = theta.shape[: theta.ndim - len(oracle.problem.shape)]
    fields = oracle.problem.instance_fields
    flat = {name: np.asarray(value).reshape(-1, *fields[name].shape) for name, value in (data or {}).items()}
    z, status = oracle.solve(theta.reshape(-1, *oracle.problem.shape), validate=False, **flat)
    return np.asarray(z, dtype=theta.dtype).reshape(theta.shape), np.asarray(status).reshape(lead)


class HostSolve:
    """The host side of a solver callback (``jax.pure_callback``, ``tf.numpy_function``):
    ``(theta, *values) -> (states, statuses)``, ``values`` being the per-instance data of
    ``names`` in order (callbacks take arrays, not dicts)."""

    def __init__(self, oracle: MAPOracle, names: Sequence[str], wrap: Any = None) -> None:
        self.oracle, self.names, self.wrap = oracle, tuple(names), wrap

    def __call__(self, theta: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        data = dict(zip(self.names, values))
        if self.wrap is None:
            return solve_on_host(self.oracle, theta, data)
        return self.wrap(solve_on_host, self.oracle, theta, data)

    def states(self, theta: np.ndarray, *values: np.ndarray) -> np.ndarray:
        return self(theta, *values)[0]


def state_fields(estimator: Estimator) -> tuple[str, ...]:
    """Names of the estimator state's fields (``()`` for a stateless estimator); the state
    is a named tuple (as :class:`~imle_solvers.AdaptiveState`)."""
    state = estimator.initial_state()
    return () if state is None else tuple(state._fields)


def state_to_vector(state: Any, like: Array) -> Array:
    """A state as a ``(F,)`` vector in :func:`state_fields` order, in ``like``'s framework and
    on its device, in the state dtype (float64 where the framework has it): the form a
    Keras layer keeps in its weights."""
    xp = array_namespace(like)
    return xp.stack([xp.asarray(v, dtype=state_float(xp), device=device(like)) for v in state])


def state_from_vector(estimator: Estimator, vector: Array) -> Any:
    """The estimator's state from a ``(F,)`` vector (the inverse of :func:`state_to_vector`);
    None for a stateless estimator. Fields stay 0-d arrays: no value leaves the device."""
    initial = estimator.initial_state()
    if initial is None:
        return None
    return type(initial)(**{name: vector[i] for i, name in enumerate(state_fields(estimator))})
