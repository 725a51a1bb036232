"""Learning to explain (L2X) in Keras: select the 3 relevant features of 20 with a top-k I-MLE layer.

The same task as ``l2x_jax.py``: the target depends on features 0, 1 and 2 only; a
linear selector scores the features, ``imle_solvers.tensorflow.IMLELayer`` keeps
the top 3 (perturb-and-MAP in ``model.fit``, the MAP state in ``model.predict``),
and a linear predictor sees only the selected features. Chance precision: 0.15.

Run: ``python examples/l2x_keras.py``
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import imle_solvers as ims  # noqa: E402
from imle_solvers.tensorflow import IMLELayer  # noqa: E402

N_FEATURES, K, RELEVANT = 20, 3, (0, 1, 2)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` ``(n, 20)`` standard normal and ``y`` ``(n, 1)`` = 2 x0 - 1.5 x1 + x2."""
    x = np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(np.float32)
    return x, (2.0 * x[:, 0] - 1.5 * x[:, 1] + x[:, 2]).astype(np.float32)[:, None]


def build(seed: int) -> tuple[keras.Model, keras.Model]:
    """The trained model ``x -> y`` and the explainer ``x -> selection`` sharing its layers."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((N_FEATURES,))
    scores = keras.layers.Dense(N_FEATURES, name="selector")(x)
    selection = IMLELayer(
        ims.KSubset(n=N_FEATURES, k=K), ims.IMLE(noise=ims.SumOfGamma(k=K), lambda_=10.0), seed=seed
    )(scores)
    y = keras.layers.Dense(1, name="predictor")(keras.layers.Multiply()([x, selection]))
    return keras.Model(x, y), keras.Model(x, selection)


def precision(selection: np.ndarray) -> float:
    """Mean share of the selected features ``(n, 20)`` that are relevant."""
    return float(selection[:, list(RELEVANT)].sum(axis=1).mean() / K)


def train(epochs: int = 5, seed: int = 0) -> dict[str, float]:
    """Train with ``model.fit``; return the test loss and selection precision before and after."""
    model, explainer = build(seed)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    x, y = make_data(4096, seed)
    x_test, y_test = make_data(512, seed + 1)
    loss_before = model.evaluate(x_test, y_test, verbose=0)
    precision_before = precision(explainer.predict(x_test, verbose=0))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return {
        "loss_before": float(loss_before),
        "loss_after": float(model.evaluate(x_test, y_test, verbose=0)),
        "precision_before": precision_before,
        "precision_after": precision(explainer.predict(x_test, verbose=0)),
    }


def main(epochs: int = 5) -> dict[str, float]:
    result = train(epochs=epochs)
    print(
        f"test loss {result['loss_before']:.3f} -> {result['loss_after']:.3f}; "
        f"precision of the selected features {result['precision_before']:.2f} -> {result['precision_after']:.2f}"
    )
    return result


if __name__ == "__main__":
    main()
