"""Catching up by snapshot once the node that serves it has let its packed bytes go.

A saved snapshot keeps its packed bytes only while a peer wants one (``catchup_hold_s``);
a peer far behind after that has one taken for it. These hold the paths around that to what
they did when every saved snapshot was kept: a follower catches up, a node cut off from the
leader alone catches up from the other members however many there are, and a peer a little
behind is served the log it was pinned, not made to wait for a new snapshot.
"""

from __future__ import annotations

from paxoskv.paxos import messages as m
from paxoskv.paxos.effects import SaveSnapshot, Send
from simulations.scenario import Scenario
from tests.paxos.test_log_retention import entries, learner


def _behind_the_kept_log(s: Scenario, writes: int = 60) -> tuple[str, str]:
    leader = s.elect()
    lagging = sorted(set(s.world.nodes) - {leader})[-1]
    s.isolate(lagging)
    for i in range(writes):
        s.set(leader, f"k{i % 7}", i)
    engine = s.world.nodes[leader].engine
    s.run_until(
        lambda: engine._transfer is not None and not engine.holds_snapshot_copy,
        2.0,
        "a periodic snapshot saved with nobody asking for one, and let go of",
    )
    assert engine.compacted_slot > s.applied(lagging)
    return leader, lagging


def test_a_follower_catches_up_by_snapshot_after_the_leader_let_its_image_go() -> None:
    s = Scenario(3, seed=5, snapshot_every_commands=20, log_retention_slots=5)
    _, lagging = _behind_the_kept_log(s)
    s.heal()
    s.converge(within_s=10.0)
    assert s.local(lagging, "k3") == 59


def test_a_node_cut_off_from_the_leader_catches_up_from_the_other_members() -> None:
    """Asked in turn every 0.5 s, each of eleven other members came round again after 5.5 s,
    past ``catchup_hold_s``: each had let go of the snapshot it took, took another, and none
    was ever sent (found in review). The node now keeps asking the one taking it."""
    s = Scenario(12, seed=5, snapshot_every_commands=20, log_retention_slots=5)
    leader, lagging = _behind_the_kept_log(s)
    s.heal()
    s.world.partition({leader}, {lagging})  # only the link to the leader stays broken
    s.run_until(lambda: s.local(lagging, "k3") == 59, 30.0, "catching up from the others")


def test_a_peer_a_little_behind_keeps_its_log_when_the_newest_snapshot_is_let_go() -> None:
    """Its pin used to be cut back to the newest snapshot, which it could be sent instead; one
    let go of could be sent only by taking another."""
    b = learner(
        log_retention_slots=20,
        snapshot_every_commands=100,
        snapshot_every_bytes=10**12,
        max_message_bytes=200,
    )
    b.receive("a", m.CatchupReply(entries(1, 90), 90, 0), now=0.0)
    first = b.receive("c", m.CatchupRequest(75), now=0.1)
    (reply,) = [e.message for e in first if isinstance(e, Send)]
    assert reply.entries[0].slot == 75  # served from the log, and pinned there
    fed = b.receive("a", m.CatchupReply(entries(91, 150), 150, 0), now=0.2)
    (save,) = [e for e in fed if isinstance(e, SaveSnapshot)]
    b"".join(save.image.local_pieces())
    b.snapshot_saved(save.slot, now=0.3)
    assert not save.image.servable
    b.receive("a", m.CatchupReply(entries(151, 160), 160, 0), now=0.4)
    assert b.compacted_slot < 80, "what c still needs is kept for it"
    again = b.receive("c", m.CatchupRequest(80), now=0.5)
    (reply,) = [e.message for e in again if isinstance(e, Send)]
    assert reply.entries and reply.entries[0].slot == 80
    assert not [e for e in again if isinstance(e, SaveSnapshot)]
