"""How the leader's load grows with voters and learners, measured in the simulator.

Accepts, commits and heartbeats go out as one multicast datagram whatever the cluster size,
and only voters answer, so the leader's datagrams per committed command should stay flat as
learners are added, and grow only with voters (their replies). This model counts both what
the leader sends (a broadcast counts once, as multicast) and what it receives.

It also tells the leader's CPU work per command, which datagram counts alone cannot: every
engine input of every node (receive, tick, handle_durable, propose, read) is bracketed with
``time.process_time``, and so is the codec work a real node would do around it (one encode
per Send or Broadcast effect, one decode per datagram delivered to it). The simulator's own
bookkeeping (its scheduler, its invariant checks, its storage) is left out, so the figures
are the Paxos core's share of a real leader's CPU, not the runtime's or the kernel's.

    python -m simulations.scale [--voters 3,5,7] [--learners 0,10,100] [--duration-s 1]
                                [--clients 8] [--clients-at voters|any] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from paxoskv.paxos import effects as fx
from paxoskv.paxos.engine import Engine
from paxoskv.paxos.messages import decode_message, encode_message
from simulations.workload import Workload
from simulations.world import SimNode, World

CALIBRATION_ROUNDS = 20_000
ClientsAt = Literal["any", "voters"]


@dataclass(frozen=True, slots=True)
class ScalePoint:
    voters: int
    learners: int
    commands: int
    leader_sent_per_command: float
    leader_received_per_command: float
    unicast_equivalent_per_command: float
    commands_per_slot: float = 0.0
    leader_engine_us_per_command: float = 0.0
    leader_codec_us_per_command: float = 0.0
    follower_us_per_command: float = 0.0  # a voter other than the leader, engine + codec, mean
    learner_us_per_command: float = 0.0  # a learner, engine + codec, mean (0 without learners)

    @property
    def leader_us_per_command(self) -> float:
        return self.leader_engine_us_per_command + self.leader_codec_us_per_command

    @property
    def leader_bound_commands_per_s(self) -> float:
        """What one core could commit if the leader's Paxos core were all it did: a ceiling."""
        spent = self.leader_us_per_command
        return 1e6 / spent if spent > 0 else float("inf")


@dataclass(slots=True)
class _Meter:
    """CPU seconds spent per node, and how many brackets were timed (to take their cost off)."""

    engine_s: dict[str, float]
    codec_s: dict[str, float]
    brackets: dict[str, int]

    def add(self, table: dict[str, float], node_id: str, spent_s: float) -> None:
        table[node_id] = table.get(node_id, 0.0) + spent_s
        self.brackets[node_id] = self.brackets.get(node_id, 0) + 1

    def snapshot(self, node_id: str) -> tuple[float, float, int]:
        return (
            self.engine_s.get(node_id, 0.0),
            self.codec_s.get(node_id, 0.0),
            self.brackets.get(node_id, 0),
        )


def _timed_engine_class(meter: _Meter) -> type[Engine]:
    """An Engine whose inputs are timed; the world builds every node's engine from it.

    Subclassing (the world takes ``engine_class``) keeps the timing out of both the engine
    and the world: neither knows it is measured.
    """
    clock = time.process_time

    def timed(name: str) -> Callable[..., list[fx.Effect]]:
        method = getattr(Engine, name)

        def wrapper(self: Engine, *args: Any) -> list[fx.Effect]:
            started = clock()
            effects: list[fx.Effect] = method(self, *args)
            meter.add(meter.engine_s, self.node_id, clock() - started)
            _time_encoding(meter, self.node_id, effects)
            return effects

        return wrapper

    inputs = ("receive", "tick", "handle_durable", "propose", "read")
    return type("TimedEngine", (Engine,), {name: timed(name) for name in inputs})


def _time_encoding(meter: _Meter, node_id: str, effects: list[fx.Effect]) -> None:
    """One encode per datagram a real node would send (a broadcast is encoded once)."""
    messages = [e.message for e in effects if isinstance(e, (fx.Send, fx.Broadcast))]
    if messages:
        started = time.process_time()
        for message in messages:
            encode_message(message)
        meter.add(meter.codec_s, node_id, time.process_time() - started)


def _bracket_cost_s() -> float:
    """What one timed bracket (two clock reads and the bookkeeping) costs by itself."""
    meter = _Meter({}, {}, {})
    clock = time.process_time
    started = clock()
    for _ in range(CALIBRATION_ROUNDS):
        inner = clock()
        meter.add(meter.engine_s, "calibration", clock() - inner)
    return (clock() - started) / CALIBRATION_ROUNDS


class _VoterClientsWorld(World):
    """A world whose clients call voters only (the workload picks among ``up_nodes``).

    With clients spread over every member, most calls land on learners once they outnumber
    the voters, and the leader's figures then measure forwarding, not replication.
    """

    def up_nodes(self) -> list[SimNode]:
        return [node for node in super().up_nodes() if not node.learner]


def measure(
    voters: int,
    learners: int,
    *,
    seed: int = 1,
    duration_s: float = 3.0,
    clients: int = 8,
    clients_at: ClientsAt = "any",
) -> ScalePoint:
    """Elect a leader, run ``clients`` closed-loop clients for ``duration_s`` virtual seconds.

    ``clients_at`` is where the clients send their calls: ``any`` member (learners forward to
    the leader) or ``voters`` only.
    """
    meter = _Meter({}, {}, {})
    world_class = World if clients_at == "any" else _VoterClientsWorld
    world = world_class(seed, voters, learners=learners, engine_class=_timed_engine_class(meter))
    received: dict[str, int] = {}
    deliver = world._deliver

    def counting_deliver(source: str, target: str, data: bytes) -> None:
        received[target] = received.get(target, 0) + 1
        node = world.nodes.get(target)
        if node is not None and node.engine is not None:  # a real node decodes what it gets
            started = time.process_time()
            decode_message(data)
            meter.add(meter.codec_s, target, time.process_time() - started)
        deliver(source, target, data)

    world._deliver = counting_deliver  # type: ignore[method-assign]
    world.scheduler.run_until(2.0, lambda: world.leader() is not None)
    leader = world.leader()
    assert leader is not None, "no leader elected"
    leader_engine = world.nodes[leader].engine
    assert leader_engine is not None
    sent0 = world.datagrams_sent.get(leader, 0)
    unicast0 = world.messages_sent.get(leader, 0)
    received0 = received.get(leader, 0)
    slot0 = leader_engine.applied_slot
    cpu0 = {node_id: meter.snapshot(node_id) for node_id in world.nodes}
    workload = Workload(world, clients=clients, think_s=0.0)
    world.scheduler.run_until(world.now + duration_s)
    workload.running = False
    assert world.leader() == leader, "the leader changed during a fault-free run"
    commands = max(sum(client.completed for client in workload.clients), 1)
    spent = _spent_per_command(world, meter, cpu0, commands)
    learner_ids = sorted(world.genesis.learners)
    followers = sorted(world.genesis.voters - {leader})
    return ScalePoint(
        voters,
        learners,
        commands,
        (world.datagrams_sent.get(leader, 0) - sent0) / commands,
        (received.get(leader, 0) - received0) / commands,
        (world.messages_sent.get(leader, 0) - unicast0) / commands,
        commands_per_slot=commands / max(leader_engine.applied_slot - slot0, 1),
        leader_engine_us_per_command=spent[leader][0],
        leader_codec_us_per_command=spent[leader][1],
        follower_us_per_command=_mean_total(spent, followers),
        learner_us_per_command=_mean_total(spent, learner_ids),
    )


def _spent_per_command(
    world: World, meter: _Meter, before: dict[str, tuple[float, float, int]], commands: int
) -> dict[str, tuple[float, float]]:
    """Microseconds of engine and codec work per command for each node, brackets' cost off.

    The cost of the brackets themselves is charged to the engine side (most brackets are
    engine calls); a result below zero after the correction means "too small to see", so 0.
    """
    bracket_s = _bracket_cost_s()
    spent: dict[str, tuple[float, float]] = {}
    for node_id in world.nodes:
        engine_s, codec_s, brackets = meter.snapshot(node_id)
        engine0, codec0, brackets0 = before[node_id]
        engine_s -= engine0 + (brackets - brackets0) * bracket_s
        spent[node_id] = (
            max(engine_s, 0.0) / commands * 1e6,
            (codec_s - codec0) / commands * 1e6,
        )
    return spent


def _mean_total(spent: dict[str, tuple[float, float]], node_ids: Sequence[str]) -> float:
    if not node_ids:
        return 0.0
    return statistics.fmean(sum(spent[node_id]) for node_id in node_ids)


def report(points: list[ScalePoint]) -> str:
    """The datagram table (what README.md shows) and, under it, the CPU table."""
    lines = [
        "voters learners  commands  leader sends/cmd  leader receives/cmd  unicast-equivalent/cmd"
    ]
    for p in points:
        lines.append(
            f"{p.voters:>6} {p.learners:>8} {p.commands:>9} {p.leader_sent_per_command:>17.2f}"
            f" {p.leader_received_per_command:>20.2f} {p.unicast_equivalent_per_command:>23.2f}"
        )
    return "\n".join(lines)


def report_cpu(points: list[ScalePoint]) -> str:
    """Microseconds of Paxos-core CPU per command, leader and others, with the leader's ceiling."""
    lines = [
        "voters learners  cmds/slot  leader engine us/cmd  leader codec us/cmd  "
        "follower us/cmd  learner us/cmd  leader-bound cmds/s"
    ]
    for p in points:
        lines.append(
            f"{p.voters:>6} {p.learners:>8} {p.commands_per_slot:>10.2f}"
            f" {p.leader_engine_us_per_command:>21.1f} {p.leader_codec_us_per_command:>20.1f}"
            f" {p.follower_us_per_command:>16.1f} {p.learner_us_per_command:>15.1f}"
            f" {p.leader_bound_commands_per_s:>20,.0f}"
        )
    return "\n".join(lines)


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of counts") from None
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more counts, none negative")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.scale", description=__doc__)
    parser.add_argument("--voters", type=_counts, default=[3, 5, 7])
    parser.add_argument("--learners", type=_counts, default=[0, 10, 100])
    parser.add_argument(
        "--duration-s", type=float, default=1.0, help="virtual seconds of load per point"
    )
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients (default 8)")
    parser.add_argument(
        "--clients-at",
        choices=("any", "voters"),
        default="voters",
        help="members the clients call: voters only (default) or any, learners forwarding",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2, help="runs per point, best kept")
    args = parser.parse_args(argv)
    if min(args.voters) < 1 or min(args.clients, args.repeat) < 1 or args.duration_s <= 0:
        parser.error("need one voter, one client, one repeat and a positive duration at least")
    points = []
    for voters in args.voters:
        for learners in args.learners:
            started = time.monotonic()
            runs = [
                measure(
                    voters,
                    learners,
                    seed=args.seed,
                    duration_s=args.duration_s,
                    clients=args.clients,
                    clients_at=args.clients_at,
                )
                for _ in range(args.repeat)
            ]
            # Same seed, same events: the runs differ only in how much other processes got in
            # the way of the clock, so the least disturbed one is the truest.
            points.append(min(runs, key=lambda point: point.leader_us_per_command))
            print(
                f"  {voters} voters, {learners} learners: {time.monotonic() - started:.1f}s",
                file=sys.stderr,
                flush=True,
            )
    print(report(points))
    print()
    print(report_cpu(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
