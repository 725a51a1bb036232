"""The core examples really train (short versions)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from example_scripts import load_example as load  # noqa: E402


def test_quickstart_selects_the_relevant_items():
    assert load("quickstart").main(steps=150) > 0.5  # chance is 0.31


def test_custom_solver_learns_the_scoring_rule():
    assert load("custom_solver").main(steps=200) > 0.8  # chance is 0.1


def test_parallel_training_learns_with_two_workers():
    assert load("parallel_training").main(steps=30, n_jobs=2) > 0.8


def test_ilp_backends_agree_on_the_weekly_rota():
    pytest.importorskip("ortools")
    pytest.importorskip("pyscipopt")
    results = load("ilp_backends").main(weeks=8)
    assert results["agree"] and results["solved"] >= 4, results  # 0.75 availability: most weeks are feasible


def test_failure_policy_trains_through_failing_instances():
    results = load("failure_policy").main(steps=100)
    assert results["failed share, first 10 steps"] > 0.05, "the poor start makes instances fail"
    assert results["failed share, last 10 steps"] < results["failed share, first 10 steps"]
    assert results["failures by reason"]["unbounded"] > 0
    assert results["held-out routes reproduced"] > 0.6  # 0.04 at the start


def test_fast_path_example_stays_in_every_framework():
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")
    results = load("fast_path").main()
    assert results["torch resume"] is True
    assert results["jax callbacks"] == {"k-subset": 0, "grid 12x12": 0}
    assert results["keras host calls"] == 0


def test_l2x_padded_text_selects_sentiment_tokens_never_padding():
    results = load("l2x_padded_text").main(steps=150)
    chance = results["chance precision"]  # about 0.07
    for masked in ("mask, k=3", "mask, k per length"):
        assert results[masked]["precision"] > 5 * chance
        assert results[masked]["padding selected, test"] == 0
        assert results[masked]["padding selected, training"] == 0
    assert results["no mask, k=3"]["padding selected, training"] > 0, "without the mask, padding is selectable"


def test_rota_weekly_learns_the_planners_rotas_and_never_breaks_availability():
    pytest.importorskip("ortools")
    results = load("rota_weekly").main(steps=25, batch=16, weeks=(128, 64))
    learned, fixed, untrained = results["availability per week"], results["one fixed problem"], results["untrained"]
    assert learned["assignments to unavailable workers"] == 0
    assert fixed["assignments to unavailable workers"] > 0, "without the table, scores alone cannot keep to it"
    assert learned["shifts given to the planner's worker"] > untrained["shifts given to the planner's worker"] + 0.3


def test_pyepo_shortest_path_lowers_the_normalised_regret():
    results = load("pyepo_shortest_path").main(epochs=2, n_train=300, n_test=200)
    assert results["normalized_regret_before"] > 0.4  # an untrained linear model: about 0.6
    assert results["normalized_regret"] < 0.5 * results["normalized_regret_before"]
    assert results["cost_accuracy"] > results["cost_accuracy_before"]


def test_framework_conventions_train_in_every_framework():
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")
    results = load("framework_conventions").main(steps=60, epochs=3)
    chance = results["chance precision"]  # about 0.4
    for name in ("jax", "keras", "torch"):
        assert results[name]["precision"] > chance + 0.2, name
    for name in ("jax", "keras"):
        assert results[name]["padding selected"] == 0, name
    jax = results["jax"]
    assert jax["AIMLE steps counted"] == 60 and jax["beta moved"], "the state returned as a value moved on"
    assert jax["exported selects the same"] and jax["callbacks in the step"] == 0
    assert results["torch"]["backend"] == "numpy, numpy"


def test_contrastive_losses_each_lower_the_normalised_regret_and_grow_their_pools():
    results = load("contrastive_losses").main(epochs=2, n_train=300, n_test=150)
    untrained = results.pop("untrained")["normalized_regret"]
    assert untrained > 0.4  # an untrained linear model: about 0.6
    for name, figures in results.items():
        # pointwise ranking learns slowest (as in PyEPO's own comparisons): better than the start
        assert figures["normalized_regret"] < (0.95 if name == "pointwise LTR" else 0.6) * untrained, name
        if "pool_size" in figures:  # solve_ratio 0.3: the pool gained solved paths beyond the targets'
            assert figures["pool_size"] > figures["pool_start"], name


def test_tsp_imle_lowers_the_normalised_regret():
    pytest.importorskip("ortools")
    results = load("tsp_imle").main(epochs=2, n_train=100, n_test=100)
    assert results["normalized_regret_before"] > 0.5  # an untrained linear model: about 1
    assert results["normalized_regret"] < 0.5 * results["normalized_regret_before"]
