"""What ``imle-solvers validate`` costs on the largest specs the default limits admit.

The limits bound what a spec may expand to (rows, nonzeros, evaluation steps) and what
parsing may cost: ``max_text_bytes`` (the file), ``max_document_nodes`` (YAML entries),
``max_tokens`` (the expressions' tokens) and ``max_seconds`` (a wall-clock backstop).
Each case below is a spec at one of them (just within it), validated in a fresh
interpreter, whose wall time and peak resident memory (``ru_maxrss``) are reported:

- **tokens**: one constraint, a flat sum of ``x[i]`` terms written out, at ``max_tokens``;
- **bytes**: a spec at ``max_text_bytes`` whose expressions hold few tokens (long names);
- **nodes**: a constant array of ``max_document_nodes`` YAML entries;
- **rows**: ``max_rows`` constraint rows from one ``for`` (expansion, for comparison).

A case that passes a limit is refused instead (and reported so): the figures are those
of the worst spec that is accepted.

    python benchmarks/bench_spec_limits.py [--out rows.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from imle_solvers.spec import SpecLimits

LIMITS = SpecLimits()
HEADER = "objective: {sense: max, theta: x}\n"

# validate one spec in this interpreter; print wall seconds and peak RSS (KiB on Linux)
_RUN = """
import json, resource, sys, time
from imle_solvers.cli import main
started = time.perf_counter()
try:
    main(["validate", sys.argv[1]], standalone_mode=False)
    ok = True
except SystemExit as stop:
    ok = stop.code == 0
print(json.dumps({"seconds": time.perf_counter() - started, "ok": ok,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)
"""


def tokens_spec() -> str:
    """A flat sum at ``max_tokens``: ``x[i]`` and ``+`` are 5 tokens a term, the relation 2."""
    terms = (LIMITS.max_tokens - 2) // 5
    body = " + ".join(f"x[{i}]" for i in range(terms))
    return f"sets: {{I: {terms}}}\nvariables:\n  x: {{over: [I]}}\nconstraints:\n  - \"{body} <= 1\"\n" + HEADER


def bytes_spec() -> str:
    """``max_text_bytes`` of spec whose expression holds few, long tokens: a constant with a
    name of a few hundred characters, referenced over and over."""
    name = "c" * 200
    head = f"constants: {{{name}: 1}}\nsets: {{I: 1}}\nvariables:\n  x: {{over: [I]}}\n" + HEADER
    room = LIMITS.max_text_bytes - len(head) - len("constraints:\n  - \"x[0] <= 1\"\n") - 16
    count = room // (len(name) + 3)
    body = " + ".join([name] * count)
    return head + f"constraints:\n  - \"x[0] + {body} <= {count + 1}\"\n"


def nodes_spec() -> str:
    """A constant array of ``max_document_nodes`` entries (less the spec's own few)."""
    entries = LIMITS.max_document_nodes - 32
    return (f"constants:\n  c: [{', '.join(['1'] * entries)}]\nsets: {{I: 1}}\nvariables:\n  x: {{over: [I]}}\n"
            "constraints:\n  - \"x[0] <= c[0]\"\n" + HEADER)


def rows_spec() -> str:
    """``max_rows`` rows of one variable each, from one ``for``."""
    rows = LIMITS.max_rows
    return (f"sets: {{I: {rows}}}\nvariables:\n  x: {{over: [I]}}\n"
            "constraints:\n  - {for: i in I, expr: \"x[i] <= 1\"}\n" + HEADER)


CASES: dict[str, Callable[[], str]] = {"tokens": tokens_spec, "bytes": bytes_spec, "nodes": nodes_spec,
                                        "rows": rows_spec}


def measure(text: str) -> dict:
    """Validate ``text`` in a fresh interpreter; its wall seconds, peak RSS and verdict."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(text)
        done = subprocess.run([sys.executable, "-c", _RUN, str(path)], capture_output=True, text=True)
        return json.loads(done.stderr.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure every case, print the markdown table, return its rows (``--out``: as JSON too)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    arguments = parser.parse_args(argv)
    baseline = measure("sets: {I: 1}\nvariables:\n  x: {over: [I]}\n" + HEADER)
    print("| spec | size (bytes) | accepted | validate (s) | peak RSS (MB) | RSS over an empty spec (MB) |")
    print("|---|---:|:---:|---:|---:|---:|")
    rows = []
    for name, build in CASES.items():
        text = build()
        result = measure(text)
        rss, extra = result["maxrss_kib"] / 1024, (result["maxrss_kib"] - baseline["maxrss_kib"]) / 1024
        rows.append({"spec": name, "bytes": len(text.encode()), "accepted": result["ok"],
                     "seconds": result["seconds"], "peak rss mb": rss, "rss over an empty spec mb": extra})
        print(f"| {name} | {len(text.encode()):,} | {'yes' if result['ok'] else 'refused'} | "
              f"{result['seconds']:.2f} | {rss:.0f} | {extra:.0f} |")
    if arguments.out is not None:
        arguments.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
