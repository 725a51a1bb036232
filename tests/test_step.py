"""The step under the three bindings: each framework's conventions, through one core.

Every binding takes optional data as ``None`` and one instance's data for all, refuses
integer scores with our error, takes its options as keywords or as option objects, and
reports the solver that runs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.options import NoiseOptions, OracleOptions

KSUBSET = ims.KSubset(10, 3)
FRAMEWORKS = ["torch", "jax", "tensorflow"]


def layer_and_call(framework: str, problem: ims.Problem, estimator, **options):
    """A binding's layer of ``problem`` and ``call(theta, **data) -> numpy z`` in training mode."""
    if framework == "torch":
        pytest.importorskip("torch")
        import torch

        layer = ims.torch.IMLELayer(problem, estimator, seed=0, **options)
        return layer, lambda theta, **data: layer(torch.as_tensor(theta), **data).detach().numpy()
    if framework == "jax":
        jax = pytest.importorskip("jax")
        import imle_solvers.jax

        f = ims.jax.imle(problem, estimator, **options)
        return f, lambda theta, **data: np.asarray(f(jax.numpy.asarray(theta), jax.random.key(0), **data))
    pytest.importorskip("tensorflow")
    import imle_solvers.tensorflow

    layer = ims.tensorflow.IMLELayer(problem, estimator, seed=0, **options)
    return layer, lambda theta, **data: layer(theta, **data).numpy()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_optional_data_take_none_and_one_instance_for_all(framework):
    _, call = layer_and_call(framework, KSUBSET, ims.IMLE(noise=None))
    theta = np.arange(40, dtype=np.float32).reshape(4, 10)
    z = call(theta, mask=None, k=None)
    np.testing.assert_array_equal(z, np.eye(10, dtype=np.float32)[[7, 8, 9]].sum(0)[None].repeat(4, 0))
    z = call(theta, k=2)  # a scalar k: every instance's
    np.testing.assert_array_equal(z.sum(axis=1), [2] * 4)
    mask = np.ones(10, bool)
    mask[9] = False  # one mask for all
    z = call(theta, mask=mask, k=np.int64(1))
    np.testing.assert_array_equal(z.argmax(axis=1), [8] * 4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_data_that_passed_once_are_still_checked_every_call(framework):
    """After a call whose data passed the host's checks, later calls with the same fields are
    checked in their framework; a bad instance still gets the host's worded error."""
    _, call = layer_and_call(framework, KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    theta = np.zeros((3, 10), np.float32)
    good = np.ones((3, 10), bool)
    for _ in range(2):
        assert call(theta, mask=good, k=np.array([1, 2, 3])).sum() == 6
    short = good.copy()
    short[2, 2:] = False  # 2 selectable items, k = 3
    with pytest.raises(ims.InvalidInputError, match="mask: batch index 2 leaves 2 selectable items, fewer than k=3"):
        call(theta, mask=short, k=np.array([1, 2, 3]))
    with pytest.raises(ims.InvalidInputError, match="k: batch index 1 holds k=11, outside 1..n=10"):
        call(theta, mask=good, k=np.array([1, 11, 3]))
    grid = ims.GridShortestPath(3, 3)  # the ends: a field given once, then a bad one
    _, route = layer_and_call(framework, grid, ims.IMLE(noise=None))
    costs = np.ones((2, 3, 3), np.float32)
    route(costs, source=np.array([[0, 0], [1, 1]]))
    with pytest.raises(ims.InvalidInputError, match="source: batch index 1 is .*outside the 3x3 grid"):
        route(costs, source=np.array([[0, 0], [3, 0]]))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_integer_scores_are_refused_with_our_error(framework):
    _, call = layer_and_call(framework, KSUBSET, ims.IMLE(noise=ims.Gumbel()))
    with pytest.raises(ims.InvalidInputError, match=r"^theta: expected real numbers \(a floating dtype\), got dtype int"):
        call(np.ones((2, 10), np.int32))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_options_as_objects_or_keywords(framework):
    shared = OracleOptions(backend="numpy", on_failure="skip")
    layer, _ = layer_and_call(framework, KSUBSET, ims.IMLE(noise=None), oracle_options=shared, chunk_size=3)
    assert layer.oracle.solver.backend == "numpy" and layer.oracle.on_failure == "skip"
    assert layer.oracle.chunk_size == 3  # a keyword beside the object overrides its field
    with pytest.raises(ims.InvalidInputError, match="oracle_options must be a OracleOptions"):
        layer_and_call(framework, KSUBSET, ims.IMLE(noise=None), oracle_options={"backend": "numpy"})
    with pytest.raises(ims.InvalidInputError, match="noise_source must be 'native' or 'numpy'"):
        NoiseOptions(noise_source="cuda")


def test_unknown_keywords_name_the_options():
    pytest.importorskip("torch")
    import imle_solvers.torch

    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) n_job; the options are backend, n_jobs"):
        ims.torch.IMLELayer(KSUBSET, ims.IMLE(), n_job=2)
    jax = pytest.importorskip("jax")  # noqa: F841
    import imle_solvers.jax

    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) seed"):
        ims.jax.imle(KSUBSET, ims.IMLE(), seed=0)  # a JAX call takes a key


def test_a_jax_layer_reports_the_solver_that_runs():
    jax = pytest.importorskip("jax")
    import imle_solvers.jax

    f = ims.jax.imle(ims.GridShortestPath(5, 5), ims.IMLE(noise=ims.Gumbel()))
    assert f.oracle.solver.backend == "bellman-ford" and "backend='bellman-ford'" in repr(f)
    jaxpr = str(jax.make_jaxpr(lambda t: f(t, jax.random.key(0)))(jax.numpy.ones((2, 5, 5))))
    assert "callback" not in jaxpr  # what it reports is what runs
    chosen = ims.jax.imle(ims.GridShortestPath(5, 5), ims.IMLE(noise=ims.Gumbel()), backend="scipy")
    assert chosen.oracle.solver.backend == "scipy"


def test_the_keras_layer_refuses_other_keras_backends_clearly():
    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    code = ("import imle_solvers as ims, imle_solvers.tensorflow\n"
            "ims.tensorflow.IMLELayer(ims.KSubset(4, 2), ims.IMLE())\n")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "IMLELayer runs on Keras' TensorFlow backend, and KERAS_BACKEND is 'jax': use imle_solvers.jax" in result.stderr
