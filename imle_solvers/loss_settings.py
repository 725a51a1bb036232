"""The loss classes' constructors, written once for the torch and JAX bindings.

A loss class of a binding is two halves: its settings (the constructor's arguments, the
definition of :mod:`imle_solvers.losses` they build, the attributes a user reads back),
which are the same in every framework and live here, and its call (``forward``,
``__call__``), which is the binding's own. A binding's loss base supplies
:meth:`LossSettings.build_loss`, which builds its :class:`~imle_solvers.step.LossStep`;
its classes combine a settings class with that base, e.g.
``class SPOPlusLoss(SPOPlusSettings, _Loss)``.

Keras' losses keep constructors of their own: Keras' ``reduction``, ``name`` and ``dtype``
and its config take the place of the ``reduction`` argument here.
"""

from __future__ import annotations

from typing import Any

from .losses import (
    CaVE,
    FenchelYoung,
    LossDefinition,
    PerturbationGradient,
    PoolLoss,
    RegularizedFenchelYoung,
    SPOPlus,
    StructuredSVM,
    perturbation,
)
from .options import NoiseOptions, OracleOptions
from .pool import as_pool
from .problems import Problem

__all__ = [
    "CaVESettings", "FenchelYoungSettings", "LossSettings", "PGSettings", "PoolLossSettings",
    "RegularizedFenchelYoungSettings", "SPOPlusSettings", "StructuredSVMSettings",
]


class LossSettings:
    """What a settings class needs of a binding's loss base."""

    def build_loss(self, problem: Problem, definition: LossDefinition, reduction: str, validate_args: bool,
                   oracle_options: OracleOptions | None, noise_options: NoiseOptions | None, options: dict) -> None:
        """Set up the loss of ``definition`` over ``problem``: its step, oracle and noise
        (``options``: the oracle's and the noise's keywords as given), ``reduction`` over the batch."""
        raise NotImplementedError


class FenchelYoungSettings(LossSettings):
    def __init__(self, problem: Problem, noise: Any = None, sigma: float = 1.0, samples: int = 1,
                 reduction: str = "mean", multiplicative: bool = False, *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, noise_options: NoiseOptions | None = None,
                 **options: Any) -> None:
        definition = FenchelYoung(perturbation(noise, sigma, samples, multiplicative))
        self.build_loss(problem, definition, reduction, validate_args, oracle_options, noise_options, options)
        self.perturbation, self.sigma, self.multiplicative = definition.perturbation, sigma, multiplicative


class SPOPlusSettings(LossSettings):
    def __init__(self, problem: Problem, reduction: str = "mean", *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, **options: Any) -> None:
        self.build_loss(problem, SPOPlus(), reduction, validate_args, oracle_options, None, options)


class StructuredSVMSettings(LossSettings):
    def __init__(self, problem: Problem, alpha: float = 1.0, reduction: str = "mean", *, base_loss: str = "hamming",
                 validate_args: bool = True, oracle_options: OracleOptions | None = None, **options: Any) -> None:
        definition = StructuredSVM(alpha, base_loss)
        definition.check_problem(problem)
        self.build_loss(problem, definition, reduction, validate_args, oracle_options, None, options)
        self.alpha, self.base_loss = alpha, base_loss


class PGSettings(LossSettings):
    def __init__(self, problem: Problem, sigma: float = 0.1, variant: str = "backward", reduction: str = "mean", *,
                 validate_args: bool = True, oracle_options: OracleOptions | None = None, **options: Any) -> None:
        definition = PerturbationGradient(sigma, variant)
        self.build_loss(problem, definition, reduction, validate_args, oracle_options, None, options)
        self.sigma, self.variant = sigma, variant


class RegularizedFenchelYoungSettings(LossSettings):
    def __init__(self, problem: Problem, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6,
                 reduction: str = "mean", *, validate_args: bool = True, oracle_options: OracleOptions | None = None,
                 **options: Any) -> None:
        definition = RegularizedFenchelYoung(lambd, max_iter, tol)
        self.build_loss(problem, definition, reduction, validate_args, oracle_options, None, options)
        self.lambd, self.max_iter, self.tol = lambd, max_iter, tol


class CaVESettings(LossSettings):
    def __init__(self, problem: Problem, solve_ratio: float = 1.0, inner_ratio: float = 0.2, seed: int | None = None,
                 max_iter: int | None = None, reduction: str = "mean", *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, **options: Any) -> None:
        definition = CaVE(solve_ratio, inner_ratio, seed, max_iter)
        self.build_loss(problem, definition, reduction, validate_args, oracle_options, None, options)
        self.solve_ratio, self.inner_ratio, self.max_iter = solve_ratio, inner_ratio, max_iter


class PoolLossSettings(LossSettings):
    """A loss over a pool of feasible states; a subclass names its definition in ``definition_type``."""

    definition_type: type[PoolLoss]

    def __init__(self, problem: Problem, pool: Any, reduction: str = "mean", *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, **options: Any) -> None:
        definition = self.definition_type(as_pool(type(self).__name__, pool))
        self.build_loss(problem, definition, reduction, validate_args, oracle_options, None, options)
        self.pool = definition.pool
