"""benchmarks/study_imle_gap.py: its swaps are what they claim. Given PyEPO's own noise
draws, our I-MLE (one-sided, and the study's two-sided wrapper) gives PyEPO's
``implicitMLE`` outputs and gradients; the paired summary is the per-seed difference."""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyepo")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("study_imle_gap", BENCHMARKS / "study_imle_gap.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_imle_gap"] = module  # its dataclasses look their module up
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyEPO's import-time notices
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def batch(study):
    """PyEPO's 5x5 shortest path: a small batch of true paths and noisy predicted costs."""
    import numpy as np

    import imle_solvers as ims
    from imle_solvers import data

    problem = data.shortest_path_problem((5, 5))
    rng = np.random.default_rng(0)
    c = rng.uniform(0.5, 2.0, size=(8, 40))
    w = ims.MAPOracle(problem)(c)
    predicted = torch.from_numpy(c + rng.normal(0.0, 0.5, size=c.shape)).float()
    return problem, predicted, torch.from_numpy(w).float()


def _pyepo_step(study, predicted, w, two_sides: bool, seed: int):
    from pyepo.func import implicitMLE
    from pyepo.model.ort import shortestPathModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = implicitMLE(shortestPathModel((5, 5)), n_samples=10, sigma=1.0, lambd=10, two_sides=two_sides,
                             processes=1, distribution=study.pyepo_distribution(seed))
    cp = predicted.clone().requires_grad_()
    out = module(cp)
    torch.nn.L1Loss()(out, w).backward()
    return out.detach(), cp.grad


def _our_step(study, problem, estimator, predicted, w):
    import imle_solvers as ims

    layer = ims.torch.IMLELayer(problem, estimator)
    cp = predicted.clone().requires_grad_()
    out = layer(cp)
    torch.nn.L1Loss()(out, w).backward()
    return out.detach(), cp.grad


@pytest.mark.parametrize("two_sides", [False, True])
def test_with_pyepos_noise_draws_our_imle_is_pyepos(study, batch, two_sides):
    problem, predicted, w = batch
    noise = study.PyEPONoise(study.pyepo_distribution(3))
    if two_sides:
        estimator = study.TwoSidedIMLE(noise, noise_temperature=1.0, lambda_=10.0, marginal_samples=10)
    else:
        estimator = study.estimator(noise)
    ours, our_grad = _our_step(study, problem, estimator, predicted, w)
    theirs, their_grad = _pyepo_step(study, predicted, w, two_sides, 3)
    assert torch.equal(ours, theirs)
    assert their_grad.abs().sum() > 0  # the check below compares something
    # PyEPO divides by lambda + 1e-7: a relative difference of 1e-8
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-6, atol=1e-9)


def test_our_default_noise_sign_is_the_opposite_of_pyepos(study, batch):
    """With the same draws eps, our IMLE's states are MAP(c - eps) (the max problem over -c
    perturbed by +eps), and with the study's Negated noise PyEPO's MAP(c + eps)."""
    import imle_solvers as ims

    problem, predicted, _ = batch
    oracle = ims.MAPOracle(problem)
    draws = study.pyepo_distribution(5).sample(size=(8, 1, 10, 40), device="cpu", dtype=torch.float32)

    def states(perturbed):  # the mean over the 10 perturbations of the MAP states, (8, 40)
        return torch.from_numpy(oracle(perturbed.reshape(-1, 40).double().numpy())).float().reshape(8, 10, 40).mean(1)

    def ours(noise):
        solve = lambda x: torch.from_numpy(oracle(x.double().numpy())).float()
        return study.estimator(noise).sample(predicted, solve, sign=-1, rng=None)[0]

    minus, plus = states(predicted[:, None, None, :] - draws), states(predicted[:, None, None, :] + draws)
    assert not torch.equal(minus, plus)  # the sign matters for these draws
    torch.testing.assert_close(ours(_Fixed(draws)), minus)
    torch.testing.assert_close(ours(study.Negated(_Fixed(draws))), plus)


class _Fixed:
    """A noise 'distribution' that returns the given draws."""

    def __init__(self, draws):
        self.draws = draws

    def sample(self, source, shape):
        assert tuple(shape) == tuple(self.draws.shape)
        return self.draws


def test_summary_pairs_each_variant_with_pyepo_and_ours_on_common_seeds(study):
    rows = study.summary({"PyEPO": {0: 0.2, 1: 0.1}, "ours": {1: 0.4}, "x": {0: 0.1, 1: 0.3, 2: 0.5}})
    x = rows["x"]
    assert x["seeds"] == 3 and x["mean"] == pytest.approx(0.3)
    assert x["se"] == pytest.approx(0.2 / math.sqrt(3))
    to_pyepo = x["minus_pyepo"]
    assert to_pyepo["seeds"] == 2 and to_pyepo["below"] == 1
    assert to_pyepo["mean"] == pytest.approx(0.05)  # (-0.1 + 0.2) / 2
    assert to_pyepo["se"] == pytest.approx(0.15)  # sd of (-0.1, 0.2) / sqrt(2)
    assert to_pyepo["relative"] == pytest.approx(0.05 / 0.15)
    assert x["minus_ours"] == {"seeds": 1, "mean": pytest.approx(-0.1), "se": 0.0, "below": 1,
                               "relative": pytest.approx(-0.25)}
    assert "minus_pyepo" not in rows["PyEPO"] and "minus_ours" not in rows["ours"]
