"""Storage benchmark: group-commit appends, journal replay, snapshot write and load.

Run from the repository root:

    .venv/bin/python benchmarks/storage.py            # full sizes, about two minutes
    .venv/bin/python benchmarks/storage.py --quick    # small sizes, a smoke run

Appends are measured in ``durable`` mode next to a bare Python loop of ``os.write`` +
``os.fdatasync`` of the same bytes, on the same disk, in the same run, alternating rounds
so that both see the same device; the ratio is the store's cost over the floor the disk sets.
Replay and snapshot load read from the page cache (the files were just written); a cold read
adds the device's sequential read time. The snapshot load runs in a child process so that its
peak RSS (``VmHWM`` of the child; ``ru_maxrss`` would include the forking parent's image)
measures the load alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack

from paxoskv.storage import CRC32C_IMPLEMENTATION, Store
from paxoskv.storage.framing import encode_frame

RECORD_SIZE_BYTES = 100


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def bench_appends(root: Path, quick: bool) -> None:
    print("\nappends, durable mode, 100-byte records (records/s):")
    print(f"  {'batch':>6} {'bare write+fdatasync':>22} {'Store.append+sync':>19} {'ratio':>7}")
    budget_s = 0.4 if quick else 5.0
    for batch in (1, 10, 100, 1000):
        progress(f"appends: batch {batch}, {budget_s:.1f} s")
        directory = Path(tempfile.mkdtemp(dir=root))
        bare, ours = append_rates(directory, batch, budget_s)
        shutil.rmtree(directory)
        print(f"  {batch:>6} {bare:>22,.0f} {ours:>19,.0f} {ours / bare:>7.0%}")


def append_rates(directory: Path, batch: int, budget_s: float) -> tuple[float, float]:
    """Bare loop and store take turns in short blocks, so both see the same device weather.

    The bare loop writes the very bytes the store writes (framed records) to a file in the
    same directory; only the store's own work differs.
    """
    records = [os.urandom(RECORD_SIZE_BYTES) for _ in range(batch)]
    payload = b"".join(encode_frame(record) for record in records)
    fd = os.open(directory / "bare.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    store = Store.open(directory / "store", durability="durable")

    def bare_step() -> None:
        os.write(fd, payload)
        os.fdatasync(fd)

    def store_step() -> None:
        store.append(records)
        store.sync()

    done = {bare_step: [0, 0.0], store_step: [0, 0.0]}  # records, seconds
    try:
        while sum(seconds for _, seconds in done.values()) < budget_s:
            for step, tally in done.items():
                start = time.perf_counter()
                while (elapsed := time.perf_counter() - start) < 0.1:
                    step()
                    tally[0] += batch
                tally[1] += elapsed
    finally:
        os.close(fd)
        store.close()
    return done[bare_step][0] / done[bare_step][1], done[store_step][0] / done[store_step][1]


def bench_replay(root: Path, quick: bool) -> None:
    count = 100_000 if quick else 1_000_000
    directory = root / "replay"
    progress(f"replay: writing a journal of {count:,} records")
    record = os.urandom(RECORD_SIZE_BYTES)
    with Store.open(directory) as store:  # durable, so open has nothing left to sync
        for _ in range(count // 10_000):
            store.append([record] * 10_000)
            store.sync()
    progress("replay: reading it back")
    start = time.perf_counter()
    with Store.open(directory) as store:
        opened = time.perf_counter()
        replayed = sum(1 for _ in store.recovered_records())
    elapsed = time.perf_counter() - start
    assert replayed == count, (replayed, count)
    print(f"\nreplay of {count:,} records of {RECORD_SIZE_BYTES} bytes (page cache warm):")
    rate = count / elapsed
    print(f"  open {opened - start:.2f} s, open + replay {elapsed:.2f} s: {rate:,.0f} records/s")
    shutil.rmtree(directory)


LOAD_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[2])
import msgpack
from paxoskv.storage import Store
start = time.perf_counter()
with Store.open(sys.argv[1]) as store:
    opened = time.perf_counter()
    if sys.argv[3] == "stream":
        covered, stream = store.recovered_snapshot_reader()
        state = msgpack.Unpacker(stream, read_size=1 << 20, max_buffer_size=0).unpack()
    else:
        covered, blob = store.recovered_snapshot()
        state = msgpack.unpackb(blob)
        del blob
elapsed = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent's image.
status = open("/proc/self/status").read().split("VmHWM:")[1]
peak_mb = int(status.split()[0]) / 1024
print(len(state), f"{opened - start:.3f}", f"{elapsed:.3f}", f"{peak_mb:.0f}")
"""


def bench_snapshot(root: Path, quick: bool) -> None:
    keys = 100_000 if quick else 1_000_000
    directory = root / "snapshot"
    progress(f"snapshot: building a state of {keys:,} keys")
    values = os.urandom(RECORD_SIZE_BYTES * keys)
    state = {
        f"key-{i:07d}": values[i * RECORD_SIZE_BYTES : (i + 1) * RECORD_SIZE_BYTES]
        for i in range(keys)
    }
    del values
    start = time.perf_counter()
    blob = msgpack.packb(state)
    packed = time.perf_counter()
    del state
    with Store.open(directory) as store:
        progress("snapshot: writing")
        written_start = time.perf_counter()
        store.write_snapshot(1, blob)
        written = time.perf_counter()
    size_mb = len(blob) / 1e6
    print(f"\nsnapshot of {keys:,} keys of {RECORD_SIZE_BYTES}-byte values ({size_mb:.0f} MB):")
    write_s = written - written_start
    print(f"  msgpack.packb {packed - start:.2f} s; write_snapshot (fsynced) {write_s:.2f} s")
    del blob
    repository = str(Path(__file__).resolve().parent.parent)
    for mode in ("stream", "bytes"):
        progress(f"snapshot: loading in a child process ({mode})")
        result = subprocess.run(
            [sys.executable, "-c", LOAD_CHILD, str(directory), repository, mode],
            check=True,
            capture_output=True,
            text=True,
        )
        loaded, opened_s, elapsed_s, peak_mb = result.stdout.split()
        assert int(loaded) == keys
        how = (
            "recovered_snapshot_reader + msgpack.Unpacker"
            if mode == "stream"
            else "recovered_snapshot + msgpack.unpackb"
        )
        print(
            f"  load via {how}: {float(elapsed_s):.2f} s (open and check {float(opened_s):.2f} s), "
            f"peak RSS {peak_mb} MB"
        )
    children_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"  (peak RSS is the child's VmHWM; getrusage(RUSAGE_CHILDREN) says {children_peak_mb:.0f}"
        " MB because Linux keeps ru_maxrss across exec, counting this parent's image)"
    )
    shutil.rmtree(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir in /tmp)")
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paxoskv-bench-", dir=arguments.dir))
    where = f"{root} (crc32c: {CRC32C_IMPLEMENTATION}, {os.cpu_count()} CPUs)"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"paxos-kv storage benchmark in {where}; load average {load}")
    started = time.perf_counter()
    try:
        bench_appends(root, arguments.quick)
        bench_replay(root, arguments.quick)
        bench_snapshot(root, arguments.quick)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average now {load}")


if __name__ == "__main__":
    main()
