"""TIPC: addressing and framing everywhere; a live test where the kernel has TIPC."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from paxoskv.errors import TransportUnavailable
from paxoskv.transport import TipcTransport, TransportKind, TransportSettings, open_transport
from paxoskv.transport.frames import FrameCodec, FrameSealer
from paxoskv.transport.tipc import (
    TIPC_ADDR_ID,
    TIPC_ADDR_NAMESEQ,
    TIPC_MAX_DATAGRAM_BYTES,
    all_nodes_address,
    is_port_id,
    node_instance,
    service_address,
    tipc_unavailable_reason,
)

from .conftest import SECRET


class FakeSocket:
    """Records what the transport sends, so addressing is checked without a kernel."""

    def __init__(self, port_id: tuple[int, ...]) -> None:
        self.port_id = port_id
        self.sent: list[tuple[bytes, Any]] = []

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> Any:
        return self.port_id

    def recvfrom(self, size_bytes: int, /) -> tuple[bytes, Any]:
        raise BlockingIOError

    def sendto(self, data: bytes, address: Any, /) -> int:
        self.sent.append((data, address))
        return len(data)

    def close(self) -> None:
        pass


def test_instances_are_stable_and_spread() -> None:
    assert node_instance("node-1") == node_instance("node-1")
    instances = {node_instance(f"node-{i}") for i in range(1000)}
    assert len(instances) == 1000
    assert all(0 <= i < 2**32 for i in instances)


def test_service_and_port_addresses_have_the_socket_module_shape() -> None:
    assert service_address(5000, 7) == (TIPC_ADDR_NAMESEQ, 5000, 7, 7, 2)
    assert all_nodes_address(5000) == (TIPC_ADDR_NAMESEQ, 5000, 0, 0xFFFFFFFF, 2)
    assert is_port_id((TIPC_ADDR_ID, 0x1001001, 12345, 0, 0))
    assert not is_port_id(all_nodes_address(5000))
    assert not is_port_id(("10.0.0.1", 47475))


async def test_broadcast_goes_to_the_service_range_and_replies_to_the_port_id() -> None:
    settings = TransportSettings(kind=TransportKind.TIPC, secret=SECRET)
    fake = FakeSocket((TIPC_ADDR_ID, 0x1001001, 111, 0, 0))
    transport = TipcTransport("a", settings, fake)
    assert transport.max_payload_bytes < TIPC_MAX_DATAGRAM_BYTES
    await transport.broadcast(b"to all")
    assert fake.sent[-1][1] == all_nodes_address(settings.tipc.service_type)

    peer_port = (TIPC_ADDR_ID, 0x1001002, 222, 0, 0)
    frame = FrameSealer(FrameCodec("paxos-kv", SECRET), "b", 1).seal(b"hello")
    transport.datagram_received(frame, peer_port)
    assert await asyncio.wait_for(transport.receive(), 1.0) == ("b", b"hello")
    await transport.send("b", b"reply")
    datagram, address = fake.sent[-1]
    assert address == peer_port
    opened = FrameCodec("paxos-kv", SECRET).open(datagram)
    assert not isinstance(opened, str) and opened.body == b"reply"
    assert opened.destination == "b"
    await transport.close()


async def test_reported_peers_must_be_port_ids() -> None:
    transport = TipcTransport(
        "a", TransportSettings(kind="tipc"), FakeSocket((TIPC_ADDR_ID, 1, 1, 0, 0))
    )
    assert transport._acceptable_peer((TIPC_ADDR_ID, 5, 6, 0, 0))
    assert not transport._acceptable_peer(("127.0.0.1", 80))
    await transport.close()


TIPC_MISSING = tipc_unavailable_reason()


@pytest.mark.skipif(TIPC_MISSING is None, reason="TIPC works here; the live test covers it")
async def test_opening_without_kernel_support_says_what_is_missing() -> None:
    with pytest.raises(TransportUnavailable, match="tipc"):
        await open_transport("a", TransportSettings(kind="tipc"))


@pytest.mark.skipif(TIPC_MISSING is not None, reason=f"no TIPC here: {TIPC_MISSING}")
async def test_live_tipc_multicast_and_reply() -> None:  # pragma: no cover - needs the kernel
    settings = TransportSettings(kind="tipc", secret=SECRET)
    async with (
        await open_transport("a", settings) as a,
        await open_transport("b", settings) as b,
        await open_transport("c", settings) as c,
    ):
        await a.broadcast(b"to all")
        for other in (b, c):
            assert await asyncio.wait_for(other.receive(), 3.0) == ("a", b"to all")
        await b.send("a", b"reply")
        assert await asyncio.wait_for(a.receive(), 3.0) == ("b", b"reply")
        assert socket.AF_TIPC  # the kernel really carried these
