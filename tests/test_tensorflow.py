"""The Keras layer: tf.function agrees with eager, training=False is the MAP state,
AIMLE's state lives in checkpointable weights, and a small L2X model trains with fit."""

from __future__ import annotations

import os
import subprocess
import sys

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
