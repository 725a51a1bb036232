"""TensorFlow as a framework: eager tensors, or symbolic ones inside ``tf.function``
(``model.fit``), where the batch size may be unknown until run time.

Host calls are ``tf.numpy_function``. A check inside a graph asserts with a host call
that raises the worded error (``InvalidArgumentError`` carrying our message); inside an
XLA cluster (``jit_compile=True``), where no host call can run, the check returns a
poison instead: NaN rows in the step's output.

Also Keras' own: its random source for a layer (stateless draws keyed by the layer's
noise state, or its numpy generator), the backend it runs on, and how our errors pass
through its calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from .. import _binding
from ..errors import ImleSolversError, InvalidInputError
from ..noise import TensorFlowSource
from . import Array, HostFunction, ResultSpec, poison_of


class TensorFlowFramework:
    name = "tensorflow"
    traces = True

    def owns(self, x: Any) -> bool:
        return isinstance(x, (tf.Tensor, tf.Variable))

    def namespace(self, x: Array) -> Any:
        from . import tensorflow_namespace

        return tensorflow_namespace

    def device(self, x: Array) -> Any:
        return x.device

    def is_traced(self, x: Array) -> bool:
        return tf.is_symbolic_tensor(x)

    def on_accelerator(self, x: Array) -> bool:
        return "GPU" in x.device.upper()

    def batch_size(self, x: Array) -> Any:
        return x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x)

    def host_call(self, fn: HostFunction, args: Sequence[Array], results: Sequence[ResultSpec]) -> tuple:
        # stateful: tf.function runs stateful ops in program order, so a solve waits for the
        # checks of its call made before it (their error, not the solver's, on bad data)
        outputs = tf.numpy_function(fn, list(args), [dtype for _, dtype in results], stateful=True)
        if not isinstance(outputs, (list, tuple)):  # eager TensorFlow answers a single result as a tensor
            outputs = [outputs]
        for output, (shape, _) in zip(outputs, results):
            output.set_shape(shape)
        return tuple(outputs)

    def check_rows(
        self, ok: Array, report: HostFunction, args: Sequence[Array], template: str | None = None, values: Any = None
    ) -> Array | None:
        if tf.executing_eagerly():
            if ok is None or not bool(tf.reduce_all(ok)):
                report(*(np.asarray(a) for a in args))
            return None
        if in_xla_cluster() and ok is not None:
            return poison_of(ok, self.namespace(ok), tf.float32)

        if template is not None:  # worded in the graph: no host call at all
            index = tf.argmin(tf.cast(ok, tf.int32))
            text = template.format(index="{}", value="{}")
            message = tf.cond(tf.reduce_all(ok), lambda: tf.constant(""),
                              lambda: tf.strings.format(text, (index, tf.gather(values, index))))
            tf.debugging.Assert(tf.reduce_all(ok), [message])
            return None

        def reporting(*values: np.ndarray) -> np.bool_:
            report(*values)
            return np.bool_(True)

        def on_host() -> tf.Tensor:
            return tf.numpy_function(reporting, list(args), tf.bool, stateful=True)

        if ok is None:  # the device cannot tell: the host checks every call
            on_host()
        else:  # the host is called only when a row is bad (a stateful call: it runs though unused)
            tf.cond(tf.reduce_all(ok), lambda: tf.constant(True), on_host)
        return None


def in_xla_cluster() -> bool:
    """Whether the graph being built will be compiled by XLA (``jit_compile=True``)."""
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - TensorFlow moved its internals
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


FRAMEWORK = TensorFlowFramework()


def check_keras_backend(owner: str) -> None:
    """Refuse to build ``owner`` (a Keras layer or loss of ours) off Keras' TensorFlow backend."""
    import keras  # imported here: TensorFlow arrays alone do not need it

    if keras.backend.backend() != "tensorflow":
        raise InvalidInputError(
            f"{owner} runs on Keras' TensorFlow backend, and KERAS_BACKEND is {keras.backend.backend()!r}: use "
            "imle_solvers.jax (JAX) or imle_solvers.torch (torch) directly, or KERAS_BACKEND=tensorflow"
        )


def keeping_our_errors(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(...)``; an error of ours leaves as raised: Keras rebuilds a layer's or loss's
    exception as ``type(error)(message + context)``, which drops a SolverError's index and
    status, unless it is marked as already annotated (our messages name the batch index)."""
    try:
        return call(*args, **kwargs)
    except ImleSolversError as error:
        error._keras_call_info_injected = True
        raise


def draw_noise(layer: Any, estimator: Any, theta: tf.Tensor) -> tf.Tensor | None:
    """The noise of a call of ``layer`` (its seed or generator) for ``estimator``, or None."""
    if estimator.noise is None:
        return None
    if layer.noise_source == "native":
        return estimator.draw(theta, TensorFlowSource(layer.next_seed, theta.dtype, tf.shape(theta)[0]))

    def host(theta_shape: np.ndarray) -> np.ndarray:
        return _binding.numpy_noise(estimator, tuple(theta_shape), theta.dtype.as_numpy_dtype, [layer.rng])[0]

    noise = tf.numpy_function(host, [tf.shape(theta)], theta.dtype, stateful=True)
    noise.set_shape(_binding.noise_shape(estimator, tuple(theta.shape)))
    return noise
