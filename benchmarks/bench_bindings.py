"""Overhead of each framework binding against the bare oracle on the same batch.

For k-subset (n=100, k=10) and the 12x12 grid shortest path, batch 70, one training
step (forward + backward of IMLE, i.e. two oracle calls) through torch, JAX eager,
``jax.jit``, Keras eager and ``tf.function``, divided by two bare oracle calls on
numpy arrays, and by the framework-free estimator's own step on numpy (noise, two
solves, the formula): the latter ratio is the binding's own cost. Prints a markdown table; ``main()`` returns the rows.

Run: ``python benchmarks/bench_bindings.py``
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

import imle_solvers as ims

from _timing import best_seconds  # beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BATCH = 70
CASES = {
    "k-subset n=100 k=10": (ims.KSubset(n=100, k=10), ims.IMLE(noise=ims.SumOfGamma(k=10), lambda_=10.0)),
    "grid 12x12": (ims.GridShortestPath(12, 12), ims.IMLE(noise=ims.SumOfGamma(k=15), lambda_=10.0)),
}


def steps(problem, estimator, theta: np.ndarray, w: np.ndarray) -> dict[str, Callable[[], object]]:
    """One forward + backward step per binding (those installed), and the bare oracle."""
    oracle = ims.MAPOracle(problem)
    runs: dict[str, Callable[[], object]] = {"oracle (2 calls)": lambda: (oracle(theta), oracle(theta))}
    rng = np.random.default_rng(0)

    def numpy_step() -> object:  # the framework-free estimator: noise, two solves, the formula
        _, residuals = estimator.sample(theta, oracle, sign=problem.sign, rng=rng)
        return estimator.gradient(residuals, w, oracle)

    runs["numpy estimator"] = numpy_step
    try:
        import torch

        from imle_solvers.torch import IMLELayer

        layer = IMLELayer(problem, estimator, seed=0)
        t, tw = torch.tensor(theta, requires_grad=True), torch.tensor(w)
        runs["torch"] = lambda: (layer(t) * tw).sum().backward()
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        from imle_solvers.jax import imle

        f = imle(problem, estimator)
        jt, jw, key = jnp.asarray(theta), jnp.asarray(w), jax.random.key(0)
        grad = jax.grad(lambda t: jnp.sum(f(t, key) * jw))
        jitted = jax.jit(grad)
        runs["jax"] = lambda: grad(jt).block_until_ready()
        runs["jax.jit"] = lambda: jitted(jt).block_until_ready()
    except ImportError:
        pass
    try:
        import tensorflow as tf

        from imle_solvers.tensorflow import IMLELayer as KerasLayer

        klayer = KerasLayer(problem, estimator, seed=0)
        tt, tw_ = tf.constant(theta), tf.constant(w)

        def tf_step():
            with tf.GradientTape() as tape:
                tape.watch(tt)
                loss = tf.reduce_sum(klayer(tt) * tw_)
            return tape.gradient(loss, tt)

        runs["tf eager"] = tf_step
        runs["tf.function"] = tf.function(tf_step)
    except ImportError:
        pass
    return runs


def main(repeats: int = 20) -> list[dict[str, object]]:
    rows = []
    for name, (problem, estimator) in CASES.items():
        rng = np.random.default_rng(0)
        theta = (np.abs(rng.normal(size=(BATCH, *problem.shape))) + 0.5).astype(np.float32)
        w = rng.normal(size=theta.shape).astype(np.float32)
        runs = steps(problem, estimator, theta, w)
        times = {label: best_seconds(fn, repeats) for label, fn in runs.items()}
        base = times.pop("oracle (2 calls)")
        estimator_time = times["numpy estimator"]
        for label, seconds in times.items():
            rows.append(
                {
                    "case": name,
                    "binding": label,
                    "ms": 1e3 * seconds,
                    "vs oracle": seconds / base,
                    "vs numpy estimator": seconds / estimator_time,
                }
            )
    print("| case | binding | step (ms) | / bare oracle x2 | / numpy estimator |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['binding']} | {r['ms']:.2f} | {r['vs oracle']:.2f} | {r['vs numpy estimator']:.2f} |")
    return rows


if __name__ == "__main__":
    main()
