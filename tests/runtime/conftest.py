"""Fixtures for runtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.runtime.cluster import MemoryCluster


@pytest.fixture
async def memory_cluster() -> AsyncIterator[MemoryCluster]:
    cluster = MemoryCluster()
    for node_id in ("n1", "n2", "n3"):
        await cluster.start(node_id, bootstrap_expect=3)
    for node in cluster.nodes.values():
        await node.wait_ready(5)
    yield cluster
    await cluster.close()
