"""TIPC: the cluster's own datagram fabric, where the kernel has it (``modprobe tipc``).

TIPC (Transparent Inter-Process Communication) addresses services, not hosts, which is the
idea of SWI-Prolog's ``tipc_broadcast``: every node binds one *service type* with an
*instance* of its own (derived from its node id), and a datagram sent to the whole instance
range of that type is multicast by the kernel to every node of the cluster. A reply goes to
the sender's *port id*, which ``recvfrom`` gives, so peers learn each other as with UDP.

Sockets are ``SOCK_RDM`` (reliable datagrams: TIPC retransmits on the link, but a receiver
whose buffer is full still loses messages, so Paxos's own retries stay necessary). The socket
is read and written as UDP's are (sockio.py; asyncio's own datagram endpoints would refuse a
``SOCK_RDM`` socket anyway). Frames, routing and counters are the shared ones (endpoint.py).

Addresses as the socket module spells them (``socket.AF_TIPC``)::

    (TIPC_ADDR_NAMESEQ, type, lower, upper, scope)   a service range: bind, and multicast
    (TIPC_ADDR_ID, node, ref, 0, scope)              a socket's port id: replies
"""

from __future__ import annotations

import hashlib
import socket

from paxoskv.errors import TransportUnavailable
from paxoskv.transport.base import Address
from paxoskv.transport.endpoint import FramedEndpoint
from paxoskv.transport.frames import FrameCodec
from paxoskv.transport.settings import TransportSettings
from paxoskv.transport.sockio import DatagramSocket, SocketReader

__all__ = [
    "TIPC_MAX_DATAGRAM_BYTES",
    "TipcTransport",
    "all_nodes_address",
    "is_port_id",
    "node_instance",
    "service_address",
    "tipc_unavailable_reason",
]

# The kernel's values, for platforms whose socket module lacks the names (all but Linux).
AF_TIPC: int = getattr(socket, "AF_TIPC", 30)
TIPC_ADDR_NAMESEQ: int = getattr(socket, "TIPC_ADDR_NAMESEQ", 1)
TIPC_ADDR_ID: int = getattr(socket, "TIPC_ADDR_ID", 3)
TIPC_CLUSTER_SCOPE: int = getattr(socket, "TIPC_CLUSTER_SCOPE", 2)
SOCK_RDM: int = getattr(socket, "SOCK_RDM", 4)
TIPC_MAX_DATAGRAM_BYTES = 66_000  # TIPC_MAX_USER_MSG_SIZE in linux/tipc.h
_ALL_INSTANCES = 0xFFFF_FFFF


def node_instance(node_id: str) -> int:
    """A node's instance number: stable across restarts, spread over the 32-bit range.

    Two ids that hash alike only publish the same instance twice; the port id still tells
    their sockets apart, so nothing breaks.
    """
    digest = hashlib.blake2b(node_id.encode("utf-8"), digest_size=4, person=b"paxoskv-tipc")
    return int.from_bytes(digest.digest(), "big")


def service_address(service_type: int, instance: int) -> Address:
    """Where a node binds: its own instance of the cluster's service type."""
    return (TIPC_ADDR_NAMESEQ, service_type, instance, instance, TIPC_CLUSTER_SCOPE)


def all_nodes_address(service_type: int) -> Address:
    """Where a broadcast goes: every instance of the service type, cluster-wide."""
    return (TIPC_ADDR_NAMESEQ, service_type, 0, _ALL_INSTANCES, TIPC_CLUSTER_SCOPE)


def is_port_id(address: Address) -> bool:
    """Whether ``address`` names one socket (a reply address) rather than a service."""
    return (
        len(address) >= 3
        and address[0] == TIPC_ADDR_ID
        and all(isinstance(part, int) and not isinstance(part, bool) for part in address)
    )


def tipc_unavailable_reason() -> str | None:
    """None where TIPC sockets work; otherwise what is missing, in words."""
    if not hasattr(socket, "AF_TIPC"):
        return "this Python's socket module has no AF_TIPC (TIPC is Linux only)"
    try:
        probe = socket.socket(AF_TIPC, SOCK_RDM)
    except OSError as error:
        return f"the kernel has no TIPC ({error.strerror}); load it with `modprobe tipc`"
    probe.close()
    return None


class TipcTransport(FramedEndpoint):
    """A node's TIPC endpoint. Create it with ``await TipcTransport.open(node_id, settings)``."""

    def __init__(self, node_id: str, settings: TransportSettings, sock: DatagramSocket) -> None:
        own_address: Address = tuple(sock.getsockname())
        super().__init__(
            node_id,
            FrameCodec(
                settings.cluster,
                settings.secret,
                encrypt=settings.encrypt,
                max_datagram_bytes=TIPC_MAX_DATAGRAM_BYTES,
            ),
            own_address,
            sock,
            incarnation=settings.incarnation,
            inbox_frames=settings.inbox_frames,
            replay_window_frames=settings.replay_window_frames,
        )
        self.service_type = settings.tipc.service_type
        self._sock = sock
        self._reader = SocketReader(
            sock, self.datagrams_received, self._socket_error, TIPC_MAX_DATAGRAM_BYTES
        )
        self._all = [all_nodes_address(self.service_type)]
        self._group_target = self._all[0]

    @classmethod
    async def open(cls, node_id: str, settings: TransportSettings) -> TipcTransport:
        reason = tipc_unavailable_reason()
        if reason is not None:
            raise TransportUnavailable(f"cannot use the tipc transport: {reason}; or use udp")
        sock = socket.socket(AF_TIPC, SOCK_RDM)
        try:
            sock.bind(service_address(settings.tipc.service_type, node_instance(node_id)))
            sock.setblocking(False)
            transport = cls(node_id, settings, sock)
        except BaseException:
            sock.close()
            raise
        transport._start()
        return transport

    def _start(self) -> None:
        self._reader.start()

    def _broadcast_addresses(self) -> list[Address]:
        return self._all

    def _acceptable_peer(self, address: Address) -> bool:
        return is_port_id(address)

    def _close_sockets(self) -> None:
        self._reader.stop()
        self._sock.close()
