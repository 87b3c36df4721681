"""A voter's id started again on an empty data dir (wiped, lost, a new machine): "acceptor
amnesia". Its earlier life's promises and accepts are gone, so it must not vote in that life's
seat: it stops (``AmnesiacVoter``) without a vote, and once removed it comes back as a new
member that votes only in the seat it was given in this life."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from paxoskv import Node
from paxoskv.cli.errors import EXIT_USAGE, failure_for
from paxoskv.errors import AmnesiacVoter
from paxoskv.paxos import effects as fx
from paxoskv.paxos import messages as m
from paxoskv.paxos.engine import Engine
from paxoskv.runtime import protocol, replica
from paxoskv.runtime.identity import (
    BOOTSTRAP_FILE,
    LIFE_FILE,
    NODE_ID_FILE,
    Life,
    load_life,
    save_life,
)
from tests.runtime.cluster import MemoryCluster, PaxosHold, eventually

VOTES = (m.Promise, m.Accepted, m.HeartbeatAck, m.Prepare)


class VoteTap(Engine):
    """An engine that notes every vote it sends (a promise, an accept's ack, a heartbeat's
    ack) and every campaign it starts, by node id."""

    sent: dict[str, list[tuple[type, bool]]] = {}  # node id -> (kind, a voter by then)

    def _drain(self, now: float) -> list[fx.Effect]:
        effects = super()._drain(now)
        for effect in effects:
            if isinstance(effect, (fx.Send, fx.Broadcast)) and isinstance(effect.message, VOTES):
                sent = VoteTap.sent.setdefault(self.node_id, [])
                voter = self.node_id in self.state.configuration.voters
                sent.append((type(effect.message), voter))
        return effects


Votes = dict[str, list[tuple[type, bool]]]


@pytest.fixture
def votes(monkeypatch: pytest.MonkeyPatch) -> Votes:
    VoteTap.sent = {}
    monkeypatch.setattr(replica, "Engine", VoteTap)
    return VoteTap.sent


async def three_voters(cluster: MemoryCluster) -> Node:
    """Three voters bootstrapped, a few writes made; the leader."""
    for node_id in ("n1", "n2", "n3"):
        await cluster.start(node_id, bootstrap_expect=3)
    await eventually(lambda: cluster.leader() is not None, 5, "a leader")
    leader = cluster.leader()
    assert leader is not None
    for i in range(5):
        await leader.set(f"k{i}", i)
    return leader


def follower(cluster: MemoryCluster, leader: Node) -> str:
    return next(n for n in sorted(cluster.nodes) if n != leader.node_id)


async def wipe_and_restart(cluster: MemoryCluster, tmp_path: Path, node_id: str) -> Any:
    await cluster.stop(node_id)
    shutil.rmtree(tmp_path / node_id)
    return await cluster.start(node_id)


@pytest.mark.parametrize("wipe_again", [False, True], ids=["as-it-is", "wiped-again"])
async def test_a_voter_restarted_on_a_wiped_data_dir_never_votes_until_removed_and_added(
    tmp_path: Path, votes: Votes, wipe_again: bool
) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        leader = await three_voters(cluster)
        victim = follower(cluster, leader)
        amnesiac = await wipe_and_restart(cluster, tmp_path, victim)
        votes.pop(victim, None)  # (its earlier life's votes were its own)
        for i in range(20):  # accepts it hears, while it catches up and after
            await leader.set(f"after{i}", i)
            if amnesiac.replica.failure is not None:
                break
        await eventually(
            lambda: (
                amnesiac.replica.failure is not None
                or (
                    amnesiac.replica.engine is not None
                    and amnesiac.replica.engine.applied_slot >= leader.replica.engine.applied_slot
                )
            ),
            5,
            f"{victim} catching up or stopping",
        )
        # (its check gives the duplicate-id watch a few hello intervals before it stops)
        await eventually(lambda: amnesiac.replica.failure is not None, 5, f"{victim} stopping")
        assert votes.get(victim, []) == [], f"the amnesiac voter {victim} voted"
        assert isinstance(amnesiac.replica.failure, AmnesiacVoter)
        assert f"paxos-kv members remove {victim}" in str(amnesiac.replica.failure)
        assert failure_for(amnesiac.replica.failure).exit_code == EXIT_USAGE  # as WrongFormation
        await cluster.stop(victim)

        # The advice followed: removed, then started again as it is (or on an empty dir).
        await leader.remove(victim)
        if wipe_again:
            shutil.rmtree(tmp_path / victim)
        votes.pop(victim, None)
        back = await cluster.start(victim)
        await eventually(lambda: back.replica.engine is not None, 5, "its joining")
        engine = back.replica.engine
        assert engine is not None
        await eventually(lambda: back.replica.settled(), 10, "its check")
        await eventually(lambda: victim in engine.configuration.voters, 10, "its promotion")
        for i in range(40):  # past its old seat's last slots, if its removal was that recent
            await leader.set(f"voted{i}", i)
        await eventually(lambda: votes.get(victim), 5, "its votes")
        assert all(voter for _, voter in votes[victim]), "it voted before it was promoted"
        assert back.replica.failure is None
        assert await back.get("voted39") == 39
    finally:
        await cluster.close()


async def test_founders_on_fresh_dirs_vote_and_a_normal_restart_still_votes(
    tmp_path: Path, votes: Votes
) -> None:
    """A brand-new cluster's members are fresh lives too: their genesis seat is their own.
    A member restarted on its own data dir remembers its votes: it votes at once."""
    cluster = MemoryCluster(tmp_path)
    try:
        leader = await three_voters(cluster)
        formation = leader.replica.status()["formation"]
        for node_id in ("n1", "n2", "n3"):
            life = load_life(tmp_path / node_id)
            assert life is not None and life.founded == formation
            assert votes.get(node_id) or cluster.nodes[node_id] is leader
        victim = follower(cluster, leader)
        await cluster.stop(victim)
        votes.pop(victim, None)
        back = await cluster.start(victim)
        assert back.replica.engine is not None and not back.replica.engine.settings.learner
        await leader.set("again", 1)
        await eventually(lambda: votes.get(victim), 5, "its votes")
    finally:
        await cluster.close()


async def test_a_data_dir_of_an_earlier_release_is_no_fresh_life(
    tmp_path: Path, votes: Votes
) -> None:
    """A data dir with acceptor state and no life record (an earlier release's, or any node
    before this rule) keeps voting after a restart; a founder that crashed before its first
    journal record keeps its genesis seat too."""
    cluster = MemoryCluster(tmp_path)
    try:
        leader = await three_voters(cluster)
        victim = follower(cluster, leader)
        await cluster.stop(victim)
        (tmp_path / victim / LIFE_FILE).unlink()
        votes.pop(victim, None)
        back = await cluster.start(victim)
        assert back.replica.engine is not None and not back.replica.engine.settings.learner
        await leader.set("again", 1)
        await eventually(lambda: votes.get(victim), 5, "its votes")
        assert load_life(tmp_path / victim) is None
    finally:
        await cluster.close()


async def test_a_lone_founder_that_crashed_before_its_first_record_still_votes(
    tmp_path: Path,
) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        node = await cluster.start("solo", bootstrap_expect=1)
        await node.set("k", 1)
        await cluster.stop("solo")
        for path in (tmp_path / "solo").glob("*"):  # all it kept but its journal
            if path.name.startswith(("journal-", "snapshot-")):
                path.unlink()
        node = await cluster.start("solo")
        await node.set("k", 2)
        assert await node.get("k") == 2
    finally:
        await cluster.close()


async def test_a_founder_restarted_before_its_genesis_keeps_its_seat(
    tmp_path: Path, votes: Votes
) -> None:
    """A founder that announced its full met-set and stopped before it bootstrapped, while
    the others did: its data dir holds its met-set and life record alone. It never voted, and
    its genesis seat is its own; it must vote, not stop as an amnesiac (two founders stopped
    so, as by one Ctrl-C during a demo's bootstrap, left a cluster that could not even remove
    them). Its data dir is rebuilt as that crash leaves it."""
    cluster = MemoryCluster(tmp_path)
    try:
        leader = await three_voters(cluster)
        victim = follower(cluster, leader)
        await cluster.stop(victim)
        data_dir = tmp_path / victim
        for path in data_dir.iterdir():
            if path.name not in (LIFE_FILE, BOOTSTRAP_FILE, NODE_ID_FILE):
                path.unlink()
        life = load_life(data_dir)
        assert life is not None
        save_life(data_dir, Life(life.nonce, None, life.checked_at))
        votes.pop(victim, None)
        back = await cluster.start(victim, bootstrap_expect=3)
        await eventually(lambda: back.replica.engine is not None, 5, "its joining")
        assert back.replica.settled()
        for i in range(5):
            await leader.set(f"after{i}", i)
        await eventually(lambda: votes.get(victim), 5, "its votes")
        assert back.replica.failure is None
    finally:
        await cluster.close()


async def test_a_wiped_voter_does_not_help_elect_a_leader(tmp_path: Path, votes: Votes) -> None:
    """With the leader down, the one other voter needs the wiped voter's promise to lead: it
    must not get it (a learner's promise, which counted in no quorum, was sent before)."""
    cluster = MemoryCluster(tmp_path)
    try:
        leader = await three_voters(cluster)
        victim = follower(cluster, leader)
        survivor = next(n for n in sorted(cluster.nodes) if n not in (victim, leader.node_id))
        await cluster.stop(leader.node_id)
        amnesiac = await wipe_and_restart(cluster, tmp_path, victim)
        await eventually(lambda: amnesiac.replica.engine is not None, 5, "its joining")
        votes.pop(victim, None)

        def campaigns() -> int:
            return sum(1 for kind, _ in votes.get(survivor, []) if kind is m.Prepare)

        before = campaigns()
        await eventually(lambda: campaigns() >= before + 3, 10, f"{survivor} campaigning")
        assert votes.get(victim, []) == [], f"the amnesiac voter {victim} voted"
        assert cluster.leader() is None
    finally:
        await cluster.close()


async def test_a_learner_promoted_while_it_catches_up_keeps_its_seat(tmp_path: Path) -> None:
    """Promoted by hand before its life check had caught up, a fresh learner found itself a
    voter and stopped as amnesiac; with one voter besides, the cluster was stuck for good
    (review, twenty-ninth session). A seat chosen after the check's read began is this
    life's: the read's slot tells it from an earlier life's."""
    cluster = MemoryCluster(tmp_path)
    try:
        v1 = await cluster.start("v1", bootstrap_expect=1)
        await v1.wait_ready(5)
        for number in range(20):
            await v1.set(f"k{number}", number)
        learner = await cluster.start("L", join=True, learner=True)
        replica = learner.replica
        hold = PaxosHold(learner, passed=(m.Heartbeat, m.ReadIndexReply))  # no catch-up
        engine = v1.replica.engine
        assert engine is not None
        await eventually(lambda: "L" in engine.configuration.learners, 10, "L added")
        await eventually(lambda: replica.engine is not None, 5, "L's engine")
        own = replica.engine
        assert own is not None

        def read_index_known() -> bool:
            return any(index is not None for index in own._follower_reads.values())

        await eventually(read_index_known, 10, "the life check's read confirmed")
        assert own.applied_slot < engine.applied_slot and replica._life is not None
        assert replica._life.checked_at is None  # its check still waits for the catch-up
        await v1.promote("L")
        hold.release()
        await eventually(lambda: replica._life.checked_at is not None, 10, "L's check done")
        assert replica.failure is None
        await v1.set("after", 1)  # a quorum of v1 and L
        assert replica.failure is None and "L" in engine.configuration.voters
    finally:
        await cluster.close()


class ReplyTap(VoteTap):
    """Also keeps the read replies sent to n4, and loses those n4 gets while told to."""

    to_n4: list[tuple[str, m.ReadIndexReply]] = []
    lose_at_n4 = False

    def receive(self, sender: str, message: m.Message, now: float) -> list[fx.Effect]:
        if type(message) is m.ReadIndexReply and self.node_id == "n4" and ReplyTap.lose_at_n4:
            return self._drain(now)  # lost (asked again, lost again)
        return super().receive(sender, message, now)

    def _drain(self, now: float) -> list[fx.Effect]:
        effects = super()._drain(now)
        for effect in effects:
            reply = isinstance(effect, fx.Send) and type(effect.message) is m.ReadIndexReply
            if reply and effect.to == "n4":  # type: ignore[union-attr]
                ReplyTap.to_n4.append((self.node_id, effect.message))  # type: ignore[union-attr]
        return effects


async def test_a_read_reply_to_an_earlier_life_does_not_pass_a_fresh_lifes_check(
    tmp_path: Path, votes: Votes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read ids began at 1 in every process: the reply to an earlier life's life-check read,
    delayed (a leader paused before sending it), matched the fresh life's, whose check then
    took that life's slot for its own and voted in the earlier life's seat (review of the
    life check, twenty-ninth session). Ids now begin at random."""
    ReplyTap.to_n4, ReplyTap.lose_at_n4 = [], False
    monkeypatch.setattr(replica, "Engine", ReplyTap)
    cluster = MemoryCluster(tmp_path)
    try:
        leader = await three_voters(cluster)
        engine = leader.replica.engine
        assert engine is not None
        earlier = await cluster.start("n4", join=True)
        await eventually(earlier.replica.settled, 10, "the earlier life's check")
        await eventually(lambda: "n4" in engine.configuration.voters, 10, "its promotion")
        await leader.set("voted", 1)
        await eventually(lambda: votes.get("n4"), 5, "the earlier life's votes")
        stale_from, stale = ReplyTap.to_n4[0]  # the answer to its check's read

        await cluster.stop("n4")
        shutil.rmtree(tmp_path / "n4")  # its disk lost; a fresh life under the same id
        votes.pop("n4", None)
        ReplyTap.lose_at_n4 = True
        fresh = await cluster.start("n4")
        await eventually(lambda: fresh.replica.engine is not None, 5, "its engine")
        own = fresh.replica.engine
        assert own is not None
        await eventually(lambda: own.applied_slot >= engine.applied_slot, 10, "its catch-up")
        assert stale.read_ids[0] not in own._follower_reads  # not the id of its own read
        fresh.replica._on_deliveries([(stale_from, m.encode_message(stale, protocol.PAXOS))])
        ReplyTap.lose_at_n4 = False
        await eventually(lambda: fresh.replica.failure is not None, 10, "the fresh life stopping")
        assert isinstance(fresh.replica.failure, AmnesiacVoter)
        assert votes.get("n4", []) == [], "the fresh life voted in the earlier life's seat"
    finally:
        await cluster.close()
