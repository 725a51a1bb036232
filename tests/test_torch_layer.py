"""The PyTorch binding: the same numbers as the framework-free estimator, tensor
dtype/device kept, eval mode, the wrapper for users' solvers, checkpointed state."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import imle_solvers as ims  # noqa: E402
from imle_solvers.adapters import resolve_solver  # noqa: E402
from imle_solvers.adapters.topk import topk_mask  # noqa: E402
from imle_solvers.errors import InvalidInputError  # noqa: E402
from imle_solvers.torch import IMLELayer, TorchFunctionProblem, imle  # noqa: E402


def numpy_reference(problem, estimator, theta, grad_z, seed):
    oracle = ims.MAPOracle(problem)
    z, residuals = estimator.sample(theta, oracle, sign=problem.sign, rng=np.random.default_rng(seed))
    grad, _ = estimator.gradient(residuals, grad_z, oracle)
    return z, grad


@pytest.mark.filterwarnings("ignore::imle_solvers.NegativeCostWarning")
@pytest.mark.parametrize(
    "problem, estimator",
    [
        (ims.KSubset(8, 3), ims.IMLE(ims.SumOfGamma(k=3), lambda_=5.0, samples=2)),
        (ims.GridShortestPath(5, 5), ims.IMLE(ims.SumOfGamma(k=6), lambda_=10.0)),
        (ims.KSubset(8, 3), ims.STE(ims.Gumbel())),
    ],
)
def test_layer_matches_the_numpy_estimator(rng, problem, estimator):
    theta = rng.uniform(0.5, 2.0, size=(4, *problem.shape))
    out_shape = (4, 2, *problem.shape) if estimator.samples > 1 else theta.shape
    grad_z = rng.normal(size=out_shape)
    expected_z, expected_grad = numpy_reference(problem, estimator, theta, grad_z, seed=3)

    layer = IMLELayer(problem, estimator, seed=3, noise_source="numpy")
    theta_t = torch.tensor(theta, requires_grad=True)
    z = layer(theta_t)
    z.backward(torch.tensor(grad_z))
    np.testing.assert_array_equal(z.detach().numpy(), expected_z)
    np.testing.assert_allclose(theta_t.grad.numpy(), expected_grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_device_and_non_contiguous_input(dtype):
    layer = IMLELayer(ims.GridShortestPath(4, 4), ims.IMLE(ims.SumOfGamma(k=5)), seed=0)
    theta = (torch.rand(4, 4, 4, dtype=dtype) + 0.5).requires_grad_(True)
    theta_view = theta.transpose(1, 2)
    assert not theta_view.is_contiguous()
    z = layer(theta_view)
    assert z.dtype == dtype and z.device == theta.device and z.shape == (4, 4, 4)
    z.sum().backward()
    assert theta.grad.dtype == dtype and theta.grad.shape == theta.shape


def test_eval_mode_returns_the_map_state_without_gradient(rng):
    problem = ims.KSubset(6, 2)
    layer = IMLELayer(problem, ims.IMLE(ims.Gumbel(), samples=3), seed=0).eval()
    theta = torch.tensor(rng.normal(size=(5, 6)), requires_grad=True)
    z = layer(theta)
    assert z.grad_fn is None and z.shape == (5, 6)
    np.testing.assert_array_equal(z.numpy(), topk_mask(theta.detach().numpy(), 2))


def test_layer_rejects_bad_input_naming_the_batch_index():
    layer = IMLELayer(ims.KSubset(4, 2), ims.IMLE())
    theta = torch.zeros(3, 4)
    theta[2, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="batch index 2"):
        layer(theta)
    with pytest.raises(InvalidInputError, match=r"expected shape \(B, 4\)"):
        layer(torch.zeros(3, 5))


def test_aimle_state_is_part_of_the_state_dict(rng):
    estimator = ims.AIMLE(ims.Gumbel(), initial_beta=1.0)
    layer = IMLELayer(ims.KSubset(6, 2), estimator, seed=0)
    for _ in range(3):
        theta = torch.tensor(rng.normal(size=(4, 6)), requires_grad=True)
        layer(theta).sum().backward()
    assert layer.estimator_state.steps == 3
    saved = layer.state_dict()
    fresh = IMLELayer(ims.KSubset(6, 2), estimator)
    fresh.load_state_dict(saved)
    assert fresh.estimator_state == layer.estimator_state


def test_imle_wrapper_makes_a_user_solver_differentiable(rng):
    calls = []

    def one_hot_argmax(theta):
        calls.append(theta)
        return torch.nn.functional.one_hot(theta.argmax(dim=-1), theta.shape[-1])

    argmax_one_hot = imle(TorchFunctionProblem(one_hot_argmax, (3,), binary=True), ims.IMLE(lambda_=2.0), seed=0)
    theta = torch.tensor([[0.0, 1.0, 0.5]], requires_grad=True)
    z = argmax_one_hot(theta)
    assert z.dtype == theta.dtype and torch.equal(z, torch.tensor([[0.0, 1.0, 0.0]]))
    z.backward(torch.tensor([[0.0, 1.0, 0.0]]))  # the loss dislikes item 1
    # target theta - 2 g = (0, -1, 0.5) -> item 2; gradient (z - z') / 2
    np.testing.assert_allclose(theta.grad.numpy(), [[0.0, 0.5, -0.5]])
    assert all(isinstance(t, torch.Tensor) for t in calls)


def test_torch_function_problem_lives_in_problems():
    import imle_solvers.problems
    import imle_solvers.torch

    assert TorchFunctionProblem is imle_solvers.problems.TorchFunctionProblem is ims.TorchFunctionProblem
    assert TorchFunctionProblem.__module__ == "imle_solvers.problems.torch_function"
    assert "TorchFunctionProblem" in imle_solvers.torch.__all__
    entry = resolve_solver(TorchFunctionProblem.kind)
    assert entry.solve.__module__ == "imle_solvers.adapters.torch_function"
    assert entry.batched and not entry.inline and entry.runs_on("torch") and entry.requires == ("torch",)


def test_imle_wrapper_for_a_min_solver():
    def one_hot_argmin(costs):
        return torch.nn.functional.one_hot(costs.argmin(dim=-1), costs.shape[-1])

    argmin_one_hot = imle(TorchFunctionProblem(one_hot_argmin, (3,), "min"), ims.IMLE(lambda_=1.0))
    costs = torch.tensor([[1.0, 0.0, 0.5]], requires_grad=True)
    argmin_one_hot(costs).backward(torch.tensor([[0.0, 1.0, 0.0]]))
    # costs + g = (1, 1, 0.5) -> item 2; gradient (z' - z) / 1 raises item 1's cost
    np.testing.assert_allclose(costs.grad.numpy(), [[0.0, -1.0, 1.0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("problem", [ims.KSubset(8, 3), ims.GridShortestPath(4, 4)], ids=["k-subset", "grid"])
def test_cuda_tensors_stay_on_their_device(problem):
    theta = (torch.rand(5, *problem.shape, device="cuda", dtype=torch.float64) + 0.5).requires_grad_(True)
    layer = IMLELayer(problem, ims.IMLE(ims.SumOfGamma(k=3)), seed=0, noise_source="numpy")
    z = layer(theta)
    assert z.device == theta.device and z.dtype == theta.dtype
    z.sum().backward()
    assert theta.grad.device == theta.device
    expected_z, expected_grad = numpy_reference(problem, ims.IMLE(ims.SumOfGamma(k=3)), theta.detach().cpu().numpy(),
                                                np.ones(theta.shape), seed=0)
    np.testing.assert_array_equal(z.detach().cpu().numpy(), expected_z)
    np.testing.assert_allclose(theta.grad.cpu().numpy(), expected_grad)


def test_imle_wrapper_spreads_batches_over_workers_with_the_same_result(rng):
    def top2(theta):
        return torch.zeros_like(theta).scatter(1, theta.topk(2, dim=1).indices, 1.0)

    theta, upstream = rng.normal(size=(12, 6)), rng.normal(size=(12, 6))
    results = []
    for n_jobs in (1, 2):
        wrapped = imle(TorchFunctionProblem(top2, (6,)), ims.IMLE(ims.Gumbel(), lambda_=3.0), seed=5, n_jobs=n_jobs)
        theta_t = torch.tensor(theta, requires_grad=True)
        z = wrapped(theta_t)
        z.backward(torch.tensor(upstream))
        assert z.dtype == theta_t.dtype
        results.append((z.detach().numpy(), theta_t.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[1][0].sum(axis=1), 2.0)
