"""TensorFlow binding: a Keras layer over the framework-free estimators.

The solver runs on the host through ``tf.numpy_function`` and the backward pass is a
``tf.custom_gradient``; the gradient math is :mod:`imle_solvers.estimators`', reached
through :mod:`imle_solvers._binding`. The layer works eagerly, inside
``tf.function`` and in ``model.fit`` (it sets ``supports_jit = False``: a host
callback cannot be XLA-compiled).

Randomness: the layer draws each call's noise in turn from
``numpy.random.default_rng(seed)``, exactly as the torch layer with the same seed.
An adaptive estimator's state (AIMLE) is held in non-trainable float64 weights, one
per field (``beta``, ``nnz_average``, ``steps``), updated by each backward pass and
saved with the model's weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _binding
from .errors import missing_dependency
from .estimators import Estimator, output_shape
from .oracle import MAPOracle
from .problems import Problem
from .problems.base import check_batch_shape

try:
    import keras
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - exercised without tensorflow installed
    raise missing_dependency("tensorflow", "tensorflow") from error

__all__ = ["IMLELayer"]


class IMLELayer(keras.layers.Layer):
    """A differentiable discrete layer: ``theta (B, *problem.shape) -> z``.

    With ``training=True`` (the default, and what ``model.fit`` passes) it returns
    perturb-and-MAP samples (``(B, *shape)``, or ``(B, samples, *shape)`` when the
    estimator draws several) whose gradient is the estimator's; with
    ``training=False`` (``model.predict``, ``model.evaluate``) the MAP state
    ``(B, *shape)``, without gradient. Outputs have ``theta``'s dtype.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)`` or ``STE(...)``.
        backend: solver name (see ``imle_solvers.list_solvers``) or ``"auto"``.
        seed: seed of the layer's noise generator (None: fresh entropy).
        n_jobs, parallel_backend, chunk_size, time_limit: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md).
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ...).
    """

    def __init__(
        self,
        problem: Problem,
        estimator: Estimator,
        backend: str = "auto",
        seed: int | None = None,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=False, **kwargs)
        self.supports_jit = False
        self.problem = problem
        self.estimator = estimator
        self.oracle = MAPOracle(
            problem,
            backend=backend,
            n_jobs=n_jobs,
            parallel_backend=parallel_backend,
            chunk_size=chunk_size,
            time_limit=time_limit,
        )
        self.rng = _binding.generator(seed)
        initial = _binding.state_to_array(estimator.initial_state())
        self.state_variables = [
            self.add_weight(
                name=name,
                shape=(),
                dtype="float64",
                initializer=keras.initializers.Constant(float(value)),
                trainable=False,
            )
            for name, value in zip(_binding.state_fields(estimator), initial)
        ]

    @property
    def estimator_state(self) -> Any:
        """The estimator's current state (an ``AdaptiveState``), or None if stateless."""
        values = np.array([float(v.numpy()) for v in self.state_variables])
        return _binding.state_from_array(self.estimator, values)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return output_shape(tuple(input_shape), self.estimator.samples)

    def call(self, theta: tf.Tensor, training: bool = True) -> tf.Tensor:
        theta = tf.convert_to_tensor(theta)
        check_batch_shape(theta.shape, self.problem.shape, "theta")
        if not training:
            z = tf.numpy_function(self._map_host, [theta], theta.dtype, stateful=False)
            z.set_shape(theta.shape)
            return tf.stop_gradient(z)
        state = tf.stack([v.value for v in self.state_variables]) if self.state_variables else tf.zeros((0,), tf.float64)
        return self._sample(theta, state)

    def _sample(self, theta: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        shapes = _binding.layout(self.estimator, tuple(theta.shape))
        dtypes = [theta.dtype] * (2 if shapes.noise is None else 3)

        @tf.custom_gradient
        def sample(theta: tf.Tensor) -> tuple[tf.Tensor, Any]:
            z, states, *noise = tf.numpy_function(self._sample_host, [theta], dtypes, stateful=True)
            z.set_shape(shapes.z)
            states.set_shape(shapes.states)

            def grad(grad_z: tf.Tensor) -> tf.Tensor:
                grad_theta, new_state = tf.numpy_function(
                    self._gradient_host, [theta, states, grad_z, state, *noise], [theta.dtype, tf.float64], stateful=False
                )
                new_state.set_shape((len(self.state_variables),))
                for i, variable in enumerate(self.state_variables):
                    variable.assign(new_state[i])
                grad_theta.set_shape(theta.shape)
                return grad_theta

            return z, grad

        return sample(theta)

    # --- host side (numpy, one group) -------------------------------------------------

    def _map_host(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(self.oracle(theta), theta.dtype)

    def _sample_host(self, theta: np.ndarray) -> list[np.ndarray]:
        outputs = _binding.sample(self.estimator, self.oracle, theta[None], [self.rng])
        return [np.asarray(o[0], theta.dtype) for o in outputs if o is not None]

    def _gradient_host(
        self, theta: np.ndarray, states: np.ndarray, grad_z: np.ndarray, state: np.ndarray, *noise: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        grad, new_state = _binding.gradient(
            self.estimator,
            self.oracle,
            theta[None],
            states[None],
            noise[0][None] if noise else None,
            grad_z[None],
            state[None],
        )
        return np.asarray(grad[0], theta.dtype), np.asarray(new_state[0], np.float64)
