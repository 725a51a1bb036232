"""A worker that outlives its parent exits: the initializer of every loky worker.

A trainer killed by SIGKILL (or the out-of-memory killer) runs no clean-up, and
loky's workers would idle on until their own idle time-out (minutes), each holding
the solver's memory. ``prctl(PR_SET_PDEATHSIG)`` is no fix: Linux sends it when the
*thread* that started the worker exits, and loky starts replacement workers from a
thread of its own. A daemon thread in the worker polls its parent instead.
"""

from __future__ import annotations

import os
import threading
import time

#: how often a worker looks for its parent, in seconds: it exits within this after its death
POLL_SECONDS = 0.5


def watch_parent(poll_seconds: float = POLL_SECONDS) -> None:
    """Exit this process (status 1, no clean-up) as soon as its parent process is gone,
    i.e. once it has been re-parented (its parent pid changed)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)  # noqa: SLF001 - the parent that would collect anything is gone

    threading.Thread(target=watch, name="imle-solvers-parent-watchdog", daemon=True).start()
