"""What one sequential write costs a whole cluster: three real nodes in this one process.

``benchmarks/cluster.py --latency-only`` measures one client's sequential writes across three
processes, where the wall clock and the CPU times move by tens of percent with the host's load
(and a sequential write costs about a millisecond of CPU across the three, against some 30 us
for a pipelined one: the fixed costs of a slot, a step, a datagram and a sync, paid for a
single command each time). This puts the same three nodes -- real runtime, real UDP multicast
on 127.0.0.1, real journal in a temporary directory -- on one event loop, so that the count of
instructions per write is one number that the load cannot move.

    python benchmarks/write_path.py                     # CPU us per write, best of 3
    python benchmarks/write_path.py --instructions      # callgrind: instructions per write
    python benchmarks/write_path.py --instructions --durability durable
    python benchmarks/write_path.py --instructions --window 64 --value-bytes 1000
                                                        # 64 clients at once: pipelined

Instructions are callgrind's count for the measured writes alone (600, or 600 per client with
``--window``), zeroed and dumped where the writes start and end, so start-up, imports and the
election are left out. The nodes' timers (heartbeats, hellos) are set far apart so that the
slower clock under callgrind does not add heartbeats to each write; one timer still fires
there that would not at full speed -- the leader's commit point, 2 ms after a write, which at
full speed rides on the next write's accept -- so a sequential write's count includes one
Commit message more than it costs outside callgrind. In ``durable`` mode the counts include
the writer threads' share of the syncs (callgrind counts every thread), but not the kernel's
work in ``fdatasync``: callgrind counts user-space instructions only, so the kernel's copies of
larger values (socket buffers, page cache) are not in the count either.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paxoskv import Config, Node
from paxoskv.compiled import build_name
from paxoskv.runtime.loop import run

WARM_UP_WRITES = 50
VALUE = "x" * 100
QUIET_TIMERS = {  # far apart: a write under callgrind takes some 30 ms of wall clock
    "heartbeat_interval_s": 1.0,
    "election_timeout_s": 5.0,
    "hello_interval_s": 5.0,
    "suspect_after_s": 30.0,
    "down_after_s": 60.0,
    "request_timeout_s": 60.0,
}


async def sequential_writes(
    writes: int, durability: str, window: int = 1, value_bytes: int = 100
) -> float:
    """CPU microseconds per write of ``writes`` writes through the leader, ``window`` clients
    each writing sequentially (1: one client's sequential writes)."""
    data_dir = Path(tempfile.mkdtemp(prefix="paxoskv-write-path-"))
    port = random.randint(20_000, 60_000)
    group = f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}:{port}"
    nodes = [
        Node(
            Config(
                node_id=f"w{i}",
                data_dir=data_dir / f"w{i}",
                durability=durability,  # type: ignore[arg-type]
                cluster=f"write-path-{port}",
                group=group,
                interface="127.0.0.1",
                bootstrap_expect=3,
                **QUIET_TIMERS,  # type: ignore[arg-type]
            )
        )
        for i in (1, 2, 3)
    ]
    try:
        for node in nodes:
            await node.start()
        await asyncio.gather(*(node.wait_ready(300) for node in nodes))
        leader = None
        async with asyncio.timeout(300):
            while leader is None:
                for node in nodes:
                    if (await node.status())["is_leader"]:
                        leader = node
                await asyncio.sleep(0.01)
        for i in range(WARM_UP_WRITES):
            await leader.set(f"warm{i}", VALUE)
        value = "x" * value_bytes
        left = writes

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await leader.set(f"k{left % 100}", value)

        started = time.process_time()
        await asyncio.gather(*(client() for _ in range(window)))
        return (time.process_time() - started) / writes * 1e6
    finally:  # the nodes stopped and their data dirs gone, however the run ended
        for node in nodes:
            await node.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def instructions_per_write(durability: str, window: int, value_bytes: int) -> int:
    """Callgrind's count for the measured writes alone, over their number.

    The count is zeroed and dumped at the two calls of ``time.process_time`` that bracket
    the writes (callgrind's ``--zero-before`` and ``--dump-before`` on its C function), so
    start-up, imports and the election, whose cost moves with how long the election takes,
    are left out; the second dump holds the writes.
    """
    writes = 600 * window
    with tempfile.TemporaryDirectory(prefix="paxoskv-write-path-cg-") as out_dir:
        out_file = Path(out_dir) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--zero-before=time_process_time",
                "--dump-before=time_process_time",
                f"--callgrind-out-file={out_file}",
                sys.executable,
                __file__,
                "--writes",
                str(writes),
                "--durability",
                durability,
                "--window",
                str(window),
                "--value-bytes",
                str(value_bytes),
                "--once",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
        measured = Path(f"{out_file}.2")  # .1: everything before the writes
        found = re.search(r"^totals: (\d+)", measured.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no instruction count in {measured.name}")
        return int(found.group(1)) // writes


def describe(args: argparse.Namespace) -> str:
    clients = "one client" if args.window == 1 else f"{args.window} clients"
    return (
        f"{clients} writing {args.value_bytes} B values sequentially, three nodes in one "
        f"process, {args.durability} mode, {build_name()} core"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--durability", default="os", choices=("os", "durable", "memory"))
    parser.add_argument("--window", type=int, default=1, help="clients writing at once")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:  # one run in a fresh process, left at once (no shutdown in the count)
        cpu_us = run(sequential_writes(args.writes, args.durability, args.window, args.value_bytes))
        print(f"{cpu_us:.1f} us CPU per write", flush=True)
        os._exit(0)
    if args.instructions:
        count = instructions_per_write(args.durability, args.window, args.value_bytes)
        print(f"{count:,} instructions per write, {describe(args)}")
        return 0
    results = []
    for _ in range(args.repeats):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--once",
                "--writes",
                str(args.writes),
                "--durability",
                args.durability,
                "--window",
                str(args.window),
                "--value-bytes",
                str(args.value_bytes),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        results.append(float(done.stdout.split()[0]))
    print(
        f"{min(results):.1f} us CPU per write (best of {args.repeats}: "
        f"{', '.join(f'{r:.1f}' for r in results)}), {describe(args)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
