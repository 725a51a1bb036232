"""The solver registry: registration, 'auto', missing dependencies, users' own solvers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.adapters import resolve_solver, unregister_solver
from imle_solvers.errors import MissingDependencyError, SolverError


@dataclass(frozen=True)
class OneHot(ims.Problem):
    """A user's own problem: pick one of n items."""

    n: int
    kind: ClassVar[str] = "test-one-hot"

    @property
    def shape(self):
        return (self.n,)

    @property
    def sense(self):
        return "max"


def argmax_one_hot(theta: np.ndarray, problem: OneHot) -> np.ndarray:
    if theta[0] == 42.0:
        raise ValueError("the answer is not allowed")
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1
    return z


@pytest.fixture
def user_solver():
    ims.register_solver(OneHot.kind, "python")(argmax_one_hot)
    yield
    unregister_solver(OneHot.kind, "python")


def test_a_user_solver_is_used_like_a_built_in_one(user_solver, rng):
    theta = rng.normal(size=(6, 4))
    z = ims.MAPOracle(OneHot(4))(theta)
    np.testing.assert_array_equal(z.argmax(axis=1), theta.argmax(axis=1))
    assert [e.backend for e in ims.list_solvers(OneHot.kind)] == ["python"]


def test_a_failing_user_solver_names_the_instance(user_solver):
    theta = np.zeros((5, 3))
    theta[3, 0] = 42.0
    with pytest.raises(SolverError, match="instance 3 .*the answer is not allowed") as info:
        ims.MAPOracle(OneHot(3))(theta)
    assert info.value.index == 3


def test_registering_a_taken_name_needs_replace(user_solver):
    with pytest.raises(ValueError, match="already registered"):
        ims.register_solver(OneHot.kind, "python")(argmax_one_hot)
    ims.register_solver(OneHot.kind, "python", replace=True)(argmax_one_hot)


def test_auto_takes_the_installed_solver_of_highest_priority(user_solver):
    ims.register_solver(OneHot.kind, "fancy", priority=100, requires=("no_such_module_xyz",), extra="fancy")(
        argmax_one_hot
    )
    try:
        assert resolve_solver(OneHot.kind).backend == "python"
        with pytest.raises(MissingDependencyError, match=r"pip install 'imle_solvers\[fancy\]'"):
            resolve_solver(OneHot.kind, "fancy")
    finally:
        unregister_solver(OneHot.kind, "fancy")


def test_built_in_auto_choices():
    assert resolve_solver("k-subset").backend == "numpy"
    assert resolve_solver("grid-shortest-path").backend == "scipy"


def one_hot_of_theta_alone(theta: np.ndarray) -> np.ndarray:
    return (theta == theta.max()).astype(theta.dtype)


def test_a_solver_of_theta_alone_is_accepted(rng):
    ims.register_solver(OneHot.kind, "theta-only")(one_hot_of_theta_alone)
    try:
        theta = rng.normal(size=(3, 4))
        z = ims.MAPOracle(OneHot(4), backend="theta-only")(theta)
        np.testing.assert_array_equal(z.argmax(axis=1), theta.argmax(axis=1))
    finally:
        unregister_solver(OneHot.kind, "theta-only")


def test_torch_function_problem_imports_without_torch():
    script = (
        "import sys\n"
        "import imle_solvers.problems\n"
        "from imle_solvers.problems import TorchFunctionProblem\n"
        "assert 'torch' not in sys.modules, 'imle_solvers.problems imported torch'\n"
        "import imle_solvers\n"
        "assert imle_solvers.TorchFunctionProblem is TorchFunctionProblem\n"
        "problem = TorchFunctionProblem(lambda theta: theta, event_shape=(3,))\n"
        "assert problem.shape == (3,) and problem.sense == 'max'\n"
        "assert [e.backend for e in imle_solvers.list_solvers(problem.kind)] == ['torch']\n"
        "assert 'torch' not in sys.modules, 'registering its solver imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
