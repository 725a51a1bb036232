"""The pool losses (NCE, CMAP, pointwise, pairwise and listwise learning to rank): against
PyEPO's own modules with the same costs, targets and pool, against enumeration, the pool's
growth rule, and the three frameworks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.losses import pool_loss
from imle_solvers.oracle import MAPOracle

from flaky import FlakyArgmax  # tests/flaky.py
from test_losses import _frameworks, dag_paths, ksubset_states, small_dag

KINDS = {"nce": "NCELoss", "cmap": "CMAPLoss", "pointwise": "PointwiseLTRLoss", "pairwise": "PairwiseLTRLoss",
         "listwise": "ListwiseLTRLoss"}
PYEPO = {"nce": "NCE", "cmap": "contrastiveMAP", "pointwise": "ptLTR", "pairwise": "prLTR",
         "listwise": "lsLTR"}


def _pyepo_model(states: np.ndarray, minimize: bool):
    """A PyEPO optModel over the feasible ``states`` ``(P, n)``, solved by enumeration."""
    from pyepo import EPO
    from pyepo.model.opt import optModel

    class Enumerated(optModel):
        def __init__(self) -> None:
            self.modelSense = EPO.MINIMIZE if minimize else EPO.MAXIMIZE
            super().__init__()

        def _getModel(self):
            return None, list(range(states.shape[1]))

        def setObj(self, c):
            self.c = np.asarray(c, dtype=np.float64)

        def solve(self):
            values = states @ self.c
            best = int(np.argmin(values) if minimize else np.argmax(values))
            return states[best].copy(), float(values[best])

    return Enumerated()


def _pyepo_values(kind, states, minimize, c_hat, target, pool):
    """PyEPO's loss per instance and its gradient, its pool set to ``pool`` and fixed."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pyepo")
    import pyepo.func
    from pyepo.data.dataset import optDataset

    model = _pyepo_model(states, minimize)
    dataset = optDataset(model, np.zeros((len(pool), 1)), np.ones(pool.shape))
    loss_fn = getattr(pyepo.func, PYEPO[kind])(model, solve_ratio=0.0, reduction="none", dataset=dataset)
    loss_fn.solpool = torch.tensor(pool)
    loss_fn._branch_rng = SimpleNamespace(uniform=lambda: 1.0)  # never solve: the pool stays the one given
    t = torch.tensor(c_hat, requires_grad=True)
    values = loss_fn(t, torch.tensor(target))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy()


def _inputs(kind, states, minimize, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(4, states.shape[1]))
    c_hat = c + rng.normal(size=c.shape)
    pool = states[rng.permutation(len(states))[: max(3, len(states) // 2)]]
    w_star = states[np.argmin(c @ states.T, axis=1) if minimize else np.argmax(c @ states.T, axis=1)]
    return c_hat, (w_star if kind in ("nce", "cmap") else c), pool


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("problem, states", [
    pytest.param(ims.KSubset(6, 2), ksubset_states(6, 2), id="k-subset-max"),
    pytest.param(small_dag(), dag_paths(small_dag()), id="dag-min"),
])
def test_matches_pyepo(kind, problem, states):
    minimize = problem.sense == "min"
    c_hat, target, pool = _inputs(kind, states, minimize)
    ours = pool_loss(kind, c_hat, target, pool, sign=problem.sign)
    theirs_value, theirs_grad = _pyepo_values(kind, states, minimize, c_hat, target, pool)
    np.testing.assert_allclose(ours.value, theirs_value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.gradient, theirs_grad, rtol=1e-10, atol=1e-12)


def test_nce_and_cmap_by_hand_enumeration():
    # a min problem over 3 states; the pool holds all of them
    pool = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    c_hat = np.array([[3.0, 1.0, 2.0]])
    w = pool[[0]]  # the truth: state 0, which c_hat ranks last
    nce = pool_loss("nce", c_hat, w, pool, sign=-1)
    np.testing.assert_allclose(nce.value, [3 - (3 + 1 + 2) / 3])
    np.testing.assert_allclose(nce.gradient, w - pool.mean(axis=0))
    cmap = pool_loss("cmap", c_hat, w, pool, sign=-1)
    np.testing.assert_allclose(cmap.value, [3 - 1])
    np.testing.assert_allclose(cmap.gradient, w - pool[[1]])
    # max problem: the same state ranks first under the scores -c_hat... and CMAP is then 0
    np.testing.assert_allclose(pool_loss("cmap", -c_hat, pool[[1]], pool, sign=1).value, [0.0])


def test_pool_growth_rule_and_dedup():
    pool = ims.SolutionPool(np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    assert len(pool) == 2, "duplicates are dropped"
    assert pool.add(np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])) == 1
    assert pool.add(np.array([[1.0, 1.0, 0.0 + 1e-5]])) == 0, "within PyEPO's L1 tolerance: the same state"
    assert len(pool) == 3
    assert not any(ims.SolutionPool(pool.states, solve_ratio=0.0, seed=1).draw() for _ in range(200))
    assert all(ims.SolutionPool(pool.states, solve_ratio=1.0, seed=1).draw() for _ in range(200))
    draws = [ims.SolutionPool(pool.states, solve_ratio=0.3, seed=s).draw() for s in range(400)]
    assert 0.2 < np.mean(draws) < 0.4
    with pytest.raises(InvalidInputError, match="solve_ratio must be in"):
        ims.SolutionPool(pool.states, solve_ratio=1.5)


def test_torch_loss_grows_its_pool_by_solving_the_predictions():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import CMAPLoss, NCELoss

    problem = ims.KSubset(6, 2)
    states = ksubset_states(6, 2)
    rng = np.random.default_rng(1)
    c_hat = rng.normal(size=(5, 6))
    w = states[:2][[0, 1, 0, 1, 0]]
    never = NCELoss(problem, ims.SolutionPool(states[:2], solve_ratio=0.0))
    never(torch.tensor(c_hat), torch.tensor(w))
    assert len(never.pool) == 2
    always = NCELoss(problem, ims.SolutionPool(states[:2], solve_ratio=1.0))
    value = always(torch.tensor(c_hat), torch.tensor(w))
    solutions = MAPOracle(problem)(c_hat)
    expected = ims.SolutionPool(np.concatenate([states[:2], solutions]))
    np.testing.assert_array_equal(always.pool.states, expected.states)
    # the call uses the grown pool (PyEPO's order: grow, then the loss)
    np.testing.assert_allclose(value.item(), pool_loss("nce", c_hat, w, expected.states, sign=1).value.mean())
    # CMAP on a pool with the predictions' own optima: the best pool state is the MAP state
    cmap = CMAPLoss(problem, states[:2].copy())
    t = torch.tensor(c_hat, requires_grad=True)
    cmap(t, torch.tensor(w)).backward()
    np.testing.assert_allclose(t.grad.numpy(), (solutions - w) / 5)


def test_growth_under_the_failure_policy():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import NCELoss

    theta = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 200.0, 0.0], [3.0, 0.0, 1.0, 0.0]])
    w = np.eye(4)[[1, 0, 2]]
    with pytest.raises(SolverError, match=r"^instance 1 \("):
        NCELoss(FlakyArgmax(4), np.eye(4)[[3]], backend="numpy")(torch.tensor(theta), torch.tensor(w))
    loss_fn = NCELoss(FlakyArgmax(4), np.eye(4)[[3]], backend="numpy", on_failure="skip", reduction="none")
    values = loss_fn(torch.tensor(theta), torch.tensor(w))
    np.testing.assert_array_equal(loss_fn.pool.states, np.eye(4)[[3, 1, 0]])  # the failed placeholder stays out
    assert loss_fn.failures == {"infeasible": 1}
    np.testing.assert_allclose(values.numpy(), pool_loss("nce", theta, w, np.eye(4)[[3, 1, 0]], sign=1).value)


def test_per_instance_data_are_refused():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import NCELoss

    loss_fn = NCELoss(ims.KSubset(4, 2), ksubset_states(4, 2))
    with pytest.raises(InvalidInputError, match="per-instance data"):
        loss_fn._loss(torch.zeros(2, 4), {"w_true": torch.zeros(2, 4)}, {"k": np.array([1, 2])})


@pytest.mark.parametrize("kind", list(KINDS))
def test_frameworks_agree(kind):
    _frameworks()
    import jax
    import tensorflow as tf
    import torch

    from imle_solvers import jax as jax_binding
    from imle_solvers import tensorflow as keras_binding
    from imle_solvers import torch as torch_binding

    problem = small_dag()
    states = dag_paths(problem)
    c_hat, target, pool = (x.astype(np.float32) for x in _inputs(kind, states, True, seed=2))
    expected = pool_loss(kind, c_hat.astype(np.float64), target, pool, sign=-1)
    fixed = {"pool": ims.SolutionPool(pool, solve_ratio=0.0), "reduction": "sum"}
    t = torch.tensor(c_hat, requires_grad=True)
    value = getattr(torch_binding, KINDS[kind])(problem, **fixed)(t, torch.tensor(target))
    value.backward()
    j_loss = getattr(jax_binding, KINDS[kind])(problem, **fixed)
    j_value, j_grad = jax.value_and_grad(lambda x: j_loss(x, target))(c_hat)
    jitted = jax.jit(jax.value_and_grad(lambda x, p: j_loss(x, target, pool=p)))(c_hat, pool)
    k_loss = getattr(keras_binding, KINDS[kind])(problem, **fixed)
    v = tf.constant(c_hat)
    with tf.GradientTape() as tape:
        tape.watch(v)
        k_value = k_loss(target, v)
    k_grad = tape.gradient(k_value, v)
    for got_value, got_grad in ((value.item(), t.grad.numpy()), (j_value, j_grad), jitted, (k_value, k_grad)):
        np.testing.assert_allclose(float(got_value), expected.value.sum(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(got_grad), expected.gradient, rtol=1e-5, atol=1e-5)


def test_a_growing_pool_refuses_a_trace():
    pytest.importorskip("jax")
    import jax

    from imle_solvers.jax import NCELoss

    problem = ims.KSubset(5, 2)
    loss_fn = NCELoss(problem, ksubset_states(5, 2)[:2])
    c_hat = np.random.default_rng(3).normal(size=(3, 5)).astype(np.float32)
    w = ksubset_states(5, 2)[[0, 1, 0]].astype(np.float32)
    with pytest.raises(InvalidInputError, match="cannot grow inside a trace"):
        jax.jit(loss_fn)(c_hat, w)
    assert loss_fn.grow(c_hat) >= 1 and len(loss_fn.pool) >= 3
    np.testing.assert_allclose(jax.jit(loss_fn)(c_hat, w, pool=loss_fn.pool.states),
                               pool_loss("nce", c_hat, w, loss_fn.pool.states, sign=1).value.mean(), rtol=1e-6)


def test_keras_fit_eagerly_grows_the_pool_and_config_round_trips():
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers.tensorflow import NCELoss

    problem = ims.KSubset(6, 2)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = MAPOracle(problem)(x @ rng.normal(size=(4, 6)).astype("float32")).astype("float32")
    loss = NCELoss(problem, ims.SolutionPool(y, solve_ratio=1.0, seed=0))
    start = len(loss.pool)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss, run_eagerly=True)
    before = float(model.evaluate(x, y, verbose=0))
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert float(model.evaluate(x, y, verbose=0)) < before
    assert len(loss.pool) >= start
    restored = NCELoss.from_config(loss.get_config())
    np.testing.assert_array_equal(restored.pool.states, loss.pool.states)
    assert restored.get_config() == loss.get_config()
