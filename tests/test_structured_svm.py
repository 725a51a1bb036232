"""The structured SVM loss (imle_solvers.losses.structured_svm and the bindings'
StructuredSVMLoss): brute force over every feasible state, margins, training, the three
frameworks against each other, and the failure policy."""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.instances import per_instance
from imle_solvers.losses import structured_svm
from imle_solvers.oracle import MAPOracle

from flaky import FlakyArgmax  # tests/flaky.py
from test_losses import _frameworks, _jax_loss, _tf_loss, _torch_loss, dag_paths, ksubset_states, small_dag


def brute_svm(theta, y, states, sign, alpha=1.0, weight=None, constant=None):
    """Value and subgradient by enumeration of ``states`` ``(P, n)``: the max over states of
    ``<s, y'> + alpha Delta(y')`` minus ``<s, y>``, ``s = sign * theta``; Delta the Hamming
    distance to ``y`` unless a linear ``<weight, y'> + constant`` is given."""
    s = sign * theta
    if weight is None:
        delta = np.abs(states[None, :, :] - y[:, None, :]).sum(axis=2)  # (B, P)
    else:
        delta = np.einsum("bn,pn->bp", weight, states) + constant[:, None]
    augmented = s @ states.T + alpha * delta  # (B, P)
    best = np.argmax(augmented, axis=1)
    value = augmented.max(axis=1) - np.sum(s * y, axis=1)
    return value, sign * (states[best] - y), augmented


def _solve(problem, data=None, batch=None):
    oracle = MAPOracle(problem)
    if not data:
        return lambda x: oracle(x)
    return per_instance(lambda x, rows: oracle(x, **rows), data, batch)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_matches_brute_force_on_k_subsets(alpha):
    rng = np.random.default_rng(0)
    states = ksubset_states(6, 2)
    theta = rng.normal(size=(5, 6))
    y = states[rng.integers(len(states), size=5)]
    problem, sign = ims.KSubset(6, 2), 1
    result = structured_svm(theta, y, _solve(problem), sign=sign, alpha=alpha)
    value, grad, augmented = brute_svm(theta, y, states, sign, alpha)
    assert (np.sort(augmented, axis=1)[:, -1] - np.sort(augmented, axis=1)[:, -2] > 1e-9).all(), "a unique maximiser"
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, grad)
    assert (result.value >= 0).all() and result.value.max() > 0


def test_matches_brute_force_on_a_shortest_path_with_a_linear_user_loss():
    problem = small_dag()  # a min problem over arc costs
    paths = dag_paths(problem)
    rng = np.random.default_rng(1)
    costs = rng.normal(size=(4, paths.shape[1]))
    y = paths[[0, 1, 2, 0]]
    value, grad, _ = brute_svm(costs, y, paths, -1)
    result = structured_svm(costs, y, _solve(problem), sign=-1)
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, grad)
    # a user's Delta(y') = <a, y'> + b, with and without b (default: -<a, y>, so Delta(y) = 0)
    weight, constant = rng.uniform(0, 2, size=costs.shape), rng.normal(size=4)
    value, grad, _ = brute_svm(costs, y, paths, -1, 0.5, weight, constant)
    result = structured_svm(costs, y, _solve(problem), sign=-1, alpha=0.5, delta_weight=weight, delta_constant=constant)
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, grad)
    default = structured_svm(costs, y, _solve(problem), sign=-1, alpha=0.5, delta_weight=weight)
    np.testing.assert_allclose(default.value, value - 0.5 * (constant + np.sum(weight * y, axis=1)), atol=1e-12)
    assert (default.value >= -1e-12).all()


def test_hamming_on_an_ilp_by_enumeration():
    pytest.importorskip("ortools")
    from itertools import product
    from pathlib import Path

    # examples/specs/knapsack.yaml at its defaults: weights 3, 4, 5, 2, 6, 1, capacity 10, a max problem
    problem = ims.ILP.from_yaml(Path(__file__).parents[1] / "examples" / "specs" / "knapsack.yaml")
    weights = np.array([3.0, 4.0, 5.0, 2.0, 6.0, 1.0])
    states = np.array([s for s in product([0.0, 1.0], repeat=6) if np.dot(s, weights) <= 10])
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(3, 6))
    y = states[[3, 7, 11]]
    value, grad, _ = brute_svm(theta, y, states, 1)
    result = structured_svm(theta, y, _solve(problem), sign=1)
    np.testing.assert_allclose(result.value, value, atol=1e-9)
    np.testing.assert_allclose(result.gradient, grad)


@pytest.mark.parametrize("problem, states", [
    pytest.param(ims.KSubset(6, 2), ksubset_states(6, 2)[[0, 5, 9]], id="k-subset-max"),
    pytest.param(small_dag(), dag_paths(small_dag()), id="dag-min"),
])
def test_zero_when_the_target_wins_by_the_margin(problem, states):
    sign = problem.sign
    y = states
    scores = 1.01 * (2 * y - 1)  # the target beats every other state by more than its Hamming distance
    result = structured_svm(sign * scores, y, _solve(problem), sign=sign)
    np.testing.assert_allclose(result.value, 0, atol=1e-12)
    np.testing.assert_array_equal(result.gradient, 0)
    inside = structured_svm(sign * 0.4 * (2 * y - 1), y, _solve(problem), sign=sign)  # inside the margin
    assert (inside.value > 0).all()


def test_alpha_is_checked():
    torch = pytest.importorskip("torch")  # noqa: F841
    from imle_solvers.torch import StructuredSVMLoss

    with pytest.raises(InvalidInputError, match="alpha must be a number >= 0"):
        StructuredSVMLoss(ims.KSubset(4, 2), alpha=-1.0)


def test_torch_training_reduces_the_loss():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import StructuredSVMLoss

    problem = ims.KSubset(8, 3)
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(64, 5)))
    y = torch.tensor(MAPOracle(problem)(x.numpy() @ rng.normal(size=(5, 8))))
    model = torch.nn.Linear(5, 8).double()
    loss_fn = StructuredSVMLoss(problem)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        loss = loss_fn(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("problem, data", [
    pytest.param(ims.KSubset(6, 2), {"k": np.array([1, 2, 3])}, id="k-subset"),
    pytest.param(small_dag(), {}, id="dag"),
])
def test_frameworks_agree(problem, data):
    _frameworks()
    rng = np.random.default_rng(4)
    n = problem.shape[0]
    theta = rng.normal(size=(3, n)).astype(np.float32)
    y = MAPOracle(problem)(rng.normal(size=(3, n)), **data).astype(np.float32)
    results = [f("StructuredSVMLoss", problem, theta, y, data, alpha=0.7) for f in (_torch_loss, _jax_loss, _tf_loss)]
    for value, grad in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-5)
        np.testing.assert_allclose(grad, results[0][1])
    expected = structured_svm(theta.astype(np.float64), y, _solve(problem, data, 3), sign=problem.sign, alpha=0.7)
    np.testing.assert_allclose(results[0][0], expected.value.sum(), rtol=1e-5)
    np.testing.assert_allclose(results[0][1], expected.gradient)


def test_user_loss_reaches_every_binding():
    _frameworks()
    import jax
    import tensorflow as tf
    import torch

    from imle_solvers import jax as jax_binding
    from imle_solvers import tensorflow as keras_binding
    from imle_solvers import torch as torch_binding

    problem = ims.KSubset(5, 2)
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(4, 5)).astype(np.float32)
    y = ksubset_states(5, 2)[[0, 3, 6, 9]].astype(np.float32)
    weight = rng.uniform(0, 1, size=(4, 5)).astype(np.float32)
    expected, _, _ = brute_svm(theta.astype(np.float64), y, ksubset_states(5, 2), 1, 1.0, weight.astype(np.float64),
                               -np.sum(weight * y, axis=1).astype(np.float64))
    t = torch_binding.StructuredSVMLoss(problem, reduction="none")(torch.tensor(theta), torch.tensor(y),
                                                                   delta_weight=torch.tensor(weight))
    j = jax_binding.StructuredSVMLoss(problem, reduction="none")(theta, y, delta_weight=weight)
    k = keras_binding.StructuredSVMLoss(problem, reduction="none")(y, tf.constant(theta), delta_weight=weight)
    jitted = jax.jit(lambda t: jax_binding.StructuredSVMLoss(problem, reduction="none")(t, y, delta_weight=weight))
    for got in (t.numpy(), np.asarray(j), k.numpy(), np.asarray(jitted(theta))):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_keras_fit_and_config():
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers.tensorflow import StructuredSVMLoss

    problem = ims.KSubset(6, 2)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = MAPOracle(problem)(x @ rng.normal(size=(4, 6)).astype("float32")).astype("float32")
    loss = StructuredSVMLoss(problem, alpha=0.5)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    before = float(model.evaluate(x, y, verbose=0))
    model.fit(x, y, epochs=10, batch_size=8, verbose=0)
    assert float(model.evaluate(x, y, verbose=0)) < before
    restored = StructuredSVMLoss.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config() and restored.alpha == 0.5


# --- the failure policy, as the other losses' ---------------------------------------------

# instance 1 is pushed past the solver's limit by the margin: its loss-augmented solve fails
FLAKY_THETA = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 200.0, 0.0], [3.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 2.0]])
BENIGN_THETA = np.where(np.arange(4)[:, None] == 1, [[0.0, 0.0, 2.0, 0.0]], FLAKY_THETA)
Y = np.eye(4)[[1, 0, 2, 3]]


def _torch_svm(theta, **options):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import StructuredSVMLoss

    loss_fn = StructuredSVMLoss(FlakyArgmax(4), backend="numpy", reduction="none", **options)
    t = torch.tensor(theta, requires_grad=True)
    values = loss_fn(t, torch.tensor(Y))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy(), loss_fn.failures


def test_raise_names_the_instance():
    with pytest.raises(SolverError, match=r"^instance 1 \(test-flaky-argmax") as caught:
        _torch_svm(FLAKY_THETA)
    assert caught.value.index == 1 and caught.value.status == "infeasible"


def test_skip_zeroes_the_failed_instance_and_keeps_the_others():
    values, grad, failures = _torch_svm(FLAKY_THETA, on_failure="skip")
    assert values[1] == 0 and not grad[1].any()
    assert failures == {"infeasible": 1}
    ok_values, ok_grad, ok_failures = _torch_svm(BENIGN_THETA)
    assert not ok_failures and ok_values[[0, 2, 3]].sum() > 0
    np.testing.assert_array_equal(values[[0, 2, 3]], ok_values[[0, 2, 3]])
    np.testing.assert_array_equal(grad[[0, 2, 3]], ok_grad[[0, 2, 3]])


def test_incumbent_uses_the_incumbent_state():
    values, grad, failures = _torch_svm(FLAKY_THETA, on_failure="incumbent", time_limit=5.0)
    assert failures == {"incumbent": 1}
    # the incumbent of argmax e_2 is roll(e_2, 1) = e_3: gradient e_3 - y
    np.testing.assert_allclose(grad[1], np.eye(4)[3] - Y[1])


def test_jax_and_keras_apply_the_policy_as_torch():
    _frameworks()
    import jax

    from imle_solvers import jax as jax_binding
    from imle_solvers import tensorflow as keras_binding

    theta, y = FLAKY_THETA.astype(np.float32), Y.astype(np.float32)
    t_values, t_grad, _ = _torch_svm(FLAKY_THETA, on_failure="skip")
    j_loss = jax_binding.StructuredSVMLoss(FlakyArgmax(4), backend="numpy", reduction="none", on_failure="skip")
    np.testing.assert_allclose(np.asarray(j_loss(theta, y)), t_values, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda t: j_loss(t, y).sum())(theta), t_grad)
    k_loss = keras_binding.StructuredSVMLoss(FlakyArgmax(4), backend="numpy", reduction="none", on_failure="skip")
    np.testing.assert_allclose(k_loss(y, theta).numpy(), t_values, rtol=1e-6)
    with pytest.raises(SolverError, match=r"^instance 1 \("):
        jax_binding.StructuredSVMLoss(FlakyArgmax(4), backend="numpy")(theta, y)
    with pytest.raises(SolverError, match=r"^instance 1 \("):
        keras_binding.StructuredSVMLoss(FlakyArgmax(4), backend="numpy")(y, theta)
