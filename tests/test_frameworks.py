"""One suite for every binding: torch, JAX and TensorFlow give the same z, gradients
and estimator state for the same theta, upstream gradient and seed."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import imle_solvers as ims
from imle_solvers.adapters import resolve_solver
from imle_solvers.errors import ImleSolversError

FRAMEWORKS = ("torch", "jax", "tensorflow")


def small_ilp() -> ims.ILP:
    """Two of five items, not both of the first two: max <theta, x>."""
    a = sp.csr_array(np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=float))
    return ims.ILP(
        variables=(ims.Variable("x", (5,)),),
        constraints=a,
        row_lower=np.array([2.0, -np.inf]),
        row_upper=np.array([2.0, 1.0]),
        theta_variables=("x",),
    )


def problems() -> list[Any]:
    """(problem, backend) cases. Each names one solver, so that every binding solves alike:
    with "auto", JAX (whose arrays are traced) would take the grid's bellman-ford where torch
    and Keras on a CPU take scipy, and the two break ties between equal paths differently.
    The ILP names SCIP (OR-Tools switches to SCIP where TensorFlow was imported first)."""
    cases = [
        pytest.param((ims.KSubset(n=8, k=3), "auto"), id="k-subset"),
        pytest.param((ims.GridShortestPath(5, 5), "scipy"), id="grid"),
        pytest.param((ims.GridShortestPath(5, 5), "bellman-ford"), id="grid-bellman-ford"),
    ]
    try:
        resolve_solver("ilp", "scip")
        ilp = pytest.param((small_ilp(), "scip"), id="ilp")
    except ImleSolversError as error:
        ilp = pytest.param((None, None), id="ilp", marks=pytest.mark.skip(reason=f"no ILP solver: {error}"))
    return [*cases, ilp]


ESTIMATORS = [
    pytest.param(ims.IMLE(noise=ims.SumOfGamma(k=3), lambda_=5.0), id="imle"),
    pytest.param(ims.IMLE(noise=ims.Gumbel(), lambda_=20.0, samples=2, marginal_samples=2), id="imle-2x2"),
    pytest.param(ims.AIMLE(noise=ims.Gumbel(), initial_beta=3.0), id="aimle"),
    pytest.param(ims.AIMLE(noise=ims.Gumbel(), initial_beta=3.0, symmetric=True), id="aimle-symmetric"),
    pytest.param(ims.STE(noise=ims.Gumbel()), id="ste"),
    pytest.param(ims.IMLE(noise=None, lambda_=10.0), id="imle-no-noise"),
    pytest.param(ims.STE(samples=2), id="ste-no-noise-2-samples"),
    pytest.param(ims.BlackboxDifferentiation(lambda_=10.0), id="blackbox"),
    pytest.param(ims.BlackboxDifferentiation(noise=ims.Normal(), lambda_=5.0, samples=2), id="blackbox-normal-2-samples"),
    pytest.param(ims.NegativeIdentity(noise=ims.Normal()), id="negative-identity"),
    pytest.param(ims.PerturbedOptimizer(ims.Normal(), noise_temperature=0.5, marginal_samples=3), id="perturbed-normal"),
    pytest.param(
        ims.PerturbedOptimizer(ims.Gumbel(), multiplicative=True, samples=2, marginal_samples=2),
        id="perturbed-gumbel-multiplicative-2x2",
    ),
]


@dataclass
class Result:
    z: np.ndarray
    grad: np.ndarray
    state: Any  # the estimator state after the backward pass


def seed() -> int:
    """The seed every binding uses: derived from a JAX key when JAX is there."""
    try:
        import jax
    except ImportError:
        return 20240607
    from imle_solvers.jax import numpy_seed

    return numpy_seed(jax.random.key(3))


def run_torch(problem, estimator, theta, grad_z, seed, backend="auto", data=None, **oracle_options) -> Result:
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    layer = IMLELayer(problem, estimator, backend=backend, seed=seed, noise_source="numpy", **oracle_options)
    t = torch.tensor(theta, requires_grad=True)
    z = layer(t, **{name: torch.as_tensor(value) for name, value in (data or {}).items()})
    z.backward(torch.tensor(grad_z))
    layer.oracle.close()  # a pool left open would keep loky's shared workers up for the whole session
    return Result(z.detach().numpy(), t.grad.numpy(), layer.estimator_state)


def run_jax(problem, estimator, theta, grad_z, seed, backend="auto", data=None, **oracle_options) -> Result:
    jax = pytest.importorskip("jax")
    from imle_solvers.jax import apply_state_update, imle

    f = imle(problem, estimator, backend=backend, noise_source="numpy", **oracle_options)
    key = jax.random.key(3)
    state = f.initial_state()
    args = () if state is None else (state,)
    arrays = {name: jax.numpy.asarray(value) for name, value in (data or {}).items()}
    z, pullback = jax.vjp(lambda t, *s: f(t, key, *s, **arrays), jax.numpy.asarray(theta), *args)
    grad, *update = pullback(jax.numpy.asarray(grad_z))
    f.oracle.close()
    new_state = None
    if state is not None:
        new_state = apply_state_update(state, update[0])
    return Result(np.asarray(z), np.asarray(grad), new_state)


def run_tensorflow(problem, estimator, theta, grad_z, seed, backend="auto", data=None, **oracle_options) -> Result:
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    layer = IMLELayer(problem, estimator, backend=backend, seed=seed, noise_source="numpy", **oracle_options)
    t = tf.constant(theta)
    with tf.GradientTape() as tape:
        tape.watch(t)
        z = layer(t, **{name: tf.constant(value) for name, value in (data or {}).items()})
    grad = tape.gradient(z, t, output_gradients=tf.constant(grad_z))
    layer.oracle.close()
    return Result(z.numpy(), grad.numpy(), layer.estimator_state)


RUNNERS: dict[str, Callable[..., Result]] = {"torch": run_torch, "jax": run_jax, "tensorflow": run_tensorflow}


def inputs(problem, estimator) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (4, *problem.shape)
    theta = rng.normal(size=shape)
    if problem.sense == "min":
        theta = np.abs(theta) + 0.5
    out = (4, *((estimator.samples,) if estimator.samples > 1 else ()), *problem.shape)
    return theta.astype(np.float32), rng.normal(size=out).astype(np.float32)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("case", problems())
def test_bindings_agree(case, estimator):
    problem, backend = case
    theta, grad_z = inputs(problem, estimator)
    s = seed()
    results = {}
    for name in FRAMEWORKS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        results[name] = RUNNERS[name](problem, estimator, theta, grad_z, s, backend)
    assert len(results) >= 2, "need two frameworks to compare"
    reference_name, reference = next(iter(results.items()))
    assert reference.z.shape == grad_z.shape
    assert np.abs(reference.grad).sum() > 0, "a case whose gradient is zero compares nothing"
    for name, result in results.items():
        where = f"{name} vs {reference_name}"
        np.testing.assert_array_equal(result.z, reference.z, err_msg=where)
        np.testing.assert_allclose(result.grad, reference.grad, rtol=1e-6, atol=1e-6, err_msg=where)
        if reference.state is None:
            assert result.state is None, where
        else:
            np.testing.assert_allclose(
                list(result.state.state_dict().values()), list(reference.state.state_dict().values()), rtol=1e-6
            )
            assert result.state.steps == 1, where


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_different_seeds_give_different_noise(framework):
    if framework == "jax":  # the key, not a seed argument, decides in JAX
        pytest.skip("JAX draws from its key; covered in test_jax.py")
    pytest.importorskip(framework)
    problem, estimator = ims.KSubset(n=50, k=10), ims.IMLE(noise=ims.Gumbel())
    theta, grad_z = inputs(problem, estimator)
    a = RUNNERS[framework](problem, estimator, np.zeros_like(theta), grad_z, 1)
    b = RUNNERS[framework](problem, estimator, np.zeros_like(theta), grad_z, 2)
    assert not np.array_equal(a.z, b.z)


def test_package_imports_without_frameworks():
    code = (
        "import sys, imle_solvers, imle_solvers.estimators, imle_solvers._binding;"
        "assert not {'jax', 'tensorflow', 'torch'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_missing_framework_names_the_extra(framework, monkeypatch):
    monkeypatch.setitem(sys.modules, framework, None)  # makes `import framework` fail
    monkeypatch.delitem(sys.modules, f"imle_solvers.{framework}", raising=False)
    with pytest.raises(ims.MissingDependencyError, match=rf"imle_solvers\[{framework}\]"):
        importlib.import_module(f"imle_solvers.{framework}")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bindings_solve_on_the_worker_pool_with_the_in_process_result(framework):
    problem, estimator = ims.GridShortestPath(5, 5), ims.IMLE(noise=ims.SumOfGamma(k=6), lambda_=5.0)
    theta, grad_z = inputs(problem, estimator)
    # scipy, a host solver, in every binding (auto would keep JAX's traced arrays in JAX)
    expected = RUNNERS[framework](problem, estimator, theta, grad_z, seed(), "scipy")
    pooled = RUNNERS[framework](problem, estimator, theta, grad_z, seed(), "scipy", n_jobs=2, chunk_size=1)
    np.testing.assert_array_equal(pooled.z, expected.z)
    np.testing.assert_allclose(pooled.grad, expected.grad)
