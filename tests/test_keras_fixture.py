"""Keras models saved by the code of commit 770e025 load with today's code and go on as
the saved ones would have: same problem, estimator and options, same weights (noise
counter, AIMLE's state, the numpy generator's state), same MAP output, and the same next
training-mode sample and gradient, bit for bit (given the saved state, each is
deterministic). The fixture and how it was made: ``tests/fixtures/make_keras_fixture.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import imle_solvers as ims  # noqa: E402
from imle_solvers.tensorflow import FenchelYoungLoss, IMLELayer  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "keras_770e025"
CONFIGS = json.loads((FIXTURE / "configs.json").read_text())
KSUBSET = ims.KSubset(n=10, k=3)

# what each saved layer was built with (make_keras_fixture.py), spelled out here again
LAYERS = {
    "ksubset_imle_native": (
        ims.IMLE(noise=ims.SumOfGamma(k=3), lambda_=10.0), {"seed": 11, "noise_source": "native"}),
    "ksubset_aimle_fit": (
        ims.AIMLE(noise=ims.Gumbel(), initial_beta=2.0, beta_step=0.25), {"seed": 3, "noise_source": "native"}),
    "ksubset_imle_numpy": (
        ims.IMLE(noise=ims.Gumbel(), lambda_=5.0), {"seed": 5, "noise_source": "numpy", "chunk_size": 2}),
}


# estimator fields added after the fixture was recorded (770e025), with their defaults
FIELDS_ADDED_SINCE = {"IMLE": {"two_sided": False}}


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURE / "expected.npz") as arrays:
        return dict(arrays)


def load(name):
    return keras.models.load_model(FIXTURE / f"{name}.keras")


def through_json(config):
    return json.loads(json.dumps(config))


def training_step(model, x, upstream):
    """As the fixture's: one eager training-mode call and backward pass."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(model(x, training=True) * upstream)
    return tape.gradient(loss, x).numpy()


def weights(model):
    """As the fixture's: ``layer/variable`` to value."""
    return {f"{layer.name}/{v.name}": np.array(v.numpy()) for layer in model.layers for v in layer.weights}


def assert_weights(model, expected, prefix):
    values = weights(model)
    recorded = {key[len(prefix):]: value for key, value in expected.items() if key.startswith(prefix)}
    assert sorted(values) == sorted(recorded)
    for path, value in recorded.items():
        assert values[path].dtype == value.dtype, path
        np.testing.assert_array_equal(values[path], value, err_msg=path)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_saved_layer_loads_and_draws_what_the_saved_one_would_have(name, expected):
    estimator, options = LAYERS[name]
    recorded = CONFIGS[name]
    model = load(name)
    layer = model.get_layer("imle")
    assert isinstance(layer, IMLELayer)
    # problem, estimator and options round-trip
    assert layer.problem == KSUBSET and layer.estimator == estimator
    config = through_json(layer.get_config())
    # a field added to the estimator since the fixture was saved takes its default
    for field, default in FIELDS_ADDED_SINCE.get(config["estimator"]["__class__"], {}).items():
        assert field not in recorded["layer"]["estimator"]["fields"]
        assert config["estimator"]["fields"].pop(field) == default
    assert config == recorded["layer"]
    assert {key: layer.get_config()[key] for key in options} == options
    assert layer.noise_source == options["noise_source"]
    # the weights, and the state kept beside them
    assert sorted(weights(model)) == recorded["weights"]
    assert_weights(model, expected, f"{name}/weight/")
    state = layer.estimator_state
    assert (None if state is None else state.state_dict()) == recorded["estimator_state"]
    if options["noise_source"] == "numpy":
        assert layer.rng.bit_generator.state == recorded["numpy_generator_state"]
    # what it does next: the MAP state, the next sample (the saved noise state's next
    # draw), then one more step's input gradient and the state it leaves
    x, upstream = expected[f"{name}/input"], expected[f"{name}/upstream"]
    np.testing.assert_array_equal(model(x, training=False).numpy(), expected[f"{name}/eval"])
    np.testing.assert_array_equal(model(x, training=True).numpy(), expected[f"{name}/next_train"])
    np.testing.assert_array_equal(training_step(model, x, upstream), expected[f"{name}/next_grad"])
    assert_weights(model, expected, f"{name}/after/")
    state = layer.estimator_state
    assert (None if state is None else state.state_dict()) == recorded["estimator_state_after"]


def test_the_fixture_moved_the_state_it_is_meant_to_check(expected):
    """Guards the fixture itself: non-initial noise counters and AIMLE state."""
    assert expected["ksubset_imle_native/weight/imle/noise_state"].tolist() == [11, 2]
    assert expected["ksubset_aimle_fit/weight/imle/noise_state"][1] > 0
    assert CONFIGS["ksubset_aimle_fit"]["estimator_state"]["beta"] != 2.0
    assert CONFIGS["ksubset_aimle_fit"]["estimator_state"]["steps"] > 1
    assert CONFIGS["dense_fenchel_young"]["loss_noise_state"][1] > 0
    assert CONFIGS["ksubset_imle_numpy"]["numpy_generator_state"] != np.random.default_rng(5).bit_generator.state


def test_a_model_compiled_with_a_fenchel_young_loss_loads_with_its_loss(expected):
    name = "dense_fenchel_young"
    model = load(name)
    losses = [obj for obj in keras.tree.flatten(model.loss) if isinstance(obj, FenchelYoungLoss)]
    assert len(losses) == 1
    loss = losses[0]
    assert loss.problem == KSUBSET and loss.noise == ims.Gumbel() and loss.sigma == 0.5
    assert through_json(loss.get_config()) == CONFIGS[name]["loss"]
    assert sorted(weights(model)) == CONFIGS[name]["weights"]
    assert_weights(model, expected, f"{name}/weight/")
    # the loss's noise counter is not a model weight, but Keras saved the compiled loss's
    # variables (loss/_layer/vars): the loaded loss draws what the saved one would have
    assert loss._layer.noise_state.numpy().tolist() == CONFIGS[name]["loss_noise_state"]
    x, y_true = expected[f"{name}/input"], expected[f"{name}/y_true"]
    prediction = model(x, training=False)
    np.testing.assert_array_equal(prediction.numpy(), expected[f"{name}/eval"])
    values = [loss(y_true, prediction).numpy() for _ in range(2)]
    np.testing.assert_array_equal(np.array(values), expected[f"{name}/loss_value"])
    with tf.GradientTape() as tape:
        tape.watch(prediction)
        value = loss(y_true, prediction)
    np.testing.assert_array_equal(tape.gradient(value, prediction).numpy(), expected[f"{name}/loss_grad"])
    assert loss._layer.noise_state.numpy().tolist() == CONFIGS[name]["loss_noise_state_after"]
