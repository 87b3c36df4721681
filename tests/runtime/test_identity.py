"""What a data dir remembers of its node: its cluster, its id, its role; and duplicate ids."""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from paxoskv import Config, Node
from paxoskv.errors import ConfigurationError, DuplicateNodeId, NodeRemoved, WrongCluster
from paxoskv.paxos.messages import Heartbeat
from paxoskv.runtime import protocol
from paxoskv.runtime.clock import now as clock_now
from paxoskv.runtime.identity import (
    GENESIS_FILE,
    LEGACY_FORMATION,
    ROLE_FILE,
    DuplicateIdWatch,
    Genesis,
    load_genesis,
    read_genesis,
    save_genesis,
)
from paxoskv.runtime.membership import PeerView, membership_change
from paxoskv.state import Configuration
from tests.runtime.cluster import MemoryCluster, PaxosHold, eventually, unique_cluster_name
from tests.runtime.test_udp_cluster import udp_config

# --- the cluster a data dir belongs to (defect 4) ------------------------------------------


def test_genesis_keeps_the_cluster_and_refuses_another(tmp_path: Path) -> None:
    save_genesis(tmp_path, ("a", "b"), "alpha", "f00d")
    assert read_genesis(tmp_path, "alpha") == Genesis(("a", "b"), "f00d", "alpha")
    assert load_genesis(tmp_path) == ("a", "b")  # what tools that know no cluster read
    with pytest.raises(WrongCluster, match="belongs to cluster 'alpha', not 'beta'"):
        read_genesis(tmp_path, "beta")


def test_an_older_data_dir_adopts_the_cluster_it_is_started_in(tmp_path: Path) -> None:
    (tmp_path / GENESIS_FILE).write_text(json.dumps({"voters": ["a"]}))
    assert read_genesis(tmp_path, "alpha") == Genesis(("a",), LEGACY_FORMATION, None)


async def test_a_node_refuses_a_data_dir_of_another_cluster(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        node = await cluster.start("e1", bootstrap_expect=1, cluster="uat2")
        await node.wait_ready(5)
        await node.set("k", "old cluster")
        await cluster.stop("e1")
        with pytest.raises(WrongCluster) as refused:
            await cluster.start("e1", join=True, cluster="zz1")
        cluster.network._detach("e1")
        message = str(refused.value)
        assert "belongs to cluster 'uat2', not 'zz1'" in message
        assert "fresh --data-dir" in message and "--cluster uat2" in message
        # Refused before anything was touched: it still starts in its own cluster.
        again = await cluster.start("e1", cluster="uat2")
        await again.wait_ready(5)
        assert await again.get("k") == "old cluster"
    finally:
        await cluster.close()


async def test_an_older_data_dir_records_its_cluster_on_first_start(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        await cluster.start("o1", bootstrap_expect=1, cluster="c1")
        await cluster.stop("o1")
        genesis = tmp_path / "o1" / GENESIS_FILE
        genesis.write_text(json.dumps({"voters": ["o1"]}))  # as releases before wrote it
        node = await cluster.start("o1", cluster="c1")
        await node.wait_ready(5)
        assert json.loads(genesis.read_text()) == {
            "voters": ["o1"],
            "cluster": "c1",
            "formation": "",
        }
    finally:
        await cluster.close()


def _policy(config: Configuration, peers: dict[str, PeerView], **given: Any) -> object:
    """The leader's membership policy at time 100 with the default timings, and ``given``."""
    settings: dict[str, Any] = {
        "now": 100.0,
        "suspect_after_s": 1.0,
        "down_after_s": 3.0,
        "auto_remove_down_after_s": None,
        "min_voters": 3,
        "watching_since": 0.0,
    }
    return membership_change(config, peers, **(settings | given))


def test_the_leader_never_adds_a_node_of_another_genesis() -> None:
    config = Configuration(voters=frozenset({"a", "b", "c"}))
    foreign = PeerView(99.5, "voter", 127, 127, "", ("x", "y", "z"))
    change = _policy(config, {"emb1": foreign}, leader_applied_slot=35, genesis=("a", "b", "c"))
    assert change is None


def test_the_leader_never_adds_a_node_of_another_formation() -> None:
    config = Configuration(voters=frozenset({"a", "b", "c"}))
    given: dict[str, Any] = {"leader_applied_slot": 35, "genesis": ("a", "b", "c")}
    stranger = PeerView(99.5, "voter", 127, 127, "", ("a", "b", "c"), "f0")
    assert _policy(config, {"d": stranger}, formation="f1", **given) is None
    member = PeerView(99.5, "voter", 127, 127, "", ("a", "b", "c"), "f1")
    assert _policy(config, {"d": member}, formation="f1", **given) is not None


async def test_a_node_of_another_genesis_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two clusters under one name: a member of one started in the other is never added, and
    its ballots do not reach the engines."""
    cluster = MemoryCluster(tmp_path)
    try:
        await _three(cluster, ("z1", "z2", "z3"))
        stranger = await cluster.start("s1", bootstrap_expect=1)  # its own genesis, {s1}
        await stranger.wait_ready(5)
        leader = cluster.nodes["z1"].replica
        await eventually(lambda: "s1" in leader._foreign, what="z1 hearing s1's hello")
        assert "s1 belongs to another cluster" in caplog.text
        await cluster.nodes["z2"].set("k", "v")
        assert leader.engine is not None and "s1" not in leader.engine.configuration.members()
        assert all(member.node_id != "s1" for member in leader.members())
    finally:
        await cluster.close()


async def test_a_stranger_restarted_on_a_fresh_data_dir_joins_and_votes(tmp_path: Path) -> None:
    """The refusal's advice works: once the id's hellos carry our genesis (or none), its Paxos
    counts again, so a quorum that needs its vote forms (it was dropped forever before)."""
    cluster = MemoryCluster(tmp_path)
    try:
        await _three(cluster, ("z1", "z2", "z3"))
        zs = [cluster.nodes[z].replica for z in ("z1", "z2", "z3")]
        stranger = await cluster.start("s1", bootstrap_expect=1)
        await stranger.wait_ready(5)
        await eventually(lambda: all("s1" in r._foreign for r in zs), what="all refuse s1")
        await cluster.stop("s1")
        shutil.rmtree(tmp_path / "s1")
        fresh = await cluster.start("s1", join=True)
        await fresh.wait_ready(5)
        await eventually(lambda: not any("s1" in r._foreign for r in zs), what="s1 accepted")
        engine = zs[0].engine
        assert engine is not None
        await eventually(lambda: "s1" in engine.configuration.voters, 10, "s1 promoted")
        await eventually(
            lambda: all(r.engine and "s1" in r.engine.configuration.voters for r in zs[:2]),
            what="z2 applying the promotion",
        )
        await cluster.stop("z3")  # z1, z2, s1: a quorum of 4 only if s1's vote counts
        assert await cluster.nodes["z1"].set("k", "after z3 stopped") > 0
    finally:
        await cluster.close()


# --- a duplicate node id (defect 5) --------------------------------------------------------


def test_a_duplicate_is_alive_only_once_heard_over_a_hello_interval() -> None:
    watch = DuplicateIdWatch(own_incarnation=1_000, alive_after_s=0.25)
    assert not watch.heard(1_000, 0.0)  # our own incarnation: an echo
    assert not watch.heard(2_000, 0.0) and not watch.heard(2_000, 9.0)  # a newer: it stops
    assert not watch.heard(500, 10.0)  # an older one's first frame: maybe our last life's
    assert not watch.heard(500, 10.1)  # a burst in flight is not a live process
    assert watch.heard(500, 10.25)


def test_stale_frames_of_a_dead_incarnation_are_not_a_live_duplicate() -> None:
    """Two frames of a previous life, however far apart, prove nothing; nor do frames with a
    silence of more than two hello intervals between them (that process may have died)."""
    watch = DuplicateIdWatch(own_incarnation=1_000, alive_after_s=0.25)
    assert not watch.heard(500, 10.0)
    assert not watch.heard(500, 10.3)  # two frames over more than an interval: still stale
    assert not watch.heard(500, 11.0)  # silent for 0.7 s: forgotten, a new count starts
    assert not watch.heard(500, 11.6)
    assert not watch.heard(500, 12.2)
    assert not watch.heard(500, 12.3)  # 2 frames since 12.2
    assert not watch.heard(500, 12.4)  # 3 frames, but over less than an interval
    assert watch.heard(500, 12.5)


async def test_the_newer_of_two_processes_with_one_id_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A copied data dir started beside its original, over loopback multicast: the copy
    stops with a clear error, the original warns and keeps serving."""
    base = udp_config(unique_cluster_name(), random.randint(20_000, 60_000))
    settings = {**base.__dict__, "node_id": "m3", "durability": "memory", "bootstrap_expect": 1}
    older = Node(Config(**settings))
    newer = Node(Config(**settings))
    try:
        await older.start()
        await older.wait_ready(5)
        await newer.start()
        await eventually(newer.replica.stopped.is_set, 10, "the newer process stopping")
        failure = newer.replica.failure
        assert isinstance(failure, DuplicateNodeId)
        assert "runs as node id 'm3'; give every node its own data dir" in str(failure)
        assert older.replica.failure is None
        await older.set("still", "serving")
        assert await older.get("still") == "serving"
        assert "sends as node id 'm3'" in caplog.text  # the older one's warning
    finally:
        await newer.close()
        await older.close()


# --- the learner role kept (defect 7) ------------------------------------------------------


async def test_a_learner_restarted_without_the_flag_stays_a_learner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "paxoskv.node")
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        await cluster.start("l1", learner=True, join=True)
        leader = cluster.nodes["n1"].replica
        assert leader.engine is not None
        engine = leader.engine
        await eventually(lambda: "l1" in engine.configuration.learners, what="l1 added")
        assert (tmp_path / "l1" / ROLE_FILE).read_text().strip() == "learner"
        await cluster.stop("l1")

        restarted = await cluster.start("l1")  # no --learner
        assert "l1 is a learner (kept in its data dir)" in caplog.text
        assert "paxos-kv members promote l1" in caplog.text
        revision = await cluster.nodes["n2"].set("after", 1)
        await eventually(
            lambda: (
                (view := leader.peers.get("l1")) is not None
                and view.revision >= revision
                and view.last_seen > leader._started_at
            ),
            what="the leader hearing the restarted l1 caught up",
        )
        assert leader.peers["l1"].wants == "learner"
        policy = leader.config
        assert (  # what the leader's policy makes of the restarted l1: nothing to do
            membership_change(
                engine.configuration,
                {"l1": leader.peers["l1"]},
                now=clock_now(),
                leader_applied_slot=engine.applied_slot,
                suspect_after_s=policy.suspect_after_s,
                down_after_s=policy.down_after_s,
                auto_remove_down_after_s=None,
                min_voters=policy.min_voters,
                watching_since=0.0,
            )
            is None
        )
        assert restarted.replica.engine is not None
        assert restarted.replica.engine.settings.learner
        assert "l1" in engine.configuration.learners  # not promoted by the leader

        await cluster.nodes["n1"].promote("l1")  # an operator's promotion sticks
        await eventually(lambda: restarted.replica._role == "voter", what="l1 told it votes")
        assert not restarted.replica.engine.settings.learner
        assert (tmp_path / "l1" / ROLE_FILE).read_text().strip() == "voter"
    finally:
        await cluster.close()


# --- members remove of a running node (defect 6) ---------------------------------------------


async def _three(cluster: MemoryCluster, ids: tuple[str, ...] = ("n1", "n2", "n3")) -> Node:
    """Three nodes (n1-n3 unless ``ids`` says) bootstrapped, and a key written: the first."""
    for node_id in ids:
        await cluster.start(node_id, bootstrap_expect=3)
    for node in cluster.nodes.values():
        await node.wait_ready(5)
    first = cluster.nodes[ids[0]]
    await first.set("k", 1)
    return first


async def _three_then_n3_removed(cluster: MemoryCluster) -> tuple[Node, Node]:
    """n1-n3 bootstrapped, n3 removed while it runs, and stopped by that: (n1, n3)."""
    n1, n3 = await _three(cluster), cluster.nodes["n3"]
    await eventually(lambda: n3.replica._member, what="n3 knowing it is a member")
    await n1.remove("n3")
    await eventually(n3.replica.stopped.is_set, 5, "n3 stopping")
    return n1, n3


async def test_a_removed_node_stops_and_is_not_added_back(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        n1, n3 = await _three_then_n3_removed(cluster)
        assert isinstance(n3.replica.failure, NodeRemoved)
        assert "was removed from cluster" in str(n3.replica.failure)
        assert (tmp_path / "n3" / ROLE_FILE).read_text().strip() == "removed"
        engine = n1.replica.engine
        assert engine is not None
        # Writes go on; the hellos n3 sent before it learned of its removal add nothing.
        await n1.set("k", 2)
        await eventually(lambda: "n3" in n1.replica._removed_at, what="n1 noting the removal")
        assert "n3" not in engine.configuration.members()
        await eventually(
            lambda: all(member.node_id != "n3" for member in n1.replica.members()),
            5,
            "n3 gone from the members list",
        )
        assert "n3" not in engine.configuration.members()
        await cluster.stop("n3")
        with pytest.raises(NodeRemoved):  # its data dir does not rejoin
            await cluster.start("n3")
    finally:
        await cluster.close()


def test_a_hello_sent_before_its_removal_does_not_add_a_node_back() -> None:
    config = Configuration(voters=frozenset({"n1", "n2"}))

    def change(applied_slot: int) -> object:
        view = PeerView(99.5, "voter", applied_slot, 0, "n1")
        return _policy(config, {"n3": view}, leader_applied_slot=50, removed_at={"n3": 40})

    assert change(39) is None  # sent before n3 applied its removal, in slot 40
    assert change(40) is not None  # a process that caught up to it: a new member


def test_paxos_kv_node_exits_non_zero_with_the_reason() -> None:
    from paxoskv.cli.errors import EXIT_FAILED, EXIT_USAGE, failure_for

    removed = failure_for(NodeRemoved("n3", "c1"))
    assert removed.exit_code == EXIT_FAILED
    assert removed.line().startswith("paxos-kv: error: node 'n3' was removed from cluster 'c1'")
    duplicate = failure_for(DuplicateNodeId("m3", ("127.0.0.1", 4000)))
    assert duplicate.exit_code == EXIT_USAGE
    assert "another process at ('127.0.0.1', 4000) runs as node id 'm3'" in duplicate.line()
    foreign = failure_for(WrongCluster("d", "uat2", "zz1"))
    assert foreign.exit_code == EXIT_USAGE


async def test_a_node_removed_while_stopped_stops_once_it_learns_it(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        n1 = await _three(cluster)
        await cluster.stop("n3")
        await n1.remove("n3")
        for i in range(5):
            await n1.set("k", i)
        back = await cluster.start("n3")  # its journal says it is a member
        await eventually(back.replica.stopped.is_set, 5, "n3 learning of its removal")
        assert isinstance(back.replica.failure, NodeRemoved)
        engine = n1.replica.engine
        assert engine is not None
        await n1.set("k", "after")
        assert "n3" not in engine.configuration.members()
    finally:
        await cluster.close()


async def test_a_removed_id_comes_back_on_a_fresh_data_dir(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        n1, _ = await _three_then_n3_removed(cluster)
        await cluster.stop("n3")
        for i in range(70):  # the old removal is no longer among the last slots it replays
            await n1.set("k", i)
        shutil.rmtree(tmp_path / "n3")
        fresh = await cluster.start("n3", join=True)
        engine = n1.replica.engine
        assert engine is not None
        await eventually(
            lambda: "n3" in engine.configuration.voters, 10, "n3 added and promoted again"
        )
        revision = await n1.set("k", 2)
        await eventually(
            lambda: fresh.replica.status()["revision"] >= revision,
            what="the new n3 following",
        )
        assert await fresh.get("k", consistency="local") == 2
        assert fresh.replica.failure is None
    finally:
        await cluster.close()


async def test_a_removed_id_comes_back_on_a_fresh_data_dir_at_once(tmp_path: Path) -> None:
    """Replaying the log, the fresh n3 met its old self's removal among the last slots and
    stopped as removed (so the advice to remove an id, then start it afresh, failed when
    followed at once): a fresh node counts itself a member only from the head it joined at."""
    cluster = MemoryCluster(tmp_path)
    try:
        await _three(cluster)
        await cluster.close()
        shutil.rmtree(tmp_path / "n3")  # its disk lost, say
        for node_id in ("n1", "n2"):
            await cluster.start(node_id)
        n1 = cluster.nodes["n1"]
        # (a removal is refused while n1 has not yet heard n2, which leaves no live quorum)
        await n1.remove("n3", force=True)
        fresh = await cluster.start("n3", join=True)
        replica = fresh.replica
        hold = PaxosHold(fresh, passed=(Heartbeat,))  # no catch-up yet
        await eventually(lambda: replica.engine and replica.engine.leader_id, what="a leader")
        replica._watch_own_membership()  # in the genesis configuration, near the head told
        assert not replica._member and replica.failure is None
        hold.release()
        engine = n1.replica.engine
        assert engine is not None
        await eventually(lambda: "n3" in engine.configuration.voters, 10, "n3 added again")
        await eventually(lambda: replica._member, 5, "the new n3 a member")
        assert replica.failure is None
    finally:
        await cluster.close()


async def test_an_older_data_dir_records_its_role_on_first_start(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        await cluster.start("o1", bootstrap_expect=1)
        await cluster.stop("o1")
        (tmp_path / "o1" / ROLE_FILE).unlink()  # as releases before kept it: nowhere
        node = await cluster.start("o1")
        await node.wait_ready(5)
        assert (tmp_path / "o1" / ROLE_FILE).read_text().strip() == "voter"
    finally:
        await cluster.close()


async def test_a_joined_node_removed_while_running_stops(memory_cluster: MemoryCluster) -> None:
    n1 = memory_cluster.nodes["n1"]
    for i in range(100):  # a log to catch up on: n4 is added while it is still behind
        await n1.set(f"k{i}", i)
    n4 = await memory_cluster.start("n4", join=True)
    engine = n1.replica.engine
    assert engine is not None
    await eventually(lambda: "n4" in engine.configuration.voters, 10, "n4 promoted")
    await eventually(lambda: n4.replica._member, what="n4 knowing it is a member")
    await n1.remove("n4")
    await eventually(n4.replica.stopped.is_set, 5, "n4 stopping")
    assert isinstance(n4.replica.failure, NodeRemoved)
    await n1.set("after", 1)
    assert "n4" not in engine.configuration.members()


async def test_learner_flag_on_a_voters_data_dir_is_refused(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        node = await cluster.start("v1", bootstrap_expect=1)
        await node.wait_ready(5)
        await cluster.stop("v1")
        with pytest.raises(ConfigurationError, match=r"v1 is a voter .* cannot make it a learner"):
            await cluster.start("v1", learner=True, join=True)
    finally:
        cluster.network._detach("v1")
        await cluster.close()


async def test_a_joiner_removed_while_catching_up_is_not_added_back() -> None:
    """A joiner removed while still far behind does not stop (it never counted itself a
    member) and goes on catching up: once past the removal's slot it was added straight back.
    Only a new life under its id (its applied slot back at 0) is added again."""
    cluster = MemoryCluster()
    try:
        z1 = await cluster.start("z1", bootstrap_expect=1)
        await z1.wait_ready(5)
        leader = z1.replica
        engine = leader.engine
        assert engine is not None and leader._genesis is not None
        genesis = leader._genesis

        def hear(applied_slot: int) -> bool:  # j1's ident and hello, which no transport carries
            leader._on_ident("j1", protocol.Ident(genesis, leader._formation))
            hello = protocol.Hello("learner", applied_slot, 0, "z1", genesis, False)
            leader._on_hello("j1", hello)
            return True

        await eventually(lambda: hear(0) and "j1" in engine.configuration.members(), what="add")
        hear(1)  # far behind, and heard when it is removed
        await z1.remove("j1")
        assert "j1" not in engine.configuration.members()
        removed_at = leader._removed_at["j1"]
        proposed = leader._policy_seq
        for slot in (removed_at + 5, removed_at + 9):  # the same process, caught up past it
            hear(slot)
            leader._apply_membership_policy()
        assert leader._policy_seq == proposed
        assert "j1" not in engine.configuration.members()
        await eventually(
            lambda: hear(0) and hear(removed_at + 9) and "j1" in engine.configuration.members(),
            what="a fresh life of j1 added",
        )
    finally:
        await cluster.close()


async def test_a_founder_removed_while_down_before_its_first_record_stops_when_restarted(
    tmp_path: Path,
) -> None:
    """With no journal it was not counted a member, so it did not stop on learning of its
    removal, and its role file (voter) got it added back and promoted (review, twenty-ninth
    session). A founder that crashed before its first record looks like this."""
    cluster = MemoryCluster(tmp_path)
    try:
        n1 = await _three(cluster)
        await cluster.stop("n3")
        for journal in (tmp_path / "n3").glob("journal-*"):
            journal.unlink()  # as if it died before its first record
        await n1.remove("n3")
        n3 = await cluster.start("n3")
        await eventually(n3.replica.stopped.is_set, 10, "n3 stopping")
        assert isinstance(n3.replica.failure, NodeRemoved)
        engine = n1.replica.engine
        assert engine is not None and "n3" not in engine.configuration.members()
    finally:
        await cluster.close()


async def test_a_second_process_joining_under_a_voters_id_is_told_it_is_a_duplicate() -> None:
    """Its life check found the id a voter before the duplicate watch had its proof, and it
    stopped as amnesiac, advising the removal of the healthy original (membership review,
    twenty-ninth session: 2 runs in 14)."""
    base = udp_config(unique_cluster_name(), random.randint(20_000, 60_000))
    slow_hellos = {"hello_interval_s": 0.5, "suspect_after_s": 1.0, "down_after_s": 1.5}
    # A hello interval is how long the duplicate watch needs its proof; the check, a read.
    settings = {**base.__dict__, **slow_hellos, "durability": "memory", "bootstrap_expect": 3}
    nodes = [Node(Config(**{**settings, "node_id": node_id})) for node_id in ("a", "b", "m4")]
    newer = Node(Config(**{**settings, "node_id": "m4", "bootstrap_expect": None, "join": True}))
    try:
        for node in nodes:
            await node.start()
        for node in nodes:
            await node.wait_ready(10)
        await newer.start()
        await eventually(newer.replica.stopped.is_set, 10, "the newer process stopping")
        assert isinstance(newer.replica.failure, DuplicateNodeId), newer.replica.failure
        assert all(node.replica.failure is None for node in nodes)
    finally:
        await newer.close()
        for node in nodes:
            await node.close()
