"""The gallery's toy top-k and L2X examples: their pieces are right and their short versions learn."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from example_scripts import load_example as load  # noqa: E402

# --- the toy problem ------------------------------------------------------------------


def test_toy_gap_is_zero_only_on_the_best_state_and_the_score_function_is_unbiased():
    toy = load("toy_top_k")
    b, theta = toy.problem_instances([0, 1])
    losses = toy.state_losses(b)
    best = toy.STATES[losses.argmin(axis=1)]  # (2, 10)
    assert np.all(toy.optimality_gap(theta, losses) > 0.5)
    assert np.all(toy.optimality_gap(50.0 * best, losses) < 1e-6)  # all mass on the best state

    # REINFORCE averaged over many draws -> the exact gradient Cov_p(L(z), z)
    draws = 10_000
    rng = np.random.default_rng(0)
    p = toy.probabilities(theta)
    exact = np.einsum("sk,sk,skn->sn", p, losses, toy.STATES[None] - (p @ toy.STATES)[:, None, :])
    estimate = toy.score_function_gradient(np.repeat(theta, draws, axis=0), np.repeat(b, draws, axis=0), rng)
    estimate = estimate.reshape(2, draws, -1).mean(axis=1)
    np.testing.assert_allclose(estimate, exact, atol=0.25)  # about 5 standard errors


def test_toy_momentum_update_is_torch_sgd_with_momentum_and_plain_sgd_is_plain():
    import torch

    toy = load("toy_top_k")
    grads = np.random.default_rng(0).normal(size=(6, 3, 10))  # a fixed sequence of (S, 10) gradients
    start = np.random.default_rng(1).normal(size=(3, 10))
    for name, momentum in (("momentum", 0.9), ("sgd", 0.0)):
        update = toy.optimizer(name, lr=0.3)
        theta = start
        reference = torch.tensor(start, requires_grad=True)
        sgd = torch.optim.SGD([reference], lr=0.3, momentum=momentum)
        for grad in grads:
            theta = update(theta, grad)
            reference.grad = torch.tensor(grad)
            sgd.step()
            np.testing.assert_allclose(theta, reference.detach().numpy(), rtol=1e-12, atol=1e-12)
    # momentum really accumulates: after two equal gradients the step is (1 + 0.9) of plain
    update = toy.optimizer("momentum", lr=1.0)
    one = np.ones((1, 10))
    np.testing.assert_allclose(update(update(np.zeros((1, 10)), one), one), -(1 + 1.9) * one)


def test_toy_short_runs_rank_imle_and_ste_far_below_the_score_function_under_both_optimizers(tmp_path):
    results = load("toy_top_k").main(seeds=5, tuned=False, out=tmp_path)
    assert results["main table"] == "momentum" and set(results["protocols"]) == {"momentum", "sgd"}
    for protocol in results["protocols"].values():
        start = protocol["start gap"]["mean"]
        final = {name: r["final gap"]["mean"] for name, r in protocol["methods"].items()}
        assert start > 3.0
        for name in ("I-MLE (SoG)", "I-MLE (Gumbel)", "STE"):
            assert final[name] < 0.3 * start, (protocol["optimizer"], name, final)
            assert final[name] < final["score function"], (protocol["optimizer"], name, final)
        assert protocol["methods"]["I-MLE (SoG)"]["mean gap per step"][10] < 0.6 * start
        assert protocol["ranking"] == sorted(final, key=final.get)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["protocols"]["momentum"]["methods"]["I-MLE (SoG)"]["final gap per seed"] == [
        round(g, 4) for g in results["protocols"]["momentum"]["methods"]["I-MLE (SoG)"]["final gap per seed"]
    ]
    assert (tmp_path / "toy-top-k.png").stat().st_size > 0


# --- L2X ---------------------------------------------------------------------------------


def test_l2x_generators_mark_the_features_the_label_depends_on():
    l2x = load("l2x_synthetic")
    rng = np.random.default_rng(0)
    for name, k in l2x.DATASETS.items():
        data = l2x.make_synthetic(name, 2000, rng)
        assert np.all(data["relevant"].sum(axis=1) == k)
        assert np.all((data["p"] >= 0) & (data["p"] <= 1))
        # changing every irrelevant feature leaves the label's probability unchanged
        again = l2x.make_synthetic(name, 2000, np.random.default_rng(1))
        if name != "switch":
            x = np.where(data["relevant"], data["x"], again["x"])
            reference = {"XOR": l2x.xor_probability, "orange skin": l2x.orange_skin_probability,
                         "nonlinear additive": l2x.additive_probability}[name]
            np.testing.assert_allclose(reference(x), data["p"], rtol=1e-5, atol=1e-6)
    switch = l2x.make_synthetic("switch", 2000, rng)
    orange = switch["relevant"][:, 0]
    assert 0.4 < orange.mean() < 0.6 and np.all(switch["relevant"][:, 9])
    assert np.mean(np.sign(switch["x"][:, 9]) == np.where(orange, 1, -1)) > 0.99  # N(+3, 1) or N(-3, 1)


def test_l2x_relaxation_is_a_soft_k_hot_mask():
    import torch

    l2x = load("l2x_synthetic")
    scores = torch.randn(64, 10)
    mask = l2x.relaxed_subset(scores, 3, 0.1, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 10) and torch.all((mask >= 0) & (mask <= 1))
    assert torch.all(mask.sum(dim=1) <= 3 + 1e-5) and torch.all(mask.sum(dim=1) >= 1 - 1e-5)


def test_l2x_short_run_finds_the_xor_features_and_keeps_digits_recognisable():
    results = load("l2x_synthetic").main(
        steps=250, digit_steps=300, seeds=1, n_train=2000, n_test=1000, datasets=("XOR",), methods=("I-MLE",),
    )
    xor = results["synthetic"]["XOR"]
    assert xor["chance precision"] == pytest.approx(0.2)
    assert xor["I-MLE"]["precision"] > 0.9
    digits = results["digits"]
    assert digits["I-MLE"]["accuracy"] > digits["random"]["accuracy"] + 0.25  # 8 of 64 pixels
    assert digits["all"]["accuracy"] > 0.9


def test_l2x_seeds_report_each_seed_and_their_mean_and_sample_sd():
    import statistics

    l2x = load("l2x_synthetic")
    results = l2x.main(steps=30, digit_steps=30, seeds=2, n_train=500, n_test=200, datasets=("orange skin",),
                       methods=("STE",))
    entries = [results["synthetic"]["orange skin"]["STE"], results["digits"]["STE"], results["digits"]["random"]]
    for entry in entries:
        for figure in ("precision", "accuracy") if "precision" in entry else ("accuracy",):
            per_seed = entry[f"{figure} per seed"]
            assert len(per_seed) == 2
            assert entry[figure] == pytest.approx(statistics.fmean(per_seed))
            assert entry[f"{figure} sd"] == pytest.approx(statistics.stdev(per_seed))
    one = l2x.main(steps=30, digit_steps=30, seeds=1, n_train=500, n_test=200, datasets=("orange skin",),
                   methods=("STE",))
    assert one["digits"]["STE"]["accuracy per seed"] == entries[1]["accuracy per seed"][:1]  # seed 0, alone or not
    assert one["digits"]["STE"]["accuracy sd"] == 0.0
