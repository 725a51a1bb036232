"""Travelling salesman tours through OR-Tools' CP-SAT and its circuit constraint (exact),
and, for small tours without OR-Tools, Held-Karp's dynamic programme (exact).

Each undirected edge ``(i, j)`` of the complete graph is two arcs, ``i -> j`` and
``j -> i``, each a Boolean literal of one ``AddCircuit`` constraint, which holds exactly
when the chosen arcs form one directed cycle through every node. Both arcs of an edge
carry the edge's score, and the tour's mask is their sum. The model is built once per
problem, process and thread; an instance only rewrites the objective.

CP-SAT's objective is integer: the scores are scaled by a power of two so that the
largest possible tour score is about ``2**50``, and rounded, as the ILP adapter does
(:mod:`~imle_solvers.adapters.ilp_ortools`). The tour is thus optimal for scores that
differ from the true ones by at most ``2**-51`` of that largest tour score: exact, ties
below float64's resolution aside.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SolverError
from ..problems.tsp import TravellingSalesman
from ._limits import stopped_error
from .ilp_ortools import CP_SAT_SAFE_HERE
from .registry import register_solver

# the largest tour score handed to CP-SAT (its int64 arithmetic must not overflow)
_CP_SAT_OBJECTIVE_BITS = 50


@dataclass(frozen=True)
class CircuitModel:
    """A built CP-SAT model of one tour: ``2 * n_edges`` arc literals, arc ``a`` walking
    edge ``a % n_edges`` (forward for ``a < n_edges``, backward after), all of them in the
    objective in that order, whose coefficients an instance writes."""

    model: Any


@lru_cache(maxsize=32)
def circuit_model(problem: TravellingSalesman, thread: int) -> CircuitModel:
    """The CP-SAT model of ``problem`` for one thread (an instance rewrites its objective,
    so threads must not share one)."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    edges = problem.edges.tolist()
    forward = [model.new_bool_var("") for _ in edges]
    backward = [model.new_bool_var("") for _ in edges]
    model.add_circuit([(i, j, arc) for (i, j), arc in zip(edges, forward)]
                      + [(j, i, arc) for (i, j), arc in zip(edges, backward)])
    model.proto.objective.vars.extend(arc.index for arc in forward + backward)
    return CircuitModel(model=model)


def integer_objective(theta: np.ndarray, problem: TravellingSalesman) -> list[int]:
    """The ``(2 * n_edges,)`` integer arc costs CP-SAT minimises for edge scores ``theta``
    ``(n_edges,)``: ``-sign * theta`` scaled so that a tour's total stays near ``2**50``."""
    scores = -problem.sign * np.asarray(theta, dtype=np.float64)
    largest = float(np.sort(np.abs(scores))[-problem.n:].sum())  # no tour scores more in magnitude
    exponent = _CP_SAT_OBJECTIVE_BITS - int(np.ceil(np.log2(largest))) if largest > 0 else 0
    costs = np.rint(np.ldexp(scores, exponent)).astype(np.int64)
    return np.concatenate([costs, costs]).tolist()


@register_solver(TravellingSalesman.kind, "ortools", time_limit=True, work_limit=True, priority=10,
                 requires=("ortools",), extra="ortools")
def solve_tsp_ortools(theta: np.ndarray, problem: TravellingSalesman, time_limit: float | None = None,
                      work_limit: float | None = None) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)``: the 0/1 edge mask of an optimal tour, by
    CP-SAT's circuit constraint (one search worker: the oracle parallelises across
    instances).

    Raises:
        SolverError: status ``"time-limit"`` / ``"work-limit"`` (no proven optimum within
            ``time_limit`` seconds / ``work_limit`` deterministic seconds; its ``incumbent``
            is the best tour found, if any); ``"unavailable"`` in a process that loaded
            TensorFlow before OR-Tools, where CP-SAT cannot run (docs/frameworks.md).
    """
    from ortools.sat.python import cp_model

    if not CP_SAT_SAFE_HERE:
        raise SolverError("CP-SAT cannot run in a process that imported TensorFlow before imle_solvers "
                          "(their native libraries clash): import imle_solvers first", status="unavailable")
    built = circuit_model(problem, threading.get_ident())
    objective = built.model.proto.objective
    objective.coeffs.clear()
    objective.coeffs.extend(integer_objective(theta, problem))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.catch_sigint_signal = False  # Ctrl-C stays Python's KeyboardInterrupt
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    if work_limit is not None:
        solver.parameters.max_deterministic_time = float(work_limit)
    status = solver.solve(built.model)
    if status == cp_model.OPTIMAL:
        return tour_mask(solver.response_proto.solution, problem, theta.dtype)
    if status in (cp_model.FEASIBLE, cp_model.UNKNOWN) and (time_limit is not None or work_limit is not None):
        found = status == cp_model.FEASIBLE
        incumbent = tour_mask(solver.response_proto.solution, problem, theta.dtype) if found else None
        work_stopped = work_limit is not None and solver.response_proto.deterministic_time >= work_limit
        raise stopped_error("CP-SAT", work_stopped or time_limit is None, time_limit, work_limit, incumbent)
    name = solver.status_name(status)
    raise SolverError(f"CP-SAT stopped with status {name}", status=name.lower())


def tour_mask(solution: Any, problem: TravellingSalesman, dtype: Any) -> np.ndarray:
    """The ``(n_edges,)`` edge mask of a CP-SAT solution (its arc literals, forward then backward)."""
    arcs = np.asarray(solution, dtype=np.int64)[: 2 * problem.n_edges]
    return (arcs[: problem.n_edges] + arcs[problem.n_edges :]).astype(dtype)


# -- Held-Karp: exact by dynamic programming over subsets, no solver library ----------------

#: the most nodes the Held-Karp backend takes: its tables hold 2**(n - 1) * (n - 1) entries
HELD_KARP_MAX_NODES = 16


@register_solver(TravellingSalesman.kind, "held-karp", priority=0)
def solve_tsp_held_karp(theta: np.ndarray, problem: TravellingSalesman) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` by Held-Karp's dynamic programme (exact,
    ``O(2**n n**2)`` in numpy), for up to :data:`HELD_KARP_MAX_NODES` nodes: the backend
    that needs no solver library. Ties go to whichever tour the programme's ``argmin``
    meets first, which may differ from CP-SAT's.

    Raises:
        SolverError: status ``"too-large"``, ``n`` above :data:`HELD_KARP_MAX_NODES`.
    """
    n = problem.n
    if n > HELD_KARP_MAX_NODES:
        raise SolverError(f"backend 'held-karp' solves tours of up to {HELD_KARP_MAX_NODES} nodes, got n={n}: "
                          "use backend 'ortools' (pip install 'imle_solvers[ortools]')", status="too-large")
    costs = np.zeros((n, n))
    i, j = problem.edges.T
    costs[i, j] = costs[j, i] = -problem.sign * np.asarray(theta, dtype=np.float64)
    order = held_karp_order(costs)
    mask = np.zeros(problem.n_edges, dtype=theta.dtype)
    steps = np.sort(np.stack([order, np.roll(order, -1)], axis=1), axis=1)
    mask[steps[:, 0] * n - steps[:, 0] * (steps[:, 0] + 1) // 2 + steps[:, 1] - steps[:, 0] - 1] = 1
    return mask


def held_karp_order(costs: np.ndarray) -> np.ndarray:
    """``(n,)`` the nodes of a cheapest tour for symmetric ``costs`` ``(n, n)``, from node 0.

    ``best[s, j]``: the cheapest path from node 0 through the nodes of subset ``s`` of
    ``1..n-1`` (bit ``j`` for node ``j + 1``) ending at node ``j + 1``; subsets in order of
    size, so that each one's smaller subsets are done."""
    n = len(costs)
    m = n - 1
    subsets = np.arange(1 << m)
    members = (subsets[:, None] >> np.arange(m)) & 1 == 1  # (2**m, m)
    best = np.full((1 << m, m), np.inf)
    came_from = np.zeros((1 << m, m), dtype=np.int64)
    best[1 << np.arange(m), np.arange(m)] = costs[0, 1:]
    inner = costs[1:, 1:]  # (m, m): from node k + 1 to node j + 1
    for size in range(2, m + 1):
        layer = subsets[members.sum(axis=1) == size]
        for j in range(m):
            ending = layer[members[layer, j]]
            previous = ending ^ (1 << j)  # the path before its last step, into j
            totals = best[previous] + inner[:, j]  # (len, m): via each last node k (inf where k is not in it)
            came_from[ending, j] = totals.argmin(axis=1)
            best[ending, j] = totals.min(axis=1)
    full = (1 << m) - 1
    last = int((best[full] + costs[1:, 0]).argmin())
    order, subset = [last], full
    while subset & (subset - 1):  # more than one node left
        previous = int(came_from[subset, last])
        subset ^= 1 << last
        order.append(previous)
        last = previous
    return np.array([0] + [k + 1 for k in reversed(order)], dtype=np.int64)
