"""UDP on 127.0.0.1: multicast, broadcast and unicast delivery among several endpoints.

Every test has its own multicast group and ports (conftest.py), so parallel runs never hear
each other. Nothing here leaves loopback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from paxoskv.errors import ConfigurationError, PayloadTooLarge, TransportClosed
from paxoskv.transport import (
    DropReason,
    TransportSettings,
    UdpScope,
    UdpSettings,
    UdpTransport,
)
from paxoskv.transport.sockio import drop_own_echo

from .conftest import SECRET, free_udp_port, fresh_group, wait_until

Settings = Callable[..., TransportSettings]


@asynccontextmanager
async def nodes(
    settings: TransportSettings | list[TransportSettings], *names: str
) -> AsyncIterator[list[UdpTransport]]:
    each = settings if isinstance(settings, list) else [settings] * len(names)
    async with AsyncExitStack() as stack:
        opened = []
        for name, setting in zip(names, each, strict=True):
            opened.append(await stack.enter_async_context(await UdpTransport.open(name, setting)))
        yield opened


async def receive_all(transports: list[UdpTransport]) -> list[tuple[str, bytes]]:
    return [tuple(await asyncio.wait_for(t.receive(), 3.0)) for t in transports]  # type: ignore[misc]


@pytest.mark.parametrize("scope", [UdpScope.MULTICAST, UdpScope.BROADCAST])
async def test_one_send_reaches_every_other_node(group_settings: Settings, scope: UdpScope) -> None:
    async with nodes(group_settings(scope, secret=SECRET), "a", "b", "c", "d") as (a, *others):
        await a.broadcast(b"to all")
        assert await receive_all(others) == [("a", b"to all")] * 3
        assert a.stats.sent_frames == 1  # one datagram, whatever the number of nodes
        await others[0].send("a", b"ack")
        # The echo of a's broadcast reached a's group socket before b even received it; if
        # it were delivered it would be first in line. A broadcast never returns to its sender.
        assert await asyncio.wait_for(a.receive(), 3.0) == ("b", b"ack")
        assert a.echo_filtered == (sys.platform == "linux")


async def test_unicast_scope_fills_the_peer_table_from_one_seed() -> None:
    seed_port = free_udp_port()
    seed = TransportSettings(secret=SECRET, udp=UdpSettings(scope=UdpScope.UNICAST, port=seed_port))
    joiner = TransportSettings(
        secret=SECRET,
        udp=UdpSettings(scope=UdpScope.UNICAST, peers=(f"127.0.0.1:{seed_port}",)),
    )
    async with nodes([seed, joiner, joiner, joiner], "a", "b", "c", "d") as everyone:
        await wait_until(lambda: all(len(t.peers) == 3 for t in everyone))
        d = everyone[3]
        await d.broadcast(b"from d")
        assert await receive_all(everyone[:3]) == [("d", b"from d")] * 3
        assert d.stats.sent_frames >= 3  # one send per peer: no group here


async def test_replies_go_point_to_point_once_the_address_is_known(
    group_settings: Settings,
) -> None:
    async with nodes(group_settings(), "a", "b", "c") as (a, b, c):
        await a.broadcast(b"hello")
        await receive_all([b, c])
        assert b.peers["a"] == a.local_address
        await b.send("a", b"reply")
        assert await asyncio.wait_for(a.receive(), 3.0) == ("b", b"reply")
        await a.broadcast(b"marker")  # c sees it after anything b's reply could have caused
        assert await asyncio.wait_for(c.receive(), 3.0) == ("a", b"marker")
        assert c.stats.dropped[DropReason.OTHER_DESTINATION] == 0


async def test_send_to_a_node_not_yet_heard_from_goes_by_the_group(
    group_settings: Settings,
) -> None:
    async with nodes(group_settings(), "a", "b", "c") as (a, b, c):
        assert "b" not in c.peers
        await c.send("b", b"first contact")
        assert await asyncio.wait_for(b.receive(), 3.0) == ("c", b"first contact")
        await wait_until(lambda: a.stats.dropped[DropReason.OTHER_DESTINATION] == 1)
        assert a.stats.received_frames == 0


async def test_send_to_oneself_is_delivered_locally(group_settings: Settings) -> None:
    async with nodes(group_settings(), "a") as (a,):
        await a.send("a", b"note to self")
        assert await asyncio.wait_for(a.receive(), 1.0) == ("a", b"note to self")


async def test_the_largest_payload_travels_and_one_byte_more_is_refused(
    group_settings: Settings,
) -> None:
    async with nodes(group_settings(secret=SECRET), "a", "b") as (a, b):
        await b.broadcast(b"learn me")
        await a.receive()
        payload = bytes(range(256)) * (a.max_payload_bytes // 256) + b"x" * (
            a.max_payload_bytes % 256
        )
        await a.send("b", payload)
        assert await asyncio.wait_for(b.receive(), 3.0) == ("a", payload)
        with pytest.raises(PayloadTooLarge, match=f"limit of {a.max_payload_bytes} bytes"):
            await a.broadcast(payload + b"!")


async def test_a_node_with_another_secret_hears_nothing_and_says_why(
    group_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = [
        group_settings(secret=SECRET),
        group_settings(secret=b"a-different-secret-of-32-bytes!!"),
        group_settings(secret=SECRET),
    ]
    with caplog.at_level(logging.WARNING, logger="paxoskv.transport"):
        async with nodes(settings, "a", "stranger", "c") as (a, stranger, c):
            for text in (b"private", b"still private"):
                await a.broadcast(text)
                assert await asyncio.wait_for(c.receive(), 3.0) == ("a", text)
            await wait_until(lambda: stranger.stats.dropped[DropReason.BAD_TAG] == 2)
            assert stranger.stats.received_frames == 0
    assert caplog.text.count("give every node the same secret") == 1  # once per source


async def test_another_cluster_on_the_same_group_is_ignored(group_settings: Settings) -> None:
    settings = [group_settings(cluster="blue"), group_settings(cluster="green")]
    async with nodes(settings, "a", "b") as (a, b):
        await a.broadcast(b"blue news")
        await wait_until(lambda: b.stats.dropped[DropReason.FOREIGN_CLUSTER] == 1)
        assert b.stats.received_frames == 0


async def test_a_recorded_frame_sent_again_is_dropped(group_settings: Settings) -> None:
    settings = group_settings(secret=SECRET)
    udp = settings.udp
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as recorder:
        recorder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        recorder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        recorder.bind((udp.group, udp.group_port))
        membership = socket.inet_aton(udp.group) + socket.inet_aton("127.0.0.1")
        recorder.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        recorder.settimeout(3.0)
        async with nodes(settings, "a", "b") as (a, b):
            await a.broadcast(b"pay 10 euros")
            assert await asyncio.wait_for(b.receive(), 3.0) == ("a", b"pay 10 euros")
            recorded = await asyncio.to_thread(recorder.recv, 70_000)
            recorder.sendto(recorded, b.local_address)  # type: ignore[arg-type]
            await wait_until(lambda: b.stats.dropped[DropReason.REPLAYED] == 1)
            assert b.stats.received_frames == 1


async def test_an_encrypted_cluster_delivers(group_settings: Settings) -> None:
    async with nodes(group_settings(secret=SECRET, encrypt=True), "a", "b") as (a, b):
        await a.broadcast(b"hidden")
        assert await asyncio.wait_for(b.receive(), 3.0) == ("a", b"hidden")
        await a.send("b", b"hidden too")
        assert await asyncio.wait_for(b.receive(), 3.0) == ("a", b"hidden too")


async def test_a_full_inbox_drops_the_newest_and_counts_it(group_settings: Settings) -> None:
    settings = [group_settings(), group_settings(inbox_frames=2)]
    async with nodes(settings, "a", "slow") as (a, slow):
        for index in range(5):
            await a.broadcast(bytes([index]))
        await wait_until(lambda: slow.stats.dropped[DropReason.OVERFLOW] == 3)
        assert [await slow.receive() for _ in range(2)] == [("a", b"\x00"), ("a", b"\x01")]


async def test_close_wakes_a_waiting_receive_and_refuses_more_sends(
    group_settings: Settings,
) -> None:
    a = await UdpTransport.open("a", group_settings())
    waiting = asyncio.create_task(a.receive())
    await asyncio.sleep(0)  # let the task start waiting, so close() has someone to wake
    await a.close()
    with pytest.raises(TransportClosed):
        await asyncio.wait_for(waiting, 1.0)
    with pytest.raises(TransportClosed):
        await a.broadcast(b"too late")
    await a.close()  # closing twice is harmless


async def test_two_processes_with_one_id_are_reported(
    group_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="paxoskv.transport"):
        async with nodes(group_settings(), "twin", "twin") as (first, second):
            await first.broadcast(b"who am i")
            await wait_until(lambda: second.stats.dropped[DropReason.OWN_ECHO] == 1)
    assert "sends as node id 'twin'" in caplog.text


async def test_the_interface_can_be_named_by_address(group_settings: Settings) -> None:
    base = group_settings()
    by_address = TransportSettings(
        udp=UdpSettings(group=base.udp.group, group_port=base.udp.group_port, interface="127.0.0.1")
    )
    async with nodes([base, by_address], "a", "b") as (a, b):
        assert b.interface.name == "lo"
        await b.broadcast(b"hi")
        assert await asyncio.wait_for(a.receive(), 3.0) == ("b", b"hi")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UdpSettings(group="10.0.0.1"), "not an IPv4 multicast address"),
        (lambda: UdpSettings(scope="unicast"), "needs peers"),
        (lambda: UdpSettings(scope="anycast"), "is not one of"),
        (lambda: UdpSettings(scope="unicast", peers=("localhost:1",)), "not an IPv4 host:port"),
        (lambda: UdpSettings(ttl=256), "ttl"),
        (lambda: TransportSettings(secret=b"short"), "at least 16 bytes"),
        (lambda: TransportSettings(encrypt=True), "needs a cluster secret"),
    ],
)
def test_bad_settings_fail_at_construction_with_a_message(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


async def test_an_unknown_interface_is_a_configuration_error() -> None:
    settings = TransportSettings(udp=UdpSettings(interface="no-such-if0"))
    with pytest.raises(ConfigurationError, match="no interface named 'no-such-if0'"):
        await UdpTransport.open("a", settings)


async def test_broadcast_scope_needs_an_interface_with_a_broadcast_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An address added without `brd` has none; netifaces then echoes the address itself."""
    import netifaces

    entry = {"addr": "10.9.9.1", "netmask": "255.255.255.0", "broadcast": "10.9.9.1"}
    monkeypatch.setattr(netifaces, "interfaces", lambda: ["veth-x"])
    monkeypatch.setattr(netifaces, "ifaddresses", lambda name: {netifaces.AF_INET: [entry]})
    settings = TransportSettings(udp=UdpSettings(scope=UdpScope.BROADCAST, interface="veth-x"))
    with pytest.raises(ConfigurationError, match="has no broadcast address"):
        await UdpTransport.open("a", settings)


def test_the_echo_filter_drops_exactly_our_own_datagrams() -> None:
    """The kernel filter: from our unicast address dropped, from any other port kept."""
    group, port = fresh_group(), free_udp_port()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as theirs,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as member,
    ):
        for sender in (ours, theirs):
            sender.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1")
            )
            sender.bind(("127.0.0.1", 0))
        member.bind((group, port))
        membership = socket.inet_aton(group) + socket.inet_aton("127.0.0.1")
        member.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        member.settimeout(3.0)
        if not drop_own_echo(member, ours.getsockname()):
            pytest.skip("no socket filters on this platform")
        ours.sendto(b"echo", (group, port))
        theirs.sendto(b"peer", (group, port))
        ours.sendto(b"echo again", (group, port))
        theirs.sendto(b"peer again", (group, port))
        # One socket queue is first in, first out: had an echo got through, it would be here.
        assert [member.recv(100), member.recv(100)] == [b"peer", b"peer again"]


async def test_a_port_in_use_names_the_address_and_port(group_settings: Settings) -> None:
    """Before, only "Address already in use": which of the node's sockets clashed?"""
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        base = group_settings()
        settings = TransportSettings(
            cluster=base.cluster,
            udp=UdpSettings(group=base.udp.group, group_port=base.udp.group_port, port=port),
        )
        with pytest.raises(
            ConfigurationError, match=f"UDP address 127.0.0.1:{port} is already in use"
        ):
            await UdpTransport.open("a", settings)
    finally:
        taken.close()
