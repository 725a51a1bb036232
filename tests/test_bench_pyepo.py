"""benchmarks/bench_pyepo.py: skipped cleanly without PyEPO; with it (the ``compare``
extra, or ``pip install --target DIR pyepo`` and ``PYEPO_PATH=DIR``), the deterministic
methods give PyEPO's regret exactly."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pyepo", BENCHMARKS / "bench_pyepo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_pyepo_the_benchmark_says_so_and_how_to_install_it(bench, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "import_pyepo", lambda path: None)
    assert bench.main(["--pyepo-path", str(tmp_path), "--epochs", "1"]) is None
    out = capsys.readouterr().out
    assert "bench_pyepo skipped" in out and "pip install" in out


def test_bad_arguments_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--methods", "NOT-A-METHOD"])


PYEPO = importlib.util.find_spec("pyepo") is not None or bool(os.environ.get("PYEPO_PATH"))


@pytest.mark.skipif(not PYEPO, reason="PyEPO is a test- and benchmark-only dependency (the compare extra)")
def test_deterministic_methods_match_pyepo_exactly(bench, capsys):
    path = ["--pyepo-path", os.environ["PYEPO_PATH"]] if os.environ.get("PYEPO_PATH") else []
    rows = bench.main(["--epochs", "1", "--seeds", "1", "--methods", "SPO+", "NID", "PG", *path])
    assert rows is not None and [r["method"] for r in rows] == ["SPO+", "NID", "PG"]
    for row in rows:
        assert row["ours_regret"] == pytest.approx(row["PyEPO_regret"], abs=1e-12)
        assert row["ours_ms"] > 0 and row["PyEPO_ms"] > 0
    assert "| SPO+ |" in capsys.readouterr().out
