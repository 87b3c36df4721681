"""What writing one snapshot costs a node: CPU, and how far it raises the process's peak memory.

A node's snapshot of its state is packed and written a piece at a time (streamed: what the
runtime does unless a peer far behind asked for one), or packed whole first (what it does
for one kept to send to such a peer, and what it did for every snapshot before the
eighteenth session). Each way runs in a fresh interpreter, since the peak resident memory
(``ru_maxrss``) only ever rises within a process: the state is built, then one snapshot is
written through ``Store.write_snapshot`` into a temporary directory, and the rise of the
peak over it and the CPU it took are printed.

    python benchmarks/snapshot_write.py                       # 100,000 values of 1 KB
    python benchmarks/snapshot_write.py --encrypted           # sealed (AES-256-GCM)
    python benchmarks/snapshot_write.py --values 30000 --value-bytes 8192
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WAYS = ("streamed", "whole")
SEED = 28
OVERWRITES = 2  # times the keys are overwritten, at random, after the first write of each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--encrypted", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way, alternating")
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)  # a run's own process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.values, args.value_bytes, args.encrypted)))
        return
    shape = f"{args.values:,} values of {args.value_bytes:,} B" + (
        ", encrypted" if args.encrypted else ""
    )
    print(f"one snapshot of {shape}: peak resident memory's rise, CPU")
    for _ in range(args.repeat):
        for way in WAYS:
            command = [sys.executable, __file__, "--one", way, "--values", str(args.values)]
            command += ["--value-bytes", str(args.value_bytes)]
            command += ["--encrypted"] if args.encrypted else []
            figures = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            print(f"  {way:9} +{figures['peak_mb']:,.0f} MB  {figures['cpu_ms']:,.0f} ms CPU")


def _one(way: str, values: int, value_bytes: int, encrypted: bool) -> dict[str, float]:
    from paxoskv.paxos.records import DurableState, SnapshotImage
    from paxoskv.state import Configuration, KVStateMachine, Set
    from paxoskv.storage import Store

    config = Configuration(voters=frozenset({"a", "b", "c"}), learners=frozenset())
    state = KVStateMachine(config)
    # As a node's state is after a while under load: every key written, then overwritten at
    # random, each value a str of its own (a state whose rows all share one value packs from
    # a few cache lines, and took half the CPU this one does).
    rng = random.Random(SEED)
    for index in range(values * (1 + OVERWRITES)):
        key = index if index < values else rng.randrange(values)
        state.apply(Set(f"k{key}", str(index).rjust(value_bytes, "v")), 1_000 + index)
    directory = tempfile.mkdtemp(prefix="paxoskv-snapshot-write-")
    try:
        with Store.open(directory, encryption_key=bytes(range(32)) if encrypted else None) as store:
            image = SnapshotImage(
                1, state.snapshot_image(), [(1, config)], 0, DurableState(), keep=way == "whole"
            )
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.process_time()
            store.write_snapshot(1, image.local_pieces())
            cpu_s = time.process_time() - started
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        shutil.rmtree(directory)
    return {"peak_mb": (after - before) / 1024, "cpu_ms": cpu_s * 1000}


if __name__ == "__main__":
    main()
