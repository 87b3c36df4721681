"""Benchmark of the state machine alone (a benchmark, not a test).

    .venv/bin/python benchmarks/state.py [--keys 1000000] [--commands 200000]

Measures the replica's hot path (``apply_batch`` of a slot of Sets, as the engine applies a log
slot, with and without packing every answer; ``apply_encoded`` of one Set, with and without a
request id), the object path (``apply``), the codec, and snapshot / restore / digest of a large
map. Each figure is the best of three runs, to keep other processes' noise out of it.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from paxoskv.state import (
    Configuration,
    KVStateMachine,
    Set,
    decode_command,
    encode_command,
)

CONFIG = Configuration(frozenset({"a", "b", "c"}))


def best_of_three(run: Callable[[], float]) -> float:
    return min(run() for _ in range(3))


def per_command_us(commands: list[bytes], *, with_ids: bool, distinct_keys: bool) -> float:
    def run() -> float:
        machine = KVStateMachine(CONFIG)
        if not distinct_keys:  # updates of keys that exist, the steady state of a session store
            for log_time_ms, data in enumerate(commands[:10_000]):
                machine.apply_encoded(data, log_time_ms)
        start = time.perf_counter()
        for log_time_ms, data in enumerate(commands):
            if with_ids:
                client = f"client-{log_time_ms % 64}"
                machine.apply_encoded(data, log_time_ms, client_id=client, seq=log_time_ms // 64)
            else:
                machine.apply_encoded(data, log_time_ms)
        return (time.perf_counter() - start) / len(commands) * 1e6

    return best_of_three(run)


def batch_us(commands: list[bytes], *, answered: bool, batch: int = 100) -> float:
    """Per command, slots of ``batch`` requests from 64 clients, as the engine feeds them.

    ``answered``: every result is packed, as on the node whose clients wait for them (the
    leader, in a benchmark); otherwise only the dedup table keeps them, as on a follower.
    """

    def run() -> float:
        machine = KVStateMachine(CONFIG)
        for log_time_ms, data in enumerate(commands[:10_000]):
            machine.apply_encoded(data, log_time_ms)
        slots = []
        for first in range(0, len(commands), batch):
            numbers = range(first, min(first + batch, len(commands)))
            slots.append(
                (
                    [f"client-{i % 64}" for i in numbers],
                    [i // 64 for i in numbers],
                    commands[first : first + batch],
                )
            )
        start = time.perf_counter()
        for log_time_ms, (client_ids, seqs, slot_commands) in enumerate(slots, 10_000):
            wanted: dict[str, set[int]] | None = None
            if answered:
                wanted = {}
                for client_id, seq in zip(client_ids, seqs, strict=True):
                    wanted.setdefault(client_id, set()).add(seq)
            machine.apply_batch(client_ids, seqs, slot_commands, log_time_ms, answer=wanted)
        return (time.perf_counter() - start) / len(commands) * 1e6

    return best_of_three(run)


def object_path_us(count: int) -> float:
    commands = [Set(f"session:{i % 10_000}", "v" * 100) for i in range(count)]

    def run() -> float:
        machine = KVStateMachine(CONFIG)
        start = time.perf_counter()
        for log_time_ms, command in enumerate(commands):
            machine.apply(command, log_time_ms)
        return (time.perf_counter() - start) / count * 1e6

    return best_of_three(run)


def codec_us(count: int) -> tuple[float, float]:
    command = Set(("session", "4f1c2a"), {"user": 42, "cart": [1, 2, 3]})
    encoded = encode_command(command)

    def encode() -> float:
        start = time.perf_counter()
        for _ in range(count):
            encode_command(command)
        return (time.perf_counter() - start) / count * 1e6

    def decode() -> float:
        start = time.perf_counter()
        for _ in range(count):
            decode_command(encoded)
        return (time.perf_counter() - start) / count * 1e6

    return best_of_three(encode), best_of_three(decode)


def large_map(keys: int) -> None:
    machine = KVStateMachine(CONFIG)
    for i in range(keys):
        machine.apply_encoded(encode_command(Set(f"session:{i:08d}", {"user": i})), i)
    gc.collect()
    timings = {}
    start = time.perf_counter()
    snapshot = machine.snapshot()
    timings["snapshot"] = time.perf_counter() - start
    start = time.perf_counter()
    restored = KVStateMachine.restore(snapshot)
    timings["restore"] = time.perf_counter() - start
    start = time.perf_counter()
    digest = machine.digest()
    timings["digest"] = time.perf_counter() - start
    assert restored.digest() == digest
    print(
        f"{keys:,} keys: snapshot {timings['snapshot']:.2f} s ({len(snapshot) / 1e6:.0f} MB), "
        f"restore {timings['restore']:.2f} s, digest {timings['digest']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--commands", type=int, default=200_000)
    args = parser.parse_args()
    updates = [
        encode_command(Set(f"session:{i % 10_000}", "v" * 100)) for i in range(args.commands)
    ]
    creates = [encode_command(Set(f"new:{i}", "v" * 100)) for i in range(args.commands)]
    for label, commands, with_ids, distinct in [
        ("apply_encoded Set, 10k keys updated", updates, False, False),
        ("apply_encoded Set, 10k keys updated, with request ids", updates, True, False),
        ("apply_encoded Set, every key new", creates, False, True),
    ]:
        micros = per_command_us(commands, with_ids=with_ids, distinct_keys=distinct)
        print(f"{label}: {micros:.2f} us/command ({1e6 / micros:,.0f}/s)")
    for answered in (False, True):
        micros = batch_us(updates, answered=answered)
        label = "every result packed" if answered else "results kept unpacked"
        print(f"apply_batch of 100 Sets, 64 clients, {label}: {micros:.2f} us/command")
    print(f"apply(Set) object path: {object_path_us(args.commands):.2f} us/command")
    encode, decode = codec_us(args.commands)
    print(f"encode_command {encode:.2f} us, decode_command {decode:.2f} us (tuple key, dict value)")
    large_map(args.keys)


if __name__ == "__main__":
    main()
