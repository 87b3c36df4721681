"""Review of the batched reads and followers' lease reads (twenty-fourth session).

Each test builds, message by message, the case a reviewer found: a read dropped when its node
won an election, the guard that keeps a new leader from answering lease reads before it has
applied what its election recovered, and the fallback that keeps an older leader (which drops
the lease tag) from making every lease read wait a retry period.
"""

from __future__ import annotations

from collections.abc import Callable

from paxoskv.paxos import messages as m
from paxoskv.paxos.effects import ReadReady, Send
from paxoskv.state import Set, encode_command
from tests.paxos.wire import Cluster

Drop = Callable[[str, str, m.Message], bool]


def _deliver(c: Cluster, wire: list[tuple[str, str, m.Message]], drop: Drop) -> list[int]:
    """Deliver to the end, dropping what ``drop`` says; the reads made ready, anywhere."""
    ready: list[int] = []
    while wire:
        sender, to, message = wire.pop(0)
        if to in c.down or drop(sender, to, message):
            continue
        effects = c.nodes[to].receive(sender, message, c.now)
        ready += [e.read_id for e in effects if isinstance(e, ReadReady)]
        wire += c.carry_out(to, effects)
    return ready


def _write_no_follower_applies(c: Cluster, leader: str, accepting: set[str]) -> int:
    """A write chosen with ``accepting``'s accepts and applied on the leader alone (no
    follower hears it is chosen); its slot."""
    effects = c.nodes[leader].propose([m.Request("w", 1, encode_command(Set("k", "new")))], c.now)

    def drop(sender: str, to: str, message: m.Message) -> bool:
        if isinstance(message, (m.Commit, m.Heartbeat)):
            return True
        return isinstance(message, m.Accept) and to not in accepting

    _deliver(c, c.carry_out(leader, effects), drop)
    slot = c.nodes[leader].applied_slot
    assert c.nodes[leader].state.get("k") is not None
    return slot


def test_a_read_answered_while_its_node_campaigned_is_served_once_it_leads() -> None:
    """The read's index came while its node campaigned, with a resend of it queued (no
    leader to send it to); the node won before applying that far. The resend's flush, with
    the node now leader, took it out whatever its index: never answered, its caller waited
    out its timeout (a remote client's, for good)."""
    c = Cluster("abcde")
    c.run_until(2.0)
    old = c.leader()
    reader, *others = [n for n in c.names if n != old]
    node = c.nodes[reader]
    slot = _write_no_follower_applies(c, old, accepting=set(others[:2]))
    # The old leader confirms the read with a round acked by the reader and the one other
    # node without the write; its answer (index = the write's slot) is held back.
    held: list[tuple[str, str, m.Message]] = []

    def hold(sender: str, to: str, message: m.Message) -> bool:
        if to == reader and isinstance(message, m.ReadIndexReply):
            held.append((sender, to, message))
            return True
        if isinstance(message, (m.Commit, m.Accept, m.CatchupRequest, m.CatchupReply)):
            return True
        return to in others[:2] and isinstance(message, m.Heartbeat)

    _deliver(c, c.carry_out(reader, node.read(1, "linearizable", c.now)), hold)
    assert held and held[0][2].index == slot > node.applied_slot  # type: ignore[attr-defined]
    c.down.add(old)
    for other in others:
        c.nodes[other].hold_election(c.now + 100)  # the reader is the one to campaign

    def promises_wait(sender: str, to: str, message: m.Message) -> bool:
        return bool(held) and to == reader and isinstance(message, m.Promise)

    ready: list[int] = []
    while not node.is_leader:
        c.now = min(c.nodes[n].next_deadline() for n in c.names if n not in c.down)
        wire = [
            w for n in c.names if n not in c.down for w in c.carry_out(n, c.nodes[n].tick(c.now))
        ]
        if held and node.role.name == "CANDIDATE" and node._read_requests_out:
            wire = held + wire  # the answer lands with a resend queued
            held.clear()
        ready += _deliver(c, wire, promises_wait)
    for _ in range(100):
        if 1 in ready:
            break
        c.now = min(c.nodes[n].next_deadline() for n in c.names if n not in c.down)
        wire = [
            w for n in c.names if n not in c.down for w in c.carry_out(n, c.nodes[n].tick(c.now))
        ]
        ready += _deliver(c, wire, lambda *_: False)
    assert node.applied_slot >= slot
    assert 1 in ready, "the read was dropped: never answered"
    assert node.state.get("k") is not None


def test_a_new_leader_answers_no_lease_read_before_it_applied_what_it_recovered() -> None:
    """Its first heartbeat acked, a new leader holds a lease before it has applied the slots
    its promises reported; answering a follower's lease read at once then would serve a
    write acknowledged by the old leader as absent. (Removing ``_leader_ready`` from
    ``_lease_valid`` failed no other test.)"""
    c = Cluster("abc")
    c.run_until(2.0)
    old = c.leader()
    first, second = [n for n in c.names if n != old]
    slot = _write_no_follower_applies(c, old, accepting={first})
    c.down.add(old)

    def no_phase_two(sender: str, to: str, message: m.Message) -> bool:
        return isinstance(message, (m.Accept, m.Accepted, m.Commit))

    while not any(c.nodes[n].is_leader for n in (first, second)):
        c.now = min(c.nodes[n].next_deadline() for n in (first, second))
        wire = [w for n in (first, second) for w in c.carry_out(n, c.nodes[n].tick(c.now))]
        _deliver(c, wire, no_phase_two)
    new = next(n for n in (first, second) if c.nodes[n].is_leader)
    reader = second if new == first else first
    assert c.nodes[new].applied_slot < slot and c.nodes[reader].applied_slot < slot
    assert not c.nodes[new].serves_lease_reads(c.now), "a lease before what it recovered"
    ready = _deliver(c, c.carry_out(reader, c.nodes[reader].read(1, "leader", c.now)), no_phase_two)
    assert 1 not in ready, "a lease read served before the acknowledged write was applied"


def test_a_leader_that_drops_the_lease_tag_is_asked_without_it_for_a_while() -> None:
    """An older leader drops every lease read request: after one wait of half a retry
    period, this follower asks it as it reads, so each later lease read is answered at once
    rather than a retry period later."""
    c = Cluster("abc")
    c.run_until(2.0)
    leader = c.leader()
    reader = next(n for n in c.names if n != leader)
    node = c.nodes[reader]

    def old_leader(sender: str, to: str, message: m.Message) -> bool:
        return isinstance(message, m.ReadIndexRequest) and message.lease

    first = node.read_batch([(1, "leader")], c.now)
    assert Send(leader, m.ReadIndexRequest((1,), True)) in first
    ready = _deliver(c, c.carry_out(reader, first), old_leader)
    c.now += node.settings.request_retry_s
    ready += _deliver(c, c.carry_out(reader, node.tick(c.now)), old_leader)
    assert 1 in ready, "answered once asked without the lease"
    later = node.read_batch([(2, "leader")], c.now)
    assert Send(leader, m.ReadIndexRequest((2,))) in later, "asked as it reads"
    assert 2 in _deliver(c, c.carry_out(reader, later), old_leader)
    c.run_until(c.now + 31.0)  # and after a while the lease's tag is tried again
    assert c.leader() == leader
    assert Send(leader, m.ReadIndexRequest((3,), True)) in node.read_batch([(3, "leader")], c.now)


def test_lease_reads_in_flight_at_a_retry_tick_do_not_count_as_refused() -> None:
    """A lease read asked a moment before the retry tick is unanswered at it, and says
    nothing about the leader: the next lease read still goes under the tag."""
    c = Cluster("abc")
    c.run_until(2.0)
    leader = c.leader()
    node = c.nodes[next(n for n in c.names if n != leader)]
    c.now += node.settings.request_retry_s - 0.001
    node.read_batch([(1, "leader")], c.now)  # its request still on the way ...
    node.tick(c.now + 0.001)  # ... at the retry tick
    assert Send(leader, m.ReadIndexRequest((2,), True)) in node.read_batch([(2, "leader")], c.now)
