"""MkDocs hook (mkdocs.yml ``hooks:``): results tables rendered from their recorded runs.

A page asks for a table with a marker on a line of its own::

    <!-- results: distribution sampling -->

(the record ``docs/results/distribution.json``, written by scripts/record_results.py, and
one of its tables). The hook puts in its place a line naming the run (commands, seeds,
date, machine, a link to the record) and the table, so a figure on a page is the figure
the run wrote. An unknown record or table fails the build.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import statistics
from collections.abc import Callable
from pathlib import Path

_MARKER = re.compile(r"^<!-- results: (?P<record>[\w-]+) (?P<table>[\w-]+) -->$", re.MULTILINE)


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list], align: str = "---") -> str:
    return "\n".join([_row(header), _row([align] * len(header)), *(_row(r) for r in rows)])


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def pyepo_seeds(record: dict) -> str:
    """examples/pyepo_shortest_path.py, one row per seed: held-out metrics before and after."""
    rows = []
    for seed, r in record["results"].items():
        rows.append([seed, f"{r['normalized_regret_before']:.3f}", f"{r['normalized_regret']:.3f}",
                     f"{r['unambiguous_regret']:.3f}", f"{r['cost_accuracy']:.1%}", f"{r['exact_match']:.1%}",
                     f"{r['seconds']:.0f}"])
    header = ["seed", "normalised regret before", "after", "unambiguous regret after", "cost-accuracy after",
              "exact match after", "seconds"]
    return _table(header, rows)


def distribution_sampling(record: dict) -> str:
    """examples/seeing_the_distribution.py, part 1: the sampled paths per temperature."""
    metrics = record["results"]["metrics"]
    samples = metrics["settings"]["samples"]
    rows = [[tau, f"{s['share equal to the MAP path']:.1%}", f"{s['share optimal under the true costs']:.1%}",
             s["distinct paths"], f"{s['gold tiles mean marginal']:.3f}", f"{s['other tiles mean marginal']:.3f}",
             s["tiles ever sampled"], f"{s['summed tile entropy, bits']:.1f}", f"{s['mean true cost / optimum']:.3f}"]
            for tau, s in metrics["sampling"].items()]
    header = ["temperature", "samples = the gold path", "samples optimal under the true costs",
              f"distinct paths in {samples}", "gold tiles' mean marginal", "other tiles' mean marginal",
              "tiles ever on a path", "summed tile entropy (bits)", "mean true cost / optimum"]
    return _table(header, rows, "---:")


def distribution_training(record: dict) -> str:
    """examples/seeing_the_distribution.py, part 2: training the weights per setting."""
    metrics = record["results"]["metrics"]
    quarter = metrics["settings"]["steps"] // 4
    rows = [[name, f"{t['first sampled loss (mean of first 10 steps)']:.1f}",
             f"{t['final sampled loss (mean of last 10 steps)']:.1f}", _yes(t["final MAP path is the gold path"]),
             _yes(t["final MAP path costs no more than the gold"]), t["first step with MAP path = gold"],
             f"{t['steps with MAP path = gold, last quarter']:.0%}", f"{t['gold tiles mean weight']:.2f}",
             f"{t['other tiles mean weight']:.2f}"]
            for name, t in metrics["training"].items()]
    header = ["input/target", "sampled loss, first 10 steps", "sampled loss, last 10 steps", "final MAP path = gold",
              "final MAP path costs ≤ gold (true costs)", "first step with MAP path = gold",
              f"MAP path = gold, last {quarter} steps", "mean final weight, gold tiles",
              "mean final weight, other tiles"]
    return _table(header, rows, "---:")


def padded_pipelines(record: dict) -> str:
    """examples/l2x_padded_text.py: the three pipelines' held-out figures and selected padding."""
    metrics = record["results"]["metrics"]
    rows = []
    for name in ("no mask, k=3", "mask, k=3", "mask, k per length"):
        r = metrics[name]
        selected = r["padding selected, training"]
        training = f"{selected:,} ({r['padding share, training']:.1%} of the selections)" if selected else "0"
        rows.append([name, f"{r['r2']:.3f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}",
                     f"{r['padding selected, test']:,}", training])
    header = ["pipeline", "R² of the rating", "precision", "recall", "padding selected, held out",
              "padding selected, training samples"]
    return _table(header, rows)


_TOY_METHODS = {
    "I-MLE (SoG)": "I-MLE, Sum-of-Gamma (k = 5)",
    "I-MLE (Gumbel)": "I-MLE, Gumbel",
    "STE": "STE (Gumbel noise)",
    "score function": "score function (REINFORCE)",
}


def _toy_protocol(record: dict, optimizer: str) -> str:
    """examples/toy_top_k.py, one optimizer: the final gap per method, the lowest in bold."""
    table = record["results"]["metrics"]["protocols"][optimizer]
    start = table["start gap"]
    rows = [["start (`theta_0`)", "", f"{start['mean']:.2f} ± {start['sd']:.2f}", f"{table['paper start gap']:g}"]]
    best = min(m["final gap"]["mean"] for m in table["methods"].values())
    for name, m in table["methods"].items():
        settings = ", ".join(f"`{key.rstrip('_')} = {m[key]:g}`" for key in ("lr", "lambda_") if key in m)
        gap = f"{m['final gap']['mean']:.2f} ± {m['final gap']['sd']:.2f}"
        rows.append([_TOY_METHODS.get(name, name), settings, f"**{gap}**" if m["final gap"]["mean"] == best else gap,
                     f"{m['paper final gap']:g}"])
    return _table(["method", "settings (tuned)" if table["tuned"] else "settings", "gap", "paper"], rows)


def toy_momentum(record: dict) -> str:
    return _toy_protocol(record, "momentum")


def toy_sgd(record: dict) -> str:
    return _toy_protocol(record, "sgd")


_SPEC_LIMITS = {
    "tokens": "`max_tokens`: one written-out sum",
    "bytes": "`max_text_bytes`: long names in one expression",
    "nodes": "`max_document_nodes`: a constant array",
    "rows": "`max_rows`: rows from one `for`",
}


def spec_limits(record: dict) -> str:
    """benchmarks/bench_spec_limits.py: validating the largest specs the limits admit."""
    rows = [[_SPEC_LIMITS.get(r["spec"], r["spec"]), f"{r['bytes']:,}", _yes(r["accepted"]), f"{r['seconds']:.1f}",
             f"{r['peak rss mb']:.0f}", f"{r['rss over an empty spec mb']:.0f}"]
            for r in record["results"]["bench"]["rows"]]
    header = ["spec at the limit", "size (bytes)", "accepted", "validate (s)", "peak RSS (MB)",
              "RSS over an empty spec (MB)"]
    return _table(header, rows, "---:")


_BENCH_PROBLEMS = ("shortest_path", "knapsack", "tsp")
_BENCH_METHODS = ("2S", "SPO+", "DBB", "NID", "DPO", "PFYL", "I-MLE", "AI-MLE", "NCE", "CMAP", "ptLTR", "prLTR",
                  "lsLTR", "PG", "RFY", "CaVE", "CaVE-E", "SVM")


def bench_pyepo_methods(record: dict) -> str:
    """benchmarks/bench_pyepo.py, its runs in order (their --json output each): every method
    both libraries have, held-out normalised regret (mean ± sd over the seeds) and ms/step.
    A later run of the same problem and method replaces an earlier one's row."""

    def regret(row: dict, library: str, seeds: int) -> str:
        value = row[f"{library}_regret"]
        if value is None:
            return "n/a"
        return f"{value:.4f}" + (f" ± {row[f'{library}_regret_sd']:.4f}" if seeds > 1 else "")

    def number(value: float | None, suffix: str = "") -> str:
        return "n/a" if value is None else f"{value:.2f}{suffix}"

    latest = {(row["problem"], row["method"]): (run, row) for run in record["results"].values() for row in run["rows"]}
    order = sorted(latest, key=lambda key: (_BENCH_PROBLEMS.index(key[0]), _BENCH_METHODS.index(key[1])))
    rows = []
    for key in order:
        run, row = latest[key]
        speedup = "—" if row["method"] == "2S" else number(row["speedup"], "x")
        rows.append([row["problem"].replace("_", " "), row["method"], f"{run['seeds']} × {run['epochs']}",
                     regret(row, "PyEPO", run["seeds"]), regret(row, "ours", run["seeds"]),
                     number(row["PyEPO_ms"]), number(row["ours_ms"]), speedup])
    header = ["problem", "method", "seeds × epochs", "PyEPO regret", "ours regret", "PyEPO ms/step",
              "ours ms/step", "speed-up"]
    return _table(header, rows)


def study_imle_gap(record: dict) -> str:
    """benchmarks/study_imle_gap.py: each variant's held-out normalised regret (mean ±
    standard error over its seeds) and its per-seed difference to PyEPO and to ours."""

    def difference(d: dict | None) -> str:
        if d is None:
            return ""
        if d["mean"] == 0 and d["se"] == 0:
            return "0.0000 on every seed"
        return (f"{d['mean']:+.4f} ± {d['se']:.4f} ({d['relative']:+.1%}, {d['below']}/{d['seeds']} below)")

    rows = [[name, v["seeds"], f"{v['mean']:.4f} ± {v['se']:.4f}", difference(v.get("minus_pyepo")),
             difference(v.get("minus_ours"))] for name, v in record["results"]["study"]["summary"].items()]
    return _table(["variant", "seeds", "regret", "minus PyEPO, same seed", "minus ours, same seed"], rows)


def instances_ilp(record: dict) -> str:
    """benchmarks/bench_instances.py, the machinery's price: per backend and ``n_jobs``, the
    plain program, the batched one given the same capacities, 64 capacities, the user's loop."""
    rows = []
    for r in record["results"]["bench"]["ilp"]:
        for jobs in (1, 2):
            plain, same, differing = r[f"plain {jobs}"], r[f"same {jobs}"], r[f"differing {jobs}"]
            rows.append([r["backend"], jobs, f"{plain:.1f}", f"{same:.1f}", f"{same / plain:.2f}", f"{differing:.1f}",
                         f"{r['user loop']:.1f}", f"{r['user loop'] / differing:.2f}"])
    header = ["backend", "n_jobs", "plain program (ms)", "batched, same capacities (ms)", "ratio",
              "batched, 64 capacities (ms)", "the loop without data (ms)", "loop / batched"]
    return _table(header, rows, "---:")


def instances_ksubset(record: dict) -> str:
    """benchmarks/bench_instances.py, one masked k-subset I-MLE training step per framework."""
    rows = [[_FRAMEWORKS.get(r["framework"], r["framework"]), "(" + ", ".join(map(str, r["shape"])) + ")",
             f"{r['plain']:.2f}", f"{r['mask']:.2f}", f"{r['mask'] / r['plain']:.2f}", f"{r['mask and k']:.2f}",
             f"{r['mask and k'] / r['plain']:.2f}"] for r in record["results"]["bench"]["ksubset"]]
    header = ["framework", "(B, n, k)", "unmasked (ms)", "masked (ms)", "ratio", "mask and per-row k (ms)", "ratio"]
    return _table(header, rows, "---:")


_FRAMEWORKS = {"jax.jit": "`jax.jit`"}
_HIGHS_BACKENDS = ("ortools", "scip", "highs")


def _highs_program(name: str) -> str:
    """``knapsack.yaml (6 vars, 1 rows)`` -> ``\\`knapsack.yaml\\` (6 variables, 1 row)``."""
    spec = re.fullmatch(r"(?P<file>\S+\.yaml) \((?P<vars>\d+) vars, (?P<rows>\d+) rows\)", name)
    if spec is None:  # the time-limited knapsack, named in words
        return name
    rows = int(spec["rows"])
    return f"`{spec['file']}` ({spec['vars']} variables, {rows} row{'' if rows == 1 else 's'})"


def highs_programs(record: dict) -> str:
    """benchmarks/bench_highs.py: ms per instance per backend, wall ``n_jobs=1`` / ``n_jobs=2``
    (CPU of this process, ``n_jobs=1``), and whether the three agree on statuses and optima."""
    rows = []
    for r in record["results"]["bench"]["rows"]:
        cells = [f"{r[f'{b} n_jobs=1']:.2f} / {r[f'{b} n_jobs=2']:.2f} ({r[f'{b} cpu']:.2f})" for b in _HIGHS_BACKENDS]
        rows.append([_highs_program(r["program"]), *cells, _yes(r["agree"]) if "agree" in r else "—"])
    header = ["program", *(f"`{b}`" for b in _HIGHS_BACKENDS), "statuses and optima agree"]
    return _table(header, rows)


def highs_incumbents(record: dict) -> str:
    """benchmarks/bench_highs.py, the time-limited knapsack (``n_jobs=1``): instances proven
    optimal and the incumbents' mean objective below the best backend's on each instance."""
    bench = record["results"]["bench"]
    limited = next(r for r in bench["rows"] if "proven / gap" in r)
    rows = [[f"`{b}`", f"{proven} of {limited['instances']}", f"{gap:.2%}"]
            for b, (proven, gap) in limited["proven / gap"].items()]
    return _table(["backend", "proven optimal", "mean objective below the best backend's"], rows)


def highs_route(record: dict) -> str:
    """benchmarks/bench_highs.py --route: ms per instance, ``milp`` on the cached arrays
    against a persistent HiGHS model that only rewrites its costs."""
    rows = [[f"`{name}.yaml`", f"{r['milp']:.2f}", f"{r['persistent']:.2f}", f"{r['milp'] / r['persistent']:.2f}x"]
            for name, r in record["results"]["route"].items()]
    return _table(["spec", "`milp` (ms)", "persistent HiGHS model (ms)", "ratio"], rows)


def highs_overhead(record: dict) -> str:
    """benchmarks/bench_highs.py --overhead: the adapter's CPU time over ``milp`` alone."""
    rows = [[f"`{name}`" if name.endswith(".yaml") else name, f"{ratio:.2f}x"]
            for name, ratio in record["results"]["overhead"].items()]
    return _table(["program", "adapter / `milp` alone (CPU time)"], rows)


_FAST_PATH_ROWS = {
    "`jax.jit`": ("jax.jit", ""),
    "`jax.jit`, `validate_args=False`": ("jax.jit", ", validate_args=False"),
    "torch, eager": ("torch", ""),
}


def fast_path_ratios(record: dict) -> str:
    """benchmarks/bench_fast_path.py: a k-subset step over its unavoidable work (one noise
    draw plus two bare top-k + scatter), the range over the sizes, per framework and noise."""
    steps = [r for r in record["results"]["bench"]["steps"] if r["vs_unavoidable"] is not None]
    rows = []
    for label, (framework, suffix) in _FAST_PATH_ROWS.items():
        cells = []
        for noise in ("Gumbel", "Sum-of-Gamma"):
            ratios = [r["vs_unavoidable"] for r in steps if r["framework"] == framework and r["noise"] == noise + suffix]
            cells.append(f"{min(ratios):.2f}-{max(ratios):.2f}x")
        rows.append([label, *cells])
    return _table(["", "Gumbel", "Sum-of-Gamma"], rows)


def fast_path_before(record: dict) -> str:
    """benchmarks/bench_fast_path.py, torch: the step drawing Sum-of-Gamma noise on the host
    with numpy's exact sampler (how the library drew before) over two bare top-k."""
    rows = [["(" + ", ".join(map(str, r["size"])) + ")", f"{r['step_ms']:.2f}", f"{r['two_topk_ms']:.2f}",
             f"{r['vs_two_topk']:.0f}x"]
            for r in record["results"]["bench"]["steps"] if r["noise"] == "Sum-of-Gamma, numpy exact draw"]
    return _table(["(B, n, k)", "step, numpy's exact draw (ms)", "two bare top-k (ms)", "ratio"], rows)


_POOL_BACKENDS = {"loky": "loky", "threading": "threads", "dask": "Dask"}


def pool_figures(record: dict) -> str:
    """benchmarks/bench_pool.py: task overhead per backend, Dask chunk sizing against the
    serial loop, the warm-up of a fresh loky pool, and Ray (when the run had it)."""
    bench = record["results"]["bench"]
    overheads = ", ".join(f"{_POOL_BACKENDS.get(r['backend'], r['backend'])} {r['ms_per_task']:.2f} ms"
                          for r in bench["overheads"])
    rows = [["task overhead, 64 empty tasks in one call, two workers", f"{overheads} a task"]]
    chunks = {r["chunk_size"]: r for r in bench["dask"]}
    if chunks:
        fixed = [c for c in chunks if c.isdigit()]
        auto, before = chunks["auto"], chunks["auto, loky-tuned (before)"]
        rows.append(["Dask, 64 grids 24x24 (networkx), against the serial loop",
                     f"`chunk_size=\"auto\"` ({auto['tasks']} tasks) {auto['ratio']:.2f}x; the former loky-tuned "
                     f"auto ({before['tasks']} tasks) {before['ratio']:.2f}x; fixed {' / '.join(fixed)}: "
                     + " / ".join(f"{chunks[c]['ratio']:.2f}x" for c in fixed)])
    cold, warm = ({r["case"]: r for r in bench["warm_up"]}[c] for c in ("no warm-up", "after warm_up()"))
    rows.append([f"warm-up, knapsack ILP (20 items, 2 constraints, {cold['backend']}), batch 32, fresh loky pool of 2",
                 f"without: first call {cold['first_s']:.2f} s, later {cold['later_s']:.2f} s; `warm_up()` "
                 f"{warm['warm_up_s']:.2f} s, then first call {warm['first_s']:.2f} s, later {warm['later_s']:.2f} s"])
    ray = {r["step"]: r for r in bench["ray"]}
    if ray:
        later, serial = ray["later call"], ray["serial loop (same rounds)"]
        killed = ray["call after its workers were killed"]
        rows.append(["Ray, local instance of 2 CPUs, the same grids, `chunk_size=16`",
                     f"`ray.init` {ray['ray.init (local instance)']['seconds']:.1f} s, first call "
                     f"{ray['first call (starts the workers)']['seconds']:.1f} s (starts Ray's workers), later calls "
                     f"{later['seconds']:.2f} s against the serial loop's {serial['seconds']:.2f} s, a call after its "
                     f"{killed['workers killed']} workers were killed {killed['seconds']:.1f} s"])
    return _table(["measured", "figure"], rows)


def _milliseconds(seconds: float) -> str:
    """Three significant digits, whole milliseconds from 100: ``0.01254`` -> ``12.5 ms``,
    ``0.375`` -> ``375 ms``, ``1.4567`` -> ``1457 ms``."""
    ms = 1e3 * seconds
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


def tsp_times(record: dict) -> str:
    """benchmarks/bench_tsp_portfolio.py, the TSP: ms per instance, median and largest, per
    backend (Held-Karp up to its largest size)."""
    bench = record["results"]["bench"]
    cases, largest = bench["cases"], bench["settings"]["held-karp max nodes"]
    rows = []
    for n in bench["settings"]["nodes"]:
        ortools = cases[f"TSP, {n} nodes ({n * (n - 1) // 2} edges)"]
        held_karp = cases.get(f"TSP, {n} nodes, held-karp")
        tail = ([_milliseconds(held_karp["median"]), _milliseconds(held_karp["max"])] if held_karp
                else [f"over {largest} nodes", ""])
        rows.append([f"{n} ({n * (n - 1) // 2})", _milliseconds(ortools["median"]), _milliseconds(ortools["max"]),
                     *tail])
    return _table(["nodes (edges)", "`ortools` median", "largest", "`held-karp` median", "largest"], rows)


def portfolio_times(record: dict) -> str:
    """benchmarks/bench_tsp_portfolio.py, the portfolio (SCIP): ms per instance."""
    bench = record["results"]["bench"]
    rows = [[m, _milliseconds(bench["cases"][f"portfolio, {m} assets"]["median"]),
             _milliseconds(bench["cases"][f"portfolio, {m} assets"]["max"])] for m in bench["settings"]["assets"]]
    return _table(["assets", "median", "largest"], rows)


def _mean_sd(values: list[float], digits: int = 2, percent: bool = False) -> tuple[float, str]:
    """The mean of ``values`` (one per seed) and ``"mean ± sd"`` (sample sd, ``n - 1``),
    with ``digits`` decimals (of a percentage when ``percent``): ``[1, 2, 3]`` ->
    ``(2.0, "2.00 ± 1.00")``."""
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    return mean, f"{scale * mean:.{digits}f}{suffix} ± {scale * sd:.{digits}f}{suffix}"


def _per_seed(values: list[float], digits: int = 2, percent: bool = False) -> str:
    """``[0.5, 0.25]`` -> ``0.50 / 0.25`` (``50% / 25%`` when ``percent``, 0 digits)."""
    return " / ".join(f"{100 * v:.{digits}f}%" if percent else f"{v:.{digits}f}" for v in values)


def _bold_best(cells: list[tuple[float, str]], lowest: bool) -> list[str]:
    """The cells' texts, the one(s) with the best mean in bold (equal to rounding error: tied)."""
    best = (min if lowest else max)(mean for mean, _ in cells)
    return [f"**{text}**" if math.isclose(mean, best, rel_tol=1e-9) else text for mean, text in cells]


def l2x_precision(record: dict) -> str:
    """examples/l2x_synthetic.py --seeds N: held-out subset precision per data set and
    method, mean ± sd over the seeds (the highest mean in bold), the predictor's mean
    accuracy in brackets; chance."""
    synthetic = record["results"]["metrics"]["synthetic"]
    methods = [m for m in next(iter(synthetic.values())) if isinstance(next(iter(synthetic.values()))[m], dict)]
    rows = []
    for name, entry in synthetic.items():
        cells = [_mean_sd(entry[m]["precision per seed"], 3) for m in methods]
        accuracy = [statistics.fmean(entry[m]["accuracy per seed"]) for m in methods]
        texts = [f"{text} ({a:.2f})" for text, a in zip(_bold_best(cells, lowest=False), accuracy)]
        rows.append([f"{name} ({entry['k']})", *texts, f"{entry['chance precision']:.2f}"])
    return _table(["data set (k)", *methods, "chance"], rows)


def l2x_precision_seeds(record: dict) -> str:
    """examples/l2x_synthetic.py --seeds N: each seed's held-out subset precision."""
    synthetic = record["results"]["metrics"]["synthetic"]
    first = next(iter(synthetic.values()))
    methods = [m for m in first if isinstance(first[m], dict)]
    seeds = ", ".join(map(str, range(len(first[methods[0]]["precision per seed"]))))
    rows = [[f"{name} ({entry['k']})", *(_per_seed(entry[m]["precision per seed"], 3) for m in methods)]
            for name, entry in synthetic.items()]
    return _table([f"data set (k); seeds {seeds}", *methods], rows)


_L2X_PIXELS = {"random": "{k} at random per image", "all": "all {pixels}"}


def l2x_digits(record: dict) -> str:
    """examples/l2x_synthetic.py --seeds N, digits: held-out accuracy with the pixels each
    method keeps (mean ± sd over the seeds, and per seed), and the distinct pixels used."""
    digits = record["results"]["metrics"]["digits"]
    rows = []
    for name, entry in digits.items():
        if not isinstance(entry, dict):
            continue
        label = _L2X_PIXELS.get(name, "{k} chosen per image by " + name).format(k=digits["k"], pixels=digits["pixels"])
        distinct = entry["distinct pixels selected per seed"] if name not in _L2X_PIXELS else None
        rows.append([label, _mean_sd(entry["accuracy per seed"], 3)[1], _per_seed(entry["accuracy per seed"], 3),
                     " / ".join(map(str, distinct)) if distinct else ""])
    return _table(["pixels the predictor sees", "held-out accuracy", "per seed", "distinct pixels used, per seed"], rows)


def vae_results(record: dict) -> str:
    """examples/discrete_vae.py --seeds ...: held-out figures per method, mean ± sd over the
    seeds (the lowest negative ELBO in bold), each seed's negative ELBO; the untrained model."""
    metrics = record["results"]["metrics"]
    runs = list(metrics["per seed"].values())
    methods = [m for m in runs[0] if isinstance(runs[0][m], dict)]
    elbo = [_mean_sd([r[m]["negative ELBO"] for r in runs]) for m in methods]
    rows = []
    for method, cell in zip(methods, _bold_best(elbo, lowest=True)):
        label = f"{method} (lambda {metrics['lambda']:g})" if method == "I-MLE" else method
        rows.append([label, cell, _per_seed([r[method]["negative ELBO"] for r in runs]),
                     _mean_sd([r[method]["reconstruction"] for r in runs])[1],
                     _mean_sd([r[method]["KL"] for r in runs])[1],
                     _mean_sd([r[method]["history"]["test"][1] for r in runs])[1],
                     _mean_sd([r[method]["seconds"] for r in runs], 0)[1]])
    untrained = [r[methods[0]]["history"]["test"][0] for r in runs]
    rows.append(["untrained model", _mean_sd(untrained)[1], _per_seed(untrained), "", "", "", ""])
    header = ["method", "held-out -ELBO", "per seed", "reconstruction", "KL (20 variables)", "after epoch 1", "seconds"]
    return _table(header, rows)


def vae_lambda(record: dict) -> str:
    """examples/discrete_vae.py --epochs E --lambda L --seeds ...: I-MLE's held-out negative
    ELBO per lambda (mean ± sd over the seeds, the lowest in bold, and per seed), then the
    other methods of the runs that have them."""
    runs = {lam: list(r["per seed"].values()) for lam, r in record["results"].items()}
    order = sorted(runs, key=float)
    cells = [_mean_sd([seed["I-MLE"]["negative ELBO"] for seed in runs[lam]]) for lam in order]
    rows = [[f"I-MLE, lambda {lam}", text, _per_seed([seed["I-MLE"]["negative ELBO"] for seed in runs[lam]])]
            for lam, text in zip(order, _bold_best(cells, lowest=True))]
    for lam in order:
        for method in runs[lam][0]:
            if isinstance(runs[lam][0][method], dict) and method != "I-MLE":
                values = [seed[method]["negative ELBO"] for seed in runs[lam]]
                rows.append([method, _mean_sd(values)[1], _per_seed(values)])
    epochs = {r["epochs"] for r in record["results"].values()}
    return _table(["method", f"held-out -ELBO after {'/'.join(map(str, sorted(epochs)))} epochs", "per seed"], rows)


_MATCHING_ROWS = {
    "I-MLE through the matching": "I-MLE through the matching layer (Hamming loss)",
    "baseline: cross-entropy, argmax per image": "baseline: cross-entropy per image, argmax per image",
    "baseline: cross-entropy, matched at test time": "baseline: cross-entropy per image, matched at test time",
}


def matching_results(record: dict) -> str:
    """examples/learning_to_match.py --seeds ...: held-out shares per method, mean ± sd over
    the seeds (the best exact share in bold), each seed's exact share; chance."""
    metrics = record["results"]["metrics"]
    runs = list(metrics["per seed"].values())
    exact = [_mean_sd([r[m]["exact permutations"] for r in runs], 1, percent=True) for m in _MATCHING_ROWS]
    rows = []
    for (method, label), cell in zip(_MATCHING_ROWS.items(), _bold_best(exact, lowest=False)):
        rows.append([label, cell, _per_seed([r[method]["exact permutations"] for r in runs], 1, percent=True),
                     _mean_sd([r[method]["images placed right"] for r in runs], 1, percent=True)[1],
                     _mean_sd([r[method]["invalid assignments"] for r in runs], 1, percent=True)[1]])
    chance = metrics["chance"]
    rows.append(["chance (a random permutation)", f"{chance['exact permutations']:.1%}", "",
                 f"{chance['images placed right']:.1%}", "0%"])
    header = [f"held-out instances ({metrics['n_test']} per seed, unseen images)", "exact permutations", "per seed",
              "images placed right", "invalid assignments"]
    return _table(header, rows)


def rota_models(record: dict) -> str:
    """examples/rota_weekly.py: the held-out weeks' scores of each model."""
    given = "shifts given to the planner's worker"
    rows = [[name, f"{r[given]:.1%}", f"{r['weeks reproduced']:.1%}", r["assignments to unavailable workers"]]
            for name, r in record["results"]["models"].items()]
    return _table(["model", given, "weeks reproduced exactly", "assignments to unavailable workers"], rows)

def _three_digits(ms: float) -> str:
    """Three significant digits, whole numbers from 100: ``0.4123`` -> ``0.412``,
    ``19.04`` -> ``19.0``, ``99.98`` -> ``100``, ``203.4`` -> ``203``, ``1234.5`` -> ``1234``."""
    return f"{ms:.0f}" if float(f"{ms:.3g}") >= 100 else f"{ms:#.3g}"


def _knapsack_size(items: int, rows: int, word: str = "constraint") -> str:
    return f"{items} items, {rows} {word}{'' if rows == 1 else 's'}"


def ilp_models(record: dict) -> str:
    """benchmarks/bench_ilp_models.py: ms per instance, ``ortools`` and ``scip``, the oracle's
    cached model against the model rebuilt per instance, and SCIP's cached time over CP-SAT's."""
    rows = record["results"]["bench"]["rows"]
    sizes = list(dict.fromkeys((r["items"], r["constraints"]) for r in rows))
    table = []
    for items, constraints in sizes:
        by = {r["backend"]: r for r in rows if (r["items"], r["constraints"]) == (items, constraints)}
        ortools, scip = by["ortools"], by["scip"]
        table.append([_knapsack_size(items, constraints), _three_digits(ortools["cached_ms"]),
                      _three_digits(ortools["rebuilt_ms"]), _three_digits(scip["cached_ms"]),
                      _three_digits(scip["rebuilt_ms"]), f"{scip['cached_ms'] / ortools['cached_ms']:.2f}x"])
    header = ["knapsack", "`ortools` cached", "`ortools` rebuilt per instance", "`scip` cached",
              "`scip` rebuilt per instance", "`scip` cached / `ortools` cached"]
    return _table(header, table, "---:")


def batched_parameters(record: dict) -> str:
    """benchmarks/bench_batched_parameters.py: ms per instance, the plain program against the
    batched one given its capacity (and their ratio), 64 capacities, and a plain program
    built per capacity; and whether the batched program returned the plain one's states."""
    bench = record["results"]["bench"]
    rows = [[f"{_knapsack_size(r['items'], r['rows'], 'row')}, `{r['backend']}`", _three_digits(r["plain ms"]),
             f"{_three_digits(r['same ms'])} ({r['same ms'] / r['plain ms']:.2f}x)", _three_digits(r["differing ms"]),
             _three_digits(r["rebuilt ms"]), _yes(r["same states"])] for r in bench["rows"]]
    batch = bench["settings"]["batch"]
    header = ["knapsack, backend", "plain, fixed capacity", "batched, the same capacity (ratio)",
              f"batched, {batch} capacities", "plain program built per capacity", "same capacity, same states"]
    return _table(header, rows)


_SWEEP_PROGRAMS = {"knapsack": "knapsack 24x1", "assignment": "assignment 8x16"}


def ilp_settings_programs(record: dict) -> str:
    """benchmarks/sweep_ilp_settings.py, the two programs: data sizes, steps, the true
    values' scale (seed 0), the untrained model's regret, and the default setting's ms per
    step over its solves per step (an upper bound on one solve: the step's other work is in it)."""
    sweep = record["results"]["sweep"]
    rows = []
    for name, program in sweep["programs"].items():
        default = next(r for r in sweep["sweep"] if r["case"] == name)  # the first setting is the default
        rows.append([name, f"{program['train']} / {program['test']}",
                     f"{program['batch']}, {program['epochs']} ({default['steps']:.0f} steps)",
                     f"{program['true values mean (seed 0)']:.1f} ± {program['true values sd (seed 0)']:.1f}",
                     f"{default['untrained_regret']:.3f}",
                     f"{default['ms_per_step'] / default['solves_per_step']:.2f}"])
    header = ["program", "training / held-out instances", "batch, epochs", "true values, mean ± sd (seed 0)",
              "untrained model's regret", "ms per solve (default setting's step)"]
    return _table(header, rows)


def _ilp_settings_sweep(record: dict, program: str) -> str:
    """benchmarks/sweep_ilp_settings.py, one program: per setting, the held-out regret (mean
    ± sd over the seeds), its difference from the default's paired by seed, solves and ms
    per step, and theta's scale."""
    rows = []
    for r in record["results"]["sweep"]["sweep"]:
        if r["case"] != _SWEEP_PROGRAMS[program]:
            continue
        paired = ("0" if r["vs_default"] == 0 and r["vs_default_sd"] == 0
                  else f"{r['vs_default']:+.4f} ± {r['vs_default_sd']:.4f}")
        rows.append([r["setting"], f"{r['regret']:.4f} ± {r['regret_sd']:.4f}", paired,
                     f"{r['solves_per_step']:.0f}", f"{r['ms_per_step']:.1f}", f"{r['theta_sd']:.2f}"])
    header = ["setting", "held-out normalised regret", "minus the default's, paired by seed", "solves per step",
              "ms per step", "theta sd"]
    return _table(header, rows)


def ilp_settings_knapsack(record: dict) -> str:
    return _ilp_settings_sweep(record, "knapsack")


def ilp_settings_assignment(record: dict) -> str:
    return _ilp_settings_sweep(record, "assignment")


def ilp_settings_pool(record: dict) -> str:
    """benchmarks/sweep_ilp_settings.py, the pool: ms per training step with ``n_jobs=1`` and
    ``n_jobs=2`` (medians over the repeats), one oracle call's solving (half the serial
    step: a step makes two calls; an upper bound) and the ratio's median and range."""
    rows = [[r["case"], r["batch"], f"~{_three_digits(r['ms_1'] / 2)} ms", f"{r['ms_1']:.1f}", f"{r['ms_2']:.1f}",
             f"{r['speedup']:.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f})"]
            for r in record["results"]["sweep"]["pool"]]
    header = ["program", "batch", "one call's solving, n_jobs=1", "ms per step, n_jobs=1", "n_jobs=2",
              "n_jobs=1 / n_jobs=2, median (range)"]
    return _table(header, rows, "---:")


_WARCRAFT_NAMES = {"imle": "I-MLE, Sum-of-Gamma (`imle`)", "blackbox": "blackbox differentiation (`blackbox`)",
                   "ste": "straight-through (`ste`)", "random": "random costs"}
# The paper's 12x12 Warcraft cost-accuracy (Niepert, Minervini, Franceschi, NeurIPS 2021,
# real maps, 10,000 training maps x 50 epochs): citations, not measurements of ours.
_WARCRAFT_PAPER = {"imle": "97.2%", "blackbox": "95.2%", "ste": "–", "random": "–"}  # STE: not among the cited figures


def _warcraft_budget(settings: dict) -> str:
    return f"{settings['maps']} maps, {settings['epochs']} epochs, seed {settings['seed']}"


def _lambdas(lam: str, batch_size: int) -> list[str]:
    """A grid key (the demo's lambda, loss summed over the batch) -> that lambda and the
    paper's (loss averaged over the batch: ``batch_size`` times larger), 3 and 4 significant
    digits (0.143 / 10, 20 / 1400)."""
    return [f"{float(lam):.3g}", f"{float(lam) * batch_size:.4g}"]


def warcraft_lambda(record: dict) -> str:
    """benchmarks/tune_warcraft.py: validation cost-accuracy and exact match per method and
    lambda (each method's chosen lambda in bold), and the last epoch's training loss."""
    tuning = record["results"]["tuning"]
    settings, grid = tuning["settings"], tuning["grid"]
    batch = settings["config"]["batch_size"]
    rows = []
    for method, by_lambda in grid.items():
        for lam, r in sorted(by_lambda.items(), key=lambda item: float(item[0])):
            chosen = float(lam) == tuning["chosen"][method]
            cells = [*_lambdas(lam, batch), f"{r['cost_accuracy']:.1%}"]
            rows.append([_WARCRAFT_NAMES[method], *(f"**{c}**" if chosen else c for c in cells),
                         f"{r['exact_match']:.1%}", f"{r['mean_cost_ratio']:.4f}", f"{r['loss'][-1]:.2f}"])
    header = ["method", "lambda (ours: loss summed over the batch)", f"the same in the paper's units (x{batch})",
              f"validation cost-accuracy ({settings['validation_maps']} maps)", "exact match", "mean cost / optimum",
              "training loss, last epoch"]
    return _table(header, rows)


def warcraft_curves(record: dict) -> str:
    """benchmarks/tune_warcraft.py: the per-epoch training loss (mean Hamming distance to the
    gold path, on the training maps) of every grid point."""
    grid = record["results"]["tuning"]["grid"]
    epochs = len(next(iter(next(iter(grid.values())).values()))["loss"])
    batch = record["results"]["tuning"]["settings"]["config"]["batch_size"]
    rows = [[_WARCRAFT_NAMES[method], " / ".join(_lambdas(lam, batch)), *(f"{x:.2f}" for x in r["loss"])]
            for method, by_lambda in grid.items()
            for lam, r in sorted(by_lambda.items(), key=lambda item: float(item[0]))]
    return _table(["method", "lambda (ours / paper's units)", *(f"epoch {e + 1}" for e in range(epochs))], rows)


def warcraft_paper(record: dict) -> str:
    """benchmarks/tune_warcraft.py --held-out: each tuned method's held-out cost-accuracy
    at the reduced budget, beside the paper's figure (a citation)."""
    tuning = record["results"]["tuning"]
    settings = tuning["settings"]
    rows = []
    for method, r in tuning["held_out"].items():
        batch = settings["config"]["batch_size"]
        lam = (" / ".join(_lambdas(str(tuning["chosen"][method]), batch)) + " (tuned on validation maps)"
               if method in tuning["chosen"] else "–")
        rows.append([_WARCRAFT_NAMES[method], lam, f"{r['cost_accuracy']:.1%}", f"{r['exact_match']:.1%}",
                     _WARCRAFT_PAPER[method]])
    ours = f"ours: held-out cost-accuracy ({settings['held_out_maps']} maps; {_warcraft_budget(settings)})"
    header = ["method", "lambda (ours / paper's units)", ours, "ours: exact match", "paper: cost-accuracy (real maps)"]
    return _table(header, rows)


def warcraft_temperature(record: dict) -> str:
    """benchmarks/tune_warcraft.py --temperatures: I-MLE's validation figures per noise
    temperature, at one lambda."""
    result = record["results"]["temperature"]
    settings = result["settings"]
    lam = " / ".join(_lambdas(repr(settings["lambda"]), settings["batch_size"]))
    rows = [[f"{float(tau):g}", lam, f"{r['cost_accuracy']:.1%}", f"{r['exact_match']:.1%}",
             f"{r['mean_cost_ratio']:.4f}"]
            for tau, r in sorted(result["temperature"].items(), key=lambda item: float(item[0]))]
    header = ["I-MLE noise temperature", "lambda (ours / paper's units)",
              f"validation cost-accuracy ({settings['validation_maps']} maps)", "exact match", "mean cost / optimum"]
    return _table(header, rows)


# (record, table) -> the renderer of that table
TABLES: dict[tuple[str, str], Callable[[dict], str]] = {
    ("pyepo-example", "seeds"): pyepo_seeds,
    ("distribution", "sampling"): distribution_sampling,
    ("distribution", "training"): distribution_training,
    ("padded-text", "pipelines"): padded_pipelines,
    ("toy-top-k", "momentum"): toy_momentum,
    ("toy-top-k", "sgd"): toy_sgd,
    ("spec-limits", "rows"): spec_limits,
    ("bench-pyepo-problems", "methods"): bench_pyepo_methods,
    ("study-imle-gap", "variants"): study_imle_gap,
    ("instances", "ilp"): instances_ilp,
    ("instances", "ksubset"): instances_ksubset,
    ("highs", "programs"): highs_programs,
    ("highs", "incumbents"): highs_incumbents,
    ("highs", "route"): highs_route,
    ("highs", "overhead"): highs_overhead,
    ("fast-path", "ratios"): fast_path_ratios,
    ("fast-path", "before"): fast_path_before,
    ("pool", "figures"): pool_figures,
    ("tsp-portfolio", "tsp"): tsp_times,
    ("tsp-portfolio", "portfolio"): portfolio_times,
    ("l2x", "precision"): l2x_precision,
    ("l2x", "precision-seeds"): l2x_precision_seeds,
    ("l2x", "digits"): l2x_digits,
    ("discrete-vae", "results"): vae_results,
    ("discrete-vae-lambda", "lambda"): vae_lambda,
    ("matching", "results"): matching_results,
    ("rota-weekly", "models"): rota_models,
    ("ilp-models", "cached"): ilp_models,
    ("batched-parameters", "knapsacks"): batched_parameters,
    ("ilp-settings", "programs"): ilp_settings_programs,
    ("ilp-settings", "knapsack"): ilp_settings_knapsack,
    ("ilp-settings", "assignment"): ilp_settings_assignment,
    ("ilp-settings", "pool"): ilp_settings_pool,
    ("warcraft-tuning", "lambda"): warcraft_lambda,
    ("warcraft-tuning", "curves"): warcraft_curves,
    ("warcraft-tuning", "paper"): warcraft_paper,
    ("warcraft-temperature", "temperature"): warcraft_temperature,
}


def seed_list(seeds: list[int]) -> str:
    """``[0]`` -> ``seed 0``; ``[0, 1, 2, 5]`` -> ``seeds 0-2, 5`` (runs of consecutive seeds);
    ``[]`` -> ``no seed`` (a run that draws nothing at random)."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    words = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    return ("seed " if len(seeds) == 1 else "seeds " if seeds else "no seed") + ", ".join(words)


def provenance(record: dict, link: str) -> str:
    """One line naming the run a table comes from: commands, seeds, date, machine, record."""
    commands = "; ".join(f"`{c}`" for c in record["commands"])
    machine = record["machine"]
    wall = record["wall seconds"]
    took = f"{wall:.0f} s in all" if wall is not None else "its wall time not measured"
    return (f"*Generated at build time from [a recorded run]({link}): {commands} ({seed_list(record['seeds'])}), "
            f"{record['date']}, {machine['cpus']} CPUs (load average before {machine['load average before']}), "
            f"commit {record['commit']}, {took}.*")


def render(marker: re.Match, page_uri: str, docs_dir: Path) -> str:
    name, table = marker["record"], marker["table"]
    if (name, table) not in TABLES:
        raise ValueError(f"{page_uri}: no results table {table!r} of {name!r} (docs/results/hook.py)")
    record = json.loads((docs_dir / "results" / f"{name}.json").read_text("utf-8"))
    link = posixpath.relpath(f"results/{name}.json", posixpath.dirname(page_uri) or ".")
    return f"{provenance(record, link)}\n\n{TABLES[name, table](record)}"


def on_page_markdown(markdown, page, config, files):
    docs_dir = Path(config.docs_dir)
    return _MARKER.sub(lambda m: render(m, page.file.src_uri, docs_dir), markdown)
