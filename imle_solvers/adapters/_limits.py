"""How the ILP adapters stop: a wall-clock ``time_limit`` (seconds) or a deterministic
``work_limit`` (the engine's own unit of work), and the error of an instance stopped by one.

A work limit stops a single-threaded engine at the same point on any machine and under
any load, so its statuses and incumbents repeat run after run; a wall-clock limit does
not (docs/parallel.md, "Work limits"). The unit is the engine's:

- CP-SAT: deterministic seconds (``max_deterministic_time``), CP-SAT's count of the work
  its search does, calibrated to be about a second on a typical machine;
- SCIP (PySCIPOpt, and OR-Tools' pywraplp route): branch-and-bound nodes, all restarts
  included (``limits/totalnodes``), a work limit rounded up to a whole number of nodes;
- HiGHS (scipy's ``milp``): branch-and-bound nodes (``node_limit``), rounded up likewise.
"""

from __future__ import annotations

import math

from ..errors import SolverError

# The SCIP parameter a work limit sets: nodes over all restarts (``limits/nodes`` counts one run)
SCIP_NODE_LIMIT = "limits/totalnodes"


def whole_nodes(work_limit: float | None) -> int:
    """The node limit of ``work_limit`` (SCIP's ``limits/totalnodes``, HiGHS's
    ``node_limit``): whole nodes, at least one (-1: none)."""
    return -1 if work_limit is None else max(1, math.ceil(work_limit))


def stopped_error(
    engine: str, work_stopped: bool, time_limit: float | None, work_limit: float | None, incumbent: object = None
) -> SolverError:
    """The error of an instance that ``engine`` stopped at a limit without a proven optimum:
    status ``"work-limit"`` where the work limit stopped it (``work_stopped``), else
    ``"time-limit"``; ``incumbent`` is the best solution found, or None."""
    if work_stopped:
        unit = "deterministic seconds" if engine == "CP-SAT" else f"{whole_nodes(work_limit)} nodes"
        return SolverError(f"{engine} found no proven optimum within work_limit={work_limit} ({unit})",
                           status="work-limit", incumbent=incumbent)
    return SolverError(f"{engine} found no proven optimum within {time_limit} s", status="time-limit",
                       incumbent=incumbent)
