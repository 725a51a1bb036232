"""The regularized Frank-Wolfe optimizer as a layer (``RegularizedFrankWolfe``) in the three
bindings: one core (:mod:`imle_solvers.regularized`), so the same values, gradients and
errors in torch, JAX (eager, ``jax.jit``, ``jax.vmap``) and Keras (eager, ``tf.function``,
compiled ``fit``, saved and loaded). The values are checked against the core's Frank-Wolfe
and the gradients against the projector onto the active vertices' affine hull, computed
here independently (a pseudo-inverse, not the core's ridge solve)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.estimators import oriented
from imle_solvers.frank_wolfe import regularized_map

from flaky import FlakyArgmax  # tests/flaky.py
from test_instances import _squeeze_layer
from test_losses import ksubset_states, small_dag
from test_pg_loss import _solve

LAMBD = 0.7


def _frameworks() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")


CASES = [
    pytest.param(ims.KSubset(6, 2), {}, id="k-subset"),
    pytest.param(ims.KSubset(6, 2), {"k": np.array([1, 2, 3, 2])}, id="k-subset-k"),
    pytest.param(ims.KSubset(6, 2), {"mask": np.array([[1, 1, 1, 1, 0, 0]] * 2 + [[0, 1, 1, 1, 1, 1]] * 2, bool)},
                 id="k-subset-mask"),
    pytest.param(small_dag(), {}, id="dag-min"),
    pytest.param(ims.GridShortestPath(3, 3), {}, id="grid-min"),
    pytest.param(ims.GridShortestPath(3, 3), {"target": np.array([[2, 2], [1, 2], [2, 1], [2, 2]])},
                 id="grid-min-target"),
]


def _inputs(problem: ims.Problem, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores (costs for a min problem, positive: the grid clamps negative ones) and a
    cotangent, ``(4, *shape)`` float32."""
    rng = np.random.default_rng(seed)
    shape = (4, *problem.shape)
    theta = rng.uniform(0.1, 2.0, size=shape) if problem.sign == -1 else rng.normal(size=shape)
    return theta.astype(np.float32), rng.normal(size=shape).astype(np.float32)


def _expected(problem: ims.Problem, theta: np.ndarray, cotangent: np.ndarray, data: dict) -> tuple:
    """The regularized solutions by the core's Frank-Wolfe (float64), and the pullback of
    ``cotangent``: ``sign P v / lambd``, ``P`` the orthogonal projector onto the span of
    the held vertices' differences (by a pseudo-inverse)."""
    sign, batch = problem.sign, len(theta)
    active = regularized_map(sign * theta.astype(np.float64), oriented(_solve(problem, data, batch), sign),
                             lambd=LAMBD)
    grads = []
    for vertices, weights, v in zip(active.vertices, active.weights, cotangent.reshape(batch, -1)):
        held = vertices[weights > 0]
        differences = held[1:] - held[0]
        if len(differences) == 0:
            grads.append(np.zeros_like(v, dtype=np.float64))
            continue
        projector = differences.T @ np.linalg.pinv(differences @ differences.T) @ differences
        grads.append(sign * projector @ v / LAMBD)
    return active.solution, np.reshape(grads, theta.shape)


def _torch(problem, theta, cotangent, data, **options):
    import torch

    from imle_solvers.torch import RegularizedFrankWolfe

    t = torch.tensor(theta, requires_grad=True)
    mu = RegularizedFrankWolfe(problem, lambd=LAMBD, **options)(t, **{k: torch.tensor(v) for k, v in data.items()})
    (mu * torch.tensor(cotangent)).sum().backward()
    return mu.detach().numpy(), t.grad.numpy()


def _jax(problem, theta, cotangent, data, jit=False, **options):
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import RegularizedFrankWolfe

    f = RegularizedFrankWolfe(problem, lambd=LAMBD, **options)

    def value_and_grad(t, rows):
        mu, pullback = jax.vjp(lambda x: f(x, **rows), t)
        return mu, pullback(jnp.asarray(cotangent))[0]

    run = jax.jit(value_and_grad) if jit else value_and_grad
    mu, grad = run(jnp.asarray(theta), {k: jnp.asarray(v) for k, v in data.items()})
    return np.asarray(mu), np.asarray(grad)


def _keras(problem, theta, cotangent, data, traced=False, **options):
    import tensorflow as tf

    from imle_solvers.tensorflow import RegularizedFrankWolfe

    layer = RegularizedFrankWolfe(problem, lambd=LAMBD, **options)

    def value_and_grad(t, rows):
        with tf.GradientTape() as tape:
            tape.watch(t)
            mu = layer(t, **rows)
        return mu, tape.gradient(mu, t, output_gradients=tf.constant(cotangent))

    run = tf.function(value_and_grad) if traced else value_and_grad
    mu, grad = run(tf.constant(theta), {k: tf.constant(v) for k, v in data.items()})
    return mu.numpy(), grad.numpy()


@pytest.mark.parametrize("problem, data", CASES)
def test_bindings_agree_with_the_core_and_the_projector(problem, data):
    _frameworks()
    theta, cotangent = _inputs(problem)
    mu, grad = _expected(problem, theta, cotangent, data)
    results = {
        "torch": _torch(problem, theta, cotangent, data),
        "jax": _jax(problem, theta, cotangent, data),
        "jax.jit": _jax(problem, theta, cotangent, data, jit=True),
        "keras": _keras(problem, theta, cotangent, data),
        "tf.function": _keras(problem, theta, cotangent, data, traced=True),
    }
    for name, (got_mu, got_grad) in results.items():
        assert got_mu.dtype == np.float32 and got_grad.dtype == np.float32, name
        # the loop runs on the host in float64 in every binding: the same solutions
        np.testing.assert_allclose(got_mu, mu, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(got_grad, grad, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(got_grad, results["torch"][1], atol=1e-6, err_msg=name)
    # not every solution is a state, and the gradient is not zero: the test could fail
    assert np.abs(mu - np.round(mu)).max() > 0.05 and np.abs(grad).max() > 0.05
    if "mask" in data:
        assert not mu[~data["mask"]].any()


def test_jax_vmap_is_the_calls_one_by_one():
    _frameworks()
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import RegularizedFrankWolfe

    problem = ims.KSubset(6, 2)
    f = RegularizedFrankWolfe(problem, lambd=LAMBD)
    thetas = np.stack([_inputs(problem, seed)[0] for seed in (1, 2)])
    cotangents = np.stack([_inputs(problem, seed)[1] for seed in (1, 2)])
    ks = np.array([[1, 2, 3, 2], [2, 2, 1, 3]])

    def pulled(t, v, k):
        mu, pullback = jax.vjp(lambda x: f(x, k=k), t)
        return mu, pullback(v)[0]

    mapped = jax.jit(jax.vmap(pulled))(jnp.asarray(thetas), jnp.asarray(cotangents), jnp.asarray(ks))
    for i in range(2):
        mu, grad = _expected(problem, thetas[i], cotangents[i], {"k": ks[i]})
        np.testing.assert_allclose(mapped[0][i], mu, atol=1e-6)
        np.testing.assert_allclose(mapped[1][i], grad, atol=1e-4)


def test_keras_saves_loads_and_fits():
    _frameworks()
    import keras
    import tensorflow as tf

    from imle_solvers.tensorflow import RegularizedFrankWolfe

    problem = ims.KSubset(6, 2)
    layer = RegularizedFrankWolfe(problem, lambd=0.5, max_iter=40, tol=1e-5, backend="numpy", name="rfw")
    restored = RegularizedFrankWolfe.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert (restored.lambd, restored.max_iter, restored.tol, restored.oracle.solver.backend) == (0.5, 40, 1e-5, "numpy")

    theta, _ = _inputs(problem)
    y = ksubset_states(6, 2)[[0, 5, 9, 14]].astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, RegularizedFrankWolfe(problem, lambd=LAMBD)(keras.layers.Dense(6)(inputs)))
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.5))  # compiled: fit runs in a tf.function
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(theta, y, epochs=3, batch_size=4, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert any(np.abs(w.numpy() - b).max() > 1e-4 for w, b in zip(model.trainable_weights, before))

    predicted = model.predict(theta, verbose=0)
    expected, _ = _expected(problem, model.layers[1](tf.constant(theta)).numpy(), np.zeros_like(theta), {})
    np.testing.assert_allclose(predicted, expected, atol=1e-6)


def test_keras_model_round_trips_through_a_file(tmp_path):
    _frameworks()
    import keras

    from imle_solvers.tensorflow import RegularizedFrankWolfe

    problem = ims.GridShortestPath(3, 3)
    inputs = keras.Input((3, 3))
    model = keras.Model(inputs, RegularizedFrankWolfe(problem, lambd=LAMBD, tol=1e-7)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    theta, _ = _inputs(problem)
    np.testing.assert_allclose(loaded.predict(theta, verbose=0), model.predict(theta, verbose=0), atol=0)
    assert loaded.layers[-1].tol == 1e-7


def test_keras_mask_is_the_k_subset_mask():
    _frameworks()
    import keras
    import tensorflow as tf

    from imle_solvers.tensorflow import RegularizedFrankWolfe

    problem = ims.KSubset(6, 2)
    theta, _ = _inputs(problem)
    mask = np.array([[1, 1, 1, 1, 0, 0]] * 4, bool)
    layer = RegularizedFrankWolfe(problem, lambd=LAMBD)
    by_mask = layer(tf.constant(theta), mask=tf.constant(mask)).numpy()
    np.testing.assert_allclose(by_mask, _torch(problem, theta, theta, {"mask": mask})[0], atol=0)
    np.testing.assert_allclose(by_mask, _expected(problem, theta, theta, {"mask": mask})[0], atol=1e-6)
    assert not by_mask[:, 4:].any()
    # a Keras mask from upstream (Embedding(mask_zero=True)): equal scores share k = 2 among the tokens
    tokens = np.array([[3, 1, 0, 0, 2, 4], [0, 5, 6, 0, 0, 1]])
    inputs = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 1, mask_zero=True, embeddings_initializer="ones")(inputs)
    model = keras.Model(inputs, RegularizedFrankWolfe(problem, lambd=LAMBD)(_squeeze_layer()()(embedded)))
    allowed = tokens != 0
    expected = allowed * 2.0 / allowed.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model(tokens).numpy(), expected, atol=1e-4)


# --- errors: the same words in every binding -------------------------------------------


def _builders():
    from imle_solvers.jax import RegularizedFrankWolfe as JaxRFW
    from imle_solvers.tensorflow import RegularizedFrankWolfe as KerasRFW
    from imle_solvers.torch import RegularizedFrankWolfe as TorchRFW

    return {"torch": TorchRFW, "jax": JaxRFW, "keras": KerasRFW}


def _call(name, layer, theta, **data):
    if name == "torch":
        import torch

        return layer(torch.tensor(theta), **{k: torch.tensor(v) for k, v in data.items()})
    if name == "jax":
        import jax.numpy as jnp

        return layer(jnp.asarray(theta), **data)
    import tensorflow as tf

    return layer(tf.constant(theta), **data)


@pytest.mark.parametrize("options, words", [
    ({"on_failure": "skip"}, "RegularizedFrankWolfe: no failure policy, a failed solve raises; on_failure='skip'"),
    ({"lambd": 0.0}, "RegularizedFrankWolfe: lambd must be a number > 0, got 0.0"),
    ({"max_iter": 0}, "RegularizedFrankWolfe: max_iter must be an integer >= 1, got 0"),
    ({"tol": -1.0}, "RegularizedFrankWolfe: tol must be a number >= 0, got -1.0"),
])
def test_settings_are_refused_alike(options, words):
    _frameworks()
    for build in _builders().values():
        with pytest.raises(InvalidInputError, match=re.escape(words)):
            build(ims.KSubset(6, 2), **options)


def test_noise_options_are_no_option():
    _frameworks()
    for name in ("torch", "jax"):
        with pytest.raises(TypeError, match="RegularizedFrankWolfe: unexpected keyword argument"):
            _builders()[name](ims.KSubset(6, 2), noise_source="numpy")


@pytest.mark.parametrize("theta, data", [
    pytest.param(np.zeros((4, 5), np.float32), {}, id="shape"),
    pytest.param(np.zeros((4, 6), np.int32), {}, id="dtype"),
    pytest.param(np.where(np.arange(6) == 2, np.nan, np.zeros((4, 6))).astype(np.float32), {}, id="not-finite"),
    pytest.param(np.zeros((4, 6), np.float32), {"k": np.array([1, 2, 7, 2])}, id="data-value"),
    pytest.param(np.zeros((4, 6), np.float32), {"size": np.array([1, 2, 3, 2])}, id="data-name"),
])
def test_bad_calls_are_worded_alike(theta, data):
    _frameworks()
    messages = {}
    for name, build in _builders().items():
        with pytest.raises(InvalidInputError) as caught:
            _call(name, build(ims.KSubset(6, 2)), theta, **data)
        messages[name] = str(caught.value).split("\n")[0]
    assert messages["jax"] == messages["torch"] and messages["keras"] == messages["torch"], messages


def test_a_failed_solve_names_its_instance():
    _frameworks()
    theta = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 200.0, 0.0], [3.0, 0.0, 1.0, 0.0]], np.float32)
    for name, build in _builders().items():
        with pytest.raises(SolverError, match=r"^instance 1 \(test-flaky-argmax") as caught:
            _call(name, build(FlakyArgmax(4), backend="numpy"), theta)
        assert caught.value.index == 1, name


def test_inside_jax_jit_a_non_finite_row_is_nan():
    """Traced scores cannot be read: the check on the device makes the bad row NaN (as the
    other JAX layers do); eagerly the call raises, naming the row."""
    _frameworks()
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import RegularizedFrankWolfe

    problem = ims.KSubset(6, 2)
    theta, cotangent = _inputs(problem)
    theta[1, 3] = np.inf
    f = RegularizedFrankWolfe(problem, lambd=LAMBD)
    with pytest.raises(InvalidInputError, match="theta: batch index 1 holds a non-finite value"):
        f(jnp.asarray(theta))
    mu, pullback = jax.jit(lambda t: jax.vjp(f, t))(jnp.asarray(theta))
    mu, grad = np.asarray(mu), np.asarray(pullback(jnp.asarray(cotangent))[0])
    assert np.isnan(mu[1]).all() and np.isnan(grad[1]).all()
    ok = [0, 2, 3]
    expected_mu, expected_grad = _expected(problem, theta[ok], cotangent[ok], {})
    np.testing.assert_allclose(mu[ok], expected_mu, atol=1e-6)
    np.testing.assert_allclose(grad[ok], expected_grad, atol=1e-4)


def test_an_empty_batch_gives_empty_values_and_gradients():
    _frameworks()
    empty = np.zeros((0, 6), np.float32)
    for name, (mu, grad) in {"torch": _torch(ims.KSubset(6, 2), empty, empty, {}),
                             "jax.jit": _jax(ims.KSubset(6, 2), empty, empty, {}, jit=True),
                             "tf.function": _keras(ims.KSubset(6, 2), empty, empty, {}, traced=True)}.items():
        assert mu.shape == (0, 6) and grad.shape == (0, 6), name
