"""What one read costs code without an event loop: a blocking handle on an embedded node.

The classic embedder is a web server whose request handlers are plain functions (Flask, a WSGI
app): it opens ``paxoskv.open_blocking(config, replica=True)`` and reads session state on every
request. Each blocking call is handed to the node's loop thread and waited for, except
``get_local``, which reads the node's own copy on the caller's thread. This times one reader,
one read at a time, each way the handle offers:

* ``get_local``: the own copy, on the caller's thread (no hand-over);
* ``get, local``: the same read handed to the loop's thread and back;
* ``get, linearizable``: the read the leader confirms first (one node: its own quorum).

One node (``bootstrap_expect=1``) on 127.0.0.1 with a loopback multicast group and a temporary
data dir, ``os`` durability, ``--keys`` keys of 100 B written first; reads go to random keys.

    python benchmarks/blocking_reads.py [--reads 20000] [--keys 10000]
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paxoskv import Config, open_blocking
from paxoskv.compiled import build_name

VALUE = "x" * 100


def timed(read: Callable[[str], Any], keys: list[str], reads: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    samples = []
    started = time.perf_counter()
    for _ in range(reads):
        key = keys[rng.randrange(len(keys))]
        before = time.perf_counter()
        read(key)
        samples.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "mean_us": statistics.fmean(samples) * 1e6,
        "reads_per_s": reads / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="paxoskv-blocking-reads-"))
    # A cluster and a multicast port of the run's own (not the seed's: two runs side by side,
    # or a local cluster of the developer's, must not meet).
    port = random.SystemRandom().randint(20_000, 60_000)
    config = Config(
        node_id="r1",
        data_dir=data_dir / "r1",
        durability="os",
        cluster=f"blocking-reads-{secrets.token_hex(4)}",
        group=f"239.255.74.77:{port}",
        interface="127.0.0.1",
        bootstrap_expect=1,
    )
    keys = [f"session/{index}" for index in range(args.keys)]
    ways: dict[str, Callable[[Any], Callable[[str], Any]]] = {
        "get_local": lambda kv: kv.get_local,
        "get, local": lambda kv: lambda key: kv.get(key, consistency="local"),
        "get, linearizable": lambda kv: kv.get,
    }
    try:
        with open_blocking(config, replica=True) as kv:
            kv.wait_ready(30)
            for key in keys:
                kv.set(key, VALUE)
            print(
                f"one reader, {args.reads:,} reads one at a time of {args.keys:,} keys of 100 B, "
                f"a blocking handle on an embedded node ({build_name()} core)"
            )
            print(f"{'read':20s} {'p50 us':>8s} {'p99 us':>8s} {'mean us':>8s} {'reads/s':>9s}")
            for name, way in ways.items():
                figures = timed(way(kv), keys, args.reads, args.seed)
                print(
                    f"{name:20s} {figures['p50_us']:8.1f} {figures['p99_us']:8.1f} "
                    f"{figures['mean_us']:8.1f} {figures['reads_per_s']:9,.0f}"
                )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
