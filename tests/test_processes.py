"""The tests' own helpers for processes and waiting (processes.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from processes import Processes, read_line, wait_until

# A parent whose child ignores SIGTERM and then says its pid (on the pipe they share).
CHILD = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(os.getpid(), flush=True); "
    "time.sleep(600)"
)
PARENT = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {CHILD!r}]); time.sleep(600)"


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_stop_all_ends_what_a_test_left_running_children_included_and_closes_its_pipes() -> None:
    processes = Processes(stop_seconds=0.5)
    parent = processes.start([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(read_line(parent.stdout, "the child's pid"))
    done = processes.start([sys.executable, "-c", "pass"], stdout=subprocess.PIPE)
    done.wait()  # exited, pipe still open: closed too
    processes.stop_all()
    assert parent.returncode is not None and done.returncode == 0
    assert parent.stdout.closed and done.stdout is not None and done.stdout.closed
    wait_until(lambda: gone(child), "the child that ignored SIGTERM got SIGKILL")
    assert processes.started == []


def test_wait_until_returns_the_condition_or_says_how_far_it_got() -> None:
    assert wait_until(lambda: [3], "a value") == [3]
    with pytest.raises(AssertionError, match=r"^not reached after 0 s: 5 sent: 3 of 5 sent$"):
        wait_until(lambda: False, "5 sent", progress=lambda: "3 of 5 sent", timeout=0.2)
