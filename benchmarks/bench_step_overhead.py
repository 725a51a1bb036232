"""A training step's overhead, before and after: two source trees measured in one run.

For each source tree (``--baseline DIR``, a checkout of the code before a change, and the
tree this script lives in, or ``--current DIR``) and in alternating rounds (baseline,
current, baseline, current, ...), a fresh ``python`` subprocess with ``PYTHONPATH=<tree>``
(so the two versions never meet in one interpreter; torch on one intra-op thread)
measures once:

1. a tiny torch k-subset training step (B=8, n=100, k=5, ``IMLE(noise=Gumbel(),
   lambda_=10.0)``, forward and backward of ``IMLELayer``), without and with a
   per-instance ``mask=`` (bool (B, n), some False), against its noise draw plus two bare
   top-k + scatter (the same reference for both, so the masked row's overhead includes
   handling the mask): overhead = step - (noise + 2 top-k), and step / (noise + 2 top-k);
2. the eager torch Gumbel step at (B=128, n=1000, k=10) over its noise draw plus two top-k:
   the ``torch | cpu | (128, 1000, 10) | Gumbel`` row of ``bench_fast_path.py``, with the
   same definitions of step and reference; beside it the same step with
   ``validate_args=False`` and a hand-written torch I-MLE step (the same operations as the
   reference implementation writes them, no checks): the floor a library step could reach;
3. a JAX step through a host solver: ``jax.grad`` of the sum of ``imle(GridShortestPath(12,
   12), IMLE(SumOfGamma(k=15)), backend="scipy")`` (a ``jax.pure_callback``), B=16, eager;
4. how often one step of item 1 calls the framework detection (``framework_of``,
   ``array_namespace``; found in ``imle_solvers.frameworks`` or ``imle_solvers._array``,
   whichever holds them, and wrapped in every ``imle_solvers`` module that imported them).

With ``--instructions`` items 1 and 2 are counted instead of timed: instructions per call
under valgrind's callgrind (``_instructions.py``), which other jobs on the machine do not
change (its wall and CPU times do, by up to 1.4x on a shared 2-core VM).

Times are medians within a round (step and reference interleaved, see ``_timing.py``), then
medians over rounds. Without ``--baseline`` only this tree is measured.

    python benchmarks/bench_step_overhead.py --baseline ../checkout-before [--rounds 3] [--repeats 30] [--json out.json]
    python benchmarks/bench_step_overhead.py --baseline ../checkout-before --instructions   # valgrind: load-proof counts
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKER = "BENCH_STEP_OVERHEAD_RESULT "

# (key, label, unit, goal of the refactor: what "current" should reach)
ROWS = [
    ("small_step_ms", "torch k-subset step B=8 n=100 k=5", "ms", ""),
    ("small_reference_ms", "  its noise + 2 top-k", "ms", ""),
    ("small_overhead_ms", "  overhead: step - (noise + 2 top-k)", "ms", "current / baseline <= 0.75"),
    ("small_ratio", "  step / (noise + 2 top-k)", "x", ""),
    ("masked_step_ms", "same step with mask=", "ms", ""),
    ("masked_overhead_ms", "  overhead: step - (noise + 2 top-k)", "ms", "current / baseline <= 0.75"),
    ("masked_ratio", "  step / (noise + 2 top-k)", "x", ""),
    ("large_step_ms", "torch Gumbel step B=128 n=1000 k=10", "ms", ""),
    ("large_reference_ms", "  its noise + 2 top-k", "ms", ""),
    ("large_ratio", "  step / (noise + 2 top-k)", "x", "<= 1.4"),
    ("large_unchecked_ratio", "  the step with validate_args=False / (noise + 2 top-k)", "x", ""),
    ("large_hand_ratio", "  hand-written torch I-MLE step / (noise + 2 top-k)", "x", ""),
    ("large_step_over_hand", "  step / hand-written step", "x", ""),
    ("jax_host_step_ms", "JAX grad, grid 12x12 scipy (host), B=16", "ms", "current / baseline <= 1.0"),
    ("framework_of_calls", "framework_of calls per step (1)", "", "<= 3"),
    ("array_namespace_calls", "array_namespace calls per step (1)", "", ""),
    ("masked_framework_of_calls", "framework_of calls per step (1, mask=)", "", ""),
    ("masked_array_namespace_calls", "array_namespace calls per step (1, mask=)", "", ""),
]


# --- the measurements (in a subprocess, PYTHONPATH=<tree>) ------------------------------


def torch_fns(b: int, n: int, k: int, lambda_: float, masked: bool) -> dict[str, Callable[[], object]]:
    """A k-subset layer's training step (Gumbel noise, seed 0, default options) and its
    reference, the noise draw of the step's shape plus two bare top-k + scatter, defined as
    ``bench_fast_path.torch_rows`` defines them."""
    import torch

    import imle_solvers as ims
    from imle_solvers.noise import TorchSource

    theta = torch.randn(b, n)
    upstream = torch.randn(b, n)
    data = {}
    if masked:  # about one item in five is padding; every row keeps far more than k
        data["mask"] = torch.rand(b, n, generator=torch.Generator().manual_seed(1)) > 0.2
    layer = ims.torch.IMLELayer(ims.KSubset(n, k), ims.IMLE(noise=ims.Gumbel(), lambda_=lambda_), seed=0)
    noise = ims.Gumbel()
    source = TorchSource(torch.Generator().manual_seed(0), theta.dtype, theta.device)

    def bare_topk() -> None:
        torch.zeros_like(theta).scatter_(1, torch.topk(theta, k, dim=-1).indices, 1.0)

    unchecked = ims.torch.IMLELayer(ims.KSubset(n, k), ims.IMLE(noise=ims.Gumbel(), lambda_=lambda_), seed=0,
                                    validate_args=False)

    def step() -> None:
        (layer(theta.clone().requires_grad_(), **data) * upstream).sum().backward()

    def unchecked_step() -> None:
        (unchecked(theta.clone().requires_grad_(), **data) * upstream).sum().backward()

    def reference() -> None:
        noise.sample(source, (b, 1, 1, n))  # what the layer's estimator draws: (B, samples, marginal, n)
        bare_topk()
        bare_topk()

    fns = {"step": step, "reference": reference, "unchecked_step": unchecked_step}
    if not masked:
        fns["hand_step"] = hand_written_step(theta, upstream, k, lambda_, source)
    return fns


def hand_written_step(theta: object, upstream: object, k: int, lambda_: float, source: object) -> Callable[[], None]:
    """The same training step written directly in torch, as the reference implementation
    writes I-MLE (no checks, no failure policy, no solver registry): the floor a library
    step could reach with these operations."""
    import torch

    import imle_solvers as ims

    noise = ims.Gumbel()

    def top_k(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x).scatter_(-1, torch.topk(x, k, dim=-1).indices, 1.0)

    class HandIMLE(torch.autograd.Function):
        @staticmethod
        def forward(ctx: object, t: torch.Tensor) -> torch.Tensor:
            eps = noise.sample(source, tuple(t.shape))
            z = top_k(t + eps)
            ctx.save_for_backward(t, eps, z)
            return z

        @staticmethod
        def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
            t, eps, z = ctx.saved_tensors
            return (z - top_k(t - lambda_ * grad + eps)) / lambda_

    def step() -> None:
        (HandIMLE.apply(theta.clone().requires_grad_()) * upstream).sum().backward()

    return step


def detection_functions() -> dict[str, tuple[str, Callable]]:
    """``framework_of`` and ``array_namespace`` by name: (where found, the function), from
    ``imle_solvers.frameworks`` if it has them, else ``imle_solvers._array``. A module is
    imported only from the tree ``imle_solvers`` came from: an editable install of another
    checkout would otherwise supply a submodule this tree lacks."""
    import importlib
    import importlib.util

    import imle_solvers

    package = Path(imle_solvers.__file__).resolve().parent
    found = {}
    for name in ("framework_of", "array_namespace"):
        for module_name in ("imle_solvers.frameworks", "imle_solvers._array"):
            if module_name not in sys.modules:
                spec = importlib.util.find_spec(module_name)
                if spec is None or spec.origin is None or not Path(spec.origin).resolve().is_relative_to(package):
                    continue
            fn = getattr(importlib.import_module(module_name), name, None)
            if callable(fn):
                found[name] = (f"{module_name}.{name}", fn)
                break
    return found


def foreign_modules() -> list[str]:
    """Loaded ``imle_solvers`` modules from outside the tree ``imle_solvers`` came from."""
    import imle_solvers

    package = Path(imle_solvers.__file__).resolve().parent
    return sorted(name for name, module in list(sys.modules.items())
                  if (name == "imle_solvers" or name.startswith("imle_solvers.")) and getattr(module, "__file__", None)
                  and not Path(module.__file__).resolve().is_relative_to(package))


def count_detection_calls(make_step: Callable[[], Callable[[], object]]) -> dict[str, object]:
    """Calls of the framework detection during one step (after a warm-up step): each function
    is replaced, in every loaded ``imle_solvers`` module holding it (under any name), by a
    counting wrapper before the layer is built; restored after."""
    import imle_solvers.torch  # noqa: F401 - the binding's modules hold their imports by now

    counts: dict[str, int] = {}
    replaced: list[tuple[object, str, Callable]] = []
    functions = detection_functions()
    for name, (_, fn) in functions.items():
        counts[name] = 0

        def counting(*args: object, _fn: Callable = fn, _name: str = name, **kwargs: object) -> object:
            counts[_name] += 1
            return _fn(*args, **kwargs)

        for module_name, module in list(sys.modules.items()):
            if module is None or not (module_name == "imle_solvers" or module_name.startswith("imle_solvers.")):
                continue
            for attribute, value in list(vars(module).items()):
                if value is fn:
                    setattr(module, attribute, counting)
                    replaced.append((module, attribute, fn))
    try:
        step = make_step()
        step()
        for name in counts:
            counts[name] = 0
        step()
    finally:
        for module, attribute, fn in replaced:
            setattr(module, attribute, fn)
    return {"counts": dict(counts), "where": {name: where for name, (where, _) in functions.items()},
            "wrapped_in": sorted({f"{m.__name__}.{a}" for m, a, _ in replaced})}


def jax_host_step(repeats: int) -> float:
    """Median seconds of one eager ``jax.grad`` step through the scipy grid solver."""
    import warnings

    import jax
    import jax.numpy as jnp

    import imle_solvers as ims

    from _timing import median_seconds  # beside this script

    problem = ims.GridShortestPath(12, 12)
    f = ims.jax.imle(problem, ims.IMLE(noise=ims.SumOfGamma(k=15), lambda_=10.0), backend="scipy")
    theta = jax.random.uniform(jax.random.key(0), (16, 12, 12)) + 0.5
    upstream = jax.random.normal(jax.random.key(1), (16, 12, 12))
    key = jax.random.key(2)
    grad = jax.grad(lambda t: jnp.sum(f(t, key) * upstream))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ims.NegativeCostWarning)  # noise may dip costs below 0: clamped
        return median_seconds(lambda: jax.block_until_ready(grad(theta)), repeats)


def measure(repeats: int) -> dict[str, object]:
    """One round in this interpreter: every measurement once. Torch runs first: once JAX has
    run, its idle threads slow torch's CPU ops on a small machine."""
    import torch

    import imle_solvers as ims

    from _timing import interleaved_medians  # beside this script

    torch.set_num_threads(1)
    torch.manual_seed(0)
    result: dict[str, object] = {"imle_solvers": ims.__file__}
    for prefix, masked in (("small", False), ("masked", True)):
        times = interleaved_medians(torch_fns(8, 100, 5, 10.0, masked), 4 * repeats)
        result[f"{prefix}_step_ms"] = 1e3 * times["step"]
        result[f"{prefix}_reference_ms"] = 1e3 * times["reference"]
        result[f"{prefix}_overhead_ms"] = 1e3 * (times["step"] - times["reference"])
        result[f"{prefix}_ratio"] = times["step"] / times["reference"]
    times = interleaved_medians(torch_fns(128, 1000, 10, 10.0, False), repeats)
    result["large_step_ms"] = 1e3 * times["step"]
    result["large_reference_ms"] = 1e3 * times["reference"]
    result["large_ratio"] = times["step"] / times["reference"]
    result["large_unchecked_ratio"] = times["unchecked_step"] / times["reference"]
    result["large_hand_ratio"] = times["hand_step"] / times["reference"]
    result["large_step_over_hand"] = times["step"] / times["hand_step"]
    for prefix, masked in (("", False), ("masked_", True)):
        counted = count_detection_calls(lambda masked=masked: torch_fns(8, 100, 5, 10.0, masked)["step"])
        for name, count in counted["counts"].items():
            result[f"{prefix}{name}_calls"] = count
        result["detection"] = {"where": counted["where"], "wrapped_in": counted["wrapped_in"]}
    result["jax_host_step_ms"] = 1e3 * jax_host_step(max(5, repeats // 2))
    result["foreign_modules"] = foreign_modules()
    return result


INSTRUCTION_ROWS = [
    # (key, label, goal)
    ("small_step_instructions", "torch k-subset step B=8 n=100 k=5", ""),
    ("small_reference_instructions", "  its noise + 2 top-k", ""),
    ("small_overhead_instructions", "  overhead: step - (noise + 2 top-k)", "current / baseline <= 0.75"),
    ("small_hand_instructions", "  hand-written torch I-MLE step", ""),
    ("masked_step_instructions", "same step with mask=", ""),
    ("masked_overhead_instructions", "  overhead: step - (noise + 2 top-k)", "current / baseline <= 0.75"),
    ("large_step_instructions", "torch Gumbel step B=128 n=1000 k=10", ""),
    ("large_reference_instructions", "  its noise + 2 top-k", ""),
    ("large_instruction_ratio", "  step / (noise + 2 top-k)", ""),
    ("large_hand_instruction_ratio", "  hand-written step / (noise + 2 top-k)", ""),
]


def instruction_worker() -> None:
    """Serve the steps to a callgrind driver (``_instructions.py``): the tiny steps 100 calls
    each, the large ones 10."""
    import torch

    from _instructions import serve  # beside this script

    torch.set_num_threads(1)
    torch.manual_seed(0)
    small, masked = torch_fns(8, 100, 5, 10.0, False), torch_fns(8, 100, 5, 10.0, True)
    serve({"small step": small["step"], "small reference": small["reference"], "small hand": small["hand_step"],
           "masked step": masked["step"]}, 100)
    large = torch_fns(128, 1000, 10, 10.0, False)
    serve({"large step": large["step"], "large reference": large["reference"], "large hand": large["hand_step"]}, 10)


def count_tree_instructions(tree: Path) -> dict[str, float]:
    """Instructions per call of each step of :func:`instruction_worker`, ``imle_solvers`` from ``tree``."""
    from _instructions import count_instructions  # beside this script

    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{HERE}", OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    counts = count_instructions([sys.executable, str(Path(__file__).resolve()), "--instruction-worker"], env)
    result = {f"{name.replace(' ', '_')}_instructions": value for name, value in counts.items()}
    for prefix in ("small", "masked"):
        result[f"{prefix}_overhead_instructions"] = result[f"{prefix}_step_instructions"] - result[
            "small_reference_instructions"]
    result["large_instruction_ratio"] = result["large_step_instructions"] / result["large_reference_instructions"]
    result["large_hand_instruction_ratio"] = result["large_hand_instructions"] / result["large_reference_instructions"]
    return result


def instruction_table(columns: dict[str, dict[str, float]]) -> str:
    names = list(columns)
    compare = len(names) == 2
    head = ["instructions per call (callgrind)", *names, *([f"{names[1]} / {names[0]}"] if compare else []), "goal"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for key, label, goal in INSTRUCTION_ROWS:
        values = [columns[name][key] for name in names]
        cells = [f"{v:.2f}" if key.endswith("ratio") else f"{v / 1e3:,.0f} k" for v in values]
        if compare:
            cells.append(f"{values[1] / values[0]:.3f}")
        lines.append("| " + " | ".join([label, *cells, goal]) + " |")
    return "\n".join(lines)


def worker(repeats: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(MARKER + json.dumps(measure(repeats)), flush=True)


# --- the driver ---------------------------------------------------------------------------


def run_round(tree: Path, repeats: int) -> dict[str, object]:
    """One round of measurements in a fresh interpreter importing ``imle_solvers`` from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--repeats", str(repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=HERE)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the round in {tree} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len(MARKER):])
    if not Path(result["imle_solvers"]).resolve().is_relative_to(tree.resolve()) or result["foreign_modules"]:
        raise RuntimeError(f"PYTHONPATH={tree} imported imle_solvers from {result['imle_solvers']}, "
                           f"and these modules from elsewhere: {result['foreign_modules']}")
    return result


def medians(rounds: list[dict[str, object]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key, *_ in ROWS if all(key in r for r in rounds)}


def table(columns: dict[str, dict[str, float]]) -> str:
    names = list(columns)
    compare = len(names) == 2
    head = ["measurement", *names, *([f"{names[1]} / {names[0]}"] if compare else []), "goal"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for key, label, unit, goal in ROWS:
        values = [columns[name].get(key) for name in names]
        cells = ["" if v is None else (f"{v:.0f}" if unit == "" else f"{v:.3f}" if unit == "ms" else f"{v:.2f}")
                 for v in values]
        if compare:
            before, after = values
            cells.append("" if before in (None, 0) or after is None else f"{after / before:.2f}")
        lines.append("| " + " | ".join([f"{label} ({unit})" if unit == "ms" else label, *cells, goal]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark (arguments as on the command line), print the table, return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the code before the change")
    parser.add_argument("--current", type=Path, default=HERE.parent, help="the tree after (default: this script's)")
    parser.add_argument("--rounds", type=int, default=3, help="subprocess rounds per tree (default 3)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per measurement in a round (default 30;"
                        " the tiny steps get 4 times as many, the JAX step half)")
    parser.add_argument("--json", type=Path, help="also write the per-round results and medians here")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per call under valgrind's callgrind instead of timing (other jobs on"
                             " the machine do not change the counts; about 3 min per tree)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instruction-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        worker(args.repeats)
        return {}
    if args.instruction_worker:
        instruction_worker()
        return {}
    trees = {"current": args.current} if args.baseline is None else {"baseline": args.baseline, "current": args.current}
    for name, tree in trees.items():
        if not (tree / "imle_solvers" / "__init__.py").is_file():
            parser.error(f"--{name}: {tree} holds no imle_solvers package")
    start = time.perf_counter()
    if args.instructions:
        from _instructions import available  # beside this script

        if not available():
            parser.error("--instructions needs valgrind (with callgrind_control) on the PATH")
        counted = {name: count_tree_instructions(tree) for name, tree in trees.items()}
        print(instruction_table(counted))
        print(f"\n{time.perf_counter() - start:.0f} s; " + "; ".join(f"{name}: {tree}" for name, tree in trees.items()))
        output = {"trees": {name: str(tree) for name, tree in trees.items()}, "instructions": counted}
        if args.json is not None:
            args.json.write_text(json.dumps(output, indent=1) + "\n")
        return output
    rounds: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():  # interleaved: baseline, current, baseline, current, ...
            rounds[name].append(run_round(tree, args.repeats))
    columns = {name: medians(results) for name, results in rounds.items()}
    print(table(columns))
    detection = {name: results[-1]["detection"] for name, results in rounds.items()}
    print(f"\n{args.rounds} rounds per tree, {time.perf_counter() - start:.0f} s; "
          + "; ".join(f"{name}: {tree} (framework_of: {detection[name]['where'].get('framework_of', 'not found')})"
                      for name, tree in trees.items()))
    output = {"trees": {name: str(tree) for name, tree in trees.items()}, "medians": columns, "rounds": rounds}
    if args.json is not None:
        args.json.write_text(json.dumps(output, indent=1) + "\n")
    return output


if __name__ == "__main__":
    main()
