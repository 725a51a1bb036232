"""Each framework's conventions, through one step core: a JAX model trained with an adaptive
estimator's state returned as a value and exported with ``jax.export``; a Keras model
whose padding mask comes from an ``Embedding(mask_zero=True)`` upstream; and one set of
oracle options shared by a torch layer and a torch loss.

The task in each: pick the ``k`` tokens of a sequence that carry the signal. A token's
feature says how relevant it is; the models learn to score it.

- JAX: ``ims.jax.value_and_grad(loss, state_argnum=1)`` gives ``(value, next_state),
  grads``, AIMLE's lambda adapting step by step; the trained, jitted selection step then
  exports (``jax.export``: no host callback in it, checks included) and the exported one
  selects what the original does.
- Keras: token ids with padding 0; the mask Keras carries from the embedding is the
  k-subset's mask, so padding is never selected, and ``Multiply`` after the layer works
  (the layer passes no mask on).
- torch: ``OracleOptions`` once, for an ``IMLELayer`` and a ``FenchelYoungLoss``.

Run: ``python examples/framework_conventions.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import numpy as np

import imle_solvers as ims

N, K, VOCAB = 12, 3, 20


def token_data(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids ``(samples, N)`` (0 is padding, at the end of each row), each id's relevance
    (ids above 14 are the signal), and the ``(samples, N)`` 0/1 target: the K most relevant
    non-padding tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (samples, N))
    lengths = rng.integers(K + 2, N + 1, samples)
    ids[np.arange(N)[None, :] >= lengths[:, None]] = 0
    relevance = np.where(ids > 14, ids, 0).astype(np.float32) + rng.random((samples, N)).astype(np.float32) * 0.1
    relevance[ids == 0] = -np.inf
    target = np.zeros((samples, N), np.float32)
    np.put_along_axis(target, np.argsort(-relevance, axis=1)[:, :K], 1.0, axis=1)
    return ids, (ids > 14).astype(np.float32), target


def precision(selected: np.ndarray, target: np.ndarray) -> float:
    return float((selected * target).sum() / selected.sum())


def jax_adaptive_and_exported(steps: int) -> dict[str, float | bool]:
    import jax
    import jax.numpy as jnp

    ids, _, target = token_data(512, seed=0)
    test_ids, _, test_target = token_data(256, seed=1)
    f = ims.jax.imle(ims.KSubset(N, K), ims.AIMLE(noise=ims.SumOfGamma(k=K)))
    # one learned score per token id; not all zeros: AIMLE's lambda scales with the scores' norm
    embedding = jax.random.normal(jax.random.key(1), (VOCAB,))

    def loss(weights: jax.Array, state: ims.AdaptiveState, key: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
        z = f(weights[x], key, state, mask=x != 0)
        return jnp.mean(jnp.sum((z - y) ** 2, axis=1))

    step = jax.jit(ims.jax.value_and_grad(loss, argnums=0, state_argnum=1))
    state, key, first_lambda = f.initial_state(), jax.random.key(0), None
    for i in range(steps):
        key, sub = jax.random.split(key)
        batch = np.random.default_rng(i).integers(0, len(ids), 64)
        (value, state), grads = step(embedding, state, sub, ids[batch], target[batch])
        embedding = embedding - 1.0 * grads
        first_lambda = float(state.beta) if first_lambda is None else first_lambda

    select = jax.jit(lambda w, x: f.map(w[x], mask=x != 0))
    exported = jax.export.export(select)(embedding, test_ids)
    chosen = np.asarray(select(embedding, test_ids))
    return {
        "precision": precision(chosen, test_target),
        "padding selected": float(chosen[test_ids == 0].sum()),
        "AIMLE steps counted": float(state.steps),
        "beta moved": abs(float(state.beta) - first_lambda) > 0,
        "exported selects the same": bool(np.array_equal(np.asarray(exported.call(embedding, test_ids)), chosen)),
        "callbacks in the step": str(jax.make_jaxpr(select)(embedding, test_ids)).count("callback"),
    }


def keras_mask_from_upstream(epochs: int) -> dict[str, float]:
    import keras

    ids, _, target = token_data(512, seed=2)
    test_ids, _, test_target = token_data(256, seed=3)

    class Squeeze(keras.layers.Layer):
        """(B, N, 1) -> (B, N), keeping Keras' mask."""

        supports_masking = True

        def call(self, x: object) -> object:
            return keras.ops.squeeze(x, axis=-1)

    inputs = keras.Input((N,), dtype="int32")
    scores = Squeeze()(keras.layers.Embedding(VOCAB, 1, mask_zero=True)(inputs))
    selection = ims.tensorflow.IMLELayer(ims.KSubset(N, K), ims.IMLE(noise=ims.SumOfGamma(k=K)), seed=0)(scores)
    kept = keras.layers.Multiply()([keras.ops.ones_like(scores), selection])
    model = keras.Model(inputs, kept)
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.fit(ids, target, epochs=epochs, batch_size=64, verbose=0)
    chosen = model.predict(test_ids, verbose=0)  # training=False: the MAP selection
    return {"precision": precision(chosen, test_target), "padding selected": float(chosen[test_ids == 0].sum())}


def torch_shared_options(steps: int) -> dict[str, float | str]:
    import torch

    ids, relevance, target = token_data(512, seed=4)
    options = ims.OracleOptions(backend="numpy", on_failure="skip")  # once, for the layer and the loss
    problem = ims.KSubset(N, K)
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(VOCAB, 1)
    loss_fn = ims.torch.FenchelYoungLoss(problem, sigma=0.5, samples=4, oracle_options=options, seed=0)
    layer = ims.torch.IMLELayer(problem, ims.IMLE(noise=ims.Gumbel()), oracle_options=options, seed=0)
    optimiser = torch.optim.Adam(embedding.parameters(), lr=0.1)
    x, y = torch.as_tensor(ids), torch.as_tensor(target)
    for _ in range(steps):
        theta = embedding(x).squeeze(-1)
        loss = loss_fn(theta, y, mask=x != 0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    layer.eval()
    z, status = layer(embedding(x).squeeze(-1).detach(), mask=x != 0)
    return {"precision": precision(z.numpy(), target), "failed instances": float((status == 2).sum()),
            "backend": f"{layer.oracle.solver.backend}, {loss_fn.oracle.solver.backend}"}


def main(steps: int = 150, epochs: int = 8) -> dict[str, dict | float]:
    import imle_solvers.jax  # noqa: F401
    import imle_solvers.tensorflow  # noqa: F401
    import imle_solvers.torch  # noqa: F401

    test_ids, _, _ = token_data(256, seed=1)
    return {
        "chance precision": float(np.mean(K / (test_ids != 0).sum(axis=1))),  # K of a row's tokens at random
        "jax": jax_adaptive_and_exported(steps),
        "keras": keras_mask_from_upstream(epochs),
        "torch": torch_shared_options(steps),
    }


if __name__ == "__main__":
    for name, result in main().items():
        print(name, result)
