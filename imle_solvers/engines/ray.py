"""The ``"ray"`` engine: Ray tasks, submitted one per chunk.

Each task runs with ``max_retries=0``: when its worker process dies, ``ray.get`` raises
``WorkerCrashedError`` at once (the pool retries the task once itself), rather than
Ray retrying it in silence. A timed-out task is cancelled with ``force=True``, which
kills the worker process running it. Ray reuses its worker processes across tasks, so
workers start once per run, not per call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


@functools.cache
def _remote() -> Any:
    import ray

    return ray.remote(max_retries=0, num_cpus=1)(_call)


def cluster_cpus() -> int:
    """CPUs of the Ray cluster (a local one is started if this process has none)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    return int(ray.cluster_resources().get("CPU", 1))


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)


class RayEngine:
    """Tasks on the Ray cluster this process is connected to (``ray.init``; Ray starts a
    local one on first use otherwise)."""

    shared_losses = False
    retries_lost = False

    def __init__(self) -> None:
        from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError

        self.lost_errors: tuple[type[BaseException], ...] = (
            WorkerCrashedError,
            RayActorError,
            NodeDiedError,
            ObjectLostError,
        )

    def submit(self, fn: Callable[..., Any], args: tuple) -> Any:
        return _remote().remote(fn, args)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        import ray

        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:  # every other one finished by now, too
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        return ready

    def result(self, handle: Any) -> Any:
        import ray

        return ray.get(handle)

    def abort(self, handles: list[Any]) -> None:
        import ray

        for handle in handles:
            ray.cancel(handle, force=True)  # kills the worker process that runs it

    def restart(self) -> None:
        pass  # Ray starts new worker processes itself

    def shutdown(self) -> None:
        pass  # workers belong to the Ray cluster

    def forget(self) -> None:
        pass
