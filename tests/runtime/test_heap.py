"""A snapshot's packed copy, let go of once saved, is handed back to the OS (runtime.heap);
a snapshot streamed to its file held no copy, and nothing is trimmed for it."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from paxoskv import Node
from paxoskv.paxos.engine import Engine
from paxoskv.runtime import heap, replica
from paxoskv.runtime.clock import now as clock_now
from tests.runtime.cluster import MemoryCluster, eventually


def test_the_heap_is_trimmed_where_the_c_library_can() -> None:
    heap.give_back_free_memory()  # no error, whatever the C library
    if platform.libc_ver()[0] == "glibc":
        assert heap._malloc_trim() is not None


@contextlib.asynccontextmanager
async def _counting(**overrides: Any) -> AsyncIterator[tuple[MemoryCluster, list[str]]]:
    """Three nodes snapshotting every 20 commands, and the ids of the nodes that gave a
    snapshot's memory back, in order."""
    trims: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            replica.Replica, "_give_back_snapshot_memory", lambda self: trims.append(self.node_id)
        )
        cluster = MemoryCluster()
        try:
            for node_id in ("n1", "n2", "n3"):
                await cluster.start(
                    node_id, bootstrap_expect=3, snapshot_every_commands=20, **overrides
                )
            yield cluster, trims
        finally:
            await cluster.close()


@pytest.fixture
async def counted() -> AsyncIterator[tuple[MemoryCluster, list[str]]]:
    async with _counting() as counting:
        yield counting


@pytest.mark.parametrize("encrypted", [False, True])
async def test_a_snapshot_streamed_to_its_file_leaves_nothing_to_give_back(
    encrypted: bool, tmp_path: Path
) -> None:
    """An encrypted node's too: nothing is trimmed for a snapshot that was not kept (that
    sealing streams is held in tests/storage, by the writes a sealed snapshot makes)."""
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    overrides = {"encryption_key_file": key} if encrypted else {}
    async with _counting(**overrides) as (cluster, trims):
        for i in range(60):
            await cluster.nodes["n1"].set(f"k{i % 10}", i)
        engines = [node.replica.engine for node in cluster.nodes.values()]

        def all_saved_and_let_go() -> bool:
            return all(
                e is not None and e._transfer is not None and not e._transfer.servable
                for e in engines
            )

        await eventually(all_saved_and_let_go, 5, "a snapshot saved and let go of on each node")
        assert all(e is not None and not e._transfer.keep for e in engines)  # type: ignore[union-attr]
        assert trims == []  # (decided in the step that heard it saved, so already here)


async def _one_taken_for_a_peer(node: Node) -> Engine:
    """``node`` past a periodic snapshot (saved, streamed: nothing given back for it), then
    taking one for a peer far behind, as its asking would; its engine."""
    for i in range(30):
        await node.set(f"k{i % 10}", i)
    engine = node.replica.engine
    assert engine is not None
    await eventually(lambda: engine._transfer is not None, 5, "a snapshot saved")
    engine._want_snapshot(clock_now())
    engine._take_snapshot()
    return engine


async def test_a_kept_snapshot_nobody_wants_by_the_time_it_is_saved_is_given_back_at_once(
    counted: tuple[MemoryCluster, list[str]],
) -> None:
    cluster, trims = counted
    engine = await _one_taken_for_a_peer(cluster.nodes["n1"])
    taken = engine._taken
    assert taken is not None and taken.keep
    engine._snapshot_wanted_until = clock_now()  # it stops asking before the save is done
    await eventually(lambda: engine._transfer is taken, 5, "the kept one saved")
    assert not taken.servable and trims == ["n1"]


async def test_a_snapshot_kept_for_a_peer_is_given_back_once_it_is_let_go_of(
    counted: tuple[MemoryCluster, list[str]],
) -> None:
    """Kept because a peer asked for one, it is let go of later, by the engine's tick."""
    cluster, trims = counted
    engine = await _one_taken_for_a_peer(cluster.nodes["n1"])
    await eventually(lambda: engine.holds_snapshot_copy, 5, "one saved and kept for it")
    assert "n1" not in trims
    engine._snapshot_wanted_until = clock_now()  # nobody asks any more
    await eventually(lambda: "n1" in trims, 5, "given back once let go of at a tick")
    assert not engine.holds_snapshot_copy
