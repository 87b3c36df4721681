"""A cluster for the session backends' tests: one node and a thin client on loopback, as two
web servers would reach one cluster (a name and a multicast port of their own)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from paxoskv import Config
from tests.runtime.cluster import FAST, unique_cluster_name

T = TypeVar("T")
WAIT_S = 20.0  # the bound on any wait for the cluster (an expiry, a first leader)


def web_cluster() -> tuple[Config, Config]:
    """A node's config (a cluster of one) and a thin client's for the same cluster."""
    name = unique_cluster_name()
    group = f"239.255.74.78:{random.randint(20_000, 60_000)}"
    shared: dict[str, Any] = {**FAST, "cluster": name, "group": group, "interface": "127.0.0.1"}
    node = Config(node_id="web-a", durability="memory", bootstrap_expect=1, **shared)
    client = Config(**shared)
    return node, client


def lease_count(node: Any) -> int:
    """How many leases a Node's own copy holds (a session left behind would show here)."""
    return len(node.replica.engine.state._leases)


async def across(
    request: Awaitable[T],
    read: asyncio.Event,
    gate: asyncio.Event,
    meanwhile: Callable[[], Awaitable[object]],
) -> T:
    """A request in flight across ``meanwhile``: started, held once its handler has read the
    session (it sets ``read``, then waits for ``gate``), ``meanwhile`` done, then let go; its
    answer."""
    in_flight = asyncio.ensure_future(request)
    async with asyncio.timeout(WAIT_S):
        await read.wait()
    await meanwhile()
    gate.set()
    return await in_flight


async def until_gone(node: Any, key: Any) -> None:
    """Until ``key`` is gone from the cluster (its lease ran out), or TimeoutError at the bound."""
    async with asyncio.timeout(WAIT_S):
        while await node.get(key) is not None:
            await asyncio.sleep(0.05)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition()`` holds, polled, or AssertionError at the bound."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {WAIT_S}s")
        time.sleep(0.05)
