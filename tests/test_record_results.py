"""scripts/record_results.py: each recipe names scripts of the repository and outputs its
commands write; ``--adopt`` records a finished run's outputs as the same record."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recorder():
    spec = importlib.util.spec_from_file_location("record_results", ROOT / "scripts" / "record_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["record_results"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_recipe_runs_scripts_of_the_repository_and_writes_its_outputs(recorder):
    for name, recipe in recorder.RECIPES.items():
        for command in recipe.commands:
            assert command.startswith("python "), name
            assert (ROOT / command.split()[1]).is_file(), (name, command)
        written = " ".join(recipe.commands)
        for file in recipe.outputs.values():  # a file of {out}, or written into {out} or a folder of it
            folder = "/" + file.rsplit("/", 1)[0] if "/" in file else ""
            assert "{out}/" + file in written or re.search(rf"--out \{{out\}}{re.escape(folder)}(\s|$)", written), (
                name, file)


def test_adopt_records_a_finished_runs_outputs(recorder, tmp_path, monkeypatch):
    """The committed benchmark record's outputs, written back as files, adopt into the same
    results, with the pages' commands (no --json/--out) and no invented wall time."""
    committed = json.loads((ROOT / "docs" / "results" / "bench-pyepo-problems.json").read_text())
    recipe = recorder.RECIPES["bench-pyepo-problems"]
    run = tmp_path / "run"
    run.mkdir()
    for key, file in recipe.outputs.items():
        (run / file).write_text(json.dumps(committed["results"][key]))
    monkeypatch.setattr(recorder, "RESULTS", tmp_path)
    monkeypatch.setattr(recorder, "ROOT", tmp_path)  # where the command line prints the record's path from
    recorder.main(["bench-pyepo-problems", "--adopt", str(run)])
    record = json.loads((tmp_path / "bench-pyepo-problems.json").read_text())
    assert record["results"] == committed["results"]
    assert record["commands"] == committed["commands"]
    assert not any("--json" in c or "--out" in c for c in record["commands"])
    assert record["wall seconds"] is None and "first output written" in record["date"]
    assert record["seeds"] == list(recipe.seeds)


def test_adopt_refuses_a_folder_without_the_outputs(recorder, tmp_path):
    with pytest.raises(FileNotFoundError):
        recorder.adopt("bench-pyepo-problems", tmp_path)


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("results_hook", ROOT / "docs" / "results" / "hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_has_a_recipe_and_a_committed_record_it_renders(recorder, hook):
    """A table renders from its committed record, written by a recipe of the recorder: a
    header, its separator, and one row per line of the same width."""
    for name, table in hook.TABLES:
        assert name in recorder.RECIPES, name
        record = json.loads((ROOT / "docs" / "results" / f"{name}.json").read_text("utf-8"))
        lines = hook.TABLES[name, table](record).splitlines()
        assert len(lines) >= 3, (name, table)
        widths = {line.count(" | ") for line in lines}
        assert len(widths) == 1, (name, table, widths)


def _bench_record(results: dict) -> dict:
    return {"results": results}


def test_instances_tables_compute_the_ratios_from_the_times(hook):
    ilp = {"backend": "scip", "user loop": 300.0}
    for jobs, (plain, same, differing) in {1: (200.0, 220.0, 150.0), 2: (100.0, 90.0, 60.0)}.items():
        ilp |= {f"plain {jobs}": plain, f"same {jobs}": same, f"differing {jobs}": differing}
    ksubset = {"framework": "jax.jit", "shape": [128, 1000, 10], "plain": 4.0, "mask": 5.0, "mask and k": 10.0}
    record = _bench_record({"bench": {"ilp": [ilp], "ksubset": [ksubset]}})
    rows = [line.split(" | ") for line in hook.instances_ilp(record).splitlines()[2:]]
    assert rows[0][1:] == ["1", "200.0", "220.0", "1.10", "150.0", "300.0", "2.00 |"]
    assert rows[1][1:] == ["2", "100.0", "90.0", "0.90", "60.0", "300.0", "5.00 |"]
    row = hook.instances_ksubset(record).splitlines()[2]
    assert row == "| `jax.jit` | (128, 1000, 10) | 4.00 | 5.00 | 1.25 | 10.00 | 2.50 |"


def test_fast_path_table_gives_each_frameworks_range_over_the_sizes(hook):
    steps = [{"framework": f, "noise": n, "vs_unavoidable": r}
             for f, n, r in [("torch", "Gumbel", 1.5), ("torch", "Gumbel", 2.25), ("torch", "Sum-of-Gamma", 1.2),
                             ("torch", "Sum-of-Gamma, numpy exact draw", None), ("jax.jit", "Gumbel", 1.1),
                             ("jax.jit", "Sum-of-Gamma", 1.3), ("jax.jit", "Gumbel, validate_args=False", 0.9),
                             ("jax.jit", "Sum-of-Gamma, validate_args=False", 1.0)]]
    rows = hook.fast_path_ratios(_bench_record({"bench": {"steps": steps}})).splitlines()[2:]
    assert rows == ["| `jax.jit` | 1.10-1.10x | 1.30-1.30x |",
                    "| `jax.jit`, `validate_args=False` | 0.90-0.90x | 1.00-1.00x |",
                    "| torch, eager | 1.50-2.25x | 1.20-1.20x |"]


def test_tsp_table_marks_the_sizes_held_karp_does_not_take(hook):
    cases = {"TSP, 10 nodes (45 edges)": {"median": 0.0125, "max": 0.0171},
             "TSP, 10 nodes, held-karp": {"median": 0.0015, "max": 0.00994},
             "TSP, 20 nodes (190 edges)": {"median": 0.068, "max": 1.4567}}
    settings = {"nodes": [10, 20], "assets": [], "held-karp max nodes": 16}
    rows = hook.tsp_times(_bench_record({"bench": {"settings": settings, "cases": cases}})).splitlines()[2:]
    assert rows == ["| 10 (45) | 12.5 ms | 17.1 ms | 1.5 ms | 9.94 ms |",
                    "| 20 (190) | 68 ms | 1457 ms | over 16 nodes |  |"]


def test_highs_table_names_the_specs_in_words(hook):
    assert hook._highs_program("knapsack.yaml (6 vars, 1 rows)") == "`knapsack.yaml` (6 variables, 1 row)"
    assert hook._highs_program("rota_weekly.yaml (70 vars, 154 rows)") == "`rota_weekly.yaml` (70 variables, 154 rows)"
    limited = "knapsack 300 items x 8 rows, time_limit=1.0 s"
    assert hook._highs_program(limited) == limited


def test_fast_path_before_table_gives_the_numpy_draws_rows_only(hook):
    steps = [{"framework": "torch", "noise": "Sum-of-Gamma, numpy exact draw", "size": [64, 10000, 50],
              "step_ms": 91.0, "two_topk_ms": 1.0, "vs_two_topk": 91.0},
             {"framework": "torch", "noise": "Gumbel", "size": [64, 10000, 50], "step_ms": 2.0, "two_topk_ms": 1.0,
              "vs_two_topk": 2.0}]
    rows = hook.fast_path_before(_bench_record({"bench": {"steps": steps}})).splitlines()[2:]
    assert rows == ["| (64, 10000, 50) | 91.00 | 1.00 | 91x |"]


def test_mean_sd_is_the_mean_and_sample_sd_of_the_seeds(hook):
    assert hook._mean_sd([1.0, 2.0, 3.0]) == (2.0, "2.00 ± 1.00")
    assert hook._mean_sd([0.5, 0.7], 1, percent=True)[1] == "60.0% ± 14.1%"  # sd sqrt(0.02) = 0.1414
    assert hook._mean_sd([4.0], 1)[1] == "4.0 ± 0.0"
    assert hook._per_seed([0.5, 0.25], 1, percent=True) == "50.0% / 25.0%"


def test_l2x_tables_compute_mean_and_sd_from_the_seeds(hook):
    def method(precision, accuracy):
        return {"precision per seed": precision, "accuracy per seed": accuracy, "precision": 0.0}

    synthetic = {"XOR": {"k": 2, "chance precision": 0.2, "I-MLE": method([1.0, 0.8, 0.9], [0.9, 0.9, 0.96]),
                         "STE": method([0.2, 0.4, 0.3], [0.5, 0.6, 0.7])}}
    digits = {"k": 8, "pixels": 64, "test images": 450,
              "I-MLE": {"accuracy per seed": [0.9, 1.0], "distinct pixels selected per seed": [36, 30]},
              "random": {"accuracy per seed": [0.3, 0.4]}}
    record = _bench_record({"metrics": {"synthetic": synthetic, "digits": digits}})
    assert hook.l2x_precision(record).splitlines()[2] == "| XOR (2) | **0.900 ± 0.100** (0.92) | 0.300 ± 0.100 (0.60) | 0.20 |"
    assert hook.l2x_precision_seeds(record).splitlines()[0].startswith("| data set (k); seeds 0, 1, 2 |")
    assert hook.l2x_precision_seeds(record).splitlines()[2] == "| XOR (2) | 1.000 / 0.800 / 0.900 | 0.200 / 0.400 / 0.300 |"
    assert hook.l2x_digits(record).splitlines()[2:] == [
        "| 8 chosen per image by I-MLE | 0.950 ± 0.071 | 0.900 / 1.000 | 36 / 30 |",
        "| 8 at random per image | 0.350 ± 0.071 | 0.300 / 0.400 |  |"]


def test_vae_tables_compute_mean_and_sd_from_the_seeds(hook):
    def run(elbo, seconds):
        return {"negative ELBO": elbo, "reconstruction": elbo - 1, "KL": 1.0, "seconds": seconds,
                "history": {"test": [45.0 + elbo, 27.0 + elbo / 10]}}

    per_seed = {"0": {"seed": 0, "I-MLE": run(18.0, 100), "STE": run(19.0, 50)},
                "1": {"seed": 1, "I-MLE": run(20.0, 120), "STE": run(19.5, 60)}}
    record = _bench_record({"metrics": {"lambda": 1.0, "per seed": per_seed}})
    assert hook.vae_results(record).splitlines()[2:] == [
        "| I-MLE (lambda 1) | **19.00 ± 1.41** | 18.00 / 20.00 | 18.00 ± 1.41 | 1.00 ± 0.00 | 28.90 ± 0.14 | 110 ± 14 |",
        "| STE | 19.25 ± 0.35 | 19.00 / 19.50 | 18.25 ± 0.35 | 1.00 ± 0.00 | 28.92 ± 0.04 | 55 ± 7 |",
        "| untrained model | 64.00 ± 1.41 | 63.00 / 65.00 |  |  |  |  |"]  # (the first method's start)
    sweep = {"1": {"epochs": 20, "per seed": per_seed},
             "0.3": {"epochs": 20, "per seed": {s: {"I-MLE": run(e, 1)} for s, e in (("0", 17.0), ("1", 18.0))}}}
    assert hook.vae_lambda(_bench_record(sweep)).splitlines()[2:] == [
        "| I-MLE, lambda 0.3 | **17.50 ± 0.71** | 17.00 / 18.00 |",
        "| I-MLE, lambda 1 | 19.00 ± 1.41 | 18.00 / 20.00 |",
        "| STE | 19.25 ± 0.35 | 19.00 / 19.50 |"]


def test_matching_table_computes_mean_and_sd_from_the_seeds(hook):
    def shares(exact, placed, invalid):
        return {"exact permutations": exact, "images placed right": placed, "invalid assignments": invalid}

    per_seed = {s: {"I-MLE through the matching": shares(e, 0.9, 0.0),
                    "baseline: cross-entropy, argmax per image": shares(0.1, 0.6, i),
                    "baseline: cross-entropy, matched at test time": shares(0.85, 0.92, 0.0)}
                for s, e, i in (("0", 0.8, 0.9), ("1", 0.9, 0.8))}
    # equal best means (0.85, and 0.8500000000000001 from 0.8 and 0.9): both in bold
    record = _bench_record({"metrics": {"n_test": 1000, "per seed": per_seed,
                                        "chance": {"exact permutations": 1 / 120, "images placed right": 0.2}}})
    assert hook.matching_results(record).splitlines()[2:] == [
        "| I-MLE through the matching layer (Hamming loss) | **85.0% ± 7.1%** | 80.0% / 90.0% | 90.0% ± 0.0% | 0.0% ± 0.0% |",
        "| baseline: cross-entropy per image, argmax per image | 10.0% ± 0.0% | 10.0% / 10.0% | 60.0% ± 0.0% "
        "| 85.0% ± 7.1% |",
        "| baseline: cross-entropy per image, matched at test time | **85.0% ± 0.0%** | 85.0% / 85.0% | 92.0% ± 0.0% "
        "| 0.0% ± 0.0% |",
        "| chance (a random permutation) | 0.8% |  | 20.0% | 0% |"]


def test_rota_table_gives_each_models_shares_as_percentages(hook):
    models = {"availability per week": {"shifts given to the planner's worker": 0.9412,
                                        "weeks reproduced": 0.5664, "assignments to unavailable workers": 0},
              "one fixed problem": {"shifts given to the planner's worker": 0.62, "weeks reproduced": 0.004,
                                    "assignments to unavailable workers": 890}}
    rows = hook.rota_models(_bench_record({"models": models})).splitlines()[2:]
    assert rows == ["| availability per week | 94.1% | 56.6% | 0 |", "| one fixed problem | 62.0% | 0.4% | 890 |"]

def test_three_digits_keeps_three_significant_digits_and_whole_numbers_from_100(hook):
    assert [hook._three_digits(ms) for ms in (0.4123, 3.5, 19.04, 99.949, 99.98, 203.4, 1234.5)] == [
        "0.412", "3.50", "19.0", "99.9", "100", "203", "1234"]


def test_ilp_models_table_names_the_sizes_and_computes_scips_ratio(hook):
    rows = [{"items": 20, "constraints": 1, "backend": b, "cached_ms": c, "rebuilt_ms": r, "raw_ms": 0.1}
            for b, c, r in [("ortools", 0.4, 0.9), ("scip", 0.5, 2.25), ("highs", 9.0, 9.0)]]
    rows += [{"items": 50, "constraints": 5, "backend": b, "cached_ms": c, "rebuilt_ms": r, "raw_ms": 1.0}
             for b, c, r in [("ortools", 19.04, 28.0), ("scip", 123.6, 1234.5), ("highs", 1.0, 1.0)]]
    table = hook.ilp_models(_bench_record({"bench": {"rows": rows}})).splitlines()[2:]
    assert table == ["| 20 items, 1 constraint | 0.400 | 0.900 | 0.500 | 2.25 | 1.25x |",
                     "| 50 items, 5 constraints | 19.0 | 28.0 | 124 | 1234 | 6.49x |"]


def test_batched_parameters_table_computes_the_ratio_and_flags_differing_states(hook):
    rows = [{"items": 50, "rows": 1, "backend": "ortools", "plain ms": 0.8, "same ms": 0.88, "differing ms": 0.7,
             "rebuilt ms": 12.5, "same states": True},
            {"items": 30, "rows": 3, "backend": "scip", "plain ms": 40.0, "same ms": 36.0, "differing ms": 23.0,
             "rebuilt ms": 290.0, "same states": False}]
    bench = {"settings": {"batch": 64}, "rows": rows}
    lines = hook.batched_parameters(_bench_record({"bench": bench})).splitlines()
    assert "batched, 64 capacities" in lines[0]
    assert lines[2:] == ["| 50 items, 1 row, `ortools` | 0.800 | 0.880 (1.10x) | 0.700 | 12.5 | yes |",
                         "| 30 items, 3 rows, `scip` | 40.0 | 36.0 (0.90x) | 23.0 | 290 | no |"]


def _ilp_settings_record() -> dict:
    programs = {"knapsack 24x1": {"train": 480, "test": 200, "batch": 32, "epochs": 4,
                                  "true values mean (seed 0)": 4.04, "true values sd (seed 0)": 3.96}}
    sweep = [{"case": "knapsack 24x1", "setting": "default", "regret": 0.0557, "regret_sd": 0.0018, "vs_default": 0.0,
              "vs_default_sd": 0.0, "untrained_regret": 0.419, "solves_per_step": 64.0, "ms_per_step": 48.0,
              "theta_sd": 0.93, "steps": 60.0},
             {"case": "knapsack 24x1", "setting": "lambda 0.1", "regret": 0.0992, "regret_sd": 0.0133,
              "vs_default": 0.0435, "vs_default_sd": 0.012, "untrained_regret": 0.419, "solves_per_step": 64.0,
              "ms_per_step": 45.8, "theta_sd": 1.28, "steps": 60.0},
             {"case": "knapsack 24x1", "setting": "temperature 3", "regret": 0.0552, "regret_sd": 0.0023,
              "vs_default": -0.0005, "vs_default_sd": 0.0009, "untrained_regret": 0.419, "solves_per_step": 64.0,
              "ms_per_step": 44.2, "theta_sd": 1.91, "steps": 60.0},
             {"case": "assignment 8x16", "setting": "default", "regret": 0.1145, "regret_sd": 0.0012,
              "vs_default": 0.0, "vs_default_sd": 0.0, "untrained_regret": 0.485, "solves_per_step": 64.0,
              "ms_per_step": 206.3, "theta_sd": 0.75, "steps": 24.0}]
    pool = [{"case": "knapsack 24x1", "batch": 32, "ms_1": 44.1, "ms_2": 33.4, "speedup": 1.38, "speedup_min": 1.13,
             "speedup_max": 1.49, "repeats": 3, "ms_per_solve_1": 0.69}]
    return _bench_record({"sweep": {"programs": programs, "sweep": sweep, "pool": pool}})


def test_ilp_settings_tables_keep_each_programs_rows_and_compute_the_solve_time(hook):
    record = _ilp_settings_record()
    assert hook.ilp_settings_programs(record).splitlines()[2:] == [
        "| knapsack 24x1 | 480 / 200 | 32, 4 (60 steps) | 4.0 ± 4.0 | 0.419 | 0.75 |"]  # 48 ms / 64 solves
    assert hook.ilp_settings_knapsack(record).splitlines()[2:] == [
        "| default | 0.0557 ± 0.0018 | 0 | 64 | 48.0 | 0.93 |",
        "| lambda 0.1 | 0.0992 ± 0.0133 | +0.0435 ± 0.0120 | 64 | 45.8 | 1.28 |",
        "| temperature 3 | 0.0552 ± 0.0023 | -0.0005 ± 0.0009 | 64 | 44.2 | 1.91 |"]
    assert hook.ilp_settings_assignment(record).splitlines()[2:] == [
        "| default | 0.1145 ± 0.0012 | 0 | 64 | 206.3 | 0.75 |"]
    # one call's solving: half the serial step (two oracle calls a step)
    assert hook.ilp_settings_pool(record).splitlines()[2:] == [
        "| knapsack 24x1 | 32 | ~22.1 ms | 44.1 | 33.4 | 1.38x (1.13-1.49) |"]


def _warcraft_record() -> dict:
    def run(cost, exact, loss):
        return {"cost_accuracy": cost, "exact_match": exact, "mean_cost_ratio": 1.01, "loss": loss, "seconds": 9.0}

    tuning = {
        "settings": {"maps": 1500, "epochs": 2, "seed": 0, "lambdas": [0.5, 10.0], "training_maps": 1020,
                     "validation_maps": 180, "held_out_maps": 300, "config": {"batch_size": 70}},
        "grid": {"imle": {"0.5": run(0.8, 0.7, [9.0, 5.5]), "10.0": run(0.9, 0.6, [9.0, 5.0])},
                 "blackbox": {"0.5": run(0.85, 0.75, [8.0, 4.0]), "10.0": run(0.85, 0.7, [8.0, 4.5])}},
        "chosen": {"imle": 10.0, "blackbox": 0.5},
        "held_out": {"imle": run(0.91, 0.8, [1.0]), "blackbox": run(0.92, 0.79, [1.0]),
                     "ste": run(0.1, 0.05, [1.0]), "random": {"cost_accuracy": 0.0, "exact_match": 0.0}},
    }
    return _bench_record({"tuning": tuning})


def test_warcraft_tables_mark_the_chosen_lambda_and_cite_the_paper_beside_ours(hook):
    record = _warcraft_record()
    assert hook.warcraft_lambda(record).splitlines()[2:] == [
        "| I-MLE, Sum-of-Gamma (`imle`) | 0.5 | 35 | 80.0% | 70.0% | 1.0100 | 5.50 |",
        "| I-MLE, Sum-of-Gamma (`imle`) | **10** | **700** | **90.0%** | 60.0% | 1.0100 | 5.00 |",
        "| blackbox differentiation (`blackbox`) | **0.5** | **35** | **85.0%** | 75.0% | 1.0100 | 4.00 |",
        "| blackbox differentiation (`blackbox`) | 10 | 700 | 85.0% | 70.0% | 1.0100 | 4.50 |"]
    curves = hook.warcraft_curves(record).splitlines()
    assert curves[0] == "| method | lambda (ours / paper's units) | epoch 1 | epoch 2 |"
    assert curves[2] == "| I-MLE, Sum-of-Gamma (`imle`) | 0.5 / 35 | 9.00 | 5.50 |"
    paper = hook.warcraft_paper(record).splitlines()
    assert "300 maps; 1500 maps, 2 epochs, seed 0" in paper[0]
    assert paper[2:] == [
        "| I-MLE, Sum-of-Gamma (`imle`) | 10 / 700 (tuned on validation maps) | 91.0% | 80.0% | 97.2% |",
        "| blackbox differentiation (`blackbox`) | 0.5 / 35 (tuned on validation maps) | 92.0% | 79.0% | 95.2% |",
        "| straight-through (`ste`) | – | 10.0% | 5.0% | – |",
        "| random costs | – | 0.0% | 0.0% | – |"]


def test_tuning_picks_the_best_validation_lambda_ties_to_exact_match_then_the_smaller():
    spec = importlib.util.spec_from_file_location("tune_warcraft", ROOT / "benchmarks" / "tune_warcraft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = {"10": {"cost_accuracy": 0.8, "exact_match": 0.7}, "20": {"cost_accuracy": 0.9, "exact_match": 0.6},
            "50": {"cost_accuracy": 0.9, "exact_match": 0.65}}
    assert module.best_lambda(rows) == "50"
    rows["50"]["exact_match"] = 0.6
    assert module.best_lambda(rows) == "20"


def test_paper_lambdas_are_divided_by_the_batch_size_and_merged():
    spec = importlib.util.spec_from_file_location("tune_warcraft", ROOT / "benchmarks" / "tune_warcraft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.grid_lambdas([20.0, 1.0], [70.0, 35.0], batch_size=70) == [0.5, 1.0, 20.0]


def test_warcraft_temperature_table_sorts_the_temperatures(hook):
    row = {"cost_accuracy": 0.9, "exact_match": 0.7, "mean_cost_ratio": 1.002}
    record = _bench_record({"temperature": {
        "settings": {"lambda": 10 / 70, "batch_size": 70, "validation_maps": 180},
        "temperature": {"0.25": row | {"cost_accuracy": 0.85}, "0.1": row}}})
    assert hook.warcraft_temperature(record).splitlines()[2:] == [
        "| 0.1 | 0.143 / 10 | 90.0% | 70.0% | 1.0020 |",
        "| 0.25 | 0.143 / 10 | 85.0% | 70.0% | 1.0020 |"]
