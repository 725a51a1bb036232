"""Soak and fault runs of training through the worker pool, measured.

- **torch soak**: a torch ``IMLELayer`` over a small knapsack ILP (12 items, one
  capacity, built with ``ILPBuilder``) trains a linear scorer for ``--steps``
  steps with ``n_jobs=2`` (loky) and ``chunk_size=4``, batch 8: two pool calls a
  step. Resident memory is sampled after a warm-up (a tenth of the steps, at
  least 50) and at the end; open file descriptors, OS threads and child
  processes are counted at the same two points, and again after the pool is
  closed.
- **torch faults**: the same training with a loky worker SIGKILLed from
  outside every ``--kill-every`` steps, alternately between two steps and from
  a timer thread while a step runs (as an out-of-memory killer would). Training
  must complete, and its final parameters must equal the undisturbed run's
  (same seed).
- **JAX soak**: ``imle_solvers.jax.imle(problem, IMLE(...), n_jobs=2)`` through
  ``jax.pure_callback``, ``--jax-steps`` jitted gradient steps, memory and
  resources as above.
- **Dask fault**: the torch training on a Dask ``LocalCluster`` (two worker
  processes), one worker SIGKILLed from a timer thread during a step; final
  parameters against the undisturbed in-process run.
- **hang**: a solver that hangs on one instance, ``time_limit=0.5``: the layer
  raises ``SolverError(status="time-limit")`` naming the instances of its chunk.
- **chaos**: ``--chaos-steps`` oracle calls (batch 8, ``chunk_size=2``,
  ``on_failure="skip"``, ``time_limit=0.2``) with a solver that, on instances drawn at
  random, aborts its worker (``os.abort``), hangs, or raises; on loky and on a Dask
  cluster (two single-threaded workers with nannies, ``allowed-failures: 0``, its
  scheduler in a process of its own: see :func:`dask_cluster`). Every 50th
  step is three calls from three threads at once, and one step forks the process and
  calls the oracle in the child. Figures: calls that hung (none may: a watchdog ends
  the run), states reported solved that differ from the undisturbed solve, the longest
  call against the bound (each chunk's time-out, twice: a lost chunk is retried once),
  resident memory growth after warm-up (on Dask, the scheduler's too, apart), and
  processes left after closing.

``--short`` runs 300 torch steps with two kills (one of each kind), 100 JAX steps, 200
chaos steps. Prints a markdown
table; ``main()`` returns the figures. The tests (tests/test_soak.py) run the same
functions.

Run: ``python benchmarks/soak.py [--short]``
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import imle_solvers as ims
from imle_solvers.adapters import resolve_solver

ITEMS, FEATURES, BATCH = 12, 4, 8
# an instance scored above this hangs the solver below
HANG_MARK = 1e6


def knapsack() -> ims.ILP:
    """``max theta.x  s.t.  weights.x <= 20``, x binary ``(ITEMS,)``."""
    builder = ims.ILPBuilder("soak-knapsack")
    builder.add_set("items", ITEMS)
    builder.add_parameter("weight", [3, 4, 5, 2, 6, 1, 7, 3, 4, 2, 5, 6])
    builder.add_variable("x", over=["items"])
    builder.add_constraint("sum(i in items) weight[i] * x[i] <= 20", name="capacity")
    builder.set_objective("max", theta="x")
    return builder.build()


@dataclasses.dataclass(frozen=True, eq=False)
class HangingKnapsack(ims.ILP):
    """The knapsack, with a solver of its own that hangs on instances marked by a score
    above ``HANG_MARK`` (a stand-in for a solver stuck in a hard instance)."""

    kind: ClassVar[str] = "soak-hanging-knapsack"


@ims.register_solver(HangingKnapsack.kind, "hang-on-mark")
def solve_or_hang(theta: np.ndarray, problem: HangingKnapsack) -> np.ndarray:
    if theta.max() > HANG_MARK:
        time.sleep(3600)
    return resolve_solver("ilp").solve(theta, problem)


# -- chaos: a solver that aborts, hangs or raises on instances drawn at random ---------------

CHAOS_N = 6
# a chaos instance's first score: FAULT_MARK times the fault's code (1 abort, 2 hang, 3 raise)
FAULT_MARK = 1e3
FAULTS = ("abort", "hang", "raise")


@dataclasses.dataclass(frozen=True, eq=False)
class Chaos(ims.KSubset):
    """The best of ``CHAOS_N`` items, with a solver that faults on marked instances."""

    kind: ClassVar[str] = "soak-chaos"


def best_items(scores: np.ndarray) -> np.ndarray:
    """The undisturbed answer: the one-hot argmax of each row ``(B, n) -> (B, n)``."""
    return np.eye(scores.shape[-1])[np.argmax(scores, axis=-1)]


@ims.register_solver(Chaos.kind, "chaos")
def solve_or_fault(theta: np.ndarray, problem: Chaos) -> np.ndarray:
    fault = int(theta[0] // FAULT_MARK) if theta[0] >= FAULT_MARK else 0
    if fault == 1:
        os.abort()
    if fault == 2:
        time.sleep(3600)
    if fault == 3:
        raise ValueError("the chaos solver refuses this instance")
    return best_items(theta[None])[0]


def chaos_batch(rng: np.random.Generator, faults: dict[str, float], b: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(b, CHAOS_N)`` in [0, 1) and which rows were marked to fault ``(b,)``: each
    row faults with the probability ``faults[kind]`` of each kind."""
    scores = rng.uniform(size=(b, CHAOS_N))
    marked = np.zeros(b, dtype=bool)
    for code, kind in enumerate(FAULTS, start=1):
        hit = (rng.uniform(size=b) < faults.get(kind, 0.0)) & ~marked
        scores[hit, 0] = code * FAULT_MARK
        marked |= hit
    return scores, marked


def chaos_run(
    steps: int,
    parallel_backend: str = "loky",
    faults: dict[str, float] | None = None,
    seed: int = 0,
    time_limit: float = 0.2,
    thread_every: int = 50,
    fork_at: int | None = None,
    hang_seconds: float = 300.0,
    progress_every: int = 100,
    watch: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``steps`` calls of an oracle on ``parallel_backend`` with a chaos solver; the figures.

    ``faults``: per-row probability of each fault (default: abort 0.2%, hang 0.05%,
    raise 1%: a fault in about one step in ten, each abort costing a worker restart). Every ``thread_every``-th step is three concurrent calls from three threads;
    at step ``fork_at`` (default: just past half-way) the process forks and the child calls the
    oracle. A call longer than ``hang_seconds`` is a hang: the watchdog prints every
    thread's stack and ends the process. Every ``progress_every`` steps (0: never) a line on
    stderr says how far the run is. ``watch``: other processes by name and pid whose resident
    memory is measured with this one's (``{name}_rss_growth_pct``: a Dask scheduler's)."""
    import faulthandler

    from imle_solvers import scheduler

    faults = {"abort": 0.002, "hang": 0.0005, "raise": 0.01} if faults is None else faults
    fork_at = steps // 2 + 1 if fork_at is None else fork_at  # not a threads' step
    rng = np.random.default_rng(seed)
    oracle = ims.MAPOracle(Chaos(n=CHAOS_N, k=1), backend="chaos", n_jobs=2, parallel_backend=parallel_backend,
                           chunk_size=2, time_limit=time_limit, on_failure="skip")
    bound = 2 * (2 * time_limit + scheduler.TIMEOUT_GRACE_SECONDS)  # a chunk's time-out, retried once
    figures: dict[str, Any] = {"steps": steps, "engine": parallel_backend, "hangs": 0, "wrong": 0, "solved": 0,
                               "failed": 0, "marked": 0, "unmarked_failed": 0, "longest_s": 0.0, "bound_s": bound,
                               "thread_calls": 0, "fork": None}
    before = child_pids()
    warm = warm_up_steps(steps)

    def call(scores: np.ndarray, marked: np.ndarray) -> None:
        start = time.perf_counter()
        z, status = oracle.solve(scores)
        figures["longest_s"] = max(figures["longest_s"], time.perf_counter() - start)
        solved = status == 0
        figures["solved"] += int(solved.sum())
        figures["failed"] += int((~solved).sum())
        figures["marked"] += int(marked.sum())
        figures["unmarked_failed"] += int((~solved & ~marked).sum())
        figures["wrong"] += int((np.abs(z[solved] - best_items(scores[solved])).sum(axis=-1) > 0).sum())

    start = time.perf_counter()
    faulthandler.dump_traceback_later(hang_seconds, exit=True)  # a hung call ends the run, loudly
    try:
        oracle.warm_up()
        for step in range(steps):
            faulthandler.cancel_dump_traceback_later()
            faulthandler.dump_traceback_later(hang_seconds, exit=True)
            if step == warm:
                figures["rss_mb_warm"] = rss_mb()
                figures.update({f"{name}_rss_mb_warm": rss_mb(pid) for name, pid in (watch or {}).items()})
            if thread_every and step and step % thread_every == 0:
                batches = [chaos_batch(rng, faults) for _ in range(3)]
                threads = [threading.Thread(target=call, args=batch) for batch in batches]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                figures["thread_calls"] += 3
            elif step == fork_at:
                figures["fork"] = _chaos_fork(oracle, rng)
            else:
                call(*chaos_batch(rng, faults))
            figures["steps_done"] = step + 1
            if progress_every and (step + 1) % progress_every == 0:  # a long soak reports as it goes
                print(f"  {parallel_backend} chaos: {step + 1}/{steps} steps, {time.perf_counter() - start:.0f} s, "
                      f"{figures['hangs']} hangs, {figures['wrong']} wrong of {figures['solved']} solved, "
                      f"{figures['failed']} failed, longest call {figures['longest_s']:.1f} s, "
                      f"RSS {rss_mb():.0f} MiB", file=sys.stderr, flush=True)
        figures["seconds"] = time.perf_counter() - start
        figures["rss_mb_end"] = rss_mb()
        figures.update({f"{name}_rss_mb_end": rss_mb(pid) for name, pid in (watch or {}).items()})
    finally:
        faulthandler.cancel_dump_traceback_later()
        figures["restarts"] = oracle.pool.restarts
        figures["failures"] = dict(oracle.failures)
        oracle.close()
        _wait_for_workers_to_exit()
    for name in ["", *(f"{name}_" for name in watch or {})]:
        figures[f"{name}rss_growth_pct"] = 100 * (figures[f"{name}rss_mb_end"] / figures[f"{name}rss_mb_warm"] - 1)
    figures["leaked_processes"] = len(_non_trackers(child_pids() - before))
    return figures


def _non_trackers(pids: set[int]) -> set[int]:
    """``pids`` but the resource trackers (multiprocessing's, loky's): one per process for
    its lifetime, started with the first pool, not workers."""
    kept = set()
    for pid in pids:
        try:
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                kept.add(pid)
        except OSError:
            continue
    return kept


def _chaos_fork(oracle: ims.MAPOracle, rng: np.random.Generator) -> bool:
    """Fork; the child calls ``oracle`` on a clean batch (no fault) and says whether it was
    right. Whether it was, within a minute."""
    scores, _ = chaos_batch(rng, {})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, b"1" if np.array_equal(oracle(scores), best_items(scores)) else b"0")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.05)
    answer = os.read(read, 1)
    os.close(read)
    return answer == b"1"


def _scheduler_process_class() -> type:
    """A ``SpecCluster`` scheduler that runs in a process of its own (``python -m dask spec``):
    Dask's ``SubprocessScheduler``, its log sent to a file. Dask's pipes the scheduler's stderr
    and reads it only if the scheduler fails to start: the hundreds of lines a chaos run logs
    (a worker lost, a task failed) would fill the pipe and stop the scheduler at its next
    line. The child gets this process's ``sys.path`` (as a spawned worker does), so that it
    unpickles what the oracle asks it to run (``run_on_scheduler``)."""
    import asyncio
    import json
    import tempfile

    from distributed.deploy.subprocess import SubprocessScheduler
    from distributed.utils import Deadline

    class LoggedSubprocessScheduler(SubprocessScheduler):
        async def _start(self) -> None:
            self.log, self.log_path = tempfile.mkstemp(prefix="soak-dask-scheduler-", suffix=".log")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
            spec = json.dumps({"cls": "distributed.Scheduler", "opts": self.scheduler_kwargs})
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dask", "spec", "--spec", spec, stderr=self.log, env=env)
            deadline = Deadline.after(self.timeout)
            scheduler_file = Path(self.scheduler_kwargs["scheduler_file"])
            while not deadline.expired and self.process.returncode is None:
                try:
                    self.address = json.loads(scheduler_file.read_text())["address"]
                    return
                except (OSError, ValueError, KeyError):  # not written yet, or half-written
                    await asyncio.sleep(0.1)
            raise RuntimeError(f"the Dask scheduler did not start (exit code {self.process.returncode}; "
                               f"its log: {self.log_path})")

        async def close(self) -> None:
            await super().close()
            os.close(self.log)
            Path(self.log_path).unlink(missing_ok=True)
            Path(self.scheduler_kwargs["scheduler_file"]).unlink(missing_ok=True)

    return LoggedSubprocessScheduler


def dask_cluster(n_workers: int = 2, allowed_failures: int = 0) -> Any:
    """A ``LocalCluster`` but for its scheduler, which runs in a process of its own: a
    ``SpecCluster`` of ``n_workers`` single-threaded workers with nannies (in this process, as
    a ``LocalCluster``'s), and a scheduler in a child process (``allowed-failures``:
    ``allowed_failures``). A ``LocalCluster`` runs its scheduler in the process that made it;
    the scheduler's own memory then grows with every oracle call (it keeps a record of each
    call's tasks for the cluster's lifetime) and with every worker restart, and would count as
    the library's (see docs/parallel.md, "Performance")."""
    import distributed

    scheduler = {"cls": _scheduler_process_class(), "options": {"scheduler_kwargs": {
        "host": "127.0.0.1", "port": 0, "dashboard": False, "allowed_failures": allowed_failures}}}
    quiet = logging.WARNING  # as a LocalCluster: a worker's start and end are not news
    worker = {"cls": distributed.Nanny,
              "options": {"host": "127.0.0.1", "nthreads": 1, "dashboard": False, "silence_logs": quiet}}
    return distributed.SpecCluster(workers=dict.fromkeys(range(n_workers), worker), scheduler=scheduler,
                                   worker=worker, name="soak", silence_logs=quiet)


def chaos_dask_run(steps: int, **kwargs: Any) -> dict[str, Any]:
    """:func:`chaos_run` on a Dask cluster of two single-threaded workers with nannies
    (``allowed-failures: 0``: a crash is reported at its first worker's death), its scheduler
    in a process of its own (:func:`dask_cluster`): the resident memory measured is the
    library's and its Dask client's (and the nannies'), ``scheduler_rss_growth_pct`` the
    scheduler's. The fork step is left out: a forked child cannot use the parent's Dask
    client. Adds ``workers_end`` (the cluster's workers after the run, within a minute: 2
    unless nannies were lost for good); ``leaked_processes`` counts what is left once the
    cluster is closed."""
    import dask
    import distributed

    before = child_pids()
    # Dask's logs in this process (the nannies', the client's) kept short all the same
    quiet_logs = {"distributed.admin.log-length": 100, "distributed.admin.low-level-log-length": 100}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, **quiet_logs}), dask_cluster(
    ) as cluster, distributed.Client(cluster) as client:
        figures = chaos_run(steps, parallel_backend="dask", fork_at=-1,
                            watch={"scheduler": cluster.scheduler.process.pid}, **kwargs)
        # the cluster back at its strength after the run: no nanny lost for good
        deadline = time.monotonic() + 60
        while len(client.nthreads()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        figures["workers_end"] = len(client.nthreads())
    # the workers are this process's children too, replaced at each restart: what is left
    # once the cluster is closed, not the pids new since the run started, is what leaked
    deadline = time.monotonic() + 30
    while _non_trackers(child_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    figures["leaked_processes"] = len(_non_trackers(child_pids() - before))
    return figures


# -- what the process holds ----------------------------------------------------------------


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of process ``pid`` (this one by default) in MiB, from /proc."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def child_pids() -> set[int]:
    """Every descendant process of this one (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        found, frontier = set(), {os.getpid()}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
            found |= frontier
        return found
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def resources() -> dict[str, int]:
    """Open file descriptors, OS threads and descendant processes of this process."""
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
        "processes": len(child_pids()),
    }


def loky_workers() -> list[int]:
    """PIDs of this process's live loky workers."""
    pids = []
    for pid in child_pids():
        try:
            if b"LokyProcess" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return sorted(pids)


def kill_one_worker() -> int | None:
    """SIGKILL one loky worker, as the out-of-memory killer would; its PID (None if none ran)."""
    workers = loky_workers()
    if not workers:
        return None
    try:
        os.kill(workers[0], signal.SIGKILL)
    except ProcessLookupError:
        return None
    return workers[0]


# -- training -------------------------------------------------------------------------------


def data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(64, ITEMS, FEATURES)`` and the values a hidden linear rule gives them."""
    rule = np.random.default_rng(0).normal(size=FEATURES)
    features = np.random.default_rng(seed).normal(size=(64, ITEMS, FEATURES))
    return features, features @ rule


def train_torch(
    steps: int,
    kill_every: int | None = None,
    seed: int = 0,
    problem: ims.ILP | None = None,
    on_step: Any = None,
    **layer_kwargs: Any,
) -> dict[str, Any]:
    """Train a linear scorer through an ``IMLELayer`` over the knapsack; the figures.

    ``kill_every``: SIGKILL a loky worker every that many steps, alternately between
    steps and from a timer thread during the step. ``on_step(step)`` runs before each
    step (a fault of another kind). ``layer_kwargs`` go to the layer (default:
    ``n_jobs=2, chunk_size=4``).
    """
    import torch

    from imle_solvers.torch import IMLELayer

    problem = problem or knapsack()
    layer_kwargs = {"n_jobs": 2, "chunk_size": 4} | layer_kwargs
    torch.manual_seed(seed)
    features_np, values = data()
    features = torch.tensor(features_np)
    model = torch.nn.Linear(FEATURES, 1, dtype=torch.float64)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    layer = IMLELayer(problem, ims.IMLE(ims.SumOfGamma(k=5), lambda_=10.0), seed=seed, **layer_kwargs)
    targets = torch.tensor(ims.MAPOracle(problem)(values))  # in-process: the sets the rule chooses
    warm = warm_up_steps(steps)
    figures: dict[str, Any] = {"steps": steps, "kills": 0}
    timers: list[threading.Timer] = []
    start = time.perf_counter()
    try:
        for step in range(steps):
            if step == warm:
                figures["rss_mb_warm"], figures["before"] = rss_mb(), resources()
                figures["workers_rss_mb_warm"] = sum(rss_mb(pid) for pid in loky_workers())
            if on_step is not None:
                on_step(step)
            if kill_every and step and step % kill_every == 0:
                figures["kills"] += 1
                if figures["kills"] % 2:  # between two steps
                    kill_one_worker()
                else:  # from a thread, while the step runs
                    timers.append(threading.Timer(0.005, kill_one_worker))
                    timers[-1].start()
            rows = torch.arange(step * BATCH, (step + 1) * BATCH) % len(features)
            chosen = layer(model(features[rows]).squeeze(-1))
            loss = ((chosen - targets[rows]) ** 2).sum(dim=-1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            figures["steps_done"] = step + 1
        figures["seconds"] = time.perf_counter() - start
        for timer in timers:
            timer.join()
        figures["rss_mb_end"], figures["after"] = rss_mb(), resources()
        figures["workers_rss_mb_end"] = sum(rss_mb(pid) for pid in loky_workers())
    finally:
        _close(layer.oracle, figures)
    figures["params"] = [p.detach().numpy().copy() for p in model.parameters()]
    return figures


def train_jax(steps: int, seed: int = 0, **imle_kwargs: Any) -> dict[str, Any]:
    """The same training through ``imle_solvers.jax.imle`` (``jax.pure_callback``), jitted."""
    import jax
    import jax.numpy as jnp

    import imle_solvers.jax as imle_jax

    problem = knapsack()
    f = imle_jax.imle(problem, ims.IMLE(ims.SumOfGamma(k=5), lambda_=10.0), **({"n_jobs": 2, "chunk_size": 4}
                                                                                | imle_kwargs))
    features_np, values = data()
    features = jnp.asarray(features_np)
    targets = jnp.asarray(ims.MAPOracle(problem)(values))

    def loss(w: jax.Array, rows: jax.Array, key: jax.Array) -> jax.Array:
        chosen = f(features[rows] @ w, key)
        return ((chosen - targets[rows]) ** 2).sum(axis=-1).mean()

    grad = jax.jit(jax.grad(loss))
    w = jnp.zeros(FEATURES, dtype=features.dtype)
    key = jax.random.key(seed)
    warm = warm_up_steps(steps)
    figures: dict[str, Any] = {"steps": steps, "kills": 0}
    start = time.perf_counter()
    try:
        for step in range(steps):
            if step == warm:
                figures["rss_mb_warm"], figures["before"] = rss_mb(), resources()
            rows = jnp.arange(step * BATCH, (step + 1) * BATCH) % len(features)
            w = w - 0.01 * grad(w, rows, jax.random.fold_in(key, step))
            figures["steps_done"] = step + 1
        w.block_until_ready()
        figures["seconds"] = time.perf_counter() - start
        figures["rss_mb_end"], figures["after"] = rss_mb(), resources()
    finally:
        _close(f.oracle, figures)
    figures["params"] = [np.asarray(w)]
    return figures


def dask_kill_run(steps: int, kill_at: int, client: Any, seed: int = 0) -> dict[str, Any]:
    """The torch training on the Dask cluster of ``client``, one worker SIGKILLed from a
    timer thread during step ``kill_at``."""
    killed: list[int] = []

    def kill_during(step: int) -> None:
        if step == kill_at:
            pid = next(iter(client.run(os.getpid).values()))
            threading.Timer(0.01, lambda: (os.kill(pid, signal.SIGKILL), killed.append(pid))).start()

    figures = train_torch(steps, seed=seed, on_step=kill_during, n_jobs=-1, parallel_backend="dask", chunk_size=2)
    figures["kills"] = len(killed)
    return figures


def hang_run(time_limit: float = 0.5) -> dict[str, Any]:
    """One step of the layer on a batch whose instance 5 hangs the solver; what was raised."""
    import torch

    from imle_solvers.torch import IMLELayer

    base = knapsack()
    problem = HangingKnapsack(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init})
    layer = IMLELayer(problem, ims.IMLE(ims.SumOfGamma(k=5), lambda_=10.0), seed=0, backend="hang-on-mark",
                      n_jobs=2, chunk_size=2, time_limit=time_limit)
    theta = torch.rand(BATCH, ITEMS, dtype=torch.float64)
    theta[5, 0] = 10 * HANG_MARK
    start = time.perf_counter()
    try:
        layer(theta)
    except ims.SolverError as error:
        return {"error": error, "seconds": time.perf_counter() - start}
    finally:
        layer.oracle.close()
    return {"error": None, "seconds": time.perf_counter() - start}


def warm_up_steps(steps: int) -> int:
    """The step at which memory and resources are first sampled: a tenth of the run, at
    least 50, and half-way through a short run (the Dask one)."""
    return min(max(50, steps // 10), steps // 2)


def _close(oracle: ims.MAPOracle, figures: dict[str, Any]) -> None:
    """Close a run's pool and add what it leaves: restarts, resources after closing, and
    the resident memory's growth since warm-up (a run cut short by an error has none)."""
    figures["restarts"] = oracle.pool.restarts
    oracle.close()
    _wait_for_workers_to_exit()
    figures["after_close"] = resources()
    if "rss_mb_end" in figures:
        figures["rss_growth_pct"] = 100 * (figures["rss_mb_end"] / figures["rss_mb_warm"] - 1)


def _wait_for_workers_to_exit(seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while loky_workers() and time.monotonic() < deadline:
        time.sleep(0.1)


# -- the report -----------------------------------------------------------------------------


def _params_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a["params"], b["params"], strict=True))


def _counts(r: dict[str, Any]) -> str:
    before, after, closed = r["before"], r["after"], r["after_close"]
    return " / ".join(f"{before[k]}→{after[k]}→{closed[k]}" for k in ("fds", "threads", "processes"))


def chaos_report(name: str, r: dict[str, Any]) -> None:
    """Print a chaos run's figures, one line."""
    print(f"| {name} | {r['steps_done']}/{r['steps']} | {r['hangs']} | {r['wrong']} of {r['solved']} "
          f"| {r['failed']} ({r['marked']} marked, {r['unmarked_failed']} unmarked) "
          f"| {r['longest_s']:.1f} s / {r['bound_s']:.1f} s | {r['rss_growth_pct']:+.1f}% "
          f"| {r['leaked_processes']} | {r['thread_calls']} | {r['fork']} | {r['restarts']} | {r['seconds']:.0f} |",
          flush=True)


def main(short: bool = False, steps: int = 10_000, kill_every: int = 500, jax_steps: int = 1_000,
         chaos_steps: int = 2_000, only_chaos: bool = False) -> dict:
    import importlib.util

    if short:
        steps, kill_every, jax_steps, chaos_steps = 300, 100, 100, 200
    runs: dict[str, Any] = {}
    print("| chaos | steps | hangs | wrong among solved | failed | longest call / bound | RSS growth "
          "| leaked processes | thread calls | fork ok | restarts | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|", flush=True)
    runs["chaos loky"] = chaos_run(chaos_steps)
    chaos_report("loky", runs["chaos loky"])
    if importlib.util.find_spec("distributed") is not None:
        runs["chaos dask"] = chaos_dask_run(chaos_steps)
        chaos_report("Dask, scheduler apart", runs["chaos dask"])
        dask_run = runs["chaos dask"]
        print(f"\nDask cluster after the chaos run: {dask_run['workers_end']} of 2 workers; its scheduler's "
              f"resident memory (another process, not in the table) {dask_run['scheduler_rss_growth_pct']:+.1f}% "
              f"({dask_run['scheduler_rss_mb_warm']:.0f}→{dask_run['scheduler_rss_mb_end']:.0f} MiB)")
    print()
    if only_chaos:
        return runs
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| run | steps survived | kills | s | RSS growth after warm-up | params = undisturbed "
          "| fds / threads / processes (warm→end→closed) |")
    print("|---|---:|---:|---:|---:|---|---|", flush=True)

    def report(name: str, figures: dict, reference: dict | None = None) -> None:
        """Keep a run's figures and print its row at once: a long soak reports as it goes."""
        if reference is not None:
            figures["equal"] = _params_equal(figures, reference)
        runs[name] = figures
        equal = {True: "yes", False: "NO"}.get(figures.get("equal"), "")
        print(f"| {name} | {figures['steps_done']}/{figures['steps']} | {figures['kills']} | {figures['seconds']:.0f} "
              f"| {figures['rss_growth_pct']:+.1f}% ({figures['rss_mb_warm']:.0f}→{figures['rss_mb_end']:.0f} MiB) "
              f"| {equal} | {_counts(figures)} |", flush=True)

    report("torch soak", train_torch(steps))
    report("torch faults", train_torch(steps, kill_every=kill_every), runs["torch soak"])
    if importlib.util.find_spec("jax") is not None:
        report("JAX soak", train_jax(jax_steps))
    if importlib.util.find_spec("distributed") is not None:
        import distributed

        dask_steps = 40
        undisturbed = train_torch(dask_steps, n_jobs=1)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            report("Dask fault", dask_kill_run(dask_steps, kill_at=dask_steps // 2, client=client), undisturbed)
    hang = hang_run()
    error = hang["error"]
    print(f"\nhang: {type(error).__name__} status={getattr(error, 'status', None)!r} "
          f"indices={getattr(error, 'indices', None)} after {hang['seconds']:.1f} s: {error}")
    runs["hang"] = hang
    return runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="300 torch steps, two kills, 100 JAX steps")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--kill-every", type=int, default=500)
    parser.add_argument("--jax-steps", type=int, default=1_000)
    parser.add_argument("--chaos-steps", type=int, default=2_000)
    parser.add_argument("--only-chaos", action="store_true", help="the chaos runs alone")
    args = parser.parse_args()
    main(short=args.short, steps=args.steps, kill_every=args.kill_every, jax_steps=args.jax_steps,
         chaos_steps=args.chaos_steps, only_chaos=args.only_chaos)
