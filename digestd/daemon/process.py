"""What a long-running digestd process needs around the scheduler: one daemon per SQLite
file, logging to stderr (text or JSON lines), and a stop event set by SIGTERM/SIGINT."""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from digestd.errors import StoreError

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger(__name__)


def sqlite_file(url: str) -> Path | None:
    """The real file behind a SQLite URL (symlinks and relative paths resolved, so every
    way of naming one file meets the same lock), or None (PostgreSQL, in-memory)."""
    from sqlalchemy.engine import make_url  # here: `digestd --help` imports this module

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(os.path.realpath(parsed.database))


@contextmanager
def hold_daemon_lock(database_url: str) -> Iterator[None]:
    """Refuse to run a second daemon on the same SQLite file.

    The lock is an flock on `<database>.lock`: the kernel drops it when the process
    dies, however it dies, so a crash never leaves a stale lock behind. PostgreSQL needs
    none: several daemons may share one (planning is idempotent)."""
    database = sqlite_file(database_url)
    if database is None:
        yield
        return
    from digestd.store import PRIVATE_FILE_MODE  # here, as make_url above

    path = database.with_name(database.name + ".lock")
    handle: IO[str] = open(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE), "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(
            f"another digestd daemon is already running on {database} ({holder})",
            hint="stop it first; one daemon per SQLite database (use PostgreSQL to run several)",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, *, json_lines: bool = False) -> None:
    """Log to stderr at `level`; called once, at the entry point."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "alembic", "httpx", "aiosmtplib", "flufl.bounce"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


# Collect young objects every 50,000 allocations instead of Python's 700: a long run
# allocates millions of short-lived objects (picks, rendered parts, rows) that reference
# counting frees, and each collection it sets off walks the survivors, sometimes the whole
# heap. Garbage with cycles is still collected, just less often.
GC_YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    """For the long-running commands (`run`, `worker`, `send`)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`; the daemon then winds down in an orderly way."""

    def request_stop(name: str) -> None:
        log.info("%s received: finishing in-flight work, then stopping", name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signal.Signals(signum).name)


def daemon_running(database_url: str) -> str | None:
    """'pid N' when a daemon holds the SQLite lock, else None (and None for PostgreSQL)."""
    database = sqlite_file(database_url)
    if database is None:
        return None
    path = database.with_name(database.name + ".lock")
    if not path.exists():
        return None
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "running"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
