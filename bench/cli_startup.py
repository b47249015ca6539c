"""How long the `digestd` command takes to answer: `--help`, every `COMMAND --help`, and
`status` on a fresh migrated SQLite file with the sample papers, each beside a bare
`python -c pass` in the same run (the ratio is what carries from one machine to another).

    python -m bench.cli_startup [--repeat 10] [--checkout DIR]...

Every command runs `--repeat` times in a fresh process (`python -m digestd ...`), after
one untimed round, the commands interleaved round by round so that the machine's load
falls on all of them alike.
Wall time is what a user waits; CPU time (the process's user + system) is less moved by
other work on a shared machine. With several `--checkout`s (e.g. `--checkout ../main
--checkout .`) each checkout's digestd is timed in the same rounds, for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.support import ROOT, reference_seconds

# Prints every command path of the checkout's CLI, as the words a user types.
LIST_COMMANDS = """
import json, click
from digestd.cli import cli
def walk(group, prefix):
    for name, command in sorted(group.commands.items()):
        yield [*prefix, name]
        if isinstance(command, click.Group):
            yield from walk(command, [*prefix, name])
print(json.dumps(list(walk(cli, []))))
"""


def environment(checkout: Path) -> dict[str, str]:
    """The checkout first on the path (the processes also run in it: `python -m` puts the
    current folder first); no digestd settings from the caller's environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIGESTD_")}
    return env | {"PYTHONPATH": str(checkout)}


def python(checkout: Path, *args: str) -> str:
    """Run `python ARGS` against the checkout; its stdout, or exit with its stderr."""
    result = subprocess.run(
        [sys.executable, *args], cwd=checkout, env=environment(checkout), capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"python {' '.join(args)} failed in {checkout}:\n{result.stderr}")
    return result.stdout


def prepare(checkout: Path, folder: Path) -> list[tuple[str, list[str]]]:
    """A migrated SQLite file with the sample papers; the commands to time, labelled."""
    url = f"sqlite:///{folder / 'digestd.sqlite3'}"
    papers = checkout / "digestd" / "sample" / "papers.jsonl"
    python(checkout, "-m", "digestd", "--database", url, "init")
    python(checkout, "-m", "digestd", "--database", url, "ingest", "--file", str(papers))
    paths: list[list[str]] = json.loads(python(checkout, "-c", LIST_COMMANDS))
    commands = [("python -c pass", ["-c", "pass"]), ("digestd --help", ["-m", "digestd", "--help"])]
    commands += [(f"digestd {' '.join(words)} --help", ["-m", "digestd", *words, "--help"]) for words in paths]
    return [*commands, ("digestd status (SQLite)", ["-m", "digestd", "--database", url, "status"])]


def timed(checkout: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh `python ARGS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=checkout, env=environment(checkout), capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"python {' '.join(args)} exited {result.returncode}:\n{result.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument(
        "--checkout", type=Path, action="append", help="checkout whose digestd to time (repeatable; default: this one)"
    )
    args = parser.parse_args()
    checkouts = [path.resolve() for path in args.checkout or [ROOT]]
    print(f"machine: reference loop {reference_seconds():.2f} s (lower is faster), {os.cpu_count()} CPUs")
    print(f"load average (1/5/15 min) at start: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="digestd-bench-cli-") as folder:
        plans = {}
        for number, checkout in enumerate(checkouts):
            (Path(folder) / str(number)).mkdir()
            plans[checkout] = prepare(checkout, Path(folder) / str(number))
        for checkout, commands in plans.items():  # untimed: compiles each checkout's .pyc files
            for _, command in commands:
                timed(checkout, command)
        times: dict[tuple[Path, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for checkout, commands in plans.items():
                for label, command in commands:
                    times.setdefault((checkout, label), []).append(timed(checkout, command))
    print(f"load average at end: {load()}; {args.repeat} runs of each, interleaved")
    for checkout, commands in plans.items():
        print(f"\n{checkout}:" if len(checkouts) > 1 else "")
        report(commands, {label: runs for (where, label), runs in times.items() if where == checkout})


def report(commands: list[tuple[str, list[str]]], times: dict[str, list[tuple[float, float]]]) -> None:
    bare_wall = statistics.median(wall for wall, _ in times["python -c pass"])
    bare_cpu = statistics.median(cpu for _, cpu in times["python -c pass"])
    print("| command | median s | max s | × `python -c pass` | CPU median s | CPU × `python -c pass` |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, _ in commands:
        walls, cpus = [wall for wall, _ in times[label]], [cpu for _, cpu in times[label]]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        cells = [f"`{label}`", f"{wall:.3f}", f"{max(walls):.3f}", f"{wall / bare_wall:.1f}"]
        cells += [f"{cpu:.3f}", f"{cpu / bare_cpu:.1f}" if bare_cpu else "-"]
        print("| " + " | ".join(cells) + " |", flush=True)
    helps = [label for label, _ in commands if label.endswith(" --help") and label != "digestd --help"]
    slowest = max(helps, key=lambda label: statistics.median(wall for wall, _ in times[label]))
    wall = statistics.median(wall for wall, _ in times[slowest])
    print(f"slowest of the {len(helps)} `COMMAND --help`: `{slowest}`, {wall:.3f} s ({wall / bare_wall:.1f}×)")


if __name__ == "__main__":
    main()
