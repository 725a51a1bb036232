"""The Keras losses: a loss definition (:mod:`imle_solvers.losses`) over the step, as a
``keras.losses.Loss`` differentiable through a ``tf.custom_gradient``."""

from __future__ import annotations

import contextvars
from typing import Any

import keras
import tensorflow as tf

from .. import serialization
from ..frameworks.tensorflow import check_keras_backend, draw_noise, keeping_our_errors
from ..losses import (
    CaVE,
    FenchelYoung,
    LossDefinition,
    PerturbationGradient,
    RegularizedFenchelYoung,
    SPOPlus,
    StructuredSVM,
    perturbation,
)
from ..options import take_options
from ..problems import Problem
from ..step import LossStep, StepHolder
from .layer import IMLELayer

__all__ = ["CaVELoss", "FenchelYoungLoss", "PGLoss", "RegularizedFenchelYoungLoss", "SPOPlusLoss", "StructuredSVMLoss"]

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
        check_keras_backend(owner)
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
            return keeping_our_errors(super().__call__, y_true, y_pred, sample_weight=sample_weight)
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


@keras.saving.register_keras_serializable(package="imle_solvers")
class StructuredSVMLoss(_Loss):
    """The structured SVM loss (:class:`imle_solvers.losses.StructuredSVM`) as a Keras loss:
    ``y_true`` the target structures, ``y_pred`` the scores (costs for a min problem); a
    direct call takes ``delta_weight`` and ``delta_constant`` too, ``loss_fn(y, theta,
    delta_weight=..., **data)`` (else the Hamming loss; ``base_loss="zero_one"``: the 0-1
    loss, a KSubset only)."""

    def __init__(self, problem: Problem, alpha: float = 1.0, base_loss: str = "hamming", **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        definition = StructuredSVM(alpha, base_loss)
        definition.check_problem(problem)
        super().__init__(problem, definition, options, **keras_kwargs)
        self.alpha, self.base_loss = alpha, base_loss

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {"y_true": y_true, "delta_weight": None, "delta_constant": None})

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"alpha": self.alpha, "base_loss": self.base_loss}


@keras.saving.register_keras_serializable(package="imle_solvers")
class PGLoss(_Loss):
    """The perturbation-gradient losses (:class:`imle_solvers.losses.PerturbationGradient`)
    as a Keras loss: ``y_true`` the true costs ``c``, ``y_pred`` the predicted ``c_hat``
    (scores for a max problem); ``variant="backward"`` or ``"central"``."""

    def __init__(self, problem: Problem, sigma: float = 0.1, variant: str = "backward", **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        super().__init__(problem, PerturbationGradient(sigma, variant), options, **keras_kwargs)
        self.sigma, self.variant = sigma, variant

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {"c": y_true})

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"sigma": self.sigma, "variant": self.variant}


@keras.saving.register_keras_serializable(package="imle_solvers")
class RegularizedFenchelYoungLoss(_Loss):
    """The Fenchel-Young loss of the quadratic regularizer by regularized Frank-Wolfe
    (:class:`imle_solvers.losses.RegularizedFenchelYoung`) as a Keras loss: ``y_true`` the
    observed structures, ``y_pred`` the predicted scores (costs for a min problem); the
    Frank-Wolfe loop runs in one ``tf.numpy_function`` per call, so compiled ``fit`` works."""

    def __init__(self, problem: Problem, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6,
                 **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        super().__init__(problem, RegularizedFenchelYoung(lambd, max_iter, tol), options, **keras_kwargs)
        self.lambd, self.max_iter, self.tol = lambd, max_iter, tol

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {"y_true": y_true})

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"lambd": self.lambd, "max_iter": self.max_iter, "tol": self.tol}


@keras.saving.register_keras_serializable(package="imle_solvers")
class CaVELoss(_Loss):
    """Cone-aligned vector estimation (:class:`imle_solvers.losses.CaVE`) as a Keras loss:
    ``y_true`` the tight constraints' normals ``(B, R, *problem.shape)``
    (:func:`imle_solvers.batch_tight_constraints`), ``y_pred`` the predicted costs (scores
    for a max problem); the projection runs on the host (``tf.numpy_function``)."""

    def __init__(self, problem: Problem, solve_ratio: float = 1.0, inner_ratio: float = 0.2, seed: int | None = None,
                 max_iter: int | None = None,
                 **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        super().__init__(problem, CaVE(solve_ratio, inner_ratio, seed, max_iter), options, **keras_kwargs)
        self.solve_ratio, self.inner_ratio, self.seed, self.max_iter = solve_ratio, inner_ratio, seed, max_iter

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {"tight_ctrs": y_true})

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"solve_ratio": self.solve_ratio, "inner_ratio": self.inner_ratio,
                                       "seed": self.seed, "max_iter": self.max_iter}
