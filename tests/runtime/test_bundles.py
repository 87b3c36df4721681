"""A thin client's messages of one turn travel as one bundle, and so do a member's replies.

A client keeping many requests outstanding sent a datagram each, and the member answered
alike: a system call and a wake-up per request on both sides (twenty-fifth session).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxoskv import connect, remote
from paxoskv.errors import NodeClosed, UndecodableReply
from paxoskv.remote import BUNDLE_REQUESTS, Client
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


@contextlib.asynccontextmanager
async def _client_of_a_fake(*, bundles: bool) -> AsyncIterator[tuple[Client, _BundlingMember]]:
    network = MemoryNetwork()
    fake = _BundlingMember(network, bundles=bundles)
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            await asyncio.wait_for(client._heard_any.wait(), 5)
            yield client, fake
    finally:
        fake.task.cancel()


async def test_a_reply_in_a_bundle_that_does_not_decode_fails_its_own_request_alone() -> None:
    async with _client_of_a_fake(bundles=True) as (client, fake):
        asked = [client.get(key, consistency="local") for key in ("a", "bad", "b")]
        outcomes = await asyncio.wait_for(asyncio.gather(*asked, return_exceptions=True), 5)
        assert outcomes[0] == outcomes[2] == "good"
        assert isinstance(outcomes[1], UndecodableReply)
        assert fake.datagrams == ["whois", protocol.BUNDLE]


async def test_a_member_that_does_not_read_bundles_is_sent_each_request_alone() -> None:
    async with _client_of_a_fake(bundles=False) as (client, fake):
        asked = [client.get(key, consistency="local") for key in ("a", "b", "c")]
        assert await asyncio.wait_for(asyncio.gather(*asked), 5) == ["good"] * 3
        assert fake.datagrams == ["whois", "read", "read", "read"]


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
    async with _client_of_a_fake(bundles=True) as (client, fake):
        asked = [client.get(f"k{i}", consistency="local") for i in range(40)]
        assert await asyncio.wait_for(asyncio.gather(*asked), 5) == ["good"] * 40
        assert fake.parts[1:] == [BUNDLE_REQUESTS, BUNDLE_REQUESTS, 40 - 2 * BUNDLE_REQUESTS]


# --- found in review: a client closed, a reply beside its timer, sends held up, short replies


async def _heard_silent_member(network: MemoryNetwork, client: Any) -> Any:
    """A member the client has heard say hello (reading bundles), which answers nothing."""
    silent = network.attach("fake")
    hello = protocol.Hello("voter", 1, 1, "fake", ("fake",), False, bundles=True)
    await silent.broadcast(protocol.encode_hello(hello))
    await asyncio.wait_for(client._heard_any.wait(), 5)
    return silent


async def _waiting_key(client: Any) -> tuple[Any, ...]:
    async with asyncio.timeout(5):
        while not client._waiting:
            await asyncio.sleep(0)
    (key,) = client._waiting
    return key  # type: ignore[no-any-return]


async def test_a_request_its_timer_woke_ends_at_once_when_the_client_closed_meanwhile() -> None:
    """close() ran after the retry timer woke the wait, before the wait resumed: the request
    was asked again into a client that sends nothing more, and waited out its whole
    timeout to end with NoQuorum rather than NodeClosed."""
    network = MemoryNetwork()
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    client = connect(config, transport=network.attach("client-1"))
    await client.start()
    await _heard_silent_member(network, client)
    writing = asyncio.create_task(client.set("k", 1))
    key = await _waiting_key(client)
    closing = asyncio.ensure_future(client.close())  # its first step runs before the wait's
    remote._wake_empty(client._waiting[key])  # as the retry timer does
    with pytest.raises(NodeClosed, match="may or may not have been applied"):
        await asyncio.wait_for(writing, 5)
    await closing


async def test_a_request_pausing_on_a_busy_member_ends_at_once_when_the_client_closes() -> None:
    network = MemoryNetwork()
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    client = connect(config, transport=network.attach("client-1"))
    await client.start()
    member = await _heard_silent_member(network, client)
    writing = asyncio.create_task(client.set("k", 1))
    key = await _waiting_key(client)
    busy = protocol.encode_runtime("fail", "rep", list(key[1:]), "no room", "busy")
    await member.send("client-1", busy)
    async with asyncio.timeout(5):  # taken: the write pauses before it asks again
        while client._waiting:
            await asyncio.sleep(0)
    await client.close()
    with pytest.raises(NodeClosed):
        await asyncio.wait_for(writing, 5)


async def test_a_reply_that_comes_in_the_turn_its_timer_fired_is_taken() -> None:
    """It found the wait already woken (empty) and was dropped: the request went to another
    member and waited a round more, or out its timeout if none answered."""
    network = MemoryNetwork()
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    transport = network.attach("client-1")
    async with connect(config, transport=transport) as client:
        await _heard_silent_member(network, client)
        sent = transport.stats.sent_frames
        reading = asyncio.create_task(client.get("k", consistency="local"))
        key = await _waiting_key(client)
        remote._wake_empty(client._waiting[key])  # the timer, then the reply, in one turn
        client._on_message("fake", "readrep", [key[1], 1, ["k", "v", 1, 1, 1, None], ""])
        assert await asyncio.wait_for(reading, 5) == "v"
        await asyncio.sleep(0)  # (a turn for a send asked again, had there been one)
        assert transport.stats.sent_frames == sent + 1  # asked once, not again
        assert client._early == {}


async def test_sends_a_full_socket_buffer_held_up_keep_their_order() -> None:
    network = MemoryNetwork()
    inner = network.attach("client-1")
    gate = asyncio.Event()
    order: list[bytes] = []

    class HeldUp:
        """The memory transport, but its first burst waits for ``gate``, as a full buffer."""

        held = True

        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        def send_soon(self, messages: list[tuple[str | None, bytes]]) -> Any:
            if self.held:
                self.held = False

                async def rest() -> None:
                    await gate.wait()
                    order.extend(payload for _, payload in messages)

                return rest()
            order.extend(payload for _, payload in messages)
            return None

        async def send_many(self, messages: list[tuple[str | None, bytes]]) -> None:
            order.extend(payload for _, payload in messages)

    config = MemoryCluster().config("client-1")
    client = connect(config, transport=HeldUp())  # type: ignore[arg-type]
    await client.start()
    first, second, third = (protocol.encode_runtime("status", i) for i in (1, 2, 3))
    client._post("fake", first)
    await asyncio.sleep(0)  # held up
    client._post("fake", second)
    await asyncio.sleep(0)  # behind it
    gate.set()
    client._post("fake", third)
    async with asyncio.timeout(5):
        while len(order) < 3:
            await asyncio.sleep(0)
    assert order == [first, second, third]
    await client.close()


async def test_a_reply_short_of_its_fields_does_not_stop_the_client_hearing() -> None:
    """``["rep"]`` raised IndexError in the receive loop, which ended it: every request
    after waited out its timeout (before bundles too)."""
    network = MemoryNetwork()
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    async with connect(config, transport=network.attach("client-1")) as client:
        member = await _heard_silent_member(network, client)
        asking = asyncio.create_task(client.status())
        key = await _waiting_key(client)
        good = protocol.encode_runtime("statusrep", key[1], {"node_id": "fake"}, [])
        short = protocol.encode_runtime("rep")
        await member.send("client-1", protocol.bundles([short, good], 60_000)[0])
        assert await asyncio.wait_for(asking, 5) == {"node_id": "fake"}
        await member.send("client-1", short)  # alone, as before bundles
        asking = asyncio.create_task(client.status())
        key = await _waiting_key(client)
        good = protocol.encode_runtime("statusrep", key[1], {"node_id": "fake"}, [])
        await member.send("client-1", good)
        assert await asyncio.wait_for(asking, 5) == {"node_id": "fake"}
