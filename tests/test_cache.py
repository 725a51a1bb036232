"""The solution cache (``MAPOracle(..., cache=SolutionCache(...))``): exact with
``solve_ratio=1``, exact hits without a solve, pool answers among same-data states only,
statistics, LRU eviction, errors naming the caller's batch index, and a torch layer.

The solvers below are module-level and registered under kinds of their own, so that the
pool's workers can import them by reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import SolutionCache
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.failures import Status

from instance_problems import PickOne, pick_one

N = 6
CALLS: list[np.ndarray] = []  # the rows the counting solver was asked (in-process only)
FAIL_BELOW = -100.0  # a row whose first score is below this fails


@dataclass(frozen=True)
class CountedPick(PickOne):
    kind: ClassVar[str] = "test-cache-pick"


@dataclass(frozen=True)
class CheapestPick(PickOne):
    """:class:`PickOne` as a min problem: the allowed item of the lowest ``theta + bonus``."""

    kind: ClassVar[str] = "test-cache-cheapest"

    @property
    def sense(self) -> str:
        return "min"


@ims.register_solver(CountedPick.kind, "counting", replace=True)
def solve_counting(theta: np.ndarray, problem: CountedPick, data: dict | None = None) -> np.ndarray:
    CALLS.append(np.array(theta))
    if theta[0] < FAIL_BELOW:
        raise SolverError("marked to fail", status="infeasible")
    return pick_one(theta, **(data or {}))


@ims.register_solver(CountedPick.kind, "batched-failing", batched=True, replace=True)
def solve_batched_failing(theta: np.ndarray, problem: CountedPick, data: dict | None = None) -> np.ndarray:
    bad = np.flatnonzero(theta[:, 0] < FAIL_BELOW)
    if len(bad):
        raise SolverError("marked to fail", index=int(bad[0]), status="infeasible")
    data = data or {}
    return np.stack([pick_one(row, **{k: v[i] for k, v in data.items()}) for i, row in enumerate(theta)])


@ims.register_solver(CountedPick.kind, "kill-marked", replace=True)
def solve_killing(theta: np.ndarray, problem: CountedPick, data: dict | None = None) -> np.ndarray:
    import os
    import signal

    if theta[0] < FAIL_BELOW:  # a marked row kills its worker
        os.kill(os.getpid(), signal.SIGKILL)
    return pick_one(theta, **(data or {}))


@ims.register_solver(CheapestPick.kind, "counting", replace=True)
def solve_cheapest(theta: np.ndarray, problem: CheapestPick, data: dict | None = None) -> np.ndarray:
    CALLS.append(np.array(theta))
    return pick_one(-theta, **{k: (-v if k == "bonus" else v) for k, v in (data or {}).items()})


@pytest.fixture(autouse=True)
def _fresh_calls():
    CALLS.clear()
    yield
    CALLS.clear()


def new_rows(rng: np.random.Generator, b: int, masks: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """``b`` random instances; their ``allowed`` masks drawn among ``masks`` when given."""
    theta = rng.normal(size=(b, N))
    if masks is None:
        allowed = rng.random((b, N)) < 0.5
        allowed[np.arange(b), rng.integers(0, N, b)] = True
    else:
        allowed = masks[rng.integers(0, len(masks), b)]
    return theta, {"allowed": allowed, "bonus": rng.normal(size=(b, N))}


def reference(theta: np.ndarray, data: dict) -> np.ndarray:
    return np.stack([pick_one(row, **{k: v[i] for k, v in data.items()}) for i, row in enumerate(theta)])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_solve_ratio_one_gives_the_results_of_no_cache(n_jobs):
    rng = np.random.default_rng(0)
    seen_theta, seen_data = new_rows(rng, 10)
    cache = SolutionCache(solve_ratio=1.0, max_entries=1000)
    options = {"backend": "python", "n_jobs": n_jobs, "chunk_size": 2}
    with ims.MAPOracle(PickOne(N), cache=cache, **options) as cached, ims.MAPOracle(PickOne(N), **options) as plain:
        for _ in range(6):
            old = rng.integers(0, 10, 7)  # repeated rows, some twice in one batch
            theta, data = new_rows(rng, 5)
            theta = np.concatenate([seen_theta[old], theta])
            data = {k: np.concatenate([seen_data[k][old], v]) for k, v in data.items()}
            order = rng.permutation(len(theta))
            theta, data = theta[order], {k: v[order] for k, v in data.items()}
            z, status = cached.solve(theta, **data)
            np.testing.assert_array_equal(z, plain(theta, **data))
            np.testing.assert_array_equal(z, reference(theta, data))
            assert (status == Status.OK).all()
    assert cache.stats.exact_hits > 0 and cache.stats.pool_answers == 0
    assert cache.stats.lookups == 6 * 12


def test_exact_hits_skip_the_solver_and_the_data_are_part_of_the_key():
    rng = np.random.default_rng(1)
    theta, data = new_rows(rng, 5)
    oracle = ims.MAPOracle(CountedPick(N), backend="counting", cache=True)
    first = oracle(theta, **data)
    assert len(CALLS) == 5
    np.testing.assert_array_equal(oracle(theta, **data), first)
    assert len(CALLS) == 5, "exact hits must not solve"
    assert oracle.cache.stats.exact_hits == 5
    other = dict(data, allowed=~data["allowed"] | np.eye(N, dtype=bool)[:5])  # same scores, other data
    np.testing.assert_array_equal(oracle(theta, **other), reference(theta, other))
    assert len(CALLS) == 10
    oracle(theta[:3])  # no data at all: a key of its own too
    assert len(CALLS) == 13


def test_stats_hit_rate_and_clear():
    rng = np.random.default_rng(2)
    theta, data = new_rows(rng, 4)
    cache = SolutionCache()
    oracle = ims.MAPOracle(CountedPick(N), backend="counting", cache=cache)
    assert cache.stats.hit_rate == 0.0
    oracle(theta, **data)
    oracle(theta[:2], **{k: v[:2] for k, v in data.items()})
    assert (cache.stats.exact_hits, cache.stats.pool_answers, cache.stats.solved) == (2, 0, 4)
    assert cache.stats.hit_rate == pytest.approx(2 / 6)
    assert len(cache) == 4
    cache.clear()
    assert len(cache) == 0 and cache.stats.lookups == 0
    oracle(theta, **data)
    assert cache.stats.solved == 4 and len(CALLS) == 8


def test_eviction_keeps_the_most_recently_used_max_entries():
    rng = np.random.default_rng(3)
    theta, _ = new_rows(rng, 5)
    oracle = ims.MAPOracle(CountedPick(N), backend="counting", cache=SolutionCache(max_entries=3))
    oracle(theta[:3])
    oracle(theta[:1])  # row 0 becomes the most recently used
    oracle(theta[3:4])  # evicts row 1, the least recently used
    assert len(oracle.cache) == 3
    CALLS.clear()
    oracle(theta[[0, 2, 3]])
    assert CALLS == []
    oracle(theta[1:2])
    assert len(CALLS) == 1 and len(oracle.cache) == 3
    oracle(theta)  # 5 rows through a cache of 3: never more than 3 kept
    assert len(oracle.cache) == 3


def test_eviction_keeps_the_most_recently_used_within_max_bytes():
    from imle_solvers.cache import ENTRY_OVERHEAD_BYTES

    rng = np.random.default_rng(3)
    theta, data = new_rows(rng, 5)
    # an entry: its state and scores row (6 float64 each), its data rows (6 bools, 6 float64)
    entry = 6 * 8 + 6 * 8 + 6 + 6 * 8 + ENTRY_OVERHEAD_BYTES
    cache = SolutionCache(max_entries=100, max_bytes=3 * entry + entry // 2)  # room for 3
    oracle = ims.MAPOracle(CountedPick(N), backend="counting", cache=cache)

    def call(i):
        return oracle(theta[i], **{k: v[i] for k, v in data.items()})

    call(slice(0, 3))
    assert len(cache) == 3 and cache.nbytes == 3 * entry
    call(slice(0, 1))  # row 0 becomes the most recently used
    call(slice(3, 4))  # evicts row 1, the least recently used
    assert len(cache) == 3 and cache.nbytes == 3 * entry
    CALLS.clear()
    call([0, 2, 3])
    assert CALLS == []  # all hits
    call(slice(1, 2))
    assert len(CALLS) == 1 and len(cache) == 3
    call(slice(None))  # 5 rows through 3 entries' bytes: never more kept
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    cache.clear()
    assert cache.nbytes == 0


def test_states_whose_entry_exceeds_max_bytes_are_not_stored():
    theta, data = new_rows(np.random.default_rng(8), 2)
    cache = SolutionCache(max_bytes=600)  # less than one entry (662 bytes)
    oracle = ims.MAPOracle(CountedPick(N), backend="counting", cache=cache)
    CALLS.clear()
    for _ in range(2):
        np.testing.assert_array_equal(oracle(theta, **data), reference(theta, data))
    assert len(cache) == 0 and cache.nbytes == 0 and len(CALLS) == 4  # solved every time


def test_the_default_bounds_the_cache_in_bytes():
    from imle_solvers.cache import DEFAULT_MAX_BYTES, entry_bytes

    cache = SolutionCache()
    assert cache.max_bytes == DEFAULT_MAX_BYTES == 256 * 2**20 and cache.max_entries == 100_000
    # the trial's case: n = 2000 float64 scores, about 32 KiB an entry: 100,000 entries would
    # take 3 GiB, the default bytes hold about 8,000
    theta = np.zeros((1, 2000))
    size = entry_bytes(SolutionCache._key(theta[0], {}, 0), theta[0])
    assert 32_000 < size < 33_000 and 8_000 < DEFAULT_MAX_BYTES // size < 8_300


@pytest.mark.parametrize("problem", [CountedPick(N), CheapestPick(N)], ids=["max", "min"])
def test_solve_ratio_below_one_answers_with_the_best_cached_state_of_the_same_data(problem):
    rng = np.random.default_rng(4)
    left = np.array([True] * (N // 2) + [False] * (N - N // 2))
    masks = np.stack([left, ~left])  # two data groups whose states are infeasible for each other
    cache = SolutionCache(solve_ratio=0.5, seed=0)
    oracle = ims.MAPOracle(problem, backend="counting", cache=cache)
    answered_total = solved_total = 0
    for step in range(6):
        theta, data = new_rows(rng, 12, masks)
        data.pop("bonus")
        groups = {}  # the cached states per data, before the call
        for key, state in cache._entries.items():
            groups.setdefault(key[2], []).append(state)
        CALLS.clear()
        before = cache.stats.pool_answers
        z = oracle(theta, **data)
        solved = {row.tobytes() for row in CALLS}
        answered, solves = 0, len(CALLS)
        for i in range(len(theta)):
            key = SolutionCache._key(theta[i], data, i)
            if theta[i].tobytes() in solved:
                solve = solve_cheapest if problem.sense == "min" else solve_counting
                np.testing.assert_array_equal(z[i], solve(theta[i], problem, {"allowed": data["allowed"][i]}))
                continue
            answered += 1
            candidates = np.stack(groups[key[2]])  # a pool answer needs states of the same data
            values = problem.sign * candidates @ theta[i]
            np.testing.assert_array_equal(z[i], candidates[np.argmax(values)])
            assert z[i][data["allowed"][i]].sum() == 1, "a state of other data was used"
        assert cache.stats.pool_answers - before == answered
        solved_total += solves
        answered_total += answered
    assert answered_total > 0, "with solve_ratio=0.5 some instances must be answered from the cache"
    assert cache.stats.solved == solved_total
    assert cache.stats.lookups == 6 * 12


def test_errors_under_the_cache_name_the_callers_batch_index():
    rng = np.random.default_rng(5)
    theta, data = new_rows(rng, 6)
    cache = SolutionCache()
    oracle = ims.MAPOracle(CountedPick(N), backend="counting", cache=cache)
    oracle(theta[[0, 1, 3]], **{k: v[[0, 1, 3]] for k, v in data.items()})  # cached: rows 0, 1, 3
    theta[[2, 5], 0] = FAIL_BELOW - 1
    with pytest.raises(SolverError, match=r"instance 2\b") as caught:
        oracle(theta, **data)
    assert caught.value.index == 2
    batched = ims.MAPOracle(CountedPick(N), backend="batched-failing", cache=cache)
    with pytest.raises(SolverError) as caught:
        batched(theta, **data)
    assert caught.value.index == 2
    skipping = ims.MAPOracle(CountedPick(N), backend="batched-failing", on_failure="skip", cache=cache)
    z, status = skipping.solve(theta, **data)
    np.testing.assert_array_equal(status, [0, 0, Status.FAILED, 0, 0, Status.FAILED])
    assert [error.index for error in skipping.last_failures] == [2, 5]
    assert not z[[2, 5]].any()
    good = [0, 1, 3, 4]
    np.testing.assert_array_equal(z[good], reference(theta[good], {k: v[good] for k, v in data.items()}))
    # a failed instance is not cached: it fails again
    z, status = skipping.solve(theta, **data)
    np.testing.assert_array_equal(status, [0, 0, Status.FAILED, 0, 0, Status.FAILED])


def test_errors_on_a_pool_under_the_cache_name_the_callers_batch_index():
    rng = np.random.default_rng(6)
    theta, data = new_rows(rng, 6)
    cache = SolutionCache()
    ims.MAPOracle(CountedPick(N), backend="counting", cache=cache)(theta[:2], **{k: v[:2] for k, v in data.items()})
    theta[4, 0] = FAIL_BELOW - 1
    with ims.MAPOracle(CountedPick(N), backend="counting", n_jobs=2, chunk_size=1, cache=cache) as oracle:
        with pytest.raises(SolverError) as caught:
            oracle(theta, **data)
        assert caught.value.index == 4
    cache.add([SolutionCache._key(theta[3], data, 3)], reference(theta[3:4], {k: v[3:4] for k, v in data.items()}),
              np.array([True]))
    # the misses 2, 4, 5 go in chunks [2, 4] and [5]; 4 kills its worker: named by the caller's index
    with ims.MAPOracle(CountedPick(N), backend="kill-marked", n_jobs=2, chunk_size=2, cache=cache) as oracle:
        with pytest.raises(SolverError, match=r"^instance 4 .*worker died") as caught:
            oracle(theta, **data)
    assert caught.value.status == "worker-died"
    assert caught.value.index == 4 and caught.value.indices == (4,)


def test_a_cache_serves_one_problem_and_bad_options_are_refused():
    cache = SolutionCache()
    ims.MAPOracle(PickOne(N), backend="python", cache=cache)
    with pytest.raises(InvalidInputError, match="serves"):
        ims.MAPOracle(PickOne(N + 1), backend="python", cache=cache)
    for bad in (0, 1.5, -0.1, True):
        with pytest.raises(InvalidInputError, match="solve_ratio"):
            SolutionCache(solve_ratio=bad)
    with pytest.raises(InvalidInputError, match="max_entries"):
        SolutionCache(max_entries=0)
    for bad in (0, 1.5, True, "1GB"):
        with pytest.raises(InvalidInputError, match="max_bytes"):
            SolutionCache(max_bytes=bad)
    with pytest.raises(InvalidInputError, match="cache"):
        ims.MAPOracle(PickOne(N), backend="python", cache="yes")
    assert ims.MAPOracle(PickOne(N), backend="python", cache=False).cache is None


def test_an_array_native_solve_bypasses_the_cache():
    oracle = ims.MAPOracle(ims.KSubset(N, 2), backend="auto", cache=True)
    if not oracle.solver.runs_on("numpy"):
        pytest.skip("no array-native k-subset solver")
    theta = np.random.default_rng(7).normal(size=(3, N))
    oracle(theta)
    oracle(theta)
    assert oracle.cache.stats.lookups == 0 and len(oracle.cache) == 0


def test_a_torch_layer_solves_forward_and_backward_through_the_cache():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    rng = np.random.default_rng(8)
    theta, data = new_rows(rng, 5)
    data = {k: torch.as_tensor(v) for k, v in data.items()}
    grad_z = torch.as_tensor(rng.normal(size=(5, N)))
    cache = SolutionCache()
    estimator = ims.IMLE(noise=None, lambda_=10.0)
    cached = IMLELayer(CountedPick(N), estimator, backend="counting", cache=cache)
    plain = IMLELayer(CountedPick(N), estimator, backend="counting")
    assert cached.oracle.cache is cache

    def step(layer):
        t = torch.tensor(theta, requires_grad=True)
        z = layer(t, **data)
        z.backward(grad_z)
        return z.detach().numpy(), t.grad.numpy()

    z, grad = step(cached)
    assert cache.stats.solved == 10 and len(CALLS) == 10  # forward and backward
    np.testing.assert_array_equal(z, reference(theta, {k: v.numpy() for k, v in data.items()}))
    again, grad_again = step(cached)
    assert len(CALLS) == 10 and cache.stats.exact_hits == 10
    z_plain, grad_plain = step(plain)
    np.testing.assert_array_equal(z, z_plain)
    np.testing.assert_array_equal(again, z_plain)
    np.testing.assert_allclose(grad, grad_plain)
    np.testing.assert_allclose(grad_again, grad_plain)
    assert np.abs(grad).sum() > 0


# --- the losses, and the JAX and Keras layers -----------------------------------------------


def test_torch_losses_through_the_cache_give_the_uncached_values_and_hit_on_repeats():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss, SPOPlusLoss

    rng = np.random.default_rng(9)
    c_hat, data = new_rows(rng, 4)
    c = rng.normal(size=(4, N))
    data = {k: torch.as_tensor(v) for k, v in data.items()}

    def run(loss_fn, *args):
        t = torch.tensor(c_hat, requires_grad=True)
        values = loss_fn(t, *args, **data)
        values.sum().backward()
        return values.detach().numpy(), t.grad.numpy()

    cache = SolutionCache(solve_ratio=1)
    spo = SPOPlusLoss(CountedPick(N), backend="counting", reduction="none", cache=cache)
    assert spo.oracle.cache is cache
    values, grad = run(spo, torch.tensor(c))
    assert cache.stats.solved == 8 and len(CALLS) == 8  # c and 2 c_hat - c
    again = run(spo, torch.tensor(c))
    assert cache.stats.exact_hits == 8 and len(CALLS) == 8, "a repeat is answered from the cache"
    plain = run(SPOPlusLoss(CountedPick(N), backend="counting", reduction="none"), torch.tensor(c))
    for result in (again, plain):
        np.testing.assert_allclose(result[0], values)
        np.testing.assert_allclose(result[1], grad)
    assert np.abs(grad).sum() > 0

    # PFYL: the same seed draws the same perturbations, so a second loss sharing the cache only hits
    y = torch.as_tensor(reference(rng.normal(size=(4, N)), {k: v.numpy() for k, v in data.items()}))
    options = {"backend": "counting", "samples": 3, "seed": 5, "noise_source": "numpy", "reduction": "none"}
    cache = SolutionCache(solve_ratio=1)
    CALLS.clear()
    first = run(FenchelYoungLoss(CountedPick(N), cache=cache, **options), y)
    assert cache.stats.solved == 12 and len(CALLS) == 12
    second = run(FenchelYoungLoss(CountedPick(N), cache=cache, **options), y)
    assert cache.stats.exact_hits == 12 and len(CALLS) == 12 and cache.stats.hit_rate == 0.5
    plain = run(FenchelYoungLoss(CountedPick(N), **options), y)
    for result in (second, plain):
        np.testing.assert_allclose(result[0], first[0])
        np.testing.assert_allclose(result[1], first[1])


def test_jax_layer_and_losses_pass_the_cache_to_their_oracle():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import SPOPlusLoss, imle

    rng = np.random.default_rng(10)
    theta, data = new_rows(rng, 3)
    theta = jnp.asarray(theta, dtype=jnp.float32)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    cache = SolutionCache()
    f = imle(CountedPick(N), ims.IMLE(noise=None, lambda_=10.0), backend="counting", cache=cache)
    assert f.oracle.cache is cache
    upstream = jnp.asarray(rng.normal(size=(3, N)), dtype=jnp.float32)

    def step():
        return jax.grad(lambda t: jnp.sum(f(t, jax.random.key(0), **data) * upstream))(theta)

    grad = step()
    assert cache.stats.solved == 6 and len(CALLS) == 6  # forward and backward
    np.testing.assert_allclose(step(), grad)
    assert cache.stats.exact_hits == 6 and len(CALLS) == 6

    cache = SolutionCache()
    spo = SPOPlusLoss(CountedPick(N), backend="counting", cache=cache)
    assert spo.oracle.cache is cache
    c = jnp.asarray(rng.normal(size=(3, N)), dtype=jnp.float32)
    value = spo(theta, c, **data)
    assert cache.stats.solved == 6
    np.testing.assert_allclose(spo(theta, c, **data), value)
    assert cache.stats.exact_hits == 6 and len(CALLS) == 12


def test_keras_layer_and_losses_pass_the_cache_to_their_oracle():
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from imle_solvers.tensorflow import FenchelYoungLoss, IMLELayer

    rng = np.random.default_rng(11)
    theta, data = new_rows(rng, 3)
    cache = SolutionCache()
    layer = IMLELayer(CountedPick(N), ims.IMLE(noise=None, lambda_=10.0), backend="counting", cache=cache)
    assert layer.oracle.cache is cache
    upstream = rng.normal(size=(3, N))

    def step():
        v = tf.constant(theta)
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(layer(v, **data) * upstream)
        return tape.gradient(loss, v).numpy()

    grad = step()
    assert cache.stats.solved == 6 and len(CALLS) == 6
    np.testing.assert_allclose(step(), grad)
    assert cache.stats.exact_hits == 6 and len(CALLS) == 6

    cache = SolutionCache()
    options = {"backend": "counting", "samples": 2, "seed": 3, "noise_source": "numpy", "dtype": "float64"}
    y = reference(rng.normal(size=(3, N)), data)
    first = FenchelYoungLoss(CountedPick(N), cache=cache, **options)(y, theta, **data)
    assert first.dtype == tf.float64 and cache.stats.solved == 6
    second = FenchelYoungLoss(CountedPick(N), cache=cache, **options)(y, theta, **data)
    np.testing.assert_allclose(second.numpy(), first.numpy())
    assert cache.stats.exact_hits == 6 and len(CALLS) == 12
