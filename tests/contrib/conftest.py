"""The async backends' cluster: a node and a thin client of one cluster, as two web servers
would reach it (the Flask tests make theirs with blocking handles)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import paxoskv
from paxoskv import KVApi, Node
from tests.contrib.web_cluster import WAIT_S, web_cluster


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Node, KVApi]]:
    node_config, client_config = web_cluster()
    async with Node(node_config) as node:
        await node.wait_ready(WAIT_S)
        async with paxoskv.connect(client_config) as client:
            yield node, client
