"""The fast path: a training step that stays in the framework, in torch, JAX and Keras.

With an array-native solver (k-subset's top-k; the grid's Bellman-Ford inside ``jax.jit``)
and noise drawn by the framework (the default ``noise_source="native"``), a step never
copies to the host. This script shows it, and what it means in practice:

- torch: the noise generator's state is part of ``state_dict()``, so a run resumed from a
  checkpoint draws exactly what the uninterrupted run would have drawn;
- JAX: the jaxpr of a jitted training step holds no host callback, for k-subset and for
  a grid shortest path (``backend="auto"`` solves it with Bellman-Ford while tracing);
- Keras: the graph of a ``tf.function`` step holds no ``numpy_function``;
- ``validate_args=False`` drops the one check per pass that reads a value back.

Run: ``python examples/fast_path.py`` (a few seconds; skips a framework that is missing).
"""

from __future__ import annotations

import io
import os

import imle_solvers as ims

KSUBSET = ims.KSubset(n=50, k=5)
ESTIMATOR = ims.IMLE(noise=ims.SumOfGamma(k=5), lambda_=10.0)


def torch_resume() -> bool:
    """Train 3 steps, checkpoint, train 3 more; a layer restored from the checkpoint draws
    the same 3 samples as the uninterrupted one."""
    import torch

    from imle_solvers.torch import IMLELayer

    torch.manual_seed(0)
    scores = torch.nn.Linear(8, KSUBSET.n)
    x, target = torch.randn(32, 8), (torch.rand(32, KSUBSET.n) < 0.1).float()

    def steps(layer: IMLELayer, n: int) -> list[torch.Tensor]:
        samples = []
        for _ in range(n):
            z = layer(scores(x))
            ((z - target) ** 2).sum().backward()
            samples.append(z.detach())
        return samples

    layer = IMLELayer(KSUBSET, ESTIMATOR, seed=7)  # native noise: a torch.Generator, seeded
    steps(layer, 3)
    checkpoint = io.BytesIO()
    torch.save(layer.state_dict(), checkpoint)
    uninterrupted = steps(layer, 3)
    resumed = IMLELayer(KSUBSET, ESTIMATOR, seed=7)
    checkpoint.seek(0)
    resumed.load_state_dict(torch.load(checkpoint, weights_only=True))
    return all(torch.equal(a, b) for a, b in zip(uninterrupted, steps(resumed, 3)))


def jax_callbacks() -> dict[str, int]:
    """The number of host callbacks in the jaxpr of a jitted training step, per problem."""
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import imle

    counts = {}
    cases = {
        "k-subset": (KSUBSET, ESTIMATOR),
        "grid 12x12": (ims.GridShortestPath(12, 12), ims.IMLE(noise=ims.SumOfGamma(k=15), lambda_=10.0)),
    }
    for name, (problem, estimator) in cases.items():
        f = imle(problem, estimator, validate_args=False)
        theta = jnp.ones((16, *problem.shape))

        def loss(t: jax.Array, key: jax.Array, f=f) -> jax.Array:  # noqa: ANN001
            return jnp.sum(f(t, key) * t)

        jaxpr = str(jax.make_jaxpr(jax.jit(jax.grad(loss)))(theta, jax.random.key(0)))
        counts[name] = jaxpr.count("callback")
    return counts


def keras_host_calls() -> int:
    """The number of host-call ops in the graph of a Keras layer's tf.function training step."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(KSUBSET, ESTIMATOR, seed=0)

    @tf.function
    def step(theta: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = tf.reduce_sum(layer(theta) * theta)
        return tape.gradient(loss, theta)

    graph = step.get_concrete_function(tf.TensorSpec((None, KSUBSET.n))).graph
    types = [op.type for op in graph.get_operations()]
    for function in graph._functions.values():  # the custom gradient's own graph
        types += [node.op for node in function.definition.node_def]
    return sum(t in ("PyFunc", "PyFuncStateless", "EagerPyFunc") for t in types)


def main() -> dict[str, object]:
    """Run each check whose framework is installed; print and return the results."""
    results: dict[str, object] = {}
    for name, check in (("torch resume", torch_resume), ("jax callbacks", jax_callbacks),
                        ("keras host calls", keras_host_calls)):
        try:
            results[name] = check()
        except ImportError as missing:
            results[name] = f"skipped ({missing.name} not installed)"
        print(f"{name}: {results[name]}")
    return results


if __name__ == "__main__":
    main()
