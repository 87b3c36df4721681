"""A thin client's watch through a burst of large events.

Events go 64 to a datagram, so 64 of 40 KB make a reply of 2.5 MB, sent in parts the client
fetches one at a time. The member pushed every such reply at once and kept each 30 s (10 s
after its last part): a burst filled its 64 MiB room for replies in parts, every renewal was
then refused as busy, and `paxos-kv watch` stopped for good, missing every later change
(CLI audit, twenty-second session: 857 of 1,000 events). A watch now has one reply in parts
in flight at a time, the next pushed once the client has asked for the last part of it.
"""

from __future__ import annotations

import asyncio
import random

from paxoskv import ChangeEvent, connect
from paxoskv.runtime import protocol
from paxoskv.transport.base import Delivery
from tests.runtime.cluster import MemoryCluster, eventually

WRITES = 1_600  # 64 MB of values: as much as a member keeps of replies in parts


async def test_a_burst_of_large_events_reaches_a_thin_clients_watch_whole(
    memory_cluster: MemoryCluster,
) -> None:
    kept_most = 0
    for node in memory_cluster.nodes.values():
        service = node._service
        assert service is not None
        keep = service._keep_parts

        def counted(
            part_id: int, parts: object, keep: object = keep, service: object = service
        ) -> None:
            nonlocal kept_most
            keep(part_id, parts)  # type: ignore[operator]
            kept_most = max(kept_most, service._parts_bytes)  # type: ignore[attr-defined]

        service._keep_parts = counted  # type: ignore[method-assign]
    writer = memory_cluster.nodes["n1"]
    config = memory_cluster.config("client-1", request_timeout_s=5.0)
    seen: list[ChangeEvent] = []
    async with connect(config, transport=memory_cluster.network.attach("client-1")) as client:

        async def follow() -> None:
            async for event in client.watch("bv/"):
                seen.append(event)

        watcher = asyncio.create_task(follow())
        await client.set("bv/start", "x")
        await eventually(lambda: seen, what="the watch to start")
        value = "v" * 40_000
        for start in range(0, WRITES, 32):
            await asyncio.gather(
                *(writer.set(f"bv/{i:04}", value) for i in range(start, start + 32))
            )
        await writer.set("bv/zend", "small")
        await eventually(lambda: len(seen) == WRITES + 2 or watcher.done(), 30, "the burst")
        watcher.cancel()
    assert [e.key for e in seen] == ["bv/start", *(f"bv/{i:04}" for i in range(WRITES)), "bv/zend"]
    refused = sum(node._service.replies_refused for node in memory_cluster.nodes.values())  # type: ignore[union-attr]
    assert refused == 0
    assert kept_most < 16 << 20, kept_most  # a reply or two per watch, not 64 MiB of them


async def test_large_events_reach_a_watch_whole_when_parts_are_lost(
    memory_cluster: MemoryCluster,
) -> None:
    """A seeded fifth of the replies and parts to the client lost: its first parts too, which
    a renewal from the same position now has sent again rather than a new copy kept."""
    chance = random.Random(22)
    transport = memory_cluster.network.attach("client-1")
    arrive = transport._arrive

    def lossy(delivery: Delivery) -> None:
        if delivery.payload.startswith(protocol.RUNTIME):
            name, _ = protocol.decode_runtime(delivery.payload)
            if name in ("events", "part") and chance.random() < 0.2:
                return
        arrive(delivery)

    transport._arrive = lossy  # type: ignore[method-assign]
    writer = memory_cluster.nodes["n1"]
    config = memory_cluster.config("client-1", request_timeout_s=2.0)
    seen: list[ChangeEvent] = []
    async with connect(config, transport=transport) as client:
        revision = await writer.set("bl/start", "x")
        value = "v" * 40_000
        for start in range(0, 192, 32):
            await asyncio.gather(
                *(writer.set(f"bl/{i:04}", value) for i in range(start, start + 32))
            )

        async def follow() -> None:
            async for event in client.watch("bl/", from_revision=revision):
                seen.append(event)

        watcher = asyncio.create_task(follow())
        await eventually(lambda: len(seen) == 193 or watcher.done(), 60, "every event")
        watcher.cancel()
    assert [e.key for e in seen] == ["bl/start", *(f"bl/{i:04}" for i in range(192))]
