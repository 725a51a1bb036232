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
import posixpath
import re
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
