"""TensorFlow binding: a Keras layer over the framework-free estimators.

The estimator's math (:mod:`imle_solvers.estimators`) runs on TensorFlow tensors
(through :mod:`imle_solvers._tf_namespace`) inside a ``tf.custom_gradient``; noise is
drawn with TensorFlow's stateless random ops from a seed the layer keeps as a weight. An array-native solver
(top-k) runs as TensorFlow ops, so such a layer needs no host callback, eagerly, inside
``tf.function`` and in ``model.fit``; other solvers are reached through
``tf.numpy_function`` (and then the layer sets ``supports_jit = False``: a host callback
cannot be XLA-compiled).

Randomness: ``noise_source="native"`` (default) makes stateless TensorFlow draws keyed
by ``(seed, counter)``, a non-trainable int64 weight ``noise_state`` of the layer, so a
model restored from its weights draws what the saved one would have drawn next. ``noise_source="numpy"`` draws each call's noise in turn from
``numpy.random.default_rng(seed)``, exactly as the torch layer with the same seed.
An adaptive estimator's state (AIMLE) is held in non-trainable float64 weights, one
per field (``beta``, ``nnz_average``, ``steps``), updated by each backward pass and
saved with the model's weights.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _binding, serialization
from ._binding import NoiseSource
from .errors import ImleSolversError, missing_dependency
from .estimators import Estimator, output_shape
from .failures import OnFailure, batch_size, gradient_with_status, sample_with_status
from .instances import check_values, invalid_on_device, per_instance
from .noise import TensorFlowSource
from .oracle import MAPOracle
from .problems import Problem
from .problems.base import NON_FINITE_MESSAGE, check_batch_shape, check_finite

try:
    import keras
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - exercised without tensorflow installed
    raise missing_dependency("tensorflow", "tensorflow") from error

__all__ = ["FenchelYoungLoss", "IMLELayer", "SPOPlusLoss", "imle"]

# the entry of a saved layer's store that holds its numpy generator's state (noise_source="numpy")
_GENERATOR_KEY = "numpy_generator_state"


@keras.saving.register_keras_serializable(package="imle_solvers")
class IMLELayer(keras.layers.Layer):
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
        backend: solver name (see ``imle_solvers.list_solvers``) or ``"auto"``.
        seed: seed of the layer's noise (None: drawn from Python's ``random``, which
            ``keras.utils.set_random_seed`` seeds, as Keras' own layers do; with
            ``noise_source="numpy"``, fresh entropy).
        noise_source: ``"native"`` (default) draws with TensorFlow on the layer's device;
            ``"numpy"`` draws on the host from ``numpy.random.default_rng(seed)``, identical
            in torch, JAX and Keras.
        validate_args: check that ``theta`` is finite (inside ``tf.function`` with a
            ``tf.debugging.Assert``), and give NaN gradients to rows whose ``dL/dz`` is not
            finite; False skips both, and a layer whose solver is array-native then compiles
            with XLA (``supports_jit``).
        n_jobs, parallel_backend, chunk_size, time_limit, on_failure, cache: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md and docs/failures.md); ``cache`` (runtime
            state) is not part of :meth:`get_config`.
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ...).

    Saving: ``model.save("m.keras")`` and ``keras.models.load_model`` round-trip the layer
    (problem, estimator and options through :meth:`get_config`, see
    :mod:`imle_solvers.serialization`; the noise and estimator state as weights), as do
    ``save_weights``/``load_weights``.
    """

    def __init__(
        self,
        problem: Problem,
        estimator: Estimator,
        backend: str = "auto",
        seed: int | None = None,
        noise_source: NoiseSource = "native",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=False, **kwargs)
        _binding.check_estimator("IMLELayer", estimator)
        # the arguments as given, for get_config (backend "auto" is resolved again on loading)
        self._options = {
            "backend": backend,
            "seed": seed,
            "noise_source": noise_source,
            "validate_args": validate_args,
            "n_jobs": n_jobs,
            "parallel_backend": parallel_backend,
            "chunk_size": chunk_size,
            "time_limit": time_limit,
            "on_failure": on_failure,
        }
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
        # Keras reads a ``mask=`` argument as its own masking (see compute_mask)
        self.supports_masking = "mask" in problem.instance_fields
        # XLA compiles TensorFlow ops only: no host callback, no string-formatting check
        self.supports_jit = self.oracle.solver.runs_on("tensorflow") and not validate_args
        self._compiled_step = tf.function(self._step, reduce_retracing=True)
        if noise_source == "native":
            self.noise_state = self.add_weight(
                name="noise_state",
                shape=(2,),
                dtype="int64",
                initializer=keras.initializers.Constant([random.randint(1, 10**9) if seed is None else seed, 0]),
                trainable=False,
            )
        else:
            self.rng = _binding.generator(seed)
        initial = estimator.initial_state()
        self.state_variables = [
            self.add_weight(
                name=name,
                shape=(),
                dtype="float64",
                initializer=keras.initializers.Constant(float(value)),
                trainable=False,
            )
            for name, value in ({} if initial is None else initial.state_dict()).items()
        ]

    @property
    def failures(self) -> Any:
        """Failed solves of instances by reason, since built (``oracle.failures``, a ``Counter``)."""
        return self.oracle.failures

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
            **self._options,
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

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """Keras' mask of z: the ``mask=`` argument where it is of z's shape (a KSubset's mask
        means the same on z: positions that may be chosen), else none."""
        field = self.problem.instance_fields.get("mask")
        return previous_mask if field.shape == self.problem.shape and self.estimator.samples == 1 else None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        shape = output_shape(tuple(input_shape), self.estimator.samples)
        return (shape, tuple(input_shape[:1])) if self._with_status else shape

    def call(self, theta: tf.Tensor, training: bool = True, **data: Any) -> tf.Tensor:
        """``z`` (and the statuses, under a failure policy) of ``theta`` ``(B, *shape)``;
        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)``, carrying no gradient."""
        try:
            return self._call(theta, training, data)
        except ImleSolversError as error:
            # Keras rebuilds a layer's exception as ``type(error)(message + context)``, which
            # drops a SolverError's index and status; marked as already annotated, it is
            # re-raised as it is (our messages name the failing batch index themselves)
            error._keras_call_info_injected = True
            raise

    def _call(self, theta: tf.Tensor, training: bool, data: dict[str, Any]) -> tf.Tensor:
        theta = tf.convert_to_tensor(theta)
        check_batch_shape(tuple(theta.shape), self.problem.shape, "theta")
        self._check_theta(theta)
        data = self._instance_data(data, theta)
        if not training:
            if self._with_status:
                z, status = self._solve_with_status(theta, data)
                return tf.stop_gradient(z), status
            return tf.stop_gradient(self._solve(theta, data))
        # Eagerly, the step runs as one graph: dozens of eager ops would cost more than the
        # solve. Not with a state to update: a gradient function's assignments to variables
        # do not run when an eager tape differentiates through a tf.function. Nor with a host
        # callback: inside a graph, an exception it raises is logged twice by TensorFlow and
        # arrives wrapped in an UnknownError, where eagerly tf.numpy_function calls it
        # directly and it arrives as raised (a host solve costs more than the eager ops).
        compiled = tf.executing_eagerly() and not self.state_variables and not self._calls_host(theta)
        return (self._compiled_step if compiled else self._step)(theta, data)

    def _instance_data(self, data: dict[str, Any], theta: tf.Tensor) -> dict[str, tf.Tensor]:
        """The call's data as tensors, checked; inside a graph their values are checked on the
        host by a ``tf.numpy_function`` when ``validate_args`` (eagerly, read directly)."""
        data = _binding.instance_data(self.oracle, data, theta, self.validate_args)
        if self.validate_args and data and not tf.executing_eagerly():
            check = functools.partial(_check_data_on_host, self.problem, tuple(data))

            def on_host() -> tf.Tensor:
                return tf.numpy_function(check, list(data.values()), tf.bool, stateful=True)

            bad = invalid_on_device(self.problem, data)
            if bad is None:  # the problem checks on the host only
                on_host()
            else:  # the host is called only when an instance is bad
                tf.cond(tf.reduce_any(bad), on_host, lambda: tf.constant(True))
        return data

    def _calls_host(self, theta: tf.Tensor) -> bool:
        """Whether a step on ``theta`` leaves TensorFlow: a solver that is not array-native,
        or numpy noise."""
        noise_on_host = self.estimator.noise is not None and self.noise_source == "numpy"
        return noise_on_host or not self.oracle.solver_for(theta).runs_on("tensorflow")

    def _step(self, theta: tf.Tensor, data: dict[str, tf.Tensor]) -> tf.Tensor:
        state = tf.stack([v.value for v in self.state_variables]) if self.state_variables else None
        return self._sample(theta, self._draw(theta), state, data)

    def _sample(
        self, theta: tf.Tensor, noise: tf.Tensor | None, state: tf.Tensor | None, data: dict[str, tf.Tensor]
    ) -> Any:
        sign = self.problem.sign
        status = None
        batch = batch_size(theta)
        solve = per_instance(self._naming_solve(batch), data, batch)
        solve_with_status = per_instance(self._solve_with_status, data, batch)

        @tf.custom_gradient
        def sample(theta: tf.Tensor) -> tuple[tf.Tensor, Any]:
            nonlocal status
            if self._with_status:
                z, status, residuals = sample_with_status(self.estimator, theta, noise, solve_with_status, sign)
            else:
                z, residuals = self.estimator.sample_with(theta, noise, solve, sign=sign)

            def grad(grad_z: tf.Tensor) -> tf.Tensor:
                old = None if state is None else _binding.state_from_vector(self.estimator, state)
                if status is None:
                    grad_theta, new = self.estimator.gradient(residuals, grad_z, solve, old)
                else:
                    grad_theta, new = gradient_with_status(
                        self.estimator, residuals, grad_z, solve_with_status, old, status
                    )
                if self.validate_args:
                    grad_theta = _binding.nan_where_not_finite(grad_z, grad_theta)
                if new is not None:
                    vector = _binding.state_to_vector(new, state)
                    for i, variable in enumerate(self.state_variables):
                        variable.assign(vector[i])
                return grad_theta

            return z, grad

        z = sample(theta)
        return (z, status) if self._with_status else z

    def _draw(self, theta: tf.Tensor) -> tf.Tensor | None:
        """The call's noise ``(B, samples, marginal_samples, *shape)``, or None."""
        if self.estimator.noise is None:
            return None
        if self.noise_source == "native":
            return self.estimator.draw(theta, TensorFlowSource(self._next_seed, theta.dtype, tf.shape(theta)[0]))
        host = functools.partial(self._numpy_noise_host, dtype=theta.dtype.as_numpy_dtype)
        noise = tf.numpy_function(host, [tf.shape(theta)], theta.dtype, stateful=True)
        noise.set_shape(_binding.noise_shape(self.estimator, tuple(theta.shape)))
        return noise

    def _next_seed(self) -> tf.Tensor:
        """The seed of one stateless draw: the noise state, whose counter then moves on (as
        ``keras.random.SeedGenerator``, but a weight of the layer, so saved with the model)."""
        current = self.noise_state.value * 1
        self.noise_state.assign(current + tf.constant([0, 1], dtype=current.dtype))
        return tf.cast(tf.math.floormod(current, 2**31 - 1), tf.int32)  # int32 seeds compile with XLA

    def _naming_solve(self, batch: Any) -> Callable:
        """:meth:`_solve` for a batch of ``batch`` instances, whose errors name the instance
        (where the batch size is known when the graph is traced)."""
        return lambda x, data: self._solve(x, data, per=_binding.rows_per_instance(x, batch))

    def _solve(self, theta: tf.Tensor, data: dict[str, tf.Tensor], per: int = 1) -> tf.Tensor:
        """MAP states of ``(N, *shape)`` with their rows' ``data``: as TensorFlow ops when the
        solver is array-native, else on the host (``per``: rows per instance, which a
        failure's error then names, see :func:`imle_solvers._binding.instance_error`)."""
        if self.oracle.solver_for(theta).runs_on("tensorflow"):
            return self.oracle(theta, validate=False, **data)
        wrap = None if per == 1 else _binding.InstanceErrors(self.oracle, per)
        host = _binding.HostSolve(self.oracle, tuple(data), wrap).states
        z = tf.numpy_function(host, [theta, *data.values()], theta.dtype, stateful=False)
        z.set_shape(theta.shape)
        return z

    def _solve_with_status(self, theta: tf.Tensor, data: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """:meth:`_solve`, and the ``(N,)`` statuses (see :mod:`imle_solvers.failures`)."""
        if self.oracle.solver_for(theta).runs_on("tensorflow"):
            return self.oracle.solve(theta, validate=False, **data)
        host = _binding.HostSolve(self.oracle, tuple(data))
        z, status = tf.numpy_function(host, [theta, *data.values()], [theta.dtype, tf.int8], stateful=False)
        z.set_shape(theta.shape)
        status.set_shape(theta.shape[:1])
        return z, status

    def _check_theta(self, theta: tf.Tensor) -> None:
        """Raise naming the first non-finite batch index of ``theta``, if ``validate_args``;
        inside ``tf.function`` through a ``tf.debugging.Assert``."""
        if not self.validate_args:
            return
        if tf.executing_eagerly():
            check_finite(theta, "theta")
            return
        rows = tf.reshape(theta, (tf.shape(theta)[0], -1))
        finite = tf.math.is_finite(rows)
        all_finite = tf.reduce_all(finite)

        def message() -> tf.Tensor:
            index = tf.argmin(tf.cast(tf.reduce_all(finite, axis=1), tf.int32))
            value = tf.gather(rows[index], tf.argmin(tf.cast(finite[index], tf.int32)))
            return tf.strings.format(NON_FINITE_MESSAGE.format(name="theta", index="{}", value="{}"), (index, value))

        tf.debugging.Assert(all_finite, [tf.cond(all_finite, lambda: tf.constant(""), message)])

    # --- host side (numpy) --------------------------------------------------------------

    def _numpy_noise_host(self, theta_shape: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return _binding.numpy_noise(self.estimator, tuple(theta_shape), dtype, [self.rng])[0]


def _check_data_on_host(problem: Problem, names: tuple[str, ...], *values: np.ndarray) -> np.ndarray:
    """Host side of the graph's check of per-instance data."""
    check_values(problem, dict(zip(names, values)))
    return np.bool_(True)


def imle(problem: Problem, estimator: Estimator, **options: Any) -> IMLELayer:
    """The differentiable Keras layer of ``problem`` under ``estimator``: the same entry
    point as :func:`imle_solvers.torch.imle` and :func:`imle_solvers.jax.imle`
    (``options`` as :class:`IMLELayer`'s)."""
    return IMLELayer(problem, estimator, **options)


# --- losses (imle_solvers.losses) ------------------------------------------------------


class _OracleLoss(keras.losses.Loss):
    """What both losses share: a Keras ``Loss`` whose ``call(y_true, y_pred)`` gives the
    ``(B,)`` per-instance values (Keras reduces them), differentiable with respect to
    ``y_pred`` through a ``tf.custom_gradient`` over :mod:`imle_solvers.losses`. Solves,
    draws and checks are an inner :class:`IMLELayer`'s (whose oracle has the failure policy
    and the cache). Per-instance data (and SPO+'s ``w_true``, ``z_true``) are keywords of a
    direct call, ``loss_fn(y_true, y_pred, **data)``; ``model.fit`` passes none."""

    def __init__(self, problem: Problem, estimator: Estimator, options: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(**kwargs)
        self.problem = problem
        self._options = options
        self._layer = IMLELayer(problem, estimator, **options)
        self.oracle = self._layer.oracle
        self._data: dict[str, Any] = {}

    @property
    def failures(self) -> Any:
        """Failed solves by reason, since built (``oracle.failures``, a ``Counter``)."""
        return self.oracle.failures

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None, **data: Any) -> tf.Tensor:
        self._data = data
        try:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        except ImleSolversError as error:
            error._keras_call_info_injected = True  # as IMLELayer.call: keep our exception as raised
            raise
        finally:
            self._data = {}

    def _prepare(self, y_pred: tf.Tensor) -> tuple[Any, Any]:
        """A call's checks, and its two solves (states; states and statuses), each row with
        its instance's data."""
        data = {name: value for name, value in self._data.items() if name in self.problem.instance_fields}
        check_batch_shape(tuple(y_pred.shape), self.problem.shape, "y_pred")
        self._layer._check_theta(y_pred)
        data = self._layer._instance_data(data, y_pred)
        batch = batch_size(y_pred)
        solve = per_instance(self._layer._naming_solve(batch), data, batch)
        return solve, per_instance(self._layer._solve_with_status, data, batch)

    def _values(self, y_pred: tf.Tensor, solves: tuple[Any, Any], loss: Any) -> tf.Tensor:
        """The per-instance values of ``loss(prediction, solve)`` under the oracle's failure
        policy (:func:`imle_solvers.losses.under_policy`), differentiable with respect to ``y_pred``."""
        from .losses import under_policy

        (solve, with_status), policy = solves, self.oracle.on_failure

        @tf.custom_gradient
        def values(prediction: tf.Tensor) -> tuple[tf.Tensor, Any]:
            result = under_policy(lambda s: loss(prediction, s), prediction, solve, with_status, policy)

            def grad(grad_out: tf.Tensor) -> tf.Tensor:
                shape = tf.concat([tf.shape(grad_out), tf.ones([tf.rank(result.gradient) - 1], tf.int32)], 0)
                return tf.reshape(grad_out, shape) * result.gradient

            return result.value, grad

        return values(y_pred)

    def get_config(self) -> dict[str, Any]:
        """Keras' entries, the problem's config and the options as given; ``cache`` (runtime
        state, as :class:`IMLELayer`'s) is not part of it."""
        config = super().get_config() | {"dtype": self.dtype}
        options = {name: value for name, value in self._options.items() if name != "cache"}
        return config | {"problem": serialization.to_config(self.problem), **options}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        return cls(serialization.from_config(config.pop("problem")), **config)


@keras.saving.register_keras_serializable(package="imle_solvers")
class FenchelYoungLoss(_OracleLoss):
    """The perturbed Fenchel-Young loss (Berthet et al., 2020) as a Keras loss:
    ``model.compile(loss=FenchelYoungLoss(problem, ...))``, ``y_true`` the observed
    structures and ``y_pred`` the scores (costs for a min problem), ``(B, *problem.shape)``.
    Its gradient with respect to ``y_pred`` is ``y_sigma(theta) - y_true`` for a max problem
    and ``y_true - y_sigma(w)`` for a min problem (see :mod:`imle_solvers.losses`).

    Args: as :class:`imle_solvers.torch.FenchelYoungLoss` (``noise``, ``sigma``, ``samples``,
    ``multiplicative``, and the options of :class:`IMLELayer`: ``seed``, ``noise_source``,
    ``on_failure``, ``cache``, ...), ``reduction`` as ``keras.losses.Loss``'s (default
    ``"sum_over_batch_size"``, the batch mean: a skipped instance's 0 counts in it), ``name``
    and ``dtype`` too (``dtype`` defaults to Keras' ``floatx``, which ``y_pred`` is cast to).
    The noise state lives in the inner layer, not in a model's weights.
    """

    def __init__(
        self,
        problem: Problem,
        noise: Any = None,
        sigma: float = 1.0,
        samples: int = 1,
        backend: str = "auto",
        seed: int | None = None,
        noise_source: NoiseSource = "native",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
        multiplicative: bool = False,
        **kwargs: Any,
    ) -> None:
        from .losses import perturbation

        estimator = perturbation(noise, sigma, samples, multiplicative)
        noise = estimator.noise
        options = _binding.options_of(locals(), (*_binding.ORACLE_OPTIONS, "seed", "noise_source", "validate_args"))
        super().__init__(problem, estimator, options, **kwargs)
        self.noise, self.sigma, self.samples, self.multiplicative = noise, sigma, samples, multiplicative

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        from .losses import fenchel_young

        y_pred = tf.convert_to_tensor(y_pred)
        solves = self._prepare(y_pred)
        noise = self._layer._draw(tf.stop_gradient(y_pred))
        y_true = tf.cast(y_true, y_pred.dtype)
        sign, sigma, multiplicative = self.problem.sign, self.sigma, self.multiplicative

        def loss(t: tf.Tensor, solve: Any) -> Any:
            return fenchel_young(t, y_true, noise, solve, sign=sign, sigma=sigma, multiplicative=multiplicative)

        return self._values(y_pred, solves, loss)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"noise": serialization.to_config(self.noise), "sigma": self.sigma,
                                       "samples": self.samples, "multiplicative": self.multiplicative}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        config["noise"] = serialization.from_config(config["noise"])
        return super().from_config(config)


@keras.saving.register_keras_serializable(package="imle_solvers")
class SPOPlusLoss(_OracleLoss):
    """SPO+ (Elmachtoub and Grigas) as a Keras loss: ``y_true`` the true costs ``c``,
    ``y_pred`` the predicted ``c_hat`` (scores for a max problem), ``(B, *problem.shape)``;
    a direct call takes ``w_true`` ``(B, *shape)`` and ``z_true`` ``(B,)`` too (else the
    oracle solves ``c``), ``loss_fn(c, c_hat, w_true=..., **data)``. Subgradient with respect
    to ``y_pred``: ``2 (w*(c) - w*(2 c_hat - c))`` for a min problem (see
    :mod:`imle_solvers.losses`). Options as :class:`FenchelYoungLoss`'s (no noise),
    ``on_failure`` and ``cache`` included."""

    def __init__(
        self,
        problem: Problem,
        backend: str = "auto",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
        **kwargs: Any,
    ) -> None:
        from .estimators import STE

        options = _binding.options_of(locals(), (*_binding.ORACLE_OPTIONS, "validate_args"))
        super().__init__(problem, STE(), options, **kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        from .losses import spo_plus

        y_pred = tf.convert_to_tensor(y_pred)
        solves = self._prepare(y_pred)
        c = tf.cast(y_true, y_pred.dtype)
        w_true, z_true = (self._data.get(name) for name in ("w_true", "z_true"))
        w_true = None if w_true is None else tf.cast(w_true, y_pred.dtype)
        z_true = None if z_true is None else tf.cast(z_true, y_pred.dtype)
        sign = self.problem.sign

        def loss(prediction: tf.Tensor, solve: Any) -> Any:
            return spo_plus(prediction, c, solve, sign=sign, w_true=w_true, z_true=z_true)

        return self._values(y_pred, solves, loss)
