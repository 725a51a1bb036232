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
    assert json.loads(result.output) == {"z": [0, 0, 0, 1, 1, 1], "objective": 15.0, "status": "ok", "reason": ""}


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


# --- solve as a batch tool: --on-failure, --n-jobs, --time-limit, --work-limit, progress ---


def weekly_rota(tmp_path: Path, b: int, away: tuple[int, ...]) -> tuple[Path, Path]:
    """Scores and data of ``b`` weeks of examples/specs/rota_weekly.yaml; nobody is available
    in the weeks ``away`` (those instances are infeasible: every shift must be covered)."""
    theta = tmp_path / "prefs.npy"
    np.save(theta, np.tile(np.arange(1.0, 15.0), (b, 5, 1)) + np.arange(5.0)[None, :, None])
    available = np.ones((b, 5, 14))
    available[list(away)] = 0
    data = tmp_path / "weeks.npz"
    np.savez(data, available=available)
    return theta, data


def test_skip_writes_every_instance_and_exits_3_naming_the_failed_ones(tmp_path):
    theta, data = weekly_rota(tmp_path, 6, away=(1, 4))
    result = run("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", data, "--on-failure", "skip")
    assert result.exit_code == 3, result.output
    printed = json.loads(result.stdout)
    assert printed["status"] == ["ok", "failed", "ok", "ok", "failed", "ok"]
    assert printed["reason"] == ["", "infeasible", "", "", "infeasible", ""]
    z = np.array(printed["z"])
    assert z[[1, 4]].sum() == 0 and (z[[0, 2, 3, 5]].sum(axis=1) == 1).all()  # every shift covered
    assert printed["objective"][1] is None and printed["objective"][0] == z[0].ravel() @ np.load(theta)[0].ravel()
    stderr = result.stderr.splitlines()
    assert [line.split(" (")[0] for line in stderr] == ["failed: instance 1", "failed: instance 4"]
    # the .npz: the same, statuses as numbers (imle_solvers.failures.Status), no pickles
    out = tmp_path / "out" / "result.npz"
    assert run("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", data, "--on-failure", "skip",
               "--out", out).exit_code == 3
    with np.load(out, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["status"], [0, 2, 0, 0, 2, 0])
        assert saved["reason"].tolist() == printed["reason"]
        np.testing.assert_array_equal(saved["z"], z)
        assert np.isnan(saved["objective"][[1, 4]]).all() and saved["objective"][0] == printed["objective"][0]


def test_a_failure_under_raise_names_its_instance_in_the_whole_batch(tmp_path):
    theta, data = weekly_rota(tmp_path, 45, away=(40,))  # solved in slices of 3: instance 40 is the 2nd of its slice
    result = run("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", data)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: instance 40 (ilp 'rota_weekly', backend 'ortools'): ")
    assert "infeasible" in result.stderr
    everything = run("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", data, "--on-failure", "skip")
    assert everything.exit_code == 3 and json.loads(everything.stdout)["reason"][40] == "infeasible"
    assert everything.stderr.startswith("failed: instance 40 (")


def test_renumbered_messages_name_the_whole_batchs_indices():
    from imle_solvers._cli_batch import renumbered

    assert renumbered("instance 2 (ilp 'a', backend 'b'): infeasible", 30) == "instance 32 (ilp 'a', backend 'b'): infeasible"
    assert renumbered("instance 0+ (ilp 'a', backend 'b') failed: x", 5) == "instance 5+ (ilp 'a', backend 'b') failed: x"
    assert renumbered("instances 0-3, 8 (ilp 'a', backend 'b'): lost", 10).startswith("instances 10-13, 18 (ilp")
    assert renumbered("no instance named", 10) == "no instance named"


def hard_knapsack(tmp_path: Path) -> tuple[Path, Path]:
    """A 60-item, 5-row knapsack spec (no solver proves its optimum within a small limit) and 4
    instances' scores."""
    rng = np.random.default_rng(0)
    use = rng.integers(5, 40, size=(5, 60))
    spec = tmp_path / "hard.yaml"
    spec.write_text(json.dumps({
        "name": "hard", "sets": {"items": 60, "resources": 5},
        "constants": {"use": use.tolist(), "capacity": (use.sum(axis=1) / 3).tolist()},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"for": "r in resources", "expr": "sum(i in items) use[r, i] * x[i] <= capacity[r]"}],
        "objective": {"sense": "max", "theta": "x"},
    }))
    theta = tmp_path / "theta.npy"
    np.save(theta, np.random.default_rng(1).integers(10, 60, size=(4, 60)) + np.random.default_rng(2).normal(size=(4, 60)))
    return spec, theta


def test_a_work_limit_gives_the_same_incumbents_in_process_and_with_n_jobs(tmp_path):
    spec, theta = hard_knapsack(tmp_path)
    args = ("solve", spec, "-t", theta, "--backend", "ortools", "--work-limit", 0.02, "--on-failure", "incumbent")
    here = run(*args)
    assert here.exit_code == 3, here.output
    printed = json.loads(here.stdout)
    assert "incumbent" in printed["status"] and set(printed["reason"]) <= {"", "work-limit"}
    assert "within work_limit=0.02 (deterministic seconds)" in here.stderr
    pooled = run(*args, "--n-jobs", 2)
    assert pooled.exit_code == 3 and json.loads(pooled.stdout) == printed


def test_a_time_limit_reaches_the_solver(tmp_path):
    spec, theta = hard_knapsack(tmp_path)
    result = run("solve", spec, "-t", theta, "--backend", "scip", "--time-limit", 1e-6, "--on-failure", "skip")
    assert result.exit_code == 3, result.output
    printed = json.loads(result.stdout)
    assert printed["status"] == ["failed"] * 4 and printed["reason"] == ["time-limit"] * 4


def solve_without_limits(theta, problem):
    return np.zeros_like(theta)


def test_options_the_oracle_refuses_are_usage_errors(tmp_path):
    theta = tmp_path / "theta.json"
    theta.write_text("[1, 2, 3, 4, 5, 6]")
    knapsack = ("solve", SPECS / "knapsack.yaml", "-t", theta)
    for bad in (("--work-limit", 0), ("--time-limit", -1), ("--on-failure", "ignore"), ("--n-jobs", "two")):
        assert run(*knapsack, *bad).exit_code == 2, bad
    zero_jobs = run(*knapsack, "--n-jobs", 0)
    assert zero_jobs.exit_code == 2 and "n_jobs must be a non-zero int" in zero_jobs.output
    from imle_solvers.adapters import register_solver, unregister_solver

    register_solver("ilp", "no-limits")(solve_without_limits)
    try:
        refused = run(*knapsack, "--backend", "no-limits", "--work-limit", 5)
        assert refused.exit_code == 2 and "backend 'no-limits' for 'ilp' has no deterministic work limit" in refused.output
    finally:
        unregister_solver("ilp", "no-limits")


def test_the_progress_bar_goes_to_stderr_and_leaves_the_result_whole(tmp_path):
    theta, data = weekly_rota(tmp_path, 40, away=(7,))
    args = ("solve", SPECS / "rota_weekly.yaml", "-t", theta, "--data", data, "--on-failure", "skip")
    quiet, shown = run(*args, "--no-progress"), run(*args, "--progress")
    assert quiet.exit_code == shown.exit_code == 3
    assert json.loads(shown.stdout) == json.loads(quiet.stdout)
    # (the bar's last refresh is throttled by tqdm: which counts it shows depends on speed)
    assert "instance/s" not in quiet.stderr and "instance/s" in shown.stderr and "/40 [" in shown.stderr
    assert "failed: instance 7 (" in shown.stderr  # the failures are listed after the bar
    out = tmp_path / "z.json"
    assert run(*args, "--progress", "--out", out).exit_code == 3
    assert json.loads(out.read_text()) == json.loads(quiet.stdout)


def test_an_empty_batch_gives_empty_results(tmp_path):
    theta = tmp_path / "none.npy"
    np.save(theta, np.zeros((0, 6)))
    result = run("solve", SPECS / "knapsack.yaml", "-t", theta, "--n-jobs", 2)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"z": [], "objective": [], "status": [], "reason": []}
