"""Per-instance data on their way: checked, carried to the solver with their own row,
through chunks on the pool, into every solve of every estimator, in every binding."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import _binding
from imle_solvers.errors import InvalidInputError, MissingDataError, shape_text
from imle_solvers.instances import (
    LAYER_CALL, ORACLE_CALL, broadcast_data, call_with, check_data, missing_data, per_instance,
)

from instance_problems import PickOne, PickOneFixed, pick_one
from test_frameworks import FRAMEWORKS, RUNNERS

N = 6


def batch(b: int = 8, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(b, N))
    allowed = rng.random((b, N)) < 0.5
    allowed[np.arange(b), rng.integers(0, N, b)] = True  # at least one item each
    return theta, {"allowed": allowed, "bonus": rng.normal(size=(b, N))}


def one_by_one(theta: np.ndarray, data: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([pick_one(row, **{k: v[i] for k, v in data.items()}) for i, row in enumerate(theta)])


@pytest.mark.parametrize("backend", ["python", "batched"])
@pytest.mark.parametrize("fields", [("allowed",), ("bonus",), ("allowed", "bonus")])
def test_each_row_is_solved_with_its_own_data(backend, fields):
    theta, data = batch()
    data = {name: data[name] for name in fields}
    z = ims.MAPOracle(PickOne(N), backend=backend)(theta, **data)
    np.testing.assert_array_equal(z, one_by_one(theta, data))
    assert not np.array_equal(z, one_by_one(theta, {})), "the data must change something here"


def test_a_batched_solver_asked_row_by_row_gets_each_rows_data():
    """Under a skip policy a failing batched solve is asked again one row at a time."""
    theta, data = batch()
    oracle = ims.MAPOracle(PickOne(N), backend="batched", on_failure="skip")
    theta[3] = 0.0  # still finite: the check passes; the result is per row either way
    z, status = oracle.solve(theta, **data)
    np.testing.assert_array_equal(z, one_by_one(theta, data))
    assert (status == 0).all()


def test_the_pool_carries_each_chunks_data():
    theta, data = batch(23)
    with ims.MAPOracle(PickOne(N), backend="python", n_jobs=2, chunk_size=4) as oracle:
        z = oracle(theta, **data)
    np.testing.assert_array_equal(z, one_by_one(theta, data))


def test_data_may_be_lists_and_other_frameworks_arrays():
    torch = pytest.importorskip("torch")
    theta, data = batch(3)
    oracle = ims.MAPOracle(PickOne(N), backend="python")
    z = oracle(theta, allowed=data["allowed"].tolist(), bonus=torch.tensor(data["bonus"]))
    np.testing.assert_array_equal(z, one_by_one(theta, data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(mask=d.pop("allowed")), r"takes no per-instance data 'mask'; its fields: allowed, bonus"),
        (lambda d: d.update(allowed=d["allowed"][:5]),
         r"allowed: expected shape \(8, 6\) \(batch axis first\), or \(6,\) for every instance, got \(5, 6\)"),
        (lambda d: d.update(allowed=d["allowed"][:, :3]), r"allowed: expected shape \(8, 6\)"),
        (lambda d: d.update(allowed=d["allowed"].astype(float)), r"allowed: expected bools \(True/False\), got dtype float64"),
        (lambda d: d.update(bonus=d["bonus"].astype(str)), r"bonus: expected real numbers"),
        (lambda d: d["bonus"].__setitem__((5, 2), np.inf), r"bonus: batch index 5 holds a non-finite value \(inf\)"),
        (lambda d: d["allowed"].__setitem__(4, False), r"allowed: batch index 4 allows no item"),
    ],
)
def test_bad_data_is_refused_naming_the_field_and_batch_index(change, message):
    theta, data = batch()
    change(data)
    with pytest.raises(InvalidInputError, match=message):
        ims.MAPOracle(PickOne(N), backend="python")(theta, **data)


def test_a_backend_that_takes_no_data_says_so():
    theta, data = batch()
    with pytest.raises(InvalidInputError, match=r"backend 'no-data' takes no per-instance data, and 'allowed' was given"):
        ims.MAPOracle(PickOne(N), backend="no-data")(theta, allowed=data["allowed"])


def test_a_problem_without_fields_takes_no_data():
    with pytest.raises(InvalidInputError, match=r"takes no per-instance data 'cap'; its fields: none"):
        ims.MAPOracle(PickOneFixed(N), backend="python")(np.ones((2, N)), cap=np.ones(2))


ESTIMATORS = [
    pytest.param(ims.IMLE(noise=ims.Gumbel(), lambda_=3.0, samples=2, marginal_samples=3), id="imle-2x3"),
    pytest.param(ims.AIMLE(noise=ims.Gumbel(), initial_beta=2.0, symmetric=True, samples=2), id="aimle-symmetric"),
    pytest.param(ims.STE(noise=ims.Gumbel(), samples=3), id="ste"),
    pytest.param(ims.IMLE(noise=None, lambda_=5.0), id="imle-no-noise"),
]


def per_instance_reference(estimator, theta, noise, grad_z, data, problem=PickOne(N), backend="python"):
    """z and the gradient of each instance alone, with an oracle that knows only its data."""
    zs, grads = [], []
    for i in range(len(theta)):
        oracle = ims.MAPOracle(problem, backend=backend)
        own = {name: value[i : i + 1] for name, value in data.items()}

        def solve(x, own=own, oracle=oracle):
            return oracle(x, **{name: np.repeat(value, len(x), axis=0) for name, value in own.items()})

        one_noise = None if noise is None else noise[i : i + 1]
        z, residuals = estimator.sample_with(theta[i : i + 1], one_noise, solve, sign=problem.sign)
        grad, _ = estimator.gradient(residuals, grad_z[i : i + 1], solve, estimator.initial_state())
        zs.append(z[0])
        grads.append(grad[0])
    return np.stack(zs), np.stack(grads)


def grad_for(estimator, theta, seed):
    shape = (len(theta), *((estimator.samples,) if estimator.samples > 1 else ()), *theta.shape[1:])
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_solve_of_every_estimator_sees_its_instances_data(estimator):
    theta, data = batch()
    noise = estimator.draw(theta, np.random.default_rng(1))
    grad_z = 20 * grad_for(estimator, theta, 2)
    oracle = ims.MAPOracle(PickOne(N), backend="python")
    solve = per_instance(lambda x, rows: oracle(x, **rows), data, len(theta))
    z, residuals = estimator.sample_with(theta, noise, solve, sign=1)
    grad, _ = estimator.gradient(residuals, grad_z, solve, estimator.initial_state())
    expected_z, expected_grad = per_instance_reference(estimator, theta, noise, grad_z, data)
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-12)
    assert np.abs(grad).sum() > 0


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bindings_give_the_per_instance_result(framework, estimator):
    pytest.importorskip(framework)
    theta, data = batch()
    theta = theta.astype(np.float32)
    data["bonus"] = data["bonus"].astype(np.float32)
    grad_z = (20 * grad_for(estimator, theta, 2)).astype(np.float32)
    seed = 7
    if framework == "jax":
        jax = importlib.import_module("jax")
        from imle_solvers.jax import numpy_seed

        seed = numpy_seed(jax.random.key(3))  # the key the JAX runner uses
    noise = None
    if estimator.noise is not None:
        noise = _binding.numpy_noise(estimator, theta.shape, np.float32, [_binding.generator(seed)])[0]
    result = RUNNERS[framework](PickOne(N), estimator, theta, grad_z, seed, backend="python", data=data)
    expected_z, expected_grad = per_instance_reference(estimator, theta, noise, grad_z, data)
    np.testing.assert_array_equal(result.z, expected_z)
    np.testing.assert_allclose(result.grad, expected_grad, atol=1e-5)


def built_in_cases(rng: np.random.Generator) -> dict[str, tuple]:
    """(problem, backend, data for 6 instances) of each built-in problem, every instance feasible."""
    mask = rng.random((6, 8)) < 0.8
    mask[:, :4] = True  # at least 4 selectable, k <= 3
    closed = np.zeros((6, 5, 5), bool)
    closed[np.arange(6), rng.integers(1, 4, 6), rng.integers(1, 4, 6)] = True  # one inner cell: never cuts off
    allowed = rng.random((6, 4, 4)) < 0.6
    allowed[:, np.arange(4), rng.permutation(4)] = True  # a perfect matching stays possible
    knapsack = ims.ILP.from_dict({
        "params": {"capacity": {"batched": True, "default": 5}},
        "sets": {"items": 6},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "fits", "expr": "sum(i in items) (i + 1) * x[i] <= capacity"}],
        "objective": {"sense": "max", "theta": "x"},
    })
    return {
        "k-subset": (ims.KSubset(8, 3), "auto", {"mask": mask, "k": rng.integers(1, 4, 6)}),
        "grid": (ims.GridShortestPath(5, 5), "scipy", {"source": rng.integers(0, 5, (6, 2)) * [1, 0],
                                                        "target": np.full((6, 2), 4), "closed": closed}),
        "matching": (ims.BipartiteMatching(4, 4), "scipy", {"allowed": allowed}),
        "ilp": (knapsack, "scip", {"capacity": rng.integers(3, 12, 6).astype(float)}),
    }


@pytest.mark.parametrize("case", ["k-subset", "grid", "matching", "ilp"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_built_in_problems_take_their_data_in_every_binding(framework, case):
    pytest.importorskip(framework)
    if case == "ilp":
        pytest.importorskip("pyscipopt")
    rng = np.random.default_rng(5)
    problem, backend, data = built_in_cases(rng)[case]
    estimator = ims.IMLE(noise=ims.Gumbel(), lambda_=5.0, samples=2, marginal_samples=2)
    theta = rng.uniform(0.5, 1.5, size=(6, *problem.shape)).astype(np.float32)  # positive: path costs
    grad_z = (5 * grad_for(estimator, theta, 3)).astype(np.float32)
    seed = 11
    if framework == "jax":
        jax = importlib.import_module("jax")
        from imle_solvers.jax import numpy_seed

        seed = numpy_seed(jax.random.key(3))  # the key the JAX runner uses
    noise = _binding.numpy_noise(estimator, theta.shape, np.float32, [_binding.generator(seed)])[0]
    result = RUNNERS[framework](problem, estimator, theta, grad_z, seed, backend=backend, data=data)
    expected_z, expected_grad = per_instance_reference(estimator, theta, noise, grad_z, data, problem, backend)
    np.testing.assert_array_equal(result.z, expected_z)
    np.testing.assert_allclose(result.grad, expected_grad, atol=1e-5)
    assert np.abs(expected_grad).sum() > 0
    without = ims.MAPOracle(problem, backend=backend)(theta[:, None].repeat(2, 1).reshape(-1, *problem.shape))
    assert not np.array_equal(result.z.reshape(without.shape), without), "the data must change something"


def test_jax_data_under_jit_and_vmap():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import imle

    theta, data = batch()
    f = imle(PickOne(N), ims.IMLE(noise=None), backend="python")
    key = jax.random.key(0)
    eager = f(jnp.asarray(theta), key, **data)
    jitted = jax.jit(lambda t, d: f(t, key, **d))(jnp.asarray(theta), data)
    mapped = jax.vmap(lambda t, d: f(t, key, **d))(jnp.asarray(theta)[None], {k: v[None] for k, v in data.items()})
    expected = one_by_one(theta.astype(np.float32), data)
    for z in (eager, jitted, mapped[0], f.map(jnp.asarray(theta), **data)):
        np.testing.assert_array_equal(np.asarray(z), expected)
    bad = dict(data, allowed=np.zeros_like(data["allowed"]))
    with pytest.raises(Exception, match=r"allowed: batch index 0 allows no item"):
        jax.jit(lambda t, d: f(t, key, **d))(jnp.asarray(theta), bad)
    with pytest.raises(InvalidInputError, match=r"allowed: batch index 0 allows no item"):
        f(jnp.asarray(theta), key, **bad)


def test_tensorflow_data_inside_tf_function_and_a_functional_model():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from imle_solvers.tensorflow import IMLELayer

    theta, data = batch()
    theta = theta.astype(np.float32)
    layer = IMLELayer(PickOne(N), ims.IMLE(noise=None), backend="python")
    expected = one_by_one(theta, data)
    step = tf.function(lambda t, d: layer(t, **d))
    np.testing.assert_array_equal(step(tf.constant(theta), data).numpy(), expected)
    inputs = {
        "theta": keras.Input((N,), name="theta"),
        "allowed": keras.Input((N,), dtype="bool", name="allowed"),
        "bonus": keras.Input((N,), name="bonus"),
    }
    model = keras.Model(inputs, layer(inputs["theta"], allowed=inputs["allowed"], bonus=inputs["bonus"]))
    np.testing.assert_array_equal(model({"theta": theta, **data}).numpy(), expected)
    with pytest.raises(Exception, match=r"allowed: batch index 0 allows no item"):
        step(tf.constant(theta), dict(data, allowed=np.zeros_like(data["allowed"])))


def test_torch_eval_mode_and_validate_args_off():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    theta, data = batch()
    layer = IMLELayer(PickOne(N), ims.IMLE(noise=None), backend="python", validate_args=False).eval()
    z = layer(torch.tensor(theta), **{k: torch.as_tensor(v) for k, v in data.items()})
    np.testing.assert_array_equal(z.numpy(), one_by_one(theta, data))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_torch_function_problem_takes_its_declared_data(n_jobs):
    torch = pytest.importorskip("torch")
    from imle_solvers.problems import DataField
    from imle_solvers.torch import TorchFunctionProblem, imle

    theta, data = batch(9)
    problem = TorchFunctionProblem(
        _best_allowed, (N,), binary=True, fields={"allowed": DataField((N,), "bool"), "bonus": DataField((N,), "float")}
    )
    layer = imle(problem, ims.IMLE(noise=None), n_jobs=n_jobs, chunk_size=2)
    z = layer(torch.tensor(theta), **{k: torch.as_tensor(v) for k, v in data.items()})
    layer.oracle.close()
    np.testing.assert_array_equal(z.detach().numpy(), one_by_one(theta, data))


def _best_allowed(theta, allowed=None, bonus=None):
    """A batched torch solver of :class:`PickOne` (module level: the pool pickles it)."""
    import torch

    scores = theta + (0 if bonus is None else bonus)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.nn.functional.one_hot(scores.argmax(-1), theta.shape[-1])


def test_k_subset_data_are_checked_on_the_device_under_jit_and_named_eagerly():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import imle

    f = imle(ims.KSubset(6, 3), ims.IMLE(noise=ims.Gumbel()))
    step = jax.jit(lambda t, d: f(t, jax.random.key(0), **d))
    theta = jnp.zeros((4, 6))
    mask = np.ones((4, 6), bool)
    np.testing.assert_array_equal(np.asarray(step(theta, {"mask": mask}).sum(axis=1)), 3)
    mask[2, :4] = False
    # under jit the check is a device computation: a bad instance's row is NaN, the others kept
    z = np.asarray(step(theta, {"mask": mask}))
    assert np.isnan(z[2]).all() and np.array_equal(z[[0, 1, 3]].sum(axis=1), [3, 3, 3])
    z = np.asarray(step(theta, {"k": np.array([1, 7, 2, 2])}))
    assert np.isnan(z[1]).all() and not np.isnan(z[[0, 2, 3]]).any()
    # eagerly, the same data are refused with the instance named
    with pytest.raises(ims.InvalidInputError, match=r"mask: batch index 2 leaves 2 selectable items, fewer than k=3"):
        f(theta, jax.random.key(0), mask=mask)
    with pytest.raises(ims.InvalidInputError, match=r"k: batch index 1 holds k=7, outside 1..n=6"):
        f(theta, jax.random.key(0), k=np.array([1, 7, 2, 2]))
    # nothing reaches the host: the step stays exportable
    jaxpr = str(jax.make_jaxpr(step)(theta, {"mask": np.ones((4, 6), bool)}))
    assert "callback" not in jaxpr


def test_k_subset_data_are_checked_inside_tf_function():
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(ims.KSubset(6, 3), ims.IMLE(noise=ims.Gumbel()), seed=0)
    step = tf.function(lambda t, m: layer(t, mask=m))
    theta = tf.zeros((4, 6))
    mask = np.ones((4, 6), bool)
    np.testing.assert_array_equal(step(theta, mask).numpy().sum(axis=1), 3)
    mask[3, 1:] = False
    with pytest.raises(Exception, match=r"mask: batch index 3 leaves 1 selectable items, fewer than k=3"):
        step(theta, mask)


def test_grid_ends_and_closed_cells_are_checked_inside_tf_function():
    """The grid's device-side check in TensorFlow ops (it once asked the namespace for an
    ``arange`` it lacked), for ends alone and with closed cells."""
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(ims.GridShortestPath(3, 3), ims.IMLE(noise=None), seed=0)
    ends = tf.function(lambda c, s: layer(c, source=s, training=True))
    shut = tf.function(lambda c, closed: layer(c, closed=closed, training=True))
    costs = tf.ones((2, 3, 3))
    z = ends(costs, np.array([[0, 0], [1, 1]])).numpy()
    assert z[0, 0, 0] == 1 and z[1, 1, 1] == 1 and z[1, 0, 0] == 0 and (z[:, 2, 2] == 1).all()
    with pytest.raises(Exception, match=r"source: batch index 1 is .*outside the 3x3 grid"):
        ends(costs, np.array([[0, 0], [3, 0]]))
    closed = np.zeros((2, 3, 3), bool)
    closed[:, 1, 1] = True
    assert shut(costs, closed).numpy()[:, 1, 1].sum() == 0
    closed[1, 2, 2] = True
    with pytest.raises(Exception, match=r"closed: batch index 1 closes"):
        shut(costs, closed)


def _squeeze_layer():
    import keras

    class Squeeze(keras.layers.Layer):
        """(B, n, 1) -> (B, n), keeping Keras' mask (B, n)."""

        supports_masking = True

        def call(self, x):
            return keras.ops.squeeze(x, axis=-1)

    return Squeeze


def test_a_keras_k_subset_layer_takes_keras_masks_and_passes_none_on():
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(ims.KSubset(6, 2), ims.IMLE(noise=None))
    allowed = np.array([[True, True, False, False, True, True]] * 2)
    z = layer(np.arange(12.0, dtype="float32").reshape(2, 6), mask=allowed)
    np.testing.assert_array_equal(z.numpy(), [[0, 0, 0, 0, 1, 1]] * 2)
    assert getattr(z, "_keras_mask", None) is None  # a mask of the scores means nothing downstream of z
    # a functional model: the selection multiplies its input (as in the tutorial)
    x = keras.Input((6,))
    m = keras.Input((6,), dtype="bool")
    selected = keras.layers.Multiply()([x, IMLELayer(ims.KSubset(6, 2), ims.IMLE(noise=None))(x, mask=m)])
    model = keras.Model([x, m], selected)
    out = model([np.arange(12.0, dtype="float32").reshape(2, 6), allowed]).numpy()
    np.testing.assert_array_equal(out, [[0, 0, 0, 0, 4, 5], [0, 0, 0, 0, 10, 11]])
    # a Keras mask from upstream (Embedding(mask_zero=True)): padding is never chosen
    tokens = np.array([[3, 1, 0, 0, 2, 4], [0, 5, 6, 0, 0, 1]])
    inputs = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 1, mask_zero=True, embeddings_initializer="ones")(inputs)
    scores = _squeeze_layer()()(embedded)
    upstream = keras.Model(inputs, IMLELayer(ims.KSubset(6, 2), ims.IMLE(noise=ims.Gumbel()), seed=0)(scores))
    for _ in range(5):
        z = upstream(tokens, training=True).numpy()
        assert not (z.astype(bool) & (tokens == 0)).any()


def test_a_keras_layer_declares_its_status_dtype():
    pytest.importorskip("tensorflow")
    import keras

    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(ims.KSubset(6, 2), ims.IMLE(noise=None), on_failure="skip")
    z, status = layer(keras.Input((6,)))
    assert z.dtype == "float32" and status.dtype == "int8" and tuple(status.shape) == (None,)
    z, status = layer(np.zeros((2, 6), "float32"))
    assert status.dtype == "int8"


def random_data(case: str, rng: np.random.Generator) -> tuple[ims.Problem, dict[str, np.ndarray]]:
    """Data of 40 instances, some of them bad, for a problem with a device-side check."""
    if case == "k-subset":
        return ims.KSubset(6, 3), {"mask": rng.random((40, 6)) < 0.5, "k": rng.integers(0, 8, 40)}
    ends = {name: rng.integers(-1, 5, (40, 2)) for name in ("source", "target")}
    return ims.GridShortestPath(4, 4), {**ends, "closed": rng.random((40, 4, 4)) < 0.2}


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax", "tensorflow"])
@pytest.mark.parametrize("case", ["k-subset", "grid"])
def test_the_device_side_check_refuses_exactly_what_the_host_check_refuses(case, framework):
    rng = np.random.default_rng(3)
    problem, data = random_data(case, rng)
    # all fields; the ends (or the mask) alone; the closed cells alone (the default ends' cells)
    subsets = ([*data], [name for name in data if name != "closed" and name != "k"], [[*data][-1]])
    for subset in subsets:
        given = {name: data[name] for name in subset}
        converted = {name: _as(framework, value) for name, value in given.items()}
        bad = np.asarray(problem.invalid_instances(converted))
        for i in range(40):
            one = {name: value[i : i + 1] for name, value in given.items()}
            try:
                problem.check_instance_data(one)
                refused = False
            except InvalidInputError:
                refused = True
            assert bad[i] == refused, (subset, i, one)
        assert 0 < bad.sum() < 40


def _as(framework: str, value: np.ndarray):
    if framework == "torch":
        return pytest.importorskip("torch").as_tensor(value)
    if framework == "jax":
        return pytest.importorskip("jax.numpy").asarray(value)
    if framework == "tensorflow":
        pytest.importorskip("tensorflow")
        import imle_solvers.tensorflow  # noqa: F401 - registers TensorFlow's framework hooks

        return pytest.importorskip("tensorflow").constant(value)
    return value


# -- one instance's value for every instance; errors that name the call made --------------------

def test_one_instances_value_stands_for_every_instance_in_the_oracle():
    theta, data = batch()
    oracle = ims.MAPOracle(PickOne(N), backend="python")
    bonus = data["bonus"][0]  # (N,): one bonus for all
    expected = one_by_one(theta, {"bonus": np.broadcast_to(bonus, theta.shape)})
    np.testing.assert_array_equal(oracle(theta, bonus=bonus), expected)
    np.testing.assert_array_equal(oracle(theta, bonus=bonus.tolist(), allowed=None), expected)  # None: not given
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(oracle(theta, bonus=torch.tensor(bonus)), expected)


def test_broadcast_data_repeats_one_instances_value_and_leaves_the_rest():
    problem = PickOne(N)
    out = broadcast_data(problem, {"bonus": np.arange(N), "allowed": None, "other": 1.0}, 3)
    assert set(out) == {"bonus", "other"} and out["other"] == 1.0  # unknown names: check_data refuses them
    np.testing.assert_array_equal(out["bonus"], np.tile(np.arange(N), (3, 1)))
    kept = np.ones((3, N))
    assert broadcast_data(problem, {"bonus": kept}, 3)["bonus"] is kept
    assert broadcast_data(problem, {"bonus": np.arange(N)}, None)["bonus"].shape == (N,)  # batch unknown


KNAPSACK = {
    "name": "knapsack",
    "params": {"budget": {"batched": True}, "weights": {"over": ["items"], "batched": True, "default": [3, 1, 2, 2]}},
    "sets": {"items": 4},
    "variables": {"x": {"over": ["items"], "type": "binary"}},
    "constraints": [{"name": "budget", "expr": "sum(i in items) weights[i] * x[i] <= budget"}],
    "objective": {"sense": "max", "theta": "x"},
}


def test_a_scalar_parameter_may_be_a_python_number_or_a_0d_array():
    """The report: ``budget=200.0`` for every instance was refused (expected shape (B))."""
    pytest.importorskip("ortools")
    knapsack = ims.ILP.from_dict(KNAPSACK)
    theta = np.random.default_rng(0).normal(size=(5, 4)) + 1.0
    oracle = ims.MAPOracle(knapsack, backend="ortools")
    expected = oracle(theta, budget=np.full(5, 4.0))
    assert not np.array_equal(expected, oracle(theta, budget=np.full(5, 8.0))), "the budget must bind here"
    for budget in (4.0, 4, np.float64(4.0), np.array(4.0)):
        np.testing.assert_array_equal(oracle(theta, budget=budget), expected)
        z, _ = oracle.solve(theta, budget=budget)
        np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(oracle(theta, budget=4.0, weights=[3, 1, 2, 2]), expected)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(oracle(theta, budget=torch.tensor(4.0)), expected)
    layer = ims.torch.IMLELayer(knapsack, ims.IMLE(noise=None), backend="ortools")  # the layer broadcasts alike
    np.testing.assert_array_equal(layer(torch.tensor(theta), budget=4.0).numpy(), expected)


def test_missing_data_is_named_with_the_call_the_user_made():
    pytest.importorskip("ortools")
    knapsack = ims.ILP.from_dict(KNAPSACK)
    theta = np.zeros((2, 4))
    subject = r"^ILP 'knapsack': batched parameter 'budget' has no default; pass it per instance: "
    with pytest.raises(MissingDataError, match=subject + r"oracle\(theta, budget=\.\.\.\)$"):
        ims.MAPOracle(knapsack, backend="ortools")(theta)
    with pytest.raises(MissingDataError, match=subject + r"oracle\(theta, budget=\.\.\.\)$"):
        ims.MAPOracle(knapsack, backend="ortools").solve(theta, weights=np.ones((2, 4)))
    with pytest.raises(InvalidInputError, match=r"takes no per-instance data 'cap'; its fields: budget, weights "
                                                r"\(in oracle\(theta, cap=\.\.\.\)\)"):
        ims.MAPOracle(knapsack, backend="ortools")(theta, cap=1.0)
    torch = pytest.importorskip("torch")
    layer = ims.torch.IMLELayer(knapsack, ims.IMLE(noise=None), backend="ortools")
    with pytest.raises(MissingDataError, match=subject + r"layer\(theta, budget=\.\.\.\)$"):
        layer(torch.zeros(2, 4, dtype=torch.float64))


def test_hints_are_written_by_one_function():
    assert call_with(ORACLE_CALL, ["a", "b"]) == "oracle(theta, a=..., b=...)"
    assert call_with(LAYER_CALL, ["cap"]) == "layer(theta, cap=...)"
    error = missing_data("ILP 'k': batched parameters 'a', 'b' have no default", ["a", "b"], ORACLE_CALL)
    assert str(error) == "ILP 'k': batched parameters 'a', 'b' have no default; pass them per instance: " \
                         "oracle(theta, a=..., b=...)"
    assert (error.subject, error.fields) == ("ILP 'k': batched parameters 'a', 'b' have no default", ("a", "b"))


def test_shapes_print_as_tuples():
    assert [shape_text(s) for s in [(4,), (), ("B", 3), [2, 5, 14]]] == ["(4,)", "()", "(B, 3)", "(2, 5, 14)"]
    with pytest.raises(InvalidInputError, match=r"^bonus: expected shape \(B, 6\) \(batch axis first\), or \(6,\) for "
                                                r"every instance, got \(\)$"):
        check_data(PickOne(N), {"bonus": 1.0}, None)
