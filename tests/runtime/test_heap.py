"""A snapshot's packed copy, let go of once saved, is handed back to the OS (runtime.heap)."""

from __future__ import annotations

import platform

import pytest

from paxoskv.runtime import heap, replica
from tests.runtime.cluster import MemoryCluster, eventually


def test_the_heap_is_trimmed_where_the_c_library_can() -> None:
    heap.give_back_free_memory()  # no error, whatever the C library
    if platform.libc_ver()[0] == "glibc":
        assert heap._malloc_trim() is not None


async def test_every_node_gives_memory_back_after_each_snapshot_it_lets_go_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims = []
    monkeypatch.setattr(replica, "give_back_free_memory", lambda: trims.append(1))
    cluster = MemoryCluster()
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3, snapshot_every_commands=20)
        for i in range(60):
            await cluster.nodes["n1"].set(f"k{i % 10}", i)
        engines = [node.replica.engine for node in cluster.nodes.values()]

        def all_saved_and_let_go() -> bool:
            return all(
                e is not None and e._transfer is not None and not e._transfer.servable
                for e in engines
            )

        await eventually(all_saved_and_let_go, 5, "a snapshot saved and let go of on each node")
        await eventually(lambda: len(trims) >= 3, 5, "the heap trimmed after each")
    finally:
        await cluster.close()
