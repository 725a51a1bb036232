"""The Keras layer: the step (:mod:`imle_solvers.step`) under a ``tf.custom_gradient``,
its noise and estimator state as the layer's weights (see :mod:`imle_solvers.tensorflow`)."""
from __future__ import annotations

import json
import random
from typing import Any

import numpy as np

import keras
import tensorflow as tf

from .. import _binding, serialization
from ..estimators import Estimator, output_shape
from ..frameworks.tensorflow import check_keras_backend, draw_noise, keeping_our_errors
from ..options import NoiseOptions, OracleOptions, take_options
from ..problems import Problem
from ..step import Plan, Step, StepHolder, check_estimator
from .masking import KerasMaskAsData

__all__ = ["IMLELayer", "imle"]

# the entry of a saved layer's store that holds its numpy generator's state (noise_source="numpy")
_GENERATOR_KEY = "numpy_generator_state"


@keras.saving.register_keras_serializable(package="imle_solvers")
class IMLELayer(StepHolder, KerasMaskAsData, keras.layers.Layer):
    """A differentiable discrete layer: ``theta (B, *problem.shape) -> z``.

    With ``training=True`` (the default, and what ``model.fit`` passes) it returns
    perturb-and-MAP samples (``(B, *shape)``, or ``(B, samples, *shape)`` when the
    estimator draws several) whose gradient is the estimator's; with
    ``training=False`` (``model.predict``, ``model.evaluate``) the MAP state
    ``(B, *shape)``, without gradient. Outputs have ``theta``'s dtype. With
    ``on_failure`` other than ``"raise"`` the layer returns ``(z, status)``, ``status``
    ``(B,)`` int8 (see :mod:`imle_solvers.failures`); ``failures`` counts the failed
    solves by reason.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)`` or ``STE(...)``.
        validate_args: check that ``theta`` and the data are finite and valid (inside a
            graph by a host call that only runs when a row is bad; inside XLA, with
            ``jit_compile=True``, by NaN rows of ``z``), and give NaN gradients to rows whose
            ``dL/dz`` is not finite; False skips both.
        oracle_options, noise_options, **options: as :class:`imle_solvers.torch.IMLELayer`'s
            (``seed`` None: drawn from Python's ``random``, which ``keras.utils.set_random_seed``
            seeds, as Keras' own layers do; ``cache``, runtime state, is not part of
            :meth:`get_config`); other keywords go to ``keras.layers.Layer`` (``name``, ...).

    Masks: a Keras mask arriving with ``theta`` (``Embedding(mask_zero=True)`` upstream, or
    ``mask=`` given) is a :class:`~imle_solvers.KSubset`'s ``mask``: masked positions are
    never chosen. The layer passes no mask on. It runs on Keras' TensorFlow backend; on
    the JAX or torch backends, use :mod:`imle_solvers.jax` or :mod:`imle_solvers.torch`.

    Saving: ``model.save("m.keras")`` and ``keras.models.load_model`` round-trip the layer
    (problem, estimator and options through :meth:`get_config`, see
    :mod:`imle_solvers.serialization`; the noise and estimator state as weights), as do
    ``save_weights``/``load_weights``.
    """

    def __init__(self, problem: Problem, estimator: Estimator, *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, noise_options: NoiseOptions | None = None,
                 **options: Any) -> None:
        check_keras_backend("IMLELayer")
        oracle, noise, layer_options = take_options("IMLELayer", options, oracle_options, noise_options, others=True)
        super().__init__(trainable=False, **layer_options)
        check_estimator("IMLELayer", estimator)
        self._oracle_options, self._noise_options = oracle, noise
        self.problem = problem
        self.estimator = estimator
        self.noise_source = noise.noise_source
        self.step = Step(oracle.oracle(problem), validate_args)
        self.take_keras_masks(problem)
        # XLA compiles TensorFlow ops only: no host call
        in_graph = self.oracle.solver_for_framework("tensorflow", stays=True)
        self.supports_jit = in_graph.runs_on("tensorflow") and not self._noise_on_host
        self._compiled_step = tf.function(self._step, reduce_retracing=True)
        if noise.noise_source == "native":
            seed = random.randint(1, 10**9) if noise.seed is None else noise.seed
            self.noise_state = self.add_weight(name="noise_state", shape=(2,), dtype="int64",
                                               initializer=keras.initializers.Constant([seed, 0]), trainable=False)
        else:
            self.rng = _binding.generator(noise.seed)
        initial = estimator.initial_state()
        self.state_variables = [
            self.add_weight(name=name, shape=(), dtype="float64", initializer=keras.initializers.Constant(float(value)),
                            trainable=False)
            for name, value in ({} if initial is None else initial.state_dict()).items()
        ]

    @property
    def _noise_on_host(self) -> bool:
        return self.estimator.noise is not None and self.noise_source == "numpy"

    @property
    def estimator_state(self) -> Any:
        """The estimator's current state (an ``AdaptiveState``), or None if stateless."""
        initial = self.estimator.initial_state()
        if initial is None:
            return None
        return type(initial).from_state_dict({v.name: float(v.numpy()) for v in self.state_variables})

    # --- saving ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The layer's config: Keras' own entries, the problem's and the estimator's
        configs (:func:`imle_solvers.serialization.to_config`) and the options as given.

        Raises:
            imle_solvers.errors.SerializationError: the problem or estimator has no config
                (a class not registered with :func:`imle_solvers.serialization.register`).
        """
        config = super().get_config()
        config.pop("trainable", None)  # always False: the layer has no trainable weights
        config.update(
            problem=serialization.to_config(self.problem),
            estimator=serialization.to_config(self.estimator),
            validate_args=self.step.validate_args,
            **self._oracle_options.config(),
            **self._noise_options.config(),
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IMLELayer:
        """The layer of a :meth:`get_config` config (its weights are loaded after)."""
        config = dict(config)
        config.pop("trainable", None)
        problem = serialization.from_config(config.pop("problem"))
        estimator = serialization.from_config(config.pop("estimator"))
        return cls(problem, estimator, **config)

    def save_own_variables(self, store: Any) -> None:
        """Keras' weights, and with ``noise_source="numpy"`` the numpy generator's state, so
        that a restored layer draws what the saved one would have drawn next."""
        super().save_own_variables(store)
        if self.noise_source == "numpy":
            state = json.dumps(self.rng.bit_generator.state).encode()
            store[_GENERATOR_KEY] = np.frombuffer(state, dtype=np.uint8)

    def load_own_variables(self, store: Any) -> None:
        """The inverse of :meth:`save_own_variables` (a file without a generator state, e.g.
        saved before it was kept, leaves the generator as built)."""
        keys = list(store.keys())
        if self.noise_source == "numpy" and _GENERATOR_KEY in keys:
            state = json.loads(np.asarray(store[_GENERATOR_KEY], dtype=np.uint8).tobytes().decode())
            self.rng.bit_generator.state = state
        if _GENERATOR_KEY in keys:
            # Keras checks that the store holds exactly the layer's variables
            store = {key: store[key] for key in keys if key != _GENERATOR_KEY}
        super().load_own_variables(store)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        shape = output_shape(tuple(input_shape), self.estimator.samples)
        return (shape, tuple(input_shape[:1])) if self.step.with_status else shape

    def compute_output_spec(self, theta: Any, *args: Any, **kwargs: Any) -> Any:
        """``z`` in ``theta``'s dtype, and under a failure policy the statuses, int8."""
        shape = self.compute_output_shape(tuple(theta.shape))
        if not self.step.with_status:
            return keras.KerasTensor(shape, dtype=theta.dtype)
        return keras.KerasTensor(shape[0], dtype=theta.dtype), keras.KerasTensor(shape[1], dtype="int8")

    def call(self, theta: tf.Tensor, training: bool = True, mask: Any = None, **data: Any) -> Any:
        """``z`` (and the statuses, under a failure policy) of ``theta`` ``(B, *shape)``;
        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)`` (or one instance's, for all), carrying no gradient; ``mask``:
        Keras' mask, a KSubset's ``mask``."""
        return keeping_our_errors(self._call, theta, training, self.with_keras_mask(data, mask))

    def _call(self, theta: tf.Tensor, training: bool, data: dict[str, Any]) -> Any:
        theta = tf.convert_to_tensor(theta)
        plan, data, poison = self.step.prepare(theta, data)
        if not training:
            return tf.nest.map_structure(tf.stop_gradient, plan.map(theta, data, poison))
        # Eagerly, the step runs as one graph: dozens of eager ops would cost more than the
        # solve. Not with a state to update: a gradient function's assignments to variables
        # do not run when an eager tape differentiates through a tf.function. Nor with a host
        # call: inside a graph, an exception it raises is logged twice by TensorFlow and
        # arrives wrapped in an UnknownError, where eagerly tf.numpy_function calls it
        # directly and it arrives as raised (a host solve costs more than the eager ops).
        calls_host = self._noise_on_host or not plan.native
        compiled = tf.executing_eagerly() and not self.state_variables and not calls_host
        return (self._compiled_step if compiled else self._step)(plan, theta, data, poison)

    def _step(self, plan: Plan, theta: tf.Tensor, data: dict[str, tf.Tensor], poison: Any) -> Any:
        state = tf.stack([v.value for v in self.state_variables]) if self.state_variables else None
        noise, estimator, status = self._draw(theta), self.estimator, None

        @tf.custom_gradient
        def sample(theta: tf.Tensor) -> tuple[tf.Tensor, Any]:
            nonlocal status
            z, status, residuals = plan.forward(estimator, theta, noise, data, poison)

            def grad(grad_z: tf.Tensor) -> tf.Tensor:
                old = None if state is None else _binding.state_from_vector(estimator, state)
                grad_theta, new = plan.backward(estimator, residuals, grad_z, old, status, data, poison)
                if new is not None:
                    vector = _binding.state_to_vector(new, state)
                    for i, variable in enumerate(self.state_variables):
                        variable.assign(vector[i])
                return grad_theta

            return z, grad

        z = sample(theta)
        return z if status is None else (z, status)

    def _draw(self, theta: tf.Tensor) -> tf.Tensor | None:
        """The call's noise ``(B, samples, marginal_samples, *shape)``, or None."""
        return draw_noise(self, self.estimator, theta)

    def next_seed(self) -> tf.Tensor:
        """The seed of one stateless draw: the noise state, whose counter then moves on (as
        ``keras.random.SeedGenerator``, but a weight of the layer, so saved with the model)."""
        current = self.noise_state.value * 1
        self.noise_state.assign(current + tf.constant([0, 1], dtype=current.dtype))
        return tf.cast(tf.math.floormod(current, 2**31 - 1), tf.int32)  # int32 seeds compile with XLA


def imle(problem: Problem, estimator: Estimator, **options: Any) -> IMLELayer:
    """The differentiable Keras layer of ``problem`` under ``estimator``: the same entry
    point as :func:`imle_solvers.torch.imle` and :func:`imle_solvers.jax.imle`
    (``options`` as :class:`IMLELayer`'s)."""
    return IMLELayer(problem, estimator, **options)
