"""Bootstrapping: one genesis on every node, whatever the timing and the --bootstrap-expect."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from paxoskv.errors import ConfigurationError
from paxoskv.runtime import protocol
from paxoskv.runtime.membership import Bootstrap
from tests.runtime.cluster import MemoryCluster, eventually


def simulate(seed: int) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], set[str]], bool]:
    """Nodes announcing and bootstrapping under a seeded delivery order.

    Every node broadcasts its announcement now and then (nodes start at random moments, so a
    late one misses the early ones' first rounds); pending messages are delivered in random
    order, some of them dropped; a bootstrapped node answers announcements with its genesis
    and formation id, and a bootstrapping node that hears one joins it, as the runtime does.
    Returns the sets nodes bootstrapped with (not the ones they joined), the formation ids
    the nodes of each genesis ended with, and whether every node was given the same N.
    """
    rng = random.Random(seed)
    expect = rng.randint(1, 4)
    count = rng.randint(expect, 2 * expect - 1)  # two sets of N among them must overlap
    ids = [f"n{i}" for i in range(count)]
    expects = {node: expect if rng.random() > 0.15 else rng.randint(1, count + 1) for node in ids}
    nodes = {node: Bootstrap(node, expects[node], nonce=f"{seed}/{node}") for node in ids}
    started: set[str] = set()
    genesis: dict[str, tuple[tuple[str, ...], str]] = {}
    bootstrapped: list[tuple[str, ...]] = []
    pending: list[tuple[str, str, object]] = []  # (sender, receiver, what)
    for _ in range(400):
        choice = rng.random()
        if choice < 0.1 and len(started) < count:
            started.add(rng.choice([node for node in ids if node not in started]))
        elif choice < 0.35 and started:
            sender = rng.choice(sorted(started))
            if sender not in genesis:
                announced = nodes[sender].announcement()
                for receiver in ids:
                    if receiver != sender:
                        pending.append((sender, receiver, announced))
        elif pending:
            sender, receiver, what = pending.pop(rng.randrange(len(pending)))
            if receiver not in started or rng.random() < 0.1:
                continue  # not running yet, or lost
            if isinstance(what, tuple) and type(what[0]) is tuple:  # a member's genesis
                genesis.setdefault(receiver, what)  # type: ignore[arg-type]
                continue
            if receiver in genesis:
                pending.append((receiver, sender, genesis[receiver]))
                continue
            their_expect, met, nonce = what  # type: ignore[misc]
            nodes[receiver].hear(sender, their_expect, frozenset(met), nonce)
            formed = nodes[receiver].ready(0.0)
            if formed is not None:
                genesis[receiver] = (formed, nodes[receiver].formation())
                bootstrapped.append(formed)
    formations: dict[tuple[str, ...], set[str]] = {}
    for voters, formation in genesis.values():
        formations.setdefault(voters, set()).add(formation)
    return bootstrapped, formations, len(set(expects.values())) == 1


def test_every_delivery_order_bootstraps_one_genesis() -> None:
    formed_somewhere = 0
    for seed in range(3000):
        bootstrapped, formations, uniform = simulate(seed)
        assert all(len(ids) == 1 for ids in formations.values()), (seed, formations)
        for first in bootstrapped:  # sets that share a node are the same set (the proof)
            for second in bootstrapped:
                assert first == second or not set(first) & set(second), (seed, bootstrapped)
        if uniform:  # fewer than 2N nodes with N: any two sets overlap, so there is one
            assert len(set(bootstrapped)) <= 1, (seed, bootstrapped)
        formed_somewhere += bool(bootstrapped)
    assert formed_somewhere > 500  # the rule does form clusters, not only refuse


def test_overlapping_sets_are_equal_even_with_more_nodes_than_expected() -> None:
    nodes = {node: Bootstrap(node, 2) for node in ("a", "b", "c")}
    # a and b meet first and agree on {a, b}; c then meets b.
    nodes["a"].hear("b", 2, frozenset({"b"}))
    nodes["b"].hear("a", 2, frozenset({"a", "b"}))
    nodes["a"].hear("b", 2, frozenset({"a", "b"}))
    assert nodes["a"].ready(0.0) == ("a", "b")
    complaints = nodes["b"].hear("c", 2, frozenset({"c"}))
    assert "more than --bootstrap-expect 2" in complaints[0]
    assert nodes["b"].ready(0.0) is None  # b met three: it never forms {b, c}
    nodes["c"].hear("b", 2, frozenset({"a", "b", "c"}))
    assert nodes["c"].ready(0.0) is None


def test_bootstrap_waits_until_the_agreement_held_for_settle_s() -> None:
    node = Bootstrap("a", 2, settle_s=0.25)
    node.hear("b", 2, frozenset({"a", "b"}))
    assert node.ready(10.0) is None
    assert node.ready(10.2) is None
    assert node.ready(10.25) == ("a", "b")


def test_boot_announcements_round_trip_and_refuse_garbage() -> None:
    name, fields = protocol.decode_runtime(protocol.encode_boot(3, ["a", "b"], "n0"))
    assert name == "boot"
    expected = protocol.BootAnnouncement(3, frozenset({"a", "b"}), "n0")
    assert protocol.decode_boot(fields) == expected
    earlier = protocol.BootAnnouncement(3, frozenset({"a"}), "")  # an earlier release's: no nonce
    assert protocol.decode_boot([3, ["a"]]) == earlier
    for bad in ([], [3], ["3", ["a"]], [0, ["a"]], [3, []], [3, [1]], [3, "ab"], [3, ["a"], 7]):
        with pytest.raises(protocol.MalformedRuntimeMessage):
            protocol.decode_boot(bad)


def genesis_of(cluster: MemoryCluster) -> dict[str, tuple[str, ...] | None]:
    return {node_id: node.replica._genesis for node_id, node in cluster.nodes.items()}


async def test_mismatched_expect_forms_no_cluster_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tester's: b1 expects 2, b2 and b3 expect 3. Before, b1 formed {b1, b3} and b2
    {b1, b2, b3}; now nobody forms a cluster until b1 is restarted with 3."""
    caplog.set_level(logging.ERROR, "paxoskv.node")
    cluster = MemoryCluster()
    try:
        await cluster.start("b1", bootstrap_expect=2)
        await cluster.start("b2", bootstrap_expect=3)
        await cluster.start("b3", bootstrap_expect=3)
        await eventually(
            lambda: all(
                len(node.replica._bootstrap.heard) == 2  # type: ignore[union-attr]
                for node in cluster.nodes.values()
            ),
            what="every node hearing both others",
        )
        await eventually(
            lambda: (
                "b1 has met 3 nodes" in caplog.text
                and "b1 was started with --bootstrap-expect 2 and b2 with 3" in caplog.text
            ),
            what="the complaints",
        )
        assert genesis_of(cluster) == {"b1": None, "b2": None, "b3": None}
        assert "start every node of a new cluster with the same" in caplog.text.lower()

        await cluster.stop("b1")
        await cluster.start("b1", bootstrap_expect=3)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        assert set(genesis_of(cluster).values()) == {("b1", "b2", "b3")}
        for node in cluster.nodes.values():
            assert node.replica.engine is not None
            assert node.replica.engine.configuration.voters == {"b1", "b2", "b3"}
    finally:
        await cluster.close()


async def test_four_nodes_expecting_two_agree_or_refuse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tester's: d1-d4 all with --bootstrap-expect 2 used to end with three voter sets."""
    caplog.set_level(logging.ERROR, "paxoskv.node")
    cluster = MemoryCluster()
    try:
        for node_id in ("d1", "d2", "d3", "d4"):
            await cluster.start(node_id, bootstrap_expect=2)

        def settled() -> bool:
            return all(
                node.replica._genesis is not None or len(node.replica._bootstrap.met) == 4  # type: ignore[union-attr]
                for node in cluster.nodes.values()
            )

        await eventually(settled, what="every node formed, joined or met all four")
        formed = {g for g in genesis_of(cluster).values() if g is not None}
        assert len(formed) <= 1
        if len(formed) == 0:
            assert "more than --bootstrap-expect 2" in caplog.text
    finally:
        await cluster.close()


async def test_late_nodes_join_the_cluster_formed_rather_than_form_their_own() -> None:
    cluster = MemoryCluster()
    try:
        for node_id in ("d1", "d2"):
            await cluster.start(node_id, bootstrap_expect=2)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        for node_id in ("d3", "d4"):  # also expecting 2, and meeting each other at once
            await cluster.start(node_id, bootstrap_expect=2)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        assert set(genesis_of(cluster).values()) == {("d1", "d2")}
        # What recovery read waits for the cluster, and is let go of once the engine has it
        # (bootstrapped: d1, d2; joined: d3, d4).
        assert all(node.replica._pending_durable is None for node in cluster.nodes.values())
        leader = cluster.nodes["d1"].replica.engine
        assert leader is not None
        await eventually(
            lambda: leader.configuration.voters == {"d1", "d2", "d3", "d4"},
            10,
            "the late nodes added and promoted",
        )
        await cluster.nodes["d4"].set("k", "v")
        assert await cluster.nodes["d3"].get("k") == "v"
    finally:
        await cluster.close()


def test_a_restart_before_bootstrapping_keeps_the_met_set() -> None:
    """The reviewer's: A announced {A, B, C} (B bootstrapped with it), crashed, and restarted
    meeting D and E; with a met-set in memory only, A and D, E formed a second genesis."""
    kept: dict[str, frozenset[str]] = {}

    def node(name: str) -> Bootstrap:
        met = set(kept.get(name, ()))
        return Bootstrap(name, 3, met=met, keep=lambda _, met: kept.__setitem__(name, met))

    def tell(receiver: Bootstrap, sender: Bootstrap) -> None:
        expect, met, nonce = sender.announcement()
        receiver.hear(sender.node_id, expect, frozenset(met), nonce)

    a, b, c = node("A"), node("B"), node("C")
    for _ in range(2):
        for x in (a, b, c):
            for y in (a, b, c):
                if x is not y:
                    tell(x, y)
    assert b.ready(0.0) == ("A", "B", "C")
    restarted, d, e = node("A"), node("D"), node("E")
    assert restarted.met == {"A", "B", "C"}
    for _ in range(2):
        for x in (restarted, d, e):
            for y in (restarted, d, e):
                if x is not y:
                    tell(x, y)
    assert restarted.ready(0.0) is None and d.ready(0.0) is None and e.ready(0.0) is None


async def test_the_met_set_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        one = await cluster.start("k1", bootstrap_expect=3)
        await cluster.start("k2", bootstrap_expect=3)
        assert one.replica._bootstrap is not None
        await eventually(lambda: "k2" in one.replica._bootstrap.met, what="k1 meeting k2")  # type: ignore[union-attr]
        await cluster.stop("k1")
        await cluster.stop("k2")
        again = await cluster.start("k1", bootstrap_expect=3)
        assert again.replica._bootstrap is not None
        assert again.replica._bootstrap.met == {"k1", "k2"}
        assert again.replica._bootstrap.nonce == one.replica._bootstrap.nonce != ""
        await cluster.stop("k1")
        with pytest.raises(ConfigurationError, match="--bootstrap-expect 3, or on a fresh"):
            await cluster.start("k1", bootstrap_expect=2)
    finally:
        await cluster.close()
