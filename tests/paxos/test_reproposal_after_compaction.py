"""A slot a new leader proposes again, let go of by the acceptors it needs (found in review,
twelfth session).

An acceptor applies a slot only after it promised the new leader (the old leader's Commit
comes late), lets go of it (retention smaller than the window), and then refuses to vote for
it when the new leader proposes its value again: ``_on_accept`` votes for an applied slot only
if it still holds its value to compare. With a quorum of such acceptors the slot is never
chosen again and the new leader, heard by all, stays stuck on it.

Fails at fbaed1f (log_retention_slots below window_slots, or a log_retention_bytes the
window's values exceed, is enough). Passes at fbaed1f^, whose log was kept back to the last
snapshot (none here); fails there too with ``snapshot_every_commands=1``: the refusal is
older, the commit makes it reachable whatever the snapshot settings.
"""

from __future__ import annotations

from paxoskv.paxos import messages as m
from paxoskv.state import Set, encode_command
from tests.paxos.wire import Cluster, Wire


def deliver_one(cluster: Cluster, sender: str, to: str, message: m.Message) -> Wire:
    return cluster.carry_out(to, cluster.nodes[to].receive(sender, message, cluster.now))


def only(wire: Wire, to: str, kind: type) -> list[m.Message]:
    return [msg for _, t, msg in wire if t == to and isinstance(msg, kind)]


def test_a_slot_applied_after_the_promise_and_let_go_of_is_still_voted_for() -> None:
    cluster = Cluster(log_retention_slots=0)
    cluster.run_until(3.0)
    old = cluster.leader()
    x, y = (n for n in cluster.names if n != old)
    OLD, X, Y = (cluster.nodes[n] for n in (old, x, y))
    s = OLD.applied_slot + 1
    assert X.applied_slot == Y.applied_slot == s - 1
    # The old leader proposes two slots, pipelined; only x hears them; both are chosen.
    requests = [m.Request("c", i, encode_command(Set(f"k{i}", i))) for i in (1, 2)]
    wire = cluster.carry_out(old, OLD.propose([requests[0]], cluster.now))
    wire += cluster.carry_out(old, OLD.propose([requests[1]], cluster.now))
    accepts = only(wire, x, m.Accept)
    assert [a.slot for a in accepts] == [s, s + 1]
    commits: list[m.Message] = []
    for accept in accepts:  # chosen one by one; the old leader's commit point goes out each time
        for ack in only(deliver_one(cluster, old, x, accept), old, m.Accepted):
            deliver_one(cluster, x, old, ack)
        cluster.now += 0.003
        told = cluster.carry_out(old, OLD.tick(cluster.now))
        commits += only(told, x, m.Commit)
    assert OLD.applied_slot == s + 1 and X.applied_slot == s - 1
    assert [c.upto for c in commits] == [s, s + 1]
    # y, which missed both, campaigns; x promises (s, s + 1 accepted, not known chosen).
    cluster.now += 2.0
    prepares = only(cluster.carry_out(y, Y.tick(cluster.now)), x, m.Prepare)
    assert prepares
    promises = only(deliver_one(cluster, y, x, prepares[0]), y, m.Promise)
    new_accepts: list[m.Message] = []
    for promise in promises:
        new_accepts += only(deliver_one(cluster, x, y, promise), x, m.Accept)
    assert Y.is_leader and [a.slot for a in new_accepts][:2] == [s, s + 1]
    # The old leader's commits reach x only now: it applies s and s + 1, and lets s go.
    for commit in commits:
        deliver_one(cluster, old, x, commit)
    assert X.applied_slot == s + 1
    # The new leader proposes the chosen values again; everyone is up and connected.
    cluster.deliver([(y, x, a) for a in new_accepts])
    cluster.run_until(cluster.now + 10.0)
    cluster.propose(
        y if Y.is_leader else cluster.leader(), [m.Request("c", 3, requests[0].command)]
    )
    cluster.run_until(cluster.now + 10.0)
    leader = cluster.nodes[cluster.leader()]
    assert leader.applied_slot > s + 1, (
        f"stuck: leader applied {leader.applied_slot}, x compacted {X.compacted_slot}, "
        f"old compacted {OLD.compacted_slot}"
    )
