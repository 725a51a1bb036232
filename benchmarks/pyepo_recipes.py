"""The problems and training recipes of ``bench_pyepo.py``: each of PyEPO's benchmark
problems with its data, and each method as PyEPO's module and as this library's
counterpart, with the same settings and the same loss around it.

A method's recipe maps the model to a step ``(x, c, w, z, i) -> loss``: ``x`` features
``(B, p)``, ``c`` true costs ``(B, d)``, ``w`` true solutions ``(B, d)``, ``z`` their
objective values ``(B, 1)``, ``i`` the instances' indices in the training set ``(B,)``. PyEPO's recipes are its tutorials' ("Training" in its docs);
ours name the same quantities in this library's API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import imle_solvers as ims
from imle_solvers import data, metrics

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Recipe = Callable[[nn.Module], Step]

N_TRAIN, N_TEST, FEATURES, DEG, NOISE_WIDTH = 1000, 1000, 5, 4, 0.5

#: every method of the tables, PyEPO's names; "2S" is the two-stage baseline (regress the
#: costs with MSE, then solve), the same code for both libraries
METHODS = ("2S", "SPO+", "DBB", "NID", "DPO", "PFYL", "I-MLE", "AI-MLE", "NCE", "CMAP", "ptLTR", "prLTR",
           "lsLTR", "PG", "RFY", "CaVE", "CaVE-E", "SVM")
#: methods only one library has (the other's column reads "n/a")
OURS_ONLY = {"SVM": "PyEPO has no structured SVM loss (InferOpt.jl's)"}
#: methods a problem's constraints cannot serve (CaVE needs a linear program's tight rows)
UNSUPPORTED = {("tsp", name): "the TSP's subtour constraints are not rows that ims.tight_constraints lists"
               for name in ("CaVE", "CaVE-E")}
POOL_METHODS = ("NCE", "CMAP", "ptLTR", "prLTR", "lsLTR")
SOLVE_RATIO = 0.3  # PyEPO's tutorials' share of pool-growing calls


@dataclass
class Benchmark:
    """One of PyEPO's problems, generated once: features, true costs, true solutions and
    their objective values (``train`` and ``test`` splits), this library's problem, and
    PyEPO's model factory (None where PyEPO cannot solve it here)."""

    name: str
    description: str
    problem: ims.Problem
    x: np.ndarray
    c: np.ndarray
    pyepo_model: Callable[[], Any] | None
    pyepo_missing: str = ""

    def __post_init__(self) -> None:
        self.oracle = ims.MAPOracle(self.problem)
        self.w = self.oracle(self.c[:N_TRAIN].astype(np.float64))
        self.z = metrics.objective_values(self.w, self.c[:N_TRAIN])
        self._tight: torch.Tensor | None = None

    @property
    def tight(self) -> torch.Tensor:
        """The normals of the constraints binding at each training solution, ``(N, R, d)``
        float32 (CaVE's ``tight_ctrs``, zero-padded), built on first use."""
        if self._tight is None:
            self._tight = torch.from_numpy(ims.batch_tight_constraints(self.problem, self.w)).float()
        return self._tight

    @property
    def out_features(self) -> int:
        return self.c.shape[1]


def shortest_path() -> Benchmark:
    """PyEPO's 5x5 grid shortest path (40 arcs), solved by its OR-Tools model (GLOP)."""
    x, c = data.shortest_path_data(N_TRAIN + N_TEST, FEATURES, (5, 5), deg=DEG, noise_width=NOISE_WIDTH)

    def model() -> Any:
        from pyepo.model.ort import shortestPathModel

        return shortestPathModel((5, 5))

    return Benchmark("shortest_path", "5x5 grid shortest path (40 arcs)", data.shortest_path_problem((5, 5)),
                     x, c, model)


def knapsack() -> Benchmark:
    """PyEPO's 2-resource knapsack of 32 items (capacity 20 each), solved by its OR-Tools
    model (pywraplp, SCIP) and by ours (CP-SAT)."""
    weights, x, c = data.knapsack_data(N_TRAIN + N_TEST, FEATURES, 32, dim=2, deg=DEG, noise_width=NOISE_WIDTH)

    def model() -> Any:
        from pyepo.model.ort import knapsackModel

        return knapsackModel(weights, [data.PYEPO_KNAPSACK_CAPACITY] * weights.shape[0])

    return Benchmark("knapsack", "knapsack, 2 resources, 32 items", data.knapsack_problem(weights), x, c, model)


def tsp() -> Benchmark:
    """PyEPO's 20-node TSP (190 edges); PyEPO's TSP models need Gurobi, COPT or a Pyomo
    MIP solver, none of which is installed here, so only this library runs it."""
    x, c = data.tsp_data(N_TRAIN + N_TEST, FEATURES, 20, deg=DEG, noise_width=NOISE_WIDTH)
    return Benchmark("tsp", "TSP, 20 nodes (190 edges)", ims.TravellingSalesman(20), x, c, None,
                     "PyEPO's TSP models need Gurobi, COPT or a Pyomo MIP solver")


PROBLEMS: dict[str, Callable[[], Benchmark]] = {"shortest_path": shortest_path, "knapsack": knapsack, "tsp": tsp}


def pyepo_recipe(pyepo: Any, bench: Benchmark, name: str, seed: int) -> Recipe:
    """PyEPO's module for ``name`` (its tutorial settings) and the loss it is trained on."""
    from pyepo.data.dataset import optDataset
    from pyepo.func.utils import sumGammaDistribution

    if name == "2S":
        return two_stage()
    f, optmodel = pyepo.func, bench.pyepo_model()
    l1, mse = nn.L1Loss(), nn.MSELoss()
    if name in POOL_METHODS:  # the pool starts from the training solutions, as PyEPO's tutorials
        dataset = optDataset(optmodel, bench.x[:N_TRAIN], bench.c[:N_TRAIN])
        module = {"NCE": f.NCE, "CMAP": f.CMAP, "ptLTR": f.ptLTR, "prLTR": f.prLTR, "lsLTR": f.lsLTR}[name](
            optmodel, processes=1, solve_ratio=SOLVE_RATIO, dataset=dataset)
        target = (lambda c, w: w) if name in ("NCE", "CMAP") else (lambda c, w: c)
        return lambda m: lambda x, c, w, z, i: module(m(x), target(c, w))
    if name == "SPO+":
        spo = f.SPOPlus(optmodel, processes=1)
        return lambda m: lambda x, c, w, z, i: spo(m(x), c, w, z)
    if name in ("DBB", "NID"):
        layer = f.blackboxOpt(optmodel, lambd=10, processes=1) if name == "DBB" else \
            f.negativeIdentity(optmodel, processes=1)
        return lambda m: lambda x, c, w, z, i: l1((layer(m(x)) * c).sum(1).view(-1, 1), z)
    if name == "DPO":
        dpo = f.perturbedOpt(optmodel, n_samples=10, sigma=0.5, processes=1, seed=seed)
        return lambda m: lambda x, c, w, z, i: mse(dpo(m(x)), w)
    if name == "PFYL":
        pfy = f.perturbedFenchelYoung(optmodel, n_samples=10, sigma=0.5, processes=1, seed=seed)
        return lambda m: lambda x, c, w, z, i: pfy(m(x), w)
    if name == "I-MLE":
        imle = f.implicitMLE(optmodel, n_samples=10, sigma=1.0, lambd=10, processes=1,
                             distribution=sumGammaDistribution(kappa=5, n_iterations=10, seed=seed))
        return lambda m: lambda x, c, w, z, i: l1(imle(m(x)), w)
    if name == "AI-MLE":
        aimle = f.adaptiveImplicitMLE(optmodel, n_samples=2, sigma=1.0, processes=1,
                                      distribution=sumGammaDistribution(kappa=5, n_iterations=10, seed=seed))
        return lambda m: lambda x, c, w, z, i: l1(aimle(m(x)), w)
    if name in ("CaVE", "CaVE-E"):  # PyEPO's own tight rows need Gurobi (optDatasetConstrs): it gets ours
        cave = f.coneAlignedCosine(optmodel, processes=1, **({"max_iter": 200} if name == "CaVE-E" else {}))
        return lambda m: lambda x, c, w, z, i: cave(m(x), bench.tight[i])
    if name == "PG":
        pg = f.perturbationGradient(optmodel, sigma=0.1, two_sides=False, processes=1)
        return lambda m: lambda x, c, w, z, i: pg(m(x), c)
    if name == "RFY":
        rfy = f.regularizedFrankWolfeFenchelYoung(optmodel, lambd=1.0, processes=1)
        return lambda m: lambda x, c, w, z, i: rfy(m(x), w)
    raise ValueError(f"PyEPO has no {name}")


def our_recipe(bench: Benchmark, name: str, seed: int) -> Recipe:
    """This library's counterpart of PyEPO's module for ``name``, same settings, same loss."""
    problem = bench.problem
    l1, mse = nn.L1Loss(), nn.MSELoss()
    if name == "2S":
        return two_stage()
    if name in POOL_METHODS:
        pool = ims.SolutionPool(bench.w, solve_ratio=SOLVE_RATIO, seed=seed)
        loss = {"NCE": ims.torch.NCELoss, "CMAP": ims.torch.CMAPLoss, "ptLTR": ims.torch.PointwiseLTRLoss,
                "prLTR": ims.torch.PairwiseLTRLoss, "lsLTR": ims.torch.ListwiseLTRLoss}[name](problem, pool)
        target = (lambda c, w: w) if name in ("NCE", "CMAP") else (lambda c, w: c)
        return lambda m: lambda x, c, w, z, i: loss(m(x), target(c, w))
    if name == "SPO+":
        spo = ims.torch.SPOPlusLoss(problem)
        return lambda m: lambda x, c, w, z, i: spo(m(x), c, w_true=w, z_true=z[:, 0])
    if name == "PFYL":
        pfy = ims.torch.FenchelYoungLoss(problem, noise=ims.Normal(), sigma=0.5, samples=10, seed=seed)
        return lambda m: lambda x, c, w, z, i: pfy(m(x), w)
    if name == "PG":
        pg = ims.torch.PGLoss(problem, sigma=0.1, variant="backward")
        return lambda m: lambda x, c, w, z, i: pg(m(x), c)
    if name == "RFY":
        rfy = ims.torch.RegularizedFenchelYoungLoss(problem, lambd=1.0)
        return lambda m: lambda x, c, w, z, i: rfy(m(x), w)
    if name in ("CaVE", "CaVE-E"):  # CaVE+, PyEPO's default: 3 interior-point iterations; CaVE-E exact
        cave = ims.torch.CaVELoss(problem, max_iter=3 if name == "CaVE" else None)
        return lambda m: lambda x, c, w, z, i: cave(m(x), bench.tight[i])
    if name == "SVM":
        svm = ims.torch.StructuredSVMLoss(problem)
        return lambda m: lambda x, c, w, z, i: svm(m(x), w)
    estimator = {
        "DBB": lambda: ims.BlackboxDifferentiation(lambda_=10.0),
        "NID": lambda: ims.NegativeIdentity(),
        "DPO": lambda: ims.PerturbedOptimizer(ims.Normal(), noise_temperature=0.5, marginal_samples=10),
        "I-MLE": lambda: ims.IMLE(ims.SumOfGamma(k=5), noise_temperature=1.0, lambda_=10.0, marginal_samples=10),
        "AI-MLE": lambda: ims.AIMLE(ims.SumOfGamma(k=5), noise_temperature=1.0, marginal_samples=2),
    }[name]()
    layer = ims.torch.IMLELayer(problem, estimator, seed=seed)
    if name in ("DBB", "NID"):
        return lambda m: lambda x, c, w, z, i: l1((layer(m(x)) * c).sum(1).view(-1, 1), z)
    if name == "DPO":
        return lambda m: lambda x, c, w, z, i: mse(layer(m(x)), w)
    return lambda m: lambda x, c, w, z, i: l1(layer(m(x)), w)


def two_stage() -> Recipe:
    """The two-stage baseline of PyEPO's papers: regress the costs with MSE; the decision is
    the solver's on the predicted costs (no solver in training)."""
    mse = nn.MSELoss()
    return lambda m: lambda x, c, w, z, i: mse(m(x), c)
