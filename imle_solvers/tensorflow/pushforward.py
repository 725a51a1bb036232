"""The pushforward (:mod:`imle_solvers.pushforward`) in Keras: the expectation of a
post-processing of perturbed MAP states as a layer, differentiable in ``theta`` through a
``tf.custom_gradient`` (the score-function identity); eager, in ``tf.function`` and in
``model.fit``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from .. import pushforward as core
from ..errors import SerializationError
from ..frameworks.tensorflow import keeping_our_errors
from ..problems import Problem
from ..step import Plan
from .layer import IMLELayer

__all__ = ["Pushforward"]


class Pushforward(IMLELayer):
    r"""``theta (B, *problem.shape) -> mean_m g(MAP(theta + sigma Z_m))`` ``(B, *g_shape)``:
    the Monte-Carlo expectation of a post-processing ``g`` of ``samples`` perturbed MAP
    states (standard Normal ``Z_m``), differentiable in ``theta`` by
    ``E[<v, g(Y)> Z] / sigma`` (:mod:`imle_solvers.pushforward`), even where ``g`` is not
    differentiable (InferOpt's ``Pushforward``). It returns the expectation whatever
    ``training``.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        g: the post-processing, a function of TensorFlow tensors (traced inside a
            ``tf.function``, never differentiated): it takes all states
            ``(B, samples, *shape)`` (``theta``'s dtype) and returns ``(B, samples, *g_shape)``,
            a function of one state vectorised over the leading axes, e.g.
            ``lambda y: y[..., 0]``.
        sigma: the noise's scale, > 0.
        samples: the draws ``M`` averaged per instance.
        **options: as :class:`imle_solvers.tensorflow.IMLELayer`'s (``seed``,
            ``noise_source``, ``backend``, ``on_failure``, Keras' ``name``, ...). Under a
            failure policy the layer returns ``(value, status)``, a FAILED instance's value
            and gradient zero.

    ``g`` being a Python function, the layer has no config (``get_config`` raises); its
    weights (the noise state) save and load with ``save_weights``/``load_weights``.
    """

    def __init__(self, problem: Problem, g: Callable[[tf.Tensor], tf.Tensor], *, sigma: float = 1.0,
                 samples: int = 1, **options: Any) -> None:
        estimator = core.perturbation("Pushforward", sigma, samples)
        super().__init__(problem, estimator, **options)
        self.g = core.check_post_processing("Pushforward", g)
        self.sigma, self.samples = float(sigma), samples

    def get_config(self) -> dict[str, Any]:
        raise SerializationError("Pushforward: g is a Python function, so the layer has no config; "
                                 "save and load its weights (save_weights/load_weights) instead")

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        g_shape = tuple(self.g(tf.zeros((1, 1, *self.problem.shape))).shape[2:])
        shape = (input_shape[0], *g_shape)
        return (shape, tuple(input_shape[:1])) if self.step.with_status else shape

    def call(self, theta: tf.Tensor, training: bool = True, mask: Any = None, **data: Any) -> Any:
        """The expectation ``(B, *g_shape)`` (and the statuses ``(B,)``, under a failure
        policy) of ``theta`` ``(B, *shape)``; ``data``, ``mask``: as :class:`IMLELayer`'s."""
        return keeping_our_errors(self._call, theta, True, self.with_keras_mask(data, mask))

    def _step(self, plan: Plan, theta: tf.Tensor, data: dict[str, tf.Tensor], poison: Any) -> Any:
        noise, status = self._draw(theta), None

        @tf.custom_gradient
        def expectation(theta: tf.Tensor) -> tuple[tf.Tensor, Any]:
            nonlocal status
            value, status, values = core.forward(plan, self.estimator, self.g, theta, noise, data, poison)
            return value, lambda grad_value: core.backward(plan, noise, values, grad_value, self.sigma, status, poison)

        value = expectation(theta)
        return value if status is None else (value, status)
