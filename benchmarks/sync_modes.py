"""Ways to make one small write durable on this disk, timed side by side.

A durable write of paxos-kv waits for a write + fdatasync on a majority (``storage/writer.py``).
This asks whether the disk offers a cheaper way to the same guarantee: each mode writes
``--writes`` blocks at increasing offsets of a file preallocated with zeros and synced (as the
journal's segments are, so no sync commits a change of size), one at a time, and prints the
p50, p90 and p99 of a write's time until it is durable. ``O_DIRECT`` needs aligned buffers,
so the blocks come from an anonymous ``mmap`` (page-aligned).

Then the same write + fdatasync of 512 B made by two and by three threads at once, each to a
file of its own, started together round after round: what a durable write waits for when the
three nodes of a cluster on one machine sync one disk at the same moment (a write is chosen
once a majority synced, so by the second completion of three). The k-th completion of each
round is timed from the round's start.

    python benchmarks/sync_modes.py [--dir DIR] [--writes 2000]
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

FILE_BYTES = 64 << 20
ORDINALS = ("1st", "2nd", "3rd")
MODES: tuple[tuple[str, int, int, bool], ...] = (
    # name, extra open flags, block size, fdatasync after each write
    ("write + fdatasync, 4 KB", 0, 4096, True),
    ("O_DSYNC, 4 KB", os.O_DSYNC, 4096, False),
    ("O_DIRECT | O_DSYNC, 4 KB", os.O_DIRECT | os.O_DSYNC, 4096, False),
    ("O_DIRECT + fdatasync, 4 KB", os.O_DIRECT, 4096, True),
    ("write + fdatasync, 512 B", 0, 512, True),
)


def preallocated(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, bytes(FILE_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)


def latencies_ms(path: Path, flags: int, block: int, sync: bool, writes: int) -> list[float]:
    preallocated(path)
    fd = os.open(path, os.O_RDWR | flags)
    buffer = mmap.mmap(-1, block)
    buffer.write(b"v" * block)
    times = []
    try:
        for index in range(min(writes, FILE_BYTES // block)):
            started = time.perf_counter()
            os.pwrite(fd, buffer, index * block)
            if sync:
                os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        buffer.close()
        path.unlink()
    return sorted(times)


def completions_ms(directory: Path, writers: int, rounds: int) -> list[list[float]]:
    """Per round, the times (sorted) at which each of ``writers`` threads had its own 512 B
    write + fdatasync done, from the moment the round started."""
    fds = []
    for index in range(writers):
        path = directory / f"at-once-{index}"
        preallocated(path)
        fds.append(os.open(path, os.O_RDWR))
    start = threading.Barrier(writers + 1)
    done = threading.Barrier(writers + 1)
    taken = [[0.0] * rounds for _ in range(writers)]

    def write(index: int) -> None:
        block = b"v" * 512
        for round_ in range(rounds):
            start.wait()
            began = time.perf_counter()
            os.pwrite(fds[index], block, round_ * 4096)
            os.fdatasync(fds[index])
            taken[index][round_] = (time.perf_counter() - began) * 1000
            done.wait()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(rounds):
            start.wait()
            done.wait()
        for thread in threads:
            thread.join()
    finally:
        for fd in fds:
            os.close(fd)
    return [sorted(taken[index][round_] for index in range(writers)) for round_ in range(rounds)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where (default: a temp dir)")
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(dir=args.dir, prefix="sync-modes-"))
    try:
        print(f"{'mode':28s} {'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s}")
        for name, flags, block, sync in MODES:
            times = latencies_ms(directory / "blocks", flags, block, sync, args.writes)
            p50, p90, p99 = (times[len(times) * share // 100] for share in (50, 90, 99))
            print(f"{name:28s} {p50:7.3f} {p90:7.3f} {p99:7.3f}")
        rounds = min(args.writes, FILE_BYTES // 4096)
        for writers in (2, 3):
            per_round = completions_ms(directory, writers, rounds)
            for k in range(writers):
                times = sorted(round_[k] for round_ in per_round)
                p50, p90, p99 = (times[len(times) * share // 100] for share in (50, 90, 99))
                name = f"{writers} at once, {ORDINALS[k]} done"
                print(f"{name:28s} {p50:7.3f} {p90:7.3f} {p99:7.3f}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
