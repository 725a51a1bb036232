"""The JAX losses: a loss definition (:mod:`imle_solvers.losses`) over the step, as a JAX
function reduced over the batch, differentiable through a ``jax.custom_vjp``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .. import loss_settings as settings
from ..frameworks.jax import draw_noise, scores_and_value, traced_oracle, unwrapping_errors
from ..losses import CMAP, NCE, ListwiseLTR, LossDefinition, PairwiseLTR, PointwiseLTR, check_reduction, reduce
from ..options import NoiseOptions, OracleOptions
from ..pool import grow
from ..problems import Problem
from ..step import LossStep, Plan, StepHolder

__all__ = [
    "CaVELoss", "CMAPLoss", "FenchelYoungLoss", "ListwiseLTRLoss", "NCELoss", "PairwiseLTRLoss", "PGLoss",
    "PointwiseLTRLoss", "RegularizedFenchelYoungLoss", "SPOPlusLoss", "StructuredSVMLoss",
]


class _Loss(settings.LossSettings, StepHolder):
    """A loss over the step (:class:`~imle_solvers.step.LossStep`) as a JAX function, reduced
    over the batch, differentiable through a ``jax.custom_vjp``; its constructor is a
    settings class's (:mod:`imle_solvers.loss_settings`)."""

    def build_loss(self, problem: Problem, definition: LossDefinition, reduction: str, validate_args: bool,
                   oracle_options: OracleOptions | None, noise_options: NoiseOptions | None, options: dict) -> None:
        owner = type(self).__name__
        oracle, self.noise_source = traced_oracle(owner, problem, options, oracle_options, noise_options)
        self.problem = problem
        self.reduction = check_reduction(owner, reduction)
        self.step = LossStep(oracle, definition, validate_args)
        self._compiled = jax.jit(self._values, static_argnums=0)

    def _loss(self, prediction: Any, targets: dict[str, Any], data: dict[str, Any], key: Any = None) -> jax.Array:
        prediction, fixed = scores_and_value(prediction)
        plan, targets, data, poison = self.step.prepare_loss(fixed, targets, data)
        perturbation = self.step.definition.perturbation
        noise = None if perturbation is None else draw_noise(perturbation, self.noise_source, fixed, key)
        return reduce(unwrapping_errors(self._compiled, plan, prediction, targets, noise, data, poison), self.reduction)

    def _values(self, plan: Plan, prediction: jax.Array, *inputs: Any) -> jax.Array:
        def forward(prediction: jax.Array, *inputs: Any) -> tuple[jax.Array, tuple]:
            result = self.step.values(plan, prediction, *inputs)
            return result.value, (result.gradient, inputs)

        def backward(saved: tuple, grad_out: jax.Array) -> tuple:
            gradient, inputs = saved
            # targets, noise, data and poison carry no gradient
            zeros = tuple(None if isinstance(x, dict) and not x else jax.tree.map(jnp.zeros_like, x) for x in inputs)
            return (jnp.reshape(grad_out, (-1, *(1,) * (gradient.ndim - 1))) * gradient, *zeros)

        core = jax.custom_vjp(lambda *args: forward(*args)[0])
        core.defvjp(forward, backward)
        return core(prediction, *inputs)


class FenchelYoungLoss(settings.FenchelYoungSettings, _Loss):
    """The perturbed Fenchel-Young loss (:class:`imle_solvers.losses.FenchelYoung`, whose
    docstring lists the arguments) as a JAX function: ``loss_fn(theta, y_true, key, **data)``,
    ``key`` a PRNG key (``noise_source="numpy"``: ``default_rng(numpy_seed(key))``)."""

    def __call__(self, theta: Any, y_true: Any, key: jax.Array, **data: Any) -> jax.Array:
        return self._loss(theta, {"y_true": y_true}, data, key)


class SPOPlusLoss(settings.SPOPlusSettings, _Loss):
    """SPO+ (:class:`imle_solvers.losses.SPOPlus`) as a JAX function: ``loss_fn(c_hat, c,
    w_true=None, z_true=None, **data)``."""

    def __call__(self, c_hat: Any, c: Any, w_true: Any = None, z_true: Any = None, **data: Any) -> jax.Array:
        return self._loss(c_hat, {"c": c, "w_true": w_true, "z_true": z_true}, data)


class StructuredSVMLoss(settings.StructuredSVMSettings, _Loss):
    """The structured SVM loss (:class:`imle_solvers.losses.StructuredSVM`) as a JAX function:
    ``loss_fn(theta, y_true, delta_weight=None, delta_constant=None, **data)``;
    ``base_loss="zero_one"``: the 0-1 loss (a KSubset only)."""

    def __call__(self, theta: Any, y_true: Any, delta_weight: Any = None, delta_constant: Any = None,
                 **data: Any) -> jax.Array:
        return self._loss(theta, {"y_true": y_true, "delta_weight": delta_weight, "delta_constant": delta_constant}, data)


class PGLoss(settings.PGSettings, _Loss):
    """The perturbation-gradient losses (:class:`imle_solvers.losses.PerturbationGradient`)
    as a JAX function: ``loss_fn(c_hat, c, **data)``; ``variant="backward"`` or ``"central"``."""

    def __call__(self, c_hat: Any, c: Any, **data: Any) -> jax.Array:
        return self._loss(c_hat, {"c": c}, data)


class RegularizedFenchelYoungLoss(settings.RegularizedFenchelYoungSettings, _Loss):
    """The Fenchel-Young loss of the quadratic regularizer by regularized Frank-Wolfe
    (:class:`imle_solvers.losses.RegularizedFenchelYoung`) as a JAX function:
    ``loss_fn(theta, y_true, **data)``. Its Frank-Wolfe loop, whose length depends on the
    values, runs whole on the host in one ``jax.pure_callback`` per call (one oracle call
    per iteration there), so it works under ``jax.jit``, ``jax.grad`` and ``jax.vmap``; the
    gradient is the loss's own, ``y_lambda - y_true`` (reverse mode only: ``jax.jvp`` is
    refused, as for every ``custom_vjp``)."""

    def __call__(self, theta: Any, y_true: Any, **data: Any) -> jax.Array:
        return self._loss(theta, {"y_true": y_true}, data)


class CaVELoss(settings.CaVESettings, _Loss):
    """Cone-aligned vector estimation (:class:`imle_solvers.losses.CaVE`, whose docstring
    lists the arguments) as a JAX function: ``loss_fn(c_hat, tight_ctrs)``, ``tight_ctrs``
    ``(B, R, *problem.shape)`` (:func:`imle_solvers.batch_tight_constraints`); the projection
    runs on the host in one ``jax.pure_callback``."""

    def __call__(self, c_hat: Any, tight_ctrs: Any) -> jax.Array:
        return self._loss(c_hat, {"tight_ctrs": tight_ctrs}, {})


class _PoolLoss(settings.PoolLossSettings, _Loss):
    """A loss over a pool of feasible states (:class:`imle_solvers.losses.PoolLoss`, whose
    docstring lists the arguments) as a JAX function: ``loss_fn(c_hat, target, pool=None)``.
    Without ``pool`` the loss's own pool (``loss_fn.pool``) grows before the call by its rule
    (eagerly, ``jax.grad`` included; under ``jax.jit`` only a fixed pool, ``solve_ratio=0``).
    ``pool`` ``(P, *problem.shape)``, e.g. ``loss_fn.pool.states``, is used as given and
    nothing grows (the jit-able form: grow the pool outside with :meth:`grow`)."""

    def __call__(self, c_hat: Any, target: Any, pool: Any = None) -> jax.Array:
        return self._loss(c_hat, {self.definition_type.targets[0]: target, "pool": pool}, {})

    def grow(self, c_hat: Any) -> int:
        """Solve the concrete predictions ``c_hat`` ``(B, *problem.shape)`` and add the new
        solutions to the pool (no coin); returns how many were new."""
        return grow(self.pool, self.oracle, jnp.asarray(c_hat))


class NCELoss(_PoolLoss):
    """NCE (:class:`imle_solvers.losses.NCE`): ``loss_fn(c_hat, w_true, pool=None)``."""

    definition_type = NCE


class CMAPLoss(_PoolLoss):
    """Contrastive MAP (:class:`imle_solvers.losses.CMAP`): ``loss_fn(c_hat, w_true, pool=None)``."""

    definition_type = CMAP


class PointwiseLTRLoss(_PoolLoss):
    """Pointwise learning to rank (:class:`imle_solvers.losses.PointwiseLTR`): ``loss_fn(c_hat, c, pool=None)``."""

    definition_type = PointwiseLTR


class PairwiseLTRLoss(_PoolLoss):
    """Pairwise learning to rank (:class:`imle_solvers.losses.PairwiseLTR`): ``loss_fn(c_hat, c, pool=None)``."""

    definition_type = PairwiseLTR


class ListwiseLTRLoss(_PoolLoss):
    """Listwise learning to rank (:class:`imle_solvers.losses.ListwiseLTR`): ``loss_fn(c_hat, c, pool=None)``."""

    definition_type = ListwiseLTR
