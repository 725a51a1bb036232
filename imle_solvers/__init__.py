"""imle_solvers: discrete solvers as trainable layers, with Implicit MLE gradients.

The framework bindings are submodules imported on demand: ``imle_solvers.torch``,
``imle_solvers.jax``, ``imle_solvers.tensorflow``.
"""

from .adapters import list_solvers, register_solver
from .errors import (
    ImleSolversError,
    InvalidInputError,
    MissingDependencyError,
    SolverError,
    UnknownBackendError,
)
from .estimators import AIMLE, IMLE, STE, AdaptiveState, BlackboxDifferentiation, NegativeIdentity, PerturbedOptimizer
from .noise import Gumbel, Normal, SumOfGamma
from .cache import SolutionCache
from .pool import SolutionPool
from .oracle import MAPOracle
from .options import NoiseOptions, OracleOptions
from . import data, losses, metrics  # after MAPOracle, which metrics uses
from .spec import ILPBuilder, SpecError, SpecLimits, UnknownProblemError, list_named_ilps, named_ilp, register_ilp
from .problems import (
    ILP,
    BipartiteMatching,
    GraphMatching,
    GraphShortestPath,
    GridShortestPath,
    KSubset,
    NegativeCostWarning,
    Portfolio,
    Problem,
    Ranking,
    TorchFunctionProblem,
    TravellingSalesman,
    Variable,
)
from .tight import batch_tight_constraints, tight_constraints

__version__ = "0.1.0"

__all__ = [
    "data",
    "losses",
    "metrics",
    "SolutionCache",
    "SolutionPool",
    "AIMLE",
    "IMLE",
    "STE",
    "BlackboxDifferentiation",
    "NegativeIdentity",
    "PerturbedOptimizer",
    "AdaptiveState",
    "Gumbel",
    "Normal",
    "SumOfGamma",
    "MAPOracle",
    "NoiseOptions",
    "OracleOptions",
    "Problem",
    "KSubset",
    "GridShortestPath",
    "GraphShortestPath",
    "BipartiteMatching",
    "GraphMatching",
    "ILP",
    "Variable",
    "TorchFunctionProblem",
    "TravellingSalesman",
    "Portfolio",
    "Ranking",
    "NegativeCostWarning",
    "list_solvers",
    "tight_constraints",
    "batch_tight_constraints",
    "ILPBuilder",
    "SpecError",
    "SpecLimits",
    "UnknownProblemError",
    "list_named_ilps",
    "named_ilp",
    "register_ilp",
    "register_solver",
    "ImleSolversError",
    "InvalidInputError",
    "MissingDependencyError",
    "SolverError",
    "UnknownBackendError",
]


def __getattr__(name: str):
    # `ims.torch` etc. without importing every framework at `import imle_solvers`
    if name in ("torch", "jax", "tensorflow"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
