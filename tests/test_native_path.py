"""The default path stays in the framework: native noise (moments, repeatability, dtype,
device), array-native solvers with no host callback (jaxpr, TensorFlow graph, no host copy
in torch), checkpointed generators, and validate_args."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError
from imle_solvers.noise import JaxSource, TensorFlowSource, TorchSource
from test_noise import EULER_GAMMA, exact_moments

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

NOISES = {
    "gumbel": ims.Gumbel(),
    "sum-of-gamma": ims.SumOfGamma(k=5.0),
    "sum-of-gamma-exact": ims.SumOfGamma(k=5.0, method="exact"),
}
N_DRAWS = 200_000
KSUBSET = ims.KSubset(n=12, k=3)


def torch_source(seed, dtype="float32"):
    torch = pytest.importorskip("torch")
    return TorchSource(torch.Generator().manual_seed(seed), getattr(torch, dtype), "cpu")


def jax_source(seed, dtype="float32"):
    jax = pytest.importorskip("jax")
    return JaxSource(jax.random.key(seed), dtype)


def tf_source(seed, dtype="float32"):
    tf = pytest.importorskip("tensorflow")
    counter = itertools.count()
    return TensorFlowSource(lambda: tf.constant([seed, next(counter)], tf.int32), getattr(tf, dtype))


SOURCES = {"torch": torch_source, "jax": jax_source, "tensorflow": tf_source}


def as_numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


@pytest.mark.parametrize("noise_name", list(NOISES))
@pytest.mark.parametrize("framework", list(SOURCES))
def test_native_draws_have_the_exact_moments(framework, noise_name):
    noise = NOISES[noise_name]
    draws = as_numpy(noise.sample(SOURCES[framework](1), (N_DRAWS,))).astype(np.float64)
    if noise_name == "gumbel":
        mean, variance = EULER_GAMMA, np.pi**2 / 6
        mean_se, variance_se = np.sqrt(variance / N_DRAWS), np.sqrt((2.4 * 6 * variance**2) / N_DRAWS)
    else:
        mean, variance, mean_se, variance_se = exact_moments(5.0, 10)
        scale = np.sqrt(1_000_000 / N_DRAWS)
        mean_se, variance_se = scale * mean_se, scale * variance_se
    assert abs(draws.mean() - mean) < 4 * mean_se
    assert abs(draws.var() - variance) < 4 * variance_se


@pytest.mark.parametrize("noise_name", list(NOISES))
@pytest.mark.parametrize("framework", list(SOURCES))
def test_native_draws_repeat_for_a_seed_and_keep_the_dtype(framework, noise_name):
    noise = NOISES[noise_name]
    a, b, c = (as_numpy(noise.sample(SOURCES[framework](seed), (4, 1, 1, 7))) for seed in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (4, 1, 1, 7) and a.dtype == np.float32
    if framework != "jax":  # JAX's float64 needs x64
        assert as_numpy(noise.sample(SOURCES[framework](3, "float64"), (5,))).dtype == np.float64


# --- torch ----------------------------------------------------------------------------


def torch_steps(layer, thetas, upstream):
    torch = pytest.importorskip("torch")
    outputs = []
    for theta in thetas:
        leaf = torch.tensor(theta, requires_grad=True)
        z = layer(leaf)
        (z * torch.tensor(upstream)).sum().backward()
        outputs.append(z.detach().numpy())
    return outputs


@pytest.mark.parametrize("noise_source", ["native", "numpy"])
def test_a_resumed_torch_layer_draws_what_an_uninterrupted_one_would(noise_source, rng):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    estimator = ims.AIMLE(ims.SumOfGamma(k=3.0))
    thetas, upstream = rng.normal(size=(5, 4, KSUBSET.n)), rng.normal(size=(4, KSUBSET.n))
    uninterrupted = IMLELayer(KSUBSET, estimator, seed=9, noise_source=noise_source)
    torch_steps(uninterrupted, thetas[:2], upstream)
    checkpoint = uninterrupted.state_dict()
    expected = torch_steps(uninterrupted, thetas[2:], upstream)

    resumed = IMLELayer(KSUBSET, estimator, seed=9, noise_source=noise_source)
    torch.save(checkpoint, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for got, want in zip(torch_steps(resumed, thetas[2:], upstream), expected):
        np.testing.assert_array_equal(got, want)
    assert resumed.estimator_state == uninterrupted.estimator_state
    fresh = torch_steps(IMLELayer(KSUBSET, estimator, seed=9, noise_source=noise_source), thetas[2:], upstream)
    assert not np.array_equal(fresh[0], expected[0]), "the checkpoint, not the seed, decides"


def test_a_torch_layer_without_seed_follows_torch_manual_seed(rng):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    theta = rng.normal(size=(4, KSUBSET.n))
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(torch_steps(IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel())), [theta], theta)[0])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_native_noise_has_theta_dtype(dtype):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(KSUBSET, ims.IMLE(ims.SumOfGamma(k=3.0)), seed=0)
    theta = torch.zeros(2, KSUBSET.n, dtype=getattr(torch, dtype))
    noise = layer.estimator.draw(theta, layer.noise.source(theta))
    assert noise.dtype == theta.dtype and noise.device == theta.device and noise.shape == (2, 1, 1, KSUBSET.n)


@pytest.mark.parametrize("validate_args", [True, False])
def test_a_torch_k_subset_step_never_copies_to_the_host(monkeypatch, rng, validate_args):
    pytest.importorskip("torch")
    from imle_solvers import oracle
    from imle_solvers.torch import IMLELayer

    def refuse(x):
        raise AssertionError("copied to the host")

    monkeypatch.setattr(oracle, "to_numpy", refuse)
    layer = IMLELayer(KSUBSET, ims.IMLE(ims.SumOfGamma(k=3.0)), seed=0, validate_args=validate_args)
    (z,) = torch_steps(layer, [rng.normal(size=(6, KSUBSET.n))], rng.normal(size=(6, KSUBSET.n)))
    np.testing.assert_array_equal(z.sum(axis=1), 3)


def test_torch_validate_args():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    theta = torch.zeros(3, KSUBSET.n)
    theta[2, 5] = float("nan")
    with pytest.raises(InvalidInputError, match=r"theta: batch index 2 holds a non-finite value \(nan\)"):
        IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel()))(theta)
    z = IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel()), validate_args=False)(theta)  # the caller vouches
    assert z.shape == theta.shape
    with pytest.raises(InvalidInputError, match=r"expected shape \(B, 12\)"):
        IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel()), validate_args=False)(torch.zeros(3, 11))


def upstream_with_a_bad_row(rng) -> tuple[np.ndarray, np.ndarray]:
    theta = rng.normal(size=(3, KSUBSET.n)).astype(np.float32)
    upstream = rng.normal(size=(3, KSUBSET.n)).astype(np.float32)
    upstream[1, 0] = np.inf
    return theta, upstream


def keras_gradient(theta, upstream, **layer_options):
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    t = tf.constant(theta)
    with tf.GradientTape() as tape:
        tape.watch(t)
        z = IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=0, **layer_options)(t)
    return tape.gradient(z, t, output_gradients=tf.constant(upstream)).numpy()


def jax_gradient(theta, upstream, **options):
    jax = pytest.importorskip("jax")
    from imle_solvers.jax import imle

    f = imle(KSUBSET, ims.IMLE(ims.Gumbel(), lambda_=10.0), **options)
    _, pullback = jax.vjp(lambda t: f(t, jax.random.key(0)), jax.numpy.asarray(theta))
    return np.asarray(pullback(jax.numpy.asarray(upstream))[0])


def torch_gradient(theta, upstream, **layer_options):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    t = torch.tensor(theta, requires_grad=True)
    IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=0, **layer_options)(t).backward(torch.tensor(upstream))
    return t.grad.numpy()


@pytest.mark.parametrize("gradient", [torch_gradient, jax_gradient, keras_gradient], ids=["torch", "jax", "keras"])
def test_a_non_finite_upstream_row_gives_a_nan_gradient_row(gradient, rng):
    """Backward reads nothing back from the device: the bad row's gradient is NaN rather
    than a number computed from a meaningless target; the other rows are untouched."""
    theta, upstream = upstream_with_a_bad_row(rng)
    checked = gradient(theta, upstream)
    assert np.isnan(checked[1]).all() and np.isfinite(checked[[0, 2]]).all()
    assert np.abs(checked[[0, 2]]).sum() > 0
    unchecked = gradient(theta, upstream, validate_args=False)
    np.testing.assert_array_equal(unchecked[[0, 2]], checked[[0, 2]])


def test_finite_upstream_gradients_whose_sum_overflows_are_not_poisoned():
    """The host check reads one sum; a sum that overflows to infinity must not make finite
    rows NaN (it falls back to the exact per-row check)."""
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    theta = torch.randn(3, KSUBSET.n, dtype=torch.float32, requires_grad=True)
    upstream = torch.full((3, KSUBSET.n), 3e38, dtype=torch.float32)  # each finite, their sum inf
    assert not torch.isfinite(upstream.sum())
    IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=0)(theta).backward(upstream)
    assert torch.isfinite(theta.grad).all()


def test_torch_noise_source_is_checked():
    pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    with pytest.raises(InvalidInputError, match="noise_source must be 'native' or 'numpy', got 'cuda'"):
        IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel()), noise_source="cuda")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA device")
def test_a_cuda_k_subset_step_never_synchronises():
    import torch

    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(ims.KSubset(n=1000, k=10), ims.IMLE(ims.SumOfGamma(k=10)), seed=0, validate_args=False)
    theta = torch.randn(64, 1000, device="cuda", requires_grad=True)
    upstream = torch.randn(64, 1000, device="cuda")
    (layer(theta) * upstream).sum().backward()  # warm-up: tables reach the device once
    torch.cuda.set_sync_debug_mode("error")
    try:
        (layer(theta) * upstream).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --- JAX ------------------------------------------------------------------------------


def jax_loss(f, w):
    jnp = pytest.importorskip("jax").numpy
    return lambda theta, key: jnp.sum(f(theta, key) * w)


@pytest.mark.parametrize("noise", [ims.Gumbel(), ims.SumOfGamma(k=3.0), None], ids=["gumbel", "sum-of-gamma", "none"])
def test_a_jax_k_subset_step_is_jax_ops_only(noise, rng):
    jax = pytest.importorskip("jax")
    from imle_solvers.jax import imle

    theta, w = (jax.numpy.asarray(rng.normal(size=(4, KSUBSET.n)), dtype="float32") for _ in range(2))
    key = jax.random.key(0)
    unchecked = imle(KSUBSET, ims.IMLE(noise), validate_args=False)
    jaxpr = str(jax.make_jaxpr(jax.grad(jax_loss(unchecked, w)))(theta, key))
    assert "callback" not in jaxpr
    checked = str(jax.make_jaxpr(jax.grad(jax_loss(imle(KSUBSET, ims.IMLE(noise)), w)))(theta, key))
    assert "callback" not in checked  # theta's check is on the device too (NaN rows where it fails)


def test_jax_native_noise_under_jit_and_vmap(rng):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    from imle_solvers.jax import imle

    f = imle(KSUBSET, ims.IMLE(ims.SumOfGamma(k=3.0), lambda_=5.0))
    thetas = jnp.asarray(rng.normal(size=(3, 4, KSUBSET.n)), dtype="float32")
    ws = jnp.asarray(rng.normal(size=(3, 4, KSUBSET.n)), dtype="float32")
    keys = jax.random.split(jax.random.key(1), 3)
    grad = jax.grad(lambda t, w, key: jnp.sum(f(t, key) * w))
    z_mapped = jax.jit(jax.vmap(f))(thetas, keys)
    g_mapped = jax.jit(jax.vmap(grad))(thetas, ws, keys)
    for i in range(3):
        np.testing.assert_array_equal(z_mapped[i], f(thetas[i], keys[i]))
        np.testing.assert_allclose(g_mapped[i], grad(thetas[i], ws[i], keys[i]), atol=1e-6)
    assert z_mapped.dtype == g_mapped.dtype == jnp.float32
    assert not np.array_equal(z_mapped[0], f(thetas[0], keys[1])), "the key decides the noise"
    assert np.abs(np.asarray(g_mapped)).sum() > 0


def test_jax_traced_validation_poisons_the_bad_row_and_eager_names_it():
    jax = pytest.importorskip("jax")
    from imle_solvers.jax import imle

    f = imle(KSUBSET, ims.IMLE(ims.Gumbel()))
    theta = np.zeros((3, KSUBSET.n), np.float32)
    theta[2, 4] = np.inf
    z = np.asarray(jax.jit(f)(theta, jax.random.key(0)))
    assert np.isnan(z[2]).all() and np.array_equal(z[:2].sum(axis=1), [KSUBSET.k] * 2)
    with pytest.raises(InvalidInputError, match=r"theta: batch index 2 holds a non-finite value \(inf\)"):
        f(theta, jax.random.key(0))  # eagerly: our own error type
    jax.block_until_ready(jax.jit(imle(KSUBSET, ims.IMLE(ims.Gumbel()), validate_args=False))(theta, jax.random.key(0)))


# --- TensorFlow -----------------------------------------------------------------------

HOST_CALL_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def keras_step(layer, w):
    tf = pytest.importorskip("tensorflow")

    def step(theta):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = tf.reduce_sum(layer(theta) * w)
        return tape.gradient(loss, theta)

    return step


def test_a_keras_k_subset_step_has_no_host_call_in_its_graph(rng):
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(KSUBSET, ims.IMLE(ims.SumOfGamma(k=3.0)), seed=0)
    w = tf.constant(rng.normal(size=(4, KSUBSET.n)), tf.float32)
    graph = tf.function(keras_step(layer, w)).get_concrete_function(tf.TensorSpec((None, KSUBSET.n))).graph

    def op_types(g):
        yield from (op.type for op in g.get_operations())
        for function in g._functions.values():
            yield from (node.op for node in function.definition.node_def)

    types = set(op_types(graph))
    assert "TopKV2" in types and not types & HOST_CALL_OPS


def test_keras_xla_step_with_and_without_validation(rng):
    """XLA compiles the whole step; its stateless draws differ from TensorFlow's own kernels,
    so the check is the formula: z has k ones, and the gradient is (z - z') / lambda."""
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    theta = tf.constant(rng.normal(size=(4, KSUBSET.n)), tf.float32)
    w = tf.constant(rng.normal(size=(4, KSUBSET.n)), tf.float32)
    layers = [IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=2, validate_args=False) for _ in range(2)]
    assert layers[0].supports_jit and IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel())).supports_jit
    steps = [tf.function(keras_step(layer, w), jit_compile=True) for layer in layers]
    first, second = steps[0](theta).numpy(), steps[0](theta).numpy()
    np.testing.assert_array_equal(steps[1](theta), first)  # deterministic for a seed
    assert not np.array_equal(first, second)  # fresh noise each call
    for grad in (first, second):
        np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)
        assert set(np.round(grad.ravel() * 10, 5)) <= {-1.0, 0.0, 1.0}
    # with the default validation the step compiles too: inside XLA a bad row is NaN
    checked = IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=2)
    forward = tf.function(lambda t: checked(t), jit_compile=True)
    np.testing.assert_array_equal(forward(theta).numpy().sum(axis=1), KSUBSET.k)
    bad = theta.numpy()
    bad[1, 3] = np.nan
    z = forward(tf.constant(bad)).numpy()
    assert np.isnan(z[1]).all() and not np.isnan(z[[0, 2, 3]]).any()


def test_keras_graph_validation_names_the_batch_index():
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(KSUBSET, ims.IMLE(ims.Gumbel()), seed=0)
    theta = np.zeros((3, KSUBSET.n), np.float32)
    theta[1, 2] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"theta: batch index 1 holds a non-finite value \(nan\)"):
        tf.function(layer)(tf.constant(theta))


def test_a_restored_keras_layer_draws_what_the_saved_one_would(tmp_path, rng):
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from imle_solvers.tensorflow import IMLELayer

    theta = tf.constant(rng.normal(size=(4, KSUBSET.n)), tf.float32)

    def model(layer):
        return keras.Sequential([keras.Input((KSUBSET.n,)), layer])

    saved = IMLELayer(KSUBSET, ims.IMLE(ims.SumOfGamma(k=3.0)), seed=4)
    saved(theta)
    model(saved).save_weights(tmp_path / "m.weights.h5")
    expected = [saved(theta).numpy() for _ in range(2)]
    restored = IMLELayer(KSUBSET, ims.IMLE(ims.SumOfGamma(k=3.0)), seed=4)
    model(restored).load_weights(tmp_path / "m.weights.h5")
    for want in expected:
        np.testing.assert_array_equal(restored(theta).numpy(), want)
