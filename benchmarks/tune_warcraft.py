"""Tune I-MLE's and blackbox differentiation's lambda for the Warcraft demo on validation maps.

Issue 22: the demo's synthetic maps ranked blackbox above I-MLE, the paper the other way
round. A fair comparison tunes both methods the same way, on the same budget, and never on
the held-out maps. This script trains each method for every lambda of a small grid
(``run_demo(evaluate_on="validation")``: the last 15% of the training maps are left out of
training and score the run), picks each method's lambda by validation cost-accuracy
(exact-match breaks ties, then the smaller lambda), and then, with ``--held-out``, trains
each tuned method once more on all training maps and scores it on the held-out maps.

Two conventions of lambda: the demo sums the Hamming loss over the batch, so ``dL/dz`` is
+-1 per cell and its lambda reads in cost units; the paper's code (and blackbox
differentiation's, whose lambda of 20 the paper's range of 10 to 50 follows) averages the
loss over the batch of 70, so ``dL/dz`` is +-1/70 and the same step is lambda / 70 in the
demo's units. ``--paper-lambdas`` takes lambdas in the paper's convention and converts them;
``--lambdas`` takes them in the demo's. The default grid is both: the paper's 10, 20, 50
(0.14, 0.29, 0.71 in the demo's units) and the demo's 10, 20, 50.

The budget is reduced (default ``--maps 1500 --epochs 6``, seed 0) so that the grid fits
on 2 shared CPU cores in about 15 minutes; it is NOT the demo's default run (3000 maps,
13 epochs), whose figures are on docs/demo.md. Each grid point trains I-MLE and blackbox
side by side in the demo's own pool (two one-thread workers), with the same lambda.

    python benchmarks/tune_warcraft.py --out tuning.json                # the grid only
    python benchmarks/tune_warcraft.py --held-out --out tuning.json     # and the tuned runs

Output (``--out``): ``settings`` (the budget), ``grid`` (per method, per lambda, the
validation metrics and per-epoch training loss), ``chosen`` (each method's lambda) and,
with ``--held-out``, ``held_out`` (the tuned methods' held-out metrics; ``ste`` beside them,
which has no lambda).

``--temperatures T ...`` runs I-MLE alone instead, at the first ``--paper-lambdas`` value and
each noise temperature, on validation maps; its output has ``temperature`` rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from imle_solvers.demo import TrainingConfig, run_demo

TUNED = ("imle", "blackbox")  # the methods with a lambda to tune
LAMBDA_FIELDS = {"imle": "lambda_", "blackbox": "blackbox_lambda"}  # TrainingConfig's field of each
KEPT = ("cost_accuracy", "exact_match", "mean_cost_ratio", "loss", "seconds")


def _kept(scores: dict) -> dict:
    return {key: scores[key] for key in KEPT if key in scores}


def best_lambda(rows: dict[str, dict]) -> str:
    """The lambda (a key of ``rows``, as a string) with the highest validation cost-accuracy;
    ties go to the higher exact match, then to the smaller lambda."""
    return min(rows, key=lambda lam: (-rows[lam]["cost_accuracy"], -rows[lam]["exact_match"], float(lam)))


def grid_lambdas(lambdas: list[float], paper_lambdas: list[float], batch_size: int) -> list[float]:
    """The grid in the demo's convention (loss summed over the batch), ascending: ``lambdas``
    as given and ``paper_lambdas`` (loss averaged over the batch) divided by ``batch_size``."""
    return sorted({*lambdas, *(lam / batch_size for lam in paper_lambdas)})


def tune(maps: int, epochs: int, seed: int, lambdas: list[float], held_out: bool) -> dict:
    """The grid on validation maps, each method's chosen lambda and (``held_out``) its held-out run.

    ``lambdas`` in the demo's convention (cost units per cell, the loss summed over the batch)."""
    started = time.perf_counter()
    grid: dict[str, dict[str, dict]] = {method: {} for method in TUNED}
    with tempfile.TemporaryDirectory() as scratch:
        for lam in lambdas:
            config = TrainingConfig(lambda_=lam, blackbox_lambda=lam)
            metrics = run_demo(epochs=epochs, maps=maps, seed=seed, out=f"{scratch}/lambda-{lam:g}", config=config,
                               methods=",".join(TUNED), evaluate_on="validation")
            for method in TUNED:
                grid[method][repr(lam)] = _kept(metrics[method])
            settings = metrics["settings"]
        chosen = {method: float(best_lambda(grid[method])) for method in TUNED}
        result: dict = {
            "settings": {
                "maps": maps, "epochs": epochs, "seed": seed, "lambdas": lambdas,
                "lambda_convention": "loss summed over the batch: the paper's lambda (batch mean) / batch_size",
                "training_maps": settings["training_maps"], "validation_maps": settings["scored_maps"],
                "config": {k: v for k, v in settings.items() if k in dataclasses.asdict(TrainingConfig())
                           and k not in LAMBDA_FIELDS.values()},
            },
            "grid": grid,
            "chosen": chosen,
        }
        if held_out:
            config = TrainingConfig(lambda_=chosen["imle"], blackbox_lambda=chosen["blackbox"])
            metrics = run_demo(epochs=epochs, maps=maps, seed=seed, out=f"{scratch}/held-out", config=config,
                               methods=(*TUNED, "ste"), evaluate_on="held-out")
            result["held_out"] = {method: _kept(metrics[method]) for method in (*TUNED, "ste")}
            result["held_out"]["random"] = _kept(metrics["random"])
            result["settings"]["held_out_maps"] = metrics["settings"]["scored_maps"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def temperatures(maps: int, epochs: int, seed: int, lam: float, values: list[float]) -> dict:
    """I-MLE alone at lambda ``lam`` (the demo's convention) and each noise temperature of
    ``values``, scored on the validation maps: is the noise what separates it from blackbox?"""
    started = time.perf_counter()
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for tau in values:
            config = TrainingConfig(lambda_=lam, noise_temperature=tau)
            metrics = run_demo(epochs=epochs, maps=maps, seed=seed, out=f"{scratch}/tau-{tau:g}", config=config,
                               methods="imle", evaluate_on="validation")
            rows[repr(tau)] = _kept(metrics["imle"])
    settings = {"maps": maps, "epochs": epochs, "seed": seed, "lambda": lam, "temperatures": values,
                "validation_maps": metrics["settings"]["scored_maps"], "batch_size": TrainingConfig().batch_size}
    return {"settings": settings, "temperature": rows, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=1500, help="maps generated (80%% train, 20%% held out)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lambdas", type=float, nargs="*", default=[10.0, 20.0, 50.0],
                        help="lambdas in the demo's convention (the Hamming loss summed over the batch)")
    parser.add_argument("--paper-lambdas", type=float, nargs="*", default=[10.0, 20.0, 50.0],
                        help="lambdas in the paper's convention (the loss averaged over the batch), / batch size")
    parser.add_argument("--held-out", action="store_true", help="then score each tuned method on the held-out maps")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--temperatures", type=float, nargs="+", default=None,
                        help="instead of the grid: I-MLE alone at the first --paper-lambdas value and these noise "
                             "temperatures, on validation maps")
    arguments = parser.parse_args()
    if arguments.temperatures:
        lam = arguments.paper_lambdas[0] / TrainingConfig().batch_size
        result = temperatures(arguments.maps, arguments.epochs, arguments.seed, lam, arguments.temperatures)
        arguments.out.write_text(json.dumps(result, indent=2) + "\n")
        for tau, row in result["temperature"].items():
            print(f"imle temperature {float(tau):g}: validation cost-accuracy {row['cost_accuracy']:.1%}")
        return
    lambdas = grid_lambdas(arguments.lambdas, arguments.paper_lambdas, TrainingConfig().batch_size)
    result = tune(arguments.maps, arguments.epochs, arguments.seed, lambdas, arguments.held_out)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    for method in TUNED:
        line = "  ".join(f"lambda {float(lam):.3g}: {row['cost_accuracy']:.1%}"
                         for lam, row in result["grid"][method].items())
        print(f"{method:9} validation cost-accuracy  {line}  -> lambda {result['chosen'][method]:.3g}")
    for method, scores in result.get("held_out", {}).items():
        print(f"{method:9} held-out cost-accuracy {scores['cost_accuracy']:.1%}  exact match {scores['exact_match']:.1%}")


if __name__ == "__main__":
    main()
