"""The in-process network: delivery, its refusals, partitions and seeded faults."""

from __future__ import annotations

import asyncio

import pytest

from paxoskv.errors import ConfigurationError, PayloadTooLarge, TransportClosed
from paxoskv.transport import DropReason, FaultSettings, MemoryNetwork, MemoryTransport

from .conftest import wait_until


def drain(transport: MemoryTransport) -> list[tuple[str, bytes]]:
    """What is in the inbox now, without waiting."""
    found = []
    inbox = transport._inbox
    while len(inbox):
        found.append(tuple(inbox._items.popleft()))
    return found  # type: ignore[return-value]


async def test_broadcast_reaches_every_other_node_and_send_one() -> None:
    network = MemoryNetwork()
    a, b, c = (network.attach(name) for name in "abc")
    await a.broadcast(b"all")
    await a.send("c", b"only c")
    assert drain(a) == []
    assert drain(b) == [("a", b"all")]
    assert drain(c) == [("a", b"all"), ("a", b"only c")]
    assert a.stats.sent_frames == 3 and c.stats.received_frames == 2


async def test_refusals_match_the_socket_transports() -> None:
    network = MemoryNetwork(max_payload_bytes=100)
    a = network.attach("a")
    with pytest.raises(PayloadTooLarge, match="limit of 100 bytes"):
        await a.broadcast(b"x" * 101)
    with pytest.raises(ConfigurationError, match="already attached"):
        network.attach("a")
    await a.close()
    with pytest.raises(TransportClosed):
        await a.send("b", b"x")
    with pytest.raises(TransportClosed):
        await a.receive()


async def test_a_closed_node_silently_loses_what_is_sent_to_it() -> None:
    network = MemoryNetwork()
    a, b = network.attach("a"), network.attach("b")
    await b.close()
    await a.send("b", b"into the void")
    await a.send("nobody", b"also lost")
    assert a.stats.sent_frames == 2


async def test_partition_cut_and_heal() -> None:
    network = MemoryNetwork()
    a, b, c = (network.attach(name) for name in "abc")
    network.partition(["a", "b"], ["c"])
    await a.broadcast(b"p1")
    assert drain(b) == [("a", b"p1")] and drain(c) == []
    network.heal()
    network.cut("a", "b", both_ways=False)
    await a.broadcast(b"p2")
    await b.send("a", b"back")
    assert drain(b) == [] and drain(c) == [("a", b"p2")] and drain(a) == [("b", b"back")]
    network.isolate("c")
    await c.broadcast(b"alone")
    assert drain(a) == [] and drain(b) == []
    assert a.stats.dropped[DropReason.CUT] == 1
    network.heal()
    await c.broadcast(b"back again")
    assert drain(a) == [("c", b"back again")]


async def _run_lossy(seed: int) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    faults = FaultSettings(seed=seed, drop_rate=0.3, duplicate_rate=0.2)
    network = MemoryNetwork(faults)
    a, b = network.attach("a"), network.attach("b")
    for index in range(200):
        await a.send("b", index.to_bytes(2, "big"))
    return drain(b), b.stats.as_dict()


async def test_faults_replay_exactly_from_their_seed() -> None:
    first, again, other = await _run_lossy(7), await _run_lossy(7), await _run_lossy(8)
    assert first == again
    assert first != other
    received, stats = first
    assert 100 < len(received) < 200 + 60  # both losses and duplicates really happened
    assert stats["dropped_injected"] > 30 and stats["injected_duplicated"] > 10


async def test_delay_and_reorder_change_the_order_but_lose_nothing() -> None:
    faults = FaultSettings(seed=3, reorder_rate=0.3, reorder_delay_s=0.02)
    network = MemoryNetwork(faults)
    a, b = network.attach("a"), network.attach("b")
    for index in range(50):
        await a.send("b", bytes([index]))
    got: list[int] = []
    while len(got) < 50:
        got.append((await asyncio.wait_for(b.receive(), 1.0)).payload[0])
    assert sorted(got) == list(range(50))
    assert got != list(range(50))
    assert b.stats.injected["reordered"] > 5


async def test_a_full_inbox_counts_overflow() -> None:
    network = MemoryNetwork(inbox_frames=3)
    a, b = network.attach("a"), network.attach("b")
    for _ in range(5):
        await a.send("b", b"x")
    await wait_until(lambda: b.stats.dropped[DropReason.OVERFLOW] == 2)
    assert b.stats.received_frames == 3
