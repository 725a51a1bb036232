"""The PG losses (imle_solvers.losses.perturbation_gradient and the bindings' PGLoss): against
PyEPO's own perturbationGradient with the same costs, against enumeration, the three
frameworks against each other, and the failure policy."""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.instances import per_instance
from imle_solvers.losses import perturbation_gradient
from imle_solvers.oracle import MAPOracle

from flaky import FlakyArgmax  # tests/flaky.py
from test_losses import _frameworks, _jax_loss, _tf_loss, _torch_loss, dag_paths, ksubset_states, small_dag
from test_pool_losses import _pyepo_model

VARIANTS = ["backward", "central"]


def brute_pg(c_hat, c, states, sign, sigma, variant):
    """Value and gradient by enumeration of ``states`` ``(P, n)``, in the problem's own sense:
    ``z*(x)`` the optimum of ``<x, w>`` (min for ``sign = -1``, max for +1), the loss
    ``sign (z*(upper) - z*(c_hat - sigma c)) / width`` (PyEPO's), ``upper`` ``c_hat``
    (backward, width sigma) or ``c_hat + sigma c`` (central, width 2 sigma)."""
    def best(x):
        values = x @ states.T  # (B, P)
        index = np.argmax(values, axis=1) if sign == 1 else np.argmin(values, axis=1)
        return states[index], values[np.arange(len(x)), index], np.sort(values, axis=1)

    upper = c_hat if variant == "backward" else c_hat + sigma * c
    width = sigma if variant == "backward" else 2 * sigma
    w_up, z_up, sorted_up = best(upper)
    w_low, z_low, sorted_low = best(c_hat - sigma * c)
    # PyEPO's sign: +1 for a min problem
    value = -sign * (z_up - z_low) / width
    grad = -sign * (w_up - w_low) / width
    unique = all(((s[:, 1] - s[:, 0]) > 1e-9).all() and ((s[:, -1] - s[:, -2]) > 1e-9).all()
                 for s in (sorted_up, sorted_low))
    return value, grad, unique


def _solve(problem, data=None, batch=None):
    oracle = MAPOracle(problem)
    if not data:
        return lambda x: oracle(x)
    return per_instance(lambda x, rows: oracle(x, **rows), data, batch)


def _pyepo_pg(states, minimize, c_hat, c, sigma, variant):
    """PyEPO's perturbationGradient per instance and its gradient with respect to ``c_hat``."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pyepo")
    import pyepo.func

    model = _pyepo_model(states, minimize)
    loss_fn = pyepo.func.perturbationGradient(model, sigma=sigma, two_sides=variant == "central", reduction="none")
    t = torch.tensor(c_hat, requires_grad=True)
    values = loss_fn(t, torch.tensor(c))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("problem, states", [
    pytest.param(ims.KSubset(6, 2), ksubset_states(6, 2), id="k-subset-max"),
    pytest.param(small_dag(), dag_paths(small_dag()), id="dag-min"),
])
def test_matches_pyepo(variant, problem, states):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import PGLoss

    rng = np.random.default_rng(0)
    c_hat, c = rng.normal(size=(6, states.shape[1])), rng.normal(size=(6, states.shape[1]))
    sigma = 0.3
    theirs_value, theirs_grad = _pyepo_pg(states, problem.sign == -1, c_hat, c, sigma, variant)
    loss_fn = PGLoss(problem, sigma=sigma, variant=variant, reduction="none")
    t = torch.tensor(c_hat, requires_grad=True)
    values = loss_fn(t, torch.tensor(c))
    values.sum().backward()
    assert np.abs(theirs_grad).max() > 0, "some instance's two states differ"
    # PyEPO divides by sigma + 1e-8: a relative difference of ~3e-8
    np.testing.assert_allclose(values.detach().numpy(), theirs_value, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), theirs_grad, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("problem, states", [
    pytest.param(ims.KSubset(6, 3), ksubset_states(6, 3), id="k-subset-max"),
    pytest.param(small_dag(), dag_paths(small_dag()), id="dag-min"),
])
def test_matches_brute_force(variant, problem, states):
    rng = np.random.default_rng(1)
    c_hat, c = rng.normal(size=(8, states.shape[1])), rng.normal(size=(8, states.shape[1]))
    sigma = 1.5  # wide enough that the two points' states differ on some instances
    value, grad, unique = brute_pg(c_hat, c, states, problem.sign, sigma, variant)
    assert unique, "a unique optimiser at every point"
    result = perturbation_gradient(c_hat, c, _solve(problem), sign=problem.sign, sigma=sigma, variant=variant)
    np.testing.assert_allclose(result.value, value, atol=1e-12)
    np.testing.assert_allclose(result.gradient, grad, atol=1e-12)
    assert np.abs(grad).max() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_approximates_the_decision_loss_as_sigma_shrinks(variant):
    # for a small width both variants tend to the true cost of the decision, <c, w*(c_hat)> (min problem)
    problem, states = small_dag(), dag_paths(small_dag())
    rng = np.random.default_rng(2)
    c_hat, c = rng.normal(size=(5, states.shape[1])), rng.normal(size=(5, states.shape[1]))
    decision = states[np.argmin(c_hat @ states.T, axis=1)]
    result = perturbation_gradient(c_hat, c, _solve(problem), sign=-1, sigma=1e-6, variant=variant)
    np.testing.assert_allclose(result.value, np.sum(c * decision, axis=1), atol=1e-5)


def test_settings_are_checked():
    pytest.importorskip("torch")
    from imle_solvers.torch import PGLoss

    with pytest.raises(InvalidInputError, match="sigma must be a number > 0"):
        PGLoss(ims.KSubset(4, 2), sigma=0.0)
    with pytest.raises(InvalidInputError, match="variant must be 'backward' or 'central'"):
        PGLoss(ims.KSubset(4, 2), variant="forward")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("problem, data", [
    pytest.param(ims.KSubset(6, 2), {"k": np.array([1, 2, 3])}, id="k-subset"),
    pytest.param(small_dag(), {}, id="dag"),
])
def test_frameworks_agree(variant, problem, data):
    _frameworks()
    rng = np.random.default_rng(4)
    n = problem.shape[0]
    c_hat = rng.normal(size=(3, n)).astype(np.float32)
    c = rng.normal(size=(3, n)).astype(np.float32)
    results = [f("PGLoss", problem, c_hat, c, data, sigma=0.5, variant=variant)
               for f in (_torch_loss, _jax_loss, _tf_loss)]
    for value, grad in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, results[0][1])
    expected = perturbation_gradient(c_hat.astype(np.float64), c, _solve(problem, data, 3), sign=problem.sign,
                                     sigma=0.5, variant=variant)
    np.testing.assert_allclose(results[0][0], expected.value.sum(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], expected.gradient, rtol=1e-6)
    assert np.abs(expected.gradient).max() > 0


def test_jit_and_keras_config():
    _frameworks()
    import jax

    from imle_solvers import jax as jax_binding
    from imle_solvers import tensorflow as keras_binding

    problem = ims.KSubset(5, 2)
    rng = np.random.default_rng(5)
    c_hat, c = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    expected = perturbation_gradient(c_hat.astype(np.float64), c, _solve(problem), sign=1, sigma=0.2,
                                     variant="central").value
    loss_fn = jax_binding.PGLoss(problem, sigma=0.2, variant="central", reduction="none")
    np.testing.assert_allclose(np.asarray(jax.jit(loss_fn)(c_hat, c)), expected, rtol=1e-5, atol=1e-6)
    loss = keras_binding.PGLoss(problem, sigma=0.2, variant="central")
    restored = keras_binding.PGLoss.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config() and (restored.sigma, restored.variant) == (0.2, "central")


# --- the failure policy, as the other losses' ---------------------------------------------

# instance 1's prediction is past the solver's limit: both its solves fail (the first
# is named); instance 0's two points have different states
FLAKY_C_HAT = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 200.0, 0.0], [3.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 2.0]])
BENIGN_C_HAT = np.where(np.arange(4)[:, None] == 1, [[0.0, 0.0, 2.0, 0.0]], FLAKY_C_HAT)
C = np.array([[0.0, 3.0, 0.0, 0.0], [2.0, 0.0, 0.0, 1.0], [0.0, 5.0, 0.0, 0.0], [0.0, 1.0, 3.0, 0.0]])


def _torch_pg(c_hat, variant="backward", **options):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import PGLoss

    loss_fn = PGLoss(FlakyArgmax(4), sigma=1.0, variant=variant, backend="numpy", reduction="none", **options)
    t = torch.tensor(c_hat, requires_grad=True)
    values = loss_fn(t, torch.tensor(C))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy(), loss_fn.failures


@pytest.mark.parametrize("variant", VARIANTS)
def test_raise_names_the_instance(variant):
    with pytest.raises(SolverError, match=r"^instance 1, solve 1 of 2 \(test-flaky-argmax") as caught:
        _torch_pg(FLAKY_C_HAT, variant)
    assert caught.value.index == 1 and caught.value.status == "infeasible"


@pytest.mark.parametrize("variant", VARIANTS)
def test_skip_zeroes_the_failed_instance_and_keeps_the_others(variant):
    values, grad, failures = _torch_pg(FLAKY_C_HAT, variant, on_failure="skip")
    assert values[1] == 0 and not grad[1].any()
    assert failures == {"infeasible": 2}  # both of its points
    ok_values, ok_grad, ok_failures = _torch_pg(BENIGN_C_HAT, variant)
    assert not ok_failures and np.abs(ok_grad[[0, 2, 3]]).max() > 0
    np.testing.assert_array_equal(values[[0, 2, 3]], ok_values[[0, 2, 3]])
    np.testing.assert_array_equal(grad[[0, 2, 3]], ok_grad[[0, 2, 3]])


def test_jax_and_keras_apply_the_policy_as_torch():
    _frameworks()
    import jax

    from imle_solvers import jax as jax_binding
    from imle_solvers import tensorflow as keras_binding

    c_hat, c = FLAKY_C_HAT.astype(np.float32), C.astype(np.float32)
    t_values, t_grad, _ = _torch_pg(FLAKY_C_HAT, on_failure="skip")
    options = {"sigma": 1.0, "backend": "numpy", "reduction": "none"}
    j_loss = jax_binding.PGLoss(FlakyArgmax(4), on_failure="skip", **options)
    np.testing.assert_allclose(np.asarray(j_loss(c_hat, c)), t_values, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda t: j_loss(t, c).sum())(c_hat), t_grad)
    k_loss = keras_binding.PGLoss(FlakyArgmax(4), on_failure="skip", **options)
    np.testing.assert_allclose(k_loss(c, c_hat).numpy(), t_values, rtol=1e-6)
    with pytest.raises(SolverError, match=r"^instance 1, solve 1 of 2 \("):
        jax_binding.PGLoss(FlakyArgmax(4), **options)(c_hat, c)
    with pytest.raises(SolverError, match=r"^instance 1, solve 1 of 2 \("):
        keras_binding.PGLoss(FlakyArgmax(4), **options)(c, c_hat)
