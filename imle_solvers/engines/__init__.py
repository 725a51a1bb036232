"""Where a :class:`~imle_solvers._pool.WorkerPool` sends its tasks: one engine per backend.

An engine submits one task at a time and hands back a handle (a future); the pool
waits on the handles with each task's own deadline, so that it always knows which
task finished, failed, died with its worker or ran past its time-out. Each engine
stops only its own workers (:meth:`Engine.abort`): a time-out in one oracle never
touches another oracle's tasks.

- ``"loky"``: a process pool of the pool's own (:mod:`.loky`), whose workers exit
  when their parent dies.
- ``"dask"``: futures of the current ``distributed.Client`` (:mod:`.dask`); a dead
  worker is the future's ``KilledWorker``, a timed-out task is cancelled and its
  worker restarted by its nanny.
- ``"ray"``: Ray tasks (:mod:`.ray`); a dead worker is ``WorkerCrashedError``, a
  timed-out task is cancelled with its worker process.

Other joblib backends (``"threading"``, ``"sequential"``, ``"multiprocessing"``, any
registered one) have no engine and go through ``joblib.Parallel`` (see
:mod:`imle_solvers._pool`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Engine(Protocol):
    """Tasks on one pool's workers."""

    #: what the engine raises (on :meth:`submit` or :meth:`result`) when workers went
    #: away under a task: the task may be run again on restarted workers
    lost_errors: tuple[type[BaseException], ...]
    #: whether one dead worker loses every running task (loky: the executor breaks), so
    #: that no task should be submitted until the running ones came back
    shared_losses: bool
    #: whether the cluster already retried a lost task before reporting it (Dask's
    #: ``allowed-failures``): the pool then does not retry it once more
    retries_lost: bool

    def submit(self, fn: Callable[..., Any], args: tuple) -> Any:
        """Start ``fn(*args)`` on a worker; a handle for :meth:`wait` and :meth:`result`."""

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        """The handles among ``handles`` that finished, waiting up to ``timeout`` seconds
        (None: until one did) for at least one; empty when none finished in time."""

    def result(self, handle: Any) -> Any:
        """What the task of a finished ``handle`` returned; raises what it raised, or one of
        :attr:`lost_errors`."""

    def abort(self, handles: list[Any]) -> None:
        """Stop the tasks of ``handles`` (hung or no longer wanted) and restart the workers
        that ran them, so that they hold no core and the next call finds them free."""

    def restart(self) -> None:
        """Make the engine usable again after a loss (a no-op where the cluster replaces
        dead workers itself)."""

    def shutdown(self) -> None:
        """Stop the engine's own workers (a cluster's workers are not its own: it leaves them)."""

    def forget(self) -> None:
        """Drop every reference to the workers without touching them: in a forked child,
        where they belong to the parent."""


def cluster_slots(backend: str) -> int:
    """Tasks the cluster of ``backend`` (``"dask"`` or ``"ray"``) runs at once: its worker
    threads (Dask) or CPUs (Ray), as they are now."""
    if backend == "dask":
        from .dask import cluster_threads

        return cluster_threads()
    from .ray import cluster_cpus

    return cluster_cpus()


def make_engine(backend: str, n_jobs: int) -> Engine | None:
    """The engine of ``backend`` with ``n_jobs`` workers, or None for backends that go
    through ``joblib.Parallel``."""
    if backend == "loky":
        from .loky import LokyEngine

        return LokyEngine(n_jobs)
    if backend == "dask":
        from .dask import DaskEngine

        return DaskEngine()
    if backend == "ray":
        from .ray import RayEngine

        return RayEngine()
    return None
