"""A wall-clock budget for reading and compiling one spec (``SpecLimits.max_seconds``).

The other limits bound what a spec may grow to; this one bounds what is left: a spec
within every size limit that is still slow to parse or evaluate on a slow or busy
machine. The budget is opened once per entry point (:func:`time_budget`; an inner one
inside an open budget changes nothing, so reading and compiling share it) and checked
every few thousand steps of the slow loops (tokens, YAML nodes, evaluation steps),
where each check site raises its own located error with :func:`out_of_time`'s message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# (monotonic deadline, the budget in seconds) of the budget open in this context, if any
_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("imle_solvers_spec_deadline", default=None)

CHECK_EVERY = 4096  # steps between two looks at the clock (a look costs ~50 ns)


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Within, :func:`out_of_time` says so once ``seconds`` have passed (``inf``: never).
    Inside an open budget, the outer one holds."""
    if _DEADLINE.get() is not None or math.isinf(seconds):
        yield
        return
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def out_of_time() -> str | None:
    """The message for a spec past its budget, or None while there is time left (or no budget)."""
    deadline = _DEADLINE.get()
    if deadline is None or time.monotonic() <= deadline[0]:
        return None
    return (f"reading and compiling the spec took more than {deadline[1]:g} s (max_seconds); it is too large "
            "to parse in time: raise the limit, or write long sums with sum(...) over sets")
