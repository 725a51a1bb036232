"""Adapters: *how* problems are solved. Importing this package registers the built-in solvers
(optional solver libraries are imported only when a solver of theirs runs)."""

from . import (  # noqa: F401  (registration)
    graph_paths,
    grid_bellman_ford,
    grid_paths,
    ilp_highs,
    ilp_ortools,
    ilp_scip,
    matching,
    portfolio,
    ranking,
    topk,
    torch_function,
    tsp,
)
from .registry import SolverEntry, list_solvers, register_solver, resolve_solver, unregister_solver

__all__ = ["SolverEntry", "list_solvers", "register_solver", "resolve_solver", "unregister_solver"]
