"""The ``"loky"`` engine: a loky process pool of the oracle's own.

Not joblib's reusable executor, a process-wide singleton that every pool would share:
a time-out in one oracle kills that executor's workers, and another oracle's tasks die
with them; a forked child inherits the singleton and hangs on it. Each pool has its own
executor here, its workers run :func:`~imle_solvers.engines.watchdog.watch_parent`, and
a time-out or a loss replaces that executor only.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import joblib
from joblib.externals.loky.process_executor import (
    BrokenProcessPool,
    ProcessPoolExecutor,
    ShutdownExecutorError,
    TerminatedWorkerError,
)

from .watchdog import watch_parent


class LokyEngine:
    """``n_jobs`` loky worker processes (-1: one per core), started on first submit."""

    lost_errors: tuple[type[BaseException], ...] = (TerminatedWorkerError, BrokenProcessPool, ShutdownExecutorError)
    shared_losses = True
    retries_lost = False

    def __init__(self, n_jobs: int) -> None:
        self.workers = joblib.effective_n_jobs(n_jobs)
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], args: tuple) -> concurrent.futures.Future:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers, initializer=watch_parent)
        return self._executor.submit(fn, *args)

    def wait(self, handles: list[concurrent.futures.Future], timeout: float | None) -> list[concurrent.futures.Future]:
        done, _ = concurrent.futures.wait(handles, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: concurrent.futures.Future) -> Any:
        return handle.result()

    def abort(self, handles: list[concurrent.futures.Future]) -> None:
        # a running Python function cannot be stopped but with its process: all of them,
        # since loky does not say which worker holds which task
        self._stop(kill=True)

    def restart(self) -> None:
        self._stop(kill=True)  # a broken executor refuses new tasks: the next submit builds one

    def shutdown(self) -> None:
        self._stop(kill=False)

    def forget(self) -> None:
        self._executor = None

    def _stop(self, kill: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=kill)
