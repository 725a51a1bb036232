"""The ``"dask"`` engine: futures of the current ``distributed.Client``.

Submitting through the client's futures (not joblib's Dask backend) makes a worker's
death visible: when a task killed the workers that ran it ``allowed-failures + 1``
times (Dask's ``distributed.scheduler.allowed-failures``, 3 by default, each death
costs a nanny restart), its future raises ``KilledWorker``. A timed-out task is
cancelled and the workers running it restarted through their nannies, so that a hung
solver does not hold a core (or delay the next call) after its time-out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidInputError

# seconds a restart of timed-out workers may take before the pool goes on without them
RESTART_SECONDS = 60


class DaskEngine:
    """Tasks on the cluster of ``distributed.get_client()``."""

    def __init__(self) -> None:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        # a future cancelled under a task (another client restarting the cluster) is a loss too
        self.lost_errors: tuple[type[BaseException], ...] = (KilledWorker, FutureCancelledError)

    @property
    def client(self) -> Any:
        import distributed

        try:
            return distributed.get_client()
        except ValueError as error:
            raise InvalidInputError(
                "parallel_backend='dask' needs a distributed.Client: create one first "
                "(distributed.Client(address) or distributed.Client(distributed.LocalCluster()))"
            ) from error

    def submit(self, fn: Callable[..., Any], args: tuple) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        import distributed

        try:
            done, _ = distributed.wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def abort(self, handles: list[Any]) -> None:
        client = self.client
        keys = {handle.key for handle in handles}
        # which workers run them; cancel alone leaves a running task's thread busy for good
        running = [worker for worker, tasks in client.processing().items() if keys.intersection(tasks)]
        client.cancel(handles, force=True)
        if running:
            # nannies restart them; workers without a nanny cannot be restarted (see docs/parallel.md)
            client.restart_workers(running, timeout=RESTART_SECONDS, raise_for_error=False)

    def restart(self) -> None:
        pass  # the nannies replace dead workers

    def shutdown(self) -> None:
        pass  # the cluster belongs to the user

    def forget(self) -> None:
        pass
