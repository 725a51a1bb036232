"""The structured SVM loss of the 0-1 base loss (InferOpt's ZeroOneBaseLoss;
imle_solvers.losses.structured_svm_zero_one and the bindings' base_loss="zero_one"): against
brute force over every k-subset, the three frameworks against the core, and the problems
it refuses."""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.instances import per_instance
from imle_solvers.losses import structured_svm_zero_one
from imle_solvers.oracle import MAPOracle

from test_losses import _frameworks, _jax_loss, _tf_loss, _torch_loss, ksubset_states


def _brute_force(theta: np.ndarray, y_true: np.ndarray, states: np.ndarray, alpha: float):
    """Per row: max(max_{y != y_true} <theta, y> + alpha, <theta, y_true>) - <theta, y_true>
    and its subgradient y_hat - y_true."""
    values, grads = [], []
    for row, y in zip(theta, y_true, strict=True):
        others = states[np.any(states != y, axis=1)]
        truth = row @ y
        if len(others) == 0:
            values.append(0.0)
            grads.append(np.zeros_like(row))
            continue
        scores = others @ row + alpha
        best = others[np.argmax(scores)]
        violated = scores.max() > truth
        values.append(scores.max() - truth if violated else 0.0)
        grads.append(best - y if violated else np.zeros_like(row))
    return np.array(values), np.array(grads)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 4.0])
@pytest.mark.parametrize("n, k", [(5, 1), (6, 2), (6, 3), (3, 3)])
def test_against_brute_force(n, k, alpha):
    rng = np.random.default_rng(n * 10 + k)
    problem = ims.KSubset(n, k)
    states = ksubset_states(n, k)
    oracle = MAPOracle(problem)
    theta = rng.normal(size=(8, n))
    y_true = states[rng.integers(0, len(states), 8)]
    y_true[:3] = oracle(theta[:3])  # targets the MAP state: the margin against the second best
    result = structured_svm_zero_one(theta, y_true, oracle, sign=1, alpha=alpha)
    value, grad = _brute_force(theta, y_true, states, alpha)
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, grad)
    np.testing.assert_allclose(result.solution, y_true + grad)


def test_gradient_is_the_values_derivative():
    rng = np.random.default_rng(1)
    problem = ims.KSubset(6, 2)
    oracle = MAPOracle(problem)
    theta, y_true = rng.normal(size=(4, 6)), ksubset_states(6, 2)[rng.integers(0, 15, 4)]
    result = structured_svm_zero_one(theta, y_true, oracle, sign=1, alpha=0.5)
    h = 1e-6
    for i in range(6):
        step = np.zeros(6)
        step[i] = h
        up = structured_svm_zero_one(theta + step, y_true, oracle, sign=1, alpha=0.5).value
        down = structured_svm_zero_one(theta - step, y_true, oracle, sign=1, alpha=0.5).value
        np.testing.assert_allclose((up - down) / (2 * h), result.gradient[:, i], atol=1e-6)


def test_instance_masks_and_k_are_respected():
    rng = np.random.default_rng(2)
    problem = ims.KSubset(5, 2)
    mask = np.array([[True, True, False, True, True], [True, False, False, True, False], [True] * 5])
    k = np.array([2, 2, 1])
    theta = rng.normal(size=(3, 5))
    oracle = MAPOracle(problem)
    data = {"mask": mask, "k": k}
    solve = per_instance(lambda x, d: oracle(x, **d), data, 3)
    y_true = np.array([[1, 0, 0, 1, 0], [1, 0, 0, 1, 0], [0, 0, 1, 0, 0]], dtype=float)
    result = structured_svm_zero_one(theta, y_true, solve, sign=1, alpha=1.0)
    for i in range(3):
        states = ksubset_states(5, int(k[i]))
        states = states[np.all(states <= mask[i], axis=1)]
        value, grad = _brute_force(theta[i:i + 1], y_true[i:i + 1], states, 1.0)
        np.testing.assert_allclose(result.value[i], value[0], atol=1e-12)
        np.testing.assert_allclose(result.gradient[i], grad[0])
    assert result.value[1] == 0  # its mask leaves one state only


@pytest.mark.parametrize("run", [_torch_loss, _jax_loss, _tf_loss], ids=["torch", "jax", "keras"])
def test_bindings_agree_with_the_core(run):
    _frameworks()
    rng = np.random.default_rng(3)
    problem = ims.KSubset(6, 2)
    theta = rng.normal(size=(5, 6)).astype(np.float32)  # JAX's default precision
    y_true = ksubset_states(6, 2)[rng.integers(0, 15, 5)].astype(np.float32)
    expected = structured_svm_zero_one(theta.astype(np.float64), y_true, MAPOracle(problem), sign=1, alpha=0.7)
    value, grad = run("StructuredSVMLoss", problem, theta, y_true, {}, alpha=0.7, base_loss="zero_one")
    np.testing.assert_allclose(value, expected.value.sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, expected.gradient)


def test_refuses_other_problems_and_linear_loss_weights():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import StructuredSVMLoss

    for problem in (ims.Ranking(4), ims.GridShortestPath(3, 3)):
        with pytest.raises(ims.InvalidInputError, match="base_loss='zero_one'.*KSubset"):
            StructuredSVMLoss(problem, base_loss="zero_one")
    with pytest.raises(ims.InvalidInputError, match="base_loss must be"):
        StructuredSVMLoss(ims.KSubset(4, 1), base_loss="hinge")
    loss = StructuredSVMLoss(ims.KSubset(4, 1), base_loss="zero_one")
    theta, y = torch.zeros(2, 4), torch.eye(4)[:2]
    with pytest.raises(ims.InvalidInputError, match="takes no delta_weight"):
        loss(theta, y, delta_weight=torch.ones(2, 4))


def test_keras_config_keeps_the_base_loss():
    pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import StructuredSVMLoss

    loss = StructuredSVMLoss(ims.KSubset(5, 2), alpha=0.5, base_loss="zero_one")
    restored = StructuredSVMLoss.from_config(loss.get_config())
    assert restored.base_loss == "zero_one" and restored.step.definition.base_loss == "zero_one"
    assert restored.alpha == 0.5
