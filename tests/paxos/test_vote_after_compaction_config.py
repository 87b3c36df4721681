"""A slot a new leader proposes again, whose configuration its acceptor let go of (the
configuration variant of tests/paxos/test_reproposal_after_compaction.py).

Four voters; the old leader demotes x in slot d, so d + 1 .. d + window - 1 are still
governed by all four (quorum 3) and the three left govern from d + window on
(alpha-reconfiguration, configs.py). y misses all of it. x and z accept every slot and
promise y before they learn most of them chosen, so their promises are whole (not cut short
for a log let go of) and y recovers the slots from them. The old leader's commits reach x
and z only afterwards: they apply past d + window and let go of the log there, and
``ConfigHistory.forget_before`` drops the configuration of d + 1 .. d + window - 1 with it.
Asked about slot d + 2, x's ``ConfigHistory.at`` answers with the oldest configuration kept,
in which x is no voter, so ``_votes_in`` refuses y's accept of it. y needs three of the four
old voters (y, z and x: the old leader is gone) and never chooses the slot; the leader,
heard by all, stays stuck on it. A slot let go of must be voted for whatever configuration
is kept for it: the leader counts only the votes of the slot's own voters.

Why these numbers: x knows d + 1 chosen when it promises (the old leader proposes d + 4 only
once d + 1 is chosen, and its accept says so), so the slot y must propose again is d + 2,
which needs a window of 3 to be still under the old configuration; and x must accept d + 4
from the old leader too, since the values applied in one step are let go of only at the
next (``_applied_before_step``), so it lets go of d + 3 only when it applies d + 4.

Fails at 53e86ae (``_votes_in`` asks the configuration kept whatever the slot); passes once
it answers for every slot at or before ``compacted_slot``.
"""

from __future__ import annotations

from paxoskv.paxos import messages as m
from paxoskv.state import DemoteVoter, Set, encode_command
from tests.paxos.wire import Cluster, Wire

WINDOW = 3


def deliver_one(cluster: Cluster, sender: str, to: str, message: m.Message) -> Wire:
    return cluster.carry_out(to, cluster.nodes[to].receive(sender, message, cluster.now))


def only(wire: Wire, to: str, kind: type) -> list[m.Message]:
    return [msg for _, t, msg in wire if t == to and isinstance(msg, kind)]


def accept_of(wire: Wire, to: str, slot: int) -> m.Accept:
    (accept,) = [a for a in only(wire, to, m.Accept) if isinstance(a, m.Accept) and a.slot == slot]
    return accept


def test_a_slot_let_go_of_is_voted_for_under_its_own_configuration() -> None:
    cluster = Cluster("abcd", window_slots=WINDOW, log_retention_slots=0)
    cluster.run_until(3.0)
    old = cluster.leader()
    x, y, z = (n for n in cluster.names if n != old)
    OLD, X, Y, Z = (cluster.nodes[n] for n in (old, x, y, z))
    d = OLD.applied_slot + 1
    assert X.applied_slot == Y.applied_slot == Z.applied_slot == d - 1
    sent: Wire = []  # everything the old leader sent from here on

    def from_old(wire: Wire) -> Wire:
        sent.extend(wire)
        return wire

    def chosen_by_x_and_z(wire: Wire, slot: int) -> None:
        """x and z accept ``slot`` from the old leader, and it hears their votes."""
        for to in (x, z):
            for ack in only(
                deliver_one(cluster, old, to, accept_of(wire, to, slot)), old, m.Accepted
            ):
                from_old(deliver_one(cluster, to, old, ack))

    # Slot d demotes x: the four govern up to d + WINDOW - 1, the old leader, y and z after.
    demote = m.Request("c", 1, encode_command(DemoteVoter(x)))
    wire = from_old(cluster.carry_out(old, OLD.propose([demote], cluster.now)))
    deliver_one(cluster, old, y, accept_of(wire, y, d))  # y accepts d; its vote is lost
    chosen_by_x_and_z(wire, d)
    assert OLD.applied_slot == d
    # Applying d, the old leader padded d + 1 and d + 2 with no-ops; a write takes d + 3.
    write1 = m.Request("c", 2, encode_command(Set("k1", 1)))
    write2 = m.Request("c", 3, encode_command(Set("k2", 2)))
    from_old(cluster.carry_out(old, OLD.propose([write1], cluster.now)))
    from_old(cluster.carry_out(old, OLD.propose([write2], cluster.now)))  # waits: window full
    # y hears only d + 1, whose accept tells it d is chosen; it misses everything after.
    deliver_one(cluster, old, y, accept_of(sent, y, d + 1))
    assert Y.applied_slot == d and d + 2 not in Y.accepted
    # d + 1 is chosen first, which lets the old leader send d + 4 (telling d + 1 chosen).
    chosen_by_x_and_z(sent, d + 1)
    assert OLD.applied_slot == d + 1
    # The rest is chosen one slot at a time; the old leader's commit points are collected,
    # not delivered.
    commits: list[m.Message] = []
    for slot in (d + 2, d + 3, d + 4):
        chosen_by_x_and_z(sent, slot)
        cluster.now += 0.003
        commits += only(from_old(cluster.carry_out(old, OLD.tick(cluster.now))), x, m.Commit)
    assert OLD.applied_slot == d + 4
    assert [c.upto for c in commits if isinstance(c, m.Commit)] == [d + 2, d + 3, d + 4]
    assert X.applied_slot == Z.applied_slot == d + 1 and X.compacted_slot == d
    # The old leader is gone. y, which missed d + 2 .. d + 4, campaigns; x and z promise,
    # reporting those slots accepted, not known chosen.
    cluster.down.add(old)
    cluster.now += 2.0
    prepares = only(cluster.carry_out(y, Y.tick(cluster.now)), x, m.Prepare)
    assert prepares
    new_accepts: Wire = []
    for to in (x, z):
        for promise in only(deliver_one(cluster, y, to, prepares[0]), y, m.Promise):
            new_accepts += deliver_one(cluster, to, y, promise)
    reproposed = only(new_accepts, x, m.Accept)
    assert Y.is_leader and Y.applied_slot == d + 1
    assert [a.slot for a in reproposed if isinstance(a, m.Accept)][:3] == [d + 2, d + 3, d + 4]
    # The old leader's commits reach x and z only now: they apply up to d + 4 and let go of
    # the log past d + WINDOW, and with it the configuration that governs d + 2.
    for to in (x, z):
        for commit in commits:
            deliver_one(cluster, old, to, commit)
    assert X.applied_slot == d + 4 and X.compacted_slot >= d + WINDOW
    # The new leader proposes the recovered values again; everyone left is up and connected.
    cluster.deliver([w for w in new_accepts if w[0] == y])
    cluster.run_until(cluster.now + 10.0)
    cluster.propose(cluster.leader(), [m.Request("c", 4, encode_command(Set("k3", 3)))])
    cluster.run_until(cluster.now + 10.0)
    leader = cluster.nodes[cluster.leader()]
    assert leader.applied_slot > d + 4, (
        f"stuck: leader {cluster.leader()} applied {leader.applied_slot}, slot {d + 2} needs "
        f"3 of {sorted(Y.configs.at(d + 2).voters)}; {x} compacted {X.compacted_slot} and "
        f"takes its voters for {sorted(X.configs.at(d + 2).voters)}"
    )
