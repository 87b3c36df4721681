"""How committed writes/s and CPU per write change with voters and learners, in real processes.

Each shape (voters + learners) is a fresh cluster of ``paxoskv.Node`` processes on 127.0.0.1:
multicast on loopback only, a cluster name and multicast group/port of the run's own, a data
dir per node under a temporary directory removed afterwards. Voters bootstrap together
(``bootstrap_expect``); learners are started once a leader is elected and join as learners do
in production, one configuration change each through the log. When every learner is in the
configuration, clients pipeline writes (``window`` writes outstanding, random keys, one value
size) for a warm-up and then a measured window; every node reports the CPU its process spent
within that window (``time.process_time``: all its threads) and the datagrams its transport
sent and received.

Where the clients run is a choice (``--clients-in``): ``leader`` (default) puts them all in
the leader's process, so every other process does replication work only and its CPU per
write is the cost of following; ``voters`` puts a window in every voter, as
``benchmarks/cluster.py`` does, and followers then also forward.

    python benchmarks/scale.py [--quick] [--durability os|durable] [--json scale.json]

Every step is bounded (start-up, the measured window, shutdown); a shape whose nodes fail or
do not answer is reported as failed with the tail of the node's log, and whatever processes
remain are killed before the next shape starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks.*`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compare_cluster import NodeProcess, WorkerFailed
from benchmarks.compare_protocol import (
    KEY_SPACE,
    client_seed,
    key_for,
    next_command,
    reply,
    value_of,
)

FULL_SHAPES = "3+0,5+0,7+0,3+2,3+5,3+10"
QUICK_SHAPES = "3+0,5+0,3+2"
START_TIMEOUT_S = 60.0  # processes up, a leader elected, every learner in the configuration
ANSWER_SLACK_S = 30.0  # beyond the window itself, for a node loaded by a dozen others
REQUEST_TIMEOUT_S = 10.0

# --- the node process ------------------------------------------------------------------------

Handler = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]


async def status(node: Any, command: dict[str, Any]) -> dict[str, Any]:
    state = await node.status()
    return {
        "leader": bool(state["is_leader"]),
        "voters": state["voters"],
        "learners": state["learners"],
        "applied_slot": state["applied_slot"],
    }


async def measure(node: Any, command: dict[str, Any]) -> dict[str, Any]:
    """Clients from now on (the warm-up), figures between ``start_at`` and ``stop_at``.

    A node without clients (``window`` 0) only measures: what it spends is what following
    the leader costs it.
    """
    from paxoskv.errors import PaxosKVError

    value = value_of(int(command["value_bytes"]))
    counts = {"writes": 0, "errors": 0}

    async def client(rng: random.Random) -> None:
        while True:
            try:
                await node.set(key_for(rng.randrange(KEY_SPACE)), value)
            except PaxosKVError:
                counts["errors"] += 1
                continue
            counts["writes"] += 1

    seed, index = int(command["seed"]), int(command["index"])
    window = int(command["window"])
    clients = [
        asyncio.create_task(client(random.Random(client_seed(seed, index, i))))
        for i in range(window)
    ]
    try:
        await asyncio.sleep(max(0.0, float(command["start_at"]) - time.time()))
        before = await _figures(node, counts)
        await asyncio.sleep(max(0.0, float(command["stop_at"]) - time.time()))
        after = await _figures(node, counts)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return {name: after[name] - before[name] for name in after}


async def _figures(node: Any, counts: dict[str, int]) -> dict[str, float]:
    transport = (await node.status())["transport"]
    return {
        "wall_s": time.time(),
        "cpu_s": time.process_time(),  # all threads; ns resolution, where os.times has 10 ms
        "writes": counts["writes"],
        "errors": counts["errors"],
        "sent_frames": transport.get("sent_frames", 0),
        "received_frames": transport.get("received_frames", 0),
    }


HANDLERS: dict[str, Handler] = {"status": status, "measure": measure}


async def serve(args: argparse.Namespace) -> None:
    from paxoskv import Config, Node

    config = Config(
        node_id=args.node_id,
        data_dir=Path(args.data_dir),
        durability=args.durability,
        cluster=args.cluster,
        group=args.group,
        interface="127.0.0.1",
        learner=args.learner,
        bootstrap_expect=None if args.learner else args.voters,
        request_timeout_s=REQUEST_TIMEOUT_S,
    )
    async with Node(config) as node:
        await node.wait_ready(START_TIMEOUT_S)
        while (command := await asyncio.to_thread(next_command)) is not None:
            reply(**await HANDLERS[str(command["op"])](node, command))


# --- the parent: shapes, clusters, figures -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    voters: int
    learners: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        try:
            voters, learners = (int(part) for part in text.split("+"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"shape {text!r} is not VOTERS+LEARNERS, e.g. 3+0 or 3+10"
            ) from None
        if voters < 1 or learners < 0:
            raise argparse.ArgumentTypeError(f"shape {text!r}: need a voter and no negative count")
        return cls(voters, learners)

    def __str__(self) -> str:
        return f"{self.voters}+{self.learners}"


@dataclass(frozen=True, slots=True)
class Settings:
    seconds: float
    warmup_s: float
    window: int
    value_bytes: int
    durability: str
    clients_in: str
    seed: int


@dataclass(frozen=True, slots=True)
class ShapeResult:
    """One shape's figures; CPU per write is over the writes the whole cluster committed."""

    voters: int
    learners: int
    writes: int = 0
    errors: int = 0
    window_s: float = 0.0
    writes_per_s: float = 0.0
    leader_cpu_s_per_1000_writes: float = 0.0
    leader_cpu_share: float = 0.0  # of one core, over the window
    follower_cpu_us_per_write: float = 0.0  # mean of the voters that do not lead
    learner_cpu_us_per_write: float = 0.0  # mean of the learners (0 without learners)
    leader_sent_frames_per_write: float = 0.0
    leader_received_frames_per_write: float = 0.0
    machine_cpu_share: float = 0.0  # all nodes' CPU over the window / (window x cores)
    load_average_1m: float = 0.0  # as the window closed, others' work included
    failure: str | None = None
    nodes: list[dict[str, Any]] = field(default_factory=list)


class ShapeCluster:
    """The processes of one shape; closing it kills whatever is left of them."""

    def __init__(self, shape: Shape, settings: Settings, root: Path) -> None:
        self.shape = shape
        self.settings = settings
        self.root = root
        self.nodes: dict[str, NodeProcess] = {}
        self.name = f"scale-{secrets.token_hex(4)}"
        octets = secrets.randbelow(254) + 1, secrets.randbelow(254) + 1
        self.group = f"239.255.{octets[0]}.{octets[1]}:{20_000 + secrets.randbelow(40_000)}"

    def spawn(self, node_id: str, *, learner: bool) -> None:
        argv = [
            *(sys.executable, "-m", "benchmarks.scale", "--worker", "--node-id", node_id),
            *("--data-dir", str(self.root / node_id), "--cluster", self.name),
            *("--group", self.group, "--durability", self.settings.durability),
            *("--voters", str(self.shape.voters)),
            *(("--learner",) if learner else ()),
        ]
        self.nodes[node_id] = NodeProcess(argv, self.root / f"{node_id}.log")

    def ask(self, node_id: str, op: str, timeout_s: float, **fields: Any) -> dict[str, Any]:
        self.nodes[node_id].send(op, **fields)
        return self.nodes[node_id].receive(timeout_s, op)

    def start(self, deadline: float) -> str:
        """Voters, a leader, then the learners until all are members: the leader's id."""
        for index in range(1, self.shape.voters + 1):
            self.spawn(f"v{index}", learner=False)
        self._wait(deadline, lambda state: True)  # voters first: learners join a formed cluster
        for index in range(1, self.shape.learners + 1):
            self.spawn(f"l{index}", learner=True)
        expected = {f"l{index}" for index in range(1, self.shape.learners + 1)}
        return self._wait(deadline, lambda state: set(state["learners"]) >= expected)

    def _wait(self, deadline: float, done: Callable[[dict[str, Any]], bool]) -> str:
        """Poll the voters until exactly one leads and its view satisfies ``done``."""
        voters = [node_id for node_id in self.nodes if node_id.startswith("v")]
        while time.monotonic() < deadline:
            remaining = max(1.0, deadline - time.monotonic())
            states = {node_id: self.ask(node_id, "status", remaining) for node_id in voters}
            leaders = [node_id for node_id, state in states.items() if state["leader"]]
            if len(leaders) == 1 and done(states[leaders[0]]):
                return leaders[0]
            time.sleep(0.1)  # an election or a join under way: ask again shortly
        raise WorkerFailed(f"shape {self.shape}: not formed within {START_TIMEOUT_S:.0f}s")

    def measure(self, leader: str) -> dict[str, dict[str, Any]]:
        """Every node measures the same window; the clients sit where ``clients_in`` says."""
        settings = self.settings
        start_at = time.time() + settings.warmup_s
        stop_at = start_at + settings.seconds
        order = sorted(self.nodes)
        for index, node_id in enumerate(order):
            with_clients = node_id == leader or (
                settings.clients_in == "voters" and node_id.startswith("v")
            )
            self.nodes[node_id].send(
                "measure",
                start_at=start_at,
                stop_at=stop_at,
                window=settings.window if with_clients else 0,
                value_bytes=settings.value_bytes,
                seed=settings.seed,
                index=index,
            )
        timeout_s = settings.warmup_s + settings.seconds + ANSWER_SLACK_S
        return {node_id: self.nodes[node_id].receive(timeout_s, "measure") for node_id in order}

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop(timeout_s=5.0)


def run_shape(shape: Shape, settings: Settings) -> ShapeResult:
    with tempfile.TemporaryDirectory(prefix="paxoskv-scale-") as root:
        cluster = ShapeCluster(shape, settings, Path(root))
        try:
            leader = cluster.start(time.monotonic() + START_TIMEOUT_S)
            figures = cluster.measure(leader)
        except WorkerFailed as error:
            return ShapeResult(shape.voters, shape.learners, failure=str(error))
        finally:
            cluster.close()
    return summarise(shape, leader, figures)


def summarise(shape: Shape, leader: str, figures: dict[str, dict[str, Any]]) -> ShapeResult:
    """Per-write figures over every write the cluster committed within the window."""
    writes = sum(int(f["writes"]) for f in figures.values())
    per_write = 1 / writes if writes else float("nan")
    window_s = float(figures[leader]["wall_s"])
    lead = figures[leader]
    followers = [
        f for node_id, f in figures.items() if node_id.startswith("v") and node_id != leader
    ]
    learners = [f for node_id, f in figures.items() if node_id.startswith("l")]
    total_cpu_s = sum(float(f["cpu_s"]) for f in figures.values())
    return ShapeResult(
        shape.voters,
        shape.learners,
        writes=writes,
        errors=sum(int(f["errors"]) for f in figures.values()),
        window_s=window_s,
        writes_per_s=writes / window_s,
        leader_cpu_s_per_1000_writes=float(lead["cpu_s"]) * per_write * 1000,
        leader_cpu_share=float(lead["cpu_s"]) / window_s,
        follower_cpu_us_per_write=_mean_cpu(followers) * per_write * 1e6,
        learner_cpu_us_per_write=_mean_cpu(learners) * per_write * 1e6,
        leader_sent_frames_per_write=float(lead["sent_frames"]) * per_write,
        leader_received_frames_per_write=float(lead["received_frames"]) * per_write,
        machine_cpu_share=total_cpu_s / (window_s * (os.cpu_count() or 1)),
        load_average_1m=os.getloadavg()[0],
        nodes=[{"node_id": node_id, **f} for node_id, f in sorted(figures.items())],
    )


def _mean_cpu(figures: Sequence[dict[str, Any]]) -> float:
    return statistics.fmean(float(f["cpu_s"]) for f in figures) if figures else 0.0


HEADER = (
    "voters learners   writes/s  leader CPU s/1000 writes  leader core  follower us/write"
    "  learner us/write  leader frames out/in per write  2 cores busy  load 1m"
)


def row(result: ShapeResult) -> str:
    head = f"{result.voters:>6} {result.learners:>8}"
    if result.failure is not None:
        return f"{head}   FAILED: {result.failure.splitlines()[0]}"
    frames = (
        f"{result.leader_sent_frames_per_write:.2f} / {result.leader_received_frames_per_write:.2f}"
    )
    return (
        f"{head} {result.writes_per_s:>10,.0f} {result.leader_cpu_s_per_1000_writes:>25.3f}"
        f" {result.leader_cpu_share:>11.0%} {result.follower_cpu_us_per_write:>18.0f}"
        f" {result.learner_cpu_us_per_write:>17.0f} {frames:>31} {result.machine_cpu_share:>13.0%}"
        f" {result.load_average_1m:>8.2f}"
    )


def run(shapes: Sequence[Shape], settings: Settings, budget_s: float) -> list[ShapeResult]:
    """Shape by shape, skipping any that could not finish within what is left of the budget."""
    started = time.monotonic()
    results = []
    print(HEADER, flush=True)
    for shape in shapes:
        needed_s = settings.warmup_s + settings.seconds + 5 + 0.5 * (shape.voters + shape.learners)
        if time.monotonic() - started + needed_s > budget_s:
            print(f"{shape.voters:>6} {shape.learners:>8}   skipped: over the budget", flush=True)
            continue
        print(f"  {shape}: starting ...", file=sys.stderr, flush=True)
        result = run_shape(shape, settings)
        results.append(result)
        print(row(result), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    worker = parser.add_argument_group("node process (internal)")
    worker.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--node-id", help=argparse.SUPPRESS)
    worker.add_argument("--data-dir", help=argparse.SUPPRESS)
    worker.add_argument("--cluster", help=argparse.SUPPRESS)
    worker.add_argument("--group", help=argparse.SUPPRESS)
    worker.add_argument("--voters", type=int, default=3, help=argparse.SUPPRESS)
    worker.add_argument("--learner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help=f"shapes {QUICK_SHAPES}, 2 s each")
    parser.add_argument("--shapes", help=f"VOTERS+LEARNERS list (default {FULL_SHAPES})")
    parser.add_argument("--seconds", type=float, help="measured window per shape (default 10)")
    parser.add_argument("--warmup-s", type=float, help="load before the window (default 2)")
    parser.add_argument(
        "--window",
        type=int,
        help="writes outstanding per client process (default 384 in the leader, as cluster.py's "
        "3 x 128; 128 per voter with --clients-in voters)",
    )
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--durability", default="os", choices=("os", "durable"))
    parser.add_argument("--clients-in", default="leader", choices=("leader", "voters"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget-s", type=float, help="whole run (default 330, quick 55)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(serve(args))
        return 0
    quick = args.quick
    shapes = [
        Shape.parse(text)
        for text in (args.shapes or (QUICK_SHAPES if quick else FULL_SHAPES)).split(",")
    ]
    settings = Settings(
        seconds=args.seconds if args.seconds is not None else (2.0 if quick else 10.0),
        warmup_s=args.warmup_s if args.warmup_s is not None else (1.0 if quick else 2.0),
        window=args.window or (384 if args.clients_in == "leader" else 128),
        value_bytes=args.value_bytes,
        durability=args.durability,
        clients_in=args.clients_in,
        seed=args.seed,
    )
    budget_s = args.budget_s if args.budget_s is not None else (55.0 if quick else 330.0)
    print(
        f"scale benchmark: {args.durability} mode, {settings.value_bytes} B values, clients in "
        f"the {settings.clients_in} process(es) with {settings.window} writes outstanding each, "
        f"{settings.seconds:g}s measured after {settings.warmup_s:g}s of warm-up, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    results = run(shapes, settings, budget_s)
    if args.json is not None:
        document = {"settings": asdict(settings), "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if any(result.failure for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
