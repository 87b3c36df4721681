"""A thin client (``paxoskv.connect``) against three ``paxos-kv node`` processes on loopback.

A web server that shares session state through a local node reaches it as a thin client:
every read and write is a datagram to a member and one back. This measures what that costs,
in this process (the client) and in the three nodes, for reads at each consistency and for
writes of 100 B to random keys among ``--keys`` filled first:

* one at a time (the latency a request handler sees): p50/p99;
* ``--window`` requests outstanding (a server handling many requests at once): requests/s.

With each, the CPU a request costs the client (this process) and the three nodes together
(``/proc``, so Linux only; left out elsewhere). The nodes run durable, as
``paxos-kv local-cluster`` starts them (a cluster of their own on a random group, loopback).

    python benchmarks/thin_client.py [--seconds 3] [--window 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compare_report import percentile
from paxoskv import connect
from paxoskv.cli.local_cluster import LocalCluster
from paxoskv.remote import Client

OPERATIONS = ("local", "leader", "linearizable", "write")  # reads at each consistency, then set
VALUE = "v" * 100


def node_cpu_s(cluster: LocalCluster) -> float | None:
    """CPU seconds the node processes have used so far; None where /proc is missing."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for node in cluster.nodes.values():
        try:
            fields = Path(f"/proc/{node.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def operation(
    client: Client, name: str, keys: int, rng: random.Random
) -> Callable[[], Awaitable[Any]]:
    if name == "write":
        return lambda: client.set(f"k{rng.randrange(keys)}", VALUE)
    return lambda: client.get(f"k{rng.randrange(keys)}", consistency=name)  # type: ignore[arg-type]


async def run_phase(
    client: Client, cluster: LocalCluster, name: str, window: int, args: argparse.Namespace
) -> dict[str, Any]:
    """``window`` callers, each one request after another, for ``args.seconds``."""
    latencies: list[float] = []
    found = 0  # reads that came back with the value filled in: all of them, or a bug
    stop_at = time.monotonic() + args.seconds

    async def caller(seed: int) -> None:
        nonlocal found
        ask = operation(client, name, args.keys, random.Random(seed))
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            answer = await ask()
            latencies.append(time.perf_counter() - started)
            found += answer == VALUE

    nodes_before = node_cpu_s(cluster)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    await asyncio.gather(*(caller(args.seed + seat) for seat in range(window)))
    wall = time.monotonic() - wall_before
    client_cpu = time.process_time() - cpu_before
    nodes_after = node_cpu_s(cluster)
    done = len(latencies)
    latencies_ms = sorted(latency * 1e3 for latency in latencies)
    nodes_cpu = None if nodes_before is None or nodes_after is None else nodes_after - nodes_before
    return {
        "operation": name,
        "window": window,
        "requests": done,
        "found": found / done if done and name != "write" else None,
        "per_s": done / wall,
        "p50_ms": percentile(latencies_ms, 0.5),
        "p99_ms": percentile(latencies_ms, 0.99),
        "client_cpu_us": client_cpu / done * 1e6 if done else None,
        "nodes_cpu_us": nodes_cpu / done * 1e6 if done and nodes_cpu is not None else None,
    }


async def measure(cluster: LocalCluster, args: argparse.Namespace) -> list[dict[str, Any]]:
    config = cluster.address.client_config(timeout_s=30.0)
    results = []
    async with connect(config) as client:
        for start in range(0, args.keys, 256):
            count = min(256, args.keys - start)
            await asyncio.gather(*(client.set(f"k{start + i}", VALUE) for i in range(count)))
        for name in OPERATIONS:
            for window in (1, args.window):
                results.append(await run_phase(client, cluster, name, window, args))
                print(_line(results[-1]), flush=True)
    return results


def _line(row: dict[str, Any]) -> str:
    nodes = row["nodes_cpu_us"]
    return (
        f"{row['operation']:>13s} {row['window']:>7d} {row['per_s']:>12,.0f} "
        f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['client_cpu_us']:>11.1f} "
        f"{'-' if nodes is None else f'{nodes:.1f}':>10s}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase")
    parser.add_argument("--window", type=int, default=64, help="requests outstanding")
    parser.add_argument("--keys", type=int, default=10_000, help="filled before, read at random")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="paxoskv-thin-") as scratch,
        LocalCluster(Path(scratch), voters=3, log_level="warning") as cluster,
    ):
        cluster.start()
        cluster.wait_ready(30.0)
        print(
            f"thin client against 3 durable nodes on 127.0.0.1, {args.keys:,} keys of 100 B, "
            f"{args.seconds:g}s a phase; CPU a request in this process and the nodes'"
        )
        print(
            f"{'operation':>13s} {'window':>7s} {'requests/s':>12s} {'p50 ms':>8s} "
            f"{'p99 ms':>8s} {'client µs':>11s} {'nodes µs':>10s}"
        )
        results = asyncio.run(measure(cluster, args))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
