"""A pool of feasible solutions shared by every instance, for the contrastive and
learning-to-rank losses (PyEPO's ``solpool``, Mulamba et al. 2021, Mandi et al. 2022).

``SolutionPool(states, solve_ratio=1.0, seed=None)`` holds distinct states ``(P, *shape)``
(numpy, float64), initialised from known feasible states (PyEPO: the training set's optimal
solutions). Before each call of a pool loss it grows by PyEPO's rule: one coin per call
(a uniform draw ``< solve_ratio``; 0 never solves, 1 always); on heads the loss's oracle
solves the batch's predictions and the solutions that are new join the pool. Two rows are
the same when their L1 distance is at most PyEPO's tolerance ``min(1e-4 * n, 0.1)``
(``n`` entries per state), so approximate solvers' near-copies are not added.

Growth is a host-side step: it reads the predictions back, so it runs where they are
concrete (torch; JAX eagerly, ``jax.grad`` included; Keras eagerly or with
``run_eagerly=True``). Inside a trace (``jax.jit``, ``tf.function``, Keras' compiled
``fit``) a pool with ``solve_ratio > 0`` cannot grow, and the loss refuses (see
:func:`pool_for_call`); a JAX loss takes the pool as an explicit argument there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import Array, is_traced, to_numpy
from .errors import InvalidInputError
from .failures import Status

__all__ = ["SolutionPool", "as_pool", "grow", "pool_for_call"]


class SolutionPool:
    """Distinct feasible states ``(P, *shape)``, shared by every instance, and its growth rule.

    Args:
        states: ``(P, *shape)`` feasible states to start from (``P >= 1``), e.g. the training
            targets; duplicates are dropped.
        solve_ratio: in ``[0, 1]``, the probability that a call solves its predictions and
            adds the solutions (PyEPO's ``solve_ratio``).
        seed: of the coins.

    Attributes:
        states: the pool, ``(P, *shape)`` float64 (grow it with :meth:`add`, never in place).
    """

    def __init__(self, states: Any, solve_ratio: float = 1.0, seed: int | None = None) -> None:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim < 2 or len(states) == 0:
            raise InvalidInputError(f"SolutionPool: states must be (P, *shape) with P >= 1, got shape {states.shape}")
        if isinstance(solve_ratio, bool) or not isinstance(solve_ratio, (int, float)) or not 0 <= solve_ratio <= 1:
            raise InvalidInputError(f"SolutionPool: solve_ratio must be in [0, 1], got {solve_ratio!r}")
        self.solve_ratio, self.seed = float(solve_ratio), seed
        self._rng = np.random.default_rng(seed)
        self.states = states[:0]
        self.add(states)

    def __len__(self) -> int:
        return len(self.states)

    def __repr__(self) -> str:
        return f"SolutionPool({len(self)} states of shape {self.states.shape[1:]}, solve_ratio={self.solve_ratio})"

    def add(self, states: Any) -> int:
        """Add the rows of ``states`` ``(N, *shape)`` that are new; returns how many were."""
        states = np.asarray(states, dtype=np.float64)
        if states.shape[1:] != self.states.shape[1:] and len(self.states):
            raise InvalidInputError(f"SolutionPool: states of shape {states.shape[1:]} for a pool of "
                                    f"{self.states.shape[1:]}")
        flat = states.reshape(len(states), -1)
        n = flat.shape[1]
        kept = self.states.reshape(len(self.states), n)
        tolerance = self.tolerance_for(n)
        added: list[np.ndarray] = []
        for row in flat:
            known = np.concatenate([kept, *(r[None] for r in added)]) if added else kept
            if not len(known) or np.abs(known - row).sum(axis=1).min() > tolerance:
                added.append(row)
        if added:
            self.states = np.concatenate([kept, np.stack(added)]).reshape(-1, *states.shape[1:])
        return len(added)

    @staticmethod
    def tolerance_for(n: int) -> float:
        """The L1 distance up to which two states of ``n`` entries are the same (PyEPO's)."""
        return min(1e-4 * n, 0.1)

    def draw(self) -> bool:
        """This call's coin: whether it solves its predictions (probability ``solve_ratio``)."""
        return bool(self._rng.random() < self.solve_ratio)


def as_pool(owner: str, pool: Any) -> SolutionPool:
    """``pool`` as a :class:`SolutionPool`: itself, or one built from initial states ``(P, *shape)``."""
    if pool is None:
        raise InvalidInputError(f"{owner}: needs a pool: a SolutionPool or its initial states (P, *shape), "
                                "e.g. the training targets")
    return pool if isinstance(pool, SolutionPool) else SolutionPool(pool)


def pool_for_call(owner: str, pool: SolutionPool, oracle: Any, prediction: Array, given: Any, data: dict) -> Any:
    """The pool ``(P, *shape)`` a call of a pool loss uses: ``given`` as it is (a JAX call's
    explicit ``pool=``; nothing grows), else ``pool`` after its growth step: on this call's
    coin, ``oracle`` solves ``prediction`` ``(B, *shape)`` on the host and the solutions not
    FAILED join it. Per-instance data are refused: one pool serves instances of one
    feasible set."""
    if data:
        raise InvalidInputError(f"{owner}: per-instance data ({', '.join(data)}) are not supported: the pool is "
                                "shared by every instance, so their feasible sets must be the same")
    if given is not None:
        return given
    if is_traced(prediction):
        if pool.solve_ratio > 0:
            raise InvalidInputError(
                f"{owner}: the pool cannot grow inside a trace (jax.jit, tf.function, Keras' compiled fit): "
                "call it eagerly (Keras: compile(run_eagerly=True)), use a fixed pool (solve_ratio=0), or, in JAX, "
                "pass the pool explicitly (pool=loss_fn.pool.states) and grow it outside with loss_fn.grow(c_hat)")
        return pool.states
    if pool.draw():
        grow(pool, oracle, prediction)
    return pool.states


def grow(pool: SolutionPool, oracle: Any, prediction: Array) -> int:
    """Solve ``prediction`` ``(B, *shape)`` (concrete) with ``oracle`` and add the solutions
    not FAILED to ``pool`` (no coin); returns how many were new."""
    states, status = oracle.solve(to_numpy(prediction), validate=False)
    return pool.add(np.asarray(states)[to_numpy(status) != Status.FAILED])
