"""paxos-kv side by side with PySyncObj, in one run on this machine (issue 6).

Each system runs as three processes on 127.0.0.1, one system after the other, on the same
workloads: pipelined committed writes at several value sizes, one client's sequential write
latency, and the time a follower killed over a large store takes to serve again. It prints a
table with both systems' figures and their ratios, writes every figure to
``benchmarks/results/compare.json`` and, with matplotlib, draws ``compare_*.png``.

    python benchmarks/compare.py            # the full comparison, under 10 minutes
    python benchmarks/compare.py --quick    # the same, smaller, under 2 minutes
    python benchmarks/compare.py --systems paxoskv   # paxos-kv alone (paxos-kv bench)

PySyncObj is a benchmark-only extra (``pip install 'paxos-kv[bench]'``); without it only
paxos-kv's figures are measured and the ratios say "-".
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paxoskv
from benchmarks.compare_cluster import SETUPS, WorkerFailed
from benchmarks.compare_phases import (
    FULL,
    QUICK,
    Plan,
    recovery,
    throughput_and_latency,
)
from benchmarks.compare_plots import draw
from benchmarks.compare_report import Results, render, to_json
from paxoskv.compiled import build_name
from paxoskv.runtime.loop import loop_name

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RECOVERY_RESERVE_S = 15.0  # one restart and its cluster's start and stop, per system
BUDGET_MARGIN = 0.1  # of the budget kept free for a machine slower than expected
FIRST_BUILD_SHARE = 0.65  # of the time left for building stores
NOTES = {
    "pysyncobj": "PySyncObj runs with SyncObjConf() defaults: appendEntriesUseBatch=True and "
    "its journal in memory, so it never fsyncs (a write it confirms is in RAM on a majority).",
    "pysyncobj-nobatch": "PySyncObj no-batch: appendEntriesUseBatch=False, its setting for "
    "single-request latency; otherwise defaults.",
    "pysyncobj-files": "PySyncObj files (recovery only): journalFile and fullDumpFile set, "
    "otherwise defaults; its journal is a memory-mapped file it never fsyncs. Its restart is "
    "bounded by its reconnect interval (connectionRetryTime, 5 s by default): the restarted "
    "node serves the last write once a peer has reconnected to it, so its figure is about 5 s "
    "with the defaults, unless its last full dump already held that write (about 0.4 s then). "
    "With connectionRetryTime=1.0 it took 0.41 s over 50,000 writes (ninth session).",
    "paxoskv": "paxos-kv durable: a write is confirmed once chosen and fdatasync'ed on a "
    "majority; os: written to the OS on a majority, no fsync.",
}


class Progress:
    """One line on stderr saying what runs and for how long, redrawn each second on a tty."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.monotonic()
        self.budget_s = budget_s
        self.text = "starting"
        self.live = sys.stderr.isatty()
        self._stop = threading.Event()
        if self.live:
            threading.Thread(target=self._tick, daemon=True).start()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        self.text = text
        self._draw(end="" if self.live else "\n")

    def _draw(self, end: str) -> None:
        line = f"[{self.elapsed_s():4.0f}s of <{self.budget_s:.0f}s] {self.text}"
        sys.stderr.write(("\r\x1b[K" if self.live else "") + line + end)
        sys.stderr.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw(end="")

    def done(self) -> None:
        self._stop.set()
        if self.live:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smaller run, under 2 minutes")
    parser.add_argument("--systems", default="paxoskv,pysyncobj", help="paxoskv,pysyncobj")
    parser.add_argument("--phases", default="throughput,latency,recovery")
    parser.add_argument("--sizes", help="value sizes in bytes, e.g. 10,100,1024,8192")
    parser.add_argument("--seconds", type=float, help="pipelined writes per size")
    parser.add_argument("--window", type=int, help="writes outstanding per process")
    parser.add_argument("--latency-writes", type=int)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--recovery-writes", type=int)
    parser.add_argument("--recovery-build-s", type=float)
    parser.add_argument("--budget-s", type=float)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--work-dir", type=Path, help="keep the nodes' data dirs and logs here (default: removed)"
    )
    return parser.parse_args(argv)


def plan_from(args: argparse.Namespace) -> Plan:
    """The preset (full or quick) with any figure the command line names replaced."""
    plan = QUICK if args.quick else FULL
    given: dict[str, Any] = {
        "sizes": tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None,
        "seconds": args.seconds,
        "window": args.window,
        "latency_writes": args.latency_writes,
        "latency_seconds": args.latency_seconds,
        "recovery_writes": args.recovery_writes,
        "recovery_build_s": args.recovery_build_s,
        "budget_s": args.budget_s,
    }
    return replace(plan, **{name: value for name, value in given.items() if value is not None})


def pysyncobj_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("pysyncobj")
    except Exception:
        return None


def run(args: argparse.Namespace) -> tuple[Results, int]:
    """Every phase asked for, in order; a phase that fails is noted and the rest still run."""
    plan = plan_from(args)
    systems = set(args.systems.split(","))
    if "pysyncobj" in systems and pysyncobj_version() is None:
        systems.discard("pysyncobj")
        skipped = "PySyncObj is not installed (pip install 'paxos-kv[bench]'): paxos-kv only"
        print(f"note: {skipped}", file=sys.stderr)
    else:
        skipped = ""
    phases = set(args.phases.split(","))
    results = Results(settings=_settings(plan, systems, phases))
    if skipped:
        results.notes.append(skipped)
    if "paxoskv" in systems:
        results.notes.append(_byte_compile_paxoskv())
    progress = Progress(plan.budget_s)
    exit_code = 0
    with _work_dir(args.work_dir) as root:
        for name, step in _steps(plan, systems, phases, root, results, progress):
            if progress.elapsed_s() > plan.budget_s - 5:
                results.notes.append(f"{name} skipped: the {plan.budget_s:.0f}s budget ran out")
                continue
            try:
                step()
            except WorkerFailed as error:
                results.failures.append(f"{name}: {error}")
            except KeyboardInterrupt:
                results.notes.append(f"interrupted during {name}: the figures are partial")
                exit_code = 130
                break
    progress.done()
    results.notes.extend(_notes(systems))
    results.settings["load_average_end"] = list(os.getloadavg())
    results.elapsed_s = progress.elapsed_s()
    return results, exit_code or (1 if results.failures else 0)


@contextlib.contextmanager
def _work_dir(kept: Path | None) -> Iterator[Path]:
    """Where the nodes keep their data and logs: a temporary dir, or one kept for a look."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="paxoskv-compare-") as temporary:
        yield Path(temporary)


def _steps(
    plan: Plan,
    systems: set[str],
    phases: set[str],
    root: Path,
    results: Results,
    progress: Progress,
) -> list[tuple[str, Callable[[], None]]]:
    """The phases in the order they run: each is one cluster started, measured and stopped."""
    pipelined = "throughput" in phases
    measured = replace(plan, latency_writes=plan.latency_writes if "latency" in phases else 0)
    steps: list[tuple[str, Callable[[], None]]] = []
    for name, with_pipelined in (
        ("pysyncobj", pipelined),
        ("paxoskv-durable", pipelined),
        ("paxoskv-os", pipelined),
        ("pysyncobj-nobatch", False),  # only its latency is asked for
    ):
        if SETUPS[name].system in systems and (with_pipelined or measured.latency_writes):
            run_one = partial(throughput_and_latency, SETUPS[name], measured, root, results)
            steps.append((name, partial(run_one, progress.say, pipelined=with_pipelined)))
    if "recovery" in phases:
        order = [n for n in ("pysyncobj-files", "paxoskv-durable") if SETUPS[n].system in systems]
        target = [plan.recovery_writes]  # the first store built sets the count for the next
        for position, name in enumerate(order):
            left = len(order) - position
            recover = partial(_recovery, name, plan, root, results, progress, target, left)
            steps.append((f"{name} recovery", recover))
    return steps


def _recovery(
    name: str,
    plan: Plan,
    root: Path,
    results: Results,
    progress: Progress,
    target: list[int],
    systems_left: int,
) -> None:
    """PySyncObj builds first; paxos-kv then builds to the same count, so both recover as much
    (PySyncObj builds slower, so it gets the larger share of the time left)."""
    usable_s = plan.budget_s * (1 - BUDGET_MARGIN) - progress.elapsed_s()
    remaining_s = usable_s - RECOVERY_RESERVE_S * systems_left
    share = FIRST_BUILD_SHARE if systems_left > 1 else 1.0
    build_s = max(5.0, min(plan.recovery_build_s, remaining_s * share))
    entry = recovery(SETUPS[name], plan, root, progress.say, target[0], build_s)
    results.recovery.append(entry)
    if entry.writes < target[0]:
        results.notes.append(
            f"{name} wrote {entry.writes:,} of {target[0]:,} values in {entry.build_s:.0f}s "
            "(the most that fit the budget): recovery is compared at that count"
        )
        target[0] = entry.writes


def _settings(plan: Plan, systems: set[str], phases: set[str]) -> dict[str, Any]:
    return {
        **asdict(plan),
        "systems": sorted(systems),
        "phases": sorted(phases),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pysyncobj": pysyncobj_version(),
        "event_loop": loop_name(),  # what the paxos-kv node processes run on
        "core": build_name(),  # compiled (make compile) or pure Python
        "load_average_start": list(os.getloadavg()),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def _byte_compile_paxoskv() -> str:
    """Write paxos-kv's ``.pyc`` files, as pip does when it installs a package.

    PySyncObj comes from site-packages with its modules compiled at install time; a checkout
    run with PYTHONDONTWRITEBYTECODE (or from a read-only tree) would compile every module of
    ours from source at every node start, and the recovery phase would time that instead.
    """
    package = Path(paxoskv.__file__).parent
    compileall.compile_dir(package, quiet=1)
    compileall.compile_dir(Path(__file__).parent, quiet=1, maxlevels=0)
    return "paxos-kv's modules were byte-compiled first, as pip does when it installs a package"


def _notes(systems: set[str]) -> list[str]:
    notes = [NOTES["paxoskv"]] if "paxoskv" in systems else []
    if "pysyncobj" in systems:
        notes += [NOTES["pysyncobj"], NOTES["pysyncobj-nobatch"], NOTES["pysyncobj-files"]]
    return notes


def save(results: Results, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots, reason = draw(results, out_dir)
    if reason:
        results.notes.append(reason)
    path = out_dir / "compare.json"
    path.write_text(json.dumps(to_json(results), indent=2) + "\n")
    return [path, *plots]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain kill (SIGTERM) unwinds like Ctrl-C does, so the node processes are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    results, exit_code = run(args)
    written = save(results, args.out_dir)
    print(render(results), end="")
    print("wrote " + ", ".join(str(path) for path in written))
    print(f"the comparison took {results.elapsed_s:.0f}s")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
