"""Every gradient method trains, in every framework, through the same oracle.

PyEPO's shortest path on a 5x5 grid (``imle_solvers.data``), a linear model from 5
features to 40 arc costs, full-batch gradient steps: after training, the held-out
normalised regret must be well below the untrained model's. Layers are trained on the
L1 distance to the true paths; the Fenchel-Young loss on the true paths; SPO+ on the
true costs.
"""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import data, metrics

GRID = (5, 5)
N_TRAIN, N_TEST, STEPS, LR = 200, 200, 25, 0.5

LAYER_METHODS = {
    "imle": lambda: ims.IMLE(ims.SumOfGamma(k=5), noise_temperature=1.0, lambda_=10.0),
    "aimle": lambda: ims.AIMLE(ims.SumOfGamma(k=5), noise_temperature=1.0),
    "ste": lambda: ims.STE(),
    "blackbox": lambda: ims.BlackboxDifferentiation(lambda_=10.0),
    "negative-identity": lambda: ims.NegativeIdentity(),
    "perturbed": lambda: ims.PerturbedOptimizer(ims.Normal(), noise_temperature=0.5, marginal_samples=5),
}
METHODS = [*LAYER_METHODS, "fenchel-young", "spo+"]


@pytest.fixture(scope="module")
def task():
    x, c = data.shortest_path_data(N_TRAIN + N_TEST, 5, GRID, deg=4, noise_width=0.5, seed=3)
    problem = data.shortest_path_problem(GRID)
    oracle = ims.MAPOracle(problem)
    c = c.astype(np.float64)
    w = oracle(c)
    split = slice(0, N_TRAIN), slice(N_TRAIN, None)
    weights = np.random.default_rng(0).normal(scale=0.1, size=(5, 40))
    return problem, oracle, x, c, w, split, weights


def regret(task, weights: np.ndarray) -> float:
    _, oracle, x, c, _, (_, test), _ = task
    return metrics.normalized_regret(oracle, x[test] @ weights, c[test])


def assert_trained(task, trained: np.ndarray, method: str, framework: str) -> None:
    before, after = regret(task, task[-1]), regret(task, trained)
    assert after < 0.6 * before, f"{method} in {framework}: held-out regret {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_in_torch(task, method):
    torch = pytest.importorskip("torch")
    problem, _, x, c, w, (train, _), weights = task
    W = torch.tensor(weights, requires_grad=True)
    X, C, Wt = (torch.tensor(a[train]) for a in (x, c, w))
    if method in LAYER_METHODS:
        layer = ims.torch.IMLELayer(problem, LAYER_METHODS[method](), seed=0)
        loss_fn = lambda cost: (layer(cost) - Wt).abs().sum(dim=1).mean()
    elif method == "fenchel-young":
        fyl = ims.torch.FenchelYoungLoss(problem, sigma=0.5, samples=5, seed=0)
        loss_fn = lambda cost: fyl(cost, Wt)
    else:
        spo = ims.torch.SPOPlusLoss(problem)
        loss_fn = lambda cost: spo(cost, C, w_true=Wt)
    optimiser = torch.optim.Adam([W], lr=LR / 10)
    for _ in range(STEPS):
        optimiser.zero_grad()
        loss_fn(X @ W).backward()
        optimiser.step()
    assert_trained(task, W.detach().numpy(), method, "torch")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_in_jax(task, method):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers import jax as ims_jax

    problem, _, x, c, w, (train, _), weights = task
    X, C, Wt = (jnp.asarray(a[train], dtype=jnp.float32) for a in (x, c, w))
    state = None
    if method in LAYER_METHODS:
        f = ims_jax.imle(problem, LAYER_METHODS[method]())
        state = f.initial_state()

        def loss(W, state, key):
            z = f(X @ W, key) if state is None else f(X @ W, key, state)
            return jnp.mean(jnp.sum(jnp.abs(z - Wt), axis=1))
    elif method == "fenchel-young":
        fyl = ims_jax.FenchelYoungLoss(problem, sigma=0.5, samples=5)
        loss = lambda W, state, key: fyl(X @ W, Wt, key)
    else:
        spo = ims_jax.SPOPlusLoss(problem)
        loss = lambda W, state, key: spo(X @ W, C, w_true=Wt)
    W = jnp.asarray(weights, dtype=jnp.float32)
    grad = jax.grad(loss, argnums=(0, 1))
    key = jax.random.key(0)
    m = v = jnp.zeros_like(W)
    for step in range(1, STEPS + 1):  # Adam, as torch's
        key, sub = jax.random.split(key)
        g, g_state = grad(W, state, sub)
        if state is not None:
            state = ims_jax.apply_state_update(state, g_state)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        W = W - LR / 10 * (m / (1 - 0.9**step)) / (jnp.sqrt(v / (1 - 0.999**step)) + 1e-8)
    assert_trained(task, np.asarray(W, dtype=np.float64), method, "jax")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_in_keras(task, method):
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers import tensorflow as ims_tf

    problem, _, x, c, w, (train, _), weights = task
    inputs = keras.Input(shape=(5,))
    dense = keras.layers.Dense(40, use_bias=False)
    costs = dense(inputs)
    if method in LAYER_METHODS:
        outputs = ims_tf.IMLELayer(problem, LAYER_METHODS[method](), seed=0)(costs)
        loss, target = (lambda y, z: keras.ops.mean(keras.ops.sum(keras.ops.abs(z - y), axis=1))), w[train]
    elif method == "fenchel-young":
        outputs, loss, target = costs, ims_tf.FenchelYoungLoss(problem, sigma=0.5, samples=5, seed=0), w[train]
    else:
        outputs, loss, target = costs, ims_tf.SPOPlusLoss(problem), c[train]
    model = keras.Model(inputs, outputs)
    dense.set_weights([weights.astype(np.float32)])
    model.compile(optimizer=keras.optimizers.Adam(LR / 10), loss=loss)
    model.fit(x[train].astype(np.float32), target.astype(np.float32), batch_size=N_TRAIN, epochs=STEPS, verbose=0)
    assert_trained(task, np.asarray(dense.get_weights()[0], dtype=np.float64), method, "keras")
