"""An opt-in cache of MAP states, with PyEPO's ``solve_ratio``.

``MAPOracle(problem, cache=SolutionCache(solve_ratio=1.0, max_entries=100_000,
max_bytes=256 * 2**20))`` (or ``cache=True`` for these defaults) remembers the states it
solved, keyed per instance by the bytes of its scores row and of its per-instance data rows:

- an instance seen before (same scores, same data) is an *exact hit*: its stored state
  is returned without a solve;
- of the other instances, a random fraction ``solve_ratio`` (each instance's coin: a
  uniform draw ``< solve_ratio``, as in PyEPO) is solved; every other one is answered by
  the best cached state under its own scores (the argmax of ``<z, theta>`` for a max
  problem, the argmin for a min problem), among the states cached for instances with the
  same per-instance data only (a state of other data may be infeasible for it), and is
  solved when there is none.

Solved states with status OK are added (never a failed instance's placeholder nor an
incumbent); the least recently used entries are evicted beyond ``max_entries`` entries or
``max_bytes`` bytes (see :func:`entry_bytes`), whichever is reached first. With
``solve_ratio=1`` the oracle's results are exactly those without a cache (for a
deterministic solver); below 1 they are approximate. The cache works in the calling
process, before chunking: only the instances to solve go to the solver or the pool. It
serves the solves on the host only: a batch an array-native solver takes as it is (on
its device, or traced) bypasses it. See ``docs/parallel.md`` ("Solution cache").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError

__all__ = ["DEFAULT_MAX_BYTES", "CacheStats", "SolutionCache", "entry_bytes", "resolve_cache"]

# The default bound of a cache's memory: at n = 2000 float64 scores an entry takes about
# 32 KiB (its key and its state), so 100,000 entries would take 3 GiB; 256 MiB holds 8,000.
DEFAULT_MAX_BYTES = 256 * 2**20
# What Python's own objects around an entry take beyond its arrays' bytes (the key's
# tuples and bytes objects, the state's ndarray header, the dicts' slots): 400-520 bytes
# measured with tracemalloc at n = 2000 and n = 4.
ENTRY_OVERHEAD_BYTES = 512

DataKey = tuple[tuple[str, bytes], ...]
Key = tuple[str, bytes, DataKey]


@dataclass
class CacheStats:
    """Instances looked up since the cache was built (or cleared).

    Attributes:
        exact_hits: answered with the state stored for the same scores and data.
        pool_answers: answered with the best cached state of the same data under their
            scores (only with ``solve_ratio < 1``).
        solved: sent to the solver (failed solves included).
    """

    exact_hits: int = 0
    pool_answers: int = 0
    solved: int = 0

    @property
    def lookups(self) -> int:
        return self.exact_hits + self.pool_answers + self.solved

    @property
    def hit_rate(self) -> float:
        """The fraction of instances answered from the cache, without a solve (0 before any)."""
        return (self.exact_hits + self.pool_answers) / self.lookups if self.lookups else 0.0


@dataclass(frozen=True)
class CachePlan:
    """What a batch gets from the cache.

    Attributes:
        answered: ``(B,)`` bools, True for the rows answered from the cache.
        states: ``(B, *shape)``, the cached states of the answered rows (zeros elsewhere).
        to_solve: the batch indices of the rows to solve, ascending.
        keys: each row's cache key.
    """

    answered: np.ndarray
    states: np.ndarray
    to_solve: np.ndarray
    keys: list[Key]


class SolutionCache:
    """MAP states of instances solved before, for :class:`~imle_solvers.MAPOracle`'s ``cache=``.

    Args:
        solve_ratio: in ``(0, 1]``: the fraction of the instances that are not exact hits
            that is solved; the others get the best cached state of their data under their
            scores. 1 (the default): every new instance is solved, results are exact.
        max_entries: the most states kept; the least recently used go first.
        seed: of the random draws deciding which instances are solved (``solve_ratio < 1``).
        max_bytes: the most memory the entries take, in bytes (:func:`entry_bytes`; the
            default ``DEFAULT_MAX_BYTES`` is 256 MiB); the least recently used go first,
            and a state whose entry alone exceeds it is not stored.

    ``stats`` counts exact hits, pool answers and solves (``stats.hit_rate``); ``nbytes``
    is the memory the entries take; :meth:`clear` empties the cache and its statistics.
    A cache serves one problem: giving it to oracles of different problems raises.
    """

    def __init__(
        self,
        solve_ratio: float = 1.0,
        max_entries: int = 100_000,
        seed: int | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if isinstance(solve_ratio, bool) or not isinstance(solve_ratio, (int, float)) or not 0 < solve_ratio <= 1:
            raise InvalidInputError(f"SolutionCache: solve_ratio must be in (0, 1], got {solve_ratio!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidInputError(f"SolutionCache: max_entries must be a positive int, got {max_entries!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidInputError(f"SolutionCache: max_bytes must be a positive int (bytes), got {max_bytes!r}")
        self.solve_ratio = float(solve_ratio)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0  # of the entries, as entry_bytes counts them
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._entries: OrderedDict[Key, np.ndarray] = OrderedDict()  # least recently used first
        self._groups: dict[DataKey, dict[Key, None]] = {}  # the keys cached per data
        self._problem: Any = None
        self.stats = CacheStats()

    def __repr__(self) -> str:
        return (
            f"SolutionCache(solve_ratio={self.solve_ratio}, max_entries={self.max_entries}, seed={self.seed}, "
            f"max_bytes={self.max_bytes}; {len(self)} entries, {self.nbytes} bytes)"
        )

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every state and reset the statistics."""
        self._entries.clear()
        self._groups.clear()
        self.nbytes = 0
        self.stats = CacheStats()

    def bind(self, problem: Any) -> None:
        """Serve ``problem`` (an oracle's); a cache serving another problem raises."""
        if self._problem is not None and self._problem != problem:
            raise InvalidInputError(
                f"SolutionCache: this cache serves {self._problem!r}; give each problem a cache of its own"
            )
        self._problem = problem

    def plan(self, theta: np.ndarray, data: Mapping[str, np.ndarray], sign: int) -> CachePlan:
        """Look up a batch ``theta`` ``(B, *shape)`` (numpy) with its host ``data``: which
        rows the cache answers (and with what), which to solve. Updates ``stats``."""
        n = len(theta)
        keys = [self._key(theta[i], data, i) for i in range(n)]
        answered = np.zeros(n, dtype=bool)
        states = np.zeros_like(theta)
        misses = []
        for i, key in enumerate(keys):
            state = self._entries.get(key)
            if state is None:
                misses.append(i)
            else:
                self._entries.move_to_end(key)
                states[i] = state
                answered[i] = True
        self.stats.exact_hits += n - len(misses)
        if self.solve_ratio < 1 and misses:
            coins = self._rng.random(len(misses)) < self.solve_ratio
            by_data: dict[DataKey, list[int]] = {}
            for i, solve in zip(misses, coins):
                if not solve and self._groups.get(keys[i][2]):
                    by_data.setdefault(keys[i][2], []).append(i)
            for data_key, indices in by_data.items():
                candidates = list(self._groups[data_key])
                stacked = np.stack([self._entries[key] for key in candidates]).reshape(len(candidates), -1)
                scores = sign * theta[indices].reshape(len(indices), -1) @ stacked.T.astype(theta.dtype, copy=False)
                for i, best in zip(indices, np.argmax(scores, axis=1)):
                    states[i] = self._entries[candidates[best]]
                    answered[i] = True
                    self._entries.move_to_end(candidates[best])
                self.stats.pool_answers += len(indices)
        to_solve = np.flatnonzero(~answered)
        self.stats.solved += len(to_solve)
        return CachePlan(answered=answered, states=states, to_solve=to_solve, keys=keys)

    def add(self, keys: list[Key], states: np.ndarray, ok: np.ndarray) -> None:
        """Store ``states[i]`` under ``keys[i]`` where ``ok[i]``, evicting the least recently
        used beyond ``max_entries`` or ``max_bytes``."""
        for key, state, good in zip(keys, states, ok):
            size = entry_bytes(key, state)
            if not good or size > self.max_bytes:
                continue  # a failure's placeholder; an entry that would evict all others and still not fit
            if key in self._entries:
                self._entries.move_to_end(key)
                self.nbytes -= entry_bytes(key, self._entries[key])
            else:
                self._groups.setdefault(key[2], {})[key] = None
            self._entries[key] = np.array(state, copy=True)
            self.nbytes += size
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            key, state = self._entries.popitem(last=False)
            self.nbytes -= entry_bytes(key, state)
            group = self._groups[key[2]]
            del group[key]
            if not group:
                del self._groups[key[2]]

    @staticmethod
    def _key(row: np.ndarray, data: Mapping[str, np.ndarray], i: int) -> Key:
        data_key = tuple((name, np.ascontiguousarray(data[name][i]).tobytes()) for name in sorted(data))
        return (row.dtype.str, np.ascontiguousarray(row).tobytes(), data_key)


def entry_bytes(key: Key, state: np.ndarray) -> int:
    """The memory an entry takes, in bytes: its state's, its key's (the scores row's and
    the data rows' bytes), and ``ENTRY_OVERHEAD_BYTES`` for the Python objects around them."""
    return state.nbytes + len(key[1]) + sum(len(row) for _, row in key[2]) + ENTRY_OVERHEAD_BYTES


def resolve_cache(cache: Any, owner: str = "MAPOracle") -> SolutionCache | None:
    """``cache=`` as a :class:`SolutionCache` or None: ``True`` for the defaults, ``None``
    or ``False`` for none."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return SolutionCache()
    if isinstance(cache, SolutionCache):
        return cache
    raise InvalidInputError(f"{owner}: cache must be a SolutionCache, True or None, got {type(cache).__name__}")
