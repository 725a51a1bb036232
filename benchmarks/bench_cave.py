"""CaVE and the JAX regularized Fenchel-Young loss, per call, as ratios within one run.

CaVE on PyEPO's 5x5 shortest path (40 arcs; 90 tight constraints per instance: 25 flow
equalities both ways and the 40 arcs' bounds), a batch of 32, forward and backward:

- ours: ``imle_solvers.torch.CaVELoss`` (exact projection by NNLS, CaVE-E);
- PyEPO ``coneAlignedCosine(max_iter=3)``: its default, CaVE+ (Clarabel stopped after three
  interior-point iterations: another target, the cheaper one);
- PyEPO ``coneAlignedCosine(max_iter=200)``: Clarabel converged, the target ours computes.

The regularized Fenchel-Young loss on the same problem (``lambd=1``, ``tol=1e-4``), a
batch of 32, float32, value and gradient: torch's eager loop (on torch tensors) against
JAX's (``jax.jit`` of ``jax.value_and_grad``, the Frank-Wolfe loop on numpy arrays in one
host callback). Both make the same oracle calls (about 110 iterations here); the
difference is the loop's own array operations, small ones, where torch's per-operation
cost dominates.

Each pair is timed in turn within each round (``interleaved_medians``), so that a machine
that speeds up or slows down moves both alike; PyEPO and clarabel are benchmark-only
dependencies (the ``compare`` extra), whose rows are left out without them.

    python benchmarks/bench_cave.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers import data

from _timing import interleaved_medians

BATCH = 32


def _instances(seed: int = 0) -> tuple[ims.GraphShortestPath, np.ndarray, np.ndarray, np.ndarray]:
    problem = data.shortest_path_problem((5, 5))
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.5, 2.0, size=(BATCH, problem.shape[0]))
    w = ims.MAPOracle(problem)(c)
    return problem, rng.normal(size=c.shape), w, ims.batch_tight_constraints(problem, w)


def _torch_step(loss_fn, prediction: np.ndarray, target: np.ndarray):
    def step() -> None:
        t = torch.tensor(prediction, requires_grad=True)
        loss_fn(t, torch.tensor(target)).backward()
    return step


def cave_calls() -> dict[str, object]:
    problem, c_hat, _, tight = _instances()
    calls = {"ours (NNLS, CaVE-E)": _torch_step(ims.torch.CaVELoss(problem), c_hat, tight)}
    if importlib.util.find_spec("pyepo") and importlib.util.find_spec("clarabel"):
        import pyepo.func
        from pyepo import EPO
        from pyepo.model.opt import optModel

        class Sense(optModel):  # the loss asks its model for the sense only
            def __init__(self) -> None:
                self.modelSense = EPO.MINIMIZE
                super().__init__()

            def _getModel(self):
                return None, list(range(problem.shape[0]))

            def setObj(self, c) -> None:
                pass

            def solve(self):
                raise NotImplementedError

        for iterations, label in ((3, "PyEPO max_iter=3 (CaVE+)"), (200, "PyEPO max_iter=200 (converged)")):
            calls[label] = _torch_step(pyepo.func.coneAlignedCosine(Sense(), max_iter=iterations), c_hat, tight)
    return calls


def rfy_calls() -> dict[str, object]:
    problem, theta, y_true, _ = _instances(1)
    theta, y_true = theta.astype(np.float32), y_true.astype(np.float32)  # JAX's default dtype, for both
    options = {"lambd": 1.0, "tol": 1e-4}
    calls = {"torch (eager)": _torch_step(ims.torch.RegularizedFenchelYoungLoss(problem, **options), theta, y_true)}
    if importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp

        loss_fn = ims.jax.RegularizedFenchelYoungLoss(problem, **options)
        compiled = jax.jit(jax.value_and_grad(loss_fn))
        args = (jnp.asarray(theta), jnp.asarray(y_true))
        calls["JAX (jit, one host callback)"] = lambda: jax.block_until_ready(compiled(*args))
    return calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    repeats = parser.parse_args(argv).repeats
    import imle_solvers.torch  # noqa: F401  (ims.torch)

    for title, calls in (("CaVE, 5x5 shortest path, batch 32", cave_calls()),
                         ("regularized Fenchel-Young, 5x5 shortest path, batch 32", rfy_calls())):
        medians = interleaved_medians(calls, repeats)  # type: ignore[arg-type]
        first = next(iter(medians.values()))
        print(f"\n{title}, median of {repeats} interleaved rounds\n")
        print("| call | ms per call | ratio to the first |")
        print("|---|---|---|")
        for name, seconds in medians.items():
            print(f"| {name} | {1e3 * seconds:.2f} | {seconds / first:.2f} |")


if __name__ == "__main__":
    main()
