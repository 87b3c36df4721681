"""Real nodes in one process over the memory transport: the API end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paxoskv import ChangeEvent, Compare, Set, connect
from paxoskv.errors import Compacted, CompareFailed, NoQuorum, ValueTooLarge
from tests.runtime.cluster import MemoryCluster, eventually


async def test_writes_on_any_node_are_read_on_every_node(memory_cluster: MemoryCluster) -> None:
    n1, n2, n3 = memory_cluster.nodes.values()
    revision = await n2.set("k", "v")
    assert await n1.get("k") == "v"
    assert (await n3.get_entry("k")).mod_revision == revision  # type: ignore[union-attr]
    assert await n3.delete("k") is True
    assert await n1.delete("k") is False
    assert await n2.get("k", "gone") == "gone"


async def test_compare_and_set_and_transactions(memory_cluster: MemoryCluster) -> None:
    n1, n2, _ = memory_cluster.nodes.values()
    first = await n1.cas("lock", None, "owner-1")
    with pytest.raises(CompareFailed):
        await n2.cas("lock", None, "owner-2")
    await n2.cas("lock", "owner-1", "owner-2")
    with pytest.raises(CompareFailed):
        await n1.set("lock", "late", if_revision=first)
    entry = await n1.get_entry("lock")
    assert entry is not None and entry.value == "owner-2"
    txn = await n1.txn([Compare("lock", "version", "==", 2)], [Set("lock", "three")])
    assert txn.succeeded and await n2.get("lock") == "three"


async def test_keys_under_string_and_tuple_prefixes(memory_cluster: MemoryCluster) -> None:
    node = memory_cluster.nodes["n1"]
    await node.set(("session", "a"), {"user": 1})
    await node.set(("session", "b"), {"user": 2})
    await node.set("config/x", 1)
    assert await node.keys(("session",)) == [("session", "a"), ("session", "b")]
    assert await node.keys("config/") == ["config/x"]
    assert len(await node.keys()) == 3


async def test_a_watch_sees_changes_made_on_another_node(memory_cluster: MemoryCluster) -> None:
    n1, n2, _ = memory_cluster.nodes.values()
    seen = []

    async def follow() -> None:
        async for event in n1.watch("user/"):
            seen.append((event.kind, event.key, event.value))
            if len(seen) == 2:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await n2.set("other", 1)
    await n2.set("user/1", "ann")
    await n2.delete("user/1")
    await asyncio.wait_for(task, 5)
    assert seen == [("set", "user/1", "ann"), ("delete", "user/1", None)]


async def test_a_watch_resumes_from_a_revision(memory_cluster: MemoryCluster) -> None:
    node = memory_cluster.nodes["n3"]
    first = await node.set("r", 1)
    await node.set("r", 2)
    events = []
    async for event in node.watch("r", from_revision=first):
        events.append(event.value)
        if len(events) == 2:
            break
    assert events == [1, 2]


async def test_a_lease_expires_on_every_replica_and_watchers_see_expire(
    memory_cluster: MemoryCluster,
) -> None:
    n1, n2, n3 = memory_cluster.nodes.values()
    expired = asyncio.get_running_loop().create_future()

    async def watch_expiry() -> None:
        async for event in n3.watch("session/"):
            if event.kind == "expire":
                expired.set_result(event.key)
                return

    task = asyncio.create_task(watch_expiry())
    lease = await n1.grant_lease(0.3)
    await n2.set("session/42", "alive", lease=lease)
    assert await n3.get("session/42") == "alive"
    assert await asyncio.wait_for(expired, 5) == "session/42"
    for node in (n1, n2, n3):
        assert await node.get("session/42", consistency="local") is None
    task.cancel()


async def test_keepalive_holds_a_lease_and_revoke_ends_it(memory_cluster: MemoryCluster) -> None:
    node = memory_cluster.nodes["n1"]
    lease = await node.grant_lease(0.4)
    await node.set("held", 1, lease=lease)
    for _ in range(4):
        await asyncio.sleep(0.2)
        await node.keepalive(lease)
    assert await node.get("held") == 1
    await node.revoke(lease)
    assert await node.get("held") is None


async def test_an_oversized_value_is_refused_before_it_is_sent(
    memory_cluster: MemoryCluster,
) -> None:
    node = memory_cluster.nodes["n1"]
    with pytest.raises(ValueTooLarge, match="limit"):
        await node.set("big", "x" * 100_000)
    with pytest.raises(ValueTooLarge, match="limit"):  # the general write path: same check
        await node.txn([], [Set("big", "x" * 100_000)])
    assert await node.set("small", "x" * 100) > 0


async def test_a_thin_client_uses_the_cluster(memory_cluster: MemoryCluster) -> None:
    transport = memory_cluster.network.attach("client-1")
    async with connect(memory_cluster.config("client-1"), transport=transport) as client:
        await client.set("from-client", [1, 2])
        assert await memory_cluster.nodes["n2"].get("from-client") == [1, 2]
        assert await client.get("from-client", consistency="local") == [1, 2]
        members = await client.members()
        assert {m.node_id for m in members} == {"n1", "n2", "n3"}
        assert sum(m.is_leader for m in members) == 1


async def test_writes_go_on_after_the_leader_stops(memory_cluster: MemoryCluster) -> None:
    await memory_cluster.nodes["n1"].set("before", 1)
    await eventually(lambda: memory_cluster.leader() is not None, what="a leader")
    leader = memory_cluster.leader()
    assert leader is not None
    await memory_cluster.stop(leader.node_id)
    survivor = next(iter(memory_cluster.nodes.values()))
    await survivor.set("after", 2)
    assert await survivor.get("before") == 1


async def test_a_learner_cannot_make_a_quorum_on_its_own() -> None:
    cluster = MemoryCluster()
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3, request_timeout_s=1.0)
        await cluster.start("l1", learner=True, join=True, request_timeout_s=1.0)
        learner = cluster.nodes["l1"]
        await learner.wait_ready(5)
        await cluster.nodes["n1"].set("k", "v")
        leader_engine = cluster.nodes["n1"].replica.engine
        assert leader_engine is not None
        await eventually(
            lambda: "l1" in leader_engine.configuration.learners, what="l1 added as a learner"
        )
        await eventually(
            lambda: learner.replica.engine.state.get("k") is not None,  # type: ignore[union-attr]
            what="the learner catching up",
        )
        await asyncio.sleep(0.3)  # several membership rounds: a learner must never be promoted
        assert "l1" not in leader_engine.configuration.voters
        for node_id in ("n2", "n3"):
            await cluster.stop(node_id)
        with pytest.raises(NoQuorum):
            await learner.set("k", "v2")
        assert await learner.get("k", consistency="local") == "v"
    finally:
        await cluster.close()


async def test_a_joining_node_catches_up_after_compaction_and_is_promoted() -> None:
    cluster = MemoryCluster()
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(
                node_id, bootstrap_expect=3, snapshot_every_commands=20, log_retention_slots=5
            )
        first = cluster.nodes["n1"]
        for i in range(150):
            await first.set(f"k{i % 10}", i)
        engine = first.replica.engine
        assert engine is not None and engine.compacted_slot > 0
        joiner = await cluster.start("n4", join=True)
        await joiner.wait_ready(5)
        await eventually(
            lambda: "n4" in first.replica.engine.configuration.voters,  # type: ignore[union-attr]
            10,
            "n4 promoted to voter",
        )
        assert await joiner.get("k9", consistency="local") == 149
        joined, leader = joiner.replica.engine, first.replica.engine
        assert joined is not None and leader is not None
        # Promotion and its padding keep the log moving: compare states at the same slot.
        await eventually(
            lambda: joined.applied_slot == leader.applied_slot, 5, "the joiner at the same slot"
        )
        assert joined.state.digest() == leader.state.digest()
    finally:
        await cluster.close()


async def test_a_restarted_node_recovers_from_its_data_dir(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3)
        for i in range(20):
            await cluster.nodes["n2"].set(f"k{i}", i)
        n3 = cluster.nodes["n3"]
        await eventually(
            lambda: n3.replica.engine.state.get("k19") is not None,  # type: ignore[union-attr]
            5,
            "n3 applying the last write before it stops",
        )
        await cluster.stop("n3")
        await cluster.nodes["n1"].set("while-away", True)
        restarted = await cluster.start("n3")
        assert restarted.replica.engine is not None  # it had a genesis and a journal
        assert restarted.replica.engine.state.get("k19") is not None
        await eventually(
            lambda: restarted.replica.engine.state.get("while-away") is not None,  # type: ignore[union-attr]
            5,
            "the restarted node catching up",
        )
    finally:
        await cluster.close()


async def test_watching_from_a_compacted_revision_raises() -> None:
    cluster = MemoryCluster()
    try:
        node = await cluster.start("n1", bootstrap_expect=1, history_limit_events=3)
        await node.wait_ready(5)
        first = await node.set("c", 0)
        for i in range(1, 6):
            await node.set("c", i)
        with pytest.raises(Compacted, match="compacted"):
            async for _ in node.watch(None, from_revision=first):
                break
        recent = [e.value async for e in _take(node.watch("c", from_revision=first + 4), 2)]
        assert recent == [4, 5]
    finally:
        await cluster.close()


async def test_a_node_drops_history_past_its_byte_bound_and_says_so() -> None:
    cluster = MemoryCluster()
    try:
        node = await cluster.start("n1", bootstrap_expect=1, history_limit_bytes=2500)
        await node.wait_ready(5)
        first = await node.set("c", "x" * 1000)
        for i in range(1, 4):
            await node.set("c", str(i) * 1000)  # two of these fit in 2,500 bytes
        for dropped in (first, first + 1):
            with pytest.raises(Compacted, match="compacted"):
                async for _ in node.watch(None, from_revision=dropped):
                    break
        recent = [e.value async for e in _take(node.watch("c", from_revision=first + 2), 2)]
        assert recent == ["2" * 1000, "3" * 1000]
    finally:
        await cluster.close()


async def _take(events: AsyncIterator[ChangeEvent], count: int) -> AsyncIterator[ChangeEvent]:
    async for event in events:
        yield event
        count -= 1
        if count == 0:
            return
