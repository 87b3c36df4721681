"""``deliver_to``: deliveries handed to a consumer as they arrive, instead of queued."""

from __future__ import annotations

from collections.abc import Callable

from paxoskv.transport import (
    Delivery,
    FaultSettings,
    FaultyTransport,
    MemoryNetwork,
    TransportSettings,
    UdpTransport,
)
from paxoskv.transport.inbox import Inbox

from .conftest import SECRET, wait_until

Settings = Callable[..., TransportSettings]


def test_an_inbox_hands_what_waits_and_what_comes_to_its_consumer() -> None:
    inbox = Inbox(3)
    inbox.put(Delivery("a", b"queued"))
    got: list[list[Delivery]] = []
    inbox.hand_to(got.append)
    assert got == [[("a", b"queued")]] and len(inbox) == 0  # what waited, at once
    assert inbox.put(Delivery("a", b"one"))
    assert inbox.put_many([Delivery("b", b"two"), Delivery("b", b"three")]) == 0
    assert got[1:] == [[("a", b"one")], [("b", b"two"), ("b", b"three")]]
    inbox.hand_to(None)  # back to queueing, bounded as before
    assert inbox.put_many([Delivery("c", bytes([n])) for n in range(5)]) == 2
    assert len(inbox) == 3 and len(got) == 3
    inbox.close()
    inbox.hand_to(got.append)
    assert not inbox.put(Delivery("a", b"late")) and inbox.put_many([Delivery("a", b"x")]) == 1
    assert len(got) == 3  # a closed inbox hands nothing on


async def test_udp_hands_each_burst_to_the_consumer_in_order(group_settings: Settings) -> None:
    settings = group_settings(secret=SECRET)
    async with (
        await UdpTransport.open("a", settings) as a,
        await UdpTransport.open("b", settings) as b,
    ):
        got: list[tuple[str, bytes]] = []
        b.deliver_to(lambda deliveries: got.extend(tuple(d) for d in deliveries))  # type: ignore[misc]
        await a.send_many([(None, b"%d" % n) for n in range(20)])
        await wait_until(lambda: len(got) == 20)
        assert got == [("a", b"%d" % n) for n in range(20)]
        assert b.stats.received_frames == 20


async def test_memory_and_the_fault_wrapper_deliver_in_a_later_turn() -> None:
    network = MemoryNetwork()
    a = network.attach("a")
    b = FaultyTransport(network.attach("b"), FaultSettings())
    c = network.attach("c")
    got: dict[str, list[bytes]] = {"b": [], "c": []}
    b.deliver_to(lambda ds: got["b"].extend(d.payload for d in ds))
    c.deliver_to(lambda ds: got["c"].extend(d.payload for d in ds))
    assert a.send_soon([(None, b"all"), ("c", b"to c")]) is None
    assert got == {"b": [], "c": []}  # not inside the sender's call, as on a network
    await wait_until(lambda: len(got["b"]) == 1 and len(got["c"]) == 2)
    assert got == {"b": [b"all"], "c": [b"all", b"to c"]}
    await b.close()
