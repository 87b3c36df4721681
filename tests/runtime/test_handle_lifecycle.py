"""Handles used out of turn, found by an audit of the API as an embedding web app uses it
(twenty-second session): before start, after close, while closing, and while joining.

Each case used to give an untyped error (RuntimeError, AssertionError, "Event loop is
closed"), a hang, a leaked thread, an unretrieved task exception, a wait for the whole
request timeout, or a return before the node belonged to the cluster.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from paxoskv import ChangeEvent, Config, Node, open_blocking
from paxoskv.errors import ConfigurationError, InvalidArgument, NodeClosed, NoQuorum, NotStarted
from paxoskv.remote import Client
from tests.runtime.cluster import MemoryCluster, eventually
from tests.runtime.test_two_voter_removal import _leaving


async def test_calls_before_start_raise_not_started() -> None:
    config = MemoryCluster().config("early", bootstrap_expect=1)
    node = Node(config)
    with pytest.raises(NotStarted, match="async with Node"):
        await node.set("k", 1)
    with pytest.raises(NotStarted):
        _ = node.node_id
    client = Client(config)
    with pytest.raises(NotStarted, match=r"paxoskv\.connect"):
        await client.get("k")
    with pytest.raises(NotStarted):
        await anext(client.watch("k"))


def _paxoskv_threads() -> int:
    return sum(thread.name == "paxoskv" for thread in threading.enumerate())


def test_a_blocking_handle_out_of_turn_says_so() -> None:
    config = MemoryCluster().config("b1", bootstrap_expect=1)
    kv = open_blocking(config, replica=True)
    with pytest.raises(NotStarted, match="open_blocking"):
        kv.watch("x/")  # at the call: a generator's body would run only at its first next()
    with pytest.raises(NotStarted, match="open_blocking"):
        kv.get("k")
    with kv:
        kv.wait_ready(5)
        assert kv.config is config  # an attribute, not a method wrapped as one
        assert isinstance(kv.client_id, str)
        with pytest.raises(InvalidArgument, match="open already"):
            kv.open()
        kv.set("k", 1)
        assert kv.get("k") == 1
    with pytest.raises(NodeClosed):
        kv.watch("x/")
    with pytest.raises(NodeClosed):
        kv.on_change("x/", lambda event: None)
    with pytest.raises(NodeClosed):
        kv.open()


def test_a_blocking_handle_that_fails_to_open_lets_its_thread_go() -> None:
    before = _paxoskv_threads()
    config = Config(node_id="nodir", durability="durable")  # a node needs a data dir for this
    for _ in range(3):
        kv = open_blocking(config, replica=True)
        with pytest.raises(ConfigurationError):
            kv.open()
    assert _paxoskv_threads() == before
    with pytest.raises(NodeClosed, match="failed to open"):
        kv.open()


async def test_close_fails_pending_writes_and_reads_at_once(
    memory_cluster: MemoryCluster,
) -> None:
    """Cut off from the others, a node's write and linearizable read wait; closing it ends
    both with NodeClosed at once (the read used to wait out its whole timeout, and the write
    got NoQuorum)."""
    leader = memory_cluster.leader()
    node_id = next(n for n, node in memory_cluster.nodes.items() if node is not leader)
    node = memory_cluster.nodes[node_id]
    memory_cluster.network.isolate(node_id)
    write = asyncio.create_task(node.set("pending", 1))
    read = asyncio.create_task(node.get("pending"))
    await eventually(
        lambda: node.replica._answers and node.replica._barriers, what="both to be waiting"
    )
    started = time.monotonic()
    await memory_cluster.stop(node_id)
    with pytest.raises(NodeClosed, match="may or may not have been applied"):
        await asyncio.wait_for(write, 2)
    with pytest.raises(NodeClosed, match="before the read completed"):
        await asyncio.wait_for(read, 2)
    assert time.monotonic() - started < 2  # not the 5 s request timeout


async def test_on_change_ends_quietly_when_its_node_is_closed(
    memory_cluster: MemoryCluster,
) -> None:
    node = memory_cluster.nodes["n1"]
    seen: list[ChangeEvent] = []
    task = node.on_change("q/", seen.append)
    await eventually(lambda: node._watch_wakes, what="the subscription to start")
    await node.set("q/k", 1)
    await eventually(lambda: seen, what="the change")
    await memory_cluster.stop("n1")
    await asyncio.wait_for(task, 5)
    assert task.exception() is None  # asyncio logged "never retrieved" on every close


async def test_a_joining_node_is_ready_only_once_it_was_added(
    memory_cluster: MemoryCluster,
) -> None:
    """With no majority among the voters, nobody can add a joiner; it has the log from the
    members' hellos, but it does not belong to the cluster, and wait_ready says so."""
    network = memory_cluster.network
    await memory_cluster.nodes["n1"].set("k", 1)
    _cut_voters_apart(memory_cluster)
    joiner = await memory_cluster.start("l1", join=True, learner=True)
    with pytest.raises(NoQuorum, match="was not added"):
        await joiner.wait_ready(1.0)
    assert joiner.replica.engine is not None  # it has the log: only the seat is missing
    network.heal()
    await joiner.wait_ready(10)
    configuration = joiner.replica.engine.configuration
    assert "l1" in configuration.learners


def _cut_voters_apart(cluster: MemoryCluster) -> None:
    voters = ("n1", "n2", "n3")
    for a in voters:
        for b in voters:
            if a < b:
                cluster.network.cut(a, b)


async def test_a_wait_for_readiness_ends_when_the_node_is_closed(
    memory_cluster: MemoryCluster,
) -> None:
    """It waited out its whole timeout, then said "it goes on asking" (review of the above)."""
    _cut_voters_apart(memory_cluster)
    joiner = await memory_cluster.start("l1", join=True, learner=True)
    waiting = asyncio.create_task(joiner.wait_ready(10))
    await eventually(lambda: joiner.replica.engine is not None, what="the joiner's log")
    started = time.monotonic()
    await memory_cluster.stop("l1")
    with pytest.raises(NodeClosed):
        await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 2


async def test_a_leaving_voter_is_ready_live_and_restarted(tmp_path: Path) -> None:
    """A removed voter still owed votes runs on as "leaving", in neither set of the
    configuration: it belongs until it goes (review: wait_ready timed out on it, and
    `paxos-kv node --timeout` exited 3 on a node restarted while leaving)."""
    cluster = MemoryCluster(tmp_path)
    try:
        left, gone, _ = await _leaving(cluster)
        await gone.wait_ready(2)
        await cluster.stop(gone.node_id)
        # Kept from the voter left, the restarted one cannot learn it may go: it stays leaving.
        cluster.network.cut(left.node_id, gone.node_id)
        again = await cluster.start(gone.node_id)
        assert again.replica._role == "leaving"
        await again.wait_ready(2)
        assert again.replica._role == "leaving" and not again.replica.stopped.is_set()
    finally:
        await cluster.close()
