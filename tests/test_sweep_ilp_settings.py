"""benchmarks/sweep_ilp_settings.py: the solves per step it reports are I-MLE's count
(``S M`` forward and ``S M`` backward per instance, ``S`` without noise), its regret is PyEPO's normalised
regret on a knapsack solved by hand, and its Hamming loss gives +-1 upstream gradients."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ortools")

import torch  # noqa: E402

import imle_solvers as ims  # noqa: E402
from imle_solvers import data  # noqa: E402
from imle_solvers.torch import IMLELayer  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def sweep():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports _timing from beside it
    spec = importlib.util.spec_from_file_location("sweep_ilp_settings", BENCHMARKS / "sweep_ilp_settings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_ilp_settings"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))
    del sys.modules["sweep_ilp_settings"]


@pytest.mark.parametrize("samples, marginal_samples, noise", [(1, 1, "sog"), (2, 3, "sog"), (1, 2, "none")])
def test_solves_per_step_are_imle_s_count(sweep, samples, marginal_samples, noise):
    batch = 4
    case = replace(sweep.knapsack_case(train=3 * batch, test=4, epochs=1), batch=batch)
    setting = sweep.Setting("probe", noise=noise, samples=samples, marginal_samples=marginal_samples)
    result = sweep.train(case, setting, seed=0)
    assert result["steps"] == 3
    # S M perturbed solves per instance in each pass; without noise the M marginal samples
    # would be the same state, and the estimator solves once per sample
    per_pass = samples * (marginal_samples if noise != "none" else 1)
    assert result["solves_per_step"] == 2 * per_pass * batch  # forward + backward
    assert result["calls_per_step"] == 2


def test_the_short_run_reports_the_count_for_both_programs(sweep, capsys):
    rows = sweep.main(["--short", "--no-pool"])
    assert {row["case"] for row in rows} == {"knapsack 24x1", "assignment 8x16"}
    for row in rows:
        samples = 2 if row["setting"] == "samples 2" else 1
        assert row["solves_per_step"] == 2 * samples * 16  # the short run's batch
        assert 0 <= row["regret"] <= 1
    assert "| setting | held-out normalised regret |" in capsys.readouterr().out


class FixedScores(torch.nn.Module):
    """A "model" that predicts the same scores whatever the features."""

    def __init__(self, theta: list[list[float]]) -> None:
        super().__init__()
        self.theta = torch.tensor(theta, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta


def test_regret_is_zero_at_the_optimum_and_the_hand_computed_value_elsewhere(sweep):
    # weights 1, 2, 3, capacity 3: the feasible packings are {}, {0}, {1}, {2}, {0, 1}
    problem = data.knapsack_problem(np.array([[1.0, 2.0, 3.0]]), capacity=3.0)
    layer = IMLELayer(problem, ims.IMLE(ims.SumOfGamma(k=2)))
    values = np.array([[3.0, 2.0, 4.0], [1.0, 1.0, 1.0]])  # optima: {0, 1} worth 5 and {0, 1} worth 2
    optimum = np.array([5.0, 2.0])
    features = torch.zeros(2, sweep.FEATURES)
    assert sweep.held_out_regret(layer, FixedScores(values.tolist()), features, values, optimum) == 0.0
    # {2} for the first instance (worth 4, regret 1), the optimum for the second: 1 / (5 + 2)
    wrong = FixedScores([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    assert sweep.held_out_regret(layer, wrong, features, values, optimum) == pytest.approx(1 / 7, abs=1e-9)
    assert layer.training  # evaluated in eval mode, handed back in training mode


def test_the_hamming_loss_is_the_distance_with_unit_gradients(sweep):
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 2, size=(3, 5))).float()
    z = torch.from_numpy(rng.integers(0, 2, size=(3, 2, 5))).float().requires_grad_()  # two samples
    loss = sweep.hamming_loss(z, target)
    assert loss.item() == (z != target.unsqueeze(1)).sum().item()
    loss.backward()
    assert torch.equal(z.grad, (1 - 2 * target).unsqueeze(1).expand_as(z))  # agreeing entries too
