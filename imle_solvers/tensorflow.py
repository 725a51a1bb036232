"""TensorFlow binding: the step (:mod:`imle_solvers.step`) in a Keras layer.

What is Keras' own here: the ``tf.custom_gradient``, the noise (stateless TensorFlow
draws keyed by ``(seed, counter)``, a non-trainable int64 weight ``noise_state``, so a
restored model draws what the saved one would have drawn next; or, with
``noise_source="numpy"``, ``numpy.random.default_rng(seed)`` drawn in turn, as the torch
layer draws), the estimator's state as float64 weights (``beta``, ``nnz_average``,
``steps``), the config, masks and ``fit``'s graphs. An array-native solver (top-k) runs
as TensorFlow ops, eagerly, in ``tf.function``, in ``model.fit`` and under XLA; other
solvers are reached through ``tf.numpy_function`` (then ``supports_jit = False``).
"""

from __future__ import annotations

import contextvars
import json
import random
from typing import Any

import numpy as np

from . import _binding, serialization
from .errors import ImleSolversError, InvalidInputError, missing_dependency
from .estimators import Estimator, output_shape
from .losses import FenchelYoung, LossDefinition, SPOPlus, perturbation
from .noise import TensorFlowSource
from .options import NoiseOptions, OracleOptions, take_options
from .problems import Problem
from .step import LossStep, Plan, Step, StepHolder, check_estimator

try:
    import keras
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - exercised without tensorflow installed
    raise missing_dependency("tensorflow", "tensorflow") from error

__all__ = ["FenchelYoungLoss", "IMLELayer", "SPOPlusLoss", "imle"]

# the entry of a saved layer's store that holds its numpy generator's state (noise_source="numpy")
_GENERATOR_KEY = "numpy_generator_state"


def _check_keras_backend(owner: str) -> None:
    if keras.backend.backend() != "tensorflow":
        raise InvalidInputError(
            f"{owner} runs on Keras' TensorFlow backend, and KERAS_BACKEND is {keras.backend.backend()!r}: use "
            "imle_solvers.jax (JAX) or imle_solvers.torch (torch) directly, or KERAS_BACKEND=tensorflow"
        )


def _keeping_our_errors(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(...)``; an error of ours leaves as raised: Keras rebuilds a layer's or loss's
    exception as ``type(error)(message + context)``, which drops a SolverError's index and
    status, unless it is marked as already annotated (our messages name the batch index)."""
    try:
        return call(*args, **kwargs)
    except ImleSolversError as error:
        error._keras_call_info_injected = True
        raise


@keras.saving.register_keras_serializable(package="imle_solvers")
class IMLELayer(StepHolder, keras.layers.Layer):
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
        _check_keras_backend("IMLELayer")
        oracle, noise, layer_options = take_options("IMLELayer", options, oracle_options, noise_options, others=True)
        super().__init__(trainable=False, **layer_options)
        check_estimator("IMLELayer", estimator)
        self._oracle_options, self._noise_options = oracle, noise
        self.problem = problem
        self.estimator = estimator
        self.noise_source = noise.noise_source
        self.step = Step(oracle.oracle(problem), validate_args)
        self.supports_masking = "mask" in problem.instance_fields
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

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        """No mask leaves the layer: a mask on the scores means nothing downstream of ``z``."""
        return None

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
        if mask is not None and self.supports_masking:
            data = {**data, "mask": mask}
        return _keeping_our_errors(self._call, theta, training, data)

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

    def _next_seed(self) -> tf.Tensor:
        """The seed of one stateless draw: the noise state, whose counter then moves on (as
        ``keras.random.SeedGenerator``, but a weight of the layer, so saved with the model)."""
        current = self.noise_state.value * 1
        self.noise_state.assign(current + tf.constant([0, 1], dtype=current.dtype))
        return tf.cast(tf.math.floormod(current, 2**31 - 1), tf.int32)  # int32 seeds compile with XLA


def draw_noise(layer: IMLELayer, estimator: Estimator, theta: tf.Tensor) -> tf.Tensor | None:
    """The noise of a call of ``layer`` (its seed or generator) for ``estimator``, or None."""
    if estimator.noise is None:
        return None
    if layer.noise_source == "native":
        return estimator.draw(theta, TensorFlowSource(layer._next_seed, theta.dtype, tf.shape(theta)[0]))

    def host(theta_shape: np.ndarray) -> np.ndarray:
        return _binding.numpy_noise(estimator, tuple(theta_shape), theta.dtype.as_numpy_dtype, [layer.rng])[0]

    noise = tf.numpy_function(host, [tf.shape(theta)], theta.dtype, stateful=True)
    noise.set_shape(_binding.noise_shape(estimator, tuple(theta.shape)))
    return noise


def imle(problem: Problem, estimator: Estimator, **options: Any) -> IMLELayer:
    """The differentiable Keras layer of ``problem`` under ``estimator``: the same entry
    point as :func:`imle_solvers.torch.imle` and :func:`imle_solvers.jax.imle`
    (``options`` as :class:`IMLELayer`'s)."""
    return IMLELayer(problem, estimator, **options)


# --- losses (imle_solvers.losses) ------------------------------------------------------

# a direct call's per-instance data (and SPO+'s w_true, z_true), for the Keras call it makes
_CALL_DATA: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("imle_solvers_loss_data", default={})


class _Loss(StepHolder, keras.losses.Loss):
    """A loss over the step (:class:`~imle_solvers.step.LossStep`) as a Keras ``Loss`` whose
    ``call(y_true, y_pred)`` gives the ``(B,)`` per-instance values (Keras reduces them),
    differentiable with respect to ``y_pred`` through a ``tf.custom_gradient``. Its noise is
    an inner layer's (seed, generator). Per-instance data (and SPO+'s ``w_true``, ``z_true``)
    are keywords of a direct call, ``loss_fn(y_true, y_pred, **data)``; ``model.fit`` passes none."""

    def __init__(self, problem: Problem, definition: LossDefinition, options: dict[str, Any], **kwargs: Any) -> None:
        owner = type(self).__name__
        _check_keras_backend(owner)
        validate_args = options.pop("validate_args", True)
        oracle, noise, _ = take_options(owner, options, options.pop("oracle_options", None),
                                        options.pop("noise_options", None))
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(**kwargs)
        self.problem = problem
        self.step = LossStep(oracle.oracle(problem), definition, validate_args)
        self._config = {"validate_args": validate_args, **oracle.config(),
                        **(noise.config() if definition.perturbation is not None else {})}
        # the noise's seed or generator: a layer's (its oracle is never asked to solve)
        self._layer = None if definition.perturbation is None else IMLELayer(
            problem, definition.perturbation, noise_options=noise, validate_args=False)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None, **data: Any) -> tf.Tensor:
        token = _CALL_DATA.set(data)
        try:
            return _keeping_our_errors(super().__call__, y_true, y_pred, sample_weight=sample_weight)
        finally:
            _CALL_DATA.reset(token)

    def _values(self, y_pred: tf.Tensor, targets: dict[str, Any]) -> tf.Tensor:
        """The per-instance values of the loss of ``y_pred``, differentiable with respect to it."""
        given = _CALL_DATA.get()
        data = {name: value for name, value in given.items() if name in self.problem.instance_fields}
        targets = {**targets, **{name: given.get(name) for name in targets if name in given}}
        y_pred = tf.convert_to_tensor(y_pred)
        fixed = tf.stop_gradient(y_pred)
        plan, targets, data, poison = self.step.prepare_loss(fixed, targets, data)
        perturbation = self.step.definition.perturbation
        noise = None if perturbation is None else draw_noise(self._layer, perturbation, fixed)

        @tf.custom_gradient
        def values(prediction: tf.Tensor) -> tuple[tf.Tensor, Any]:
            result = self.step.values(plan, prediction, targets, noise, data, poison)

            def grad(grad_out: tf.Tensor) -> tf.Tensor:
                shape = tf.concat([tf.shape(grad_out), tf.ones([tf.rank(result.gradient) - 1], tf.int32)], 0)
                return tf.reshape(grad_out, shape) * result.gradient

            return result.value, grad

        return values(y_pred)

    def get_config(self) -> dict[str, Any]:
        """Keras' entries, the problem's config and the options as given; ``cache`` (runtime
        state, as :class:`IMLELayer`'s) is not part of it."""
        config = super().get_config() | {"dtype": self.dtype}
        return config | {"problem": serialization.to_config(self.problem), **self._config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        return cls(serialization.from_config(config.pop("problem")), **config)


@keras.saving.register_keras_serializable(package="imle_solvers")
class FenchelYoungLoss(_Loss):
    """The perturbed Fenchel-Young loss (:class:`imle_solvers.losses.FenchelYoung`, whose
    docstring lists the arguments) as a Keras loss, ``model.compile(loss=...)``: ``y_true``
    the observed structures, ``y_pred`` the scores (costs for a min problem). ``reduction``,
    ``name`` and ``dtype`` are ``keras.losses.Loss``'s (the default reduction is the batch
    mean, a skipped instance's 0 counted). Its noise state lives in an inner layer."""

    def __init__(self, problem: Problem, noise: Any = None, sigma: float = 1.0, samples: int = 1,
                 multiplicative: bool = False, **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        definition = FenchelYoung(perturbation(noise, sigma, samples, multiplicative))
        super().__init__(problem, definition, options, **keras_kwargs)
        self.noise, self.sigma, self.samples, self.multiplicative = definition.perturbation.noise, sigma, samples, multiplicative

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {"y_true": y_true})

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"noise": serialization.to_config(self.noise), "sigma": self.sigma,
                                       "samples": self.samples, "multiplicative": self.multiplicative}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        config["noise"] = serialization.from_config(config["noise"])
        return super().from_config(config)


@keras.saving.register_keras_serializable(package="imle_solvers")
class SPOPlusLoss(_Loss):
    """SPO+ (:class:`imle_solvers.losses.SPOPlus`) as a Keras loss: ``y_true`` the true costs
    ``c``, ``y_pred`` the predicted ``c_hat``; a direct call takes ``w_true`` and ``z_true``
    too, ``loss_fn(c, c_hat, w_true=..., **data)``."""

    def __init__(self, problem: Problem, **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        super().__init__(problem, SPOPlus(), options, **keras_kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {"c": y_true, "w_true": None, "z_true": None})
