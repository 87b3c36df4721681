"""The simulator's paused processes (``World.pause``): nothing runs in a paused node, and
what reached it runs at the resume, in the order it came, a pause extended meanwhile included
(a review found the held work of an extended pause run in reverse, and a resync hid it)."""

from __future__ import annotations

from typing import Any

from paxoskv.paxos import messages as m
from paxoskv.paxos.batches import decode_batch
from paxoskv.paxos.effects import Effect
from paxoskv.paxos.engine import Engine
from paxoskv.state import Set, Written, encode_command
from simulations.scenario import Scenario

SEEN: list[tuple[str, str, Any, float]] = []  # (node, input, what, the node's clock)


class Recording(Engine):
    """Notes every input it is given, and the reading of the clock it was given with."""

    def propose(self, requests: list[m.Request], now: float) -> list[Effect]:
        SEEN.append((self.node_id, "propose", requests[0].seq, now))
        return super().propose(requests, now)

    def receive(self, sender: str, message: m.Message, now: float) -> list[Effect]:
        SEEN.append((self.node_id, "receive", type(message).__name__, now))
        return super().receive(sender, message, now)

    def tick(self, now: float) -> list[Effect]:
        SEEN.append((self.node_id, "tick", None, now))
        return super().tick(now)

    def handle_durable(self, sync_id: int, now: float) -> list[Effect]:
        SEEN.append((self.node_id, "durable", sync_id, now))
        return super().handle_durable(sync_id, now)


def _cluster() -> tuple[Scenario, str, str]:
    SEEN.clear()
    s = Scenario(3, seed=5, engine_class=Recording)
    world = s.world
    leader = s.elect()
    follower = sorted(set(world.nodes) - {leader})[0]
    return s, leader, follower


def test_a_paused_node_runs_nothing_and_then_all_of_it_in_order_an_extension_included() -> None:
    s, leader, follower = _cluster()
    world = s.world
    node = world.nodes[follower]
    assert isinstance(s.set(leader, "k", "v0"), Written)
    # Paused with a sync of its own under way: an accept written, its fdatasync not yet done.
    s.run_until(lambda: bool(node.unsynced_ids), 2.0, "an accept written, not yet synced")
    synced: list[float] = []
    store = node.store
    assert store is not None
    sync = store.sync
    store.sync = lambda: (synced.append(world.now), sync())[1]  # type: ignore[method-assign]
    started = world.now
    world.pause(follower, 0.5)
    SEEN.clear()

    def propose(seq: int) -> None:
        world.call(follower, "propose", [m.Request("c", seq, encode_command(Set("p", seq)))])

    world.scheduler.at(started + 0.1, propose, 1)
    world.scheduler.at(started + 0.2, world.pause, follower, 0.6)  # to started + 0.8
    world.scheduler.at(started + 0.3, propose, 2)
    world.scheduler.at(started + 0.75, propose, 3)
    s.run_for(0.79)
    assert [entry for entry in SEEN if entry[0] == follower] == []
    assert synced == []  # its writer thread is stopped with it
    s.run_for(0.02)  # the resume
    mine = [entry for entry in SEEN if entry[0] == follower]
    assert [seq for _, kind, seq, _ in mine if kind == "propose"] == [1, 2, 3]
    resumed = started + 0.8 - 1e-9  # (no drift here: the node's clock is the world's)
    assert min(now for *_, now in mine) >= resumed  # every one of them ran at the resume
    assert synced and synced[0] >= resumed
    s.converge()
    chosen = {
        (r.client_id, r.seq) for value in world.chosen.values() for r in decode_batch(value)[1]
    }
    assert {("c", 1), ("c", 2), ("c", 3)} <= chosen  # (forwarded apart: in any order)


def test_a_crash_while_paused_loses_what_was_held() -> None:
    s, leader, follower = _cluster()
    world = s.world
    world.pause(follower, 0.5)
    world.call(follower, "propose", [m.Request("c", 1, encode_command(Set("p", 1)))])
    s.run_for(0.1)
    world.crash(follower)
    world.start(follower)
    SEEN.clear()
    s.run_for(0.5)  # past the old resume
    assert not [entry for entry in SEEN if entry[0] == follower and entry[1] == "propose"]
    assert s.local(follower, "p") is None and s.local(leader, "p") is None


def test_healing_for_good_resumes_a_paused_node() -> None:
    s, _, follower = _cluster()
    world = s.world
    world.pause(follower, 30.0)
    world.call(follower, "propose", [m.Request("c", 1, encode_command(Set("p", 1)))])
    s.run_for(0.1)
    world.heal(for_good=True)
    s.run_for(0.01)
    assert [seq for n, kind, seq, _ in SEEN if n == follower and kind == "propose"] == [1]
    s.converge()
    assert s.local(follower, "p") == 1
    world.pause(follower, 5.0)  # the faults are over: no new pause
    assert world.nodes[follower].paused_until <= world.now
