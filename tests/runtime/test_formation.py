"""A cluster's formation id: data dirs of two clusters with one name and one set of ids.

Before, a data dir left from an earlier cluster named alike, with the same node ids, was taken
as a member with its old log, and replicas held different values for the same keys.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from paxoskv import Node
from paxoskv.cli.errors import EXIT_USAGE, failure_for
from paxoskv.errors import WrongFormation
from paxoskv.paxos.messages import Heartbeat
from paxoskv.runtime import protocol
from paxoskv.runtime.identity import (
    BOOTSTRAP_FILE,
    GENESIS_FILE,
    LEGACY_FORMATION,
    LIFE_FILE,
    formation_id,
    read_genesis,
)
from paxoskv.runtime.replica import FOREIGN_LOGGED, Replica
from tests.runtime.cluster import MemoryCluster, eventually

IDS = ("n1", "n2", "n3")


async def form(cluster: MemoryCluster, base: Path, values: dict[str, str]) -> str:
    """Bootstrap n1..n3 on data dirs under ``base``, write ``values``, stop them; their
    formation id."""
    for node_id in IDS:
        await cluster.start(node_id, bootstrap_expect=3, **on_disk(base, node_id))
    for node in cluster.nodes.values():
        await node.wait_ready(5)
    for key, value in values.items():
        await cluster.nodes["n1"].set(key, value)
    formations = {read_genesis(base / node_id, None) for node_id in IDS}
    await cluster.close()
    assert len(formations) == 1  # one id on every member
    (kept,) = formations
    assert kept is not None and kept.formation != LEGACY_FORMATION
    return kept.formation


def on_disk(base: Path, node_id: str) -> dict[str, Any]:
    return {"data_dir": base / node_id, "durability": "os"}


async def alone(cluster: MemoryCluster, node_id: str) -> Replica:
    """A cluster of one, formed: its replica."""
    node = await cluster.start(node_id, bootstrap_expect=1)
    await node.wait_ready(5)
    return node.replica


def applied(node: Node) -> int:
    slot: int = node.replica.status()["applied_slot"]
    return slot


async def caught_up(node: Node, slot: int) -> None:
    """Until ``node`` has applied ``slot``."""
    await eventually(lambda: applied(node) >= slot, 5, f"{node.node_id} applying slot {slot}")


async def values_everywhere(nodes: list[Node], key: str) -> set[object]:
    """``key``'s value in each node's own state, once each has applied what any has."""
    slot = max(applied(node) for node in nodes)
    for node in nodes:
        await caught_up(node, slot)
    return {await node.get(key, consistency="local") for node in nodes}


async def test_a_data_dir_of_an_earlier_cluster_of_the_same_name_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The defect: A and B, both n1..n3 under the default name; n1 started from A among n2,
    n3 from B. Both sides refuse it, it stops saying what to do, nothing diverges; and what
    it says works (wiped and removed, it joins B)."""
    first = await form(MemoryCluster(), tmp_path / "A", {"k": "from A", "only-a": "x"})
    second = await form(MemoryCluster(), tmp_path / "B", {"k": "from B"})
    assert first != second
    cluster = MemoryCluster()
    try:
        stranger = await cluster.start("n1", **on_disk(tmp_path / "A", "n1"))
        for node_id in ("n2", "n3"):
            await cluster.start(node_id, **on_disk(tmp_path / "B", node_id))
        members = [cluster.nodes["n2"], cluster.nodes["n3"]]
        await eventually(stranger.replica.stopped.is_set, 5, "the stranger stopping")
        failure = stranger.replica.failure
        assert isinstance(failure, WrongFormation)
        assert f"wipe (or move aside) {tmp_path / 'A' / 'n1'}, remove it" in str(failure)
        assert "(paxos-kv members remove n1) and start it again" in str(failure)
        assert "give one of them its own --cluster name" in str(failure)
        assert failure_for(failure).exit_code == EXIT_USAGE
        assert "n1" in members[0].replica._foreign  # (n3 may have met n1 only as it stopped)
        assert all("n1" not in member.replica._verified for member in members)
        assert (
            "n2: node n1 belongs to another cluster named 'paxos-kv' (formed apart" in caplog.text
        )
        cluster.network._detach("n1")
        del cluster.nodes["n1"]
        await members[0].set("k2", "after")
        assert await values_everywhere(members, "k") == {"from B"}
        assert await values_everywhere(members, "only-a") == {None}
        # As the message says: wiped and removed, n1 joins as a new member, of B's formation.
        shutil.rmtree(tmp_path / "A" / "n1")
        await members[0].remove("n1")
        rejoined = await cluster.start("n1", join=True, **on_disk(tmp_path / "A", "n1"))
        await rejoined.wait_ready(5)
        kept = read_genesis(tmp_path / "A" / "n1", None)
        assert kept is not None and kept.formation == second
        await caught_up(rejoined, applied(members[0]))
        assert await rejoined.get("k", consistency="local") == "from B"
        assert await rejoined.get("only-a", consistency="local", default=None) is None
        engine = members[0].replica.engine
        assert engine is not None
        await eventually(lambda: "n1" in engine.configuration.voters, 10, "n1 a voter again")
    finally:
        await cluster.close()


async def test_a_stranger_among_fewer_than_a_quorum_is_refused_and_keeps_running(
    tmp_path: Path,
) -> None:
    """With one member of B up, which side is the stranger is not clear: both refuse each
    other, neither stops, and the stranger's Paxos never reaches the member's engine."""
    await form(MemoryCluster(), tmp_path / "A", {"k": "from A"})
    await form(MemoryCluster(), tmp_path / "B", {"k": "from B"})
    cluster = MemoryCluster()
    try:
        stranger = await cluster.start("n1", **on_disk(tmp_path / "A", "n1"))
        member = await cluster.start("n2", **on_disk(tmp_path / "B", "n2"))
        await eventually(lambda: "n1" in member.replica._foreign, what="n2 refusing n1")
        await eventually(lambda: "n2" in stranger.replica._foreign, what="n1 refusing n2")
        # n1 campaigns (an election timeout with no leader): its prepares are dropped.
        await eventually(lambda: member.replica.dropped_foreign > 0, what="n1's Paxos dropped")
        await eventually(lambda: stranger.replica.dropped_foreign > 0, what="n2's Paxos dropped")
        assert stranger.replica.failure is None and member.replica.failure is None
        assert member.replica.engine is not None and member.replica.engine.leader_id != "n1"
    finally:
        await cluster.close()


async def test_a_whole_cluster_and_one_node_restart_with_their_formation(tmp_path: Path) -> None:
    formation = await form(MemoryCluster(), tmp_path, {"k": "v"})
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in IDS:  # every node again, from its data dir
            await cluster.start(node_id)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        await cluster.nodes["n2"].set("k", "v2")
        await cluster.stop("n3")
        await cluster.nodes["n1"].set("k", "v3")
        n3 = await cluster.start("n3")
        await caught_up(n3, applied(cluster.nodes["n1"]))
        assert await n3.get("k", consistency="local") == "v3"
        for node_id in IDS:
            kept = read_genesis(tmp_path / node_id, None)
            assert kept is not None and kept.formation == formation
            assert cluster.nodes[node_id].replica.status()["formation"] == formation
    finally:
        await cluster.close()


async def test_a_joiner_and_a_learner_adopt_the_formation(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        one = await cluster.start("j1", bootstrap_expect=1)
        await one.wait_ready(5)
        voter = await cluster.start("j2", join=True)
        learner = await cluster.start("j3", join=True, learner=True)
        await voter.wait_ready(5)
        await learner.wait_ready(5)
        formation = one.replica._formation
        assert formation and formation == formation_id({"j1": one.replica._bootstrap.nonce})  # type: ignore[union-attr]
        for node_id in ("j2", "j3"):
            kept = read_genesis(tmp_path / node_id, None)
            assert kept is not None and kept.formation == formation and kept.voters == ("j1",)
        engine = one.replica.engine
        assert engine is not None
        await eventually(lambda: "j2" in engine.configuration.voters, 5, "j2 promoted")
        await eventually(lambda: "j3" in engine.configuration.learners, 5, "j3 added")
        await one.set("k", "v")
        await caught_up(learner, applied(one))
        assert await learner.get("k", consistency="local") == "v"
    finally:
        await cluster.close()


def forget_formations(base: Path) -> None:
    """Write each genesis as the release before formation ids did (which kept no fresh life
    record either)."""
    for node_id in IDS:
        path = base / node_id / GENESIS_FILE
        kept = json.loads(path.read_text())
        path.write_text(json.dumps({"voters": kept["voters"], "cluster": kept["cluster"]}))
        (base / node_id / LIFE_FILE).unlink()


async def test_a_cluster_formed_by_an_earlier_release_runs_on_as_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Upgrade: data dirs whose genesis has no formation id keep their cluster (a warning
    says what it lacks), and a node of that release, which sends hellos but no ident, is a
    member as before."""
    await form(MemoryCluster(), tmp_path, {"k": "v"})
    forget_formations(tmp_path)
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in ("n1", "n2"):
            await cluster.start(node_id)
        n1, n2 = cluster.nodes["n1"], cluster.nodes["n2"]
        await n1.wait_ready(5)
        await n1.set("k", "upgraded")
        assert await values_everywhere([n1, n2], "k") == {"upgraded"}
        assert "was formed by an earlier release and has no formation id" in caplog.text
        kept = read_genesis(tmp_path / "n1", None)
        assert kept is not None and kept.formation == LEGACY_FORMATION
        # n3 as the earlier release runs it: hellos, never an ident.
        hello = protocol.Hello("voter", 0, 0, "", IDS, False)
        n1.replica._on_hello("n3", hello)
        n1.replica._on_hello("n3", hello)
        assert "n3" not in n1.replica._verified  # a new node's, its idents lost, maybe

        def hello_again() -> bool:
            n1.replica._on_hello("n3", hello)
            return "n3" in n1.replica._verified

        await eventually(hello_again, 5, "no ident for down_after_s")
        assert "n3" in n1.replica.peers
    finally:
        await cluster.close()


@pytest.mark.parametrize("ident_comes", [False, True], ids=["earlier-release", "idents-lost"])
async def test_a_fresh_node_joins_a_cluster_of_the_earlier_release(
    tmp_path: Path, ident_comes: bool
) -> None:
    """A member of the earlier release sends hellos, never an ident: a fresh node joins its
    cluster once ``down_after_s`` passed with none. Two hellos of a member of this release
    whose idents were lost (or overtaken) are no earlier release: joined so, the fresh node
    kept a genesis with no formation for good, and was refused by its cluster."""
    cluster = MemoryCluster(tmp_path)
    try:
        fresh = await cluster.start("n4", join=True)
        hello = protocol.Hello("voter", 5, 5, "n1", IDS, False)
        fresh.replica._on_hello("n1", hello)
        fresh.replica._on_hello("n1", hello)
        assert fresh.replica.engine is None  # its idents may have been lost: wait for more
        formation = "f0f0f0f0f0f0f0f0" if ident_comes else LEGACY_FORMATION
        if ident_comes:
            fresh.replica._on_ident("n1", protocol.Ident(IDS, formation))
        else:

            def hello_again() -> bool:
                fresh.replica._on_hello("n1", hello)
                return fresh.replica.engine is not None

            await eventually(hello_again, 5, "no ident for down_after_s")
        assert fresh.replica.engine is not None
        kept = read_genesis(tmp_path / "n4", None)
        assert kept is not None and kept.voters == IDS and kept.formation == formation
    finally:
        await cluster.close()


async def test_a_data_dir_of_the_earlier_release_is_refused_by_a_cluster_formed_since(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No cluster formed by the earlier release is one formed since, so its data dirs are
    strangers there, however alike the name and ids."""
    await form(MemoryCluster(), tmp_path / "A", {"k": "from A"})
    forget_formations(tmp_path / "A")
    await form(MemoryCluster(), tmp_path / "B", {"k": "from B"})
    cluster = MemoryCluster()
    try:
        for node_id in ("n2", "n3"):
            await cluster.start(node_id, **on_disk(tmp_path / "B", node_id))
        stranger = await cluster.start("n1", **on_disk(tmp_path / "A", "n1"))
        await eventually(stranger.replica.stopped.is_set, 5, "the stranger stopping")
        assert isinstance(stranger.replica.failure, WrongFormation)
        assert "(a formation of an earlier release)" in str(stranger.replica.failure)
        cluster.network._detach("n1")
        del cluster.nodes["n1"]
        # And a node of the earlier release itself (hellos, no ident) is refused too.
        member = cluster.nodes["n2"]
        hello = protocol.Hello("voter", 0, 0, "", IDS, False)

        def hello_again() -> bool:
            member.replica._on_hello("n9", hello)
            return "n9" in member.replica._foreign

        await eventually(hello_again, 5, "no ident for down_after_s")
        assert "n9" not in member.replica.peers
        assert "n9 belongs to another cluster" in caplog.text and "earlier release" in caplog.text
        await member.set("k", "still B")
        assert await values_everywhere(list(cluster.nodes.values()), "k") == {"still B"}
    finally:
        await cluster.close()


async def test_paxos_before_the_senders_ident_is_held_until_it_shows_our_formation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A snapshot or catch-up that arrives before the sender's ident is not taken before it:
    held, then dropped (and counted) for another formation, taken for ours."""
    cluster = MemoryCluster()
    try:
        replica = await alone(cluster, "p1")
        engine = replica.engine
        assert engine is not None
        genesis, formation = replica._genesis or (), replica._formation
        caplog.set_level(logging.DEBUG)
        garbage = protocol.PAXOS + b"not even a message"
        heartbeat = protocol.paxos_payload(Heartbeat(engine.ballot, 0, 1))
        for sender in ("x1", "x2"):
            replica._dispatch(sender, garbage)  # not decoded yet
            replica._dispatch(sender, heartbeat)
        assert "malformed" not in caplog.text and replica.dropped_foreign == 0
        replica._on_ident("x1", protocol.Ident(genesis, "0123456789abcdef"))
        assert replica.dropped_foreign == 2 and "x1" not in replica._held
        replica._dispatch("x1", heartbeat)  # refused: dropped at once
        assert replica.status()["dropped_foreign"] == 3
        replica._dispatch("x3", heartbeat)  # held, then x3 (re)starts: not its own
        replica._on_ident("x3", protocol.Ident(genesis, formation, asks=True))
        assert replica.dropped_foreign == 4 and "x3" in replica._verified
        replica._on_ident("x2", protocol.Ident(genesis, formation))
        await eventually(lambda: "dropped a malformed message from x2" in caplog.text)
        assert replica._held == {} and replica._held_bytes == 0
        assert "from x1" not in caplog.text
    finally:
        await cluster.close()


async def test_an_ident_verifies_and_silence_forgets(caplog: pytest.LogCaptureFixture) -> None:
    cluster = MemoryCluster()
    try:
        replica = await alone(cluster, "q1")
        genesis, formation = replica._genesis or (), replica._formation
        answers: list[bytes] = []
        queue = replica._queue
        replica._queue = lambda to, payload: answers.append(payload) or queue(to, payload)  # type: ignore[method-assign,func-returns-value]
        replica._on_ident("q2", protocol.Ident(genesis, formation))
        assert "q2" in replica._verified
        assert len(answers) == 2  # a newcomer hears our ident and hello at once
        replica._on_ident("q2", protocol.Ident(genesis, formation))
        assert len(answers) == 2  # no news: it hears them with our next hello
        replica._on_ident("q2", protocol.Ident(genesis, formation, asks=True))  # q2 restarted
        assert len(answers) == 4
        replica._on_ident("q2", protocol.Ident((), ""))  # restarted on a fresh data dir
        assert "q2" not in replica._verified and "q2" not in replica._foreign
        replica._on_ident("q2", protocol.Ident(genesis, "0123456789abcdef"))
        assert "q2" in replica._foreign and "q2" not in replica._verified
        replica._on_ident("q2", protocol.Ident(genesis, formation))  # that stranger stopped
        assert "q2" in replica._verified and "q2" not in replica._foreign
        hello = protocol.Hello("voter", 0, 0, "", genesis, False)
        for _ in range(3):  # its idents lost, its hellos not: still one of ours
            replica._on_hello("q2", hello)
        assert "q2" in replica._verified and "q2" not in replica._foreign
        heard = replica._idents["q2"][0]
        replica._idents["q2"] = (heard, 0.0)  # silent since long ago
        replica._forget_silent_idents()
        assert "q2" not in replica._verified
    finally:
        await cluster.close()


def test_idents_round_trip_refuse_garbage_and_hellos_take_later_fields() -> None:
    ident = protocol.Ident(("a", "b"), "f00d", asks=True)
    name, fields = protocol.decode_runtime(protocol.encode_ident(ident))
    assert name == "ident" and protocol.decode_ident(fields) == ident
    assert protocol.decode_ident([[], "", False, "a later field"]) == protocol.Ident((), "")
    bad_ones = ([], [["a"], "f"], ["a", "f", False], [["a"], 7, False], [[1], "f", False])
    for bad in (*bad_ones, [[""], "f", False], [["a"], "f", 1]):
        with pytest.raises(protocol.MalformedRuntimeMessage):
            protocol.decode_ident(bad)
    hello = protocol.Hello("voter", 1, 2, "a", ("a",), False)
    _, fields = protocol.decode_runtime(protocol.encode_hello(hello))
    assert protocol.decode_hello([*fields, "a later field"]) == hello


def test_the_formation_id_is_one_hash_of_every_member_and_its_nonce() -> None:
    assert formation_id({"a": "1", "b": "2"}) == formation_id({"b": "2", "a": "1"})
    assert formation_id({"a": "1", "b": "2"}) != formation_id({"a": "1", "b": "3"})
    assert len(formation_id({"a": "1"})) == 16


async def test_a_bootstrap_begun_by_the_earlier_release_keeps_a_nonce_before_announcing(
    tmp_path: Path,
) -> None:
    """Its met-set goes out at once, so the nonce it goes out with is kept first."""
    (tmp_path / "b1").mkdir()
    (tmp_path / "b1" / BOOTSTRAP_FILE).write_text(json.dumps({"expect": 3, "met": ["b1", "b2"]}))
    cluster = MemoryCluster(tmp_path)
    try:
        node = await cluster.start("b1", bootstrap_expect=3)
        kept = json.loads((tmp_path / "b1" / BOOTSTRAP_FILE).read_text())
        assert node.replica._bootstrap is not None
        nonce = node.replica._bootstrap.nonce
        assert kept == {"expect": 3, "met": ["b1", "b2"], "nonce": nonce, "nonces": {}}
        assert kept["nonce"]
    finally:
        await cluster.close()


async def test_made_up_senders_leave_no_trace_behind(tmp_path: Path) -> None:
    """Hellos and idents under ids nobody runs (without a secret, anyone can send them) are
    not kept for good: the per-sender tables stay bounded."""
    cluster = MemoryCluster(tmp_path)
    try:
        replica = await alone(cluster, "n1")
        hello = protocol.Hello("voter", 0, 0, "", ("n1",), False)
        for i in range(FOREIGN_LOGGED + 10):
            replica._on_hello(f"x{i}", hello)
            replica._on_ident(f"y{i}", protocol.Ident(("z",), f"{i:016x}"))
        assert len(replica._foreign_logged) <= FOREIGN_LOGGED

        def forgotten() -> bool:
            replica._forget_silent_idents()
            return not replica._identless_hellos

        await eventually(forgotten, 5, "the made-up senders forgotten")
    finally:
        await cluster.close()
