"""The gallery's "seeing the distribution" example (docs/gallery/distribution.md), short version."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from example_scripts import load_example
from PIL import Image


@pytest.fixture(scope="module")
def example():
    return load_example("seeing_the_distribution")


@pytest.fixture(scope="module")
def run(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("distribution")
    return out, example.main(**example.SHORT, out=out)


def test_marginals_are_probabilities_that_sum_to_the_mean_path_length(example):
    data = example.load_map(0, 0)
    paths = example.sample_paths(data["costs"], float(data["gold"].sum()), 2.0, 300, seed=1)
    assert paths.shape == (300, 12, 12)
    assert set(np.unique(paths)) <= {0.0, 1.0}
    assert (paths[:, 0, 0] == 1).all() and (paths[:, -1, -1] == 1).all(), "every path joins the corners"
    marginals = paths.mean(axis=0)
    assert ((marginals >= 0) & (marginals <= 1)).all()
    assert marginals.sum() == pytest.approx(paths.sum(axis=(1, 2)).mean())
    assert len({path.tobytes() for path in paths}) > 10, "the noise samples many paths, not the MAP path alone"


def test_sampling_concentrates_on_the_gold_path_at_low_temperature(run):
    _, results = run
    low, high = results["sampling"]["1"], results["sampling"]["5"]
    assert low["gold tiles mean marginal"] > 5 * low["other tiles mean marginal"]
    assert low["gold tiles mean marginal"] > high["gold tiles mean marginal"], "more noise, less mass on the gold"
    assert low["share optimal under the true costs"] > high["share optimal under the true costs"]
    assert low["summed tile entropy, bits"] < high["summed tile entropy, bits"]
    for summary in (low, high):
        assert summary["marginals sum"] == pytest.approx(summary["mean path length"], rel=1e-5)


def test_training_from_the_gold_path_alone_reaches_it(run):
    _, results = run
    for name in ("0/0", "1/1"):
        t = results["training"][name]
        assert t["final MAP path is the gold path"], name
        assert t["final MAP path costs no more than the gold"], name
        assert t["first step with MAP path = gold"] is not None
        assert t["final sampled loss (mean of last 10 steps)"] < 0.2 * t["first sampled loss (mean of first 10 steps)"]
    noisy = results["training"]["5/5"]
    assert (
        noisy["final sampled loss (mean of last 10 steps)"]
        > results["training"]["0/0"]["final sampled loss (mean of last 10 steps)"]
    )


def test_the_pictures_and_metrics_are_written(example, run):
    out, results = run
    assert json.loads((out / "metrics.json").read_text())["training"].keys() == results["training"].keys()
    assert (out / "distribution-sampling.png").stat().st_size > 10_000
    assert (out / "distribution-loss.png").stat().st_size > 10_000
    for name in ("0/0", "1/1", "5/5"):
        gif = out / results["files"][name]
        assert gif.stat().st_size < 1_000_000
        with Image.open(gif) as image:
            assert image.n_frames == example.SHORT["frames"] == results["training"][name]["frames"]
