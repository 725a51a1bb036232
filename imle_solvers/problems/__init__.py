"""Problems: *what* is solved (shapes, sense, input checks), never *how*."""

from .base import Problem, Sense, check_batch
from .grid import GridShortestPath, NegativeCostWarning
from .ilp import ILP, Variable
from .ksubset import KSubset

__all__ = ["Problem", "Sense", "check_batch", "KSubset", "GridShortestPath", "NegativeCostWarning", "ILP", "Variable"]
