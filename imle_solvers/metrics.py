"""Decision-focused metrics (PyEPO's regret, normalised and unambiguous regret; exact match,
cost-accuracy), computed on a :class:`~imle_solvers.MAPOracle`.

Every function solves whole batches with the oracle (one call per batch, on its worker
pool when it has one), never one instance at a time. Arguments, ``B`` instances:

- ``oracle``: the oracle of the problem; its sense (``"min"`` or ``"max"``) decides which
  way a decision is worse;
- ``predicted``, ``true``: costs (or values, for a max problem) ``(B, *problem.shape)``,
  numpy, torch (detached for you), JAX or TensorFlow arrays; the problem's theta;
- ``true_optimum``: ``(B,)`` optimal objective values under ``true``, if known (else solved);
- ``**data``: per-instance data (``problem.instance_fields``), each ``(B, ...)`` or one
  instance's value for all (a Python number for a scalar field), passed to every solve, as
  ``oracle(theta, **data)``; checked first, so that an error names the metric called.

The objective of a state ``z`` under costs ``c`` is ``<c, z>`` (summed over the problem's
axes): what theta scores. An ILP's fixed objective coefficients are not counted.

Regret of instance ``i`` (PyEPO's ``calRegret``): ``<c_i, z(p_i)> - z*_i`` for a min
problem, ``z*_i - <c_i, z(p_i)>`` for a max problem, ``z(p_i)`` the oracle's state for
the prediction. Normalised regret (PyEPO's ``regret``, ``reduction="normalized"``):
``sum_i regret_i / (sum_i |z*_i| + 1e-8)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._array import to_numpy
from .errors import InvalidInputError
from .instances import broadcast_data, check_data, check_values, to_host
from .oracle import MAPOracle

__all__ = [
    "cost_accuracy",
    "evaluate",
    "exact_match",
    "normalized_regret",
    "objective_values",
    "optimal_values",
    "regret",
    "unambiguous_regret",
]

Reduction = Literal["normalized", "sum", "mean", "none"]
#: PyEPO's guard against a zero denominator in normalised regret (``pyepo.utils._EPS``).
NORMALIZATION_EPS = 1e-8
#: Relative tolerance of cost-accuracy, as in ``imle_solvers.demo``.
COST_TOLERANCE = 1e-6


def _host(values: Any, name: str) -> np.ndarray:
    """``values`` as float64 numpy (torch tensors detached)."""
    if hasattr(values, "detach"):
        values = values.detach()
    array = np.asarray(to_numpy(values), dtype=np.float64)
    if array.ndim < 2:
        raise InvalidInputError(f"{name}: expected a batch (B, *problem.shape), got shape {array.shape}")
    return array


def _checked(oracle: MAPOracle, data: dict[str, Any], batch: int, metric: str,
             arguments: str = "oracle, predicted, true") -> dict[str, Any]:
    """``data`` for a batch of ``batch`` instances, broadcast and checked as the oracle
    would, but with errors naming the call the user made, ``metrics.<metric>(<arguments>,
    capacity=...)``."""
    problem, call = oracle.problem, f"metrics.{metric}({arguments}, {{fields}})"
    data = broadcast_data(problem, data, batch)
    check_data(problem, data, batch, call)
    check_values(problem, to_host(problem, data), call)
    return data


def objective_values(states: Any, costs: Any) -> np.ndarray:
    """``(B,)``: ``<costs_i, states_i>`` for batches ``states``, ``costs`` ``(B, *shape)``."""
    z, c = _host(states, "states"), _host(costs, "costs")
    if z.shape != c.shape:
        raise InvalidInputError(f"states {z.shape} and costs {c.shape} differ in shape")
    return (z * c).reshape(len(c), -1).sum(1)


def optimal_values(oracle: MAPOracle, costs: Any, **data: Any) -> np.ndarray:
    """``(B,)`` optimal objective values of ``costs`` ``(B, *shape)``: one batched solve."""
    c = _host(costs, "costs")
    data = _checked(oracle, data, len(c), "optimal_values", "oracle, costs")
    return objective_values(oracle(c, **data), c)


def _reduce(losses: np.ndarray, optimum: np.ndarray, reduction: str) -> float | np.ndarray:
    if reduction == "normalized":
        return float(losses.sum()) / (float(np.abs(optimum).sum()) + NORMALIZATION_EPS)
    if reduction == "sum":
        return float(losses.sum())
    if reduction == "mean":
        return float(losses.mean()) if losses.size else 0.0
    if reduction == "none":
        return losses
    raise InvalidInputError(f"reduction must be 'normalized', 'sum', 'mean' or 'none', got {reduction!r}")


def _regrets(oracle: MAPOracle, states: np.ndarray, true: np.ndarray, true_optimum: Any,
             data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance regrets ``(B,)`` of ``states`` under ``true``, and the optima ``(B,)``."""
    optimum = optimal_values(oracle, true, **data) if true_optimum is None else \
        np.asarray(to_numpy(true_optimum), dtype=np.float64).reshape(-1)
    if optimum.shape != (len(true),):
        raise InvalidInputError(f"true_optimum: expected shape ({len(true)},), got {optimum.shape}")
    # sign: +1 max (optimum - obtained), -1 min (obtained - optimum)
    return oracle.problem.sign * (optimum - objective_values(states, true)), optimum


def regret(oracle: MAPOracle, predicted: Any, true: Any, true_optimum: Any = None, *,
           reduction: Reduction = "mean", **data: Any) -> float | np.ndarray:
    """Regret of deciding on ``predicted`` when the costs are ``true``.

    ``reduction``: ``"mean"`` (default), ``"sum"``, ``"normalized"`` (as
    :func:`normalized_regret`) or ``"none"`` (the ``(B,)`` regrets)."""
    p, c = _host(predicted, "predicted"), _host(true, "true")
    data = _checked(oracle, data, len(c), "regret")
    losses, optimum = _regrets(oracle, oracle(p, **data), c, true_optimum, data)
    return _reduce(losses, optimum, reduction)


def normalized_regret(oracle: MAPOracle, predicted: Any, true: Any, true_optimum: Any = None,
                      **data: Any) -> float:
    """PyEPO's normalised regret: ``sum_i regret_i / (sum_i |z*_i| + 1e-8)``."""
    data = _checked(oracle, data, len(_host(true, "true")), "normalized_regret")
    return regret(oracle, predicted, true, true_optimum, reduction="normalized", **data)  # type: ignore[return-value]


def unambiguous_regret(oracle: MAPOracle, predicted: Any, true: Any, true_optimum: Any = None, *,
                       tolerance: float = 1e-5, reduction: Reduction = "normalized",
                       **data: Any) -> float | np.ndarray:
    """PyEPO's unambiguous regret (``unambRegret``): the regret of the *worst* state, under
    ``true``, among the optimal states of the prediction.

    As in PyEPO, ties are taken after rounding: the predicted costs are rounded to
    multiples of ``tolerance`` (``r = round(predicted / tolerance)``, integers), and the
    tied states are those of optimal ``<r, z>``. Instead of PyEPO's second solve with an
    extra constraint, one batched solve of ``r - delta_i * true_i`` with
    ``delta_i = 0.5 / sum|true_i|`` picks, among the states optimal for ``r``, the worst
    under ``true`` (for a min problem the largest ``<true, z>``, for a max problem the
    smallest): for 0/1 states ``delta_i * |<true_i, z - z'>| < 1``, less than any gap
    between ``r``'s distinct objective values. So it needs a problem with binary states
    and an exact solver. Default ``reduction``, as PyEPO: ``"normalized"``.
    """
    if not oracle.problem.binary_states:
        raise InvalidInputError(f"unambiguous_regret needs 0/1 states; {oracle.problem.label} may have others")
    if not tolerance > 0:
        raise InvalidInputError(f"tolerance must be positive, got {tolerance!r}")
    p, c = _host(predicted, "predicted"), _host(true, "true")
    data = _checked(oracle, data, len(c), "unambiguous_regret")
    rounded = np.around(p / tolerance)
    spread = np.abs(c).reshape(len(c), -1).sum(1)
    delta = np.divide(0.5, spread, out=np.zeros_like(spread), where=spread > 0)
    worst = oracle(rounded - delta.reshape((-1,) + (1,) * (c.ndim - 1)) * c, **data)
    losses, optimum = _regrets(oracle, worst, c, true_optimum, data)
    return _reduce(losses, optimum, reduction)


def exact_match(oracle: MAPOracle, predicted: Any, true: Any, true_solution: Any = None, **data: Any) -> float:
    """Share of instances whose predicted state equals the true one: ``true_solution``
    ``(B, *shape)`` if given (labels), else the oracle's state for ``true`` (with ties in
    ``true``, one of the optima: the solver's choice)."""
    p = _host(predicted, "predicted")
    data = _checked(oracle, data, len(p), "exact_match")
    gold = oracle(_host(true, "true"), **data) if true_solution is None else _host(true_solution, "true_solution")
    same = (oracle(p, **data) == gold).reshape(len(p), -1).all(1)
    return float(same.mean()) if len(p) else 0.0


def cost_accuracy(oracle: MAPOracle, predicted: Any, true: Any, true_optimum: Any = None, *,
                  rtol: float = COST_TOLERANCE, **data: Any) -> float:
    """Share of instances whose predicted state is optimal under ``true`` within ``rtol``
    of the optimum: ``regret_i <= rtol * |z*_i|`` (for a min problem with a positive optimum,
    the demo's ``cost <= optimum * (1 + 1e-6)``)."""
    data = _checked(oracle, data, len(_host(true, "true")), "cost_accuracy")
    losses = regret(oracle, predicted, true, true_optimum, reduction="none", **data)
    optimum = np.asarray(true_optimum, dtype=np.float64).reshape(-1) if true_optimum is not None else \
        optimal_values(oracle, true, **data)
    return float(np.mean(losses <= rtol * np.abs(optimum))) if len(optimum) else 0.0


def evaluate(oracle: MAPOracle, predicted: Any, true: Any, true_optimum: Any = None, *,
             tolerance: float = 1e-5, **data: Any) -> dict[str, float]:
    """All the metrics above on one batch, with two solves (three with unambiguous regret):
    ``regret`` (mean), ``normalized_regret``, ``unambiguous_regret`` (normalised; only for
    problems with 0/1 states), ``cost_accuracy`` and ``exact_match`` (against the oracle's
    state for ``true``)."""
    p, c = _host(predicted, "predicted"), _host(true, "true")
    data = _checked(oracle, data, len(c), "evaluate")
    states, gold = oracle(p, **data), oracle(c, **data)
    optimum = objective_values(gold, c) if true_optimum is None else \
        np.asarray(to_numpy(true_optimum), dtype=np.float64).reshape(-1)
    losses, _ = _regrets(oracle, states, c, optimum, data)
    result = {
        "regret": float(losses.mean()) if losses.size else 0.0,
        "normalized_regret": float(_reduce(losses, optimum, "normalized")),
        "cost_accuracy": float(np.mean(losses <= COST_TOLERANCE * np.abs(optimum))) if losses.size else 0.0,
        "exact_match": float((states == gold).reshape(len(c), -1).all(1).mean()) if len(c) else 0.0,
    }
    if oracle.problem.binary_states:
        result["unambiguous_regret"] = float(
            unambiguous_regret(oracle, p, c, optimum, tolerance=tolerance, **data))  # type: ignore[arg-type]
    return result
