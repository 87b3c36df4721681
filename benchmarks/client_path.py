"""The client's own cost of one write: a Node whose engine answers every request at once.

``benchmarks/cluster.py`` measures everything at once on a host whose other load moves its
figures by tens of percent. This isolates what a write costs in the process that asks for it,
outside Paxos: ``node.set`` (encoding, the replica's future, the proposal queue), the step that
carries out the Answer, and the caller's wake-up, with an engine stub that answers each
proposal with a plain ``Written`` as the state machine packs it. 128 pipelining clients, as
in ``cluster.py``.

    python benchmarks/client_path.py [--writes 200000]     # CPU us per write, best of 5
    python benchmarks/client_path.py --instructions        # callgrind, instructions per write

Instructions are counted as the difference of two runs (2,000 and 12,000 writes) under
callgrind, which takes start-up and imports out; they do not move with the host's load.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
import time
from typing import Any

from paxoskv import Config, Node
from paxoskv.paxos import effects as fx
from paxoskv.paxos.messages import Request
from paxoskv.runtime.loop import run
from paxoskv.runtime.replica import Replica
from paxoskv.state import Configuration
from paxoskv.state.results import WRITTEN
from paxoskv.state.wire import pack

WINDOW = 128


class AnsweringEngine:
    """What the runtime asks of an engine on this path: every proposal answered at once."""

    is_leader = True
    configuration = Configuration(frozenset({"c1"}))  # a single voter: every flush a turn later

    def __init__(self) -> None:
        self.revision = 0

    def propose(self, requests: list[Request], now: float) -> list[fx.Effect]:
        results: list[bytes] = []
        for _ in requests:
            self.revision += 1
            results.append(pack([WRITTEN, self.revision, None]))  # a plain Set's answer
        client_ids = [request.client_id for request in requests]
        return [fx.Answers(client_ids, [request.seq for request in requests], results)]

    def next_deadline(self) -> float:
        return time.time() + 1000.0

    def cancel(self, client_id: str, seq: int) -> None:
        pass


async def measure(writes: int, repeats: int) -> float:
    """The best CPU microseconds per write of ``repeats`` rounds of ``writes`` writes."""
    config = Config(node_id="c1", durability="memory", bootstrap_expect=1)
    node = Node(config)
    replica = Replica(config)  # never started: no store, no transport, no timers
    replica.engine = AnsweringEngine()  # type: ignore[assignment]
    replica._engine_ready.set()
    node._replica = replica
    node._send_request = replica.submit  # as Node.start does
    value = "x" * 100
    best = float("inf")
    for _ in range(repeats):
        done = 0

        async def client() -> None:
            nonlocal done
            rng = random.Random()
            while done < writes:
                done += 1
                await node.set(f"k{rng.randrange(100_000)}", value)

        started = time.process_time()
        await asyncio.gather(*(client() for _ in range(WINDOW)))
        best = min(best, (time.process_time() - started) / done * 1e6)
    return best


def instructions_per_write() -> int:
    """Callgrind's count for 12,000 writes less its count for 2,000, over 10,000."""
    counts = []
    for writes in (2_000, 12_000):
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                __file__,
                "--writes",
                str(writes),
                "--repeats",
                "1",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) // 10_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    args = parser.parse_args()
    if args.instructions:
        print(f"{instructions_per_write():,} instructions per write (client path, stub engine)")
        return 0
    best: Any = run(measure(args.writes, args.repeats))
    print(f"{best:.2f} us CPU per write (client path, stub engine), best of {args.repeats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
