"""Where a restarted node's time goes before it can serve: each step of recovery, timed.

Runs the steps a restarting replica runs (``Replica.start``), in this process, over a copy of
a node's data dir (the copy is opened, so the original is left as it was): open the store
(check the snapshot, cut a torn tail), read and decode the snapshot, replay the journal after
it, then build the engine (restore the state machine, apply the chosen tail). Imports are
timed in a fresh interpreter, as a restart pays them. Wall and CPU seconds per step.

    python benchmarks/restart.py DATA_DIR     # e.g. a follower's dir kept by
                                              # compare.py --phases recovery --work-dir W

``compare.py``'s recovery phase measures the whole restart of a real process (spawn to the
first linearizable read); this says which step to look at.
"""

from __future__ import annotations

import argparse
import random
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
from paxoskv.state import Configuration
from paxoskv.storage import Store

IMPORTS = "import asyncio, paxoskv, paxoskv.node"  # what a node process imports to start


def timed(steps: list[tuple[str, float, float]], name: str, work: Callable[[], Any]) -> Any:
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


def breakdown(data_dir: Path) -> tuple[list[tuple[str, float, float]], dict[str, int]]:
    """The steps of one recovery over a copy of ``data_dir`` and what it found."""
    steps: list[tuple[str, float, float]] = [("imports (fresh interpreter)", *imports_s())]
    with tempfile.TemporaryDirectory(prefix="paxoskv-restart-") as scratch:
        copy = Path(scratch) / "data"
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("LOCK"))
        store = timed(steps, "open the store", lambda: Store.open(copy))
        try:
            found = timed(steps, "read the snapshot", store.recovered_snapshot)
            durable = timed(
                steps,
                "decode the snapshot",
                lambda: decode_local_snapshot(found[1]) if found else DurableState(),
            )

            def replay() -> int:
                count = 0
                for _, record in store.recovered_records():
                    durable.replay(record)
                    count += 1
                return count

            records = timed(steps, "replay the journal after it", replay)
            tail = len(durable.chosen)
            genesis = load_genesis(copy) or ()
            configuration = Configuration(voters=frozenset(genesis), learners=frozenset())
            engine = timed(
                steps,
                "restore the state, apply the tail",
                lambda: Engine(
                    EngineSettings(node_id="restart-benchmark"),
                    random.Random(0),
                    configuration,
                    durable=durable,
                    journal_index=store.last_index,
                    now=time.time(),
                ),
            )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)
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
