"""Losses (imle_solvers.losses and the bindings' FenchelYoungLoss, SPOPlusLoss): the
formulas, closed forms, brute force, and the three frameworks against each other."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.losses import fenchel_young, spo_plus
from imle_solvers.oracle import MAPOracle

from flaky import FlakyArgmax  # tests/flaky.py

EULER_GAMMA = 0.5772156649015329


def small_dag() -> ims.GraphShortestPath:
    """A DAG (negative costs are fine): paths 0-1-3, 0-2-3, 0-1-2-3."""
    graph = nx.DiGraph([(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)])
    return ims.GraphShortestPath(graph, 0, 3)


def dag_paths(problem: ims.GraphShortestPath) -> np.ndarray:
    """Every 0-3 path's edge mask, ``(P, n_edges)``."""
    nodes = problem.graph.nodes
    edges = [(nodes[a], nodes[b]) for a, b in problem.graph.edges]
    graph = nx.DiGraph(edges)
    masks = []
    for path in nx.all_simple_paths(graph, 0, 3):
        on = set(itertools.pairwise(path))
        masks.append([1.0 if e in on else 0.0 for e in edges])
    return np.array(masks)


def ksubset_states(n: int, k: int) -> np.ndarray:
    return np.array([[1.0 if i in c else 0.0 for i in range(n)] for c in itertools.combinations(range(n), k)])


def brute_min(costs: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the minimising state and the minimum."""
    values = costs @ states.T
    return states[np.argmin(values, axis=1)], values.min(axis=1)


def spo_plus_min_formula(c_hat: np.ndarray, c: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SPO+ of a min problem by brute force: the paper's value and subgradient."""
    w_star, z_star = brute_min(c, states)
    w_tilde, min_value = brute_min(2 * c_hat - c, states)
    value = -min_value + 2 * np.sum(c_hat * w_star, axis=1) - z_star
    return value, 2 * (w_star - w_tilde)


# --- framework-free formulas ----------------------------------------------------------------


def test_fenchel_young_gradient_is_mean_state_minus_target_max_problem():
    rng = np.random.default_rng(0)
    problem = ims.KSubset(6, 2)
    oracle = MAPOracle(problem)
    theta, noise = rng.normal(size=(3, 6)), rng.normal(size=(3, 7, 6))
    y = oracle(rng.normal(size=(3, 6)))
    sigma = 0.7
    result = fenchel_young(theta, y, noise, oracle, sign=1, sigma=sigma)
    perturbed = theta[:, None] + sigma * noise
    states = oracle(perturbed.reshape(-1, 6)).reshape(3, 7, 6)
    np.testing.assert_allclose(result.gradient, states.mean(axis=1) - y)
    expected = np.mean(np.sum(states * perturbed, axis=2), axis=1) - np.sum(theta * y, axis=1)
    np.testing.assert_allclose(result.value, expected)
    # the value is F(theta) - <theta, y>: at least the noise's part of <y, ...> for Normal draws
    assert np.all(result.value >= np.mean(np.sum(sigma * noise * y[:, None], axis=2), axis=1) - 1e-12)


def test_fenchel_young_min_problem_sign():
    """Min problem over costs w: states MAP_min(w - sigma Z), gradient y - mean state."""
    rng = np.random.default_rng(1)
    problem = small_dag()
    oracle = MAPOracle(problem)
    n = problem.shape[0]
    w, noise = rng.uniform(1, 2, size=(4, n)), rng.normal(size=(4, 5, n))
    y = oracle(rng.uniform(1, 2, size=(4, n)))
    sigma = 0.5
    result = fenchel_young(w, y, noise, oracle, sign=-1, sigma=sigma)
    states = oracle((w[:, None] - sigma * noise).reshape(-1, n)).reshape(4, 5, n)
    np.testing.assert_allclose(result.gradient, y - states.mean(axis=1))
    # the loss decreases along -gradient (a descent direction, for the same draws)
    step = w - 0.05 * result.gradient
    after = fenchel_young(step, y, noise, oracle, sign=-1, sigma=sigma)
    assert np.sum(after.value) <= np.sum(result.value) + 1e-12


def test_spo_plus_matches_brute_force_min_problem():
    rng = np.random.default_rng(2)
    problem = small_dag()
    oracle = MAPOracle(problem)
    states = dag_paths(problem)
    assert len(states) == 3
    for _ in range(20):
        c = rng.uniform(0.5, 2.0, size=(5, problem.shape[0]))
        c_hat = c + rng.normal(scale=1.0, size=c.shape)
        result = spo_plus(c_hat, c, oracle, sign=-1)
        value, grad = spo_plus_min_formula(c_hat, c, states)
        np.testing.assert_allclose(result.value, value, atol=1e-12)
        np.testing.assert_allclose(result.gradient, grad)
        assert np.all(result.value >= -1e-12)
        # given w_true and z_true: the same numbers
        w_star, z_star = brute_min(c, states)
        given = spo_plus(c_hat, c, oracle, sign=-1, w_true=w_star, z_true=z_star)
        np.testing.assert_allclose(given.value, value, atol=1e-12)


def test_spo_plus_max_problem_mirrors_min_form():
    """For a max problem over scores, SPO+ is the min form over costs -scores, its
    subgradient the negative of that form's."""
    rng = np.random.default_rng(3)
    problem = ims.KSubset(6, 2)
    oracle = MAPOracle(problem)
    states = ksubset_states(6, 2)
    theta = rng.normal(size=(8, 6))
    theta_hat = theta + rng.normal(size=(8, 6))
    result = spo_plus(theta_hat, theta, oracle, sign=1)
    value, grad = spo_plus_min_formula(-theta_hat, -theta, states)
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, -grad)


def test_spo_plus_nonnegative_and_zero_at_truth():
    rng = np.random.default_rng(4)
    problem = ims.KSubset(7, 3)
    oracle = MAPOracle(problem)
    theta = rng.normal(size=(50, 7))
    np.testing.assert_allclose(spo_plus(theta, theta, oracle, sign=1).value, 0, atol=1e-12)
    for scale in (0.1, 1.0, 10.0):
        theta_hat = theta + scale * rng.normal(size=theta.shape)
        assert np.all(spo_plus(theta_hat, theta, oracle, sign=1).value >= -1e-12)
    # a prediction with the wrong optimum has a positive loss
    assert np.all(spo_plus(-theta, theta, oracle, sign=1).value > 0)


# --- torch ----------------------------------------------------------------------------------


def test_torch_fenchel_young_gumbel_one_hot_is_softmax():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss

    sigma, m = 0.5, 40000
    rng = np.random.default_rng(5)
    theta = torch.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    y = torch.eye(5, dtype=torch.float64)[[0, 3, 4]]
    loss_fn = FenchelYoungLoss(ims.KSubset(5, 1), noise=ims.Gumbel(), sigma=sigma, samples=m, reduction="sum", seed=0)
    loss = loss_fn(theta, y)
    loss.backward()
    expected_grad = torch.softmax(theta.detach() / sigma, dim=1) - y
    # each entry a mean of m Bernoulli draws: standard error <= 0.5 / sqrt(m) = 0.0025
    np.testing.assert_allclose(theta.grad.numpy(), expected_grad.numpy(), atol=0.015)
    # value: E max_i (theta_i + sigma G_i) = sigma logsumexp(theta / sigma) + sigma gamma
    t = theta.detach()
    expected = (sigma * torch.logsumexp(t / sigma, dim=1) + sigma * EULER_GAMMA - (t * y).sum(1)).sum()
    assert abs(loss.item() - expected.item()) < 0.05


def test_torch_reductions_and_checks():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss, SPOPlusLoss

    problem = ims.KSubset(5, 2)
    theta = torch.randn(4, 5, dtype=torch.float64)
    c = torch.randn(4, 5, dtype=torch.float64)
    none = SPOPlusLoss(problem, reduction="none")(theta, c)
    assert none.shape == (4,)
    torch.testing.assert_close(SPOPlusLoss(problem, reduction="sum")(theta, c), none.sum())
    torch.testing.assert_close(SPOPlusLoss(problem)(theta, c), none.mean())
    with pytest.raises(InvalidInputError, match="reduction"):
        SPOPlusLoss(problem, reduction="avg")
    with pytest.raises(InvalidInputError, match="noise"):
        FenchelYoungLoss(problem, noise=ims.SumOfGamma(k=2))
    with pytest.raises(InvalidInputError):
        SPOPlusLoss(problem)(theta, c[:, :3])


def test_torch_per_instance_data_change_the_result():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss, SPOPlusLoss

    problem = ims.KSubset(5, 1)
    rng = np.random.default_rng(6)
    theta = torch.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    c = torch.tensor(rng.normal(size=(3, 5)))
    k = torch.tensor([1, 2, 3])
    loss_fn = SPOPlusLoss(problem, reduction="none")
    plain, with_k = loss_fn(theta, c), loss_fn(theta, c, k=k)
    states = [ksubset_states(5, int(ki)) for ki in k]
    for b in range(3):
        value, _ = spo_plus_min_formula(-theta.detach().numpy()[b:b + 1], -c.numpy()[b:b + 1], states[b])
        np.testing.assert_allclose(with_k.detach().numpy()[b], value[0], atol=1e-12)
    assert not torch.allclose(plain, with_k)
    grad = torch.autograd.grad(with_k.sum(), theta)[0]
    # the subgradient 2 (w~ - w*) sums to 0 per row (both have k_i ones)
    np.testing.assert_allclose(grad.sum(1).numpy(), 0)
    y = torch.zeros(3, 5, dtype=torch.float64)
    y[:, 0] = 1
    fy = FenchelYoungLoss(problem, samples=50, seed=1, reduction="none", noise_source="numpy")
    g_plain = torch.autograd.grad(fy(theta, y).sum(), theta)[0]
    fy = FenchelYoungLoss(problem, samples=50, seed=1, reduction="none", noise_source="numpy")
    g_k = torch.autograd.grad(fy(theta, y, k=k).sum(), theta)[0]
    # mean state minus y: rows sum to k_i - 1
    np.testing.assert_allclose(g_plain.sum(1).numpy(), 0, atol=1e-12)
    np.testing.assert_allclose(g_k.sum(1).numpy(), (k - 1).numpy(), atol=1e-12)


# --- the three frameworks agree -------------------------------------------------------------


def _frameworks():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")


def _torch_loss(kind, problem, theta, target, data, **options):
    import torch

    from imle_solvers import torch as binding

    t = torch.tensor(theta, requires_grad=True)
    loss_fn = getattr(binding, kind)(problem, reduction="sum", **options)
    loss = loss_fn(t, torch.tensor(target), **{k: torch.tensor(v) for k, v in data.items()})
    loss.backward()
    return loss.item(), t.grad.numpy()


def _jax_loss(kind, problem, theta, target, data, key=None, **options):
    import jax
    import jax.numpy as jnp

    from imle_solvers import jax as binding

    loss_fn = getattr(binding, kind)(problem, reduction="sum", **options)
    args = (jnp.asarray(target),) if key is None else (jnp.asarray(target), key)
    value, grad = jax.value_and_grad(lambda t: loss_fn(t, *args, **data))(jnp.asarray(theta))
    return float(value), np.asarray(grad)


def _tf_loss(kind, problem, theta, target, data, **options):
    import tensorflow as tf

    from imle_solvers import tensorflow as binding

    t = tf.constant(theta)
    loss_fn = getattr(binding, kind)(problem, reduction="sum", dtype=theta.dtype.name, **options)
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = loss_fn(target, t, **data)
    return float(loss), tape.gradient(loss, t).numpy()


@pytest.mark.parametrize("problem, data", [
    pytest.param(ims.KSubset(6, 2), {"k": np.array([1, 2, 3])}, id="k-subset"),
    pytest.param(small_dag(), {}, id="dag"),
])
def test_frameworks_agree_on_spo_plus(problem, data):
    _frameworks()
    rng = np.random.default_rng(7)
    n = problem.shape[0]
    c = rng.uniform(0.5, 2.0, size=(3, n))
    c_hat = c + rng.normal(size=(3, n))
    c, c_hat = c.astype(np.float32), c_hat.astype(np.float32)  # JAX's default dtype
    results = [f("SPOPlusLoss", problem, c_hat, c, data) for f in (_torch_loss, _jax_loss, _tf_loss)]
    for value, grad in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-5)
        np.testing.assert_allclose(grad, results[0][1])
    assert results[0][0] > 0


@pytest.mark.parametrize("noise, multiplicative", [(ims.Normal(), False), (ims.Gumbel(), False), (ims.Normal(), True)],
                         ids=["normal", "gumbel", "normal-multiplicative"])
def test_frameworks_agree_on_fenchel_young_with_numpy_noise(noise, multiplicative):
    _frameworks()
    import jax

    from imle_solvers.jax import numpy_seed

    problem = ims.KSubset(6, 2)
    rng = np.random.default_rng(8)
    theta = rng.normal(size=(3, 6))
    y = MAPOracle(problem)(rng.normal(size=(3, 6)))
    data = {"k": np.array([2, 1, 3])}
    y[1] = MAPOracle(ims.KSubset(6, 1))(rng.normal(size=(1, 6)))[0]
    options = {"noise": noise, "sigma": 0.8, "samples": 16, "noise_source": "numpy", "multiplicative": multiplicative}
    theta, y = theta.astype(np.float32), y.astype(np.float32)  # JAX's default dtype
    key = jax.random.key(3)
    seed = numpy_seed(key)
    results = [
        _torch_loss("FenchelYoungLoss", problem, theta, y, data, seed=seed, **options),
        _jax_loss("FenchelYoungLoss", problem, theta, y, data, key=key, **options),
        _tf_loss("FenchelYoungLoss", problem, theta, y, data, seed=seed, **options),
    ]
    for value, grad in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-5)
        np.testing.assert_allclose(grad, results[0][1], atol=1e-6)
    # against the framework-free formula with the same draws
    draw = np.random.default_rng(seed)
    z = noise.sample(draw, (3, 1, 16, 6))
    oracle = MAPOracle(problem)
    from imle_solvers.instances import per_instance

    solve = per_instance(lambda x, rows: oracle(x, **rows), data, 3)
    expected = fenchel_young(theta.astype(np.float64), y, z, solve, sign=1, sigma=0.8, multiplicative=multiplicative)
    np.testing.assert_allclose(results[0][0], expected.value.sum(), rtol=1e-5)
    np.testing.assert_allclose(results[0][1], expected.gradient, atol=1e-6)
    if multiplicative:  # and against enumeration (the per-instance k's states)
        for b, k in enumerate(data["k"]):
            value, grad = brute_multiplicative(theta[b:b + 1].astype(np.float64), y[b:b + 1], z[b], ksubset_states(6, k),
                                               0.8, 1)
            np.testing.assert_allclose(results[0][1][b], grad[0], atol=1e-5)


def test_jax_losses_under_jit():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import FenchelYoungLoss, SPOPlusLoss

    problem = ims.KSubset(5, 2)
    theta = jnp.asarray(np.random.default_rng(9).normal(size=(4, 5)), dtype=jnp.float32)
    y = jnp.asarray(MAPOracle(problem)(np.asarray(theta)))
    fy = FenchelYoungLoss(problem, samples=8)
    eager = jax.grad(fy)(theta, y, jax.random.key(0))
    jitted = jax.jit(jax.grad(fy))(theta, y, jax.random.key(0))
    np.testing.assert_allclose(eager, jitted, atol=1e-6)
    spo = SPOPlusLoss(problem)
    assert float(jax.jit(spo)(theta, theta)) == 0.0


def test_keras_losses_in_model_fit():
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers.tensorflow import FenchelYoungLoss, SPOPlusLoss

    problem = ims.KSubset(6, 2)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(32, 4)).astype("float32")
    true_scores = x @ rng.normal(size=(4, 6)).astype("float32")
    y = MAPOracle(problem)(true_scores).astype("float32")
    for loss, target in ((FenchelYoungLoss(problem, samples=4, seed=0), y), (SPOPlusLoss(problem), true_scores)):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        before = float(model.evaluate(x, target, verbose=0))
        history = model.fit(x, target, epochs=15, batch_size=8, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        assert float(model.evaluate(x, target, verbose=0)) < before
        restored = type(loss).from_config(loss.get_config())
        assert restored.get_config() == loss.get_config()


# --- multiplicative perturbation ------------------------------------------------------------


def brute_multiplicative(theta, y, noise, states, sigma, sign):
    """PFYL with a multiplicative perturbation by enumeration, as PyEPO's
    ``perturbedFenchelYoungMul``: in the problem's own sense, ``c_m = theta * f_m``,
    ``y_m`` its optimum among ``states``; value ``sign * (mean_m <c_m, y_m> - <theta, y>)``,
    gradient ``sign * (mean_m f_m * y_m - y)``."""
    factor = np.exp(sigma * noise - sigma**2 / 2)  # (B, M, n)
    costs = theta[:, None, :] * factor
    objective = costs @ states.T  # (B, M, P)
    best = np.argmax(sign * objective, axis=2)
    y_m = states[best]  # (B, M, n)
    value = sign * (np.mean(np.sum(costs * y_m, axis=2), axis=1) - np.sum(theta * y, axis=1))
    return value, sign * (np.mean(factor * y_m, axis=1) - y)


@pytest.mark.parametrize("sense", ["max", "min"])
def test_multiplicative_fenchel_young_matches_brute_force_and_its_value(sense):
    rng = np.random.default_rng(11)
    if sense == "max":
        problem, states, sign = ims.KSubset(5, 2), ksubset_states(5, 2), 1
    else:
        problem, sign = small_dag(), -1
        states = dag_paths(problem)
    n = problem.shape[0]
    oracle = MAPOracle(problem)
    theta = rng.uniform(0.5, 2.0, size=(4, n))  # positive: the multiplicative case's domain
    y = states[rng.integers(0, len(states), 4)]
    noise, sigma = rng.normal(size=(4, 6, n)), 0.6
    result = fenchel_young(theta, y, noise, oracle, sign=sign, sigma=sigma, multiplicative=True)
    value, grad = brute_multiplicative(theta, y, noise, states, sigma, sign)
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, grad, atol=1e-12)
    # not the additive loss's gradient (mean state - y): the factors weigh the states
    additive = fenchel_young(theta, y, noise, oracle, sign=sign, sigma=sigma)
    assert not np.allclose(result.gradient, additive.gradient)
    # the gradient is the value's for these draws (Danskin): central differences agree
    eps = 1e-6
    for i in range(n):
        step = np.zeros_like(theta)
        step[:, i] = eps
        up = fenchel_young(theta + step, y, noise, oracle, sign=sign, sigma=sigma, multiplicative=True).value
        down = fenchel_young(theta - step, y, noise, oracle, sign=sign, sigma=sigma, multiplicative=True).value
        np.testing.assert_allclose((up - down) / (2 * eps), result.gradient[:, i], atol=1e-6)


def test_multiplicative_perturbation_keeps_signs_of_costs():
    """States of a min problem over positive costs are solved on positive costs only."""
    seen = []

    def solve(costs):
        seen.append(np.array(costs))
        return MAPOracle(small_dag())(costs)

    rng = np.random.default_rng(12)
    w = rng.uniform(0.1, 1.0, size=(3, 5))
    y = dag_paths(small_dag())[[0, 1, 2]]
    fenchel_young(w, y, rng.normal(size=(3, 8, 5)) * 3, solve, sign=-1, sigma=2.0, multiplicative=True)
    assert (np.concatenate(seen) > 0).all()


def test_multiplicative_option_is_checked_and_kept():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss

    with pytest.raises(InvalidInputError, match="multiplicative must be True or False"):
        FenchelYoungLoss(ims.KSubset(4, 2), multiplicative="yes")
    loss_fn = FenchelYoungLoss(ims.KSubset(4, 2), multiplicative=True, samples=3)
    assert loss_fn.perturbation.multiplicative and loss_fn.perturbation.marginal_samples == 3
    assert torch.isfinite(loss_fn(torch.rand(2, 4, dtype=torch.float64) + 0.5, torch.tensor([[1.0, 1, 0, 0]] * 2)))


# --- the failure policy ---------------------------------------------------------------------


# instance 1 fails in every perturbed solve (500 dominates any noise); the others never do
FLAKY_THETA = np.array([[0.0, 3.0, 1.0, 2.0], [500.0, 0.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 1.0]])
BENIGN_THETA = np.where(np.arange(4)[:, None] == 1, [[0.0, 0.0, 0.0, 1.0]], FLAKY_THETA)
FLAKY_Y = np.eye(4)[[1, 0, 2, 3]]


def _torch_fy(theta, seed, **options):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss

    loss_fn = FenchelYoungLoss(FlakyArgmax(4), backend="numpy", samples=3, reduction="none", seed=seed,
                               noise_source="numpy", **options)
    t = torch.tensor(theta, requires_grad=True)
    values = loss_fn(t, torch.tensor(FLAKY_Y))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy(), loss_fn.failures


def test_torch_fenchel_young_under_raise_names_the_instance_not_the_row():
    pytest.importorskip("torch")
    with pytest.raises(SolverError, match=r"^instance 1, solve 1 of 3 \(test-flaky-argmax") as caught:
        _torch_fy(FLAKY_THETA, 0)
    assert caught.value.index == 1 and caught.value.indices == (1,) and caught.value.status == "infeasible"


def test_torch_fenchel_young_skip_zeroes_the_failed_instance_and_keeps_the_others():
    values, grad, failures = _torch_fy(FLAKY_THETA, 0, on_failure="skip")
    assert values[1] == 0 and not grad[1].any(), "a failed instance: loss 0, gradient 0"
    assert failures == {"infeasible": 3}, "one count per failed perturbed solve"
    # the others get what they get in a batch of the same size, with the same noise, without it
    ok_values, ok_grad, ok_failures = _torch_fy(BENIGN_THETA, 0)
    assert not ok_failures
    np.testing.assert_allclose(values[[0, 2, 3]], ok_values[[0, 2, 3]], rtol=1e-12)
    np.testing.assert_allclose(grad[[0, 2, 3]], ok_grad[[0, 2, 3]], rtol=1e-12)
    assert np.abs(grad[[0, 2, 3]]).sum() > 0
    # reduction "mean" divides by B, the failed instance's 0 included
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss

    mean = FenchelYoungLoss(FlakyArgmax(4), backend="numpy", samples=3, seed=0, noise_source="numpy",
                            on_failure="skip")(torch.tensor(FLAKY_THETA), torch.tensor(FLAKY_Y))
    np.testing.assert_allclose(mean.item(), values.sum() / 4)


def test_torch_fenchel_young_incumbent_uses_the_incumbent_state():
    values, grad, failures = _torch_fy(FLAKY_THETA, 0, on_failure="incumbent", time_limit=5.0)
    assert failures == {"incumbent": 3}
    # every perturbed solve of instance 1 offers roll(e_0, 1) = e_1: gradient e_1 - y, y = e_0
    np.testing.assert_allclose(grad[1], np.eye(4)[1] - FLAKY_Y[1])
    _, ok_grad, _ = _torch_fy(BENIGN_THETA, 0)
    np.testing.assert_allclose(grad[[0, 2, 3]], ok_grad[[0, 2, 3]], rtol=1e-12)
    assert values[1] != 0


def test_torch_spo_plus_failure_policy_covers_both_solves():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import SPOPlusLoss

    # instance 1: the solve of c fails; instance 3: c is fine, 2 c_hat - c is not
    c = FLAKY_THETA.copy()
    c_hat = FLAKY_THETA + 0.5
    c_hat[1] = [0.0, 1.0, 0.0, 0.0]
    c_hat[3] = [0.0, 0.0, 0.0, 300.0]

    def run(c, c_hat, **options):
        loss_fn = SPOPlusLoss(FlakyArgmax(4), backend="numpy", reduction="none", **options)
        t = torch.tensor(c_hat, requires_grad=True)
        values = loss_fn(t, torch.tensor(c))
        values.sum().backward()
        return values.detach().numpy(), t.grad.numpy(), loss_fn.failures

    with pytest.raises(SolverError, match=r"^instance 1 \(") as caught:
        run(c, c_hat)
    assert caught.value.index == 1
    values, grad, failures = run(c, c_hat, on_failure="skip")
    assert failures == {"infeasible": 2}
    assert values[1] == 0 and values[3] == 0 and not grad[[1, 3]].any()
    benign_c, benign_hat = c.copy(), c_hat.copy()
    benign_c[1], benign_hat[3] = [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]
    ok_values, ok_grad, _ = run(benign_c, benign_hat)
    np.testing.assert_allclose(values[[0, 2]], ok_values[[0, 2]])
    np.testing.assert_allclose(grad[[0, 2]], ok_grad[[0, 2]])


def test_jax_and_keras_losses_apply_the_policy_as_torch():
    _frameworks()
    import jax
    import tensorflow as tf

    from imle_solvers import jax as jax_binding
    from imle_solvers import tensorflow as keras_binding
    from imle_solvers.jax import numpy_seed

    key = jax.random.key(4)
    seed = numpy_seed(key)
    options = {"backend": "numpy", "samples": 3, "noise_source": "numpy"}
    theta = FLAKY_THETA.astype(np.float32)  # JAX's default dtype
    y = FLAKY_Y.astype(np.float32)
    # "raise": the failing instance's batch index, as raised (not JAX's or Keras' wrapping)
    jax_fy = jax_binding.FenchelYoungLoss(FlakyArgmax(4), **options)
    with pytest.raises(SolverError, match=r"^instance 1, solve 1 of 3 ") as caught:
        jax.grad(lambda t: jax_fy(t, y, key))(theta)
    assert caught.value.index == 1
    keras_fy = keras_binding.FenchelYoungLoss(FlakyArgmax(4), seed=seed, **options)
    with pytest.raises(SolverError, match=r"^instance 1, solve 1 of 3 ") as caught:
        keras_fy(y, theta)
    assert caught.value.index == 1
    # "skip": the torch loss's values and gradients with the same noise
    t_values, t_grad, _ = _torch_fy(theta.astype(np.float64), seed, on_failure="skip")
    jax_fy = jax_binding.FenchelYoungLoss(FlakyArgmax(4), reduction="none", on_failure="skip", **options)
    j_values = jax_fy(theta, y, key)
    j_grad = jax.grad(lambda t: jax_fy(t, y, key).sum())(theta)
    np.testing.assert_allclose(j_values, t_values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(j_grad, t_grad, atol=1e-6)
    np.testing.assert_array_equal(jax.jit(lambda t: jax_fy(t, y, key))(theta)[1], 0.0)
    keras_fy = keras_binding.FenchelYoungLoss(FlakyArgmax(4), seed=seed, reduction="none", on_failure="skip",
                                              **options)
    v = tf.constant(theta)
    with tf.GradientTape() as tape:
        tape.watch(v)
        k_values = keras_fy(y, v)
    np.testing.assert_allclose(k_values.numpy(), t_values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(k_values, v).numpy(), t_grad, atol=1e-6)
    assert keras_fy.failures == {"infeasible": 3}
    # SPO+: instance 1's solve of c fails; the others as torch's
    import torch

    from imle_solvers.torch import SPOPlusLoss

    c, c_hat = theta, np.ascontiguousarray(theta[:, ::-1])
    t_spo = SPOPlusLoss(FlakyArgmax(4), backend="numpy", reduction="none", on_failure="skip")
    expected = t_spo(torch.tensor(c_hat), torch.tensor(c)).numpy()
    assert expected[1] == 0 and (expected > 0).sum() == 3
    j_spo = jax_binding.SPOPlusLoss(FlakyArgmax(4), backend="numpy", reduction="none", on_failure="skip")
    k_spo = keras_binding.SPOPlusLoss(FlakyArgmax(4), backend="numpy", reduction="none", on_failure="skip")
    np.testing.assert_allclose(np.asarray(j_spo(c_hat, c)), expected, rtol=1e-6)
    np.testing.assert_allclose(k_spo(c, c_hat).numpy(), expected, rtol=1e-6)
    with pytest.raises(SolverError, match=r"^instance 1 \("):
        jax_binding.SPOPlusLoss(FlakyArgmax(4), backend="numpy")(c_hat, c)
    with pytest.raises(SolverError, match=r"^instance 1 \("):
        keras_binding.SPOPlusLoss(FlakyArgmax(4), backend="numpy")(c, c_hat)
    # the Keras config keeps the policy and the option
    loss = keras_binding.FenchelYoungLoss(ims.KSubset(4, 2), on_failure="skip", multiplicative=True, cache=True)
    config = loss.get_config()
    assert config["on_failure"] == "skip" and config["multiplicative"] is True and "cache" not in config
    restored = keras_binding.FenchelYoungLoss.from_config(config)
    assert restored.oracle.on_failure == "skip" and restored.multiplicative and restored.oracle.cache is None
