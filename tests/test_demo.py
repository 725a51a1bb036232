"""The demo: a short run writes its picture and metrics; a longer one learns."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from imle_solvers import InvalidInputError
from imle_solvers.datasets.warcraft import WarcraftMaps
from imle_solvers.demo import CostNet, TrainingConfig, hamming_loss, path_metrics, run_demo


def test_cost_net_maps_images_to_positive_tile_costs():
    net = CostNet(grid=12)
    costs = net(torch.rand(2, 3, 96, 96))
    assert costs.shape == (2, 12, 12)
    assert bool((costs > 0).all())


def test_hamming_loss_counts_differing_cells():
    gold = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    z = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    assert hamming_loss(z, gold).tolist() == [2.0]
    assert hamming_loss(gold, gold).tolist() == [0.0]


def test_path_metrics_count_equal_cost_paths_as_cost_accurate():
    costs = np.array([[[1, 1, 9], [1, 9, 1], [9, 1, 1]]], dtype=np.float32)
    gold = np.array([[[1, 1, 0], [0, 0, 1], [0, 0, 1]]], dtype=np.float32)  # cost 4
    maps = WarcraftMaps(images=np.zeros((1, 3, 24, 24), dtype=np.float32), costs=costs, paths=gold)
    other_optimum = np.array([[[1, 0, 0], [1, 0, 0], [0, 1, 1]]], dtype=np.float32)  # cost 4
    through_the_middle = np.eye(3, dtype=np.float32)[None]  # cost 11
    assert path_metrics(other_optimum, maps) == {"cost_accuracy": 1.0, "exact_match": 0.0, "mean_cost_ratio": 1.0}
    assert path_metrics(through_the_middle, maps)["cost_accuracy"] == 0.0
    assert path_metrics(through_the_middle, maps)["mean_cost_ratio"] == pytest.approx(11 / 4)
    assert path_metrics(gold, maps)["exact_match"] == 1.0


def test_short_demo_writes_metrics_and_picture(tmp_path, capsys):
    metrics = run_demo(epochs=1, maps=30, seed=1, out=str(tmp_path / "run"), config=TrainingConfig(batch_size=12))
    for name in ("imle", "baseline", "random"):
        assert 0.0 <= metrics[name]["exact_match"] <= metrics[name]["cost_accuracy"] <= 1.0
        assert metrics[name]["mean_cost_ratio"] >= 1.0 - 1e-9
    for name in ("imle", "baseline"):
        assert len(metrics[name]["loss"]) == 1 and np.isfinite(metrics[name]["loss"][0])
    picture, metrics_file = tmp_path / "run" / "demo.png", tmp_path / "run" / "metrics.json"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(metrics_file.read_text())
    assert saved["imle"]["cost_accuracy"] == metrics["imle"]["cost_accuracy"]
    assert saved["settings"]["maps"] == 30 and saved["settings"]["epochs"] == 1
    printed = capsys.readouterr().out
    assert str(picture) in printed and str(metrics_file) in printed


def test_demo_needs_a_map_to_hold_out(tmp_path):
    with pytest.raises(InvalidInputError, match="at least 2"):
        run_demo(epochs=1, maps=1, out=str(tmp_path))


@pytest.mark.slow
def test_demo_training_learns_paths(tmp_path):
    metrics = run_demo(epochs=6, maps=800, seed=0, out=str(tmp_path))
    for name in ("imle", "baseline"):
        loss = metrics[name]["loss"]
        assert loss[-1] < loss[0]
        assert metrics[name]["cost_accuracy"] > metrics["random"]["cost_accuracy"] + 0.2
    assert metrics["imle"]["cost_accuracy"] > 0.6  # 0.781 measured with seed 0


def test_training_workers_run_on_one_thread_with_pinned_kernels():
    """The demo's figures repeat across machines only if its workers pick the same kernels."""
    from imle_solvers.demo import side_by_side

    x86 = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    with side_by_side(workers=1) as pool:
        assert pool.submit(torch.get_num_threads).result() == 1
        capability = pool.submit(torch.backends.cpu.get_cpu_capability).result()
    assert capability == ("AVX2" if x86 else torch.backends.cpu.get_cpu_capability())
    assert "ATEN_CPU_CAPABILITY" not in os.environ, "the environment is restored"
