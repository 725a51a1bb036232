"""The worker pool per backend: task overhead, Dask chunk sizing, warm-up, Ray.

- **task overhead**: 64 empty tasks in one call through a warm ``WorkerPool`` of
  two workers, per backend (loky, threading, a Dask ``LocalCluster`` of two
  single-threaded worker processes, a local Ray instance of two CPUs when Ray is
  installed): the wall time per task, next to the figure
  ``imle_solvers._pool.TASK_OVERHEAD_SECONDS`` uses to size chunks;
- **Dask chunk sizing**: a solver-bound batch (the pure-Python networkx Dijkstra
  on a 24x24 grid, batch 64, a few milliseconds an instance) on that Dask cluster
  with ``chunk_size="auto"`` (backend-aware), with the loky-tuned automatic
  sizing it replaced (a 0.02 s target), and with fixed chunk sizes, against the
  serial loop; medians of interleaved rounds, so that the ratios share the
  machine's load;
- **warm-up**: a small knapsack ILP on a fresh loky pool of two workers: the
  first call without warm-up, ``MAPOracle.warm_up()``, the first call after it,
  and a later call;
- **Ray**: ``ray.init`` of a local instance, the first call (which starts Ray's
  worker processes), a later call against the serial loop, and a call after the
  workers were killed (Ray starts new ones).

``ratio`` is serial time over the row's time (above 1: faster than serial). The
load average is printed: on a shared machine the parallel rows depend on free
cores. Prints markdown tables; ``main()`` returns the rows.

Run: ``python benchmarks/bench_pool.py [--out rows.json]`` or ``imle-solvers bench pool``
(``--out``: the tables' rows as JSON too, by table).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import time
from pathlib import Path

import numpy as np

import imle_solvers as ims
from imle_solvers import _pool
from imle_solvers._pool import WorkerPool

from _timing import interleaved_medians  # beside this script
from bench_oracle import knapsack_ilp  # beside this script

N_WORKERS = 2
EMPTY_TASKS = 64


def _empty() -> None:
    """A task that does nothing: what remains is the backend's overhead."""


def overhead_row(backend: str) -> dict:
    pool = WorkerPool(N_WORKERS, backend)
    try:
        pool.warm_up()
        seconds = interleaved_medians({backend: lambda: pool.map(_empty, [()] * EMPTY_TASKS)}, 5)[backend]
    finally:
        pool.close()
    return {
        "backend": backend,
        "ms_per_task": 1e3 * seconds / EMPTY_TASKS,
        "assumed_ms": 1e3 * _pool.task_overhead_seconds(backend),
        "target_ms": 1e3 * _pool.target_task_seconds(backend),
    }


class _LokyTunedPool(WorkerPool):
    """The automatic sizing before it knew backends: every task at least 0.02 s of solving."""

    target_task_seconds = _pool.MIN_TARGET_TASK_SECONDS


def dask_chunk_rows(rng: np.random.Generator) -> list[dict]:
    problem = ims.GridShortestPath(24, 24)
    theta = rng.uniform(0.1, 10.0, size=(64, 24, 24))
    serial = ims.MAPOracle(problem, backend="networkx")
    expected = serial(theta)
    oracles: dict[str, ims.MAPOracle] = {}
    for name, chunk_size in [("auto", "auto"), ("auto, loky-tuned (before)", "auto"),
                             ("4", 4), ("8", 8), ("16", 16), ("32", 32)]:
        oracle = ims.MAPOracle(problem, backend="networkx", n_jobs=-1, parallel_backend="dask", chunk_size=chunk_size)
        if name.startswith("auto, loky"):
            oracle.pool = _LokyTunedPool(-1, "dask")
        oracle.warm_up()
        np.testing.assert_array_equal(oracle(theta), expected)  # also measures seconds per instance
        oracles[name] = oracle
    fns = {"serial": lambda: serial(theta)} | {name: (lambda o=o: o(theta)) for name, o in oracles.items()}
    medians = interleaved_medians(fns, 7)
    rows = [{"chunk_size": "serial loop", "tasks": 1, "seconds": medians["serial"], "ratio": 1.0}]
    for name, oracle in oracles.items():
        tasks = len(oracle._scheduler.chunks(len(theta), oracle.solver))
        rows.append({"chunk_size": name, "tasks": tasks, "seconds": medians[name],
                     "ratio": medians["serial"] / medians[name]})
        oracle.close()
    return rows


def warm_up_rows(rng: np.random.Generator) -> list[dict]:
    problem = knapsack_ilp(items=20, constraints=2)
    theta = rng.uniform(1, 10, size=(32, 20))
    rows = []
    for warm in (False, True):
        oracle = ims.MAPOracle(problem, n_jobs=N_WORKERS, chunk_size=4)  # the loky pool, fresh workers
        warm_up = oracle.warm_up() if warm else 0.0
        start = time.perf_counter()
        oracle(theta)
        first = time.perf_counter() - start
        start = time.perf_counter()
        oracle(theta)
        later = time.perf_counter() - start
        oracle.close()  # the last loky pool: stops the workers, so the next run starts fresh ones
        rows.append({"case": "after warm_up()" if warm else "no warm-up", "warm_up_s": warm_up,
                     "first_s": first, "later_s": later, "backend": oracle.solver.backend})
    return rows


def ray_rows(rng: np.random.Generator) -> list[dict]:
    import ray

    problem = ims.GridShortestPath(24, 24)
    theta = rng.uniform(0.1, 10.0, size=(64, 24, 24))
    serial = ims.MAPOracle(problem, backend="networkx")
    start = time.perf_counter()
    expected = serial(theta)
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    ray.init(num_cpus=N_WORKERS, include_dashboard=False, log_to_driver=False)
    rows = [{"step": "ray.init (local instance)", "seconds": time.perf_counter() - start}]
    try:
        with ims.MAPOracle(problem, backend="networkx", n_jobs=-1, parallel_backend="ray", chunk_size=16) as oracle:
            start = time.perf_counter()
            np.testing.assert_array_equal(oracle(theta), expected)
            rows.append({"step": "first call (starts the workers)", "seconds": time.perf_counter() - start})
            later = interleaved_medians({"ray": lambda: oracle(theta), "serial": lambda: serial(theta)}, 5)
            rows.append({"step": "later call", "seconds": later["ray"], "ratio": later["serial"] / later["ray"]})
            rows.append({"step": "serial loop (same rounds)", "seconds": later["serial"], "ratio": 1.0})
            killed = _ray_worker_pids()
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            start = time.perf_counter()
            np.testing.assert_array_equal(oracle(theta), expected)
            rows.append({"step": "call after its workers were killed", "seconds": time.perf_counter() - start,
                         "workers killed": len(killed)})
    finally:
        ray.shutdown()
    rows.append({"step": "serial loop, first call", "seconds": serial_s})
    return rows


def _ray_worker_pids() -> list[int]:
    """PIDs of Ray's worker processes, which ran the pool's tasks (Ray titles them
    ``ray::IDLE`` between tasks, ``ray::_call`` while running one)."""
    import psutil

    titles = ("ray::IDLE", "ray::_call")
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if (p.info["cmdline"] or [""])[0].startswith(titles)]


def main(out: Path | None = None) -> list[dict]:
    """Measure, print the markdown tables, return their rows (``out``: as JSON too, by table)."""
    rng = np.random.default_rng(0)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    have_dask = importlib.util.find_spec("distributed") is not None
    have_ray = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("psutil") is not None
    rows: list[dict] = []

    print(f"Task overhead: {EMPTY_TASKS} empty tasks in one call, {N_WORKERS} workers\n")
    print("| backend | measured (ms a task) | assumed by chunk sizing (ms) | target task (ms) |")
    print("|---|---:|---:|---:|")
    overheads = [overhead_row(backend) for backend in ("loky", "threading")]
    dask_rows: list[dict] = []
    if have_dask:
        import distributed

        with distributed.LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster):
            overheads.append(overhead_row("dask"))
            dask_rows = dask_chunk_rows(rng)
    for r in overheads:
        print(f"| {r['backend']} | {r['ms_per_task']:.2f} | {r['assumed_ms']:.1f} | {r['target_ms']:.0f} |")
    rows += overheads

    if dask_rows:
        print("\nDask LocalCluster (2 workers x 1 thread), grid 24x24 networkx Dijkstra, batch 64\n")
        print("| chunk_size | tasks | median (s) | ratio to serial |")
        print("|---|---:|---:|---:|")
        for r in dask_rows:
            print(f"| {r['chunk_size']} | {r['tasks']} | {r['seconds']:.3f} | {r['ratio']:.2f}x |")
        rows += dask_rows

    warm = warm_up_rows(rng)
    print(f"\nWarm-up: knapsack ILP 20 items x 2 constraints ({warm[0]['backend']}), batch 32, "
          f"fresh loky pool of {N_WORKERS}\n")
    print("| case | warm_up() (s) | first call (s) | later call (s) |")
    print("|---|---:|---:|---:|")
    for r in warm:
        print(f"| {r['case']} | {r['warm_up_s']:.2f} | {r['first_s']:.2f} | {r['later_s']:.3f} |")
    rows += warm

    ray: list[dict] = []
    if have_ray:
        ray = ray_rows(rng)
        print(f"\nRay: local instance of {N_WORKERS} CPUs, grid 24x24 networkx Dijkstra, batch 64, chunk_size=16\n")
        print("| step | seconds | ratio to serial |")
        print("|---|---:|---:|")
        for r in ray:
            ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ""
            print(f"| {r['step']} | {r['seconds']:.2f} | {ratio} |")
        rows += ray
    if out is not None:
        tables = {"overheads": overheads, "dask": dask_rows, "warm_up": warm, "ray": ray}
        out.write_text(json.dumps(tables, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the tables' rows as JSON here")
    main(parser.parse_args().out)
