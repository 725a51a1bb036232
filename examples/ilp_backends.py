"""One ILP, three backends: CP-SAT (``"ortools"``), SCIP (``"scip"``) and HiGHS (``"highs"``).

Solves a batch of weekly rotas (``examples/specs/rota_weekly.yaml``: a batched availability
table per week, some weeks infeasible) with each backend through ``MAPOracle`` and checks
that the three agree: the same weeks fail (``on_failure="skip"``), the others get the same
optimal objective, and every state respects its week's availability. Prints a line per
backend and the verdict.

    python examples/ilp_backends.py [--weeks 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import imle_solvers as ims
from imle_solvers.failures import Status
from imle_solvers.spec import load_yaml

SPEC = Path(__file__).parent / "specs" / "rota_weekly.yaml"
BACKENDS = ("ortools", "scip", "highs")


def main(weeks: int = 16, seed: int = 0) -> dict:
    """Solve ``weeks`` instances with every backend; returns what each gave and whether they agree."""
    rota = load_yaml(SPEC)
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(weeks, *rota.shape))  # how much each worker wants each shift
    available = (rng.random((weeks, *rota.shape)) < 0.75).astype(np.float64)
    results = {}
    for backend in BACKENDS:
        oracle = ims.MAPOracle(rota, backend=backend, on_failure="skip")
        start = time.perf_counter()
        z, status = oracle.solve(theta, available=available)
        seconds = time.perf_counter() - start
        objective = (theta * z).sum(axis=(1, 2))
        results[backend] = {"z": z, "status": status, "objective": objective, "ms per week": 1e3 * seconds / weeks}
        solved = status == Status.OK
        print(f"{backend:8s} {results[backend]['ms per week']:7.2f} ms per week, {int(solved.sum())} of {weeks} "
              f"solved, objectives {np.round(objective[solved][:4], 3).tolist()} ...")
    reference = results["highs"]
    solved = reference["status"] == Status.OK
    agree = all(np.array_equal(r["status"], reference["status"]) and
                np.allclose(r["objective"], reference["objective"], atol=1e-6) for r in results.values())
    for week in np.flatnonzero(solved):  # a state works only where its week's table allows
        for r in results.values():
            assert not rota.with_values({"available": available[week]}).violations(r["z"][week])
    print("the three backends agree" if agree else "the backends DISAGREE")
    return {"agree": agree, "solved": int(solved.sum()), "weeks": weeks,
            "ms per week": {b: r["ms per week"] for b, r in results.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=16)
    main(parser.parse_args().weeks)
