"""The demo: a short run writes its picture and metrics; a longer one learns."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from imle_solvers import InvalidInputError
from imle_solvers.datasets.warcraft import WarcraftMaps
from imle_solvers.demo import (
    METHODS,
    CostNet,
    TrainingConfig,
    connects_corners,
    direct_metrics,
    hamming_loss,
    parse_methods,
    path_metrics,
    random_cost_metrics,
    run_demo,
    split_maps,
    split_validation,
    train_and_evaluate,
    training_and_scored_maps,
)
from imle_solvers.demo_networks import ResNet18PathNet


def test_cost_net_maps_images_to_positive_tile_costs():
    net = CostNet(grid=12)
    costs = net(torch.rand(2, 3, 96, 96))
    assert costs.shape == (2, 12, 12)
    assert bool((costs > 0).all())


def resnet18_parameter_count(outputs: int) -> int:
    """ResNet-18's parameters (He et al. 2016, torchvision's layout) with an ``outputs``-way
    linear head, counted from the architecture: bias-free convolutions, batch norms with a
    weight and a bias per channel, a strided 1x1 convolution and batch norm on the shortcut
    of the first block of stages 2 to 4."""

    def conv(k: int, c_in: int, c_out: int) -> int:
        return k * k * c_in * c_out

    def bn(c: int) -> int:
        return 2 * c

    count = conv(7, 3, 64) + bn(64)  # stem
    c_in = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            count += conv(3, c_in, width) + bn(width) + conv(3, width, width) + bn(width)
            if c_in != width:
                count += conv(1, c_in, width) + bn(width)
            c_in = width
    return count + 512 * outputs + outputs  # linear head


def test_direct_network_is_a_whole_resnet18_giving_one_logit_per_tile():
    net = METHODS["direct"].network()
    assert isinstance(net, ResNet18PathNet)
    assert sum(p.numel() for p in net.parameters()) == resnet18_parameter_count(144)
    assert resnet18_parameter_count(1000) == 11_689_512  # torchvision's resnet18(), as published
    with torch.no_grad():
        logits = net.eval()(torch.rand(3, 3, 96, 96))
        assert logits.shape == (3, 12, 12)
        net.head.bias.fill_(-100.0)  # signed logits: a cell can be left out or selected
        assert bool((net(torch.rand(2, 3, 96, 96)) < 0).all())
        net.head.bias.fill_(100.0)
        assert bool((net(torch.rand(2, 3, 96, 96)) > 0).all())


def test_direct_network_logits_each_read_the_whole_map():
    """Unlike CostNet, whose costs read one tile's pooled features, a logit depends on every tile."""
    net = ResNet18PathNet(grid=12).eval()
    images = torch.rand(1, 3, 96, 96, requires_grad=True)
    net(images)[0, 0, 0].backward()
    assert float(images.grad[0, :, -8:, -8:].abs().sum()) > 0  # the far corner's tile
    images.grad = None
    CostNet(grid=12).eval()(images)[0, 0, 0].backward()
    assert float(images.grad[0, :, -8:, -8:].abs().sum()) == 0


def test_other_methods_keep_the_cost_net():
    assert all(isinstance(METHODS[name].network(), CostNet) for name in METHODS if name != "direct")
    assert METHODS["direct"].learning_rate(TrainingConfig()) == 5e-4
    assert METHODS["imle"].learning_rate(TrainingConfig()) == 1e-3


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


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_and_scores(method):
    scores, paths = train_and_evaluate(method, n_maps=8, epochs=1, config=TrainingConfig(batch_size=6), seed=3)
    assert 0.0 <= scores["exact_match"] <= scores["cost_accuracy"] <= 1.0
    assert len(scores["loss"]) == 1 and np.isfinite(scores["loss"][0])
    assert paths.shape == (2, 12, 12) and set(np.unique(paths)) <= {0.0, 1.0}


def test_short_demo_runs_every_method(tmp_path, capsys):
    metrics = run_demo(epochs=1, maps=15, seed=2, out=str(tmp_path / "all"), config=TrainingConfig(batch_size=12),
                       methods="all")
    assert metrics["settings"]["methods"] == list(METHODS)
    for name in (*METHODS, "random"):
        for key in ("cost_accuracy", "exact_match"):
            assert 0.0 <= metrics[name][key] <= 1.0, (name, key)
    for name in METHODS:
        assert len(metrics[name]["loss"]) == 1 and np.isfinite(metrics[name]["loss"][0]) and metrics[name]["seconds"] > 0
    assert 0.0 <= metrics["direct"]["valid_path"] <= 1.0
    saved = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert set(METHODS) <= set(saved)
    assert (tmp_path / "all" / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert all(f"{name} " in printed for name in (*METHODS, "random"))


def _three_by_three(gold: np.ndarray) -> WarcraftMaps:
    costs = np.array([[[1, 1, 9], [1, 9, 1], [9, 1, 1]]], dtype=np.float32)  # gold's cost 4 is the optimum
    return WarcraftMaps(images=np.zeros((1, 3, 24, 24), dtype=np.float32), costs=costs, paths=gold[None])


GOLD = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=np.float32)


def test_direct_scoring_counts_valid_paths_no_dearer_than_the_optimum():
    maps = _three_by_three(GOLD)
    assert direct_metrics(GOLD[None], maps) == {
        "cost_accuracy": 1.0, "exact_match": 1.0, "mean_cost_ratio": 1.0, "valid_path": 1.0}
    other_optimum = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1]], dtype=np.float32)  # cost 4, not the label
    assert direct_metrics(other_optimum[None], maps)["cost_accuracy"] == 1.0
    assert direct_metrics(other_optimum[None], maps)["exact_match"] == 0.0
    diagonal = np.eye(3, dtype=np.float32)  # 8-neighbours connect the corners; cost 11
    assert direct_metrics(diagonal[None], maps) == {
        "cost_accuracy": 0.0, "exact_match": 0.0, "mean_cost_ratio": pytest.approx(11 / 4), "valid_path": 1.0}
    gold_and_more = GOLD.copy()
    gold_and_more[1, 0] = 1  # a valid path with an extra cell: dearer than the optimum
    assert direct_metrics(gold_and_more[None], maps)["cost_accuracy"] == 0.0
    assert direct_metrics(gold_and_more[None], maps)["valid_path"] == 1.0


def test_direct_scoring_rejects_selections_that_do_not_connect_the_corners():
    maps = _three_by_three(GOLD)
    disconnected = np.array([[1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=np.float32)  # cost 4 = optimum, a gap
    corners_only = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=np.float32)  # cost 2 < optimum
    one_corner = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32)  # cost 3 < optimum
    nothing = np.zeros((3, 3), dtype=np.float32)
    for selection in (disconnected, corners_only, one_corner, nothing):
        scores = direct_metrics(selection[None], maps)
        assert scores["cost_accuracy"] == 0.0 and scores["valid_path"] == 0.0
        assert scores["mean_cost_ratio"] is None
    assert connects_corners(np.stack([GOLD, np.eye(3), disconnected, corners_only])).tolist() == [
        True, True, False, False]


def test_demo_runs_at_most_one_worker_per_cpu(tmp_path, monkeypatch):
    import concurrent.futures
    import contextlib

    import imle_solvers.demo

    pools = []

    @contextlib.contextmanager
    def in_threads(workers):  # the real pool's processes, as threads of this one
        pools.append(workers)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            yield pool

    monkeypatch.setattr(imle_solvers.demo, "side_by_side", in_threads)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    config = TrainingConfig(batch_size=6)
    metrics = run_demo(epochs=1, maps=8, seed=4, out=str(tmp_path), config=config, methods="baseline,direct")
    assert pools == [1]
    assert metrics["settings"]["methods"] == ["direct", "baseline"]
    assert json.loads((tmp_path / "metrics.json").read_text())["direct"]["valid_path"] == metrics["direct"]["valid_path"]


def test_parse_methods_defaults_all_and_order():
    assert parse_methods(None) == ("imle", "baseline")
    assert parse_methods("all") == tuple(METHODS) == ("imle", "blackbox", "ste", "pfyl", "direct", "baseline")
    assert parse_methods("baseline, direct,imle") == ("imle", "direct", "baseline")
    assert parse_methods(["pfyl", "ste"]) == ("ste", "pfyl")


@pytest.mark.parametrize("methods", ["imle,spo", "", "all,imle"])
def test_unknown_methods_are_refused_with_the_valid_names(tmp_path, methods):
    with pytest.raises(InvalidInputError, match="valid: imle, blackbox, ste, pfyl, direct, baseline or all"):
        run_demo(epochs=1, maps=10, out=str(tmp_path), methods=methods)


def test_cli_demo_parses_methods(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import imle_solvers.demo
    from imle_solvers.cli import main

    calls = []
    monkeypatch.setattr(imle_solvers.demo, "run_demo", lambda **kwargs: calls.append(kwargs))
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)  # an earlier real run's outputs in the working folder would be refused
    assert runner.invoke(main, ["demo", "--methods", "imle,blackbox,ste,pfyl,direct,baseline"]).exit_code == 0
    assert runner.invoke(main, ["demo", "--methods", "all", "--epochs", "2"]).exit_code == 0
    assert runner.invoke(main, ["demo"]).exit_code == 0
    assert [call["methods"] for call in calls] == [tuple(METHODS), tuple(METHODS), ("imle", "baseline")]
    assert calls[1]["epochs"] == 2
    refused = runner.invoke(main, ["demo", "--methods", "imle,spo"])
    assert refused.exit_code == 2 and not calls[3:]
    assert "'spo'" in refused.output and "valid: imle, blackbox, ste, pfyl, direct, baseline or all" in refused.output


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


def test_direct_network_learns_to_fit_a_few_paths():
    """Gradients reach the trunk: a few Adam steps fit two maps' different masks exactly,
    which no head bias alone (the same logits for every map) could."""
    torch.manual_seed(0)
    net = ResNet18PathNet(grid=12).train()  # train mode throughout: batch statistics of these two maps
    images = torch.rand(2, 3, 96, 96)
    paths = (torch.rand(2, 12, 12) < 0.1).float()
    assert bool((paths[0] != paths[1]).any())
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(8):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images), paths)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        assert torch.equal((net(images) > 0).float(), paths)


def _map_keys(maps: WarcraftMaps) -> list[bytes]:
    return [image.tobytes() for image in maps.images]


def test_validation_maps_come_from_the_training_part_and_leave_held_out_maps_alone():
    train, held_out = split_maps(100, seed=5)
    fit_maps, validation = training_and_scored_maps(100, seed=5, evaluate_on="validation")
    assert (len(train), len(held_out), len(fit_maps), len(validation)) == (80, 20, 68, 12)
    assert _map_keys(fit_maps) + _map_keys(validation) == _map_keys(train)  # the last 15% of the training part
    assert not set(_map_keys(validation)) & set(_map_keys(held_out))
    assert not set(_map_keys(validation)) & set(_map_keys(fit_maps))
    assert not set(_map_keys(fit_maps)) & set(_map_keys(held_out))
    still_train, same_held_out = training_and_scored_maps(100, seed=5, evaluate_on="held-out")
    assert _map_keys(still_train) == _map_keys(train) and _map_keys(same_held_out) == _map_keys(held_out)


def test_validation_needs_two_training_maps_and_a_known_set():
    one, _ = split_maps(2, seed=0)
    with pytest.raises(InvalidInputError, match="at least 2 training maps"):
        split_validation(one)
    two, _ = split_maps(3, seed=0)
    fit_maps, validation = split_validation(two)
    assert (len(fit_maps), len(validation)) == (1, 1)
    with pytest.raises(InvalidInputError, match="evaluate_on must be one of held-out, validation"):
        training_and_scored_maps(10, seed=0, evaluate_on="test")


def test_validating_run_is_scored_on_the_validation_maps(tmp_path, monkeypatch):
    import concurrent.futures
    import contextlib

    import imle_solvers.demo

    @contextlib.contextmanager
    def in_threads(workers):  # the real pool's processes, as threads of this one
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            yield pool

    monkeypatch.setattr(imle_solvers.demo, "side_by_side", in_threads)
    metrics = run_demo(epochs=1, maps=40, seed=6, out=str(tmp_path), config=TrainingConfig(batch_size=12),
                       methods="baseline", evaluate_on="validation")
    settings = metrics["settings"]
    assert (settings["evaluate_on"], settings["training_maps"], settings["scored_maps"]) == ("validation", 27, 5)
    _, validation = training_and_scored_maps(40, seed=6, evaluate_on="validation")
    assert metrics["random"] == random_cost_metrics(validation, 6)
    scores, paths = train_and_evaluate("baseline", 40, 1, TrainingConfig(batch_size=12), 6, evaluate_on="validation")
    assert paths.shape == (5, 12, 12)
    assert scores["mean_cost_ratio"] == metrics["baseline"]["mean_cost_ratio"]  # the same seed, the same maps
    assert scores["mean_cost_ratio"] == path_metrics(paths, validation)["mean_cost_ratio"]


def test_lambdas_reach_the_estimators(monkeypatch):
    import imle_solvers.demo

    built = []
    monkeypatch.setattr(imle_solvers.demo, "_layer", lambda estimator, seed: built.append(estimator))
    config = TrainingConfig(lambda_=35.0, blackbox_lambda=7.0)
    for method in ("imle", "blackbox"):
        METHODS[method].loss(config, 0)
    assert [type(e).__name__ for e in built] == ["IMLE", "BlackboxDifferentiation"]
    assert (built[0].lambda_, built[1].lambda_) == (35.0, 7.0)


def test_cli_demo_passes_validate_and_lambdas(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import imle_solvers.demo
    from imle_solvers.cli import main

    calls = []
    monkeypatch.setattr(imle_solvers.demo, "run_demo", lambda **kwargs: calls.append(kwargs))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["demo", "--validate", "--lambda", "35", "--blackbox-lambda", "7"]).exit_code == 0
    assert runner.invoke(main, ["demo", "--blackbox-lambda", "50"]).exit_code == 0
    assert runner.invoke(main, ["demo"]).exit_code == 0
    assert calls[0]["evaluate_on"] == "validation"
    assert (calls[0]["config"].lambda_, calls[0]["config"].blackbox_lambda) == (35.0, 7.0)
    assert calls[1]["evaluate_on"] == "held-out"
    assert calls[1]["config"] == TrainingConfig(blackbox_lambda=50.0)
    assert calls[2]["config"] == TrainingConfig()
    refused = runner.invoke(main, ["demo", "--lambda", "0"])
    assert refused.exit_code == 2 and len(calls) == 3


@pytest.mark.parametrize("noisy", [False, True])
def test_ste_passes_the_hamming_gradient_to_the_costs_as_is(noisy):
    """The I-MLE paper's STE: dL/dz handed to theta unchanged. The demo's solver minimises
    costs w (theta = -w), so d(loss)/dw = -dL/dz = 2 gold - 1 for the Hamming loss, whatever
    path the forward pass found and whatever noise perturbed it."""
    from imle_solvers import torch as ims_torch
    from imle_solvers.estimators import STE
    from imle_solvers.noise import SumOfGamma
    from imle_solvers.problems import GridShortestPath

    rng = np.random.default_rng(0)
    gold = torch.from_numpy(split_maps(8, seed=2)[0].paths[:4])
    costs = torch.tensor(rng.uniform(0.1, 5.0, size=(4, 12, 12)), dtype=torch.float32, requires_grad=True)
    estimator = STE(noise=SumOfGamma(k=15), noise_temperature=0.5) if noisy else STE(noise=None)
    layer = ims_torch.IMLELayer(GridShortestPath(12, 12), estimator, seed=1)
    z = layer(costs)
    assert not torch.equal(z, gold)  # the forward path is not the gold one, yet the gradient is
    hamming_loss(z, gold).sum().backward()
    torch.testing.assert_close(costs.grad, 2 * gold - 1)
