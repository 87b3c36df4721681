"""Rules of one engine, driven by hand: no simulator, every message shown."""

import itertools
import random
from collections.abc import Callable
from typing import Any

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.batches import encode_batch
from paxoskv.paxos.effects import Broadcast, Persist, ReadReady, SaveSnapshot, Send
from paxoskv.paxos.engine import Engine, EngineSettings, Role
from paxoskv.state import Configuration, LeaseGrant, Set, encode_command
from tests.paxos.wire import Cluster, carry_out

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}), learners=frozenset({"l"}))


def engine(node_id: str, learner: bool = False) -> Engine:
    return Engine(EngineSettings(node_id=node_id, learner=learner), random.Random(1), CONFIG)


def test_an_accept_is_acknowledged_only_after_it_is_durable() -> None:
    b = engine("b")
    accept = m.Accept(Ballot(1, "a"), 1, b"value", 0)
    effects = b.receive("a", accept, now=0.0)
    persists = [e for e in effects if isinstance(e, Persist)]
    assert len(persists) == 1
    assert not [e for e in effects if isinstance(e, Send)], "replied before durable"
    released = b.handle_durable(persists[0].sync_id, now=0.001)
    assert Send("a", m.Accepted(Ballot(1, "a"), (1,))) in released


def test_a_promise_waits_for_durability_and_reports_accepted_values() -> None:
    b = engine("b")
    first = b.receive("a", m.Accept(Ballot(1, "a"), 1, b"v1", 0), now=0.0)
    prepare = b.receive("c", m.Prepare(Ballot(2, "c"), 1), now=5.0)
    assert not [e for e in prepare if isinstance(e, Send) and isinstance(e.message, m.Promise)]
    sync_id = max(e.sync_id for e in first + prepare if isinstance(e, Persist))
    promises = [
        e.message
        for e in b.handle_durable(sync_id, now=5.0)
        if isinstance(e, Send) and isinstance(e.message, m.Promise)
    ]
    assert promises == [
        m.Promise(Ballot(2, "c"), 1, (m.PromiseEntry(1, Ballot(1, "a"), b"v1", False),), 0, False)
    ]


def test_a_lower_ballot_is_refused_with_the_promise_it_lost_to() -> None:
    b = engine("b")
    effects = b.receive("c", m.Prepare(Ballot(5, "c"), 1), now=1.0)  # (past its first 0.5 s)
    b.handle_durable(max(e.sync_id for e in effects if isinstance(e, Persist)), now=1.0)
    refused = b.receive("a", m.Accept(Ballot(4, "a"), 1, b"late", 0), now=1.0)
    assert Send("a", m.Nack(Ballot(4, "a"), Ballot(5, "c"))) in refused
    assert not [e for e in refused if isinstance(e, Persist)]


def test_a_learner_stores_accepts_but_never_votes_or_campaigns() -> None:
    learner = engine("l", learner=True)
    effects = learner.receive("a", m.Accept(Ballot(1, "a"), 1, b"v", 0), now=0.0)
    sync_id = max(e.sync_id for e in effects if isinstance(e, Persist))
    assert not [e for e in learner.handle_durable(sync_id, now=0.0) if isinstance(e, Send)]
    later = learner.tick(now=100.0)
    assert not [e for e in later if isinstance(e, Broadcast) and isinstance(e.message, m.Prepare)]


def test_a_voter_id_run_as_a_learner_promises_nothing() -> None:
    """The runtime runs a voter's id that forgot its votes (a wiped data dir) as a learner:
    its promise would count in the candidate's quorum, so it sends none."""
    amnesiac = Engine(EngineSettings(node_id="c", learner=True), random.Random(1), CONFIG)
    effects = amnesiac.receive("a", m.Prepare(Ballot(2, "a"), 1), now=0.0)
    assert not [e for e in effects if isinstance(e, Persist)]
    assert not [e for e in effects if isinstance(e, Send)]
    assert amnesiac.handle_durable(1, now=0.0) == []


def test_a_voter_campaigns_after_the_election_timeout_with_a_higher_ballot() -> None:
    a = engine("a")
    a.receive("c", m.Heartbeat(Ballot(3, "c"), 0, 1), now=0.0)
    for _ in range(10):  # follow the engine's own deadlines until it campaigns
        now = a.next_deadline()
        prepares = [
            e.message
            for e in a.tick(now)
            if isinstance(e, Broadcast) and isinstance(e.message, m.Prepare)
        ]
        if prepares:
            break
    assert prepares == [m.Prepare(Ballot(4, "a"), 1)]
    assert now >= a.settings.election_timeout_min_s


def _promise_to(candidate: str, acceptor: Engine, ballot: Ballot, now: float) -> list[m.Promise]:
    effects = acceptor.receive(candidate, m.Prepare(ballot, 1), now=now)
    sync_ids = [e.sync_id for e in effects if isinstance(e, Persist)]
    released = acceptor.handle_durable(max(sync_ids), now=now) if sync_ids else effects
    return [e.message for e in released if isinstance(e, Send) and isinstance(e.message, m.Promise)]


def test_a_promise_too_big_for_one_message_comes_in_parts_that_cover_every_slot() -> None:
    leader, candidate = "a" * 64, "c" * 64  # node ids may be 64 characters long
    config = Configuration(voters=frozenset({leader, "b", candidate}), learners=frozenset())
    limit_bytes = 8_000
    b = Engine(EngineSettings(node_id="b", max_message_bytes=limit_bytes), random.Random(1), config)
    for slot in range(1, 400):  # far more small accepted values than one message holds
        b.receive(leader, m.Accept(Ballot(1, leader), slot, b"v" * 8, 0), now=0.0)
    parts = _promise_to(candidate, b, Ballot(2, candidate), now=5.0)
    assert len(parts) > 1 and not any(part.truncated for part in parts)
    assert all(len(m.encode_message(part)) <= limit_bytes for part in parts)
    assert parts[0].from_slot == 1 and parts[-1].upto_slot == m.ALL_SLOTS
    assert all(a.upto_slot + 1 == b.from_slot for a, b in itertools.pairwise(parts))
    assert [e.slot for part in parts for e in part.entries] == list(range(1, 400))


def test_a_promise_of_more_than_a_few_windows_is_cut_short_for_the_candidate_to_catch_up() -> None:
    settings = EngineSettings(node_id="b", max_message_bytes=8_000, window_slots=2)
    b = Engine(settings, random.Random(1), CONFIG)
    chosen = tuple(
        m.CatchupEntry(
            slot, encode_batch(0, [m.Request("x", slot, encode_command(Set("k", "v" * 400)))])
        )
        for slot in range(1, 400)
    )
    b.receive("a", m.CatchupReply(chosen, 399, 0), now=0.0)
    assert b.applied_slot == 399  # 399 chosen values: far more than 4 windows of 2 slots
    (promise,) = _promise_to("c", b, Ballot(2, "c"), now=5.0)
    assert promise.truncated and not promise.entries


def test_a_candidate_counts_a_promise_only_once_its_parts_cover_every_slot() -> None:
    c = engine("c")
    c.receive("a", m.Heartbeat(Ballot(1, "a"), 0, 1), now=0.0)
    now = 0.0
    while c.ballot == Ballot(0, ""):
        now = c.next_deadline()
        carry_out("c", c, c.tick(now), now)  # its own promise is durable at once
    ballot = c.ballot
    value = b"x" * 10
    first = m.Promise(ballot, 1, (m.PromiseEntry(1, Ballot(1, "a"), value, False),), 0, False, 3)
    second = m.Promise(ballot, 4, (m.PromiseEntry(5, Ballot(1, "a"), value, False),), 0, False)
    c.receive("b", second, now=now)  # the end of the log first: a gap from slot 1 to 3
    assert not c.is_leader
    effects = c.receive("b", first, now=now)
    accepts = [
        e.message for e in effects if isinstance(e, Broadcast) and isinstance(e.message, m.Accept)
    ]
    assert c.is_leader
    assert {(a.slot, a.value) for a in accepts} >= {(1, value), (5, value)}


def test_a_window_of_big_accepted_values_does_not_stop_the_next_election() -> None:
    """Seen with 8 KB values: 16 slots accepted, none chosen, the leader gone, no new leader."""
    settings = {"window_slots": 16, "max_message_bytes": 48_000}
    nodes = {
        n: Engine(EngineSettings(node_id=n, **settings), random.Random(i), CONFIG)  # type: ignore[arg-type]
        for i, n in enumerate("bc")
    }
    big = [bytes([slot]) * 40_000 for slot in range(1, 17)]
    for node in nodes.values():
        for slot, value in enumerate(big, start=1):  # the leader's accepts, never chosen
            effects = node.receive("a", m.Accept(Ballot(1, "a"), slot, value, 0), now=0.0)
            for e in effects:
                if isinstance(e, Persist):
                    node.handle_durable(e.sync_id, now=0.0)
    wire: list[tuple[str, str, m.Message]] = []
    proposed: dict[int, bytes] = {}
    now = 0.0
    while not any(node.is_leader for node in nodes.values()) and now < 30.0:
        now = min(node.next_deadline() for node in nodes.values())
        for name, node in nodes.items():
            wire += carry_out(name, node, node.tick(now), now)
        while wire:
            sender, to, message = wire.pop(0)
            if to in nodes:
                wire += carry_out(to, nodes[to], nodes[to].receive(sender, message, now), now)
            if isinstance(message, m.Accept) and message.ballot.node_id != "a":
                proposed[message.slot] = message.value
    assert any(node.is_leader for node in nodes.values()), "no leader within 30 s"
    assert [proposed.get(slot) for slot in range(1, 17)] == big  # each value re-proposed


def _elected_cluster(window_slots: int = 1) -> tuple[dict[str, Engine], str, float]:
    nodes = {
        n: Engine(EngineSettings(node_id=n, window_slots=window_slots), random.Random(i), CONFIG)
        for i, n in enumerate("abc")
    }
    now = 0.0
    while not any(node.is_leader for node in nodes.values()):
        now = min(node.next_deadline() for node in nodes.values())
        wire = [
            w for name, node in nodes.items() for w in carry_out(name, node, node.tick(now), now)
        ]
        while wire:
            sender, to, message = wire.pop(0)
            if to in nodes:
                wire += carry_out(to, nodes[to], nodes[to].receive(sender, message, now), now)
    name = next(n for n, e in nodes.items() if e.is_leader)
    return nodes, name, now


def test_a_commit_rides_on_the_next_accept_and_goes_alone_only_when_none_follows() -> None:
    nodes, name, now = _elected_cluster()
    leader = nodes[name]
    follower = next(n for n in nodes if n != name)
    first = carry_out(name, leader, leader.propose([m.Request("x", 1, b"1")], now), now)
    (slot,) = [msg.slot for _, to, msg in first if isinstance(msg, m.Accept) and to == follower]
    assert not carry_out(name, leader, leader.propose([m.Request("x", 2, b"2")], now), now)
    # The follower's vote chooses the slot; the request that waited goes out in the next one,
    # and its accept carries the commit point: no Commit of its own.
    chosen = carry_out(
        name, leader, leader.receive(follower, m.Accepted(leader.ballot, (slot,)), now), now
    )
    sent = [msg for _, to, msg in chosen if to == follower]
    assert [type(msg) for msg in sent] == [m.Accept]
    assert (sent[0].slot, sent[0].commit_upto) == (slot + 1, slot)
    # Nothing waits after the next one: its commit point waits commit_delay_s for an accept
    # to carry it, then goes out alone.
    last = carry_out(
        name, leader, leader.receive(follower, m.Accepted(leader.ballot, (slot + 1,)), now), now
    )
    assert not [msg for _, to, msg in last if to == follower]
    due = now + leader.settings.commit_delay_s
    assert leader.next_deadline() == due
    assert not [msg for _, to, msg in carry_out(name, leader, leader.tick(due - 1e-4), now)]
    alone = carry_out(name, leader, leader.tick(due), due)
    assert [msg for _, to, msg in alone if to == follower] == [m.Commit(leader.ballot, slot + 1)]
    assert leader.next_deadline() > due  # told once


def test_a_commit_point_an_accept_carries_within_the_delay_is_not_sent_again() -> None:
    nodes, name, now = _elected_cluster()
    leader = nodes[name]
    follower = next(n for n in nodes if n != name)
    first = carry_out(name, leader, leader.propose([m.Request("x", 1, b"1")], now), now)
    (slot,) = [msg.slot for _, to, msg in first if isinstance(msg, m.Accept) and to == follower]
    carry_out(name, leader, leader.receive(follower, m.Accepted(leader.ballot, (slot,)), now), now)
    later = now + leader.settings.commit_delay_s / 2
    sent = carry_out(name, leader, leader.propose([m.Request("x", 2, b"2")], later), later)
    assert [(type(msg), msg.commit_upto) for _, to, msg in sent if to == follower] == [
        (m.Accept, slot)
    ]
    quiet = carry_out(name, leader, leader.tick(now + 0.9 * 0.05), now + 0.9 * 0.05)
    assert not [msg for _, to, msg in quiet if isinstance(msg, m.Commit)]


def test_a_forwarded_request_is_committed_at_once_for_the_node_that_answers_it() -> None:
    nodes, name, now = _elected_cluster()
    leader = nodes[name]
    asker = next(n for n in nodes if n != name)
    request = m.Request("y", 1, b"1")
    sent = carry_out(name, leader, leader.receive(asker, m.Forward((request,)), now), now)
    (slot,) = [msg.slot for _, to, msg in sent if isinstance(msg, m.Accept) and to == asker]
    chosen = carry_out(
        name, leader, leader.receive(asker, m.Accepted(leader.ballot, (slot,)), now), now
    )
    assert [msg for _, to, msg in chosen if to == asker] == [m.Commit(leader.ballot, slot)]


def test_a_follower_read_hears_the_commit_point_before_its_index() -> None:
    nodes, name, now = _elected_cluster()
    leader = nodes[name]
    reader = next(n for n in nodes if n != name)
    wire = carry_out(name, leader, leader.propose([m.Request("x", 1, b"1")], now), now)
    wire += carry_out(reader, nodes[reader], nodes[reader].read(7, "linearizable", now), now)
    to_reader: list[m.Message] = []
    while wire:  # the write, then the read's round, to the end
        sender, to, message = wire.pop(0)
        out = carry_out(to, nodes[to], nodes[to].receive(sender, message, now), now)
        to_reader += [msg for source, dest, msg in out if source == name and dest == reader]
        wire += out
    (index,) = [msg.index for msg in to_reader if isinstance(msg, m.ReadIndexReply)]
    told = [
        msg.upto if isinstance(msg, m.Commit) else msg.commit_upto
        for msg in to_reader[: to_reader.index(m.ReadIndexReply((7,), index))]
        if isinstance(msg, (m.Commit, m.Heartbeat, m.Accept))
    ]
    assert index >= 2 and max(told) >= index
    assert not any(isinstance(msg, m.CatchupReply) for msg in to_reader)


def test_a_snapshot_download_whose_chunk_was_lost_restarts_without_spinning() -> None:
    b = engine("b")
    b.receive("a", m.CatchupReply((), 50, 40), now=0.3)  # compacted: download from slot 40
    b.tick(now=0.5)  # a retry period ends; the next ends at 1.0, after the chunk's 0.8
    assert b.next_deadline() <= 0.8  # the chunk's deadline is armed
    b.tick(now=0.8)  # the chunk never came
    assert b.next_deadline() > 0.8, "a past deadline would have the runtime tick in a loop"


def test_a_candidate_behind_the_compacted_log_catches_up_rather_than_refill_chosen_slots() -> None:
    """A promise cannot vouch for slots whose values were compacted away: it is cut short,
    and the candidate catches up by snapshot (it used to fill those slots with no-ops)."""
    cluster = Cluster(snapshot_every_commands=500, log_retention_slots=100)
    cluster.run_until(3.0)
    leader = cluster.leader()
    behind = next(n for n in "abc" if n != leader)
    other = next(n for n in "abc" if n not in (leader, behind))
    cluster.down.add(behind)
    for i in range(2_600):
        command = encode_command(Set(f"k{i % 50}", i))
        cluster.propose(leader, [m.Request("client", i + 1, command)])
        cluster.now += 0.0001
    b, a = cluster.nodes[other], cluster.nodes[behind]
    assert b.compacted_slot > a.applied_slot + 1  # what `behind` misses is gone from `other`
    cluster.down = {leader}  # the leader dies; the node that was away times out first
    b._election_deadline = 1e9
    cluster.run_until(cluster.now + 5.0)
    assert a.applied_slot == b.applied_slot
    assert a.state.digest() == b.state.digest()


def test_an_applied_slot_is_voted_for_only_with_its_chosen_value() -> None:
    b = engine("b")
    b.receive("a", m.CatchupReply((m.CatchupEntry(1, encode_batch(0, [])),), 1, 0), now=0.0)
    assert b.applied_slot == 1
    replies = []
    for value in (b"another value", encode_batch(0, [])):
        effects = b.receive("c", m.Accept(Ballot(5, "c"), 1, value, 1), now=1.0)
        for sync_id in [e.sync_id for e in effects if isinstance(e, Persist)]:
            effects += b.handle_durable(sync_id, now=1.0)
        replies += [e.message for e in effects if isinstance(e, Send)]
    assert replies == [m.Accepted(Ballot(5, "c"), (1,))]  # the chosen value's only


def test_leases_falling_due_together_all_expire_in_a_quiet_cluster() -> None:
    cluster = Cluster()
    cluster.run_until(3.0)
    leader = cluster.leader()
    grants = [m.Request("c", i + 1, encode_command(LeaseGrant(1000, 100 + i))) for i in range(5)]
    keys = [m.Request("c", 10 + i, encode_command(Set(f"k{i}", "v", 100 + i))) for i in range(5)]
    cluster.propose(leader, grants + keys)
    state = cluster.nodes[leader].state
    assert all(state.lease_info(100 + i) is not None for i in range(5))
    cluster.run_until(10.0)  # nothing else is written
    assert [state.lease_info(100 + i) for i in range(5)] == [None] * 5
    assert [state.get(f"k{i}") for i in range(5)] == [None] * 5


def test_a_follower_resends_what_waits_when_the_same_leader_starts_a_new_term() -> None:
    b = engine("b")
    b.receive("a", m.Heartbeat(Ballot(1, "a"), 0, 1), now=0.0)
    first = b.propose([m.Request("x", 1, b"cmd")], now=0.1)
    assert [type(e.message) for e in first if isinstance(e, Send)] == [m.Forward]
    # a steps down and is elected again: what it had queued is gone, so send it again now
    again = b.receive("a", m.Heartbeat(Ballot(2, "a"), 0, 1), now=0.2)
    forwards = [
        e.message for e in again if isinstance(e, Send) and isinstance(e.message, m.Forward)
    ]
    assert [r.seq for f in forwards for r in f.requests] == [1]


def test_a_snapshot_is_offered_to_peers_only_once_it_is_saved() -> None:
    settings = EngineSettings(node_id="b", snapshot_every_commands=3, log_retention_slots=1)
    b = Engine(settings, random.Random(1), CONFIG)
    batches = tuple(
        m.CatchupEntry(
            slot, encode_batch(0, [m.Request("x", slot, encode_command(Set("k", slot)))])
        )
        for slot in range(1, 6)
    )
    effects = b.receive("a", m.CatchupReply(batches[:4], 4, 0), now=0.0)
    (save,) = [e for e in effects if isinstance(e, SaveSnapshot)]
    b.receive("a", m.CatchupReply(batches[4:], 5, 0), now=0.01)  # the log compacted past 1
    # l, behind the kept log, asks: it wants a snapshot (so the one saved keeps its bytes).
    wait = b.receive("l", m.CatchupRequest(1), now=0.05)
    assert [e.message for e in wait if isinstance(e, Send)] == [m.CatchupReply((), 5, 0)]
    asked = b.receive("l", m.SnapshotRequest(save.slot, 0), now=0.1)
    assert not [e for e in asked if isinstance(e, Send) and isinstance(e.message, m.SnapshotChunk)]
    b.snapshot_saved(save.slot, now=0.2)
    served = b.receive("l", m.SnapshotRequest(save.slot, 0), now=0.3)
    chunks = [e.message for e in served if isinstance(e, Send)]
    assert [type(c) for c in chunks] == [m.SnapshotChunk] and chunks[0].data


def test_an_unanswered_accept_is_resent_on_time_and_an_answered_one_never() -> None:
    nodes, name, now = _elected_cluster(window_slots=4)
    leader = nodes[name]
    b, c = sorted(n for n in nodes if n != name)
    retransmit = leader.settings.retransmit_interval_s
    sent = carry_out(name, leader, leader.propose([m.Request("x", 1, b"1")], now), now)
    (slot,) = {msg.slot for _, _, msg in sent if isinstance(msg, m.Accept)}
    assert leader.next_deadline() <= now + retransmit
    later = now + retransmit
    resent = carry_out(name, leader, leader.tick(later), later)
    assert {(to, msg.slot) for _, to, msg in resent if isinstance(msg, m.Accept)} == {
        (b, slot),
        (c, slot),
    }
    # Its quorum comes: the resend due is looked up again at the next tick, and is gone.
    carry_out(name, leader, leader.receive(b, m.Accepted(leader.ballot, (slot,)), later), later)
    nothing = carry_out(name, leader, leader.tick(later + 2 * retransmit), later + 2 * retransmit)
    assert not [msg for _, _, msg in nothing if isinstance(msg, m.Accept)]
    assert leader._resend_due == float("inf")


def test_forwards_are_cut_as_the_one_by_one_loop_cuts_them() -> None:
    """The one-count fast path of _forward_batches gives what the per-request loop gives."""
    from paxoskv.paxos.engine import _forward_batches, _forward_batches_one_by_one

    rng = random.Random(7)
    for _ in range(300):
        requests = [
            m.Request(f"c{rng.randrange(3)}" * rng.randint(1, 9), seq, bytes(rng.randint(0, 400)))
            for seq in range(rng.randint(0, 40))
        ]
        total = sum(len(r.command) + len(r.client_id) + 32 for r in requests)
        for limit in (total - 1, total, total + 1, rng.randint(1, 4000)):
            assert _forward_batches(requests, limit) == _forward_batches_one_by_one(requests, limit)


def test_a_new_leader_serves_reads_only_once_every_slot_it_recovered_is_applied() -> None:
    """A new leader re-proposes every slot the promises reported, and they may be chosen out
    of order. A read started once only the first was applied read state from before the
    last, which may hold a write already acknowledged: the simulator's seed 90594 (five
    voters, a power cut) saw a linearizable read return a value overwritten before it."""
    b, c = engine("b"), engine("c")
    for slot in (1, 2, 3):  # b accepted three slots from a; nobody told it they were chosen
        request = m.Request("x", slot, encode_command(Set("k", slot)))
        accept = m.Accept(Ballot(1, "a"), slot, encode_batch(0, [request]), 0)
        carry_out("b", b, b.receive("a", accept, now=0.0), 0.0)
    now, wire = 0.0, []
    while b.role is not Role.CANDIDATE:  # b's election timeout: it campaigns; only c answers
        now = b.next_deadline()
        wire = carry_out("b", b, b.tick(now), now)
    held: list[tuple[str, str, m.Message]] = []

    def deliver(keep: Callable[[m.Message], bool]) -> list[object]:
        to_b: list[object] = []
        while wire:
            sender, to, message = wire.pop(0)
            if to == "c" and keep(message):
                wire.extend(carry_out("c", c, c.receive(sender, message, now), now))
            elif to == "b":
                effects = b.receive(sender, message, now)
                to_b += effects
                wire.extend(carry_out("b", b, effects, now))
            elif to == "c":
                held.append((sender, to, message))
        return to_b

    deliver(lambda msg: not (isinstance(msg, m.Accept) and msg.slot > 1))
    assert b.is_leader and b.applied_slot == 1  # slot 1 chosen again; 2 and 3 still out
    wire.extend(carry_out("b", b, b.read(7, "linearizable", now), now))
    effects = deliver(lambda msg: not isinstance(msg, m.Accept))  # heartbeats answered
    assert not [e for e in effects if isinstance(e, ReadReady)], "served before slot 3"
    wire.extend(held)
    effects = deliver(lambda msg: True)
    now += b.settings.heartbeat_interval_s
    effects += _drive(b, c, now, deliver, wire)
    assert [e for e in effects if isinstance(e, ReadReady)] == [ReadReady(7, 3)]  # at slot 3
    assert b.applied_slot == 3 and b.state.get("k") is not None
    assert b.state.get("k").value == 3


def _drive(b: Engine, c: Engine, now: float, deliver: Any, wire: list[Any]) -> list[object]:
    """Ticks until the read's heartbeat round has been answered."""
    effects: list[object] = []
    for _ in range(5):
        wire.extend(carry_out("b", b, b.tick(now), now))
        effects += deliver(lambda msg: True)
        now += b.settings.heartbeat_interval_s
    return effects


def test_a_voter_just_started_promises_no_rival_while_a_lease_it_gave_may_run() -> None:
    """A voter restarted within an election timeout has forgotten that it acked the leader's
    heartbeat a moment ago; promising a rival then let a new leader be elected while the
    old one still served lease reads, which missed the new leader's writes (review, 11th
    session). It waits out the shortest election timeout from its start."""
    started = 7.0
    b = Engine(EngineSettings(node_id="b"), random.Random(1), CONFIG, now=started)
    early = b.receive("c", m.Prepare(Ballot(5, "c"), 1), now=started + 0.49)
    assert not [e for e in early if isinstance(e, Persist | Send)], "promised too soon"
    later = b.receive("c", m.Prepare(Ballot(5, "c"), 1), now=started + 0.5)
    assert [e for e in later if isinstance(e, Persist)], "never promised"
