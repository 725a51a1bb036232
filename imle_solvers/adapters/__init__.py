"""Adapters: *how* problems are solved. Importing this package registers the built-in solvers."""

from . import grid_paths, topk  # noqa: F401  (registration)
from .registry import SolverEntry, list_solvers, register_solver, resolve_solver, unregister_solver

__all__ = ["SolverEntry", "list_solvers", "register_solver", "resolve_solver", "unregister_solver"]
