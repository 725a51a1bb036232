"""Host-side glue shared by the JAX and TensorFlow bindings (and the noise generator
of all three): numpy in, numpy out.

Both frameworks reach the solver through a host callback (``jax.pure_callback``,
``tf.numpy_function``) that sees numpy arrays; the functions here are what those
callbacks run. They only group, split and reshape arrays around
:mod:`imle_solvers.estimators`, where the gradient math lives.

Every array here carries a leading *group* axis ``G`` in front of the batch: a
plain call has ``G = 1``; under ``jax.vmap`` the callback gets all mapped calls at
once and each is a group, with its own noise generator. Stateless estimators
(IMLE, STE) are row-wise, so their backward pass runs once over all ``G * B``
rows; a stateful one (AIMLE) updates its state once per group, as eager calls would.

Seeding contract (identical in every binding): the noise of a call is drawn by
the estimator from ``generator(seed) = numpy.random.default_rng(seed)``. The torch
and Keras layers make one generator from their ``seed`` and draw each call from it
in turn; a JAX call makes a fresh one from ``seed_from_words(bits(key))``, see
:func:`imle_solvers.jax.numpy_seed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .estimators import Estimator, Residuals, output_shape
from .oracle import MAPOracle

__all__ = [
    "Layout",
    "generator",
    "seed_from_words",
    "layout",
    "state_fields",
    "state_to_array",
    "state_from_array",
    "sample",
    "gradient",
]


def generator(seed: int | None) -> np.random.Generator:
    """The noise generator of every binding: ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed)


def seed_from_words(words: np.ndarray) -> int:
    """The integer seed ``w0 + 2**32 * w1`` of two uint32 words (e.g. ``jax.random.bits``)."""
    w = np.asarray(words, dtype=np.uint32).reshape(2)
    return int(w[0]) | (int(w[1]) << 32)


@dataclass(frozen=True)
class Layout:
    """Per-call shapes for a batch ``theta`` of shape ``(B, *shape)``.

    Attributes:
        z: the output, ``(B, *shape)`` or ``(B, samples, *shape)``.
        states: the sampled states kept for backward, ``(B, samples, *shape)``.
        noise: the noise kept for backward, ``(B, samples, marginal_samples, *shape)``;
            None when the estimator draws no noise.
    """

    z: tuple[int, ...]
    states: tuple[int, ...]
    noise: tuple[int, ...] | None


def layout(estimator: Estimator, theta_shape: Sequence[int | None]) -> Layout:
    """The :class:`Layout` of ``estimator`` for a ``theta`` of shape ``(B, *shape)`` (B may be None)."""
    batch, *event = theta_shape
    samples, marginal = estimator.samples, estimator.marginal_samples
    noise = None if estimator.noise is None else (batch, samples, marginal, *event)
    return Layout(z=output_shape(theta_shape, samples), states=(batch, samples, *event), noise=noise)


def state_fields(estimator: Estimator) -> tuple[str, ...]:
    """Names of the estimator state's fields (``()`` for a stateless estimator)."""
    state = estimator.initial_state()
    return () if state is None else tuple(state.state_dict())


def state_to_array(state: Any) -> np.ndarray:
    """A state as a float64 vector ``(F,)`` in :func:`state_fields` order (``(0,)`` for None)."""
    return np.zeros(0) if state is None else np.array(list(state.state_dict().values()), dtype=np.float64)


def state_from_array(estimator: Estimator, values: np.ndarray) -> Any:
    """The inverse of :func:`state_to_array` for ``estimator``'s state type."""
    initial = estimator.initial_state()
    if initial is None:
        return None
    return type(initial).from_state_dict(dict(zip(initial.state_dict(), np.asarray(values, np.float64).tolist())))


def sample(
    estimator: Estimator, oracle: MAPOracle, theta: np.ndarray, rngs: Sequence[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The forward pass of ``G`` groups.

    Args:
        theta: ``(G, B, *shape)`` scores; group ``g`` draws its noise from ``rngs[g]``.
    Returns:
        ``z`` ``(G, *layout.z)``, the sampled states ``(G, *layout.states)`` and the
        noise ``(G, *layout.noise)`` (None without noise), in ``theta``'s dtype.
    """
    sign = oracle.problem.sign
    for t in theta:
        oracle.problem.validate(t)
    draws = [estimator.draw(t, r) for t, r in zip(theta, rngs)]
    noise = None if draws[0] is None else np.concatenate(draws)
    z, residuals = estimator.sample_with(theta.reshape(-1, *theta.shape[2:]), noise, oracle, sign=sign)

    def grouped(x: np.ndarray) -> np.ndarray:
        return x.reshape(theta.shape[0], theta.shape[1], *x.shape[1:])

    return grouped(z), grouped(residuals.z), None if noise is None else grouped(noise)


def gradient(
    estimator: Estimator,
    oracle: MAPOracle,
    theta: np.ndarray,
    states: np.ndarray,
    noise: np.ndarray | None,
    grad_z: np.ndarray,
    estimator_states: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The backward pass of ``G`` groups.

    Args:
        theta: ``(G, B, *shape)``; ``states``, ``noise``: as returned by :func:`sample`.
        grad_z: ``(G, *layout.z)`` the upstream gradient.
        estimator_states: ``(G, F)`` each group's state as :func:`state_to_array` writes it.
    Returns:
        ``(G, B, *shape)`` gradients and the ``(G, F)`` updated states.
    """
    sign = oracle.problem.sign
    if estimator.initial_state() is None:  # stateless, so row-wise: one backward pass over all G * B rows
        rows = theta.shape[0] * theta.shape[1]
        merged = Residuals(
            theta=theta.reshape(rows, *theta.shape[2:]),
            noise=None if noise is None else noise.reshape(rows, *noise.shape[2:]),
            z=states.reshape(rows, *states.shape[2:]),
            sign=sign,
        )
        grad, _ = estimator.gradient(merged, grad_z.reshape(rows, *grad_z.shape[2:]), oracle, None)
        return np.asarray(grad).reshape(theta.shape), estimator_states
    grads, updated = [], []
    for g in range(theta.shape[0]):
        residuals = Residuals(theta=theta[g], noise=None if noise is None else noise[g], z=states[g], sign=sign)
        grad, state = estimator.gradient(
            residuals, grad_z[g], oracle, state_from_array(estimator, estimator_states[g])
        )
        grads.append(grad)
        updated.append(state_to_array(state))
    return np.stack(grads), np.stack(updated)
