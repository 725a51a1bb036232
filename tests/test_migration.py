"""The migration guides (docs/migration/): where the old library is installed, it and this
one give the same results where they should.

- PyEPO (docs/migration/pyepo.md): the same data for a seed, value for value; SPO+ loss
  values and subgradients, blackbox differentiation and negative identity gradients, and
  regret on the same predictions, equal (to float32 rounding or PyEPO's 1e-8 in a divisor);
  the perturbed Fenchel-Young loss and I-MLE (Normal noise), which draw noise, equal in
  distribution: per-draw values and gradients of many draws, means within 5 standard
  errors of each other.
- optax (docs/migration/optax.md): ``optax.perturbations.make_perturbed_fun`` of a one-hot
  argmax and ``PerturbedOptimizer(Gumbel())`` through ``imle_solvers.jax.imle``: forward
  means and gradients in distribution, each also against the exact softmax(theta / sigma)
  and its Jacobian; the Fenchel-Young gradient of both against softmax(theta / sigma) - y.

Each part is skipped when its library is missing. Draws are seeded, so a run repeats.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import data as D
from imle_solvers import metrics as M

GRID = (5, 5)
Z_TOL = 5.0  # standard errors allowed between two Monte Carlo means


def assert_same_mean(a: np.ndarray, b: np.ndarray, what: str) -> float:
    """Per-entry means over axis 0 of two independent samples agree within Z_TOL standard
    errors of their difference; returns the largest |difference| / standard error."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = a.mean(0) - b.mean(0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    z = np.abs(diff) / np.maximum(se, 1e-12)
    worst = float(np.max(np.where(np.abs(diff) < 1e-12, 0.0, z)))
    assert worst < Z_TOL, f"{what}: means differ by {worst:.1f} standard errors"
    return worst


# --- PyEPO -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyepo():
    torch = pytest.importorskip("torch")
    pyepo = pytest.importorskip("pyepo")
    pytest.importorskip("ortools")
    pytest.importorskip("pyepo.model.ort")
    torch.set_num_threads(1)
    return pyepo


@pytest.fixture(scope="module")
def setup(pyepo):
    import torch
    from pyepo.model.ort import shortestPathModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = shortestPathModel(GRID)
    problem = D.shortest_path_problem(GRID)
    oracle = ims.MAPOracle(problem)
    _, c = D.shortest_path_data(24, 5, GRID, deg=4, noise_width=0.5, seed=3)
    w = oracle(c.astype(np.float64))
    z = M.objective_values(w, c)
    rng = np.random.default_rng(0)
    predicted = (c + rng.normal(0.0, 0.5, c.shape)).astype(np.float32)  # no ties: one optimum each
    t = {"c": torch.from_numpy(c), "w": torch.from_numpy(w).float(), "z": torch.from_numpy(z).float().view(-1, 1)}
    return model, problem, oracle, c, w, z, predicted, t


def test_pyepo_data_value_for_value(pyepo):
    for args, kwargs in [((100, 5, GRID), dict(deg=4, noise_width=0.5, seed=135)),
                         ((30, 3, (3, 4)), dict(deg=2, noise_width=0.0, seed=7))]:
        ours = D.shortest_path_data(*args, **kwargs)
        theirs = pyepo.data.shortestpath.genData(*args, **kwargs)
        for a, b in zip(ours, theirs, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def test_spo_plus_value_and_subgradient_equal(pyepo, setup):
    import torch

    model, problem, _, c, w, z, predicted, t = setup
    theirs_in = torch.tensor(predicted, requires_grad=True)
    theirs = pyepo.func.SPOPlus(model, processes=1, reduction="none")(theirs_in, t["c"], t["w"], t["z"])
    theirs.sum().backward()
    spo = ims.torch.SPOPlusLoss(problem, reduction="none")
    for given in (dict(w_true=t["w"], z_true=t["z"][:, 0]), {}):  # labels given, or solved by the oracle
        ours_in = torch.tensor(predicted, requires_grad=True)
        ours = spo(ours_in, t["c"], **given)
        ours.sum().backward()
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(ours_in.grad.numpy(), theirs_in.grad.numpy())  # 2 (w* - w~): exact
    assert theirs_in.grad.abs().sum() > 0  # the predictions are not optimal: a real test


@pytest.mark.parametrize("method", ["DBB", "NID"])
def test_blackbox_and_negative_identity_gradients_equal(pyepo, setup, method):
    import torch

    model, problem, _, c, w, z, predicted, t = setup
    g = torch.from_numpy(np.random.default_rng(1).normal(size=c.shape).astype(np.float32))
    if method == "DBB":
        theirs_layer = pyepo.func.blackboxOpt(model, lambd=10, processes=1)
        ours_layer = ims.torch.IMLELayer(problem, ims.BlackboxDifferentiation(lambda_=10.0))
    else:
        theirs_layer = pyepo.func.negativeIdentity(model, processes=1)
        ours_layer = ims.torch.IMLELayer(problem, ims.NegativeIdentity())
    grads, states = [], []
    for layer in (theirs_layer, ours_layer):
        cp = torch.tensor(predicted, requires_grad=True)
        out = layer(cp)
        (out * g).sum().backward()
        grads.append(cp.grad.numpy())
        states.append(out.detach().numpy())
    np.testing.assert_array_equal(states[0], states[1])
    if method == "DBB":  # PyEPO divides by lambda + 1e-8: equal to 1e-9 relative
        np.testing.assert_allclose(grads[1], grads[0], rtol=1e-7, atol=1e-7)
        assert np.abs(grads[0]).sum() > 0
    else:
        np.testing.assert_array_equal(grads[1], grads[0])


def test_regret_equal(pyepo, setup):
    import torch
    from pyepo.data.dataset import optDataset
    from pyepo.metric import calRegret
    from torch.utils.data import DataLoader

    model, _, oracle, c, w, z, predicted, _ = setup
    theirs = [calRegret(model, predicted[i], c[i], float(z[i])) for i in range(len(c))]
    ours = M.regret(oracle, predicted, c, reduction="none")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert max(theirs) > 0

    # the normalised regret of a predictor over a data set: PyEPO's regret() vs ours
    x, c = D.shortest_path_data(40, 5, GRID, deg=4, noise_width=0.5, seed=11)
    torch.manual_seed(0)
    predictor = torch.nn.Linear(5, c.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = DataLoader(optDataset(model, x, c), batch_size=16)
        theirs = pyepo.metric.regret(predictor, model, loader)
    with torch.no_grad():
        predicted = predictor(torch.from_numpy(x).float()).numpy()
    assert M.normalized_regret(oracle, predicted, c) == pytest.approx(theirs, rel=1e-5)


class _TorchNormal:
    """A noise distribution for PyEPO's implicitMLE: N(0, 1) from a seeded torch generator."""

    def __init__(self, seed: int) -> None:
        import torch

        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, size, device=None, dtype=None):
        import torch

        return torch.randn(size, generator=self.generator, dtype=dtype or torch.float32)


REPEATS = 600  # draws per instance: each row of a batch of copies is one draw


def _copies(setup, instances=(0, 1)):
    import torch

    _, _, _, c, w, _, predicted, _ = setup
    rows = np.repeat(np.asarray(instances), REPEATS)
    return rows, torch.from_numpy(predicted[rows]), torch.from_numpy(w[rows]).float()


def test_perturbed_fenchel_young_equal_in_distribution(pyepo, setup):
    """PFYL with Normal noise, one draw per row: values and gradients of both libraries have
    the same law (theirs perturbs costs by +sigma Z, ours by -sigma Z: the same for Normal)."""
    model, problem = setup[0], setup[1]
    rows, cp, w = _copies(setup)
    theirs_fn = pyepo.func.perturbedFenchelYoung(model, n_samples=1, sigma=0.5, processes=1, seed=0,
                                                 reduction="none")
    ours_fn = ims.torch.FenchelYoungLoss(problem, noise=ims.Normal(), sigma=0.5, samples=1, seed=0,
                                         reduction="none")
    assert_same_law(rows, cp, (lambda x: theirs_fn(x, w), lambda x: ours_fn(x, w)), lambda values: values.sum(),
                    "PFYL value", "PFYL gradient")


def assert_same_law(rows, cp, functions, scalar, output_name, gradient_name):
    """PyEPO's and our ``functions`` of the rows ``cp`` (copies of a few instances, ``rows``
    naming each one's instance, one draw each): their outputs and the gradients of
    ``scalar(output)`` have the same mean per instance, within standard errors."""
    results = []
    for function in functions:
        x = cp.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = function(x)
        scalar(out).backward()
        results.append((out.detach().numpy(), x.grad.numpy()))
    for i in np.unique(rows):
        at = rows == i
        assert_same_mean(results[0][0][at], results[1][0][at], f"{output_name}, instance {i}")
        assert_same_mean(results[0][1][at], results[1][1][at], f"{gradient_name}, instance {i}")
    assert np.abs(results[1][1]).sum() > 0


def test_implicit_mle_equal_in_distribution(pyepo, setup):
    """I-MLE with Normal noise (sigma 1, lambda 10), one draw per row, a fixed upstream
    gradient: sampled paths and gradients of both libraries have the same law."""
    import torch

    model, problem = setup[0], setup[1]
    rows, cp, _ = _copies(setup)
    g = torch.from_numpy(np.random.default_rng(2).normal(size=(2, cp.shape[1])).astype(np.float32))[rows]
    theirs_layer = pyepo.func.implicitMLE(model, n_samples=1, sigma=1.0, lambd=10, processes=1,
                                          distribution=_TorchNormal(0))
    ours_layer = ims.torch.IMLELayer(problem, ims.IMLE(ims.Normal(), noise_temperature=1.0, lambda_=10.0), seed=0)
    assert_same_law(rows, cp, (theirs_layer, ours_layer), lambda out: (out * g).sum(), "I-MLE paths", "I-MLE gradient")


# --- optax --------------------------------------------------------------------------------


def test_optax_perturbed_argmax_equal_in_distribution():
    pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import optax
    from optax.perturbations import Gumbel, make_perturbed_fun

    import imle_solvers.jax  # noqa: F401  (the JAX binding)

    n, sigma, draws = 5, 0.5, 20_000
    theta = jnp.array([0.3, -0.2, 0.8, 0.0, 0.5])
    g = jnp.array([1.0, -0.5, 0.25, 2.0, -1.0])
    y_true = jax.nn.one_hot(1, n)

    def one_hot_argmax(x):
        return jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1])

    # optax: one draw per key (num_samples=1), many keys: per-draw outputs and gradients
    pert_argmax = make_perturbed_fun(one_hot_argmax, num_samples=1, sigma=sigma, noise=Gumbel())
    pert_max = make_perturbed_fun(jnp.max, num_samples=1, sigma=sigma, noise=Gumbel())

    def optax_draw(key):
        y, vjp = jax.vjp(lambda x: pert_argmax(key, x), theta)
        fy = optax.losses.make_fenchel_young_loss(lambda s: pert_max(key, s))
        return y, vjp(g)[0], jax.grad(fy)(theta, y_true)

    keys = jax.random.split(jax.random.key(0), draws)
    theirs = [np.asarray(a) for a in jax.jit(jax.vmap(optax_draw))(keys)]

    # ours: a batch of copies, one draw per row (marginal_samples=1)
    f = ims.jax.imle(ims.KSubset(n=n, k=1), ims.PerturbedOptimizer(ims.Gumbel(), noise_temperature=sigma))
    fyl = ims.jax.FenchelYoungLoss(ims.KSubset(n=n, k=1), noise=ims.Gumbel(), sigma=sigma, reduction="sum")
    copies = jnp.broadcast_to(theta, (draws, n))
    y, vjp = jax.vjp(lambda t: f(t, jax.random.key(1)), copies)
    fy_grad = jax.grad(fyl)(copies, jnp.broadcast_to(y_true, (draws, n)), jax.random.key(2))
    ours = [np.asarray(y), np.asarray(vjp(jnp.broadcast_to(g, (draws, n)))[0]), np.asarray(fy_grad)]

    for name, a, b in zip(("forward", "gradient", "Fenchel-Young gradient"), theirs, ours, strict=True):
        assert_same_mean(a, b, f"optax vs ours, {name}")
    # and each against the exact values: softmax(theta / sigma), its Jacobian, softmax - y
    p = np.asarray(jax.nn.softmax(theta / sigma))
    exact = [p, (p * np.asarray(g) - p * float(p @ np.asarray(g))) / sigma, p - np.asarray(y_true)]
    for name, sample, value in zip(("forward", "gradient", "FY gradient") * 2, theirs + ours, exact * 2, strict=True):
        se = sample.std(0, ddof=1) / np.sqrt(draws)
        assert np.all(np.abs(sample.mean(0) - value) < Z_TOL * se + 1e-9), name
