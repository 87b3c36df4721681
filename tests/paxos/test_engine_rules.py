"""Rules of one engine, driven by hand: no simulator, every message shown."""

import random

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.effects import Broadcast, Persist, Send
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.state import Configuration

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
    effects = b.receive("c", m.Prepare(Ballot(5, "c"), 1), now=0.0)
    b.handle_durable(max(e.sync_id for e in effects if isinstance(e, Persist)), now=0.0)
    refused = b.receive("a", m.Accept(Ballot(4, "a"), 1, b"late", 0), now=0.0)
    assert Send("a", m.Nack(Ballot(4, "a"), Ballot(5, "c"))) in refused
    assert not [e for e in refused if isinstance(e, Persist)]


def test_a_learner_stores_accepts_but_never_votes_or_campaigns() -> None:
    learner = engine("l", learner=True)
    effects = learner.receive("a", m.Accept(Ballot(1, "a"), 1, b"v", 0), now=0.0)
    sync_id = max(e.sync_id for e in effects if isinstance(e, Persist))
    assert not [e for e in learner.handle_durable(sync_id, now=0.0) if isinstance(e, Send)]
    later = learner.tick(now=100.0)
    assert not [e for e in later if isinstance(e, Broadcast) and isinstance(e.message, m.Prepare)]


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


def test_a_promise_of_many_small_entries_from_long_node_ids_stays_under_the_limit() -> None:
    leader, candidate = "a" * 64, "c" * 64  # node ids may be 64 characters long
    config = Configuration(voters=frozenset({leader, "b", candidate}), learners=frozenset())
    limit_bytes = 8_000
    b = Engine(EngineSettings(node_id="b", max_message_bytes=limit_bytes), random.Random(1), config)
    sync_ids = []
    for slot in range(1, 400):  # far more small accepted values than one message holds
        effects = b.receive(leader, m.Accept(Ballot(1, leader), slot, b"v" * 8, 0), now=0.0)
        sync_ids += [e.sync_id for e in effects if isinstance(e, Persist)]
    effects = b.receive(candidate, m.Prepare(Ballot(2, candidate), 1), now=5.0)
    sync_ids += [e.sync_id for e in effects if isinstance(e, Persist)]
    promises = [
        e.message
        for e in b.handle_durable(max(sync_ids), now=5.0)
        if isinstance(e, Send) and isinstance(e.message, m.Promise)
    ]
    assert len(promises) == 1 and promises[0].truncated and promises[0].entries
    assert len(m.encode_message(promises[0])) <= limit_bytes


def test_a_snapshot_download_whose_chunk_was_lost_restarts_without_spinning() -> None:
    b = engine("b")
    b.receive("a", m.CatchupReply((), 50, 40), now=0.3)  # compacted: download from slot 40
    b.tick(now=0.5)  # a retry period ends; the next ends at 1.0, after the chunk's 0.8
    assert b.next_deadline() <= 0.8  # the chunk's deadline is armed
    b.tick(now=0.8)  # the chunk never came
    assert b.next_deadline() > 0.8, "a past deadline would have the runtime tick in a loop"
