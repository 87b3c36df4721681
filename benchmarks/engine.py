"""Commands per second through three engines in one process: codec yes, I/O no.

This is the ceiling the real system is measured against: three Paxos engines wired by a
queue, every message encoded and decoded as on the wire, every persist reported durable at
once, the state machine applying every command on every replica (with dedup, watch history,
and an encoded result for every command, answered on the leader). Single core. Each figure is
the best of ``--repeat`` runs, to keep other processes' noise out of it. The cyclic collector
runs with the threshold a node's process sets (``paxoskv.runtime.loop.node_collector``); under
CPython's default the same run is some 15-20% slower.

    python benchmarks/engine.py [--commands 200000] [--batch 1 --batch 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import deque

from paxoskv.compiled import build_name
from paxoskv.paxos import effects as fx
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.messages import Request, decode_message, encode_message
from paxoskv.runtime.loop import node_collector
from paxoskv.state import Configuration, Set, encode_command

NODES = ("a", "b", "c")


class Cluster:
    def __init__(self, window_slots: int) -> None:
        config = Configuration(voters=frozenset(NODES), learners=frozenset())
        self.now = 0.0
        self.engines = {
            node: Engine(
                EngineSettings(
                    node_id=node, window_slots=window_slots, snapshot_every_commands=10**9
                ),
                random.Random(i),
                config,
            )
            for i, node in enumerate(NODES)
        }
        self.wire: deque[tuple[str, str, bytes]] = deque()
        self.answered = 0
        self.messages = 0

    def handle(self, node: str, effects: list[fx.Effect]) -> None:
        """Carry out effects as a runtime would (the most frequent kind tested first)."""
        engine = self.engines[node]
        for effect in effects:
            if isinstance(effect, fx.Answers):
                self.answered += len(effect.seqs)
            elif isinstance(effect, fx.Send):
                self.wire.append((node, effect.to, encode_message(effect.message)))
            elif isinstance(effect, fx.Broadcast):
                data = encode_message(effect.message)
                for other in NODES:
                    if other != node:
                        self.wire.append((node, other, data))
            elif isinstance(effect, fx.Persist):
                self.handle(node, engine.handle_durable(effect.sync_id, self.now))

    def run(self) -> None:
        while self.wire:
            source, target, data = self.wire.popleft()
            self.messages += 1
            self.handle(
                target, self.engines[target].receive(source, decode_message(data), self.now)
            )

    def elect(self) -> str:
        engine = self.engines["a"]
        while not engine.is_leader:
            self.now = engine.next_deadline()
            self.handle("a", engine.tick(self.now))
            self.run()
        return "a"


def encoded_sets(commands: int, value_bytes: int) -> list[bytes]:
    """The clients' encoded commands: Sets of ``value_bytes`` to 10,000 keys in turn."""
    value = "x" * value_bytes
    return [encode_command(Set(f"key{i % 10_000}", value)) for i in range(commands)]


def measure(
    commands: int, batch: int, value_bytes: int, encoded: list[bytes] | None = None
) -> tuple[float, float]:
    """Commands/s and messages per command; ``encoded`` (at least ``commands`` long) saves
    encoding the commands here."""
    cluster = Cluster(window_slots=16)
    leader = cluster.elect()
    if encoded is None:
        encoded = encoded_sets(commands, value_bytes)
    started = time.perf_counter()
    seq = 0
    while seq < commands:
        requests = [
            Request("bench", seq + i, encoded[seq + i]) for i in range(min(batch, commands - seq))
        ]
        seq += len(requests)
        cluster.handle(leader, cluster.engines[leader].propose(requests, cluster.now))
        cluster.run()
    elapsed = time.perf_counter() - started
    assert cluster.answered == commands, (cluster.answered, commands)
    return commands / elapsed, cluster.messages / commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; best is shown")
    args = parser.parse_args()
    print(f"core: {build_name()}")
    for batch in args.batch or [1, 100]:
        count = args.commands if batch > 1 else min(args.commands, 20_000)
        print(f"running batch {batch}: {count} commands ...", file=sys.stderr, flush=True)
        with node_collector():
            runs = [measure(count, batch, args.value_bytes) for _ in range(max(args.repeat, 1))]
        rate, messages = max(runs)
        print(f"batch {batch:>4}: {rate:>10,.0f} commands/s  ({messages:.3f} messages per command)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
