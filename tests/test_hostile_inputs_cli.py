"""Issue 19, the command line's part: it never destroys data, and every file it reads is
bounded (pipes and devices refused without blocking, .npz members checked before loading)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import imle_solvers._array_files as array_files
import imle_solvers.oracle
from imle_solvers._files import FileRefused, read_bounded
from imle_solvers.cli import main
from imle_solvers.spec import SpecError, SpecLimits, load_yaml

ROOT = Path(__file__).resolve().parents[1]
KNAPSACK = ROOT / "examples" / "specs" / "knapsack.yaml"  # theta shape (6,)
ROTA = ROOT / "examples" / "specs" / "rota_weekly.yaml"  # batched parameter 'available' (5, 14)
SCORES = [1, 2, 3, 4, 5, 6]
ANSWER = {"z": [0, 0, 0, 1, 1, 1], "objective": 15.0, "status": "ok", "reason": ""}  # docs/cli.md, "Outputs"

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def theta(tmp_path):
    path = tmp_path / "theta.json"
    path.write_text(json.dumps(SCORES))
    return path


@pytest.fixture
def no_solving(monkeypatch):
    """Fail the test if anything is solved: refusals come first."""
    def solve(*args, **kwargs):
        raise AssertionError("solved before refusing")
    monkeypatch.setattr(imle_solvers.oracle.MAPOracle, "__call__", solve)


# -- --out never destroys data ------------------------------------------------------------

def test_out_may_not_be_the_scores_file_even_with_force(theta, no_solving):
    for flags in ((), ("--force",)):
        result = run("solve", KNAPSACK, "--theta", theta, "--out", theta, *flags)
        assert result.exit_code == 2
        assert "is also an input" in result.output and "refused even with --force" in result.output
    assert json.loads(theta.read_text()) == SCORES


def test_out_may_not_be_any_input_under_another_name(tmp_path, theta, no_solving):
    link = tmp_path / "link.json"
    link.symlink_to(theta)
    dotted = tmp_path / "sub" / ".." / "theta.json"
    (tmp_path / "sub").mkdir()
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps([3, 4, 5, 2, 6, 1]))
    data = tmp_path / "data.json"
    data.write_text("{}")
    for out, extra in ((link, ()), (dotted, ()), (weights, ("-p", f"weights=@{weights}")), (data, ("--data", data))):
        result = run("solve", KNAPSACK, "--theta", theta, *extra, "--out", out, "--force")
        assert result.exit_code == 2 and "is also an input" in result.output, (out, result.output)
    assert json.loads(weights.read_text()) == [3, 4, 5, 2, 6, 1] and data.read_text() == "{}"


def test_out_refuses_an_existing_file_unless_forced(tmp_path, theta):
    out = tmp_path / "result.json"
    out.write_text("precious")
    refused = run("solve", KNAPSACK, "--theta", theta, "--out", out)
    assert refused.exit_code == 2 and "exists; pass --force to overwrite it" in refused.output
    assert out.read_text() == "precious"
    forced = run("solve", KNAPSACK, "--theta", theta, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert json.loads(out.read_text()) == ANSWER
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # written in place, atomically


def test_out_creates_missing_folders(tmp_path, theta):
    out = tmp_path / "a" / "b" / "result.npz"
    result = run("solve", KNAPSACK, "--theta", theta, "--out", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert saved["z"].tolist() == ANSWER["z"] and float(saved["objective"]) == ANSWER["objective"]


def test_out_that_cannot_be_written_is_refused_before_solving(tmp_path, theta, no_solving):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out, reason in ((blocker / "sub" / "r.json", "is a file"), (tmp_path, "is a directory"),
                        (tmp_path / "r.txt", "expected a .json or .npz file")):
        result = run("solve", KNAPSACK, "--theta", theta, "--out", out)
        assert result.exit_code == 2 and reason in result.output, result.output
    assert not (blocker / "sub").exists()


def test_demo_refuses_its_earlier_outputs_before_training(tmp_path, monkeypatch):
    import imle_solvers.demo

    calls = []
    monkeypatch.setattr(imle_solvers.demo, "run_demo", lambda **kwargs: calls.append(kwargs))
    (tmp_path / "metrics.json").write_text("{}")
    refused = run("demo", "--out", tmp_path)
    assert refused.exit_code == 2 and "metrics.json: --out exists; pass --force" in refused.output and not calls
    assert run("demo", "--out", tmp_path, "--force").exit_code == 0 and len(calls) == 1
    assert run("demo", "--out", tmp_path / "metrics.json").exit_code == 2 and len(calls) == 1


# -- bounded reading -------------------------------------------------------------------

def test_validate_refuses_a_device_without_reading_it():
    result = run("validate", "/dev/zero")
    assert result.exit_code == 1
    assert "error: /dev/zero: the spec file is a character device; only a regular file is read" in result.output


@posix_only
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    pipe = tmp_path / "spec.yaml"
    os.mkfifo(pipe)
    # in a child with a timeout: a regression would hang, not fail
    code = ("from imle_solvers.cli import main; main(['validate', %r])" % str(pipe))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "is a named pipe (FIFO); only a regular file is read" in done.stderr
    npy = tmp_path / "theta.npy"
    os.mkfifo(npy)
    result = run("solve", KNAPSACK, "--theta", npy)
    assert result.exit_code == 2 and "is a named pipe" in result.output


def test_read_bounded_reads_one_byte_past_the_bound_at_most(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(FileRefused, match="is 100 bytes; the limit is 99"):
        read_bounded(path, 99)
    with pytest.raises(FileRefused, match="is more than 10 bytes"):  # fstat said 0, as /dev/zero's does
        _read_growing(tmp_path, 10)
    with pytest.raises(FileRefused, match="is a character device"):
        read_bounded("/dev/zero", 10)
    with pytest.raises(SpecError, match=r"the spec file is 100 bytes; the limit is 99 \(max_text_bytes\)"):
        load_yaml(path, limits=SpecLimits(max_text_bytes=99))


def _read_growing(tmp_path: Path, bound: int) -> bytes:
    """A file that grows between its fstat and its read is still bounded."""
    path = tmp_path / "growing"
    path.write_bytes(b"")
    real = os.fstat

    def fstat_then_grow(fd):
        info = real(fd)
        path.write_bytes(b"y" * (bound * 5))
        return info

    os.fstat = fstat_then_grow
    try:
        return read_bounded(path, bound)
    finally:
        os.fstat = real


# -- .npz members are checked before they are loaded ---------------------------------------------

def _npz(path: Path, **members: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as stream:
                np.lib.format.write_array(stream, array)


def _rota_theta(tmp_path: Path) -> Path:
    theta = tmp_path / "theta.npy"
    np.save(theta, np.ones((1, 5, 14)))
    return theta


def test_an_unknown_npz_member_is_refused_unloaded(tmp_path, monkeypatch):
    data = tmp_path / "data.npz"
    _npz(data, available=np.ones((1, 5, 14)), junk=np.zeros(20_000_000))  # 160 MB of zeros, ~160 KB on disk
    assert data.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        result = run("solve", ROTA, "--theta", _rota_theta(tmp_path), "--data", data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2
    assert "'junk' is not a batched parameter of the spec (it has: available)" in result.output
    assert peak < 50_000_000  # the member was never decompressed


def test_an_npz_member_past_the_bound_is_refused_by_its_headers(tmp_path, monkeypatch):
    data = tmp_path / "data.npz"
    _npz(data, available=np.zeros((1000, 5, 14)))  # 560 KB decompressed, a few KB on disk
    monkeypatch.setattr(array_files, "MAX_ARRAY_BYTES", 100_000)
    result = run("solve", ROTA, "--theta", _rota_theta(tmp_path), "--data", data)
    assert result.exit_code == 2 and "member 'available' decompresses to 560,128 bytes; the limit is 100,000" \
        in result.output


def test_an_npy_header_declaring_more_than_is_stored_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (500_000_000,)})
    path = tmp_path / "theta.npy"
    path.write_bytes(buffer.getvalue() + b"\0" * 64)  # a 4 GB array, 64 bytes of it
    with pytest.raises(ValueError, match=r"the header declares shape \(500000000,\) \(4,000,000,000 bytes\)"):
        array_files.load_array(path, max_bytes=10**10)
    with pytest.raises(FileRefused, match="the array of shape .* is 4,000,000,000 bytes; the limit is 1,000"):
        array_files.load_array(path, max_bytes=1_000)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="dtype object are not read"):
        array_files.load_array(pickled)


def test_npz_and_npy_round_trip(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, available=np.arange(70.0).reshape(1, 5, 14))
    loaded = array_files.load_arrays(data, ["available"])
    np.testing.assert_array_equal(loaded["available"], np.arange(70.0).reshape(1, 5, 14))
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(array_files.load_array(fortran), np.arange(6.0).reshape(2, 3))


def test_deep_json_scores_are_a_usage_error(tmp_path):
    deep = tmp_path / "theta.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = run("solve", KNAPSACK, "--theta", deep)
    assert result.exit_code == 2 and "nested too deeply" in result.output
    inline = run("validate", KNAPSACK, "-p", "weights=" + "[" * 100_000 + "]" * 100_000)
    assert inline.exit_code == 2 and "nested too deeply" in inline.output
