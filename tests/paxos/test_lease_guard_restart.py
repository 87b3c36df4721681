"""A voter follows no message below the ballot of the leader it follows, but that ballot
(``_leader_ballot``) is volatile: a restart forgets which leader's lease the voter granted.
The two guards together still keep a restarted voter from promising the deposed leader's
campaign inside a lease it granted, before or after its restart: the start-up wait
(``_no_promises_until``) covers a lease acked in the last life, and the first heartbeat acked
in this life sets ``_leader_ballot`` again (written in review, twelfth session)."""

import random

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.effects import Effect, Persist, Send
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import DurableState
from paxoskv.state import Configuration

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}), learners=frozenset())
C1, A2, C3 = Ballot(1, "c"), Ballot(2, "a"), Ballot(3, "c")
MIN = EngineSettings(node_id="b").election_timeout_min_s
LEASE = MIN * (1 - EngineSettings(node_id="b").clock_drift_bound)


def _promised(effects: list[Effect]) -> bool:
    return any(isinstance(e, Persist) for e in effects)


def _restarted_b(now: float) -> Engine:
    # b's journal: c's accept of slot 1 (its promise is c's; a's heartbeats raised nothing)
    durable = DurableState(promised=C1, accepted={1: (C1, b"x")})
    return Engine(EngineSettings(node_id="b"), random.Random(2), CONFIG, durable=durable, now=now)


def test_a_lease_acked_in_the_last_life_is_covered_by_the_start_up_wait() -> None:
    t = 10.0
    b = Engine(EngineSettings(node_id="b"), random.Random(1), CONFIG, now=0.0)
    b.receive("c", m.Accept(C1, 1, b"x", 0), now=t)
    assert Send("a", m.HeartbeatAck(A2, 1, 0)) in b.receive("a", m.Heartbeat(A2, 0, 1), t + 1.0)
    lease_end = t + 1.0 + LEASE  # a's lease, at most (sent no earlier than acked)
    b = _restarted_b(t + 1.01)  # a quick restart forgets _leader_ballot
    b.receive("c", m.Commit(C1, 0), now=t + 1.02)  # a late datagram of c's old term
    assert b.leader_id == "c"  # followed again: the start-up wait must cover the lease
    assert not _promised(b.receive("c", m.Prepare(C3, 1), now=lease_end - 0.001))


def test_a_lease_acked_after_the_restart_sets_the_ballot_followed_again() -> None:
    t = 10.0
    b = _restarted_b(t)
    b.receive("c", m.Commit(C1, 0), now=t + 0.01)  # late, before a's first heartbeat
    acked = b.receive("a", m.Heartbeat(A2, 0, 5), now=t + 0.2)
    assert Send("a", m.HeartbeatAck(A2, 5, 0)) in acked
    b.receive("c", m.Commit(C1, 0), now=t + 0.3)  # late again: ignored now
    assert b.leader_id == "a"
    # Past the start-up wait, within the lease a's heartbeat at t + 0.2 may hold
    assert t + MIN < t + 0.2 + LEASE
    assert not _promised(b.receive("c", m.Prepare(C3, 1), now=t + MIN + 0.01))
    # and a heartbeat of c's old term is refused, telling c of a's ballot
    nacked = b.receive("c", m.Heartbeat(C1, 0, 9), now=t + MIN + 0.02)
    assert Send("c", m.Nack(C1, A2)) in nacked
