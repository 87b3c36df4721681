"""Reads asked together cost one request and one heartbeat round, however many they are.

Measured with ``benchmarks/reads.py`` (twenty-fourth session): with a step per read, each of
a follower's reads went to the leader in a datagram of its own and each cost the leader a
heartbeat round; 384 pipelined linearizable reads ran at some 5,000/s. ``Engine.read_batch``
takes the reads of one turn of the runtime's loop together.
"""

from __future__ import annotations

import random

from paxoskv.paxos import messages as m
from paxoskv.paxos.effects import Broadcast, ReadReady, Send
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.state import Configuration
from tests.paxos.wire import carry_out

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}), learners=frozenset())


def _elected() -> tuple[dict[str, Engine], str, float]:
    nodes = {
        n: Engine(EngineSettings(node_id=n), random.Random(i), CONFIG) for i, n in enumerate("abc")
    }
    now = 0.0
    while not any(node.is_leader for node in nodes.values()):
        now = min(node.next_deadline() for node in nodes.values())
        wire = [w for n, node in nodes.items() for w in carry_out(n, node, node.tick(now), now)]
        while wire:
            sender, to, message = wire.pop(0)
            wire += carry_out(to, nodes[to], nodes[to].receive(sender, message, now), now)
    leader = next(n for n, e in nodes.items() if e.is_leader)
    return nodes, leader, now


def _deliver(
    nodes: dict[str, Engine], wire: list[tuple[str, str, m.Message]], now: float
) -> list[tuple[str, str, m.Message]]:
    """Deliver ``wire`` to the end; every message that went, in order."""
    sent = []
    while wire:
        sender, to, message = wire.pop(0)
        sent.append((sender, to, message))
        wire += carry_out(to, nodes[to], nodes[to].receive(sender, message, now), now)
    return sent


def test_a_followers_reads_asked_together_go_in_one_request_and_one_round() -> None:
    nodes, leader, now = _elected()
    reader = next(n for n in nodes if n != leader)
    reads = [(read_id, "linearizable") for read_id in range(1, 201)]
    effects = nodes[reader].read_batch(reads, now)
    requests = [e for e in effects if isinstance(e, Send)]
    assert requests == [Send(leader, m.ReadIndexRequest(tuple(range(1, 201))))]
    sent = _deliver(nodes, carry_out(reader, nodes[reader], effects, now), now)
    heartbeats = [msg for s, _, msg in sent if s == leader and isinstance(msg, m.Heartbeat)]
    assert len({hb.seq for hb in heartbeats}) == 1, "one heartbeat round for all 200 reads"
    replies = [msg for s, to, msg in sent if to == reader and isinstance(msg, m.ReadIndexReply)]
    assert [reply.read_ids for reply in replies] == [tuple(range(1, 201))]


def test_a_leaders_reads_asked_together_are_confirmed_by_one_round() -> None:
    nodes, leader, now = _elected()
    engine = nodes[leader]
    effects = engine.read_batch([(read_id, "linearizable") for read_id in range(1, 301)], now)
    rounds = [e for e in effects if isinstance(e, Broadcast) and isinstance(e.message, m.Heartbeat)]
    assert len(rounds) == 1
    ready: list[int] = []
    for sender, to, message in carry_out(leader, engine, effects, now):
        for effect in nodes[to].receive(sender, message, now):
            if isinstance(effect, Send) and effect.to == leader:
                ready += [
                    e.read_id
                    for e in engine.receive(to, effect.message, now)
                    if isinstance(e, ReadReady)
                ]
    assert sorted(ready) == list(range(1, 301)), "every read answered by the first ack"


def test_reads_of_each_consistency_in_one_batch_are_each_answered_as_alone() -> None:
    nodes, leader, now = _elected()
    engine = nodes[leader]
    # The leader holds a lease once a round it started was acked: a read round gives it one.
    _deliver(nodes, carry_out(leader, engine, engine.read(1, "linearizable", now), now), now)
    assert engine.serves_lease_reads(now)
    effects = engine.read_batch([(2, "local"), (3, "leader"), (4, "linearizable")], now)
    assert [e.read_id for e in effects if isinstance(e, ReadReady)] == [2, 3]
    follower = nodes[next(n for n in nodes if n != leader)]
    assert not follower.serves_lease_reads(now)
    effects = follower.read_batch([(5, "local"), (6, "leader"), (7, "linearizable")], now)
    assert [e.read_id for e in effects if isinstance(e, ReadReady)] == [5]
    assert [e for e in effects if isinstance(e, Send)] == [
        Send(leader, m.ReadIndexRequest((6,), True)),  # the leader may answer under its lease
        Send(leader, m.ReadIndexRequest((7,))),
    ]


def _leased() -> tuple[dict[str, Engine], str, float]:
    """An elected cluster whose leader holds a lease (a read round was acked)."""
    nodes, leader, now = _elected()
    engine = nodes[leader]
    _deliver(nodes, carry_out(leader, engine, engine.read(10_000, "linearizable", now), now), now)
    assert engine.serves_lease_reads(now)
    return nodes, leader, now


def test_a_followers_leader_reads_are_answered_under_the_lease_without_a_round() -> None:
    nodes, leader, now = _leased()
    reader = next(n for n in nodes if n != leader)
    effects = nodes[reader].read_batch([(1, "leader"), (2, "leader")], now)
    assert [e for e in effects if isinstance(e, Send)] == [
        Send(leader, m.ReadIndexRequest((1, 2), True))
    ]
    answer = nodes[leader].receive(reader, m.ReadIndexRequest((1, 2), True), now)
    assert not [e for e in answer if isinstance(e, Broadcast)], "no heartbeat round"
    applied = nodes[leader].applied_slot
    assert Send(reader, m.ReadIndexReply((1, 2), applied)) in answer
    served = nodes[reader].receive(leader, m.ReadIndexReply((1, 2), applied), now)
    assert [e.read_id for e in served if isinstance(e, ReadReady)] == [1, 2]


def test_a_lease_read_request_after_the_lease_ran_out_waits_for_a_round() -> None:
    nodes, leader, now = _leased()
    reader = next(n for n in nodes if n != leader)
    later = now + 0.46  # past 90% of the shortest election timeout, 0.5 s: no lease
    assert not nodes[leader].serves_lease_reads(later)
    answer = nodes[leader].receive(reader, m.ReadIndexRequest((1,), True), later)
    assert not [e for e in answer if isinstance(e, Send) and e.to == reader]
    assert [e for e in answer if isinstance(e, Broadcast) and isinstance(e.message, m.Heartbeat)]


def test_a_lease_read_an_older_leader_dropped_is_asked_again_without_the_lease() -> None:
    """An older leader drops the lease tag as unknown: at the retry period the follower asks
    again as a plain read, which every leader answers."""
    nodes, leader, now = _leased()
    reader = nodes[next(n for n in nodes if n != leader)]
    first = reader.read_batch([(1, "leader")], now)
    assert [e for e in first if isinstance(e, Send)] == [
        Send(leader, m.ReadIndexRequest((1,), True))
    ]  # dropped on the way
    retry = reader.tick(now + reader.settings.request_retry_s)
    assert Send(leader, m.ReadIndexRequest((1,))) in retry
    assert not [e for e in retry if isinstance(e, Send) and e.message == first[0].message]


def test_a_late_answer_with_a_lower_slot_does_not_lower_a_reads_index() -> None:
    """A reply to an earlier ask of the same read, come late, was confirmed earlier: the read
    keeps the higher slot (review of the life check, twenty-ninth session)."""
    nodes, leader, now = _elected()
    reader = next(n for n in nodes if n != leader)
    engine = nodes[reader]
    engine.read_batch([(5, "linearizable")], now)
    top = engine.applied_slot + 3  # (not applied yet: the read waits)
    engine.receive(leader, m.ReadIndexReply((5,), top), now)
    engine.receive(leader, m.ReadIndexReply((5,), top - 2), now)
    assert engine._follower_reads[5] == top
