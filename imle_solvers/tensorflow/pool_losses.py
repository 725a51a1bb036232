"""The Keras losses over a pool of feasible states (:class:`~imle_solvers.pool.SolutionPool`):
NCE, contrastive MAP and learning to rank, on the losses' common Keras base (:mod:`.losses`)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ..losses import CMAP, NCE, ListwiseLTR, PairwiseLTR, PointwiseLTR, PoolLoss
from ..pool import SolutionPool, as_pool
from ..problems import Problem
from .losses import _Loss

__all__ = ["CMAPLoss", "ListwiseLTRLoss", "NCELoss", "PairwiseLTRLoss", "PointwiseLTRLoss"]


class _PoolLoss(_Loss):
    """A loss over a pool of feasible states (:class:`imle_solvers.losses.PoolLoss`, whose
    docstring lists the arguments) as a Keras loss: ``y_true`` the target (true solutions
    or costs), ``y_pred`` the predicted costs (scores for a max problem). The pool
    (``loss_fn.pool``) grows before each eager call by its rule; Keras' compiled ``fit``
    traces the loss, so a growing pool needs ``model.compile(..., run_eagerly=True)`` (a
    fixed pool, ``solve_ratio=0``, works compiled). The config holds the pool's states,
    ``solve_ratio`` and seed as they are when it is taken."""

    definition_type: type[PoolLoss]

    def __init__(self, problem: Problem, pool: Any, **options: Any) -> None:
        keras_kwargs = {name: options.pop(name) for name in ("reduction", "name", "dtype") if name in options}
        if isinstance(pool, dict):  # from a config
            pool = SolutionPool(pool["states"], pool["solve_ratio"], pool["seed"])
        definition = self.definition_type(as_pool(type(self).__name__, pool))
        super().__init__(problem, definition, options, **keras_kwargs)
        self.pool = definition.pool

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._values(y_pred, {self.definition_type.targets[0]: y_true})

    def get_config(self) -> dict[str, Any]:
        pool = {"states": self.pool.states.tolist(), "solve_ratio": self.pool.solve_ratio, "seed": self.pool.seed}
        return super().get_config() | {"pool": pool}


@keras.saving.register_keras_serializable(package="imle_solvers")
class NCELoss(_PoolLoss):
    """NCE (:class:`imle_solvers.losses.NCE`): ``y_true`` the true solutions ``w_true``."""

    definition_type = NCE


@keras.saving.register_keras_serializable(package="imle_solvers")
class CMAPLoss(_PoolLoss):
    """Contrastive MAP (:class:`imle_solvers.losses.CMAP`): ``y_true`` the true solutions ``w_true``."""

    definition_type = CMAP


@keras.saving.register_keras_serializable(package="imle_solvers")
class PointwiseLTRLoss(_PoolLoss):
    """Pointwise learning to rank (:class:`imle_solvers.losses.PointwiseLTR`): ``y_true`` the true costs."""

    definition_type = PointwiseLTR


@keras.saving.register_keras_serializable(package="imle_solvers")
class PairwiseLTRLoss(_PoolLoss):
    """Pairwise learning to rank (:class:`imle_solvers.losses.PairwiseLTR`): ``y_true`` the true costs."""

    definition_type = PairwiseLTR


@keras.saving.register_keras_serializable(package="imle_solvers")
class ListwiseLTRLoss(_PoolLoss):
    """Listwise learning to rank (:class:`imle_solvers.losses.ListwiseLTR`): ``y_true`` the true costs."""

    definition_type = ListwiseLTR
