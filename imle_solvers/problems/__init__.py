"""Problems: *what* is solved (shapes, sense, input checks), never *how*."""

from .base import DataField, Problem, Sense, check_batch
from .graph import EdgeListGraph, GraphShortestPath
from .grid import GridShortestPath, NegativeCostWarning
from .ilp import ILP, Variable
from .ksubset import KSubset
from .matching import BipartiteMatching, GraphMatching
from .portfolio import Portfolio
from .ranking import Ranking
from .torch_function import TorchFunctionProblem
from .tsp import TravellingSalesman

__all__ = [
    "Problem",
    "DataField",
    "Sense",
    "check_batch",
    "KSubset",
    "GridShortestPath",
    "NegativeCostWarning",
    "GraphShortestPath",
    "EdgeListGraph",
    "BipartiteMatching",
    "GraphMatching",
    "ILP",
    "Variable",
    "TorchFunctionProblem",
    "TravellingSalesman",
    "Portfolio",
    "Ranking",
]
