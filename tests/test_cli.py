"""The ``imle-solvers`` command: exit codes and output, through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imle_solvers.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "specs"
BROKEN = ROOT / "tests" / "specs_broken"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_validate_prints_one_summary_line_per_spec():
    result = run("validate", SPECS / "knapsack.yaml", SPECS / "timetabling.yaml")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert "6 variables (6 binary), 1 constraint row, theta shape (6,), max" in lines[0]
    assert "12 variables (12 binary), 16 constraint rows, theta shape (4, 3), max" in lines[1]


def test_validate_reports_the_located_error_and_exits_1():
    result = run("validate", SPECS / "knapsack.yaml", BROKEN / "unknown_variable.yaml")
    assert result.exit_code == 1
    assert "knapsack.yaml: ok" in result.output
    assert f"error: {BROKEN / 'unknown_variable.yaml'}:10:34: constraints[0].expr: unknown name 'y'" in result.output


def test_validate_with_parameters():
    ok = run("validate", SPECS / "knapsack.yaml", "--param", "n_items=3", "-p", "weights=[1, 2, 3]")
    assert ok.exit_code == 0 and "3 variables" in ok.output
    mismatch = run("validate", SPECS / "knapsack.yaml", "--param", "n_items=3")
    assert mismatch.exit_code == 1 and "dimension mismatch" in mismatch.output
    malformed = run("validate", SPECS / "knapsack.yaml", "--param", "n_items")
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.output


@pytest.mark.parametrize("backend", ["ortools", "scip"])
def test_solve_prints_z_and_the_objective(tmp_path, backend):
    theta = tmp_path / "theta.json"
    theta.write_text(json.dumps([1, 2, 3, 4, 5, 6]))  # weights 3 4 5 2 6 1, capacity 10: items 3, 4, 5
    result = run("solve", SPECS / "knapsack.yaml", "--theta", theta, "--backend", backend)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"z": [0, 0, 0, 1, 1, 1], "objective": 15.0}


def test_solve_a_batch_from_npy_into_a_file(tmp_path):
    theta = tmp_path / "theta.npy"
    np.save(theta, np.array([[1.0, 2, 3, 4, 5, 6], [9, 0, 0, 0, 0, 1]]))
    out = tmp_path / "result.npz"
    result = run("solve", SPECS / "knapsack.yaml", "-t", theta, "-p", "capacity=4", "--out", out)
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    np.testing.assert_array_equal(saved["z"], [[0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(saved["objective"], [10, 10])


def test_solve_with_each_instances_batched_parameters(tmp_path):
    theta = tmp_path / "theta.npy"
    np.save(theta, np.tile(np.arange(1.0, 15.0), (2, 5, 1)) + np.arange(5.0)[None, :, None])
    available = np.ones((2, 5, 14))
    available[1, 4] = 0  # worker 4, the keenest, is away the second week
    data = tmp_path / "data.npz"
    np.savez(data, available=available)
    result = run("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", data, "--out", tmp_path / "z.npz")
    assert result.exit_code == 0, result.output
    z = np.load(tmp_path / "z.npz")["z"]
    assert z[0, 4].sum() == 4 and z[1, 4].sum() == 0
    np.testing.assert_array_equal(z.sum(axis=1), 1)  # every shift covered
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"available": available[1].tolist()}))
    single = run("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", one)
    assert single.exit_code == 1 and "available: expected shape (2, 5, 14)" in single.output
    missing = run("solve", SPECS / "rota_weekly.yaml", "-t", theta)
    assert missing.exit_code == 1 and "--data FILE" in missing.output


def test_solve_failures_exit_1_or_2(tmp_path):
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    result = run("solve", SPECS / "knapsack.yaml", "--theta", wrong)
    assert result.exit_code == 1 and "expected shape (B, 6)" in result.output
    broken = run("solve", BROKEN / "nonlinear_product.yaml", "--theta", wrong)
    assert broken.exit_code == 1 and "non-linear term" in broken.output
    unknown = run("solve", SPECS / "knapsack.yaml", "--theta", wrong, "--backend", "gurobi")
    assert unknown.exit_code == 1 and "unknown backend 'gurobi'" in unknown.output
    text = tmp_path / "theta.txt"
    text.write_text("1 2 3")
    assert run("solve", SPECS / "knapsack.yaml", "--theta", text).exit_code == 2


def test_solvers_lists_the_ilp_backends():
    result = run("solvers")
    assert result.exit_code == 0
    assert any(line.split()[:2] == ["ilp", "ortools"] for line in result.output.splitlines())
    assert any(line.split()[:2] == ["ilp", "scip"] for line in result.output.splitlines())
    grid = next(line for line in result.output.splitlines() if line.split()[:2] == ["grid-shortest-path", "bellman-ford"])
    assert grid.endswith("array-native: numpy, torch, jax")


def test_bench_discovers_filters_and_runs_scripts(tmp_path):
    (tmp_path / "bench_alpha.py").write_text(
        "import sys\ndef main():\n    print('| case | argv |')\n    print('|---|---|')\n    print(f'| alpha | {len(sys.argv)} |')\n")
    (tmp_path / "bench_beta.py").write_text("def main():\n    print('| beta |')\n")
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark')\n")
    listed = run("bench", "--dir", tmp_path, "--list")
    assert listed.exit_code == 0 and listed.output.split() == ["bench_alpha", "bench_beta"]
    result = run("bench", "--dir", tmp_path, "alp")
    assert result.exit_code == 0, result.output
    assert "## bench_alpha" in result.output and "| alpha | 1 |" in result.output and "beta" not in result.output
    missing = run("bench", "--dir", tmp_path, "gamma")
    assert missing.exit_code == 1 and "found: bench_alpha, bench_beta" in missing.output


def test_every_command_has_useful_help():
    top = run("--help")
    for command in ("validate", "solve", "solvers", "bench", "demo"):
        assert command in top.output
        result = run(command, "--help")
        assert result.exit_code == 0 and len(result.output.splitlines()) > 4
