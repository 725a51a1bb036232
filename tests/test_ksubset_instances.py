"""KSubset's per-instance data: a ``mask`` of selectable items and a per-row ``k``, in every
framework, checked row by row against a stable sort among the selectable items."""

from __future__ import annotations

import numpy as np
import pytest

from imle_solvers.adapters.topk import solve_ksubset, solve_ksubset_torch, topk_mask
from imle_solvers.errors import InvalidInputError
from imle_solvers.problems import KSubset

# (n, fixed k): k = 1, k = n - 1, k = n, long rows
SIZES = [(10, 3), (7, 1), (12, 11), (5, 5), (300, 10)]
DATA = ["mask", "k", "mask+k"]


def reference(theta: np.ndarray, k: int, data: dict[str, np.ndarray]) -> np.ndarray:
    """Row by row: the first k_i of a stable descending sort of the selectable items."""
    z = np.zeros_like(theta)
    for i, row in enumerate(theta):
        k_i = int(data["k"][i]) if "k" in data else k
        selectable = np.flatnonzero(data["mask"][i]) if "mask" in data else np.arange(row.size)
        order = selectable[np.argsort(-row[selectable], kind="stable")]
        z[i, order[:k_i]] = 1.0
    return z


def instances(n: int, k: int, which: str, tied: bool, rows: int = 64, seed: int = 0):
    """Scores (small integers when ``tied``: nearly every row ties at its boundary) and data
    that leave each row at least its k selectable items, with the edge rows: all selectable,
    exactly k_i selectable, k_i = 1 and k_i = n."""
    rng = np.random.default_rng(seed)
    theta = rng.integers(0, 3, size=(rows, n)).astype(np.float32) if tied else rng.normal(size=(rows, n))
    theta = theta.astype(np.float32)
    theta[0] = 5.0  # a constant row
    data: dict[str, np.ndarray] = {}
    k_rows = np.full(rows, k)
    if "k" in which:
        k_rows = rng.integers(1, n + 1, size=rows)
        k_rows[:4] = [1, n, k, max(1, n // 2)]
        data["k"] = k_rows.astype(np.int64)
    if "mask" in which:
        mask = np.zeros((rows, n), dtype=bool)
        for i, k_i in enumerate(k_rows):
            selectable = rng.integers(k_i, n + 1) if i > 4 else (n if i % 2 else k_i)
            mask[i, rng.choice(n, size=selectable, replace=False)] = True
        data["mask"] = mask
    return theta, data


def run_numpy(theta, problem, data):
    return solve_ksubset(theta, problem, data=data)


def run_torch(theta, problem, data):
    torch = pytest.importorskip("torch")
    data = {name: torch.from_numpy(value) for name, value in data.items()}
    return solve_ksubset(torch.from_numpy(theta), problem, data=data).numpy()


def run_torch_from_numpy(theta, problem, data):
    pytest.importorskip("torch")
    return solve_ksubset_torch(theta, problem, data=data)


def run_jax(theta, problem, data, jit=False):
    jax = pytest.importorskip("jax")
    data = {name: jax.numpy.asarray(value) for name, value in data.items()}  # k: int32 without x64
    f = jax.jit(lambda t, d: solve_ksubset(t, problem, data=d)) if jit else lambda t, d: solve_ksubset(t, problem, d)
    return np.asarray(f(jax.numpy.asarray(theta), data))


def run_tf(theta, problem, data, function=False):
    tf = pytest.importorskip("tensorflow")
    data = {name: tf.constant(value) for name, value in data.items()}
    f = lambda t, d: solve_ksubset(t, problem, data=d)
    if function:  # an unknown batch size while tracing
        signature = {name: tf.TensorSpec((None, *value.shape[1:]), value.dtype) for name, value in data.items()}
        f = tf.function(f, input_signature=[tf.TensorSpec((None, problem.n), tf.float32), signature])
    return f(tf.constant(theta), data).numpy()


RUNNERS = {
    "numpy": run_numpy,
    "torch": run_torch,
    "torch-solver-numpy": run_torch_from_numpy,
    "jax": run_jax,
    "jax.jit": lambda *args: run_jax(*args, jit=True),
    "tensorflow": run_tf,
    "tf.function": lambda *args: run_tf(*args, function=True),
}


@pytest.mark.parametrize("framework", list(RUNNERS))
@pytest.mark.parametrize("which", DATA)
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "continuous"])
@pytest.mark.parametrize("n, k", SIZES)
def test_exactly_k_i_selectable_ones_ties_to_the_lower_index(framework, which, tied, n, k):
    theta, data = instances(n, k, which, tied, seed=n + k)
    problem = KSubset(n, k)
    problem.check_instance_data(data)  # the generated data are valid
    z = RUNNERS[framework](theta, problem, data)
    expected = reference(theta, k, data)
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(z.sum(axis=1), data.get("k", k))
    if "mask" in data:
        assert not z[~data["mask"]].any()
    assert z.dtype == np.float32


def test_no_data_is_the_plain_path():
    theta, _ = instances(20, 4, "", tied=True)
    problem = KSubset(20, 4)
    for data in (None, {}):
        np.testing.assert_array_equal(solve_ksubset(theta, problem, data=data), topk_mask(theta, 4))


def test_masked_scores_at_the_lowest_finite_value_still_win():
    """Selectable items at the dtype's lowest finite score still beat masked ones (-inf)."""
    lowest = np.finfo(np.float32).min
    theta = np.full((2, 6), lowest, dtype=np.float32)
    mask = np.array([[False, True, False, True, True, False], [True] * 3 + [False] * 3])
    for data in ({"mask": mask}, {"mask": mask, "k": np.array([3, 2])}):
        z = solve_ksubset(theta, KSubset(6, 3), data=data)
        np.testing.assert_array_equal(z, reference(theta, 3, data))


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax", "tensorflow"])
def test_topk_mask_with_leading_axes(framework, rng):
    theta = rng.integers(0, 3, size=(3, 4, 30)).astype(np.float32)
    k = rng.integers(1, 10, size=(3, 4))
    mask = rng.random((3, 4, 30)) < 0.6
    mask[..., :10] = True
    expected = reference(theta.reshape(12, 30), 0, {"k": k.reshape(-1), "mask": mask.reshape(12, 30)})
    if framework == "numpy":
        z = topk_mask(theta, k, mask=mask)
    elif framework == "torch":
        torch = pytest.importorskip("torch")
        z = topk_mask(torch.from_numpy(theta), torch.from_numpy(k), mask=torch.from_numpy(mask)).numpy()
    elif framework == "jax":
        jnp = pytest.importorskip("jax.numpy")
        z = np.asarray(topk_mask(jnp.asarray(theta), jnp.asarray(k), mask=jnp.asarray(mask)))
    else:
        tf = pytest.importorskip("tensorflow")
        z = topk_mask(tf.constant(theta), tf.constant(k), mask=tf.constant(mask)).numpy()
    assert z.shape == theta.shape
    np.testing.assert_array_equal(z.reshape(12, 30), expected)


def test_jax_vmap_of_mask_and_k():
    jax = pytest.importorskip("jax")
    theta, data = instances(25, 5, "mask+k", tied=True, rows=48)
    solve = jax.jit(jax.vmap(lambda t, m, k: topk_mask(t, k, mask=m)))
    z = solve(*(jax.numpy.asarray(x.reshape(4, 12, *x.shape[1:])) for x in (theta, data["mask"], data["k"])))
    np.testing.assert_array_equal(np.asarray(z).reshape(48, 25), reference(theta, 5, data))


def test_torch_keeps_dtype_and_runs_on_the_gpu():
    torch = pytest.importorskip("torch")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        for which in DATA:
            theta, data = instances(40, 6, which, tied=True)
            t = torch.from_numpy(theta).to(dev, torch.float64)
            z = solve_ksubset(t, KSubset(40, 6), data={name: torch.from_numpy(v).to(dev) for name, v in data.items()})
            assert z.dtype == torch.float64 and z.device == t.device
            np.testing.assert_array_equal(z.cpu().numpy(), reference(theta, 6, data))


def test_instance_fields():
    fields = KSubset(8, 3).instance_fields
    assert set(fields) == {"mask", "k"}
    assert (fields["mask"].shape, fields["mask"].kind) == ((8,), "bool")
    assert (fields["k"].shape, fields["k"].kind) == ((), "int")


@pytest.mark.parametrize("bad", [0, 9, -2])
def test_k_out_of_range_names_the_batch_index(bad):
    k = np.array([3, 8, 1, bad, bad], dtype=np.int64)
    with pytest.raises(InvalidInputError, match=rf"k: batch index 3 .*k={bad}.*1\.\.n=8"):
        KSubset(8, 3).check_instance_data({"k": k})


def test_too_few_selectable_items_names_the_batch_index_and_k():
    mask = np.ones((5, 8), dtype=bool)
    mask[2, :6] = False  # 2 selectable, k = 3 (the problem's)
    mask[4, :] = False
    with pytest.raises(InvalidInputError, match=r"mask: batch index 2 leaves 2 selectable items, fewer than k=3"):
        KSubset(8, 3).check_instance_data({"mask": mask})


def test_too_few_selectable_items_for_the_rows_own_k():
    mask = np.zeros((4, 8), dtype=bool)
    mask[:, :5] = True  # 5 selectable everywhere
    k = np.array([5, 1, 2, 5], dtype=np.int64)
    KSubset(8, 7).check_instance_data({"mask": mask, "k": k})  # each row's own k fits
    k[1] = 6
    with pytest.raises(InvalidInputError, match=r"mask: batch index 1 leaves 5 selectable items, fewer than k=6"):
        KSubset(8, 7).check_instance_data({"mask": mask, "k": k})
    with pytest.raises(InvalidInputError, match=r"mask: batch index 0 leaves 5 selectable items, fewer than k=7"):
        KSubset(8, 7).check_instance_data({"mask": mask})


def test_valid_data_pass_the_checks():
    problem = KSubset(6, 2)
    problem.check_instance_data({})
    problem.check_instance_data({"k": np.array([1, 6]), "mask": np.ones((2, 6), dtype=bool)})
    problem.check_instance_data({"k": np.zeros((0,), dtype=np.int64), "mask": np.zeros((0, 6), dtype=bool)})
