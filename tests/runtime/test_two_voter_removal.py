"""Removing one of two voters: the one left must go on alone.

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

from paxoskv.errors import NodeRemoved
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
