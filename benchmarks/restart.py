"""Where a restarted node's time goes before it can serve: each step of recovery, timed.

Runs the steps a restarting replica runs (``Replica.start``), in this process, over a copy of
a node's data dir (the copy is opened, so the original is left as it was): open the store
(check the snapshot, cut a torn tail), read and decode the snapshot, replay the journal after
it, then build the engine (restore the state machine, apply the chosen tail). Imports are
timed in a fresh interpreter, as a restart pays them. Wall and CPU seconds per step.

    python benchmarks/restart.py DATA_DIR     # e.g. a follower's dir kept by
                                              # compare.py --phases recovery --work-dir W

``compare.py``'s recovery phase measures the whole restart of a real process (spawn to the
first linearizable read); this says which step to look at. Wall clock on a shared machine
swings with its load; ``--instructions`` counts each step's instructions under callgrind
instead (a fresh interpreter per step, run up to the end of that step over a fresh copy and
left by ``os._exit``; each step is the difference from the one before), which repeats to
within a fraction of a percent:

    python benchmarks/restart.py DATA_DIR --instructions
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import DurableState, decode_local_snapshot
from paxoskv.runtime.identity import load_genesis
from paxoskv.runtime.loop import node_collector, start_up_done
from paxoskv.state import Configuration
from paxoskv.state.snapshot import paused_gc
from paxoskv.storage import Store

IMPORTS = "import asyncio, paxoskv, paxoskv.node"  # what a node process imports to start


def timed_step(steps: list[tuple[str, float, float]], name: str, work: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    steps.append((name, time.perf_counter() - wall, time.process_time() - cpu))
    return result


def imports_s() -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter importing what a node imports."""
    code = (
        "import time, os; w, c = time.perf_counter(), time.process_time(); "
        f"{IMPORTS}; "
        "print(time.perf_counter() - w, time.process_time() - c)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    wall, cpu = (float(part) for part in done.stdout.split())
    return wall, cpu


STEPS = (
    "imports (fresh interpreter)",
    "open the store",
    "read the snapshot",
    "decode the snapshot",
    "replay the journal after it",
    "restore the state, apply the tail",
)


def breakdown(
    data_dir: Path, stop_after: int | None = None, scratch_in: Path | None = None
) -> tuple[list[tuple[str, float, float]], dict[str, int]]:
    """The steps of one recovery over a copy of ``data_dir`` and what it found; with
    ``stop_after``, the process leaves (``os._exit``) once that many steps past the imports
    are done, for :func:`instructions`, whose ``scratch_in`` removes the copy then."""
    if stop_after is None:
        steps: list[tuple[str, float, float]] = [(STEPS[0], *imports_s())]
    else:
        exec(IMPORTS)  # what the step counted from a fresh interpreter
        steps = [(STEPS[0], 0.0, 0.0)]

    def timed(name: str, work: Callable[[], Any]) -> Any:
        result = timed_step(steps, name, work)
        if stop_after is not None and len(steps) > stop_after:
            os._exit(0)
        return result

    if stop_after == 0:
        os._exit(0)
    # The collector as a node's process has it (runtime.loop.run), and paused where Replica
    # pauses it: over the replay and the engine's build, its start-up objects frozen after.
    with (
        tempfile.TemporaryDirectory(prefix="paxoskv-restart-", dir=scratch_in) as scratch,
        node_collector(),
    ):
        copy = Path(scratch) / "data"
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("LOCK"))
        store = timed(STEPS[1], lambda: Store.open(copy))
        try:
            with paused_gc():
                found = timed(STEPS[2], store.recovered_snapshot)
                durable = timed(
                    STEPS[3],
                    lambda: decode_local_snapshot(found[1]) if found else DurableState(),
                )

                def replay() -> int:
                    count = 0
                    for _, record in store.recovered_records():
                        durable.replay(record)
                        count += 1
                    return count

                records = timed(STEPS[4], replay)
            tail = len(durable.chosen)
            genesis = load_genesis(copy) or ()
            configuration = Configuration(voters=frozenset(genesis), learners=frozenset())

            def build() -> Engine:
                with paused_gc():
                    engine = Engine(
                        EngineSettings(node_id="restart-benchmark"),
                        random.Random(0),
                        configuration,
                        durable=durable,
                        journal_index=store.last_index,
                        now=time.time(),
                    )
                    start_up_done()
                return engine

            engine = timed(STEPS[5], build)
        finally:
            store.close()
    facts = {
        "snapshot_covers_record": found[0] if found else 0,
        "journal_records_replayed": records,
        "chosen_slots_applied": tail,
        "applied_slot": engine.applied_slot,
        "keys": len(engine.state),
    }
    return steps, facts


def instructions(data_dir: Path) -> list[tuple[str, int]]:
    """Instructions per step, as callgrind counts them (see the module docstring)."""
    totals = []
    for stop_after in range(len(STEPS)):
        with tempfile.TemporaryDirectory(prefix="paxoskv-callgrind-") as scratch:
            done = subprocess.run(
                [
                    *("valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out"),
                    *(sys.executable, __file__, str(data_dir), "--stop-after", str(stop_after)),
                    *("--scratch-in", scratch),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"callgrind gave no count:\n{done.stderr[-2000:]}")
        totals.append(int(found.group(1)))
    before = [0, *totals[:-1]]
    return [(name, total - last) for name, total, last in zip(STEPS, totals, before, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--instructions", action="store_true", help="count, under callgrind")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scratch-in", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stop_after is not None:
        breakdown(args.data_dir, args.stop_after, args.scratch_in)
        return 0
    if args.instructions:
        counted = instructions(args.data_dir)
        print(f"{'step':36s} {'instructions':>14s}")
        for name, count in counted:
            print(f"{name:36s} {count:14,}")
        print(f"{'total':36s} {sum(count for _, count in counted):14,}")
        return 0
    steps, facts = breakdown(args.data_dir)
    print(", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in facts.items()))
    print(f"{'step':36s} {'wall s':>7s} {'cpu s':>7s}")
    for name, wall, cpu in steps:
        print(f"{name:36s} {wall:7.3f} {cpu:7.3f}")
    total_wall = sum(wall for _, wall, _ in steps)
    total_cpu = sum(cpu for _, _, cpu in steps)
    print(f"{'total':36s} {total_wall:7.3f} {total_cpu:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
