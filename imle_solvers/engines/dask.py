"""The ``"dask"`` engine: futures of the current ``distributed.Client``.

Submitting through the client's futures (not joblib's Dask backend) makes a worker's
death visible: when a task killed the workers that ran it ``allowed-failures + 1``
times (Dask's ``distributed.scheduler.allowed-failures``, 3 by default, each death
costs a nanny restart), its future raises ``KilledWorker``. A timed-out task is
cancelled and the workers running it end, to be started afresh by their nannies, so
that a hung solver does not hold a core (or delay the next call) after its time-out.

A ``LocalCluster`` (any ``SpecCluster``) closes a nanny for good when, 15 s after its
worker left the scheduler (``distributed.deploy.lost-worker-timeout``), no worker of the
same name is registered, even if the nanny is alive and its replacement worker is just
starting: it takes the nanny for a lost job. Workers that die again and again (solvers
that abort, hung tasks' workers ended) on a loaded machine, where a worker takes seconds
to start, are sometimes caught restarting at that moment, and the cluster loses one
nanny after the other until it has no worker. The engine re-opens the nannies that the
cluster of its client closed that way (its ``worker_spec`` still names them): see
:func:`reopen_lost_nannies`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInputError

# A cluster without a single worker this long loses the tasks waiting for one. A nanny
# restarts a dead worker in seconds (and again if the new one dies while starting); but a
# cluster can lose nannies for good (a LocalCluster closes one caught restarting by its
# lost-worker check, see above: the engine reopens those of its client's own cluster, not
# those of a cluster reached by address), and with every nanny gone the tasks would wait
# forever.
NO_WORKER_SECONDS = 10.0
# how long a worker told to exit answers first
EXIT_DELAY_SECONDS = 0.1
# how long a loss waits for the nannies to bring the cluster back to strength, and how
# long a replaced worker is left to finish starting before it gets a task
REPLACE_SECONDS = 30.0
SETTLE_SECONDS = 0.5
# how often a wait looks whether the cluster still has workers
POLL_SECONDS = 1.0
# how long a finished task's result may take to be fetched, computed again if its worker
# died first (a task is solved in well under this, or it is timed)
REFETCH_SECONDS = 30.0
# how long a request to re-open lost nannies is left to act before it is made again
# (a nanny and its worker start in seconds, more on a loaded machine)
REOPEN_SECONDS = 5.0


class NoWorkers(RuntimeError):
    """The Dask cluster had no worker for ``NO_WORKER_SECONDS``: its tasks are lost."""


class ResultLost(RuntimeError):
    """A finished task's result went with its worker and was not computed again within
    ``REFETCH_SECONDS``: the task is lost (and retried once, as after a worker's death)."""


def current_client() -> Any:
    """``distributed.get_client()``, or an error saying that one is needed."""
    import distributed

    try:
        return distributed.get_client()
    except ValueError as error:
        raise InvalidInputError(
            "parallel_backend='dask' needs a distributed.Client: create one first "
            "(distributed.Client(address) or distributed.Client(distributed.LocalCluster()))"
        ) from error


def cluster_threads() -> int:
    """Worker threads of the cluster now (0 while every worker restarts)."""
    return sum(current_client().nthreads().values())


def _nanny_of(client: Any, worker: str) -> str | None:
    """The address of ``worker``'s nanny, or None (a worker started without one)."""
    return client.scheduler_info(n_workers=-1)["workers"].get(worker, {}).get("nanny")


def _spec_cluster(client: Any) -> Any | None:
    """The ``SpecCluster`` (``LocalCluster`` and its kin) that ``client`` was made with, or
    None (a client of a scheduler's address: its workers are another process's business)."""
    cluster = getattr(client, "cluster", None)
    return cluster if hasattr(cluster, "worker_spec") and hasattr(cluster, "workers") else None


def lost_nannies(cluster: Any) -> list[Any]:
    """Names of the workers that ``cluster`` (a ``SpecCluster``) should run, by its own
    ``worker_spec``, but whose nanny it closed or never got started (none when the
    cluster itself is closing: then every nanny goes). A name still registered with the
    scheduler is left for a later look: the closed nanny's last worker has not left yet,
    and a new one of the same name would be refused ("name taken") and its nanny fail."""
    from distributed.core import Status

    if cluster.status != Status.running:
        return []
    try:
        spec, workers = list(cluster.worker_spec), dict(cluster.workers)
        registered = {info.get("name") for info in list(cluster.scheduler_info.get("workers", {}).values())}
    except RuntimeError:  # changed by the cluster's event loop while read: look again later
        return []
    return [name for name in spec
            if (name not in workers or workers[name].status in (Status.closed, Status.failed))
            and name not in registered]


def reopen_lost_nannies(cluster: Any, names: list[Any]) -> None:
    """Have ``cluster`` start new nannies (and workers) for ``names`` (see
    :func:`lost_nannies`): a closed nanny left in ``cluster.workers`` is removed first (on
    the cluster's event loop, where the cluster changes it), then ``scale`` to the size of
    its own spec starts those missing. Returns at once: the workers start in seconds."""
    from distributed.core import Status

    def forget_closed() -> None:
        for name in names:
            nanny = cluster.workers.get(name)
            if nanny is not None and nanny.status in (Status.closed, Status.failed):
                del cluster.workers[name]

    cluster.loop.add_callback(forget_closed)
    cluster.scale(len(cluster.worker_spec))  # the same size: its callback runs after forget_closed


async def _exit_worker() -> None:
    """Run on a worker (by ``Client.run``, in its event loop, not in a task's thread; a
    coroutine, as ``run(..., wait=False)`` takes): end its process at once, whatever its
    task threads are doing. After a moment: ``run`` is answered first (a process gone
    before its answer fails the scheduler's broadcast)."""
    await asyncio.sleep(EXIT_DELAY_SECONDS)
    os._exit(1)


def _allowed_failures(dask_scheduler: Any) -> int:
    return dask_scheduler.allowed_failures


class DaskEngine:
    """Tasks on the cluster of ``distributed.get_client()``."""

    shared_losses = False

    def __init__(self) -> None:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        # a future cancelled under a task (another client restarting the cluster) is a loss too
        self.lost_errors: tuple[type[BaseException], ...] = (
            KilledWorker, FutureCancelledError, NoWorkers, ResultLost)
        self._stranded: set[str] = set()  # keys of tasks lost with the cluster's last worker
        self._workerless_since: float | None = None
        self._most_workers = 0  # the most workers the cluster was seen with: its strength
        self._allowed_failures: int | None = None
        self._reopened_at = -REOPEN_SECONDS  # when lost nannies were last asked back (monotonic)
        self.reopened = 0  # how many nannies the engine asked its client's cluster to start anew

    @property
    def retries_lost(self) -> bool:
        """Whether the scheduler retries a task whose worker died (its ``allowed-failures``,
        3 by default): then ``KilledWorker`` comes after those retries, and the pool adds
        none. With 0, the pool retries a lost task once, as on loky."""
        if self._allowed_failures is None:
            self._allowed_failures = int(self.client.run_on_scheduler(_allowed_failures))
        return self._allowed_failures > 0

    @property
    def client(self) -> Any:
        return current_client()

    def submit(self, fn: Callable[..., Any], args: tuple) -> Any:
        client = self.client
        self._reopen_lost_nannies(client)
        return client.submit(fn, *args, pure=False)

    def _reopen_lost_nannies(self, client: Any) -> None:
        """Ask the client's ``SpecCluster`` to start the nannies it closed (module docstring),
        once per ``REOPEN_SECONDS`` at most."""
        cluster = _spec_cluster(client)
        if cluster is None or time.monotonic() - self._reopened_at < REOPEN_SECONDS:
            return
        names = lost_nannies(cluster)
        if names:
            self._reopened_at = time.monotonic()
            self.reopened += len(names)
            reopen_lost_nannies(cluster, names)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        # Futures' own states and done-callbacks, never ``distributed.wait``: its blocking
        # call was seen to outlast its own timeout of a second by minutes, after workers
        # were restarted under it (the chaos soak), and a wait here must end by its deadline.
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = threading.Event()
        for handle in handles:
            handle.add_done_callback(lambda _: finished.set())
        while True:
            finished.clear()  # before looking: a task that finishes after the look sets it again
            done = [handle for handle in handles if handle.done()]
            if done:
                return done
            left = POLL_SECONDS if deadline is None else min(POLL_SECONDS, max(0.0, deadline - time.monotonic()))
            if finished.wait(left):
                continue
            if self._workerless_too_long():
                self.client.cancel(handles, force=True)  # never to run on a worker that turns up later
                self._stranded.update(handle.key for handle in handles)
                return list(handles)
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def result(self, handle: Any) -> Any:
        if handle.key in self._stranded:
            self._stranded.discard(handle.key)
            raise NoWorkers(f"the Dask cluster had no worker for {NO_WORKER_SECONDS:.0f} s")
        # a finished task whose worker died before its result was fetched is computed again:
        # that too must not wait for a worker forever, nor for a thread (the recomputation
        # may be queued behind another task of the call that hangs, whose time-out is only
        # looked at once this returns)
        deadline = time.monotonic() + REFETCH_SECONDS
        while True:
            try:
                return handle.result(timeout=POLL_SECONDS)
            except (TimeoutError, UnboundLocalError):
                # UnboundLocalError: distributed.utils.sync catches ``Exception`` only, and an
                # asyncio.CancelledError (a BaseException) out of its timed wait leaves its
                # ``result`` unbound (distributed 2026.11, Python 3.11: seen under load, as the
                # timeout met the result). Nothing was fetched: look again, as after a time-out.
                if self._workerless_too_long():
                    self.client.cancel([handle], force=True)
                    raise NoWorkers(f"the Dask cluster had no worker for {NO_WORKER_SECONDS:.0f} s") from None
                if time.monotonic() >= deadline:
                    self.abort([handle])  # cancelled, and the workers that may run it end
                    raise ResultLost(f"a finished task's result was lost and not computed again within "
                                     f"{REFETCH_SECONDS:.0f} s") from None
            except BaseException:
                # The task failed (KilledWorker: its worker died; or was cancelled). Dask raises
                # the error its client keeps for the future with this call's frames attached,
                # and those frames hold the future: the client's table of futures then keeps
                # the future, the error, the frames and their locals (this call's tasks and
                # results) for good, and the scheduler keeps the erred task for the future's
                # sake. Released, the client forgets the future, and the rest is ordinary
                # garbage. Not a future still running (Ctrl-C during the wait).
                if handle.done():
                    handle.release()
                raise

    def _workers(self) -> list[str]:
        """The cluster's workers now; remembers the most ever seen."""
        client = self.client
        self._reopen_lost_nannies(client)
        workers = list(client.nthreads())
        self._most_workers = max(self._most_workers, len(workers))
        return workers

    def _wait_for_replacements(self, gone: set[str] = frozenset()) -> None:
        """Until the workers ``gone`` have left and the cluster is back to its strength
        (nannies replace dead workers in a second or two), ``REPLACE_SECONDS`` at most, and a
        moment more. The reruns after a loss (a lost task's retry, the search for the
        instance that killed it) would otherwise kill workers still starting, in a row, and
        each death is one more chance for a ``LocalCluster`` to close a nanny caught
        restarting (module docstring)."""
        deadline = time.monotonic() + REPLACE_SECONDS
        waited = False
        while True:
            workers = set(self._workers())
            if not gone & workers and len(workers) >= self._most_workers:
                break
            if time.monotonic() >= deadline:
                # a nanny that did not replace its worker (closed by its cluster and not
                # reopened: a cluster reached by address): the cluster's strength is what is
                # left, and later losses wait for that
                self._most_workers = len(workers - gone)
                break
            waited = True
            time.sleep(EXIT_DELAY_SECONDS / 2)
        if waited:
            time.sleep(SETTLE_SECONDS)

    def _workerless_too_long(self) -> bool:
        if self._workers():
            self._workerless_since = None
            return False
        now = time.monotonic()
        if self._workerless_since is None:
            self._workerless_since = now
        return now - self._workerless_since >= NO_WORKER_SECONDS

    def abort(self, handles: list[Any]) -> None:
        client = self.client
        keys = {handle.key for handle in handles}
        # which workers run them; cancel alone leaves a running task's thread busy for good
        running = [worker for worker, tasks in client.processing().items() if keys.intersection(tasks)]
        client.cancel(handles, force=True)
        with_nanny = [worker for worker in running if _nanny_of(client, worker) is not None]
        if with_nanny:
            # The worker process exits and its nanny starts a new one, as after a crash.
            # Not ``client.restart_workers``: under load it was seen to leave a nanny without
            # a worker (its new one "not returned after 60 s"), the cluster a worker short
            # for good and the call waiting those 60 s. Workers without a nanny are left: a
            # hung task then runs on in its thread (see docs/parallel.md).
            try:
                client.run(_exit_worker, workers=with_nanny, wait=False)
            except OSError:  # distributed's CommClosedError: a worker already gone, as wanted
                pass
            # gone and replaced before the next task, which then finds none of this call's running
            self._wait_for_replacements(set(with_nanny))

    def restart(self) -> None:
        self._wait_for_replacements()  # the nannies replace dead workers

    def shutdown(self) -> None:
        pass  # the cluster belongs to the user

    def forget(self) -> None:
        pass
