"""The JAX binding: jit and vmap agree with eager calls, keys drive the noise, AIMLE's
state comes back functionally, and a small L2X model trains."""

from __future__ import annotations


import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import imle_solvers as ims  # noqa: E402
from imle_solvers.step import HostSolve  # noqa: E402
from batches import scores_and_upstream  # noqa: E402
from example_scripts import load_example  # noqa: E402
from imle_solvers.jax import apply_state_update, imle, numpy_seed  # noqa: E402

KSUBSET = ims.KSubset(n=10, k=3)
GRID = ims.GridShortestPath(4, 4)


def batch(problem, b=3, seed=0):
    return tuple(jnp.asarray(a) for a in scores_and_upstream(problem, b, seed))


@pytest.mark.parametrize("problem", [KSUBSET, GRID], ids=["k-subset", "grid"])
@pytest.mark.parametrize("estimator", [ims.IMLE(noise=ims.Gumbel(), lambda_=10.0), ims.STE(noise=ims.Gumbel())])
def test_jit_matches_eager(problem, estimator):
    f = imle(problem, estimator)
    theta, w = batch(problem)
    key = jax.random.key(1)

    def loss(t):
        return jnp.sum(f(t, key) * w)

    np.testing.assert_array_equal(jax.jit(f)(theta, key), f(theta, key))
    np.testing.assert_array_equal(jax.jit(jax.grad(loss))(theta), jax.grad(loss)(theta))
    assert np.abs(np.asarray(jax.grad(loss)(theta))).sum() > 0


def test_vmap_matches_eager_calls_with_one_host_solve_per_pass(monkeypatch):
    f = imle(GRID, ims.IMLE(noise=ims.Gumbel(), lambda_=10.0), backend="scipy")  # a host solver: callbacks
    thetas, ws = zip(*(batch(GRID, seed=s) for s in range(4)))
    thetas, ws = jnp.stack(thetas), jnp.stack(ws)
    keys = jax.random.split(jax.random.key(2), 4)

    def loss(t, w, key):
        return jnp.sum(f(t, key) * w)

    calls = []
    solve_on_host = HostSolve.__call__

    def counting(self, theta, *values):
        calls.append(np.shape(theta))
        return solve_on_host(self, theta, *values)

    z_mapped = jax.vmap(f)(thetas, keys)
    monkeypatch.setattr(HostSolve, "__call__", counting)
    grads = jax.jit(jax.vmap(jax.grad(loss)))(thetas, ws, keys)
    monkeypatch.undo()
    for i in range(4):
        np.testing.assert_array_equal(z_mapped[i], f(thetas[i], keys[i]))
        np.testing.assert_array_equal(grads[i], jax.grad(loss)(thetas[i], ws[i], keys[i]))
    assert calls == [(4, 3, *GRID.shape)] * 2, "forward and backward each solve all mapped calls at once"


def test_the_key_decides_the_noise():
    f = imle(KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    zeros = jnp.zeros((8, KSUBSET.n))
    a, b = jax.random.key(0), jax.random.key(1)
    np.testing.assert_array_equal(f(zeros, a), f(zeros, a))
    assert not np.array_equal(f(zeros, a), f(zeros, b))
    assert numpy_seed(a) != numpy_seed(b)


def test_map_is_the_noiseless_state_without_gradient():
    f = imle(KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    theta, _ = batch(KSUBSET)
    expected = ims.MAPOracle(KSUBSET)(np.asarray(theta))
    np.testing.assert_array_equal(f.map(theta), expected)
    np.testing.assert_array_equal(jax.jit(jax.vmap(f.map))(jnp.stack([theta, theta])), np.stack([expected] * 2))
    assert not np.asarray(jax.grad(lambda t: jnp.sum(f.map(t) * t))(theta) - f.map(theta)).any()


def test_aimle_state_is_passed_in_and_returned():
    estimator = ims.AIMLE(noise=ims.Gumbel(), initial_beta=2.0, beta_step=0.1)
    f = imle(KSUBSET, estimator, noise_source="numpy")
    theta, w = batch(KSUBSET)
    key = jax.random.key(0)
    state = f.initial_state()

    def loss(t, s):
        return jnp.sum(f(t, key, s) * w)

    g_theta, g_state = jax.jit(jax.grad(loss, argnums=(0, 1)))(theta, state)
    new = apply_state_update(state, g_state)
    # the numpy estimator itself, with the noise of numpy_seed(key)
    _, residuals = estimator.sample(np.asarray(theta), f.oracle, sign=1, rng=np.random.default_rng(numpy_seed(key)))
    grad, expected_state = estimator.gradient(residuals, np.asarray(w), f.oracle, estimator.initial_state())
    np.testing.assert_allclose(g_theta, grad, rtol=1e-6, atol=1e-6)
    assert isinstance(new, ims.AdaptiveState), "the state keeps its one type through grad and updates"
    np.testing.assert_allclose(float(new.beta), expected_state.beta, rtol=1e-6)
    assert float(new.steps) == 1 and float(state.steps) == 0
    (value, returned), g = jax.jit(ims.jax.value_and_grad(loss, argnums=0, state_argnum=1))(theta, state)
    assert isinstance(returned, ims.AdaptiveState) and np.allclose(float(value), float(loss(theta, state)))
    np.testing.assert_array_equal(g, g_theta)
    for field in returned._fields:  # the state returned as a value is the one applied by hand
        np.testing.assert_array_equal(getattr(returned, field), getattr(new, field))
    unused = jax.grad(lambda t, s: (f(t, key, s), jnp.sum(t))[1], argnums=1)(theta, state)
    assert not any(float(v) for v in unused), "no backward pass leaves the state as it is"
    with pytest.raises(ims.InvalidInputError, match="state"):
        f(theta, key)


def test_wrong_shape_is_refused_before_tracing():
    f = imle(KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    with pytest.raises(ims.InvalidInputError, match=r"expected shape \(B, 10\), got \(3, 9\)"):
        f(jnp.zeros((3, 9)), jax.random.key(0))


def test_l2x_training_finds_the_relevant_features():
    result = load_example("l2x_jax").train(steps=200)
    assert result["loss_after"] < 0.2 * result["loss_before"]
    assert result["precision_after"] >= 0.9 > 0.5 > result["precision_before"]


# --- errors: ours, once -------------------------------------------------------------

NEGATIVE_RAISES = ims.GridShortestPath(3, 3, negative_costs="raise")


def nan_theta():
    theta = np.zeros((3, KSUBSET.n), np.float32)
    theta[2, 4] = np.nan
    return jnp.asarray(theta)


def negative_theta():
    theta = np.ones((3, 3, 3), np.float32)
    theta[1, 0, 2] = -1.0
    return jnp.asarray(theta)


def test_eager_nan_theta_raises_our_error_naming_the_index(caplog, capfd):
    f = imle(KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    key = jax.random.key(0)
    with pytest.raises(ims.InvalidInputError, match=r"^theta: batch index 2 holds a non-finite value \(nan\)$"):
        f(nan_theta(), key)
    with pytest.raises(ims.InvalidInputError, match=r"^theta: batch index 2 holds"):
        f.map(nan_theta())
    # under an eager grad, theta is traced but its values are known: read as eagerly
    with pytest.raises(ims.InvalidInputError, match=r"^theta: batch index 2 holds"):
        jax.grad(lambda t: jnp.sum(f(t, key)))(nan_theta())
    out, err = capfd.readouterr()
    assert "Traceback" not in caplog.text + out + err


def test_eager_host_solver_failure_raises_solver_error_with_its_index(caplog, capfd):
    f = imle(NEGATIVE_RAISES, ims.IMLE(noise=ims.Gumbel()), backend="scipy")
    for call in (lambda t: f(t, jax.random.key(0)), f.map, jax.grad(lambda t: jnp.sum(f(t, jax.random.key(0))))):
        with pytest.raises(ims.SolverError, match=r"^instance 1 \(grid-shortest-path, backend 'scipy'\)") as caught:
            call(negative_theta())
        assert caught.value.index == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in caplog.text + out + err, "JAX logged the error besides raising it"


def test_a_backward_failure_under_grad_arrives_wrapped_with_our_message(caplog, capfd):
    """The backward pass runs inside jax.grad, where the binding cannot catch: as under jit."""
    f = imle(NEGATIVE_RAISES, ims.IMLE(noise=None, lambda_=100.0), backend="scipy")
    theta, w = jnp.ones((2, 3, 3)), -jnp.ones((2, 3, 3))  # the target theta + 100 * dL/dz is negative
    with pytest.raises(Exception, match=r"SolverError: instance 0 \(grid-shortest-path") as caught:
        jax.grad(lambda t: jnp.sum(f(t, jax.random.key(0)) * w))(theta)
    assert not isinstance(caught.value, ims.ImleSolversError)
    out, err = capfd.readouterr()
    assert "SolverError" not in caplog.text + out + err


def test_under_an_outer_jit_the_error_holds_our_message_and_is_logged_nowhere(caplog, capfd):
    f, theta = imle(NEGATIVE_RAISES, ims.IMLE(noise=ims.Gumbel()), backend="scipy"), negative_theta()
    ours = "SolverError: instance 1 (grid-shortest-path"
    with pytest.raises(Exception) as caught:
        jax.block_until_ready(jax.jit(f)(theta, jax.random.key(0)))
    message = str(caught.value)
    assert message.count(ours) == 1  # after XLA's "INTERNAL: CpuCallback error ..." and a traceback
    # the traceback is in the message, once; JAX's own log of it is dropped
    out, err = capfd.readouterr()
    assert ours.split(":")[0] not in caplog.text + out + err


@pytest.mark.parametrize("closed_over", [False, True])
def test_under_an_outer_jit_bad_rows_are_nan_on_the_device(closed_over):
    """Inside a trace the check leaves nothing to the host (a default step exports): the rows
    of a non-finite theta are NaN, the others as without the check; a theta closed over as a
    constant inside jit is checked the same way."""
    f, key = imle(KSUBSET, ims.IMLE(noise=ims.Gumbel())), jax.random.key(0)
    theta = nan_theta()
    z = jax.jit(lambda: f(theta, key))() if closed_over else jax.jit(f)(theta, key)
    assert np.isnan(np.asarray(z[2])).all() and not np.isnan(np.asarray(z[:2])).any()
    expected = f(theta[:2], key)[:2] if closed_over else imle(KSUBSET, ims.IMLE(noise=ims.Gumbel()),
                                                                   validate_args=False)(theta, key)[:2]
    np.testing.assert_array_equal(z[:2], expected)
    grads = jax.jit(jax.grad(lambda t: jnp.nansum(f(t, key) * jnp.arange(KSUBSET.n))))(theta)
    assert np.isnan(np.asarray(grads[2])).all() and np.isfinite(np.asarray(grads[:2])).all()


def test_a_default_step_exports_without_host_callbacks():
    f = imle(KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    exported = jax.export.export(jax.jit(f))(jnp.zeros((3, KSUBSET.n)), jax.random.key(0))
    theta = jnp.asarray(np.random.default_rng(0).normal(size=(3, KSUBSET.n)), jnp.float32)
    np.testing.assert_array_equal(exported.call(theta, jax.random.key(0)), f(theta, jax.random.key(0)))


def test_an_aimle_state_shared_by_mapped_calls_takes_one_step_of_their_mean_update():
    """Under jax.vmap with the state not mapped, the state moves once, by the mean of the
    mapped calls' updates (as one call on all their instances would average them); a mapped
    state moves per call."""
    f = imle(KSUBSET, ims.AIMLE(noise=ims.Gumbel(), initial_beta=2.0, beta_step=0.1))
    theta, w = batch(KSUBSET)
    keys = jax.random.split(jax.random.key(3), 5)
    state = f.initial_state()
    one_call = ims.jax.value_and_grad(lambda t, s, k: jnp.sum(f(t, k, s) * w), argnums=0, state_argnum=1)
    singles = [one_call(theta, state, k)[0][1] for k in keys]

    def mapped(t, s, ks):
        return jnp.sum(jax.vmap(lambda k: f(t, k, s))(ks) * w)

    (_, shared), _ = jax.jit(ims.jax.value_and_grad(mapped, argnums=0, state_argnum=1))(theta, state, keys)
    for field in ("beta", "nnz_average"):
        expected = np.mean([float(getattr(s, field)) for s in singles])
        np.testing.assert_allclose(float(getattr(shared, field)), expected, rtol=1e-5)
    assert float(shared.steps) == 1

    def per_call(t, ss, ks):
        return jnp.sum(jax.vmap(lambda k, s: f(t, k, s))(ks, ss) * w)

    states = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(keys),)), state)
    (_, each), _ = ims.jax.value_and_grad(per_call, argnums=0, state_argnum=1)(theta, states, keys)
    np.testing.assert_allclose(np.asarray(each.nnz_average), [float(s.nnz_average) for s in singles], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(each.steps), 1)


def test_grad_of_a_numpy_argument_equals_that_of_a_jax_array():
    """``jax.grad`` at a numpy array: the primal the call sees is that array, which the
    call plans on as JAX's (it once went down numpy's path and failed in the backward pass)."""
    import jax.numpy as jnp

    problem = ims.KSubset(6, 2)
    theta = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    weights = np.arange(6, dtype=np.float32)
    key = jax.random.key(0)
    layer = imle(problem, ims.IMLE(noise=ims.Gumbel(), lambda_=2.0))
    loss = ims.jax.FenchelYoungLoss(problem, ims.Gumbel())
    push = ims.jax.Pushforward(problem, lambda y: y, sigma=0.5, samples=2)
    frank_wolfe = ims.jax.RegularizedFrankWolfe(problem, lambd=1.0)
    target = np.eye(6, dtype=np.float32)[[0, 1, 2]] + np.eye(6, dtype=np.float32)[[3, 4, 5]]
    objectives = {
        "layer": lambda t: (layer(t, key) * weights).sum(),
        "loss": lambda t: loss(t, target, key),
        "pushforward": lambda t: (push(t, key) * weights).sum(),
        "regularized": lambda t: (frank_wolfe(t) * weights).sum(),
    }
    for name, objective in objectives.items():
        from_numpy, from_jax = jax.grad(objective)(theta), jax.grad(objective)(jnp.asarray(theta))
        np.testing.assert_array_equal(np.asarray(from_numpy), np.asarray(from_jax), err_msg=name)
        assert np.abs(np.asarray(from_jax)).sum() > 0, name
