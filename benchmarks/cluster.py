"""Committed writes per second and single-write latency of a 3-process cluster on loopback.

Three processes each embed a node (``paxoskv.Node``, durable mode: every acknowledged write is
fsynced on a majority) and, once the cluster has formed, pipeline writes to random keys from
clients inside the same process (a window of writes outstanding per process) for a fixed time.
Counted are writes confirmed to their caller. A second phase measures one client's sequential
writes, one at a time, for p50/p99 latency, from the leader's process (as an application
embedding the leader sees them; a client on a follower adds a forward and an answer hop).

    python benchmarks/cluster.py [--seconds 5] [--window 128] [--durability durable]

Each size also prints the CPU per write of each process (leader first), how many slots the
writes took, and each process's frames sent per write: where a change moved the cost to. The
latency phase prints the CPU its writes cost the three processes (read from ``/proc`` when the
client starts and ends, Linux only): with three processes on two cores, a sequential write
waits for a core about as often as for a message, so its CPU bounds its latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from paxoskv.compiled import build_name
from paxoskv.runtime.loop import run

WORKER_FLAGS = ("--worker",)
MARK_START, MARK_END = "latency-start", "latency-end"


async def worker(args: argparse.Namespace) -> None:
    from paxoskv import Config, Node

    config = Config(
        node_id=args.node_id,
        data_dir=Path(args.data_dir),
        durability=args.durability,
        cluster=args.cluster,
        group=args.group,
        interface="127.0.0.1",
        bootstrap_expect=3,
        request_timeout_s=30.0,
    )
    value = "x" * args.value_bytes
    async with Node(config) as node:
        await node.wait_ready(30)
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        if args.latency and not await _leads(node, args.start_at):
            print(json.dumps({}), flush=True)  # the client runs in the leader's process
        elif args.latency:
            latencies = []
            print(MARK_START, flush=True)  # the runner takes every process's CPU time here
            for i in range(args.latency):
                started = time.perf_counter()
                await node.set(f"lat{i % 100}", value)
                latencies.append((time.perf_counter() - started) * 1000)
            print(MARK_END, flush=True)  # and here
            latencies.sort()
            print(json.dumps({"latency_ms": latencies, **_build()}), flush=True)
        else:
            stop_at = args.start_at + args.seconds
            done = 0

            async def client() -> None:
                nonlocal done
                rng = random.Random()
                while time.time() < stop_at:
                    await node.set(f"k{rng.randrange(100_000)}", value)
                    done += 1

            before = await node.status()
            cpu_before = time.process_time()
            await asyncio.gather(*(client() for _ in range(args.window)))
            cpu = time.process_time() - cpu_before
            after = await node.status()
            counts = {
                "slots": after["applied_slot"] - before["applied_slot"],
                "sent": after["transport"]["sent_frames"] - before["transport"]["sent_frames"],
                "received": after["transport"]["received_frames"]
                - before["transport"]["received_frames"],
            }
            report = {"writes": done, "cpu_s": cpu, "leader": after["is_leader"], **counts}
            print(json.dumps({**report, **_build()}), flush=True)
        await asyncio.sleep(args.linger)  # let the others finish before a quorum leaves


def _build() -> dict[str, str]:
    """Which code this worker runs: its build, and where it imported paxoskv from (a worker
    runs whatever ``PYTHONPATH`` gives it, which may not be the runner's checkout)."""
    import paxoskv

    return {"core": build_name(), "package": str(Path(paxoskv.__file__ or "?").parent)}


async def _leads(node: Any, until: float) -> bool:
    """Whether this node leads, once the cluster has one (the others answer no)."""
    while True:
        status = await node.status()
        if status["is_leader"] or status.get("leader") or time.time() > until + 10:
            return bool(status["is_leader"])
        await asyncio.sleep(0.05)


def run_phase(
    value_bytes: int, seconds: float, window: int, durability: str, latency: int
) -> list[dict[str, object]]:
    cluster = f"bench-{secrets.token_hex(4)}"
    group = (
        f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}:{random.randint(20000, 60000)}"
    )
    start_at = time.time() + 3.0
    with tempfile.TemporaryDirectory(prefix="paxoskv-bench-") as root:
        processes = []
        for index in (1, 2, 3):
            command = [
                sys.executable,
                __file__,
                "--worker",
                "--node-id",
                f"b{index}",
                "--data-dir",
                str(Path(root) / f"b{index}"),
                "--cluster",
                cluster,
                "--group",
                group,
                "--value-bytes",
                str(value_bytes),
                "--seconds",
                str(seconds),
                "--window",
                str(window),
                "--durability",
                durability,
                "--start-at",
                str(start_at),
                "--linger",
                str(1.5 + latency * 0.01),  # the others outlive the latency run
                "--latency",
                str(latency),
            ]
            if latency:
                command[command.index("--seconds") + 1] = "0"
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        outputs: list[list[str]] = [[] for _ in processes]
        marks: list[list[float]] = []  # each process's CPU seconds at each mark
        switches: list[list[int]] = []  # and its threads' context switches

        def read(index: int) -> None:
            stdout = processes[index].stdout
            assert stdout is not None
            for line in stdout:
                if line.strip() in (MARK_START, MARK_END):
                    marks.append([_cpu_s(process.pid) for process in processes])
                    switches.append([_switches(process.pid) for process in processes])
                outputs[index].append(line)

        readers = [threading.Thread(target=read, args=(i,)) for i in range(len(processes))]
        for reader in readers:
            reader.start()
        results: list[dict[str, object]] = []
        try:
            for process, reader in zip(processes, readers, strict=True):
                process.wait(timeout=seconds + 60 + latency * 0.05)
                reader.join()
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        for lines in outputs:
            found = [line for line in lines if line.startswith("{")]
            results.append(json.loads(found[-1]) if found else {})
        builds = sorted({f"{r['core']} core from {r['package']}" for r in results if "core" in r})
        print(f"          workers ran: {'; '.join(builds) or 'unknown'}", flush=True)
        if len(marks) == 2 and all(x >= 0 for x in marks[0] + marks[1]):
            for result, before, after in zip(results, *marks, strict=True):
                result["latency_cpu_s"] = after - before
            for result, before_n, after_n in zip(results, *switches, strict=True):
                result["latency_switches"] = after_n - before_n
        return results


def _switches(pid: int) -> int:
    """A process's context switches (all its threads, voluntary or not), from /proc: each
    is a wake-up or a preemption, which on a busy host is where a sequential write waits."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in status.read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _cpu_s(pid: int) -> float:
    """A process's CPU seconds (all its threads), from /proc; -1 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--node-id")
    parser.add_argument("--data-dir")
    parser.add_argument("--cluster")
    parser.add_argument("--group")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--linger", type=float, default=1.0)
    parser.add_argument("--latency", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--durability", default="durable", choices=("durable", "os"))
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--latency-writes", type=int, default=500, help="0: skip that phase")
    parser.add_argument("--latency-only", action="store_true", help="skip the pipelined phase")
    args = parser.parse_args()
    if args.worker:
        run(worker(args))  # on uvloop where installed, as `paxos-kv node` runs
        return 0
    print(
        f"cluster benchmark: 3 processes on 127.0.0.1, {args.durability} mode, {build_name()} core",
        flush=True,
    )
    sizes = [] if args.latency_only else [int(s) for s in args.sizes.split(",") if s.strip()]
    for size in sizes:
        print(
            f"  pipelined writes, {size} B values, {args.seconds:g}s ...",
            file=sys.stderr,
            flush=True,
        )
        results = run_phase(size, args.seconds, args.window, args.durability, 0)
        writes = sum(int(r.get("writes", 0)) for r in results)
        cpu = sum(float(r.get("cpu_s", 0.0)) for r in results)
        per_cpu = cpu / writes * 1e6 if writes else float("nan")
        print(
            f"{size:>6} B: {writes / args.seconds:>10,.0f} committed writes/s "
            f"({writes} in {args.seconds:g}s, {per_cpu:.0f} us CPU per write across 3 processes)",
            flush=True,
        )
        if writes:
            shares = sorted(results, key=lambda r: not r.get("leader"))
            print(
                "          CPU per write by process, leader first: "
                + ", ".join(f"{float(r.get('cpu_s', 0.0)) / writes * 1e6:.1f}" for r in shares)
                + " us; slots "
                + str(max(int(r.get("slots", 0)) for r in results))
                + ", frames sent by each "
                + ", ".join(f"{int(r.get('sent', 0)) / writes:.3f}" for r in shares)
                + " per write",
                flush=True,
            )
    if not args.latency_writes:
        return 0
    print(
        f"  single client, {args.latency_writes} sequential writes ...", file=sys.stderr, flush=True
    )
    results = run_phase(100, 0, 1, args.durability, args.latency_writes)
    latencies = [x for r in results for x in r.get("latency_ms", [])]  # type: ignore[attr-defined]
    if latencies:
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
        print(
            f"latency of one client's sequential writes: p50 {p(0.5):.2f} ms, p90 {p(0.9):.2f} ms, "
            f"p99 {p(0.99):.2f} ms (mean {statistics.fmean(latencies):.2f} ms)"
        )
        shares = sorted(results, key=lambda r: "latency_ms" not in r)  # the client's first
        cpu = [float(r.get("latency_cpu_s", -1.0)) for r in shares]  # type: ignore[arg-type]
        if all(x >= 0 for x in cpu):
            print(
                f"          CPU per write {sum(cpu) / len(latencies) * 1e6:.0f} us across 3 "
                "processes (the client's first: "
                + ", ".join(f"{x / len(latencies) * 1e6:.0f}" for x in cpu)
                + " us)"
            )
        switches = [int(r.get("latency_switches", -1)) for r in shares]  # type: ignore[call-overload]
        if all(x >= 0 for x in switches):
            print(
                "          context switches per write, the client's process first: "
                + ", ".join(f"{x / len(latencies):.2f}" for x in switches)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
