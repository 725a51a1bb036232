"""What the framework bindings share beside the step (:mod:`imle_solvers.step`): the numpy
noise source's seeding contract, and an estimator's state as a vector.

Noise sources (the ``noise_source`` option, :class:`~imle_solvers.options.NoiseOptions`):

- ``"native"`` (default): the framework's own generator draws on the scores' device
  and in their dtype (torch: a ``torch.Generator`` per device, or torch's default one
  when the layer has no seed; JAX: the key passed in; Keras: stateless TensorFlow draws
  keyed by the layer's weight ``noise_state``).
- ``"numpy"``: every call draws from a ``numpy.random.Generator`` on the host, so one
  seed gives the same noise, hence the same ``z`` and gradients, in every framework.
  The torch and Keras layers make one ``generator(seed)`` and draw each call from it in
  turn; a JAX call makes a fresh one from ``seed_from_words(bits(key))``, see
  :func:`imle_solvers.jax.numpy_seed`. Under ``jax.vmap`` the noise of each mapped call
  (each *group*) comes from its own generator (:func:`numpy_noise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import Array, array_namespace, device, state_float
from .estimators import Estimator, draw_noise

__all__ = [
    "generator",
    "seed_from_words",
    "noise_shape",
    "numpy_noise",
    "NumpyNoiseOfKeys",
    "state_fields",
    "state_to_vector",
    "state_from_vector",
]


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


class NumpyNoiseOfKeys:
    """The host side of a JAX call's ``noise_source="numpy"``: ``words`` ``(..., 2)`` (the
    key's bits, with a leading axis per mapped call of a ``jax.vmap``) in, the noise of each
    group from its own ``generator(seed_from_words(words))`` out, as a one-tuple."""

    def __init__(self, estimator: Estimator, theta_shape: tuple[int, ...], dtype: Any) -> None:
        self.estimator, self.theta_shape, self.dtype = estimator, theta_shape, dtype

    def __call__(self, words: np.ndarray) -> tuple[np.ndarray]:
        words = np.asarray(words)
        lead = words.shape[:-1]
        generators = [generator(seed_from_words(w)) for w in words.reshape(-1, 2)]
        noise = numpy_noise(self.estimator, self.theta_shape, self.dtype, generators)
        return (noise.reshape(*lead, *noise.shape[1:]),)


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
