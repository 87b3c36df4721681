"""Starting a Node: once, and a start that fails holds nothing.

Found by the bad-input audit (twentieth session): ``async with node`` inside ``async with
node`` built a second replica that failed on the data dir's lock but took the first one's
place (the node then answered as a stranger, and the first replica ran on after close); and a
start that failed in recovery kept the data dir locked by its own process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import paxoskv.runtime.replica as replica_module
from paxoskv import Node
from paxoskv.config import COMMIT_DELAY_S
from paxoskv.errors import CorruptData, InvalidArgument, NodeClosed
from paxoskv.storage.headers import HEADER_SIZE
from tests.runtime.cluster import MemoryCluster


async def test_a_started_node_refuses_a_second_start_and_runs_on(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        node = await cluster.start("n1", bootstrap_expect=1)
        await node.wait_ready(5)
        await node.set("k", 1)
        with pytest.raises(InvalidArgument, match="started already"):
            async with node:
                pass
        assert await node.get("k") == 1  # the running replica is still the node's
        await node.close()
        assert node.replica.stopped.is_set()  # and close stopped it
        with pytest.raises(NodeClosed):
            await node.start()
    finally:
        await cluster.close()


async def test_a_start_that_fails_in_recovery_leaves_the_data_dir_unlocked(
    tmp_path: Path,
) -> None:
    cluster = MemoryCluster(tmp_path)
    node = await cluster.start("n1", bootstrap_expect=1)
    await node.wait_ready(5)
    for value in range(20):
        await node.set(f"k{value}", value)
    await cluster.stop("n1")
    (segment,) = sorted((tmp_path / "n1").glob("journal-*.log"))
    data = bytearray(segment.read_bytes())
    data[HEADER_SIZE] ^= 0xFF  # the first frame's length: damage with whole frames after it
    segment.write_bytes(bytes(data))
    for _ in range(2):  # the second start meets the same damage, not the first one's lock
        failed = Node(cluster.config("n1", bootstrap_expect=1))
        with pytest.raises(CorruptData):
            await failed.start()
        with pytest.raises(RuntimeError, match="not started"):
            _ = failed.replica  # a failed start leaves no replica behind


async def test_the_engine_runs_on_the_commit_delay_the_config_checks_heartbeats_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runtime hands the engine the config's constant, not the engine's own default (the
    same 2 ms today): changed here, the engine must see the change."""
    monkeypatch.setattr(replica_module, "COMMIT_DELAY_S", COMMIT_DELAY_S * 1.5)
    cluster = MemoryCluster()
    try:
        node = await cluster.start("n1", bootstrap_expect=1)
        await node.wait_ready(5)
        engine = node.replica.engine
        assert engine is not None
        assert engine.settings.commit_delay_s == replica_module.COMMIT_DELAY_S
    finally:
        await cluster.close()
