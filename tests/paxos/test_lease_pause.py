"""Leader leases across a paused process (the simulator's ``World.pause``).

A leader's lease runs from when it *sent* the heartbeat a quorum acked, not from when the acks
came in. The difference shows when the process stops between the two: a stop-the-world pause,
SIGSTOP, a VM descheduled. The voters stop hearing it when the pause begins and may elect a
successor half a second later; acks read after the pause, timed from their reading, would give
the old leader a lease that outlives that election. Its clock counts the pause
(``runtime.clock`` reads CLOCK_BOOTTIME), as the simulated one does.

The broken engine's window is narrow: the old leader also steps down once an election timeout
has passed since the last heartbeat a quorum acked (timed from its sending), a few
milliseconds after the successor can first write. Over seeds 1-20 the story serves the stale
read in 19; with every election timeout the shortest, in 10 (final read, twenty-third session).
"""

from __future__ import annotations

from typing import Any

import pytest

from paxoskv.paxos import messages as m
from paxoskv.paxos.effects import Effect
from paxoskv.paxos.engine import Engine
from paxoskv.state import Written
from simulations.scenario import Scenario


class LeaseFromAckReceipt(Engine):
    """Times its lease from when a quorum's ack was read, not from when the heartbeat left."""

    def receive(self, sender: str, message: m.Message, now: float) -> list[Effect]:
        before = self._lease_until
        effects = super().receive(sender, message, now)
        if self._lease_until != before:
            margin = self.settings.election_timeout_min_s * (1 - self.settings.clock_drift_bound)
            self._lease_until = now + margin
        return effects


def _read_after_a_pause(engine_class: type[Engine], seed: int) -> tuple[bool, Any]:
    """Three voters. Just after the leader sends a heartbeat, its process stops for 0.4 s;
    its voters' acks reach it meanwhile. Just before it resumes it is cut off, so it wakes to
    those acks and to nothing newer. The others elect a successor and a write is
    acknowledged; then a 'leader' read at the old leader if it holds a lease. Returns (it held
    its lease, what the read saw)."""
    s = Scenario(3, seed=seed)
    world = s.world
    world.engine_class = engine_class
    for name in list(world.nodes):
        world.crash(name)
        world.start(name)
    old = s.elect()
    assert isinstance(s.set(old, "k", "v0"), Written)
    engine = world.nodes[old].engine
    assert engine is not None
    s.run_until(
        lambda: engine._confirmed_seq < max(engine._heartbeat_sent, default=0),
        1.0,
        "a heartbeat not yet acked",
    )
    world.pause(old, 0.4)
    s.run_for(0.39)
    s.isolate(old)
    s.run_for(0.02)  # it resumes and reads what came while it was stopped
    return s.lease_read_after_a_successor_writes(old, "k", "v1")


@pytest.mark.parametrize("seed", range(1, 9))
def test_after_a_pause_the_lease_has_run_out_before_a_successor_writes(seed: int) -> None:
    held, seen = _read_after_a_pause(Engine, seed)
    assert not held, f"the old leader still held its lease, and read {seen!r}"


@pytest.mark.parametrize("seed", range(1, 9))
def test_a_lease_timed_from_the_acks_reading_serves_a_stale_read(seed: int) -> None:
    held, seen = _read_after_a_pause(LeaseFromAckReceipt, seed)
    assert held and seen == "v0"


def test_a_paused_node_runs_what_reached_it_in_order_when_it_resumes() -> None:
    s = Scenario(3, seed=3)
    world = s.world
    leader = s.elect()
    follower = sorted(set(world.nodes) - {leader})[0]
    engine = world.nodes[follower].engine
    assert engine is not None
    applied = engine.applied_slot
    world.pause(follower, 1.0)
    paused_at = world.now
    for i in range(5):
        assert isinstance(s.set(leader, "k", f"v{i}"), Written)  # the other two choose
    assert engine.applied_slot == applied  # stopped: nothing read, nothing applied
    assert world.now < paused_at + 1.0
    s.converge(within_s=2.0)
    assert world.now >= paused_at + 1.0
    assert engine.applied_slot >= applied + 5
    assert s.local(follower, "k") == "v4"
