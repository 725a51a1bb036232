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
from .errors import InvalidInputError
from .estimators import Estimator, draw_noise
from .failures import batch_size
from .instances import InstanceData, check_data, check_values, for_framework, per_instance
from .oracle import MAPOracle

NoiseSource = Literal["native", "numpy"]

__all__ = [
    "NoiseSource",
    "check_estimator",
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


def oracle_solves(oracle: MAPOracle, data: InstanceData, batch: Any) -> tuple[Any, Any]:
    """The two solves a binding hands an estimator for a batch of ``batch`` instances with
    ``data``: ``(N, *shape) -> states`` and ``-> (states, statuses)``, each row solved with
    its own instance's data (:func:`imle_solvers.instances.per_instance`)."""
    states = per_instance(lambda x, rows: oracle(x, validate=False, **rows), data, batch)
    with_status = per_instance(lambda x, rows: oracle.solve(x, validate=False, **rows), data, batch)
    return states, with_status


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
