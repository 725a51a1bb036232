"""The gallery's discrete VAE and learning-to-match examples really train (short versions)."""

from __future__ import annotations

import itertools
import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from example_scripts import load_example as load  # noqa: E402


def test_discrete_vae_kl_is_the_exact_kl_of_the_k_subset_distribution():
    vae = load("discrete_vae")
    theta = torch.randn(3, 6, dtype=torch.float64) * 2
    subsets = torch.tensor([s for s in itertools.product([0, 1], repeat=6) if sum(s) == 3], dtype=torch.float64)
    log_p = torch.log_softmax(theta @ subsets.T, dim=1)  # p_theta over the 20 subsets, by enumeration
    expected = (log_p.exp() * (log_p + math.log(len(subsets)))).sum(1)
    assert torch.allclose(vae.log_partition(theta, 3), torch.logsumexp(theta @ subsets.T, 1))
    assert torch.allclose(vae.kl_to_uniform(theta, 3), expected)
    theta = torch.randn(4, 20, dtype=torch.float64, requires_grad=True)  # the example's 10 of 20
    kl = vae.kl_to_uniform(theta)
    assert torch.all(kl > 0) and torch.all(kl < math.log(math.comb(20, 10)))
    assert torch.allclose(
        vae.kl_to_uniform(torch.zeros(2, 20, dtype=torch.float64)), torch.zeros(2, dtype=torch.float64)
    )
    assert torch.autograd.gradcheck(vae.kl_to_uniform, (theta,))  # finite gradients through the log-space recursion


def test_discrete_vae_every_method_lowers_the_held_out_negative_elbo():
    results = load("discrete_vae").main(epochs=2, out=None, eval_samples=1)
    for method in ("I-MLE", "STE", "relaxed top-k (ST)"):
        history = results[method]["history"]["test"]
        assert history[1] < history[0] - 5, f"{method}: the first epoch improves the held-out ELBO"
        assert history[2] < history[1]
        assert results[method]["KL"] >= 0


def test_learning_to_match_sorts_digits_better_than_the_unconstrained_baseline(tmp_path):
    results = load("learning_to_match").main(steps=300, n_test=300, out=tmp_path)
    imle = results["I-MLE through the matching"]
    argmax = results["baseline: cross-entropy, argmax per image"]
    assert imle["invalid assignments"] == 0
    assert imle["exact permutations"] > 0.4  # chance 1/120; about 0.64 measured
    assert imle["exact permutations"] > argmax["exact permutations"] + 0.3
    assert imle["images placed right"] > argmax["images placed right"]
    assert argmax["invalid assignments"] > 0.5, "without the matching, images collide"
    assert (tmp_path / "learning_to_match.png").stat().st_size > 0
    assert (tmp_path / "metrics.json").exists()


def _check_across_seeds(figure: dict, values: list[float]) -> None:
    """``figure`` is ``{"mean", "sd", "per seed"}`` of exactly ``values``, sd the sample one."""
    import statistics

    assert figure["per seed"] == pytest.approx(values)
    assert figure["mean"] == pytest.approx(statistics.fmean(values))
    assert figure["sd"] == pytest.approx(statistics.stdev(values))


def test_discrete_vae_seeds_report_each_seed_and_their_mean_and_sd(tmp_path):
    vae = load("discrete_vae")
    results = vae.main_seeds([0, 1], epochs=1, methods=("I-MLE", "STE"), out=tmp_path, eval_samples=1)
    assert list(results["per seed"]) == ["0", "1"]
    alone = vae.main(epochs=1, seed=1, methods=("I-MLE", "STE"), out=None, eval_samples=1)
    assert results["per seed"]["1"]["STE"]["negative ELBO"] == alone["STE"]["negative ELBO"]  # a seed's own run
    for method in ("I-MLE", "STE"):
        runs = [results["per seed"][s][method] for s in ("0", "1")]
        for figure in ("negative ELBO", "reconstruction", "KL"):
            _check_across_seeds(results["summary"][method][figure], [r[figure] for r in runs])
        _check_across_seeds(results["summary"][method]["after epoch 1"], [r["history"]["test"][1] for r in runs])
    seeds_differ = {results["per seed"][s]["I-MLE"]["negative ELBO"] for s in ("0", "1")}
    assert len(seeds_differ) == 2, "each seed its own run"
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "discrete_vae.png").stat().st_size > 0
    with pytest.raises(ValueError, match="distinct"):
        vae.main_seeds([0, 0], epochs=1, out=None)


def test_learning_to_match_seeds_report_each_seed_and_their_mean_and_sd(tmp_path):
    match = load("learning_to_match")
    results = match.main_seeds([0, 1], steps=30, n_test=50, out=tmp_path)
    assert list(results["per seed"]) == ["0", "1"] and results["steps"] == 30
    for method in match.METHODS:
        for figure in match.FIGURES:
            _check_across_seeds(results["summary"][method][figure],
                                [results["per seed"][s][method][figure] for s in ("0", "1")])
    alone = match.main(seed=1, steps=30, n_test=50, out=None)
    for method in match.METHODS:  # a seed's entry is that seed's own run (the clocks aside)
        assert results["per seed"]["1"][method] == alone[method]
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "learning_to_match.png").stat().st_size > 0
