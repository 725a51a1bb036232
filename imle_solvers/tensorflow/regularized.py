"""The regularized Frank-Wolfe optimizer (:mod:`imle_solvers.regularized`) as a Keras layer:
PyEPO's ``regularizedFrankWolfeOpt``, InferOpt's ``RegularizedFrankWolfe``, differentiable
through a ``tf.custom_gradient``; its loop runs on the host in one ``tf.numpy_function``, so
the layer works eagerly, in ``tf.function`` and in compiled ``model.fit`` (not under XLA)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from .. import regularized as core
from .. import serialization
from ..frameworks.tensorflow import check_keras_backend, keeping_our_errors
from ..options import OracleOptions, take_options
from ..problems import Problem
from ..step import Step, StepHolder
from .masking import KerasMaskAsData

__all__ = ["RegularizedFrankWolfe"]


@keras.saving.register_keras_serializable(package="imle_solvers")
class RegularizedFrankWolfe(StepHolder, KerasMaskAsData, keras.layers.Layer):
    """The regularized solution ``y_lambda`` of ``problem`` as a Keras layer:
    ``layer(theta, **data)`` ``(B, *problem.shape)`` -> ``(B, *problem.shape)`` in
    ``theta``'s dtype, the point of the states' hull maximising
    ``<sign theta, mu> - lambd/2 ||mu||^2`` (``theta`` scores, or costs for a min problem),
    differentiable (the Jacobian ``P / lambd`` on its optimal face, PyEPO's), whatever
    ``training``. Pair it with a task loss (e.g. the squared distance to the true solution).

    Args:
        problem: the problem whose MAP oracle is the linear-minimisation oracle.
        lambd, max_iter, tol: as :class:`imle_solvers.losses.RegularizedFenchelYoung`'s.
        validate_args, oracle_options, **options: as :class:`imle_solvers.torch.RegularizedFrankWolfe`'s
            (a failed solve raises, no failure policy); other keywords go to
            ``keras.layers.Layer`` (``name``, ...).

    Masks: a Keras mask arriving with ``theta`` is a :class:`~imle_solvers.KSubset`'s
    ``mask``, as for :class:`IMLELayer`. Saving: ``get_config``/``from_config`` (and so
    ``model.save`` and ``keras.models.load_model``) round-trip the layer; it has no weights.
    """

    def __init__(self, problem: Problem, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6, *,
                 validate_args: bool = True, oracle_options: OracleOptions | None = None, **options: Any) -> None:
        check_keras_backend(core.OWNER)
        self.settings = core.FrankWolfeSettings(lambd, max_iter, tol)
        oracle, _, layer_options = take_options(core.OWNER, options, oracle_options, noise=(), others=True)
        layer_options.pop("trainable", None)  # a config's entry: the layer has no trainable weights
        super().__init__(trainable=False, **layer_options)
        self._oracle_options = oracle
        self.problem, self.lambd, self.max_iter, self.tol = problem, self.settings.lambd, max_iter, self.settings.tol
        self.step = Step(core.check_no_failure_policy(oracle.oracle(problem)), validate_args)
        self.take_keras_masks(problem)
        self.supports_jit = False  # XLA compiles TensorFlow ops only: the loop is a host call

    def get_config(self) -> dict[str, Any]:
        """Keras' entries, the problem's config (:func:`imle_solvers.serialization.to_config`),
        the settings and the options as given (``cache``, runtime state, is not part of it)."""
        config = super().get_config()
        config.pop("trainable", None)
        return config | {"problem": serialization.to_config(self.problem), **self.settings.config(),
                         "validate_args": self.step.validate_args, **self._oracle_options.config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RegularizedFrankWolfe:
        config = dict(config)
        return cls(serialization.from_config(config.pop("problem")), **config)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def compute_output_spec(self, theta: Any, *args: Any, **kwargs: Any) -> Any:
        return keras.KerasTensor(tuple(theta.shape), dtype=theta.dtype)

    def call(self, theta: tf.Tensor, mask: Any = None, **data: Any) -> tf.Tensor:
        """The regularized solutions ``(B, *shape)`` of ``theta`` ``(B, *shape)``; ``data``: the
        instances' own data by field name (``problem.instance_fields``), carrying no gradient;
        ``mask``: Keras' mask, a KSubset's ``mask``."""
        return keeping_our_errors(self._call, theta, self.with_keras_mask(data, mask))

    def _call(self, theta: Any, data: dict[str, Any]) -> tf.Tensor:
        theta = tf.convert_to_tensor(theta)
        plan, data, poison = self.step.prepare(tf.stop_gradient(theta), data)
        settings = self.settings

        @tf.custom_gradient
        def regularized_map(theta: tf.Tensor) -> tuple[tf.Tensor, Any]:
            solution, vertices, weights = core.forward(plan, settings, theta, data, poison)
            return solution, lambda cotangent: core.backward(plan, settings, vertices, weights, cotangent, poison)

        return regularized_map(theta)
