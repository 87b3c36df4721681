"""Removing a voter whose vote the old configuration's last slots need: the rest go on.

A configuration change chosen in slot ``s`` governs from ``s + alpha`` on (see
:mod:`paxoskv.paxos.configs`), so the slots before that are still the old pair's, and a quorum
of a pair is both. A removed voter that stopped the moment it applied its removal left those
slots needing its vote for good: the voter left could neither finish them nor campaign over
them (phase 1 needs a quorum of every configuration it covers), and a two-node cluster whose
leader was removed had no leader again (found by the bad-input audit, twentieth session:
``members remove n1`` on ``local-cluster --nodes 2``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import paxoskv.runtime.replica as replica_module
from paxoskv import Node, connect
from paxoskv.errors import NodeRemoved
from paxoskv.runtime import protocol
from paxoskv.runtime.identity import ROLE_FILE
from paxoskv.runtime.replica import Replica
from tests.runtime.cluster import MemoryCluster, eventually


async def _pair(cluster: MemoryCluster) -> None:
    for node_id in ("n1", "n2"):
        await cluster.start(node_id, bootstrap_expect=2)
    for node in cluster.nodes.values():
        await node.wait_ready(5)
    await cluster.nodes["n1"].set("k", 1)
    for node in cluster.nodes.values():
        await eventually(
            lambda node=node: node.replica._member, what="both knowing they are members"
        )


@pytest.mark.parametrize("removed_role", ["leader", "follower"])
async def test_the_voter_left_of_a_pair_goes_on_alone(tmp_path: Path, removed_role: str) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        await _pair(cluster)
        leader = cluster.leader()
        assert leader is not None
        gone = (
            leader
            if removed_role == "leader"
            else next(node for node in cluster.nodes.values() if node is not leader)
        )
        left = next(node for node in cluster.nodes.values() if node is not gone)
        await left.remove(gone.node_id)
        await eventually(gone.replica.stopped.is_set, 10, f"{gone.node_id} stopping")
        assert isinstance(gone.replica.failure, NodeRemoved)
        await left.set("k", 2)  # the voter left leads alone and commits
        assert await left.get("k") == 2
        engine = left.replica.engine
        assert engine is not None
        assert engine.configuration.voters == frozenset({left.node_id})
    finally:
        await cluster.close()


def _hold_hellos(gone: Node, sender: str) -> list[bool]:
    """Keep ``gone`` from hearing ``sender``'s hellos while ``held[0]``: it cannot tell that
    the voter left has applied past the old configuration, so it stays leaving."""
    held = [True]
    real = gone.replica._on_hello

    def on_hello(source: str, hello: object) -> None:
        if not (held[0] and source == sender):
            real(source, hello)  # type: ignore[arg-type]

    gone.replica._on_hello = on_hello  # type: ignore[method-assign]
    return held


async def _leaving(cluster: MemoryCluster) -> tuple[Node, Node, list[bool]]:
    """A pair, its follower removed and held leaving: (the voter left, the one leaving, the
    hold on its hellos)."""
    await _pair(cluster)
    left = cluster.leader()
    assert left is not None
    gone = next(node for node in cluster.nodes.values() if node is not left)
    held = _hold_hellos(gone, left.node_id)
    await left.remove(gone.node_id)
    await eventually(lambda: gone.replica._role == "leaving", 5, "the removed voter leaving")
    kept = (cluster.tmp_path / gone.node_id / ROLE_FILE).read_text().split()
    assert kept == ["leaving", str(gone.replica._leave_after)]  # and how long, for a restart
    members = {member.node_id: member.role for member in gone.replica.members()}
    assert members[gone.node_id] == "leaving"
    assert gone.replica.status()["role"] == "leaving"
    return left, gone, held


async def _left_alone(cluster: MemoryCluster, left: Node) -> None:
    engine = left.replica.engine
    assert engine is not None
    await left.set("k", 3)
    assert engine.configuration.voters == frozenset({left.node_id})
    assert not engine.configuration.learners  # never added back, not even as a learner


async def _gone_for_good(cluster: MemoryCluster, left: Node, gone: Node) -> None:
    """``gone`` stops as removed, its data dir says so, and ``left`` goes on alone."""
    await eventually(gone.replica.stopped.is_set, 10, f"{gone.node_id} stopping")
    assert isinstance(gone.replica.failure, NodeRemoved)
    assert cluster.tmp_path is not None
    assert (cluster.tmp_path / gone.node_id / ROLE_FILE).read_text().strip() == "removed"
    await _left_alone(cluster, left)


async def test_a_leaving_voter_cut_off_past_down_after_s_is_not_added_back(
    tmp_path: Path,
) -> None:
    """Silent for ``down_after_s``, the process that was removed counts as a new one to the
    leader (``_follow_removed_life``), whose policy then added it back from its hellos, which
    reported an applied slot past its removal (review of the first fix: 3 runs in 4 ended
    with the pair whole again and no leader). A leaving voter's hellos ask for nothing."""
    cluster = MemoryCluster(tmp_path)
    try:
        left, gone, held = await _leaving(cluster)
        cluster.network.isolate(gone.node_id)
        await eventually(lambda: gone.node_id not in left.replica.peers, 5, "left forgetting it")
        cluster.network.heal()
        await eventually(lambda: gone.node_id in left.replica.peers, 5, "left hearing it again")
        held[0] = False
        await eventually(gone.replica.stopped.is_set, 10, f"{gone.node_id} stopping")
        assert isinstance(gone.replica.failure, NodeRemoved)
        await _left_alone(cluster, left)
    finally:
        await cluster.close()


async def test_a_leaving_voter_restarted_on_its_data_dir_leaves_again(tmp_path: Path) -> None:
    """Its data dir said "voter" until it stopped: restarted while it waited, it did not know
    it was leaving and was added back, a voter again (review of the first fix)."""
    cluster = MemoryCluster(tmp_path)
    try:
        left, gone, _ = await _leaving(cluster)
        await cluster.stop(gone.node_id)
        again = await cluster.start(gone.node_id)
        assert again.replica._role == "leaving"
        await _gone_for_good(cluster, left, again)
    finally:
        await cluster.close()


async def test_a_voter_removed_while_another_is_down_votes_until_the_rest_go_on(
    tmp_path: Path,
) -> None:
    """Four voters, one down, a healthy one removed: the three that stay are a quorum of the
    old four on paper, but only two are up. Stopped at once, the removed voter left the old
    configuration's padded slots with two votes of the three they need (review of the first
    fix: 4 runs in 4 stalled until the down voter came back)."""
    cluster = MemoryCluster(tmp_path)
    try:
        ids = ("n1", "n2", "n3", "n4")
        for node_id in ids:
            await cluster.start(node_id, bootstrap_expect=4)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        await cluster.nodes["n1"].set("k", 1)
        leader = cluster.leader()
        assert leader is not None
        down, gone = [node for node in cluster.nodes.values() if node is not leader][:2]
        for node in cluster.nodes.values():
            await eventually(lambda node=node: node.replica._member, what="all four members")
        await cluster.stop(down.node_id)
        await leader.remove(gone.node_id)
        await eventually(gone.replica.stopped.is_set, 10, f"{gone.node_id} stopping")
        assert isinstance(gone.replica.failure, NodeRemoved)
        await leader.set("k", 2)  # the two up of the three that stay: a quorum of three
        engine = leader.replica.engine
        assert engine is not None
        assert engine.configuration.voters == frozenset(ids) - {gone.node_id}
    finally:
        await cluster.close()


async def test_a_leaving_voter_that_joined_votes_again_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that joined (a fresh life, promoted) and is restarted while leaving, before the
    old pair's padded slots are chosen: the amnesia rule let a fresh life vote only in a seat
    of the latest configuration, so it came back a learner and the pair stalled for good
    (second review of the leave rule). Its last seat is this life's: it votes there again."""
    cluster = MemoryCluster(tmp_path)
    try:
        n1 = await cluster.start("n1", bootstrap_expect=1)
        await n1.wait_ready(5)
        n2 = await cluster.start("n2")
        await n1.set("k", 1)
        engine = n1.replica.engine
        assert engine is not None
        await eventually(lambda: engine.configuration.voters == {"n1", "n2"}, 15, "the pair")
        await eventually(lambda: n2.replica._member, 5, "n2 a member")
        saved = replica_module.save_role

        def cut_off_as_it_turns_leaving(
            data_dir: Path | None, role: str, leave_slot: int | None = None
        ) -> None:
            if role == "leaving" and data_dir == tmp_path / "n2":
                cluster.network.isolate("n2")  # before the padded slots have its vote
            saved(data_dir, role, leave_slot)  # type: ignore[arg-type]

        monkeypatch.setattr(replica_module, "save_role", cut_off_as_it_turns_leaving)
        await n1.remove("n2")
        await eventually(lambda: n2.replica._role == "leaving", 5, "n2 leaving")
        last = n2.replica._leave_after
        assert last is not None and engine.applied_slot < last  # n1 needs n2's vote still
        await cluster.stop("n2")
        cluster.network.heal()
        monkeypatch.setattr(replica_module, "save_role", saved)
        again = await cluster.start("n2")
        await n1.set("k", 2)
        await eventually(again.replica.stopped.is_set, 10, "n2 stopping")
        assert isinstance(again.replica.failure, NodeRemoved)
        await _left_alone(cluster, n1)
    finally:
        await cluster.close()


async def test_a_command_pinned_to_a_leaving_voter_reaches_it(tmp_path: Path) -> None:
    """A thin client heard only hellos asking for voter or learner: pinned to a leaving node
    (``members --node``), it waited for it in vain (second review of the leave rule)."""
    cluster = MemoryCluster(tmp_path)
    try:
        _, gone, _ = await _leaving(cluster)
        config = cluster.config("client-1", request_timeout_s=2.0)
        transport = cluster.network.attach("client-1")
        async with connect(config, transport=transport, node_id=gone.node_id) as client:
            roles = {member.node_id: member.role for member in await client.members()}
        assert roles[gone.node_id] == "leaving"
    finally:
        await cluster.close()


async def test_a_leaving_voter_restarted_past_its_seat_in_history_waits_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarted from a snapshot whose configuration history no longer reaches its old seat,
    a leaving voter could not tell its last slot again and stopped at once, though the voter
    left might not have that slot yet (the role file kept ``leaving`` but not the slot)."""
    cluster = MemoryCluster(tmp_path)
    try:
        left, gone, held = await _leaving(cluster)
        last = gone.replica._leave_after
        assert last is not None
        await cluster.stop(gone.node_id)
        # The history it recovers says nothing of its seat: only the role file has the slot.
        monkeypatch.setattr(replica_module, "last_voted_slot", lambda history, node_id: None)
        real = Replica._on_hello

        def on_hello(self: Replica, source: str, hello: protocol.Hello) -> None:
            if not (held[0] and self.node_id == gone.node_id and source == left.node_id):
                real(self, source, hello)

        monkeypatch.setattr(Replica, "_on_hello", on_hello)
        again = await cluster.start(gone.node_id)
        assert again.replica._leave_after == last
        engine = again.replica.engine
        assert engine is not None
        await eventually(lambda: engine.applied_slot >= last, 5, "it applying its last slot")
        assert again.replica._still_needed(engine)  # the voter left has not said it has it
        assert not again.replica.stopped.is_set()
        held[0] = False
        await _gone_for_good(cluster, left, again)
    finally:
        await cluster.close()
