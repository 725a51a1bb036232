"""Grid shortest paths in the array's own framework: Bellman-Ford by min-pooling.

The whole batch ``(N, rows, cols)`` is solved at once with the framework's own ops
(numpy, torch on any device, JAX also under ``jax.jit``/``jax.vmap``), so the costs never
leave their device. Exact for non-negative vertex costs.

Algorithm:

1. Distances ``dist`` (theta's dtype) start at ``+inf`` except at the source (the
   top-left cell, or each instance's own), which holds its own cost. One Jacobi relaxation is
   ``dist = minimum(dist, cost + min over the neighbours of dist)``; as costs are
   non-negative the neighbour minimum may include the cell itself, so it is a 3x3
   min-pool (8 neighbours) or the min of a (3, 1) and a (1, 3) pool (4 neighbours):
   shifted slices of a +inf-padded copy (torch on accelerators: ``max_pool2d``).
   ``level[v]`` is the first iteration at which ``dist[v]`` reached its final value
   (the source has level 0): the fewest moves among the optimal paths to ``v``.
2. Relaxation stops at a fixed point, and after ``rows * cols`` iterations at most (the
   Bellman-Ford bound): in JAX inside ``lax.while_loop`` (on the device), elsewhere in
   blocks of ``max(rows, cols)`` iterations with one boolean read between blocks.
3. Predecessors, the tie-breaking rule: for each cell ``v`` other than the source,
   among its neighbours ``u`` whose distance is the minimum over ``v``'s neighbours, take
   the one of smallest ``level``, and among those the first in the order up, down,
   left, right, up-left, up-right, down-left, down-right (the 4-neighbourhood uses the
   first four). The source is its own predecessor. Why: at the fixed point ``dist[v]``
   is exactly ``cost[v] + min_u dist[u]`` in floating point; where sums are exact (e.g.
   integer costs) an optimal neighbour of level ``level[v] - 1`` exists, so levels
   strictly decrease along predecessors and the path has the fewest cells among the
   optimal paths. Predecessors never form a cycle, even where costs are 0 or vanish in
   rounding (the cycle's cell of least level would have an optimal neighbour of smaller
   level), so every chain ends at the source.
4. The path, from the target (the bottom-right cell, or each instance's own) back to the
   source, is marked by pointer
   doubling: ``ceil(log2(rows * cols))`` rounds, each one gather and one scatter of
   fixed shapes (a ``lax.fori_loop`` in JAX, compiled once); no loop of data-dependent
   length and no device synchronisation.

Precision: distances are summed in theta's dtype along the path, from the source's cost
on, as Dijkstra sums them. The scipy backend sums in float64 (starting from 0 and adding
the source's cost back), so float32 input may break near-ties (paths whose costs differ
by about float32's rounding) differently; exact ties (e.g. integer costs) follow the
rule above. Costs whose sums could overflow are solved scaled by a power of two, exactly
(:mod:`.exact_scores`, applied to every registered solver).

Negative costs follow the problem's policy with the scipy backend's warning and error
(:func:`.grid_paths.nonnegative_costs`), see :func:`apply_negative_cost_policy`.

Per-instance data (``source``, ``target`` ``(N, 2)`` int and ``closed`` ``(N, rows, cols)``
bool, in theta's framework and on its device) change three things only: the source cell of
step 1 and the target cell of step 4 are per row, and a closed cell costs ``+inf``, so no
relaxation ever reaches it (its own cost is ignored, also by the negative-cost policy).
A target left at ``+inf`` is cut off: its row's mask is zeros and the call raises a
:class:`SolverError` with status ``"infeasible"`` naming the first such row (one boolean
read; under a JAX trace a device-side check that calls the host only when it fails,
see :func:`check_reached`). Without ``closed`` no target can be cut off, and nothing is read.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import numpy as np

from .._array import Array, array_namespace, device, framework_of, is_traced, state_float
from ..errors import SolverError
from ..problems import GridShortestPath
from ..problems.base import check_batch_shape
from .grid_paths import nonnegative_costs, unreached_error
from .registry import register_solver

BACKEND = "bellman-ford"

# Where each candidate predecessor ``u`` lies relative to ``v``, as ``(d_row, d_col)``, in
# tie-breaking order: up, down, left, right, up-left, up-right, down-left, down-right.
STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


# -- negative costs -------------------------------------------------------------------------


def apply_negative_cost_policy(theta: Array, problem: GridShortestPath) -> Array:
    """``theta`` ``(N, rows, cols)`` with the problem's negative-cost policy applied.

    ``"clamp"`` returns ``max(theta, 0)`` (on theta's device) and ``"raise"`` returns theta.
    Concrete arrays are checked with one boolean read, and the scipy backend's warning or
    error follows (:func:`enforce_on_host`). Under a JAX trace (``jit``/``vmap``) Python
    cannot warn or raise: ``"raise"`` checks in a ``jax.debug.callback`` that raises when
    the batch runs (JAX reports it as a runtime error holding our message); ``"clamp"``
    clamps silently, so that a jitted step needs no host callback at all (eager calls
    and the scipy backend warn).
    """
    xp = array_namespace(theta)
    negative = xp.any(xp.reshape(theta < 0, (theta.shape[0], -1)), axis=1)  # (N,)
    if is_traced(theta):
        if problem.negative_costs == "raise":
            import jax

            first = xp.argmax(xp.astype(negative, xp.int32))
            lowest = xp.min(theta[first])
            jax.debug.callback(functools.partial(enforce_on_host, problem=problem), xp.any(negative), first, lowest)
            return theta
        return _clamped(theta)
    if not bool(xp.any(negative)):  # the one device read
        return theta
    first = int(xp.argmax(xp.astype(negative, xp.int32)))
    enforce_on_host(True, first, float(xp.min(theta[first])), problem)
    return _clamped(theta)  # reached with "clamp" only


def _clamped(theta: Array) -> Array:
    xp = array_namespace(theta)
    return xp.where(theta < 0, xp.zeros_like(theta), theta)


def enforce_on_host(negative: bool, first: int, lowest: float, problem: GridShortestPath) -> None:
    """The policy's side effect, when instance ``first`` of the batch is the first with a
    negative cost (``negative``), ``lowest`` being its smallest: warn (``"clamp"``) or raise
    :class:`SolverError` naming the instance (``"raise"``).

    The warning and the error are the scipy backend's (:func:`nonnegative_costs`), applied
    to a 1x1 stand-in for the instance that holds its smallest cost."""
    if not negative:
        return
    first = int(first)
    try:
        nonnegative_costs(np.full((1, 1, 1), float(lowest)), problem)
    except SolverError as error:
        raise SolverError(
            f"instance {first} ({problem.kind}, backend {BACKEND!r}): {error}", index=first, status=error.status
        ) from None


# -- the per-framework pieces ---------------------------------------------------------------


def _neighbour_min_shifts(dist: Array, neighbourhood: int) -> Array:
    """Min of ``dist`` ``(N, rows, cols)`` over each cell and its neighbours, +inf off the grid.

    Array API: shifted slices of a +inf-padded copy; 3x3 is separable (rows, then columns),
    the cross of 4 neighbours is the min of a vertical and a horizontal triple. On CPUs this
    is several times faster than torch's ``max_pool2d`` and XLA's ``reduce_window``."""
    xp = array_namespace(dist)
    padded = _padded(dist, math.inf)  # (N, rows + 2, cols + 2)

    def triple(a: Array, b: Array, c: Array) -> Array:
        return xp.minimum(xp.minimum(a, b), c)

    vertical = triple(padded[:, :-2], padded[:, 1:-1], padded[:, 2:])  # (N, rows, cols + 2)
    if neighbourhood == 8:
        return triple(vertical[:, :, :-2], vertical[:, :, 1:-1], vertical[:, :, 2:])
    middle = padded[:, 1:-1]
    return xp.minimum(vertical[:, :, 1:-1], triple(middle[:, :, :-2], middle[:, :, 1:-1], middle[:, :, 2:]))


def _neighbour_min_torch(dist: Array, neighbourhood: int) -> Array:
    """As :func:`_neighbour_min_shifts`; on accelerators by max-pooling the negated distances
    (one or two kernels rather than about ten; max-pooling pads with -inf, so +inf here)."""
    if dist.device.type == "cpu":
        return _neighbour_min_shifts(dist, neighbourhood)
    return _min_pool_torch(dist, neighbourhood)


def _min_pool_torch(dist: Array, neighbourhood: int) -> Array:
    import torch
    import torch.nn.functional as F

    negated = -dist[:, None]  # (N, 1, rows, cols): one channel
    if neighbourhood == 8:
        pooled = F.max_pool2d(negated, 3, stride=1, padding=1)
    else:
        pooled = torch.maximum(
            F.max_pool2d(negated, (3, 1), stride=1, padding=(1, 0)),
            F.max_pool2d(negated, (1, 3), stride=1, padding=(0, 1)),
        )
    return -pooled[:, 0]


_NEIGHBOUR_MIN: dict[str, Callable[[Array, int], Array]] = {
    "numpy": _neighbour_min_shifts,
    "torch": _neighbour_min_torch,
    "jax": _neighbour_min_shifts,  # XLA fuses the slices into one loop
}


def _scatter_ones_numpy(cells: int, indices: Array, dtype: object) -> Array:
    """``(N, cells)`` of zeros in ``dtype`` with ones at ``indices`` ``(N, m)`` (repeats allowed)."""
    mask = np.zeros((indices.shape[0], cells), dtype=dtype)
    np.put_along_axis(mask, indices, 1, axis=1)
    return mask


def _scatter_ones_torch(cells: int, indices: Array, dtype: object) -> Array:
    import torch

    mask = torch.zeros((indices.shape[0], cells), dtype=dtype, device=indices.device)
    return mask.scatter_(1, indices, 1)


def _scatter_ones_jax(cells: int, indices: Array, dtype: object) -> Array:
    import jax.numpy as jnp

    mask = jnp.zeros((indices.shape[0], cells), dtype=dtype)
    return mask.at[jnp.arange(indices.shape[0])[:, None], indices].set(1)


_SCATTER_ONES: dict[str, Callable[[int, Array, object], Array]] = {
    "numpy": _scatter_ones_numpy,
    "torch": _scatter_ones_torch,
    "jax": _scatter_ones_jax,
}


def _repeat_python(times: int, body: Callable[[tuple], tuple], state: tuple) -> tuple:
    """``body`` applied ``times`` times to ``state``."""
    for _ in range(times):
        state = body(state)
    return state


def _repeat_jax(times: int, body: Callable[[tuple], tuple], state: tuple) -> tuple:
    """As :func:`_repeat_python` in a ``lax.fori_loop``: the body is compiled once."""
    import jax

    return jax.lax.fori_loop(0, times, lambda _, state: body(state), state)


_REPEAT: dict[str, Callable[[int, Callable[[tuple], tuple], tuple], tuple]] = {
    "numpy": _repeat_python,
    "torch": _repeat_python,
    "jax": _repeat_jax,
}


# -- relaxation to the fixed point ----------------------------------------------------------


def _index_dtype(xp: object) -> object:
    """The namespace's default integer (int64; int32 in JAX without x64), for levels and cells."""
    return xp.asarray(0).dtype


def _per_row(cell: int | Array, ndim: int) -> int | Array:
    """A flat cell index to compare with ``(N, ...)`` arrays of ``ndim`` dimensions: an int
    (one cell for every row) as it is, an ``(N,)`` array (each row's own) as ``(N, 1, ...)``."""
    if isinstance(cell, int):
        return cell
    return array_namespace(cell).reshape(cell, (-1,) + (1,) * (ndim - 1))


def initial_state(cost: Array, source: int | Array = 0) -> tuple[Array, Array]:
    """``dist`` (+inf but at the source, which holds its own cost) and ``level`` (zeros),
    both ``(N, rows, cols)``; ``source``: the flat source cell, or ``(N,)`` each row's own."""
    xp = array_namespace(cost)
    rows, cols = cost.shape[1:]
    is_source = xp.reshape(xp.arange(rows * cols, device=device(cost)), (rows, cols)) == _per_row(source, 3)
    dist = xp.where(is_source, cost, xp.full_like(cost, math.inf))
    return dist, xp.zeros(cost.shape, dtype=_index_dtype(xp), device=device(cost))


def relax(
    cost: Array, dist: Array, level: Array, iteration: int | Array, neighbourhood: int
) -> tuple[Array, Array, Array]:
    """One Jacobi relaxation: ``(dist, level, improved)``, each ``(N, rows, cols)``;
    ``level`` becomes ``iteration`` where the distance strictly decreased."""
    xp = array_namespace(cost)
    new = xp.minimum(dist, cost + _NEIGHBOUR_MIN[framework_of(cost)](dist, neighbourhood))
    improved = new < dist
    return new, xp.where(improved, iteration, level), improved


def fixed_point_blocks(cost: Array, neighbourhood: int, source: int | Array = 0) -> tuple[Array, Array]:
    """``(dist, level)`` at the fixed point, relaxing in blocks of ``max(rows, cols)``
    iterations and reading one boolean (did the last iteration change anything?) per block."""
    xp = array_namespace(cost)
    rows, cols = cost.shape[1:]
    dist, level = initial_state(cost, source)
    limit, block = rows * cols, max(rows, cols)
    iteration = 0
    while iteration < limit:
        for _ in range(min(block, limit - iteration)):
            iteration += 1
            dist, level, improved = relax(cost, dist, level, iteration, neighbourhood)
        if not bool(xp.any(improved)):
            break
    return dist, level


def fixed_point_jax(cost: Array, neighbourhood: int, source: int | Array = 0) -> tuple[Array, Array]:
    """As :func:`fixed_point_blocks`, in a ``lax.while_loop`` that runs on the device (and
    under ``jit``/``vmap``) until an iteration changes nothing."""
    import jax
    import jax.numpy as jnp

    rows, cols = cost.shape[1:]
    dist, level = initial_state(cost, source)

    def unfinished(state: tuple) -> Array:
        iteration, _, _, changed = state
        return changed & (iteration < rows * cols)

    def step(state: tuple) -> tuple:
        iteration, dist, level, _ = state
        dist, level, improved = relax(cost, dist, level, iteration + 1, neighbourhood)
        return iteration + 1, dist, level, jnp.any(improved)

    start = (jnp.zeros((), level.dtype), dist, level, jnp.asarray(True))
    _, dist, level, _ = jax.lax.while_loop(unfinished, step, start)
    return dist, level


# -- predecessors and the path --------------------------------------------------------------


def _padded(x: Array, value: float) -> Array:
    """``x`` ``(N, rows, cols)`` with a border of ``value``: ``(N, rows + 2, cols + 2)``."""
    xp = array_namespace(x)
    column = xp.full_like(x[:, :, :1], value)
    x = xp.concat([column, x, column], axis=2)
    row = xp.full_like(x[:, :1, :], value)
    return xp.concat([row, x, row], axis=1)


def _shifted(padded: Array, step: tuple[int, int]) -> Array:
    """From ``padded`` ``(N, rows + 2, cols + 2)``, the value at each cell's neighbour
    ``u = v + step``: ``(N, rows, cols)``."""
    rows, cols = padded.shape[1] - 2, padded.shape[2] - 2
    dr, dc = step
    return padded[:, 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]


def predecessors(dist: Array, level: Array, neighbourhood: int, source: int | Array = 0) -> Array:
    """Each cell's predecessor on its path, by the module's tie-breaking rule: flat
    (row-major) cell indices ``(N, rows * cols)``, the source (flat cell ``source``, or
    ``(N,)`` each row's own) its own.

    ``dist`` and ``level`` ``(N, rows, cols)`` are the fixed point's. The neighbours are
    scanned in tie-breaking order, and one replaces the best so far only if strictly
    better by ``(dist, level)``, so the first of equals stays."""
    xp = array_namespace(dist)
    n, rows, cols = dist.shape
    near_dist, near_level = _padded(dist, math.inf), _padded(level, rows * cols + 1)  # off the grid: worst
    best_dist, best_level = xp.full_like(dist, math.inf), xp.full_like(level, rows * cols + 2)
    best_offset = xp.zeros_like(level)
    for step in STEPS[:neighbourhood]:
        d, l = _shifted(near_dist, step), _shifted(near_level, step)
        better = (d < best_dist) | ((d == best_dist) & (l < best_level))
        best_dist, best_level = xp.where(better, d, best_dist), xp.where(better, l, best_level)
        best_offset = xp.where(better, step[0] * cols + step[1], best_offset)
    cell = xp.reshape(xp.arange(rows * cols, dtype=level.dtype, device=device(dist)), (rows, cols))
    return xp.reshape(xp.where(cell == _per_row(source, 3), cell, cell + best_offset), (n, rows * cols))


def path_mask(pred: Array, dtype: object, target: Array | None = None) -> Array:
    """0/1 mask ``(N, cells)`` in ``dtype`` of the cells on the path from the last cell (or
    ``target`` ``(N,)``, each row's own flat cell) back along ``pred`` ``(N, cells)`` (flat
    predecessors, the source its own).

    Pointer doubling with fixed shapes: after ``k`` rounds ``on`` marks ``pred^i(target)``
    for ``i < 2**k`` and ``jump`` is ``pred^(2**k)``; a round adds the images of the marked
    cells under ``jump`` (a scatter) and squares ``jump`` (a gather). The path has at most
    ``cells`` cells, so ``ceil(log2(cells))`` rounds mark it all."""
    xp = array_namespace(pred)
    n, cells = pred.shape
    scatter_ones = _SCATTER_ONES[framework_of(pred)]
    is_target = xp.arange(cells, dtype=pred.dtype, device=device(pred)) == (
        cells - 1 if target is None else _per_row(target, 2)
    )
    on = xp.astype(xp.broadcast_to(is_target, (n, cells)), dtype)

    def double(state: tuple[Array, Array]) -> tuple[Array, Array]:
        on, jump = state
        # unmarked cells scatter into a spare column, which is dropped
        reached = scatter_ones(cells + 1, xp.where(on > 0, jump, xp.full_like(jump, cells)), dtype)
        return xp.maximum(on, reached[:, :cells]), xp.take_along_axis(jump, jump, axis=1)

    on, _ = _REPEAT[framework_of(pred)]((cells - 1).bit_length(), double, (on, pred))
    return on


def shortest_path_tree(cost: Array, neighbourhood: int, source: int | Array = 0) -> tuple[Array, Array, Array]:
    """``(dist, level, pred)`` for non-negative costs ``(N, rows, cols)`` (``+inf``: closed)
    from the flat ``source`` cell (or ``(N,)`` each row's own): distances (theta's dtype, the
    source's cost included), levels and predecessors (flat, ``(N, rows * cols)``) as the
    module describes."""
    fixed_point = fixed_point_jax if framework_of(cost) == "jax" else fixed_point_blocks
    dist, level = fixed_point(cost, neighbourhood, source)
    return dist, level, predecessors(dist, level, neighbourhood, source)


def path_masks(cost: Array, neighbourhood: int) -> Array:
    """The 0/1 masks ``(N, rows, cols)`` of the shortest paths, in ``cost``'s dtype."""
    xp = array_namespace(cost)
    _, _, pred = shortest_path_tree(cost, neighbourhood)
    return xp.reshape(path_mask(pred, cost.dtype), cost.shape)


def path_masks_with_data(cost: Array, neighbourhood: int, source: Array, target: Array) -> tuple[Array, Array]:
    """For each row's own flat ``source`` and ``target`` cells ``(N,)`` and costs ``(N, rows,
    cols)`` (``+inf`` in closed cells): the 0/1 path masks ``(N, rows, cols)`` in ``cost``'s
    dtype, and ``reached`` ``(N,)`` bool, whether the target was reached (where not, the
    mask is zeros: predecessors of cut-off cells lead nowhere)."""
    xp = array_namespace(cost)
    n = cost.shape[0]
    dist, _, pred = shortest_path_tree(cost, neighbourhood, source)
    target_dist = xp.take_along_axis(xp.reshape(dist, (n, -1)), xp.reshape(target, (-1, 1)), axis=1)
    reached = xp.isfinite(xp.reshape(target_dist, (-1,)))
    mask = path_mask(pred, cost.dtype, target)
    mask = xp.where(xp.reshape(reached, (-1, 1)), mask, xp.zeros_like(mask))
    return xp.reshape(mask, cost.shape), reached


@functools.lru_cache(maxsize=1)
def _jitted_path_masks() -> Callable:
    """:func:`path_masks` compiled by ``jax.jit`` (once per shape and dtype): eager calls
    would otherwise retrace the loops every time; under an outer trace it is inlined."""
    import jax

    return jax.jit(path_masks, static_argnames="neighbourhood")


@functools.lru_cache(maxsize=1)
def _jitted_path_masks_with_data() -> Callable:
    """:func:`path_masks_with_data` compiled by ``jax.jit``, as :func:`_jitted_path_masks`."""
    import jax

    return jax.jit(path_masks_with_data, static_argnames="neighbourhood")


# -- per-instance data ----------------------------------------------------------------------


def flat_cells(problem: GridShortestPath, data: Mapping[str, Array], name: str, like: Array) -> Array:
    """The rows' ``name`` cells (``"source"``/``"target"``) as flat indices ``(N,)`` in the
    namespace's index dtype, on ``like``'s device: ``data[name]`` ``(N, 2)`` (any integer
    dtype), or the problem's default cell for every row."""
    xp = array_namespace(like)
    index = _index_dtype(xp)
    if name not in data:
        row, col = problem.default_cells[name]
        # like theta's (N,) slice: the same device, and in JAX the same placement, so that
        # the compiled solve is shared by calls that give a field and calls that do not
        return xp.full_like(like[:, 0, 0], row * problem.cols + col, dtype=index)
    cells = xp.astype(data[name], index)  # int64 first: (row, col) in uint8 would overflow
    return cells[:, 0] * problem.cols + cells[:, 1]


def check_reached(reached: Array, source: Array, target: Array, problem: GridShortestPath) -> None:
    """Raise :class:`SolverError` (status ``"infeasible"``) naming the first row whose target
    was not reached (``reached`` ``(N,)``; flat ``source``, ``target`` ``(N,)``): one boolean
    read. Under a JAX trace Python cannot raise: a ``lax.cond`` on the device calls the host
    (``jax.debug.callback``, raising when the batch runs) only when a target was cut off
    (under ``vmap`` a ``cond`` runs both branches, so the host is called and checks)."""
    xp = array_namespace(reached)
    if is_traced(reached):
        import jax

        report = functools.partial(_report_unreached, problem=problem)
        jax.lax.cond(xp.all(reached), _nothing, report, reached, source, target)
        return
    if not bool(xp.all(reached)):  # the one device read
        first = int(xp.argmax(xp.astype(~reached, xp.int32)))
        raise _named(unreached_error(problem, int(source[first]), int(target[first]), index=first), problem)


def _nothing(*_: Array) -> None:
    return None


def _report_unreached(reached: Array, source: Array, target: Array, problem: GridShortestPath) -> None:
    import jax
    import jax.numpy as jnp

    first = jnp.argmax(~reached)  # the first unreached row
    callback = functools.partial(raise_unreached, problem=problem)
    jax.debug.callback(callback, reached[first], first, source[first], target[first])


def raise_unreached(reached: object, first: object, source: object, target: object, problem: GridShortestPath) -> None:
    """Host side of the traced check: raise the infeasibility of row ``first`` (within the
    call) unless ``reached``; under ``jax.vmap`` the arguments gain leading axes, and the
    first group with an unreached target is named."""
    reached, first, source, target = (np.reshape(np.asarray(a), -1) for a in (reached, first, source, target))
    if reached.all():
        return
    group = int(np.argmin(reached))
    raise _named(unreached_error(problem, int(source[group]), int(target[group]), index=int(first[group])), problem)


def _named(error: SolverError, problem: GridShortestPath) -> SolverError:
    """``error`` with its instance and backend in the message, as the oracle names the
    failures of solvers it calls on the host (it calls this one as it is)."""
    return SolverError(
        f"instance {error.index} ({problem.kind}, backend {BACKEND!r}): {error}", index=error.index, status=error.status
    )


# -- the solver -----------------------------------------------------------------------------


@register_solver(GridShortestPath.kind, BACKEND, array_native=("numpy", "torch", "jax"), priority=5)
def solve_grid_bellman_ford(theta: Array, problem: GridShortestPath, data: Mapping[str, Array] | None = None) -> Array:
    """Batched shortest paths ``(N, rows, cols) -> (N, rows, cols)`` in theta's framework,
    dtype and device (see the module docstring). ``data`` (optional, in theta's framework
    and on its device): ``source``, ``target`` ``(N, 2)`` int, ``closed`` ``(N, rows, cols)``
    bool."""
    check_batch_shape(tuple(theta.shape), problem.shape)
    xp = array_namespace(theta)
    if theta.shape[0] == 0:
        return xp.zeros_like(theta)
    if framework_of(theta) == "torch":
        theta = theta.detach()  # a 0/1 mask has no gradient: record no autograd graph
    if data:
        return solve_with_data(theta, problem, data)
    cost = apply_negative_cost_policy(theta, problem)
    if not xp.isdtype(cost.dtype, "real floating"):  # distances need +inf
        cost = xp.astype(cost, state_float(xp))
    if framework_of(theta) == "jax":
        mask = _jitted_path_masks()(cost, neighbourhood=problem.neighbourhood)
    else:
        mask = path_masks(cost, problem.neighbourhood)
    return xp.astype(mask, theta.dtype)


def solve_with_data(theta: Array, problem: GridShortestPath, data: Mapping[str, Array]) -> Array:
    """:func:`solve_grid_bellman_ford` for ``theta`` ``(N, rows, cols)`` (N > 0, detached) with
    per-instance data: closed cells cost ``+inf`` (the policy sees open cells only), and
    each row starts at its own source and is read back from its own target."""
    xp = array_namespace(theta)
    closed = data.get("closed")
    if closed is not None:  # a closed cell's cost means nothing: it neither warns nor raises
        theta = xp.where(closed, xp.zeros_like(theta), theta)
    cost = apply_negative_cost_policy(theta, problem)
    if not xp.isdtype(cost.dtype, "real floating"):  # distances need +inf
        cost = xp.astype(cost, state_float(xp))
    if closed is not None:
        cost = xp.where(closed, xp.full_like(cost, math.inf), cost)
    source, target = (flat_cells(problem, data, name, theta) for name in ("source", "target"))
    solve = _jitted_path_masks_with_data() if framework_of(theta) == "jax" else path_masks_with_data
    mask, reached = solve(cost, problem.neighbourhood, source, target)
    if closed is not None:  # open grids are connected: only closed cells cut a target off
        check_reached(reached, source, target, problem)
    return xp.astype(mask, theta.dtype)
