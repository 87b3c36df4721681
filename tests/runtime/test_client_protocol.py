"""The client protocol end to end: a thin client (client mode) over the memory transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from paxoskv import ChangeEvent, Set, connect
from paxoskv.errors import NodeClosed, NoQuorum, PayloadTooLarge, UndecodableReply
from paxoskv.remote import Client
from paxoskv.runtime import protocol, serving
from paxoskv.runtime.clock import now as clock_now
from paxoskv.runtime.serving import ClientService
from paxoskv.state.command_wire import encode_command
from paxoskv.transport import MemoryNetwork
from tests.runtime.cluster import MemoryCluster, eventually

ODD_MAPS: list[Any] = [{1: "x"}, {("a",): 1}, {"x": {2: 3}}, {None: (1, (2,)), 2.5: [b"b"]}]


@pytest.fixture
async def client(memory_cluster: MemoryCluster) -> AsyncIterator[Client]:
    transport = memory_cluster.network.attach("client-1")
    async with connect(memory_cluster.config("client-1"), transport=transport) as client:
        yield client


async def _collect(client: Client, prefix: Any, count: int, **kwargs: Any) -> list[ChangeEvent]:
    events = []
    async for event in client.watch(prefix, **kwargs):
        events.append(event)
        if len(events) == count:
            break
    return events


async def test_values_with_non_str_map_keys_round_trip(client: Client) -> None:
    watcher = asyncio.create_task(_collect(client, ("odd",), len(ODD_MAPS)))
    await eventually(lambda: client._watch_queues, what="the watch to subscribe")
    revisions = [await client.set(("odd", str(i)), v) for i, v in enumerate(ODD_MAPS)]
    for i, value in enumerate(ODD_MAPS):
        assert await client.get(("odd", str(i))) == value
        assert await client.get(("odd", str(i)), consistency="local") == value
    assert await client.keys(("odd",)) == [("odd", str(i)) for i in range(len(ODD_MAPS))]
    assert [e.value for e in await client.items(("odd",))] == ODD_MAPS
    assert [e.value for e in await asyncio.wait_for(watcher, 5)] == ODD_MAPS
    resumed = await _collect(client, ("odd",), len(ODD_MAPS), from_revision=revisions[0])
    assert [e.value for e in resumed] == ODD_MAPS


async def test_a_value_over_a_datagram_is_read_whole(
    client: Client, memory_cluster: MemoryCluster
) -> None:
    bigs = {f"big/{i}": str(i) * 46_000 for i in range(5)}  # each about the largest request
    for key, value in bigs.items():
        await client.set(key, value)
    for key, value in bigs.items():
        assert await client.get(key) == value
    assert {e.key: e.value for e in await client.items("big/")} == bigs
    assert {e.key: e.value for e in await client.items("big/", consistency="local")} == bigs
    answered = [await n.status() for n in memory_cluster.nodes.values()]
    assert sum(s["replies_in_parts"] for s in answered) >= 2
    assert sum(s["sends_failed"] for s in answered) == 0


async def test_a_listing_of_many_keys_comes_in_parts(client: Client) -> None:
    for start in range(0, 3_000, 500):  # (at most 1,024 outstanding: the dedup window)
        await asyncio.gather(*(client.set(f"small/{i:04}", i) for i in range(start, start + 500)))
    keys = await client.keys("small/")
    assert keys == [f"small/{i:04}" for i in range(3_000)]
    assert len(await client.keys("small/", consistency="local")) == 3_000


async def test_an_overwrite_of_a_big_value_reaches_the_watcher(client: Client) -> None:
    first_write = await client.set("bigs/a", "a" * 40_000)
    watcher = asyncio.create_task(_collect(client, "bigs/", 2, from_revision=first_write + 1))
    await client.set("bigs/a", "b" * 40_000)
    await client.set("bigs/b", "c")
    first, second = await asyncio.wait_for(watcher, 5)
    assert (first.value, first.prev_value) == ("b" * 40_000, "a" * 40_000)
    assert second.value == "c"


async def test_a_watch_ends_with_no_quorum_when_the_cluster_is_gone() -> None:
    cluster = MemoryCluster()
    try:
        node = await cluster.start("w1", bootstrap_expect=1)
        await node.wait_ready(5)
        transport = cluster.network.attach("client-1")
        config = cluster.config("client-1", request_timeout_s=1.0)
        async with connect(config, transport=transport) as client:
            await client.set("a", 1)
            seen: list[ChangeEvent] = []

            async def follow() -> None:
                async for event in client.watch("a"):
                    seen.append(event)

            watcher = asyncio.create_task(follow())
            await eventually(lambda: client._watch_queues, what="the watch to subscribe")
            await client.set("a", 2)
            await eventually(lambda: seen, what="the first event")
            await cluster.stop("w1")
            with pytest.raises(NoQuorum, match="lost contact with the cluster"):
                await asyncio.wait_for(watcher, 10)
    finally:
        await cluster.close()


async def test_an_idle_watch_is_kept_alive(memory_cluster: MemoryCluster) -> None:
    """No change for several timeouts: the renewals' answers keep the watch going."""
    transport = memory_cluster.network.attach("client-1")
    config = memory_cluster.config("client-1", request_timeout_s=0.4)
    async with connect(config, transport=transport) as client:
        watcher = asyncio.create_task(_collect(client, "quiet", 1))
        await asyncio.wait({watcher}, timeout=1.5)  # nothing happens for almost 4 timeouts
        assert not watcher.done()
        await memory_cluster.nodes["n1"].set("quiet", 1)
        assert [e.value for e in await asyncio.wait_for(watcher, 5)] == [1]


class _FakeMember:
    """A member that says hello, then answers every request with bytes that do not decode."""

    def __init__(self, network: MemoryNetwork) -> None:
        self.transport = network.attach("fake")
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        hello = protocol.Hello("voter", 1, 1, "fake", ("fake",), False)
        await self.transport.broadcast(protocol.encode_hello(hello))
        bad = msgpack.ExtType(1, b"\xc1")  # a "tuple" that holds no array
        while True:
            sender, payload = await self.transport.receive()
            name, fields = protocol.decode_runtime(payload)
            if name == "read":
                reply = ["readrep", fields[0], 1, bad, ""]
            elif name == "watch":
                reply = ["events", fields[0], 0, 1, [["set", "k", bad, None, 1]]]
            else:
                continue
            await self.transport.send(sender, protocol.RUNTIME + msgpack.packb(reply))


async def test_a_reply_that_does_not_decode_is_an_error_not_a_timeout() -> None:
    network = MemoryNetwork()
    fake = _FakeMember(network)
    config = MemoryCluster().config("client-1", request_timeout_s=30.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            with pytest.raises(UndecodableReply, match="could not be read"):
                await asyncio.wait_for(client.get("k"), 5)
            with pytest.raises(UndecodableReply):
                await asyncio.wait_for(_collect(client, None, 1), 5)
    finally:
        fake.task.cancel()


async def test_malformed_client_messages_do_not_stop_a_node(
    memory_cluster: MemoryCluster,
) -> None:
    transport = memory_cluster.network.attach("rogue")
    inf = float("inf")  # int(inf) raised OverflowError, which stopped the member
    for name, fields in [
        ("req", [1]),
        ("read", ["x"]),
        ("watch", []),
        ("more", [None, "a"]),
        ("watch", [inf, None, 0]),
        ("watch", [7, None, 0, inf]),
        ("watch", [8, None, 1.5]),
        ("unwatch", [inf]),
        ("unwatch", []),  # IndexError, which no handler expected either (a fuzz, same session)
        ("status", []),
        ("more", []),
        ("hello", ["learner", 0, 0, "", [], False, inf]),
        ("hello", ["learner", inf, 0, "", [], False]),
    ]:
        await transport.send("n1", protocol.encode_runtime(name, *fields))
    await memory_cluster.nodes["n2"].set("after", 1)
    assert await memory_cluster.nodes["n1"].get("after") == 1
    assert memory_cluster.nodes["n1"].replica.failure is None


@pytest.mark.parametrize(("client_id", "seq"), [("rogue", -1), ("", 1)])
async def test_a_request_that_may_not_travel_does_not_take_good_ones_down_with_it(
    memory_cluster: MemoryCluster, client_id: str, seq: int
) -> None:
    """A member took a client's request with a negative seq (or no client id), and
    forwarded it with the requests beside it; the leader refused the whole Forward, and
    every resend of them again, so a write through that member waited its whole timeout
    (found by a fuzz of runtime messages, twenty-first session)."""
    leader = memory_cluster.leader() or await _a_leader(memory_cluster)
    follower = next(node for node in memory_cluster.nodes.values() if node is not leader)
    command = encode_command(Set("good", 1))
    bad = protocol.encode_runtime("req", client_id, seq, command)
    good = protocol.encode_runtime("req", "honest", 1, command)
    follower.replica._on_deliveries([("rogue", bad), ("rogue", good)])  # one step: one Forward
    await eventually(lambda: leader.replica.engine.state.get("good") is not None, 5, "applied")
    assert follower.replica.failure is None


async def _a_leader(cluster: MemoryCluster) -> Any:
    await eventually(lambda: cluster.leader() is not None, what="a leader")
    return cluster.leader()


async def test_a_reply_whose_parts_expired_is_asked_for_again(
    client: Client, memory_cluster: MemoryCluster
) -> None:
    bigs = {f"gone/{i}": str(i) * 40_000 for i in range(3)}
    for key, value in bigs.items():
        await client.set(key, value)
    forgotten: list[str] = []
    for node in memory_cluster.nodes.values():
        service, replica = node._service, node.replica
        assert service is not None
        handler = replica._runtime_handlers["more"]

        def forget_once(
            sender: str, fields: list[Any], handler: Any = handler, service: Any = service
        ) -> None:
            if not forgotten:  # as if the member had dropped the reply meanwhile
                forgotten.append(sender)
                service._parts.clear()
            handler(sender, fields)

        replica.on_runtime_message("more", forget_once)
    assert {e.key: e.value for e in await client.items("gone/")} == bigs
    assert forgotten


async def test_a_slow_consumer_is_not_taken_for_lost_contact(
    memory_cluster: MemoryCluster,
) -> None:
    """Time spent handling an event (here over request_timeout_s) is not silence."""
    transport = memory_cluster.network.attach("client-1")
    config = memory_cluster.config("client-1", request_timeout_s=0.4)
    async with connect(config, transport=transport) as client:
        seen: list[Any] = []

        async def consume() -> None:
            async for event in client.watch("slow"):
                seen.append(event.value)
                if len(seen) == 3:
                    return
                await asyncio.sleep(0.6)  # the consumer's own slow work on one event

        consumer = asyncio.create_task(consume())
        await eventually(lambda: client._watch_queues, what="the watch to subscribe")
        for i in range(3):
            await memory_cluster.nodes["n1"].set("slow", i)
        await asyncio.wait_for(consumer, 10)
        assert seen == [0, 1, 2]


class _PartsMember:
    """A member that answers a read in parts under part id 7; with ``restarted``, each
    ``more`` is answered from another reply of the same size under that id, as a member that
    restarted and counted its ids from 1 again would."""

    ROOM = 8000

    def __init__(self, network: MemoryNetwork, *, restarted: bool) -> None:
        self.transport = network.attach("fake")
        self.restarted = restarted
        self.replies: dict[int, bytes] = {}
        self.task = asyncio.create_task(self._serve())

    @staticmethod
    def reply(read_id: int, letter: str) -> bytes:
        row = ["k", letter * 30_000, 1, 1, 1, None]
        return protocol.encode_runtime("readrep", read_id, 1, row, "")

    async def _serve(self) -> None:
        hello = protocol.Hello("voter", 1, 1, "fake", ("fake",), False)
        await self.transport.broadcast(protocol.encode_hello(hello))
        read_id = 0
        while True:
            sender, payload = await self.transport.receive()
            name, fields = protocol.decode_runtime(payload)
            if name == "read":
                read_id, offset = fields[0], 0
            elif name == "more":
                offset = fields[1]
            else:
                continue
            sent_id = read_id + 1 if self.restarted and offset else read_id
            whole = self.reply(sent_id, "b" if sent_id != read_id else "a")
            self.replies[sent_id] = whole
            piece = whole[offset : offset + self.ROOM]
            part = ["readrep", [sent_id], 7, offset, len(whole), piece]
            await self.transport.send(sender, protocol.encode_runtime("part", *part))


async def test_parts_of_another_reply_are_not_stitched_in() -> None:
    network = MemoryNetwork()
    fake = _PartsMember(network, restarted=True)
    config = MemoryCluster().config("client-1", request_timeout_s=1.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            with pytest.raises(NoQuorum):  # never a value made of two replies
                await asyncio.wait_for(client.get("k"), 10)
    finally:
        fake.task.cancel()


async def test_two_fetches_of_one_part_both_get_it() -> None:
    network = MemoryNetwork()
    fake = _PartsMember(network, restarted=False)
    config = MemoryCluster().config("client-1", request_timeout_s=2.0)
    try:
        async with connect(config, transport=network.attach("client-1")) as client:
            await eventually(lambda: client._heard, what="the fake's hello")
            whole = _PartsMember.reply(0, "a")  # no read came: it serves read 0
            first = ["readrep", [0], 7, 0, len(whole), whole[: _PartsMember.ROOM]]
            fetches = [client._fetch_rest("fake", first) for _ in range(2)]
            assert await asyncio.wait_for(asyncio.gather(*fetches), 10) == [whole, whole]
    finally:
        fake.task.cancel()


async def test_part_ids_do_not_repeat_when_a_member_restarts(
    client: Client, memory_cluster: MemoryCluster
) -> None:
    bigs = {f"big/{i}": "x" * 46_000 for i in range(2)}  # a listing over one datagram
    for key, value in bigs.items():
        await client.set(key, value)
    node = memory_cluster.nodes["n1"]
    ids: list[set[int]] = []
    for _ in range(2):  # the member's client service as it starts, twice
        node._service = service = ClientService(node.replica)
        async with connect(
            memory_cluster.config("client-2"),
            transport=memory_cluster.network.attach(f"client-2-{len(ids)}"),
            node_id="n1",
        ) as pinned:
            assert {e.key: e.value for e in await pinned.items("big/")} == bigs
        ids.append(set(service._parts))
    assert ids[0] and ids[1] and ids[0].isdisjoint(ids[1])


async def test_an_answer_over_what_a_member_keeps_is_refused_with_its_limit(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        await client.set(f"huge/{i}", str(i) * 46_000)
    monkeypatch.setattr(serving, "PARTS_KEPT_BYTES", 100_000)
    with pytest.raises(PayloadTooLarge, match=r"100000 bytes.*narrower prefix") as caught:
        await client.items("huge/")
    assert caught.value.limit == 100_000 and caught.value.size > 100_000


async def test_answers_being_fetched_are_not_evicted_for_a_new_one(
    client: Client, memory_cluster: MemoryCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(2):
        await client.set(f"pair/{i}", str(i) * 46_000)
    monkeypatch.setattr(serving, "PARTS_KEPT_BYTES", 150_000)
    fetching = serving._Parts("other", "readrep", [1], b"x" * 100_000, clock_now() + 60)
    services = [node._service for node in memory_cluster.nodes.values()]
    for service in services:
        assert service is not None
        service._keep_parts(1, fetching)  # another client's listing, still being fetched
    config = memory_cluster.config("client-3", request_timeout_s=1.0)
    transport = memory_cluster.network.attach("client-3")
    async with connect(config, transport=transport) as brief:
        with pytest.raises(NoQuorum):  # every member full: refused, not another evicted
            await brief.items("pair/")
    assert all(s is not None and s._parts.get(1) is fetching for s in services)
    for service in services:
        assert service is not None
        del service._parts[1]
        service._parts_bytes -= len(fetching.payload)
    assert len(await client.items("pair/")) == 2  # room again: answered


async def test_an_idle_member_drops_expired_answers(
    client: Client, memory_cluster: MemoryCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(2):
        await client.set(f"idle/{i}", str(i) * 46_000)
    monkeypatch.setattr(serving, "PARTS_KEPT_S", 0.3)
    assert len(await client.items("idle/")) == 2
    services = [node._service for node in memory_cluster.nodes.values()]
    assert any(s is not None and s._parts for s in services)
    await eventually(
        lambda: all(s is not None and not s._parts and not s._parts_bytes for s in services),
        what="kept answers to expire with no write applied",
    )


async def test_a_watch_refused_as_busy_for_good_ends_with_no_quorum(
    memory_cluster: MemoryCluster,
) -> None:
    """A member whose room for replies in parts is full answers every push too big for a
    datagram with "busy". The client counted that as contact, renewed for good and never
    timed out: a burst of large events stalled `paxos-kv watch` past its --timeout, missing
    every later change (CLI audit, twenty-second session). Now it ends with NoQuorum, which
    says where to watch again from."""
    for node in memory_cluster.nodes.values():
        assert node._service is not None
        node._service._parts_bytes = (
            serving.PARTS_KEPT_BYTES
        )  # full: each reply in parts is refused
    config = memory_cluster.config("client-1", request_timeout_s=1.0)
    async with connect(config, transport=memory_cluster.network.attach("client-1")) as client:
        lease = await client.grant_lease(60)
        for i in (1, 2, 3):
            revision = await client.set(f"big/{i}", "v" * 30_000, lease=lease)
        watch = client.watch("big/", from_revision=revision)
        assert (await anext(watch)).key == "big/3"
        await client.revoke(lease)  # one revision of three deletes, 90 KB of prev values
        with pytest.raises(NoQuorum, match=f"from revision {revision + 1}"):
            await asyncio.wait_for(anext(watch), 10)


async def test_closing_a_client_says_a_waiting_writes_outcome_is_unknown(
    memory_cluster: MemoryCluster,
) -> None:
    """As a node's close does (CLI audit, twenty-second session)."""
    config = memory_cluster.config("client-1", request_timeout_s=30.0)
    client = Client(config, transport=memory_cluster.network.attach("client-1"))
    await client.start()
    await client.set("k", 1)
    memory_cluster.network.isolate("client-1")
    write = asyncio.create_task(client.set("k", 2))
    await eventually(lambda: client._waiting, what="the write to wait")
    await client.close()
    with pytest.raises(NodeClosed, match="may or may not have been applied"):
        await asyncio.wait_for(write, 5)
