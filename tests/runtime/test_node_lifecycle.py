"""A Node's life: ready only once caught up, and closed for good once closed."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from paxoskv import ChangeEvent, Config, Node, open_blocking
from paxoskv.errors import NodeClosed
from tests.runtime.cluster import MemoryCluster, eventually


async def test_a_joining_node_is_ready_once_it_has_caught_up(
    memory_cluster: MemoryCluster,
) -> None:
    n1 = memory_cluster.nodes["n1"]
    for start in range(0, 300, 100):
        await asyncio.gather(*(n1.set(f"s/{i}", i) for i in range(start, start + 100)))
    await n1.set("s", "there")
    await eventually(
        lambda: all(n.replica.engine.state.get("s") for n in memory_cluster.nodes.values()),  # type: ignore[union-attr]
        what="every member to apply s",
    )
    joiner = await memory_cluster.start("n4", join=True)
    await joiner.wait_ready(10)
    assert await joiner.get("s", consistency="local") == "there"
    assert (await joiner.status())["applied_slot"] > 0


async def test_a_closed_node_refuses_every_call_at_once() -> None:
    cluster = MemoryCluster()
    node = await cluster.start("c1", bootstrap_expect=1, request_timeout_s=30.0)
    await node.wait_ready(5)
    await node.set("k", 1)
    watched: list[ChangeEvent] = []

    async def follow() -> None:
        async for event in node.watch("k"):
            watched.append(event)

    watcher = asyncio.create_task(follow())
    await node.set("k", 2)
    await eventually(lambda: watched, what="the watch to see k")
    await cluster.stop("c1")
    with pytest.raises(NodeClosed):
        await asyncio.wait_for(watcher, 10)
    for call in (
        node.set("k", 3),
        node.get("k"),
        node.get("k", consistency="local"),
        node.keys(),
        node.delete("k"),
        node.status(),
        node.members(),
        node.wait_ready(),
    ):
        with pytest.raises(NodeClosed, match="closed"):
            await call
    with pytest.raises(NodeClosed):
        await anext(node.watch("k"))
    await node.close()  # a second close does nothing


async def test_a_callback_that_raises_does_not_end_the_subscription(
    memory_cluster: MemoryCluster, caplog: pytest.LogCaptureFixture
) -> None:
    node = memory_cluster.nodes["n1"]
    seen: list[Any] = []

    def callback(event: ChangeEvent) -> None:
        seen.append(event.value)
        if event.value == "bad":
            raise ValueError("boom")

    task = node.on_change("cb/", callback)
    await eventually(lambda: node._watch_wakes, what="the subscription to start")
    with caplog.at_level(logging.ERROR, logger="paxoskv.client"):
        for value in ("good", "bad", "after"):
            await node.set("cb/k", value)
        await eventually(lambda: len(seen) == 3, what="three callbacks")
    assert not task.done()
    assert seen == ["good", "bad", "after"]
    failures = [r for r in caplog.records if "on_change callback" in r.getMessage()]
    assert len(failures) == 1 and "'cb/k'" in failures[0].getMessage()
    task.cancel()


def test_on_change_works_on_the_blocking_wrapper() -> None:
    """The callback runs on the wrapper's loop thread; cancelling the future stops it."""
    config = MemoryCluster().config("b1", bootstrap_expect=1)
    with open_blocking(config, replica=True) as kv:
        kv.wait_ready(5)
        node = kv.api
        assert isinstance(node, Node)
        seen: list[Any] = []
        threads: set[int] = set()
        arrived = threading.Event()

        def callback(event: ChangeEvent) -> None:
            seen.append(event.value)
            threads.add(threading.get_ident())
            if len(seen) == 2:
                arrived.set()

        subscription = kv.on_change("config/", callback)
        deadline = time.monotonic() + 10
        while not node._watch_wakes and time.monotonic() < deadline:  # subscribed
            time.sleep(0.01)
        kv.set("config/theme", "dark")
        kv.set("config/theme", "light")
        assert arrived.wait(10)
        assert seen == ["dark", "light"]
        assert threads == {kv._thread.ident}
        subscription.cancel()
    assert subscription.cancelled()
    with pytest.raises(NodeClosed, match="closed"):
        kv.get("config/theme")


async def test_a_node_that_stopped_on_an_error_refuses_calls_and_ends_watches() -> None:
    cluster = MemoryCluster()
    node = await cluster.start("f1", bootstrap_expect=1, request_timeout_s=30.0)
    try:
        await node.wait_ready(5)
        await node.set("k", 1)
        watcher = asyncio.create_task(anext(node.watch("k")))
        await eventually(lambda: node._watch_wakes, what="the watch to start")
        node.replica._fail_stop(OSError("disk on fire"))
        with pytest.raises(NodeClosed, match="disk on fire"):
            await asyncio.wait_for(watcher, 10)
        with pytest.raises(NodeClosed, match="disk on fire"):
            await node.set("k", 2)
        with pytest.raises(NodeClosed):
            await node.get("k")
    finally:
        await cluster.close()


async def test_each_life_of_a_node_proposes_membership_changes_as_a_client_of_its_own(
    tmp_path: Path,
) -> None:
    """The membership policy proposes its changes under seqs from 1. Under the node's id
    alone, a restarted leader's first changes found its last life's results for those seqs in
    the dedup table and were answered from there, never applied (found in review)."""
    from paxoskv.runtime.replica import Replica

    config = Config(node_id="a", durability="memory")
    lives = [Replica(config)._policy_client() for _ in range(2)]
    assert lives[0] != lives[1]
    assert all(client.startswith("a/membership/") for client in lives)
