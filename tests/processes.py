"""Waiting and processes for the tests, so that they hold on a busy machine.

`wait_until` polls a condition up to a generous deadline and, when it runs out, fails
saying how far things got ("18,892 of 20,000 sent after 900 s"), never a fixed sleep.
`Processes` (the `processes` fixture) starts real processes, each in its own process
group, and at the end of the test, passed or failed, stops what is still running
(SIGTERM to the group, then SIGKILL), reaps it and closes its pipes: nothing is left to
run on into later tests or to raise a ResourceWarning there (pytest turns warnings into errors).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

T = TypeVar("T")

DEADLINE_SECONDS = 60.0  # for anything a test waits on; a loaded 2-core machine needs the margin
STOP_SECONDS = 30.0  # for a process to exit after SIGTERM before it gets SIGKILL


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    progress: Callable[[], object] | None = None,
    timeout: float = DEADLINE_SECONDS,
    interval: float = 0.05,
) -> T:
    """Poll `condition` until it returns something true, and return that. After `timeout`
    seconds fail with `what` was awaited and `progress()` (what was reached instead)."""
    started = time.monotonic()
    while True:
        result = condition()
        if result:
            return result
        waited = time.monotonic() - started
        if waited > timeout:
            reached = f": {progress()}" if progress is not None else ""
            raise AssertionError(f"not reached after {waited:.0f} s: {what}{reached}")
        time.sleep(interval)


def output_tail(process: subprocess.Popen[Any], limit: int = 2000) -> str:
    """What a process that has exited wrote to stderr (or stdout), its end, to explain a failure."""
    out, err = process.communicate()
    text = err or out or ""
    return (text.decode(errors="replace") if isinstance(text, bytes) else text)[-limit:]


def still_running(process: subprocess.Popen[Any]) -> bool:
    """True while it runs; once it has exited, a failure showing how it ended."""
    assert process.poll() is None, f"{process.args} exited with {process.returncode}: {output_tail(process)}"
    return True


def read_line(stream: IO[Any], what: str, timeout: float = DEADLINE_SECONDS) -> str:
    """The next line of a child's pipe, waiting at most `timeout` seconds for it to start."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"not reached after {timeout:.0f} s: {what}")
    line = stream.readline()
    return line.decode() if isinstance(line, bytes) else str(line)


class Processes:
    """The processes a test started; `stop_all` ends and reaps every one of them."""

    def __init__(self, stop_seconds: float = STOP_SECONDS) -> None:
        self.started: list[subprocess.Popen[Any]] = []
        self.stop_seconds = stop_seconds

    def start(self, command: list[str], **options: Any) -> subprocess.Popen[Any]:
        """`subprocess.Popen(command, **options)` as the leader of a new process group (as
        systemd starts a service: a signal to the group reaches its children too)."""
        process: subprocess.Popen[Any] = subprocess.Popen(command, start_new_session=True, **options)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """SIGTERM to each group still led by an unreaped process, SIGKILL to what is left
        after `stop_seconds`, then reap them all and close every pipe."""
        running = [process for process in self.started if process.returncode is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_seconds
        for process in running:
            while not _has_exited(process) and time.monotonic() < deadline:
                time.sleep(0.05)
            _signal_group(process, signal.SIGKILL)  # its children too, if they outlived it
            process.wait()
        for process in self.started:
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        self.started.clear()


def _has_exited(process: subprocess.Popen[Any]) -> bool:
    """Whether it has exited, without reaping it: until it is reaped, its pid (and so its
    group's id) cannot be given to another process, so signalling the group stays safe."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _signal_group(process: subprocess.Popen[Any], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass  # the group has no member left
