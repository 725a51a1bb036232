"""The oracle on a Dask cluster (a LocalCluster of two worker processes here): the
same answers as in-process, and a torch layer that trains through it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import imle_solvers as ims  # noqa: E402
from imle_solvers.adapters.grid_paths import solve_grid_networkx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::imle_solvers.NegativeCostWarning")

# a grid problem of its own kind, so the solver below can log where it ran
LOGGED_KIND = "test-dask-logged-grid"


@dataclass(frozen=True)
class LoggedGrid(ims.GridShortestPath):
    """A grid shortest path whose solver leaves a file named after its process in ``workdir``."""

    workdir: str = ""
    kind: ClassVar[str] = LOGGED_KIND


@ims.register_solver(LOGGED_KIND, "networkx-logged")
def solve_logged(theta: np.ndarray, problem: LoggedGrid) -> np.ndarray:
    Path(problem.workdir, f"pid-{os.getpid()}").touch()
    return solve_grid_networkx(theta, problem)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_a_dask_cluster_gives_the_serial_answer_in_order(client, rng):
    problem = ims.GridShortestPath(5, 5)
    costs = rng.uniform(0.1, 1.0, size=(13, 5, 5))
    expected = ims.MAPOracle(problem, backend="scipy")(costs)
    with ims.MAPOracle(problem, backend="networkx", n_jobs=-1, parallel_backend="dask", chunk_size=2) as oracle:
        np.testing.assert_array_equal(oracle(costs), expected)


def train(layer, steps: int = 4) -> list[float]:
    """A few SGD steps of ``theta`` through ``layer`` towards a fixed path; the losses."""
    import torch

    target = torch.zeros(8, 4, 4)
    target[:, :, 0] = target[:, -1, :] = 1  # down the left edge, along the bottom
    theta = torch.nn.Parameter(torch.ones(8, 4, 4, dtype=torch.float64))
    optimiser = torch.optim.SGD([theta], lr=0.5)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = (layer(theta) - target).abs().sum()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def test_a_torch_layer_trains_through_the_cluster(client, tmp_path):
    pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    problem = LoggedGrid(4, 4, workdir=str(tmp_path))
    estimator = ims.IMLE(ims.SumOfGamma(k=5), lambda_=10.0)
    in_process = IMLELayer(problem, estimator, backend="networkx-logged", seed=0)
    expected = train(in_process)
    for path in tmp_path.glob("pid-*"):
        path.unlink()

    layer = IMLELayer(
        problem, estimator, backend="networkx-logged", seed=0, n_jobs=-1, parallel_backend="dask", chunk_size=2
    )
    try:
        assert train(layer) == expected  # the same steps, solved on the cluster
        assert layer.oracle.pool.openings == 1  # forward and backward of every step: one pool
    finally:
        layer.oracle.close()
    dask_workers = set(client.run(os.getpid).values())
    assert {int(p.name.removeprefix("pid-")) for p in tmp_path.glob("pid-*")} == dask_workers
