"""The Keras layer: tf.function agrees with eager, training=False is the MAP state,
AIMLE's state lives in checkpointable weights, and a small L2X model trains with fit."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import imle_solvers as ims  # noqa: E402
from batches import scores_and_upstream  # noqa: E402
from example_scripts import load_example  # noqa: E402
from imle_solvers.tensorflow import IMLELayer  # noqa: E402

KSUBSET = ims.KSubset(n=10, k=3)
GRID = ims.GridShortestPath(4, 4)


def batch(problem, b=3, seed=0):
    return tuple(tf.constant(a) for a in scores_and_upstream(problem, b, seed))


def forward_backward(layer, theta, w):
    with tf.GradientTape() as tape:
        tape.watch(theta)
        z = layer(theta)
        loss = tf.reduce_sum(z * w)
    return z, tape.gradient(loss, theta)


@pytest.mark.parametrize("problem", [KSUBSET, GRID], ids=["k-subset", "grid"])
@pytest.mark.parametrize(
    "estimator",
    [ims.IMLE(noise=ims.Gumbel(), lambda_=10.0), ims.STE(noise=ims.Gumbel()), ims.AIMLE(noise=ims.Gumbel())],
    ids=["imle", "ste", "aimle"],
)
def test_tf_function_matches_eager(problem, estimator):
    theta, w = batch(problem)
    eager, graph = IMLELayer(problem, estimator, seed=5), IMLELayer(problem, estimator, seed=5)
    step = tf.function(lambda t: forward_backward(graph, t, w))
    for _ in range(2):  # the second call draws new noise and sees the updated state
        z_eager, g_eager = forward_backward(eager, theta, w)
        z_graph, g_graph = step(theta)
        np.testing.assert_array_equal(z_graph, z_eager)
        np.testing.assert_array_equal(g_graph, g_eager)
        assert graph.estimator_state == eager.estimator_state
    assert np.abs(g_eager.numpy()).sum() > 0 or isinstance(estimator, ims.AIMLE)


def test_training_false_gives_the_map_state_without_gradient():
    layer = IMLELayer(KSUBSET, ims.IMLE(noise=ims.Gumbel()), seed=0)
    theta, _ = batch(KSUBSET)
    with tf.GradientTape() as tape:
        tape.watch(theta)
        z = layer(theta, training=False)
    np.testing.assert_array_equal(z, ims.MAPOracle(KSUBSET)(theta.numpy()))
    assert tape.gradient(z, theta) is None


def test_aimle_state_is_a_checkpointable_weight(tmp_path):
    estimator = ims.AIMLE(noise=ims.Gumbel(), initial_beta=2.0, beta_step=0.25)
    layer = IMLELayer(KSUBSET, estimator, seed=0)
    assert [v.name for v in layer.non_trainable_weights] == ["noise_state", "beta", "nnz_average", "steps"]
    assert not layer.trainable_weights
    theta, w = batch(KSUBSET)
    forward_backward(layer, theta, w)
    state = layer.estimator_state
    assert state.steps == 1 and state.beta in (1.75, 2.25)
    model = keras.Sequential([keras.Input((KSUBSET.n,)), layer])
    model.save_weights(tmp_path / "model.weights.h5")
    restored = IMLELayer(KSUBSET, estimator, seed=0)
    keras.Sequential([keras.Input((KSUBSET.n,)), restored]).load_weights(tmp_path / "model.weights.h5")
    assert restored.estimator_state == state


def test_errors_name_the_problem():
    layer = IMLELayer(KSUBSET, ims.IMLE(noise=ims.Gumbel()), seed=0)
    with pytest.raises(ims.InvalidInputError, match=r"expected shape \(B, 10\), got \(3, 9\)"):
        layer(tf.zeros((3, 9)))
    with pytest.raises(Exception, match="batch index 1 holds a non-finite value"):
        layer(tf.constant(np.where(np.arange(30).reshape(3, 10) == 12, np.nan, 0.0).astype(np.float32)))


def test_l2x_training_with_fit_finds_the_relevant_features():
    result = load_example("l2x_keras").train(epochs=3)
    assert result["loss_after"] < 0.2 * result["loss_before"]
    assert result["precision_after"] >= 0.9 > 0.5 > result["precision_before"]


ORTOOLS_AFTER_TENSORFLOW = """
import tensorflow
import numpy as np
import imle_solvers as ims
from imle_solvers.problems.ilp import ILP, Variable
problem = ILP((Variable("x", (5,)),), np.ones((1, 5)), -np.inf, 2.0, ("x",))
theta = np.array([[0.1, 0.5, 0.2, 0.9, 0.3]] * 4)
print(ims.MAPOracle(problem, backend="ortools")(theta).tolist())
"""


def test_ortools_in_a_process_that_imported_tensorflow_first():
    """CP-SAT segfaults after a TensorFlow import; the adapter must route around it."""
    pytest.importorskip("ortools")
    result = subprocess.run([sys.executable, "-c", ORTOOLS_AFTER_TENSORFLOW], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str([[0.0, 1.0, 0.0, 1.0, 0.0]] * 4)


# --- saving -----------------------------------------------------------------------

ILP_PROBLEM = ims.ILP((ims.Variable("x", (5,)),), np.ones((1, 5)), -np.inf, 2.0, ("x",), name="pick-two")
OPTIONS = (
    "backend", "seed", "noise_source", "validate_args", "n_jobs", "parallel_backend", "chunk_size", "time_limit", "on_failure")


def one_training_step(model, theta, w):
    """A step that moves the noise counter and, for AIMLE, the estimator's state."""
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss = tf.reduce_sum(model(theta, training=True) * w)
    return tape.gradient(loss, theta)


@pytest.mark.parametrize(
    "problem, estimator, options",
    [
        (KSUBSET, ims.IMLE(noise=ims.SumOfGamma(k=3, nb_iterations=5), lambda_=5.0), {"chunk_size": 2}),
        (KSUBSET, ims.AIMLE(noise=ims.Gumbel(), initial_beta=2.0, beta_step=0.25), {"validate_args": False}),
        (ILP_PROBLEM, ims.IMLE(noise=ims.Gumbel()), {"backend": "ortools", "time_limit": 30.0}),
        (ims.GridShortestPath(4, 5, neighbourhood=4), ims.IMLE(noise=ims.Gumbel()), {"backend": "scipy"}),
        (ims.BipartiteMatching(3, 4, perfect=False), ims.STE(noise=ims.Gumbel()), {"noise_source": "numpy"}),
    ],
    ids=["k-subset-imle-sog", "k-subset-aimle", "ilp", "grid", "bipartite-numpy-noise"],
)
def test_saved_model_loads_and_draws_what_the_saved_one_would_have(tmp_path, problem, estimator, options):
    layer = IMLELayer(problem, estimator, seed=7, name="imle", **options)
    model = keras.Sequential([keras.Input(problem.shape), layer])
    theta, w = batch(problem, b=4)
    one_training_step(model, theta, w)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    restored = loaded.get_layer("imle")
    assert isinstance(restored, IMLELayer)
    assert restored.problem == problem and restored.estimator == estimator
    assert restored.get_config() == layer.get_config()
    given = {**layer._oracle_options.config(), **layer._noise_options.config(), "validate_args": layer.validate_args}
    assert {k: restored.get_config()[k] for k in OPTIONS} == {**given, **options, "seed": 7}
    if isinstance(estimator, ims.AIMLE):
        assert restored.estimator_state == layer.estimator_state and layer.estimator_state.steps == 1
    # the next step of each: same noise, so the same sample and gradient
    np.testing.assert_array_equal(loaded(theta, training=True), model(theta, training=True))
    np.testing.assert_array_equal(one_training_step(loaded, theta, w), one_training_step(model, theta, w))
    assert restored.estimator_state == layer.estimator_state


@pytest.mark.parametrize("noise_source", ["native", "numpy"])
def test_weights_file_restores_the_noise_and_estimator_state(tmp_path, noise_source):
    estimator = ims.AIMLE(noise=ims.Gumbel(), beta_step=0.25)
    model = keras.Sequential([keras.Input((KSUBSET.n,)), IMLELayer(KSUBSET, estimator, seed=1, noise_source=noise_source)])
    theta, w = batch(KSUBSET)
    one_training_step(model, theta, w)
    model.save_weights(tmp_path / "m.weights.h5")
    other = keras.Sequential([keras.Input((KSUBSET.n,)), IMLELayer(KSUBSET, estimator, seed=2, noise_source=noise_source)])
    fresh = other(theta, training=True)  # seed 2's own draw, before loading
    other.load_weights(tmp_path / "m.weights.h5")
    expected = model(theta, training=True)
    assert not np.array_equal(fresh, expected)
    np.testing.assert_array_equal(other(theta, training=True), expected)
    assert other.layers[0].estimator_state == model.layers[0].estimator_state


@dataclass(frozen=True)
class Halves(ims.Problem):
    """A problem of the user's own: k of n, as a dataclass of plain fields (a KSubset)."""

    n: int
    k: int
    kind: ClassVar[str] = "k-subset"  # solved by the k-subset solvers

    @property
    def shape(self):
        return (self.n,)

    @property
    def sense(self):
        return "max"


def test_a_registered_problem_of_ones_own_is_saved(tmp_path):
    ims.serialization.register(Halves, name="tests.Halves")
    model = keras.Sequential([keras.Input((6,)), IMLELayer(Halves(6, 3), ims.IMLE(noise=ims.Gumbel()), seed=0)])
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").layers[0].problem == Halves(6, 3)


def test_an_unregistered_problem_fails_to_save_naming_its_class(tmp_path):
    class Unregistered(ims.KSubset):
        pass

    model = keras.Sequential([keras.Input((10,)), IMLELayer(Unregistered(10, 3), ims.IMLE(), seed=0)])
    with pytest.raises(ims.errors.SerializationError, match=r"Unregistered has no config: register it"):
        model.save(tmp_path / "m.keras")


# --- errors -----------------------------------------------------------------------

NEGATIVE_RAISES = ims.GridShortestPath(3, 3, negative_costs="raise")


def test_eager_host_solver_errors_arrive_as_raised_and_once(capfd):
    layer = IMLELayer(NEGATIVE_RAISES, ims.IMLE(noise=None, lambda_=100.0), backend="scipy")
    theta = np.ones((3, 3, 3), np.float32)
    theta[2, 1, 1] = -1.0
    capfd.readouterr()
    for training in (True, False):
        with pytest.raises(ims.SolverError, match=r"^instance 2 \(grid-shortest-path") as caught:
            layer(tf.constant(theta), training=training)
        assert caught.value.index == 2 and caught.value.status is not None
    # the backward pass's solve fails: the target theta + lambda * dL/dz has negative costs
    positive, w = tf.ones((3, 3, 3)), -tf.ones((3, 3, 3))
    with pytest.raises(ims.SolverError, match="instance 0"):
        one_training_step(layer, positive, w)
    out, err = capfd.readouterr()
    assert "negative cell cost" not in out + err, "TensorFlow logged the error besides raising it"


def test_fit_with_run_eagerly_raises_our_error():
    model = keras.Sequential([keras.Input((3, 3)), IMLELayer(NEGATIVE_RAISES, ims.IMLE(noise=None), backend="scipy")])
    model.compile(loss="mse", run_eagerly=True)
    with pytest.raises(ims.SolverError, match="^instance 0") as caught:
        model.fit(-np.ones((2, 3, 3), np.float32), np.zeros((2, 3, 3), np.float32), epochs=1, verbose=0)
    assert caught.value.index == 0


def test_graph_errors_hold_our_message():
    layer = IMLELayer(NEGATIVE_RAISES, ims.IMLE(noise=None), backend="scipy")
    theta = -tf.ones((2, 3, 3))
    with pytest.raises(tf.errors.UnknownError, match=r"SolverError: instance 0 \(grid-shortest-path"):
        tf.function(lambda t: layer(t))(theta)
    nan = tf.constant(np.where(np.arange(9).reshape(1, 3, 3) == 4, np.nan, 1.0).astype(np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"assertion failed: \[theta: batch index 0 holds"):
        tf.function(lambda t: layer(t))(nan)
