"""One paxos-kv node process of the comparison: a ``paxoskv.Node`` and the clients it embeds.

The node is configured as ``benchmarks/cluster.py`` configures it (loopback multicast, a
cluster name and group port of the run's own, three voters bootstrapping together); where
that script runs one phase per process, this one stays up and takes the commands of
:mod:`benchmarks.compare_protocol`, so the comparison runs every value size on one cluster.

    python -m benchmarks.compare_paxoskv --index 1 --data-dir DIR --cluster NAME --group G
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.compare_protocol import (
    KEY_SPACE,
    client_seed,
    cpu_s,
    key_for,
    minor_faults,
    next_command,
    reply,
    resident_bytes,
    value_of,
)
from paxoskv import Config, Node
from paxoskv.errors import PaxosKVError
from paxoskv.runtime.loop import run

POLL_INTERVAL_S = 0.001  # how often a waiting node re-reads its own copy
REQUEST_TIMEOUT_S = 10.0  # a stuck write fails within the parent's bound for a phase

Handler = Callable[[Node, dict[str, Any], int], Awaitable[dict[str, Any]]]


async def status(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    return {"leader": bool((await node.status())["is_leader"])}


async def pipeline(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """``window`` clients, each with one write outstanding, so the node sees a full window.

    The figures are taken the moment the window closes (writes confirmed by then, the CPU
    spent until then); writes still in flight are abandoned with the cluster, which is not
    used again, so no drain stretches the phase.
    """
    value = value_of(int(command["value_bytes"]))
    start_at = float(command["start_at"])
    stop_at = start_at + float(command["seconds"])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu_before, faults_before = cpu_s(), minor_faults()
    counts = {"writes": 0, "errors": 0}
    error_kinds: Counter[str] = Counter()

    async def client(rng: random.Random) -> None:
        while True:
            try:
                await node.set(key_for(rng.randrange(KEY_SPACE)), value)
            except PaxosKVError as error:
                counts["errors"] += 1
                # The kind and what it says, numbers masked so that alike failures add up.
                said = re.sub(r"\d+", "N", str(error))[:100]
                error_kinds[f"{type(error).__name__} ({said})"] += 1
                continue
            counts["writes"] += 1

    seed = int(command["seed"])
    rngs = [random.Random(client_seed(seed, index, i)) for i in range(int(command["window"]))]
    clients = [asyncio.create_task(client(rng)) for rng in rngs]
    await asyncio.sleep(max(0.0, stop_at - time.time()))
    figures = {
        **counts,
        "cpu_s": cpu_s() - cpu_before,
        "minor_faults": minor_faults() - faults_before,
        "resident_bytes": resident_bytes(),
        "error_kinds": dict(error_kinds),
    }
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    return figures


async def latency(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """One client, one write at a time: each sample is a full round to committed."""
    value = value_of(int(command["value_bytes"]))
    stop_at = time.monotonic() + float(command["seconds"])
    samples_ms: list[float] = []
    errors = 0
    for i in range(int(command["max_writes"])):
        if time.monotonic() >= stop_at:
            break
        started = time.perf_counter()
        try:
            await node.set(f"lat{i % 100}", value)
        except PaxosKVError:
            errors += 1
            continue
        samples_ms.append((time.perf_counter() - started) * 1000)
    return {"latency_ms": sorted(samples_ms), "errors": errors}


async def fill(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """Pipelined writes until ``count`` are confirmed or ``seconds_max`` is up."""
    count = int(command["count"])
    value = value_of(int(command["value_bytes"]))
    started = time.monotonic()
    deadline = started + float(command["seconds_max"])
    counts = {"claimed": 0, "writes": 0, "errors": 0}

    async def client(rng: random.Random) -> None:
        while counts["claimed"] < count and time.monotonic() < deadline:
            counts["claimed"] += 1
            try:
                await node.set(key_for(rng.randrange(KEY_SPACE)), value)
            except PaxosKVError:
                counts["errors"] += 1
                counts["claimed"] -= 1
                continue
            counts["writes"] += 1

    seed = int(command["seed"])
    rngs = [random.Random(client_seed(seed, index, i)) for i in range(int(command["window"]))]
    await asyncio.gather(*(client(rng) for rng in rngs))
    wall_s = time.monotonic() - started
    return {"writes": counts["writes"], "errors": counts["errors"], "wall_s": wall_s}


async def reads(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """``window`` readers, each with one read outstanding, of random keys at ``consistency``.

    As :func:`pipeline`: the figures are taken as the window closes, reads in flight are
    abandoned. A key the fill never wrote is read as well (an answer of "none" is a read).
    """
    consistency = str(command["consistency"])
    start_at = float(command["start_at"])
    stop_at = start_at + float(command["seconds"])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu_before = cpu_s()
    counts = {"reads": 0, "errors": 0, "found": 0}
    seed = int(command["seed"])
    if consistency == "get_local":  # the synchronous read, one caller, as PySyncObj's reads
        rng = random.Random(client_seed(seed, index, 0))
        while time.time() < stop_at:
            for _ in range(1000):
                counts["found"] += node.get_local(key_for(rng.randrange(KEY_SPACE))) is not None
            counts["reads"] += 1000
            await asyncio.sleep(0)  # the node's own work between thousands (or it is deposed)
        return {**counts, "cpu_s": cpu_s() - cpu_before}

    async def reader(rng: random.Random) -> None:
        # The clock checked at each read, so the readers end with the phase by themselves (a
        # read that once answered without suspending kept a `while True` reader from ever
        # being cancelled: the bug runtime.loop.within mends).
        while time.time() < stop_at:
            try:
                value = await node.get(key_for(rng.randrange(KEY_SPACE)), consistency=consistency)
            except PaxosKVError:
                counts["errors"] += 1
                continue
            counts["reads"] += 1
            counts["found"] += value is not None

    rngs = [random.Random(client_seed(seed, index, i)) for i in range(int(command["window"]))]
    readers = [asyncio.create_task(reader(rng)) for rng in rngs]
    await asyncio.sleep(max(0.0, stop_at - time.time()))
    figures = {**counts, "cpu_s": cpu_s() - cpu_before}
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return figures


async def read_latency(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """One reader, one read at a time, at ``consistency``: each sample is a whole read."""
    consistency = str(command["consistency"])
    stop_at = time.monotonic() + float(command["seconds"])
    rng = random.Random(client_seed(int(command["seed"]), index, 0))
    samples_ms: list[float] = []
    errors = 0
    cpu_before = cpu_s()
    for _ in range(int(command["max_reads"])):
        if time.monotonic() >= stop_at:
            break
        key = key_for(rng.randrange(KEY_SPACE))
        started = time.perf_counter()
        try:
            if consistency == "get_local":
                node.get_local(key)
            else:
                await node.get(key, consistency=consistency)
        except PaxosKVError:
            errors += 1
            continue
        samples_ms.append((time.perf_counter() - started) * 1000)
    return {"latency_ms": sorted(samples_ms), "errors": errors, "cpu_s": cpu_s() - cpu_before}


async def put(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    await node.set(str(command["key"]), command["value"])
    return {"ok": True}


async def await_value(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    started = time.monotonic()
    ok = await _until_local(node, str(command["key"]), command["value"], command["limit_s"])
    return {"ok": ok, "waited_s": time.monotonic() - started}


async def _until_local(node: Node, key: str, value: Any, timeout_s: float) -> bool:
    """Until this node's own copy (a ``local`` read, no round trip) holds ``value``."""
    deadline = time.monotonic() + float(timeout_s)
    while time.monotonic() < deadline:
        try:
            if await node.get(key, consistency="local") == value:
                return True
        except PaxosKVError:
            pass
        await asyncio.sleep(POLL_INTERVAL_S)
    return False


HANDLERS: dict[str, Handler] = {
    "status": status,
    "pipeline": pipeline,
    "latency": latency,
    "fill": fill,
    "put": put,
    "await": await_value,
    "reads": reads,
    "read_latency": read_latency,
}


async def report_recovery(node: Node, key: str, value: str, args: argparse.Namespace) -> None:
    """Serving again: the own copy has the last write, then a linearizable read answers."""
    if not await _until_local(node, key, value, args.timeout_s):
        reply(op="recovered", ok=False, imported_at=args.imported_at)
        return
    read_at = time.time()
    await node.get(key)
    reply(
        op="recovered", ok=True, read_at=read_at, ready_at=time.time(), imported_at=args.imported_at
    )


async def serve(args: argparse.Namespace) -> None:
    config = Config(
        node_id=f"p{args.index}",
        data_dir=Path(args.data_dir),
        durability=args.durability,
        cluster=args.cluster,
        group=args.group,
        interface="127.0.0.1",
        bootstrap_expect=3,
        request_timeout_s=REQUEST_TIMEOUT_S,
    )
    async with Node(config) as node:
        if args.recover_key is not None:
            await report_recovery(node, args.recover_key, args.recover_value, args)
        await node.wait_ready(args.timeout_s)
        while (command := await asyncio.to_thread(next_command)) is not None:
            reply(**await HANDLERS[str(command["op"])](node, command, args.index))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--durability", default="durable", choices=("durable", "os"))
    parser.add_argument("--recover-key")
    parser.add_argument("--recover-value")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.set_defaults(imported_at=time.time())  # interpreter start-up and imports are done
    # Warnings go to stderr, which the parent keeps as this node's log (--work-dir keeps it).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    run(serve(parser.parse_args()))  # on uvloop where installed, as `paxos-kv node` runs


if __name__ == "__main__":
    main()
