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

``--short`` runs 300 torch steps with two kills (one of each kind), 100 JAX steps. Prints a markdown
table; ``main()`` returns the figures. The tests (tests/test_soak.py) run the same
functions.

Run: ``python benchmarks/soak.py [--short]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
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
    builder.add_constant("weight", [3, 4, 5, 2, 6, 1, 7, 3, 4, 2, 5, 6])
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


def main(short: bool = False, steps: int = 10_000, kill_every: int = 500, jax_steps: int = 1_000) -> dict:
    import importlib.util

    if short:
        steps, kill_every, jax_steps = 300, 100, 100
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| run | steps survived | kills | s | RSS growth after warm-up | params = undisturbed "
          "| fds / threads / processes (warm→end→closed) |")
    print("|---|---:|---:|---:|---:|---|---|", flush=True)
    runs: dict[str, Any] = {}

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
    args = parser.parse_args()
    main(short=args.short, steps=args.steps, kill_every=args.kill_every, jax_steps=args.jax_steps)
