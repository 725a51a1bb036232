"""Record a measured run as the one source of a results table on the documentation site.

Each recipe runs the commands a page quotes, exactly, and saves what they wrote (their
``--out`` JSON) in ``docs/results/<name>.json`` with the run's provenance: the commands,
the date (UTC), the seeds, the machine (CPU count, load average before the run), the
versions and the commit. The site's hook (docs/results/hook.py) renders the tables from
these files at build time, so a figure on a page is never copied by hand.

    python scripts/record_results.py pyepo-example     # about 30 s on 2 cores
    python scripts/record_results.py distribution      # about 10 s; also its pictures
    python scripts/record_results.py padded-text       # about 85 s
    python scripts/record_results.py toy-top-k         # about 10 s; also its picture
    python scripts/record_results.py l2x               # about 8 min on 2 busy cores; also its pictures
    python scripts/record_results.py discrete-vae      # about 13 min on 2 busy cores; also its picture
    python scripts/record_results.py discrete-vae-lambda   # about 14 min on 2 busy cores
    python scripts/record_results.py matching          # about 3 min on 2 busy cores; also its picture
    python scripts/record_results.py rota-weekly       # about 5 min
    python scripts/record_results.py spec-limits       # about 40 s, 0.8 GB at its peak
    python scripts/record_results.py tsp-portfolio     # about 15 s
    python scripts/record_results.py pool              # about 90 s
    python scripts/record_results.py fast-path         # about 3 min
    python scripts/record_results.py instances         # about 8 min on 2 busy cores
    python scripts/record_results.py highs             # about 8 min on 2 busy cores
    python scripts/record_results.py ilp-settings      # about 10 min on 2 idle cores, over 40 on busy ones
    python scripts/record_results.py ilp-models        # about 15 min on 2 busy cores
    python scripts/record_results.py batched-parameters  # about 3 min on 2 busy cores
    python scripts/record_results.py bench-pyepo --pyepo-path DIR   # about 12 min
    python scripts/record_results.py bench-pyepo-problems          # about 80 min on 2 busy cores
    python scripts/record_results.py study-imle-gap                # about 45 min on 2 busy cores
    python scripts/record_results.py warcraft-tuning   # about 35 min on 2 busy cores
    python scripts/record_results.py warcraft-temperature   # about 6 min on 2 busy cores
    python scripts/record_results.py NAME --adopt DIR   # the outputs a run of NAME's commands left in DIR

A recipe with pictures copies them into docs/gallery/img/, so the page's pictures come
from the same run as its table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
IMAGES = ROOT / "docs" / "gallery" / "img"


@dataclass(frozen=True)
class Recipe:
    """The commands of one record; ``{out}`` in a command is the temporary folder."""

    commands: tuple[str, ...]
    seeds: tuple[int, ...]
    # (the JSON file under {out} read into the record's "results" under this key)
    outputs: dict[str, str] = field(default_factory=dict)
    # files under {out} copied to docs/gallery/img/: a name, or (name under {out}, name in img/)
    pictures: tuple[str | tuple[str, str], ...] = ()


RECIPES = {
    "pyepo-example": Recipe(
        commands=tuple(
            f"python examples/pyepo_shortest_path.py --epochs 20 --seed {s} --out {{out}}/seed-{s}.json"
            for s in range(3)
        ),
        seeds=(0, 1, 2),
        outputs={str(s): f"seed-{s}.json" for s in range(3)},
    ),
    "distribution": Recipe(
        commands=("python examples/seeing_the_distribution.py --out {out}",),
        seeds=(0,),
        outputs={"metrics": "metrics.json"},
        pictures=(
            "distribution-sampling.png",
            "distribution-loss.png",
            *(f"distribution-train-{s}.gif" for s in ("0-0", "1-1", "2-2", "5-5", "5-0")),
        ),
    ),
    "padded-text": Recipe(
        commands=("python examples/l2x_padded_text.py --out {out}/metrics.json",),
        seeds=(0,),
        outputs={"metrics": "metrics.json"},
    ),
    "toy-top-k": Recipe(
        commands=("python examples/toy_top_k.py --out {out}",),
        seeds=tuple(range(20)),
        outputs={"metrics": "metrics.json"},
        pictures=("toy-top-k.png",),
    ),
    "l2x": Recipe(
        commands=("python examples/l2x_synthetic.py --seeds 3 --out {out}",),
        seeds=(0, 1, 2),
        outputs={"metrics": "metrics.json"},
        pictures=("l2x-synthetic.png", "l2x-digits.png"),
    ),
    "discrete-vae": Recipe(
        commands=("python examples/discrete_vae.py --seeds 0 1 2 --out {out}",),
        seeds=(0, 1, 2),
        outputs={"metrics": "metrics.json"},
        pictures=(("discrete_vae.png", "discrete-vae.png"),),  # seed 0's
    ),
    # I-MLE's lambda over 20 epochs; at lambda 1 the other two methods beside it
    "discrete-vae-lambda": Recipe(
        commands=(
            "python examples/discrete_vae.py --epochs 20 --lambda 1 --seeds 0 1 2 --out {out}/lambda-1",
            *(f"python examples/discrete_vae.py --epochs 20 --lambda {lam} --seeds 0 1 2 --methods I-MLE "
              f"--out {{out}}/lambda-{lam}" for lam in ("0.3", "3", "10", "100")),
        ),
        seeds=(0, 1, 2),
        outputs={lam: f"lambda-{lam}/metrics.json" for lam in ("0.3", "1", "3", "10", "100")},
    ),
    "matching": Recipe(
        commands=("python examples/learning_to_match.py --seeds 0 1 2 --out {out}",),
        seeds=(0, 1, 2),
        outputs={"metrics": "metrics.json"},
        pictures=(("learning_to_match.png", "matching.png"),),  # seed 0's
    ),
    "rota-weekly": Recipe(
        commands=("python examples/rota_weekly.py --out {out}/results.json",),
        seeds=(0,),
        outputs={"models": "results.json"},
    ),
    "spec-limits": Recipe(
        commands=("python benchmarks/bench_spec_limits.py --out {out}/rows.json",),
        seeds=(),
        outputs={"bench": "rows.json"},
    ),
    "instances": Recipe(
        commands=("python benchmarks/bench_instances.py --out {out}/rows.json",),
        seeds=(0, 1, 2),
        outputs={"bench": "rows.json"},
    ),
    "highs": Recipe(
        commands=(
            "python benchmarks/bench_highs.py --out {out}/rows.json",
            "python benchmarks/bench_highs.py --route --out {out}/route.json",
            "python benchmarks/bench_highs.py --overhead --out {out}/overhead.json",
        ),
        seeds=(0, 1),
        outputs={"bench": "rows.json", "route": "route.json", "overhead": "overhead.json"},
    ),
    "fast-path": Recipe(
        commands=("python benchmarks/bench_fast_path.py --out {out}/rows.json",),
        seeds=(0,),
        outputs={"bench": "rows.json"},
    ),
    "pool": Recipe(
        commands=("python benchmarks/bench_pool.py --out {out}/rows.json",),
        seeds=(0,),
        outputs={"bench": "rows.json"},
    ),
    "tsp-portfolio": Recipe(
        commands=("python benchmarks/bench_tsp_portfolio.py --out {out}/cases.json",),
        seeds=(135,),  # imle_solvers.data.PYEPO_SEED, the data generators' default
        outputs={"bench": "cases.json"},
    ),
    "ilp-models": Recipe(
        commands=("python benchmarks/bench_ilp_models.py --out {out}/rows.json",),
        seeds=(0, 1),  # the knapsacks' weights, the thetas
        outputs={"bench": "rows.json"},
    ),
    "batched-parameters": Recipe(
        commands=("python benchmarks/bench_batched_parameters.py --out {out}/rows.json",),
        seeds=(0, 1),  # the weights; the thetas and the capacities
        outputs={"bench": "rows.json"},
    ),
    "ilp-settings": Recipe(
        commands=("python benchmarks/sweep_ilp_settings.py --out {out}/rows.json",),
        seeds=(0, 1, 2),
        outputs={"sweep": "rows.json"},
    ),
    "bench-pyepo-problems": Recipe(
        commands=(
            "python benchmarks/bench_pyepo.py --problems shortest_path --epochs 5 --seeds 5 --methods 2S SPO+ DBB NID "
            "DPO PFYL I-MLE AI-MLE NCE CMAP ptLTR prLTR lsLTR PG CaVE SVM --json {out}/sp.json",
            "python benchmarks/bench_pyepo.py --problems knapsack --epochs 1 --seeds 3 --methods 2S SPO+ DBB NID DPO "
            "PFYL I-MLE AI-MLE NCE CMAP ptLTR prLTR lsLTR PG CaVE SVM --json {out}/knapsack.json",
            "python benchmarks/bench_pyepo.py --problems tsp --epochs 1 --seeds 1 --methods 2S SPO+ DBB NID NCE CMAP "
            "ptLTR prLTR lsLTR PG SVM --json {out}/tsp.json",
            "python benchmarks/bench_pyepo.py --problems shortest_path --epochs 1 --seeds 1 --methods RFY "
            "--json {out}/rfy.json",
            "python benchmarks/bench_pyepo.py --problems shortest_path knapsack --epochs 5 --seeds 5 "
            "--methods CaVE CaVE-E --json {out}/cave.json",
        ),
        seeds=(0, 1, 2, 3, 4),
        # in order: a later run of a problem and method replaces an earlier one's row
        outputs={"shortest_path": "sp.json", "knapsack": "knapsack.json", "tsp": "tsp.json", "rfy": "rfy.json",
                 "cave": "cave.json"},
    ),
    "study-imle-gap": Recipe(
        commands=(
            "python benchmarks/study_imle_gap.py --seeds 20 --swap-seeds 100 --solver-seeds 4 --out {out}/run1.json",
            "python benchmarks/study_imle_gap.py --first-seed 20 --seeds 0 --swap-seeds 80 --solver-seeds 0 "
            "--variants ours --out {out}/run2.json",
            "python benchmarks/study_imle_gap.py --first-seed 100 --seeds 0 --swap-seeds 100 --solver-seeds 0 "
            "--variants ours sign exact pyepo_noise two_sided --out {out}/run3.json",
            "python benchmarks/study_imle_gap.py --first-seed 20 --seeds 20 --swap-seeds 0 --solver-seeds 0 "
            "--variants PyEPO --out {out}/run4.json",
            "python benchmarks/study_imle_gap.py --first-seed 200 --seeds 0 --swap-seeds 100 --solver-seeds 0 "
            "--variants ours sign exact pyepo_noise --out {out}/run5.json",
            "python benchmarks/study_imle_gap.py --merge {out}/run1.json {out}/run2.json {out}/run3.json "
            "{out}/run4.json {out}/run5.json --out {out}/study_imle_gap.json",
        ),
        seeds=tuple(range(300)),
        outputs={"study": "study_imle_gap.json"},
    ),
    # issue 22: I-MLE's and blackbox's lambda tuned on validation maps at a reduced budget
    # (the paper's 10, 20, 50 with its batch-mean loss, i.e. / 70 in the demo's units, and the demo's 10, 20, 50)
    # (1500 maps, 6 epochs: not the demo's default run), then each tuned method held out once
    "warcraft-tuning": Recipe(
        commands=("python benchmarks/tune_warcraft.py --maps 1500 --epochs 6 --seed 0 --lambdas 10 20 50 "
                  "--paper-lambdas 10 20 50 --held-out --out {out}/tuning.json",),
        seeds=(0,),
        outputs={"tuning": "tuning.json"},
    ),
    # issue 22: I-MLE at the tuned lambda (the paper's 10) and lower noise temperatures, the same budget
    "warcraft-temperature": Recipe(
        commands=("python benchmarks/tune_warcraft.py --maps 1500 --epochs 6 --seed 0 --paper-lambdas 10 "
                  "--temperatures 0.1 0.25 --out {out}/temperature.json",),
        seeds=(0,),
        outputs={"temperature": "temperature.json"},
    ),
    "bench-pyepo": Recipe(
        commands=("python benchmarks/bench_pyepo.py --seeds 3 --json {out}/rows.json",),
        seeds=(0, 1, 2),
        outputs={"bench": "rows.json"},
    ),
}


def _machine() -> dict[str, str | int]:
    return {
        "cpus": os.cpu_count() or 0,
        "processor": platform.processor() or platform.machine(),
        "system": platform.platform(terse=True),
        "load average before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _versions() -> dict[str, str]:
    import numpy
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__}


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip()


def record(name: str, extra: list[str]) -> Path:
    """Run recipe ``name`` (``extra`` appended to each command) and write its record."""
    recipe = RECIPES[name]
    machine, started = _machine(), time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as out:
        commands = [c.format(out=out) for c in recipe.commands]
        for command in commands:
            argv = [sys.executable, *command.split()[1:], *extra]
            subprocess.run(argv, cwd=ROOT, env=env, check=True)
        results = {key: json.loads((Path(out) / file).read_text()) for key, file in recipe.outputs.items()}
        for picture in recipe.pictures:
            source, target = (picture, picture) if isinstance(picture, str) else picture
            shutil.copyfile(Path(out) / source, IMAGES / target)
    record = {
        "commands": [re.sub(r" --(?:out|json) \S+", "", c) for c in recipe.commands],  # the pages' commands
        "date": date,
        "seeds": list(recipe.seeds),
        "wall seconds": round(time.perf_counter() - started, 1),
        "machine": machine,
        "versions": _versions(),
        "commit": _commit(),
        "results": results,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def adopt(name: str, folder: Path) -> Path:
    """Write recipe ``name``'s record from the outputs its commands already wrote into
    ``folder`` (a run too long to repeat, made with ``{out}`` = ``folder``): the same record,
    dated by the outputs' files; its wall time and the load before it were not measured."""
    recipe = RECIPES[name]
    files = [folder / file for file in recipe.outputs.values()]
    first, last = min(f.stat().st_mtime for f in files), max(f.stat().st_mtime for f in files)
    stamp = datetime.datetime.fromtimestamp(first, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    record = {
        "commands": [re.sub(r" --(?:out|json) \S+", "", c) for c in recipe.commands],
        "date": f"{stamp} (first output written)",
        "seeds": list(recipe.seeds),
        "wall seconds": None,
        "outputs written over seconds": round(last - first, 1),
        "machine": _machine() | {"load average before": "not measured (a run adopted after the fact)"},
        "versions": _versions(),
        "commit": _commit(),
        "results": {key: json.loads((folder / file).read_text()) for key, file in recipe.outputs.items()},
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--pyepo-path", help="bench-pyepo: a folder holding PyEPO (pip install --target)")
    parser.add_argument("--adopt", type=Path, default=None,
                        help="record the outputs a run of the recipe's commands (with {out} = this folder) left here")
    arguments = parser.parse_args(argv)
    if arguments.adopt is not None:
        print(f"wrote {adopt(arguments.name, arguments.adopt).relative_to(ROOT)}")
        return
    extra = ["--pyepo-path", arguments.pyepo_path] if arguments.pyepo_path else []
    print(f"wrote {record(arguments.name, extra).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
