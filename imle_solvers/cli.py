"""The ``imle-solvers`` command: validate and solve ILP specs, list solvers, run the
benchmarks and the demo. Exit status: 0 success, 1 a broken spec or a failed solve,
2 a usage error, 3 (``solve``) some instances not solved, under ``--on-failure skip`` or
``incumbent``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="imle_solvers")
def main() -> None:
    """Discrete solvers as trainable layers: check and solve ILP specs, list solvers,
    run benchmarks and the demo. `imle-solvers COMMAND --help` explains each command."""


def _parse_param(ctx: click.Context, option: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    from ._array_files import load_array

    params = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", ctx, option)
        try:
            if text.startswith("@"):
                ctx.meta.setdefault(_INPUTS, []).append(text[1:])  # --out may not overwrite it
                params[name] = load_array(Path(text[1:]))
            else:
                params[name] = json.loads(text)
        except (OSError, ValueError, RecursionError) as error:  # RecursionError: [[[[... in the JSON
            reason = "the JSON is nested too deeply" if isinstance(error, RecursionError) else error
            raise click.BadParameter(f"{name}: {reason}", ctx, option) from None
    return params


_INPUTS = "imle_solvers.inputs"  # ctx.meta: files read by option callbacks (--param @FILE)


PARAM = click.option(
    "--param", "-p", "params", multiple=True, callback=_parse_param, metavar="NAME=VALUE",
    help="Set a spec parameter; VALUE is JSON (3, [1, 2]) or @FILE.npy / @FILE.json. Repeatable.",
)


def _parse_limits(ctx: click.Context, option: click.Parameter, values: tuple[str, ...]):
    from .spec import SpecLimits

    changes = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or name not in SpecLimits.names():
            raise click.BadParameter(f"expected NAME=N with NAME one of {', '.join(SpecLimits.names())}, got {item!r}",
                                     ctx, option)
        try:  # max_seconds is a number of seconds (inf: none), every other limit a count
            changes[name] = float(text) if name == "max_seconds" else int(text.replace("_", ""))
        except ValueError:
            kind = "a number of seconds" if name == "max_seconds" else "a whole number"
            raise click.BadParameter(f"{name}: expected {kind}, got {text!r}", ctx, option) from None
    try:
        return SpecLimits(**changes)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, option) from None


LIMIT = click.option(
    "--limit", "-l", "limits", multiple=True, callback=_parse_limits, metavar="NAME=N",
    help="Raise or lower a spec limit, e.g. --limit max_rows=5000000 (names and defaults: docs/spec.md, "
         "'Limits'). Repeatable.",
)


def _try_load(spec: str, params: dict[str, Any], limits):
    """The ILP of ``spec``, or None after printing its located error (whose advice names
    the command line's options, not Python's arguments)."""
    from .spec import SpecError
    from .spec.clock import time_budget
    from .spec.compiler import compile_spec, read_yaml
    from .spec.limits import CLI

    try:
        with time_budget(limits.max_seconds):  # one budget for reading and compiling
            return compile_spec(read_yaml(spec, limits), params, limits, CLI)
    except SpecError as error:
        click.echo(f"error: {error}", err=True)
        return None


def _load(spec: str, params: dict[str, Any], limits):
    ilp = _try_load(spec, params, limits)
    if ilp is None:
        sys.exit(1)
    return ilp


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@PARAM
@LIMIT
def validate(specs: tuple[str, ...], params: dict[str, Any], limits) -> None:
    """Check ILP spec files (YAML or JSON).

    Prints one line per spec: its variables, constraint rows and theta shape, or the
    error as FILE:LINE:COLUMN: FIELD: MESSAGE. Exits 1 if any spec is broken. A spec
    that would expand past a limit (rows, nonzeros, ...) is refused before it is built.
    """
    from .problems.ilp import VARIABLE_TYPES

    failed = False
    for spec in specs:
        ilp = _try_load(spec, params, limits)
        if ilp is None:
            failed = True
            continue
        types = {t: sum(v.size for v in ilp.variables if v.type == t) for t in VARIABLE_TYPES}
        kinds = ", ".join(f"{n} {t}" for t, n in types.items() if n)
        rows = ilp.constraints.shape[0]
        batched = f", batched: {', '.join(ilp.parameters.names)}" if ilp.parameters is not None else ""
        click.echo(f"{spec}: ok: {ilp.name!r}, {ilp.n_variables} variables ({kinds}), {rows} constraint "
                   f"row{'s' if rows != 1 else ''}, theta shape {ilp.shape}, {ilp.sense}{batched}")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--theta", "-t", "theta_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Scores: .npy or .json, of the spec's theta shape or a batch (B, *shape).")
@click.option("--backend", "-b", default="auto", show_default=True,
              help="Solver backend for kind 'ilp' (ortools, scip; see `imle-solvers solvers`).")
@click.option("--data", "-d", "data_file", type=click.Path(exists=True, dir_okay=False),
              help="Per-instance values of the spec's batched parameters: .npz or .json, named after "
                   "them, batch axis first (one instance's values when --theta is one instance).")
@PARAM
@LIMIT
@click.option("--n-jobs", "-j", default=1, show_default=True, type=int,
              help="Concurrent solver processes: 1 solves in this process, -1 on every core.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Wall-clock seconds per instance (depends on the machine's load; see --work-limit).")
@click.option("--work-limit", type=click.FloatRange(min=0, min_open=True), metavar="UNITS",
              help="Deterministic work per instance, in the backend's unit (ortools: CP-SAT's deterministic "
                   "seconds; scip: branch-and-bound nodes): the same results on any machine, under any load.")
@click.option("--on-failure", type=click.Choice(["raise", "skip", "incumbent"]), default="raise", show_default=True,
              help="An instance that fails: stop with exit 1 (raise), or keep going and give it zeros "
                   "(skip) or the solver's best solution where it has one (incumbent); then exit 3.")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar on stderr (default: on a terminal, for batches solved in several slices).")
@click.option("--out", "-o", type=click.Path(dir_okay=False),
              help="Write the result to a .json or .npz file instead of printing it (its folder is created; an "
                   "existing file only with --force, an input file never).")
@click.option("--force", "-f", is_flag=True, help="Let --out overwrite an existing file (never an input).")
def solve(spec: str, theta_file: str, data_file: str | None, backend: str, params: dict[str, Any], limits,
          n_jobs: int, time_limit: float | None, work_limit: float | None, on_failure: str, progress: bool | None,
          out: str | None, force: bool) -> None:
    """Solve an ILP spec for given scores; print (or write) each instance's z, objective and status.

    z is the theta variables' optimal values, shaped like theta. The objective is
    <theta, z> plus the spec's fixed part on the theta variables (each instance's own,
    where batched parameters set it). Exit status: 0 every instance solved to a proven
    optimum; 3 some were not (with --on-failure skip or incumbent: each is listed on
    stderr, its status in the result); 1 a broken input or a failure under raise; 2 a
    usage error. docs/cli.md describes the outputs.
    """
    from ._array_files import load_array, load_arrays
    from ._cli_batch import solve_in_slices
    from .errors import ImleSolversError, InvalidInputError
    from .failures import Status
    from .oracle import MAPOracle

    inputs = [spec, theta_file, *([data_file] if data_file else []), *click.get_current_context().meta.get(_INPUTS, [])]
    destination = None if out is None else _check_out(out, inputs, force)
    ilp = _load(spec, params, limits)
    try:
        theta = load_array(Path(theta_file))
    except (OSError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--theta") from None
    names = ilp.parameters.names if ilp.parameters is not None else ()
    try:
        data = {} if data_file is None else load_arrays(Path(data_file), names)
    except (OSError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--data") from None
    if not data:
        ilp = _fixed(ilp)
    single = theta.shape == ilp.shape
    batch = theta[None] if single else theta
    data = {name: value[None] for name, value in data.items()} if single else data
    options = {"backend": backend, "n_jobs": n_jobs, "time_limit": time_limit, "work_limit": work_limit,
               "on_failure": on_failure}
    try:
        oracle = MAPOracle(ilp, **options)
    except InvalidInputError as error:  # an option the backend or the oracle refuses
        raise click.UsageError(str(error).removeprefix("MAPOracle: ")) from None
    except ImleSolversError as error:  # an unknown or missing backend
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    try:
        with oracle:
            result = solve_in_slices(oracle, batch, data, progress=progress)
            fixed = np.zeros(batch.shape)
            for i in range(len(batch)):
                fixed[i] = _fixed_objective(ilp, {name: value[i] for name, value in data.items()})
    except ImleSolversError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    objective = np.sum((batch + fixed) * result.z, axis=tuple(range(1, batch.ndim)))
    objective[result.status == Status.FAILED] = np.nan  # zeros, not a solution
    _write_result(_result(result, objective, single), destination)
    for failure in result.failures:
        click.echo(f"{'incumbent' if result.status[failure.instance] == Status.INCUMBENT else 'failed'}: "
                   f"{failure.message}", err=True)
    sys.exit(3 if result.failures else 0)


def _result(result, objective: np.ndarray, single: bool) -> dict[str, Any]:
    """The arrays written: ``z``, ``objective`` (NaN where an instance failed), ``status``
    (int8: 0 ok, 1 incumbent, 2 failed) and ``reason`` (the solver's word, "" where ok);
    of the one instance when ``--theta`` is one."""
    reason = np.full(len(result.status), "", dtype=object)
    for failure in result.failures:
        reason[failure.instance] = failure.status
    arrays = {"z": result.z, "objective": objective, "status": result.status, "reason": reason.astype(str)}
    return {name: value[0] for name, value in arrays.items()} if single else arrays


def _write_result(arrays: dict[str, Any], destination: Path | None) -> None:
    """Print ``arrays`` as JSON, or write them to ``destination`` (.json or .npz, atomically).
    In JSON a status is its name and an objective of a failed instance null."""
    if destination is not None and destination.suffix == ".npz":
        from ._files import write_atomically

        write_atomically(destination, lambda stream: np.savez(stream, **arrays))
        return
    from .failures import Status

    names = np.array([status.name.lower() for status in Status])
    as_json = json.dumps({
        "z": np.asarray(arrays["z"]).tolist(),
        "objective": _nan_to_none(np.asarray(arrays["objective"]).tolist()),
        "status": names[arrays["status"]].tolist(),
        "reason": np.asarray(arrays["reason"]).tolist(),
    })
    if destination is None:
        click.echo(as_json)
        return
    from ._files import write_atomically

    write_atomically(destination, lambda stream: stream.write(as_json.encode()))


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: a failed instance's objective is null."""
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return None if value != value else value


def _check_out(out: str, inputs: list[str], force: bool) -> Path:
    """``--out``, checked before anything is solved (:func:`~imle_solvers._files.check_output`)."""
    from ._files import FileRefused, check_output

    if not out.endswith((".json", ".npz")):
        raise click.BadParameter(f"{out}: expected a .json or .npz file", param_hint="--out")
    try:
        return check_output(out, inputs, force=force)
    except FileRefused as error:
        raise click.BadParameter(str(error), param_hint="--out") from None


def _fixed_objective(ilp, data: dict[str, np.ndarray]) -> np.ndarray:
    """The fixed objective on the theta variables ``ilp.shape`` of one instance with ``data``."""
    program = ilp.with_values(data) if ilp.parameters is not None else ilp
    return program.objective[program.theta_slots()].reshape(ilp.shape)


def _fixed(ilp):
    """A program with batched parameters solved from the command line: every instance takes
    their defaults (or their --param values), so it is the plain program of those values."""
    if ilp.parameters is None:
        return ilp
    missing = [p.name for p in ilp.parameters.parameters if p.default is None]
    if missing:
        click.echo(f"error: batched parameter {missing[0]!r} has no default; give one with --param "
                   f"{missing[0]}=VALUE, or each instance's with --data FILE", err=True)
        sys.exit(1)
    from .errors import InvalidInputError

    try:
        return ilp.with_values({})
    except InvalidInputError as error:  # the values make bounds cross
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


@main.command()
def solvers() -> None:
    """List the registered solvers: problem kind, backend, priority, installed or not, and the
    frameworks whose arrays an array-native solver takes on their own device."""
    from .adapters import list_solvers

    for entry in list_solvers():
        state = "installed" if entry.installed else f"missing (pip install 'imle_solvers[{entry.extra}]')"
        native = f"  array-native: {', '.join(entry.array_native)}" if entry.array_native else ""
        click.echo(f"{entry.kind:24} {entry.backend:12} priority {entry.priority:3}  {state}{native}")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--dir", "folder", default="benchmarks", show_default=True, type=click.Path(file_okay=False),
              help="Folder of bench_*.py scripts, each with a main() that prints a markdown table.")
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks without running them.")
def bench(names: tuple[str, ...], folder: str, list_only: bool) -> None:
    """Run the benchmarks (all, or those whose name contains one of NAMES).

    Example: `imle-solvers bench ilp topk` runs bench_ilp*.py and bench_*topk*.py.
    """
    scripts = sorted(Path(folder).glob("bench_*.py"))
    chosen = [s for s in scripts if not names or any(n in s.stem[len("bench_"):] for n in names)]
    if not chosen:
        found = ", ".join(s.stem for s in scripts) or "none"
        click.echo(f"error: no benchmark in {folder}/ matches {list(names)}; found: {found}", err=True)
        sys.exit(1)
    for script in chosen:
        if list_only:
            click.echo(script.stem)
            continue
        click.echo(f"## {script.stem}\n")
        _run_script(script)
        click.echo()


# Run in a fresh interpreter: benchmarks must not share native libraries they load
# (TensorFlow and OR-Tools' CP-SAT clash in one process), nor one another's warm caches.
_RUN_MAIN = """
import os, runpy, sys
path = sys.argv[1]
sys.argv = [path]
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # as `python path` would
namespace = runpy.run_path(path)
if not callable(namespace.get("main")):
    sys.exit(f"error: {path} has no main()")
namespace["main"]()
"""


def _run_script(script: Path) -> None:
    """Run ``script``'s ``main()`` in a fresh interpreter and echo what it prints."""
    result = subprocess.run([sys.executable, "-c", _RUN_MAIN, str(script)], capture_output=True, text=True)
    click.echo(result.stdout, nl=False)
    if result.returncode != 0:
        click.echo(result.stderr, err=True)
        sys.exit(1)


def _parse_methods(ctx: click.Context, option: click.Parameter, value: str) -> tuple[str, ...]:
    from .demo import parse_methods
    from .errors import InvalidInputError

    try:
        return parse_methods(value)
    except InvalidInputError as error:
        raise click.BadParameter(str(error).removeprefix("run_demo: "), ctx, option) from None


@main.command()
@click.option("--epochs", default=None, type=int, help="Training epochs (default: the demo's own setting).")
@click.option("--maps", default=None, type=int, help="Number of synthetic maps to generate (train + held-out).")
@click.option("--seed", default=0, show_default=True, help="Seed of data generation, initialisation and noise.")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(),
              help="Folder for the picture and metrics (created; their files of an earlier run only with --force).")
@click.option("--force", "-f", is_flag=True, help="Let the demo overwrite demo.png and metrics.json of an earlier run.")
@click.option("--methods", default="imle,baseline", show_default=True, callback=_parse_methods,
              help="Comma-separated methods to train side by side: imle, blackbox, ste, pfyl, direct, baseline; or all.")
@click.option("--validate", is_flag=True,
              help="Tune: train without the last 15% of the training maps and score on those (validation) "
                   "maps, not on the held-out ones.")
@click.option("--lambda", "lambda_", default=None, type=click.FloatRange(min=0, min_open=True),
              help="I-MLE's lambda, in cost units per cell (default: the demo's 20).")
@click.option("--blackbox-lambda", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Blackbox differentiation's lambda (default: the demo's 20).")
def demo(epochs: int | None, maps: int | None, seed: int, out: str, force: bool, methods: tuple[str, ...],
         validate: bool, lambda_: float | None, blackbox_lambda: float | None) -> None:
    """Train a CNN through a grid shortest-path I-MLE layer on synthetic Warcraft maps
    (and, with --methods, other ways to learn paths; docs/demo.md)."""
    import dataclasses

    from ._files import FileRefused, check_output
    from .demo import OUTPUT_FILES, TrainingConfig, run_demo

    if Path(out).exists() and not Path(out).is_dir():
        raise click.BadParameter(f"{out}: a file, not a folder", param_hint="--out")
    try:  # before training: minutes of it must not end in a refusal
        for name in OUTPUT_FILES.values():
            check_output(Path(out) / name, [], force=force)
    except FileRefused as error:
        raise click.BadParameter(str(error), param_hint="--out") from None
    chosen = {"lambda_": lambda_, "blackbox_lambda": blackbox_lambda}
    config = dataclasses.replace(TrainingConfig(), **{k: v for k, v in chosen.items() if v is not None})
    run_demo(epochs=epochs, maps=maps, seed=seed, out=out, methods=methods, config=config,
             evaluate_on="validation" if validate else "held-out")
