"""A thin client's messages of one turn travel as one bundle, and so do a member's replies.

A client keeping many requests outstanding sent a datagram each, and the member answered
alike: a system call and a wake-up per request on both sides (twenty-fifth session).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxoskv import connect
from paxoskv.errors import UndecodableReply
from paxoskv.remote import BUNDLE_REQUESTS
from paxoskv.runtime import protocol
from paxoskv.transport import MemoryNetwork
from tests.runtime.cluster import MemoryCluster


def _runtime(size: int, tag: int) -> bytes:
    return protocol.encode_runtime("read", tag, "local", "get", "k" * size)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3_000), max_size=40),
    limit=st.integers(min_value=3_100, max_value=20_000),
)
def test_bundles_fit_the_limit_and_keep_each_payload_in_order(sizes: list[int], limit: int) -> None:
    payloads = [_runtime(size, tag) for tag, size in enumerate(sizes)]
    datagrams = protocol.bundles(payloads, limit)
    assert all(len(datagram) <= limit for datagram in datagrams)
    unpacked: list[bytes] = []
    for datagram in datagrams:
        name, fields = protocol.decode_runtime(datagram)
        if name == protocol.BUNDLE:
            assert len(fields) > 1  # a payload alone goes as it is
            unpacked.extend(protocol.bundle_parts(fields))
        else:
            unpacked.append(datagram)
    assert unpacked == payloads


def test_a_lone_payload_is_sent_as_it_is() -> None:
    payload = _runtime(10, 1)
    assert protocol.bundles([payload], 60_000) == [payload]


@pytest.mark.parametrize("parts", [[b"P123"], ["R"], [1], [protocol.RUNTIME, None]])
def test_a_bundle_of_anything_but_runtime_payloads_is_malformed(parts: list[Any]) -> None:
    with pytest.raises(protocol.MalformedRuntimeMessage):
        protocol.bundle_parts(parts)


def test_hellos_say_whether_their_node_reads_bundles() -> None:
    hello = protocol.Hello("voter", 3, 2, "n1", ("n1",), False, 3, bundles=True)
    _, fields = protocol.decode_runtime(protocol.encode_hello(hello))
    assert protocol.decode_hello(fields).bundles is True
    assert protocol.decode_hello(fields[:7]).bundles is False  # an earlier release's hello
    with pytest.raises(protocol.MalformedRuntimeMessage):
        protocol.decode_hello([*fields[:7], 1])


async def test_a_pipelining_client_and_its_member_exchange_few_datagrams(
    memory_cluster: MemoryCluster,
) -> None:
    transport = memory_cluster.network.attach("client-1")
    async with connect(memory_cluster.config("client-1"), transport=transport) as client:
        await client.set("warm", 0)  # the client has heard the leader by now
        sent, received = transport.stats.sent_frames, transport.stats.received_frames
        revisions = await asyncio.gather(*(client.set(f"k{i}", i) for i in range(100)))
        values = await asyncio.gather(
            *(client.get(f"k{i}", consistency=c) for i in range(100) for c in ("local", "leader"))
        )
        assert len(set(revisions)) == 100
        assert values == [i for i in range(100) for _ in range(2)]
        # 300 requests: a datagram for each BUNDLE_REQUESTS of a turn's (give or take the
        # turns they start in), and a few more replies (a member joins what it answers in a
        # turn; hellos come too). One datagram a request before.
        assert transport.stats.sent_frames - sent <= 2 * 300 / BUNDLE_REQUESTS
        assert transport.stats.received_frames - received < 100


async def test_a_malformed_message_in_a_bundle_is_dropped_alone(
    memory_cluster: MemoryCluster,
) -> None:
    await memory_cluster.nodes["n1"].set("k", "v")
    rogue = memory_cluster.network.attach("rogue")
    good = [protocol.encode_runtime("read", i, "local", "get", "k") for i in (1, 2)]
    parts = [good[0], protocol.RUNTIME + b"\xc1", protocol.encode_runtime("read", "x"), good[1]]
    await rogue.send("n1", protocol.RUNTIME + msgpack.packb([protocol.BUNDLE, *parts]))
    answered: dict[int, Any] = {}
    async with asyncio.timeout(5):
        while len(answered) < 2:
            _, payload = await rogue.receive()
            name, fields = protocol.decode_runtime(payload)
            replies = (
                [protocol.decode_runtime(p) for p in protocol.bundle_parts(fields)]
                if name == protocol.BUNDLE
                else [(name, fields)]
            )
            for reply_name, reply in replies:
                if reply_name == "readrep":
                    answered[reply[0]] = reply[2][1]
    assert answered == {1: "v", 2: "v"}
    assert memory_cluster.nodes["n1"].replica.failure is None


class _BundlingMember:
    """A member of this release by its hellos: it answers a turn's reads in one bundle, one
    of them with bytes that do not decode; an earlier release (``bundles=False``) is sent
    each request alone, and answers each alone."""

    def __init__(self, network: MemoryNetwork, *, bundles: bool) -> None:
        self.bundles = bundles
        self.transport = network.attach("fake")
        self.datagrams: list[str] = []
        self.parts: list[int] = []  # how many messages each datagram held
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        hello = protocol.Hello("voter", 1, 1, "fake", ("fake",), False, bundles=self.bundles)
        await self.transport.broadcast(protocol.encode_hello(hello))
        bad = msgpack.ExtType(1, b"\xc1")  # a "tuple" that holds no array
        while True:
            sender, payload = await self.transport.receive()
            name, fields = protocol.decode_runtime(payload)
            self.datagrams.append(name)
            parts = protocol.bundle_parts(fields) if name == protocol.BUNDLE else [payload]
            self.parts.append(len(parts))
            replies = []
            for part in parts:
                part_name, read = protocol.decode_runtime(part)
                if part_name != "read":
                    continue
                value = bad if read[3] == "bad" else [read[3], "good", 1, 1, 1, None]
                replies.append(protocol.RUNTIME + msgpack.packb(["readrep", read[0], 1, value, ""]))
            if name == protocol.BUNDLE:
                await self.transport.send(sender, protocol.bundles(replies, 60_000)[0])
            else:
                for reply in replies:
                    await self.transport.send(sender, reply)


async def test_a_reply_in_a_bundle_that_does_not_decode_fails_its_own_request_alone() -> None:
    network = MemoryNetwork()
    fake = _BundlingMember(network, bundles=True)
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            await asyncio.wait_for(client._heard_any.wait(), 5)
            asked = [client.get(key, consistency="local") for key in ("a", "bad", "b")]
            outcomes = await asyncio.wait_for(asyncio.gather(*asked, return_exceptions=True), 5)
            assert outcomes[0] == outcomes[2] == "good"
            assert isinstance(outcomes[1], UndecodableReply)
            assert fake.datagrams == ["whois", protocol.BUNDLE]
    finally:
        fake.task.cancel()


async def test_a_member_that_does_not_read_bundles_is_sent_each_request_alone() -> None:
    network = MemoryNetwork()
    fake = _BundlingMember(network, bundles=False)
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            await asyncio.wait_for(client._heard_any.wait(), 5)
            asked = [client.get(key, consistency="local") for key in ("a", "b", "c")]
            assert await asyncio.wait_for(asyncio.gather(*asked), 5) == ["good"] * 3
            assert fake.datagrams == ["whois", "read", "read", "read"]
    finally:
        fake.task.cancel()


async def test_a_request_cancelled_while_it_waits_leaves_nothing_behind() -> None:
    """The wait for a reply is a plain timer now, not asyncio.timeout around a shield: a
    caller's cancellation still ends it, and neither its entry nor its timer stays."""
    network = MemoryNetwork()
    silent = network.attach("fake")
    hello = protocol.Hello("voter", 1, 1, "fake", ("fake",), False, bundles=True)
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    async with connect(config, transport=network.attach("client-1")) as client:
        await silent.broadcast(protocol.encode_hello(hello))
        await asyncio.wait_for(client._heard_any.wait(), 5)
        loop = asyncio.get_running_loop()
        timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
        reading = asyncio.create_task(client.get("k", consistency="local"))
        while not client._waiting:
            await asyncio.sleep(0)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert client._waiting == {}
        live = [t for t in loop._scheduled if not t.cancelled()]  # type: ignore[attr-defined]
        assert len(live) <= timers_before


async def test_a_full_bundle_goes_at_once() -> None:
    """So the member works on the first requests of a turn while the client makes the rest."""
    network = MemoryNetwork()
    fake = _BundlingMember(network, bundles=True)
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            await asyncio.wait_for(client._heard_any.wait(), 5)
            asked = [client.get(f"k{i}", consistency="local") for i in range(40)]
            assert await asyncio.wait_for(asyncio.gather(*asked), 5) == ["good"] * 40
            assert fake.parts[1:] == [BUNDLE_REQUESTS, BUNDLE_REQUESTS, 40 - 2 * BUNDLE_REQUESTS]
    finally:
        fake.task.cancel()
