"""``send_many`` and ``receive_many``: a burst in one call, on every transport alike.

The burst forms exist for speed (benchmarks/transport.py); what is tested here is that they
mean exactly what the per-frame calls mean -- same order, same routing, same refusals -- on
UDP, in memory and behind the fault wrapper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from paxoskv.errors import PayloadTooLarge, TransportClosed
from paxoskv.transport import (
    Delivery,
    DropReason,
    FaultSettings,
    FaultyTransport,
    MemoryNetwork,
    TransportSettings,
    UdpTransport,
)
from paxoskv.transport.inbox import Inbox

from .conftest import SECRET, wait_until

Settings = Callable[..., TransportSettings]


async def take(receive_many: Callable[[], object], count: int) -> list[tuple[str, bytes]]:
    """``count`` deliveries through ``receive_many``, however the bursts fall; bounded."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(3.0):
        while len(got) < count:
            got.extend(tuple(d) for d in await receive_many())  # type: ignore[misc,attr-defined]
    return got


async def test_a_burst_over_udp_keeps_order_and_routing(group_settings: Settings) -> None:
    settings = group_settings(secret=SECRET)
    async with (
        await UdpTransport.open("a", settings) as a,
        await UdpTransport.open("b", settings) as b,
        await UdpTransport.open("c", settings) as c,
    ):
        burst: list[tuple[str | None, bytes]] = [(None, b"%d" % n) for n in range(50)]
        burst += [("b", b"only b"), ("a", b"note to self"), (None, b"last")]
        await a.send_many(burst)
        everyone = [("a", b"%d" % n) for n in range(50)]
        assert await take(b.receive_many, 52) == [*everyone, ("a", b"only b"), ("a", b"last")]
        assert await take(c.receive_many, 51) == [*everyone, ("a", b"last")]
        assert await take(a.receive_many, 1) == [("a", b"note to self")]
        # b's copy went by the group (a had not heard from b), and c dropped it as not its own.
        assert c.stats.dropped[DropReason.OTHER_DESTINATION] == 1
        assert a.stats.sent_frames == 52


async def test_one_payload_over_the_limit_refuses_the_whole_burst(
    group_settings: Settings,
) -> None:
    async with await UdpTransport.open("a", group_settings()) as a:
        too_big = b"x" * (a.max_payload_bytes + 1)
        with pytest.raises(PayloadTooLarge, match=f"limit of {a.max_payload_bytes} bytes"):
            await a.send_many([(None, b"fine"), ("b", too_big)])
        assert a.stats.sent_frames == 0


async def test_receive_many_takes_at_most_what_it_is_asked_for() -> None:
    network = MemoryNetwork()
    a, b = network.attach("a"), network.attach("b")
    await a.send_many([("b", bytes([n])) for n in range(5)])
    first = await asyncio.wait_for(b.receive_many(3), 1.0)
    rest = await asyncio.wait_for(b.receive_many(), 1.0)
    assert [d.payload for d in first] == [b"\0", b"\1", b"\2"]
    assert [d.payload for d in rest] == [b"\3", b"\4"]
    assert all(isinstance(d, Delivery) and d.sender_id == "a" for d in first + rest)


async def test_memory_bursts_refuse_like_single_sends() -> None:
    network = MemoryNetwork(max_payload_bytes=10)
    a, b = network.attach("a"), network.attach("b")
    with pytest.raises(PayloadTooLarge):
        await a.send_many([("b", b"ok"), (None, b"x" * 11)])
    assert b.stats.received_frames == 0
    await a.close()
    with pytest.raises(TransportClosed):
        await a.send_many([("b", b"ok")])


async def test_the_fault_wrapper_cuts_bursts_too() -> None:
    network = MemoryNetwork()
    a = FaultyTransport(network.attach("a"), FaultSettings())
    b, c = network.attach("b"), network.attach("c")
    a.cut("b")
    await a.send_many([("b", b"cut"), ("c", b"through"), (None, b"all")])
    assert await take(c.receive_many, 2) == [("a", b"through"), ("a", b"all")]
    # As with send and broadcast: the cut stops what is addressed to b, and b's own wrapper
    # (were it wrapped) would drop what reaches it by the group.
    assert await take(b.receive_many, 1) == [("a", b"all")]
    assert a.stats.dropped[DropReason.CUT] == 1
    with pytest.raises(PayloadTooLarge):  # a cut link hides no caller bug
        await a.send_many([("b", b"x" * (a.max_payload_bytes + 1))])
    await a.close()


async def test_closing_wakes_a_waiting_receive_many() -> None:
    inbox = Inbox(4)
    waiting = asyncio.create_task(inbox.get_many(10))
    await wait_until(lambda: len(inbox._waiters) == 1)  # the test is about a waiter woken
    inbox.close()
    with pytest.raises(TransportClosed):
        await asyncio.wait_for(waiting, 1.0)


async def test_send_soon_sends_a_burst_before_returning_on_every_transport(
    group_settings: Settings,
) -> None:
    """Nothing waits on a socket with room: the runtime sends a step's burst without a task."""
    settings = group_settings(secret=SECRET)
    async with (
        await UdpTransport.open("a", settings) as a,
        await UdpTransport.open("b", settings) as b,
    ):
        assert a.send_soon([(None, b"one"), (None, b"two")]) is None
        assert a.stats.sent_frames == 2  # sent already, not scheduled
        assert await take(b.receive_many, 2) == [("a", b"one"), ("a", b"two")]
        with pytest.raises(PayloadTooLarge):
            a.send_soon([(None, b"x" * (a.max_payload_bytes + 1))])
    network = MemoryNetwork()
    m = FaultyTransport(network.attach("m"), FaultSettings())
    n = network.attach("n")
    m.cut("nobody")
    assert m.send_soon([("n", b"direct"), (None, b"all")]) is None
    assert n.stats.received_frames == 2
    assert await take(n.receive_many, 2) == [("m", b"direct"), ("m", b"all")]
    await m.close()
