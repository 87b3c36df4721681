"""What a membership change says when no quorum answers it.

It may still be made once a quorum is back, so the writes' advice ("read the key back")
misled: a remove that failed so took effect minutes later (membership review, twenty-ninth
session).
"""

from __future__ import annotations

import asyncio

import pytest

from paxoskv.errors import NoQuorum, QuorumAtRisk
from tests.runtime.cluster import MemoryCluster


async def test_a_change_no_quorum_answered_says_to_check_the_members() -> None:
    cluster = MemoryCluster()
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3, request_timeout_s=0.5)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        n1 = cluster.nodes["n1"]
        await cluster.stop("n2")
        await cluster.stop("n3")
        with pytest.raises(NoQuorum, match=r"change \(remove n3\).*check `paxos-kv members`"):
            await n1.remove("n3")
        with pytest.raises(NoQuorum, match=r"change \(promote n2\).*may still be made"):
            await n1.promote("n2")
    finally:
        await cluster.close()


async def test_a_removal_that_leaves_no_live_quorum_is_refused_unless_forced(
    memory_cluster: MemoryCluster,
) -> None:
    """etcd's strict reconfiguration check: with n3 down, removing n2 leaves n1 and n3, one
    of them up. It was accepted, and the cluster took no writes, nor the removal's undoing,
    until n3 came back (membership review, twenty-ninth session)."""
    n1 = memory_cluster.nodes["n1"]
    await memory_cluster.stop("n3")

    async def n3_down() -> bool:
        return any(m.node_id == "n3" and m.state == "down" for m in await n1.members())

    async with asyncio.timeout(10):
        while not await n3_down():
            await asyncio.sleep(0.05)
    with pytest.raises(QuorumAtRisk, match=r"removing n2 would leave 2 voters of which only 1"):
        await n1.remove("n2")
    await n1.remove("n3")  # the down one: n1 and n2 remain, both up
    await n1.set("still", "writable")
    assert {m.node_id for m in await n1.members() if m.role == "voter"} == {"n1", "n2"}
