"""The oracle against hostile solvers (issue 19): solvers that write into their inputs,
answer a state of the wrong shape, or raise ``SystemExit``/``KeyboardInterrupt`` on a
worker. The pool's own faults (dead workers, hung instances) are in tests/test_oracle.py.

The solvers are module-level and registered under kinds of their own, so that the pool's
workers can import them by reference.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.chunks import solve_task
from imle_solvers.errors import SolverError
from imle_solvers.failures import Status

from instance_problems import PickOne, pick_one


@dataclass(frozen=True)
class Scribbled(PickOne):
    """:class:`PickOne` whose solvers write into their arguments."""

    kind: ClassVar[str] = "test-hostile-scribbled"


@ims.register_solver(Scribbled.kind, "masking", replace=True)
def solve_masking(theta: np.ndarray, problem: Scribbled, data: dict | None = None) -> np.ndarray:
    """The idiom of the trial: the disallowed items' scores set to -inf, in place, and
    the data overwritten too."""
    data = data or {}
    if "allowed" in data:
        theta[~data["allowed"]] = -np.inf
        data["allowed"][:] = True
    if "bonus" in data:
        theta += data["bonus"]
        data["bonus"][:] = 0.0
    z = np.zeros_like(theta)
    z[int(np.argmax(theta))] = 1
    theta[:] = 1e6  # and then some
    return z


@ims.register_solver(Scribbled.kind, "masking-batched", batched=True, replace=True)
def solve_masking_batched(theta: np.ndarray, problem: Scribbled, data: dict | None = None) -> np.ndarray:
    """As :func:`solve_masking`, row by row; it refuses a batch of several rows when one is
    answered with item 0, after writing into every row: the rows it is then asked one at a
    time must be the caller's, not what it left."""
    data = data or {}
    z = np.stack([solve_masking(row, problem, {k: v[i] for k, v in data.items()}) for i, row in enumerate(theta)])
    if len(theta) > 1 and (z[:, 0] == 1).any():
        raise ValueError("a row I refuse in a batch")
    return z


@pytest.fixture(scope="module", autouse=True)
def warm_workers():
    """A loky pool open for the whole module: loky's workers are shared by the process, so
    the tests' own oracles closing leaves them running, and the tests quick."""
    with ims.MAPOracle(PickOne(5), backend="python", n_jobs=2, chunk_size=1) as oracle:
        oracle(np.zeros((4, 5)))
        yield


def scores_and_data(rng: np.random.Generator, b: int = 6) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    theta = rng.normal(size=(b, 5))
    allowed = rng.random((b, 5)) < 0.5
    allowed[np.arange(b), rng.integers(0, 5, b)] = True
    return theta, {"allowed": allowed, "bonus": rng.normal(size=(b, 5))}


def reference(theta: np.ndarray, data: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([pick_one(row, **{k: v[i] for k, v in data.items()}) for i, row in enumerate(theta)])


# -- item 1: a solver cannot change the caller's arrays --------------------------------------


@pytest.mark.parametrize("backend", ["masking", "masking-batched"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_solver_writing_into_its_input_changes_neither_the_callers_arrays_nor_the_answer(rng, backend, n_jobs):
    theta, data = scores_and_data(rng)
    theta[2, 0] = 50.0  # the batched solver refuses a batch holding a row it answers with item 0
    data["allowed"][2, 0] = True
    before = (theta.copy(), {k: v.copy() for k, v in data.items()})
    with ims.MAPOracle(Scribbled(5), backend=backend, n_jobs=n_jobs, chunk_size=3) as oracle:
        z = oracle(theta, **data)
        again = oracle(theta, **data)  # the same arrays, a second time
    np.testing.assert_array_equal(theta, before[0])
    for name, value in data.items():
        np.testing.assert_array_equal(value, before[1][name])
    expected = reference(before[0], before[1])
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(again, expected)


def test_a_torch_parameter_is_not_changed_by_a_solver_under_ste(rng):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    theta, _ = scores_and_data(rng)
    parameter = torch.nn.Parameter(torch.tensor(theta))
    layer = IMLELayer(Scribbled(5), ims.STE(), backend="masking", n_jobs=1)
    z = layer(parameter)
    torch.testing.assert_close(parameter.detach(), torch.tensor(theta), rtol=0, atol=0)
    np.testing.assert_array_equal(z.detach().numpy(), reference(theta, {}))


# -- item 2: exact shapes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rectangle(ims.Problem):
    """One cell of a ``(2, 3)`` grid: the largest score's."""

    kind: ClassVar[str] = "test-hostile-rectangle"
    binary_states: ClassVar[bool] = True

    @property
    def shape(self) -> tuple[int, ...]:
        return (2, 3)

    @property
    def sense(self) -> str:
        return "max"


def best_cell(theta: np.ndarray) -> np.ndarray:
    z = np.zeros(theta.size)
    z[int(np.argmax(theta))] = 1
    return z.reshape(theta.shape)


@ims.register_solver(Rectangle.kind, "transposing", replace=True)
def solve_transposing(theta: np.ndarray, problem: Rectangle) -> np.ndarray:
    """The right cell, in a ``(3, 2)`` array when the first score is negative: a reshape
    would put the 1 in another cell."""
    z = best_cell(theta)
    return z.T if theta[0, 0] < 0 else z


@ims.register_solver(Rectangle.kind, "transposing-batched", batched=True, replace=True)
def solve_transposing_batched(theta: np.ndarray, problem: Rectangle) -> np.ndarray:
    z = np.stack([best_cell(row) for row in theta])
    return z.transpose(0, 2, 1) if (theta[:, 0, 0] < 0).any() else z


@pytest.mark.parametrize("backend", ["transposing", "transposing-batched"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_state_of_the_transposed_shape_is_a_bad_output_naming_the_instance(rng, backend, n_jobs):
    theta = np.abs(rng.normal(size=(6, 2, 3)))
    theta[4, 0, 0] = -1.0
    with ims.MAPOracle(Rectangle(), backend=backend, n_jobs=n_jobs, chunk_size=3) as oracle:
        shapes = r"returned shape \((1, )?3, 2\), expected \((1, )?2, 3\)"  # a batched solver's: one-row batches
        with pytest.raises(SolverError, match=r"^instance 4 .*" + shapes) as caught:
            oracle(theta)
        assert caught.value.index == 4 and caught.value.status == "bad-output"
        skipping = ims.MAPOracle(Rectangle(), backend=backend, n_jobs=n_jobs, chunk_size=3, on_failure="skip")
        with skipping:
            z, status = skipping.solve(theta)
    expected = np.stack([best_cell(row) for row in theta])
    expected[4] = 0
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(status, [Status.FAILED if i == 4 else Status.OK for i in range(6)])
    assert skipping.failures == {"bad-output": 1}


@ims.register_solver(Rectangle.kind, "bad-incumbent", time_limit=True, replace=True)
def solve_with_bad_incumbent(theta: np.ndarray, problem: Rectangle, time_limit: float | None = None) -> np.ndarray:
    if theta[0, 0] < 0:  # an incumbent of the transposed shape
        raise SolverError("stopped", status="time-limit", incumbent=best_cell(theta).T)
    if theta[0, 1] < 0:  # a good one
        raise SolverError("stopped", status="time-limit", incumbent=best_cell(theta))
    return best_cell(theta)


def test_an_incumbent_is_checked_as_a_result_is(rng):
    theta = np.abs(rng.normal(size=(3, 2, 3)))
    theta[1, 0, 0] = -1.0
    theta[2, 0, 1] = -1.0
    oracle = ims.MAPOracle(Rectangle(), backend="bad-incumbent", time_limit=1.0, on_failure="incumbent")
    z, status = oracle.solve(theta)
    np.testing.assert_array_equal(status, [Status.OK, Status.FAILED, Status.INCUMBENT])
    np.testing.assert_array_equal(z[1], np.zeros((2, 3)))
    np.testing.assert_array_equal(z[2], best_cell(theta[2]))
    assert oracle.failures == {"bad-output": 1, "incumbent": 1}
    assert "returned shape (3, 2)" in str(oracle.last_failures[0])


# -- a batched solver failing on a batch of one, under "skip" -------------------------------------


def test_a_batched_solver_failing_on_a_single_row_under_skip_gives_its_placeholder():
    from flaky import FlakyArgmax  # tests/flaky.py

    oracle = ims.MAPOracle(FlakyArgmax(4), backend="numpy-batched", on_failure="skip")
    z, status = oracle.solve(np.array([[500.0, 0, 0, 0]]))
    np.testing.assert_array_equal(z, np.zeros((1, 4)))
    assert status.tolist() == [Status.FAILED] and oracle.failures == {"infeasible": 1}


# -- item 13: SystemExit and KeyboardInterrupt raised by a solver on a worker -----------------------


@dataclass(frozen=True)
class Quitter(PickOne):
    kind: ClassVar[str] = "test-hostile-quitter"


@ims.register_solver(Quitter.kind, "quitting", replace=True)
def solve_quitting(theta: np.ndarray, problem: Quitter, data: dict | None = None) -> np.ndarray:
    if theta[0] > 100:
        raise SystemExit(3)
    if theta[0] < -100:
        raise KeyboardInterrupt
    return pick_one(theta)


@pytest.mark.parametrize("parallel_backend", ["loky", "threading"])
def test_an_exit_or_interrupt_raised_by_a_solver_on_a_worker_fails_its_instance_alone(rng, parallel_backend):
    theta = rng.normal(size=(8, 5))
    theta[2, 0], theta[6, 0] = 1000.0, -1000.0
    options = dict(backend="quitting", n_jobs=2, parallel_backend=parallel_backend, chunk_size=2)
    with ims.MAPOracle(Quitter(5), on_failure="skip", **options) as oracle:
        z, status = oracle.solve(theta)
    expected = reference(theta, {})
    expected[[2, 6]] = 0
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(status, [Status.FAILED if i in (2, 6) else Status.OK for i in range(8)])
    assert [e.index for e in oracle.last_failures] == [2, 6]
    assert "SystemExit(3)" in str(oracle.last_failures[0]) and "KeyboardInterrupt" in str(oracle.last_failures[1])
    with ims.MAPOracle(Quitter(5), **options) as oracle:  # "raise": a SolverError naming the instance
        with pytest.raises(SolverError, match=r"^instance 2 .*SystemExit\(3\)") as caught:
            oracle(theta)
    assert caught.value.status == "error"


@pytest.mark.parametrize("mark, raised", [(1000.0, SystemExit), (-1000.0, KeyboardInterrupt)])
def test_an_exit_or_interrupt_in_the_calling_process_still_propagates(mark, raised):
    # in the caller's main thread a KeyboardInterrupt may be the user's Ctrl-C: never swallowed
    theta = np.zeros((3, 5))
    theta[1, 0] = mark
    with pytest.raises(raised):
        ims.MAPOracle(Quitter(5), backend="quitting", on_failure="skip")(theta)
    with pytest.raises(raised), ims.MAPOracle(
        Quitter(5), backend="quitting", n_jobs=2, parallel_backend="sequential", chunk_size=1, on_failure="skip"
    ) as oracle:
        oracle(theta)


def test_solve_task_tells_a_worker_from_the_calling_process():
    solver = ims.MAPOracle(Quitter(5), backend="quitting").solver
    theta = np.full((1, 5), -1000.0)
    args = (solver, Quitter(5), theta, 0, None, "skip", None)
    with pytest.raises(KeyboardInterrupt):
        solve_task(*args, os.getpid())  # the caller's main thread: maybe a Ctrl-C
    assert solve_task(*args, os.getpid() + 1).result.status.tolist() == [Status.FAILED]  # another process
    outputs = []
    thread = threading.Thread(target=lambda: outputs.append(solve_task(*args, os.getpid())))
    thread.start()
    thread.join()
    assert outputs[0].result.status.tolist() == [Status.FAILED]  # a worker thread


@ims.register_solver(Scribbled.kind, "native-masking", batched=True, array_native=("numpy",), replace=True)
def solve_native_masking(theta: np.ndarray, problem: Scribbled, data: dict | None = None) -> np.ndarray:
    theta[~data["allowed"]] = -np.inf
    return np.eye(theta.shape[1])[np.argmax(theta, axis=1)]


def test_an_array_native_solver_gets_numpy_arrays_read_only(rng):
    # a vectorised solver takes the caller's arrays without a copy: it cannot write into them
    theta, data = scores_and_data(rng)
    before = theta.copy()
    with pytest.raises(ValueError, match="read-only"):
        ims.MAPOracle(Scribbled(5), backend="native-masking")(theta, allowed=data["allowed"])
    np.testing.assert_array_equal(theta, before)
    assert theta.flags.writeable  # the caller's own array is left as it was
