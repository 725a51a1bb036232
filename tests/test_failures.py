"""The failure policy (``on_failure``) and the checks of solvers' results: in the oracle,
in process and on the pool, and in the layers of every framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.failures import Status

from flaky import FlakyArgmax, solve_flaky  # tests/flaky.py


def one_hot(index: int, n: int = 4) -> np.ndarray:
    return np.eye(n)[index]


SCORES = np.array([[0.0, 3.0, 1.0, 2.0], [500.0, 0.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 900.0]])


@pytest.mark.parametrize("backend", ["numpy", "numpy-batched"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_raise_names_the_first_failing_instance(backend, n_jobs):
    with ims.MAPOracle(FlakyArgmax(4), backend=backend, n_jobs=n_jobs, chunk_size=1) as oracle:
        with pytest.raises(SolverError, match=r"instance 1 \(test-flaky-argmax, backend .*proved infeasible") as caught:
            oracle(SCORES)
    assert caught.value.index == 1 and caught.value.status == "infeasible"


@pytest.mark.parametrize("backend", ["numpy", "numpy-batched"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_skip_gives_placeholders_and_statuses_and_solves_the_rest(backend, n_jobs):
    with ims.MAPOracle(FlakyArgmax(4), backend=backend, n_jobs=n_jobs, chunk_size=2, on_failure="skip") as oracle:
        z, status = oracle.solve(SCORES)
        np.testing.assert_array_equal(oracle(SCORES), z)
    np.testing.assert_array_equal(z, [one_hot(1), np.zeros(4), one_hot(2), np.zeros(4)])
    np.testing.assert_array_equal(status, [Status.OK, Status.FAILED, Status.OK, Status.FAILED])
    assert status.dtype == np.int8
    assert oracle.failures == {"infeasible": 4}  # two calls, two failures each
    assert [e.index for e in oracle.last_failures] == [1, 3]


def test_incumbent_keeps_the_solvers_best_state_flagged_and_skip_does_not():
    options = dict(backend="numpy", time_limit=1.0)
    incumbent_z, incumbent_status = ims.MAPOracle(FlakyArgmax(4), on_failure="incumbent", **options).solve(SCORES)
    np.testing.assert_array_equal(incumbent_z[1], np.roll(one_hot(0), 1))
    np.testing.assert_array_equal(incumbent_status, [Status.OK, Status.INCUMBENT, Status.OK, Status.INCUMBENT])
    skipped = ims.MAPOracle(FlakyArgmax(4), on_failure="skip", **options)
    skip_z, skip_status = skipped.solve(SCORES)
    np.testing.assert_array_equal(skip_z[1], np.zeros(4))
    assert skip_status[1] == Status.FAILED and skipped.failures == {"time-limit": 2}


def test_incumbent_without_a_solution_is_a_failure():
    oracle = ims.MAPOracle(FlakyArgmax(4), backend="numpy", on_failure="incumbent")  # no time limit: "infeasible"
    _, status = oracle.solve(SCORES)
    np.testing.assert_array_equal(status, [Status.OK, Status.FAILED, Status.OK, Status.FAILED])


@pytest.mark.parametrize("backend", ["ortools", "scip"])
def test_a_real_ilp_time_limit_gives_a_feasible_incumbent(backend):
    """A knapsack too big to prove optimal in half a second: each instance is solved, or
    flagged with a feasible incumbent; never a silent wrong state."""
    pytest.importorskip({"ortools": "ortools", "scip": "pyscipopt"}[backend])
    rng = np.random.default_rng(0)
    n = 300
    weights = rng.integers(1000, 100000, size=(8, n))
    builder = ims.ILPBuilder("knapsack")
    builder.add_set("items", n)
    builder.add_variable("x", over=["items"])
    for row in range(8):
        builder.add_constraint({"x": weights[row]}, upper=weights[row].sum() / 3, name=f"capacity{row}")
    builder.set_objective("max", theta="x")
    problem = builder.build()
    theta = rng.uniform(1, 100, size=(3, n))
    oracle = ims.MAPOracle(problem, backend=backend, time_limit=0.5, on_failure="incumbent")
    z, status = oracle.solve(theta)
    assert set(status.tolist()) <= {Status.OK, Status.INCUMBENT}
    for row in range(3):
        assert (weights @ z[row] <= weights.sum(axis=1) / 3 + 1e-6).all(), "the incumbent is feasible"
    assert oracle.failures.get("incumbent", 0) == int((status == Status.INCUMBENT).sum())


@pytest.mark.parametrize(
    "returned, message",
    [
        (lambda theta: theta[:3], r"returned shape \(3,\), expected \(5,\)"),
        (lambda theta: np.eye(5)[[4]], r"returned shape \(1, 5\), expected \(5,\)"),  # as many entries: still wrong
        (lambda theta: None, "returned None"),
        (lambda theta: np.full(5, np.nan), r"non-finite value \(nan\)"),
        (lambda theta: np.full(5, 0.5), r"the value 0.5 in a state of zeros and ones"),
        (lambda theta: np.array(["a"] * 5), "not numbers"),
    ],
    ids=["shape", "reshapable", "none", "nan", "not-binary", "strings"],
)
def test_bad_solver_output_is_a_solver_error_naming_instance_and_backend(returned, message):
    kind = "test-bad-output"

    @dataclass(frozen=True)
    class BadOutput(FlakyArgmax):
        kind: ClassVar[str] = "test-bad-output"

    ims.register_solver(kind, "liar", replace=True)(lambda theta, problem: returned(theta) if theta[0] > 0 else
                                                    solve_flaky(theta, problem))
    theta = np.array([[-1.0, 0, 0, 0, 2], [1.0, 0, 0, 0, 0]])
    with pytest.raises(SolverError, match=r"instance 1 \(test-bad-output, backend 'liar'\): the solver " ".*" + message):
        ims.MAPOracle(BadOutput(5))(theta)
    z, status = ims.MAPOracle(BadOutput(5), on_failure="skip").solve(theta)
    np.testing.assert_array_equal(status, [Status.OK, Status.FAILED])
    np.testing.assert_array_equal(z, [one_hot(4, 5), np.zeros(5)])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ims.MAPOracle(ims.KSubset(4, 2), n_jobs=0), "n_jobs must be a non-zero int"),
        (lambda: ims.MAPOracle(ims.KSubset(4, 2), n_jobs=1.5), "n_jobs must be a non-zero int"),
        (lambda: ims.MAPOracle(ims.KSubset(4, 2), on_failure="ignore"), "on_failure must be one of"),
        (lambda: ims.MAPOracle("k-subset"), "problem must be an imle_solvers Problem"),
        (lambda: ims.MAPOracle(ims.KSubset(4, 2), time_limit="10"), "time_limit must be positive"),
        (lambda: ims.IMLE("gumbel"), "noise must be a noise distribution"),
        (lambda: ims.IMLE(ims.Gumbel(), lambda_=float("nan")), "lambda_ must be a finite number > 0"),
        (lambda: ims.IMLE(ims.Gumbel(), noise_temperature=-1.0), "noise_temperature must be a finite number >= 0"),
        (lambda: ims.IMLE(ims.Gumbel(), samples=2.5), "samples must be a positive integer"),
        (lambda: ims.AIMLE(ims.Gumbel(), decay=1.0), "decay must be in"),
        (lambda: ims.STE("gumbel"), "noise must be a noise distribution"),
    ],
)
def test_bad_arguments_are_refused_at_construction(build, message):
    with pytest.raises(InvalidInputError, match=message):
        build()


# --- the layers -------------------------------------------------------------------------

ESTIMATORS = {"imle": ims.IMLE(ims.Gumbel(), lambda_=10.0), "aimle": ims.AIMLE(ims.Gumbel()), "ste": ims.STE()}
THETA = np.array([[0.0, 3.0, 1.0, 2.0], [500.0, 0.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0], [0.0, 9.0, 0.0, 0.0]])
# instance 3 is fine forward (item 1), but IMLE's backward target theta - 10 * (-20) e_2 = 200 e_2 fails
UPSTREAM = np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, -1.0, 0.0], [0.0, 0.0, -20.0, 0.0]])


def torch_step(estimator, on_failure, theta=THETA, upstream=UPSTREAM):
    import torch

    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(FlakyArgmax(4), estimator, backend="numpy", seed=0, noise_source="numpy", on_failure=on_failure)
    t = torch.tensor(theta, requires_grad=True)
    out = layer(t)
    z, status = out if on_failure != "raise" else (out, None)
    z.backward(torch.tensor(upstream))
    return z.detach().numpy(), None if status is None else status.numpy(), t.grad.numpy(), layer.failures


def jax_step(estimator, on_failure, theta=THETA):
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import imle, numpy_seed

    key = jax.random.key(0)
    f = imle(FlakyArgmax(4), estimator, backend="numpy", noise_source="numpy", on_failure=on_failure)
    state = f.initial_state()
    args = () if state is None else (state,)

    def loss(t):
        z, status = f(t, key, *args)
        return jnp.sum(z * UPSTREAM), (z, status)

    grad, (z, status) = jax.grad(loss, has_aux=True)(jnp.asarray(theta))
    return np.asarray(z), np.asarray(status), np.asarray(grad), numpy_seed(key), f.failures


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_torch_layer_skips_failed_instances_and_zeroes_their_gradients(name):
    pytest.importorskip("torch")
    estimator = ESTIMATORS[name]
    z, status, grad, failures = torch_step(estimator, "skip")
    np.testing.assert_array_equal(status, [Status.OK, Status.FAILED, Status.OK, Status.OK])
    assert not z[1].any() and not grad[1].any(), "a failed instance: placeholder state, zero gradient"
    # instance 1 fails forward and in every backward solve; IMLE's target for instance 3
    # (lambda 10) fails too, AIMLE's (lambda = |theta| / |g| = 0.45) does not; STE solves nothing
    assert failures == {"infeasible": {"imle": 3, "aimle": 2, "ste": 1}[name]}
    if name == "imle":
        assert grad_of_undisturbed_row_3(estimator).any() and not grad[3].any(), "failed backward: zero gradient"
    # the healthy instances get what they get in a batch (same size, same noise) without failures
    benign_theta, benign_upstream = THETA.copy(), UPSTREAM.copy()
    benign_theta[1], benign_upstream[3] = [0.0, 0.0, 0.0, 1.0], 0.0
    z_ok, _, grad_ok, _ = torch_step(estimator, "raise", benign_theta, benign_upstream)
    np.testing.assert_array_equal(z[[0, 2]], z_ok[[0, 2]])
    np.testing.assert_array_equal(grad[[0, 2]], grad_ok[[0, 2]])


def grad_of_undisturbed_row_3(estimator) -> np.ndarray:
    """Row 3's gradient where its backward target does not fail (a higher threshold)."""
    import torch

    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(FlakyArgmax(4, fail_above=1e6), estimator, backend="numpy", seed=0, noise_source="numpy")
    t = torch.tensor(THETA, requires_grad=True)
    layer(t).backward(torch.tensor(UPSTREAM))
    return t.grad.numpy()[3]


def test_torch_layer_under_raise_fails_naming_the_instance():
    pytest.importorskip("torch")
    with pytest.raises(SolverError, match="instance 1 "):
        torch_step(ESTIMATORS["imle"], "raise")


SAMPLED = ims.IMLE(ims.Gumbel(), lambda_=10.0, samples=2, marginal_samples=3)  # 6 rows per instance


@pytest.mark.parametrize("framework", ["torch", "jax", "jax-jit", "keras"])
def test_under_raise_several_samples_name_the_instance_not_the_row(framework):
    # instance 1's rows are 6..11 of each solve: the error must say instance 1, not row 6
    pytest.importorskip("torch" if framework == "torch" else "jax" if framework.startswith("jax") else "tensorflow")
    if framework == "torch":
        import torch

        from imle_solvers.torch import IMLELayer

        call = lambda: IMLELayer(FlakyArgmax(4), SAMPLED, backend="numpy", seed=0)(torch.tensor(THETA))
    elif framework.startswith("jax"):
        import jax

        from imle_solvers.jax import imle

        f = imle(FlakyArgmax(4), SAMPLED, backend="numpy")
        g = jax.jit(f) if framework == "jax-jit" else f
        call = lambda: jax.block_until_ready(g(THETA, jax.random.key(0)))
    else:
        from imle_solvers.tensorflow import IMLELayer

        call = lambda: IMLELayer(FlakyArgmax(4), SAMPLED, backend="numpy", seed=0)(THETA, training=True)
    # under jit, JAX wraps the host's error in its own (JaxRuntimeError) and keeps the message
    expected = Exception if framework == "jax-jit" else SolverError
    with pytest.raises(expected, match=r"instance 1, solve \d of 6") as caught:
        call()
    assert "instance 6" not in str(caught.value)
    assert framework == "jax-jit" or caught.value.index == 1


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_framework_applies_the_policy_the_same_way(name):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")
    estimator = ESTIMATORS[name]
    jz, jstatus, jgrad, seed, failures = jax_step(estimator, "skip")
    assert failures["infeasible"] >= 1
    # the torch and Keras layers with the numpy seed JAX used draw the same noise
    from imle_solvers.torch import IMLELayer as TorchLayer

    import torch

    layer = TorchLayer(FlakyArgmax(4), estimator, backend="numpy", seed=seed, noise_source="numpy", on_failure="skip")
    t = torch.tensor(THETA, requires_grad=True)
    tz, tstatus = layer(t)
    tz.backward(torch.tensor(UPSTREAM))
    np.testing.assert_array_equal(jstatus, tstatus.numpy())
    np.testing.assert_array_equal(jz, tz.detach().numpy())
    np.testing.assert_allclose(jgrad, t.grad.numpy(), rtol=1e-6)
    from imle_solvers.tensorflow import IMLELayer as KerasLayer

    import tensorflow as tf

    keras_layer = KerasLayer(FlakyArgmax(4), estimator, backend="numpy", seed=seed, noise_source="numpy",
                             on_failure="skip")
    v = tf.Variable(THETA)
    with tf.GradientTape() as tape:
        kz, kstatus = keras_layer(v)
        loss = tf.reduce_sum(kz * UPSTREAM)
    np.testing.assert_array_equal(kstatus.numpy(), jstatus)
    np.testing.assert_array_equal(kz.numpy(), jz)
    np.testing.assert_allclose(tape.gradient(loss, v).numpy(), jgrad, rtol=1e-6)
    assert not jgrad[1].any()


def test_eval_mode_returns_map_states_and_statuses():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(FlakyArgmax(4), ims.IMLE(), backend="numpy", on_failure="skip").eval()
    z, status = layer(torch.tensor(THETA))
    np.testing.assert_array_equal(status.numpy(), [Status.OK, Status.FAILED, Status.OK, Status.OK])
    np.testing.assert_array_equal(z.numpy(), [one_hot(1), np.zeros(4), one_hot(2), one_hot(1)])


def test_a_jitted_jax_step_carries_statuses_from_the_host():
    jax = pytest.importorskip("jax")
    from imle_solvers.jax import imle

    f = imle(FlakyArgmax(4), ims.IMLE(), backend="numpy", on_failure="skip")
    z, status = jax.jit(f)(THETA, jax.random.key(0))
    np.testing.assert_array_equal(status, [Status.OK, Status.FAILED, Status.OK, Status.OK])
    z_map, status_map = jax.jit(f.map)(THETA)
    np.testing.assert_array_equal(z_map, z)
    np.testing.assert_array_equal(status_map, status)


def test_a_keras_model_trains_through_failures_and_counts_them():
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(FlakyArgmax(4), ims.IMLE(), backend="numpy", seed=1, on_failure="skip")
    inputs = keras.Input((4,))
    z, status = layer(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, z)
    model.compile(optimizer="sgd", loss="mse")
    x = np.array(THETA[:, :], dtype="float32")
    model.fit(x, np.zeros((4, 4), "float32"), epochs=1, verbose=0)
    assert set(layer.failures) <= {"infeasible"}
