"""Configs of problems, estimators and noise: JSON round trips through one registry of
allowed classes, arrays kept exactly, nothing else built from a config."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

import imle_solvers as ims
from imle_solvers.errors import SerializationError
from imle_solvers.problems import EdgeListGraph
from imle_solvers.serialization import MAX_CONFIG_DEPTH, ConfigError, from_config, register, registered, to_config

GRAPH = EdgeListGraph(nodes=((0, 0), (0, 1), "c", 3), edges=[(0, 1), (1, 2), (2, 3), (0, 3)], directed=False)
ILP = ims.ILP(
    (ims.Variable("x", (2, 3)), ims.Variable("y", (2,), type="integer", lower=np.array([-1.0, 0.5]), upper=7)),
    sp.csr_array(np.array([[1.0, 0, 2.5, 0, 0, 1e-300, 3.0, 0], [0, 1, 0, 1, 0, 0, 0, -1]])),
    np.array([-np.inf, 1.0]),
    np.array([4.0, np.inf]),
    ("x",),
    objective_sense="min",
    objective=np.linspace(-1, 1, 8) / 3,
    name="tiny",
)
OBJECTS = [
    ims.KSubset(10, 3),
    ims.GridShortestPath(3, 4, neighbourhood=4, negative_costs="raise"),
    ims.GraphShortestPath(GRAPH, (0, 0), 3, negative_cycles="clamp"),
    ims.BipartiteMatching(2, 5, perfect=False),
    ims.GraphMatching(GRAPH),
    ims.TravellingSalesman(5, objective_sense="max"),
    ims.Portfolio(np.diag([1.0, 2.0, 0.5]) / 100, gamma=1.5),
    ims.Ranking(6),
    ILP,
    ims.IMLE(noise=ims.SumOfGamma(k=3, nb_iterations=4, method="exact"), lambda_=2.5, samples=2, alpha=0.5),
    ims.AIMLE(noise=ims.Gumbel(), symmetric=True, target_nonzeros=3.0),
    ims.STE(),
    ims.Gumbel(),
]


def through_json(config):
    return json.loads(json.dumps(config, allow_nan=False))  # strict JSON: no NaN or Infinity literals


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: type(o).__name__)
def test_built_ins_round_trip_through_strict_json(obj):
    back = from_config(through_json(to_config(obj)))
    assert type(back) is type(obj) and back == obj


def test_an_ilp_keeps_its_arrays_exactly():
    back = from_config(through_json(to_config(ILP)))
    for name in ("row_lower", "row_upper", "objective"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ILP, name))
        assert getattr(back, name).dtype == np.float64
    assert (back.constraints != ILP.constraints).nnz == 0 and back.constraints.data[2] == 1e-300
    np.testing.assert_array_equal(back.variables[1].lower, [-1.0, 0.5])
    assert back.fingerprint == ILP.fingerprint and back.shape == (2, 3)


def test_a_graph_keeps_its_node_labels():
    back = from_config(through_json(to_config(GRAPH)))
    assert back.nodes == ((0, 0), (0, 1), "c", 3) and not back.edges.flags.writeable


@dataclass(frozen=True)
class Knapsack(ims.Problem):
    weights: np.ndarray
    capacity: float
    kind: ClassVar[str] = "knapsack"

    @property
    def shape(self):
        return (len(self.weights),)

    @property
    def sense(self):
        return "max"


def test_a_registered_dataclass_of_ones_own_round_trips():
    register(Knapsack, name="tests.Knapsack")
    back = from_config(through_json(to_config(Knapsack(np.array([1, 2, 3], np.int32), float("inf")))))
    assert isinstance(back, Knapsack) and back.capacity == float("inf")
    np.testing.assert_array_equal(back.weights, [1, 2, 3])
    assert back.weights.dtype == np.int32
    assert registered()["tests.Knapsack"] is Knapsack


@register(name="tests.Decorated")
@dataclass(frozen=True)
class Decorated(ims.KSubset):
    """A user's problem registered where it is defined, as the built-in ones are."""

    weights: tuple[float, ...] = ()


@register
@dataclass(frozen=True)
class DecoratedBare:
    scale: float


def test_a_class_registered_at_its_definition_round_trips():
    problem = Decorated(3, 1, (0.5, float("-inf")))
    assert to_config(problem)["__class__"] == "tests.Decorated"
    back = from_config(through_json(to_config(problem)))
    assert type(back) is Decorated and back == problem
    assert from_config(through_json(to_config(DecoratedBare(2.0)))) == DecoratedBare(2.0)
    assert registered()["tests.Decorated"] is Decorated and registered()["DecoratedBare"] is DecoratedBare


BUILT_INS = {
    "KSubset", "GridShortestPath", "GraphShortestPath", "EdgeListGraph", "BipartiteMatching", "GraphMatching", "ILP",
    "TravellingSalesman", "Portfolio", "Ranking",
    "Variable", "Parameter", "ParameterMaps", "IMLE", "AIMLE", "STE", "BlackboxDifferentiation", "NegativeIdentity",
    "PerturbedOptimizer", "Gumbel", "Normal", "SumOfGamma",
}

FRESH_INTERPRETER = textwrap.dedent(
    """
    import json, sys
    import imle_solvers.serialization as serialization

    configs = json.load(sys.stdin)
    for config in configs:  # read back before anything else of the library is imported by hand
        assert serialization.to_config(serialization.from_config(config)) == config, config["__class__"]
    print(json.dumps({tag: cls.__module__ for tag, cls in serialization.registered().items()}))
    """
)


def test_every_built_in_is_registered_after_importing_serialization_alone():
    configs = [through_json(to_config(obj)) for obj in OBJECTS]
    configs += [through_json(to_config(obj)) for obj in (ims.NegativeIdentity(), ims.Normal(), ims.KSubset(4, 2))]
    done = subprocess.run([sys.executable, "-c", FRESH_INTERPRETER], input=json.dumps(configs),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout)
    assert set(modules) == BUILT_INS
    # each registered where it is defined, in the library's own modules
    assert all(module.startswith(("imle_solvers.problems.", "imle_solvers.estimators", "imle_solvers.noise."))
               for module in modules.values()), modules
    assert {tag for tag, cls in registered().items() if cls.__module__.startswith("imle_solvers.")} == BUILT_INS


def test_unsupported_objects_fail_naming_the_class():
    @dataclass(frozen=True)
    class Unregistered(ims.KSubset):
        pass

    with pytest.raises(SerializationError, match=r"Unregistered has no config: register it"):
        to_config(Unregistered(3, 1))
    with pytest.raises(SerializationError, match=r"IMLE\.noise: .*Noisy has no config"):
        to_config(ims.IMLE(noise=type("Noisy", (), {"sample": lambda self, source, shape: None})()))
    with pytest.raises(SerializationError, match="object has no config"):
        to_config(object())
    with pytest.raises(SerializationError, match="not a dataclass"):
        register(int)
    with pytest.raises(SerializationError, match="already taken"):
        register(Unregistered, name="KSubset")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"__class__": "os.system", "fields": {}}, "unknown class 'os.system'"),
        ({"__class__": "KSubset", "fields": {"n": 3, "k": 1, "evil": 1}}, r"KSubset has no fields \['evil'\]"),
        (
            {"__class__": "Knapsack2", "fields": {}},
            "unknown class",
        ),
        (
            {"__class__": "KSubset", "fields": {"n": {"__ndarray__": {"dtype": "|O", "shape": [], "data": ""}}, "k": 1}},
            "dtype object are not read",
        ),
        (
            {"__class__": "KSubset", "fields": {"n": {"__ndarray__": {"dtype": "<f8", "shape": [2], "data": "AAAA"}}, "k": 1}},
            "3 bytes do not make",
        ),
        ({"__class__": "KSubset", "fields": {"n": {"__pickle__": "gASVAA=="}, "k": 1}}, "not a config value"),
    ],
)
def test_configs_build_registered_classes_and_plain_arrays_only(config, message):
    with pytest.raises(SerializationError, match=message):
        from_config(config)


def test_the_classes_own_checks_run_on_loading():
    with pytest.raises(ims.InvalidInputError, match="k must be in 1..n=3"):
        from_config({"__class__": "KSubset", "fields": {"n": 3, "k": 5}})


# -- issue 19: configs go through the checks of the constructors and the builder ------------------

def _knapsack_config() -> dict:
    from imle_solvers.spec import load_yaml

    return json.loads(json.dumps(to_config(load_yaml(Path(__file__).resolve().parents[1] / "examples" / "specs"
                                                     / "knapsack.yaml"))))


def test_a_variable_type_outside_the_enum_is_refused_by_name():
    # once loaded: OR-Tools solved it as a general integer, SCIP raised KeyError('quantum')
    config = _knapsack_config()
    config["fields"]["variables"]["__tuple__"][0]["fields"]["type"] = "quantum"
    with pytest.raises(ConfigError) as info:
        from_config(config)
    assert isinstance(info.value, ims.InvalidInputError)
    assert str(info.value) == ("config.fields.variables[0].fields.type: Variable.type must be one of 'binary', "
                               "'integer', 'continuous', got 'quantum'")


@pytest.mark.parametrize("n, shown", [({"__float__": "nan"}, "nan"), ([1, 2], r"\[1, 2\]"), (True, "True"),
                                      (5.0, "5.0"), ("5", "'5'")])
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(n, shown):
    with pytest.raises(ConfigError, match=rf"^config.fields.n: KSubset.n must be an integer \(not a boolean\), "
                                          rf"got {shown}$"):
        from_config({"__class__": "KSubset", "fields": {"n": n, "k": 2}})
    with pytest.raises(ConfigError, match=r"config.fields.k: KSubset.k must be an integer \(not a boolean\), got True"):
        from_config({"__class__": "KSubset", "fields": {"n": 5, "k": True}})


def test_a_deep_config_is_refused_not_a_recursion_error():
    deep: dict = {"__tuple__": []}
    node = deep
    for _ in range(100_000):
        node["__tuple__"] = [{"__tuple__": []}]
        node = node["__tuple__"][0]
    with pytest.raises(ConfigError, match=f"nested more than {MAX_CONFIG_DEPTH} levels deep"):
        from_config({"__class__": "KSubset", "fields": {"n": deep, "k": 2}})


def test_a_constructors_raw_error_becomes_a_config_error():
    @register(name="Fragile")
    @dataclass(frozen=True)
    class Fragile:
        n: typing.Any

        def __post_init__(self):
            int(self.n)

    with pytest.raises(ConfigError, match=r"^config: Fragile refuses the config's fields: ValueError: invalid literal"):
        from_config({"__class__": "Fragile", "fields": {"n": "x"}})


def test_unions_tuples_and_classes_are_checked_too():
    config = {"__class__": "GraphMatching", "fields": {"graph": 3}}
    with pytest.raises(ConfigError, match="GraphMatching.graph must be an EdgeListGraph, got 3"):
        from_config(config)
    config = to_config(ims.IMLE())
    config["fields"]["target_noise_temperature"] = "hot"
    with pytest.raises(ConfigError, match="IMLE.target_noise_temperature must be a number or null, got 'hot'"):
        from_config(config)
    config = _knapsack_config()
    config["fields"]["theta_variables"] = {"__tuple__": ["x", 1]}
    with pytest.raises(ConfigError, match=r"ILP.theta_variables must be a tuple of strings, got \('x', 1\)"):
        from_config(config)
