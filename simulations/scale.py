"""How the leader's load grows with voters and learners, measured in the simulator.

Accepts, commits and heartbeats go out as one multicast datagram whatever the cluster size,
and only voters answer, so the leader's datagrams per committed command should stay flat as
learners are added, and grow only with voters (their replies). This model counts both what
the leader sends (a broadcast counts once, as multicast) and what it receives.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulations.workload import Workload
from simulations.world import World


@dataclass(frozen=True)
class ScalePoint:
    voters: int
    learners: int
    commands: int
    leader_sent_per_command: float
    leader_received_per_command: float
    unicast_equivalent_per_command: float


def measure(voters: int, learners: int, *, seed: int = 1, duration_s: float = 3.0) -> ScalePoint:
    world = World(seed, voters, learners=learners)
    received: dict[str, int] = {}
    deliver = world._deliver

    def counting_deliver(source: str, target: str, data: bytes) -> None:
        received[target] = received.get(target, 0) + 1
        deliver(source, target, data)

    world._deliver = counting_deliver  # type: ignore[method-assign]
    world.scheduler.run_until(2.0, lambda: world.leader() is not None)
    leader = world.leader()
    assert leader is not None, "no leader elected"
    sent0 = world.datagrams_sent.get(leader, 0)
    unicast0 = world.messages_sent.get(leader, 0)
    received0 = received.get(leader, 0)
    workload = Workload(world, clients=8, think_s=0.0)
    start = world.now
    world.scheduler.run_until(start + duration_s)
    workload.running = False
    commands = sum(client.completed for client in workload.clients)
    commands = max(commands, 1)
    return ScalePoint(
        voters,
        learners,
        commands,
        (world.datagrams_sent.get(leader, 0) - sent0) / commands,
        (received.get(leader, 0) - received0) / commands,
        (world.messages_sent.get(leader, 0) - unicast0) / commands,
    )


def report(points: list[ScalePoint]) -> str:
    lines = [
        "voters learners  commands  leader sends/cmd  leader receives/cmd  unicast-equivalent/cmd"
    ]
    for p in points:
        lines.append(
            f"{p.voters:>6} {p.learners:>8} {p.commands:>9} {p.leader_sent_per_command:>17.2f}"
            f" {p.leader_received_per_command:>20.2f} {p.unicast_equivalent_per_command:>23.2f}"
        )
    return "\n".join(lines)
