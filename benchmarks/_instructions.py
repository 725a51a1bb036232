"""Instructions per call, counted by valgrind's callgrind: a measure of CPU work that other
jobs on the machine do not disturb (on a shared 2-core VM, wall times of the same code move
by up to 1.4x between runs, and CPU times by as much under load).

The driver starts a worker under ``valgrind --tool=callgrind --instr-atstart=no``, so the
interpreter's start and imports run uninstrumented (fast). For each function the worker
warms it up, says ``READY``, and waits; the driver zeroes the counters and switches
instrumentation on (``callgrind_control``), the worker makes its calls and says ``DONE``,
and the driver switches it off and dumps the counters: the dump's total over the calls is
the figure. Counts are of instructions executed (cache misses and waiting are not in them),
so they rank overheads, not wall times; repeat runs of the same code agree within about
0.5%.

    counts = count_instructions([sys.executable, script, "--instruction-worker"], env)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

READY, DONE = "INSTRUCTIONS_READY ", "INSTRUCTIONS_DONE"


def available() -> bool:
    """Whether valgrind and callgrind_control are installed."""
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def serve(functions: Mapping[str, Callable[[], object]], calls: int, warm_up: int = 5) -> None:
    """The worker's side: each function warmed up, then called ``calls`` times between the
    driver's switches (lines on stdout and stdin)."""
    for name, function in functions.items():
        for _ in range(warm_up):
            function()
        print(f"{READY}{calls} {name}", flush=True)
        _wait_for_line()
        for _ in range(calls):
            function()
        print(DONE, flush=True)
        _wait_for_line()


def _wait_for_line() -> None:
    """Read the driver's next line, waking every 20 ms: valgrind serves callgrind_control's
    requests only while the program runs, never while it blocks in a read."""
    import select

    while not select.select([sys.stdin], [], [], 0.02)[0]:
        pass
    sys.stdin.readline()


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _total(dump: Path) -> int:
    """The instructions a callgrind dump counted since the counters were zeroed (its
    ``totals:`` line; its ``summary:`` line does not hold them)."""
    text = dump.read_text()
    found = re.search(r"^totals: (\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no totals in {dump}")
    return int(found[1])


def count_instructions(command: list[str], env: Mapping[str, str]) -> dict[str, float]:
    """Instructions per call of each function the worker ``command`` serves (:func:`serve`),
    the worker run under callgrind with ``env``."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                    f"--log-file={Path(folder) / 'valgrind.log'}"]
        worker = subprocess.Popen(valgrind + command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=dict(env), cwd=os.getcwd())
        assert worker.stdin is not None and worker.stdout is not None
        counts: dict[str, float] = {}
        try:
            for line in worker.stdout:
                if not line.startswith(READY):
                    continue
                calls, name = line[len(READY):].strip().split(" ", 1)
                _control(worker.pid, "--zero")
                _control(worker.pid, "--instr=on")
                worker.stdin.write("\n")
                worker.stdin.flush()
                if worker.stdout.readline().strip() != DONE:
                    raise RuntimeError(f"the worker did not finish {name}")
                _control(worker.pid, "--instr=off")
                before = set(Path(folder).glob("callgrind.out*"))
                _control(worker.pid, "--dump")
                dumps = set(Path(folder).glob("callgrind.out*")) - before
                counts[name] = _total(max(dumps, key=lambda p: p.stat().st_mtime)) / int(calls)
                worker.stdin.write("\n")
                worker.stdin.flush()
        finally:
            worker.stdin.close()
            code = worker.wait()
        if code != 0:
            log = (Path(folder) / "valgrind.log").read_text()[-2000:]
            raise RuntimeError(f"the worker under callgrind failed (exit {code}):\n{log}")
        return counts
