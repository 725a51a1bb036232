"""Per-instance data: what the machinery costs, and what it buys.

- **Its price**: a batch of 64 knapsack ILPs whose capacity is a batched parameter, given
  the same capacity for every instance, against the plain program with that capacity
  fixed in it: the same solves, so the ratio is the machinery's cost (goal: at most
  1.1x), serial and with ``n_jobs=2``. The batch with 64 different capacities is reported
  too (its instances differ in difficulty, so it is no measure of overhead).
- **What it buys**: that batch against the loop a user writes without per-instance data:
  one program, one oracle and one call per capacity.
- **Masked k-subset** against unmasked, same shapes, an I-MLE training step in torch and in
  ``jax.jit`` (goal: at most 1.2x), with a mask of padding and with a per-row ``k`` too.

    python benchmarks/bench_instances.py [--out rows.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

import imle_solvers as ims

from _timing import interleaved_medians  # beside this script

BATCH = 64
ITEMS, CONSTRAINTS = 30, 3
REPEATS = 7


def knapsack_spec(batched: bool, items: int = ITEMS, constraints: int = CONSTRAINTS, seed: int = 0) -> dict:
    """A multi-constraint 0/1 knapsack ``max theta.x  s.t.  W x <= capacity``, its capacity
    (one per constraint) a batched parameter or, with ``batched=False``, fixed."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(1, 20, size=(constraints, items))
    capacity = {"over": ["rows"], "default": (weights.sum(axis=1) // 3).tolist()}
    return {
        "name": "knapsack",
        "params": {
            "weight": {"over": ["rows", "items"], "default": weights.tolist()},
            "capacity": capacity | ({"batched": True} if batched else {}),
        },
        "sets": {"items": items, "rows": constraints},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "fits", "for": "r in rows", "expr": "sum(i in items) weight[r, i] * x[i] <= capacity[r]"}],
        "objective": {"sense": "max", "theta": "x"},
    }


def ilp_rows() -> list[dict[str, object]]:
    """Per backend, the batch through: the plain program (capacity fixed in it); the batched
    program given that capacity for every instance (the machinery's price: the same
    solves); the batched program with 64 capacities; and the loop a user writes without
    per-instance data (one program, one oracle and one call per capacity); serial and on
    2 workers."""
    plain, batched = ims.ILP.from_dict(knapsack_spec(False)), ims.ILP.from_dict(knapsack_spec(True))
    default = np.asarray(knapsack_spec(True)["params"]["capacity"]["default"], dtype=float)
    rng = np.random.default_rng(1)
    theta = rng.random((BATCH, ITEMS))
    capacities = np.round(default * rng.uniform(0.5, 1.5, size=(BATCH, CONSTRAINTS)))
    same = np.broadcast_to(default, capacities.shape).copy()
    rows = []
    for backend in ("ortools", "scip"):
        try:
            oracles = {(p, jobs): ims.MAPOracle(problem, backend=backend, n_jobs=jobs)
                       for p, problem in (("plain", plain), ("batched", batched)) for jobs in (1, 2)}
        except ims.ImleSolversError as error:
            print(f"skipping {backend}: {error}")
            continue
        for oracle in oracles.values():
            oracle.warm_up()
        loop = [ims.MAPOracle(ims.ILP.from_dict(knapsack_spec(False), capacity=c.tolist()), backend=backend)
                for c in capacities]

        def user_loop() -> None:
            for oracle, row in zip(loop, theta):
                oracle(row[None])

        cases: dict[str, Callable[[], object]] = {}
        for jobs in (1, 2):
            cases[f"plain {jobs}"] = lambda jobs=jobs: oracles["plain", jobs](theta)
            cases[f"same {jobs}"] = lambda jobs=jobs: oracles["batched", jobs](theta, capacity=same)
            cases[f"differing {jobs}"] = lambda jobs=jobs: oracles["batched", jobs](theta, capacity=capacities)
        cases["user loop"] = user_loop
        times = interleaved_medians(cases, REPEATS)
        for oracle in oracles.values():
            oracle.close()
        rows.append({"backend": backend, **{name: seconds * 1e3 for name, seconds in times.items()}})
    return rows


def ksubset_rows() -> list[dict[str, object]]:
    rows = []
    for b, n, k in [(128, 1000, 10), (1024, 100, 10)]:
        rng = np.random.default_rng(0)
        lengths = rng.integers(n // 2, n + 1, size=b)
        mask = np.arange(n)[None, :] < lengths[:, None]
        ks = rng.integers(1, k + 1, size=b)
        rows += [dict(framework=name, shape=(b, n, k), **times) for name, times in (
            ("torch", torch_steps(b, n, k, mask, ks)),
            ("jax.jit", jax_steps(b, n, k, mask, ks)),
        )]
    return rows


def torch_steps(b: int, n: int, k: int, mask: np.ndarray, ks: np.ndarray) -> dict[str, float]:
    import torch

    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(ims.KSubset(n, k), ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=0)
    theta, upstream = torch.randn(b, n), torch.randn(b, n)
    masks, row_k = torch.as_tensor(mask), torch.as_tensor(ks)

    def step(**data: torch.Tensor) -> Callable[[], None]:
        return lambda: (layer(theta.clone().requires_grad_(), **data) * upstream).sum().backward()

    return _ms(interleaved_medians({"plain": step(), "mask": step(mask=masks), "mask and k": step(mask=masks, k=row_k)},
                                   40))


def jax_steps(b: int, n: int, k: int, mask: np.ndarray, ks: np.ndarray) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import imle

    f = imle(ims.KSubset(n, k), ims.IMLE(ims.Gumbel(), lambda_=10.0))
    theta = jax.random.normal(jax.random.key(0), (b, n))
    upstream = jax.random.normal(jax.random.key(1), (b, n))
    key = jax.random.key(2)
    grad = jax.jit(jax.grad(lambda t, d: jnp.sum(f(t, key, **d) * upstream)))
    cases = {"plain": {}, "mask": {"mask": jnp.asarray(mask)}, "mask and k": {"mask": jnp.asarray(mask),
                                                                              "k": jnp.asarray(ks)}}
    return _ms(interleaved_medians({name: (lambda d=d: grad(theta, d).block_until_ready()) for name, d in cases.items()},
                                   40))


def _ms(times: dict[str, float]) -> dict[str, float]:
    return {name: seconds * 1e3 for name, seconds in times.items()}


def main() -> None:
    """Measure, print the markdown tables (``--out``: their rows as JSON too, times in ms)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    arguments = parser.parse_args()
    print(f"## Knapsack ILPs, batch {BATCH}, {ITEMS} items x {CONSTRAINTS} constraints (ms)\n")
    print("| backend | n_jobs | plain program | batched, same capacities | price | batched, 64 capacities "
          "| user's loop, serial | loop / batched |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ilp = ilp_rows()
    for r in ilp:
        for jobs in (1, 2):
            plain, same, differing = r[f"plain {jobs}"], r[f"same {jobs}"], r[f"differing {jobs}"]
            print(f"| {r['backend']} | {jobs} | {plain:.1f} | {same:.1f} | {same / plain:.2f} | {differing:.1f} "
                  f"| {r['user loop']:.1f} | {r['user loop'] / differing:.2f} |")
    print("\n## k-subset I-MLE training step, Gumbel noise, CPU (ms)\n")
    print("| framework | (B, n, k) | unmasked | masked | ratio | mask and per-row k | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    ksubset = ksubset_rows()
    for r in ksubset:
        print(f"| {r['framework']} | {r['shape']} | {r['plain']:.2f} | {r['mask']:.2f} | {r['mask'] / r['plain']:.2f} "
              f"| {r['mask and k']:.2f} | {r['mask and k'] / r['plain']:.2f} |")
    if arguments.out is not None:
        settings = {"batch": BATCH, "items": ITEMS, "constraints": CONSTRAINTS, "repeats": REPEATS}
        arguments.out.write_text(json.dumps({"settings": settings, "ilp": ilp, "ksubset": ksubset}, indent=2) + "\n")


if __name__ == "__main__":
    main()
