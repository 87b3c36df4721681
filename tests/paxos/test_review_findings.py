"""Two engine bugs a reviewer found in the eleventh session, each driven exactly.

A value reported chosen must win phase 1 whatever the ballots and the order of the promises
(a new leader re-proposed another value in a chosen slot); and a leader whose slots were
applied past the one it was advancing (values learnt chosen while it campaigned) must go on
to the next slot with its quorum in, or reads wait forever on an idle cluster.
"""

from __future__ import annotations

import random

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import ZERO_BALLOT, Ballot
from paxoskv.paxos.batches import encode_batch
from paxoskv.paxos.effects import Broadcast, Persist, ReadReady, Send
from paxoskv.paxos.engine import Engine, EngineSettings, Role
from paxoskv.state import Configuration, Set, encode_command

FIVE = Configuration(voters=frozenset("abcde"), learners=frozenset())
THREE = Configuration(voters=frozenset("abc"), learners=frozenset())


def eng(n):
    return Engine(EngineSettings(node_id=n), random.Random(1), FIVE)


def value_of(k, v):
    return encode_batch(0, [m.Request("cl", v, encode_command(Set(k, v)))])


def durable(node, effects, now):
    out = list(effects)
    for e in effects:
        if isinstance(e, Persist):
            out += durable(node, node.handle_durable(e.sync_id, now), now)
    return out


def campaign(node, now):
    out = []
    while node.role is not Role.CANDIDATE:
        now = node.next_deadline()
        out += durable(node, node.tick(now), now)
    return out, now


def test_a_value_reported_chosen_wins_phase_one_over_a_later_ballots_accept() -> None:
    b1, b2 = Ballot(1, "b"), Ballot(2, "a")
    x, v, w = value_of("k", 1), value_of("k", 2), value_of("k", 3)
    # History: leader b (b1) proposed x@1, w@2; only b accepted w@2. Leader a (b2) with
    # quorum {a,c,e} chose x@1 and v@2; a applied both.
    b = eng("b")
    durable(b, b.receive("b", m.Accept(b1, 1, x, 0), 0.0), 0.0)
    durable(b, b.receive("b", m.Accept(b1, 2, w, 0), 0.0), 0.0)
    c = eng("c")
    durable(c, c.receive("a", m.Accept(b2, 1, x, 0), 0.0), 0.0)
    durable(c, c.receive("a", m.Accept(b2, 2, v, 0), 0.0), 0.0)
    # d campaigned; a's promise to it came in two parts (big values) and only the second
    # (slot 2, chosen, applied at a: ballot ZERO) arrived. d learned v@2 with a gap at 1.
    d = eng("d")
    _, t = campaign(d, 0.0)
    bd = d.ballot
    second_part = m.Promise(bd, 2, (m.PromiseEntry(2, ZERO_BALLOT, v, True),), 2, False)
    durable(d, d.receive("a", second_part, t), t)
    assert d.values.get(2) == v and d.applied_slot == 0
    # c campaigns later; promises: c's own, then d's, then b's.
    effects, now = campaign(c, t + 0.01)
    prep = next(
        e.message for e in effects if isinstance(e, Broadcast) and isinstance(e.message, m.Prepare)
    )
    now += 2.0  # nobody sticky

    def promise_of(node):
        eff = durable(node, node.receive("c", prep, now), now)
        return [e.message for e in eff if isinstance(e, Send) and isinstance(e.message, m.Promise)]

    pd, pb = promise_of(d), promise_of(b)
    out = []
    for p in pd:
        out += durable(c, c.receive("d", p, now), now)
    for p in pb:
        out += durable(c, c.receive("b", p, now), now)
    assert c.is_leader
    accepts = {
        e.message.slot: e.message.value
        for e in out
        if isinstance(e, Broadcast) and isinstance(e.message, m.Accept)
    }
    assert accepts[2] == v, "new leader re-proposes w at slot 2, where v was chosen"


def numbered(i):
    return encode_batch(0, [m.Request("cl", i, encode_command(Set("k", i)))])


def run(node, effects, now, out):
    for e in effects:
        if isinstance(e, Persist):
            run(node, node.handle_durable(e.sync_id, now), now, out)
        elif isinstance(e, Send):
            out.append((e.to, e.message))
        elif isinstance(e, Broadcast):
            out += [(to, e.message) for to in "abc" if to != node.node_id]
        elif isinstance(e, ReadReady):
            out.append(("READY", e))


def test_a_leader_advances_past_slots_applied_while_it_campaigned_and_serves_reads() -> None:
    b1 = Ballot(1, "a")
    b = Engine(EngineSettings(node_id="b"), random.Random(1), THREE)
    c = Engine(EngineSettings(node_id="c"), random.Random(2), THREE)
    for s in (1, 2, 3):  # a led at b1; {a, b} chose 1..3; a applied 1, 2 (3 not yet known)
        run(b, b.receive("a", m.Accept(b1, s, numbered(s), 0), 0.0), 0.0, [])
    out, now = [], 0.0
    while c.role is not Role.CANDIDATE:
        now = c.next_deadline()
        run(c, c.tick(now), now, out)
    bc = c.ballot
    # a's promise came in two parts (big values); the first was lost, then a crashed.
    part2 = m.Promise(
        bc,
        2,
        (
            m.PromiseEntry(2, ZERO_BALLOT, numbered(2), True),
            m.PromiseEntry(3, b1, numbered(3), False),
        ),
        2,
        False,
    )
    run(c, c.receive("a", part2, now), now, out)
    assert c.values.get(2) == numbered(2) and c.applied_slot == 0
    prepare = next(msg for to, msg in out if to == "b" and isinstance(msg, m.Prepare))
    out.clear()
    to_c = []
    run(b, b.receive("c", prepare, now), now, to_c)
    for _to, msg in to_c:
        run(c, c.receive("b", msg, now), now, out)
    assert c.is_leader
    accepts = {msg.slot: msg for to, msg in out if to == "b" and isinstance(msg, m.Accept)}
    assert sorted(accepts) == [1, 2, 3]
    for s in (2, 3, 1):  # b's acks arrive out of order: slot 1's last
        to_c = []
        run(b, b.receive("c", accepts[s], now), now, to_c)
        for to, msg in to_c:
            if to == "c":
                run(c, c.receive("b", msg, now), now, out)
    out.clear()
    run(c, c.read(1, "linearizable", now), now, out)
    for _ in range(200):  # 10 s of an idle cluster, b answering everything, a down
        now += 0.05
        run(c, c.tick(now), now, out)
        while out:
            to, msg = out.pop(0)
            if to == "READY":
                return  # served: the expected outcome
            if to == "b":
                back = []
                run(b, b.receive("c", msg, now), now, back)
                for to2, msg2 in back:
                    if to2 == "c":
                        run(c, c.receive("b", msg2, now), now, out)
    assert c.applied_slot == 3, "slot 3 has a quorum but is never chosen; the read hangs"
    raise AssertionError(f"read never served; it waits for slot {c._reads_from_slot}")
