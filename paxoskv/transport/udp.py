"""UDP: multicast, subnet broadcast, or a unicast peer list, on one interface.

Every node has two sockets (the scheme of SWI-Prolog's ``udp_broadcast``):

* a **unicast socket** bound to the interface address and the node's own port. It sends
  everything -- so the source address of every frame, even a multicast one, is this node's
  unicast address, and peers learn where to reply from ``recvfrom`` alone -- and it receives
  point-to-point frames, so replies to the leader do not load every node;
* a **group socket** for what is sent to all: bound to the multicast group and port (joined on
  the interface only) or to the interface's broadcast address. Several nodes on one host
  share the group port (``SO_REUSEADDR``/``SO_REUSEPORT``; for multicast and broadcast the
  kernel gives each of them a copy). The unicast scope has no group socket: a broadcast is one
  send per known peer, and peers learn the peer list from each other (peers.py).

Multicast leaves through the named interface only (``IP_MULTICAST_IF``), with loopback on (so
nodes on one host hear each other) and a TTL of 1 by default (the local subnet).
``IP_MULTICAST_ALL`` is turned off so a socket hears only the groups it joined itself. The
default interface is loopback; even with lo lacking the MULTICAST flag, Linux delivers
multicast over it when the sending socket names 127.0.0.1 as its interface.

Each socket is drained on every wake-up of the event loop and each datagram goes straight to
the shared receive path (sockio.py says why this is not asyncio-dgram, and endpoint.py what
the receive path checks).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import sys

from paxoskv.errors import ConfigurationError
from paxoskv.transport.base import Address
from paxoskv.transport.endpoint import FramedEndpoint
from paxoskv.transport.frames import FrameCodec
from paxoskv.transport.interfaces import Interface, resolve_interface
from paxoskv.transport.settings import TransportSettings, UdpScope, UdpSettings
from paxoskv.transport.sockio import SocketReader, drop_own_echo

__all__ = ["UdpTransport"]

log = logging.getLogger("paxoskv.transport")

_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux; absent from older Pythons
_warned_unprotected: set[str] = set()


class UdpTransport(FramedEndpoint):
    """A node's UDP endpoint. Create it with ``await UdpTransport.open(node_id, settings)``."""

    def __init__(
        self,
        node_id: str,
        settings: TransportSettings,
        interface: Interface,
        unicast: socket.socket,
        group: socket.socket | None,
    ) -> None:
        udp = settings.udp
        own_address: Address = tuple(unicast.getsockname())
        unicast_scope = udp.scope is UdpScope.UNICAST
        super().__init__(
            node_id,
            FrameCodec(
                settings.cluster,
                settings.secret,
                encrypt=settings.encrypt,
                max_datagram_bytes=udp.max_datagram_bytes,
            ),
            own_address,
            unicast,
            seeds=udp.seed_addresses() if unicast_scope else (),
            gossip_interval_s=udp.gossip_interval_s if unicast_scope else None,
            incarnation=settings.incarnation,
            inbox_frames=settings.inbox_frames,
            replay_window_frames=settings.replay_window_frames,
        )
        self.interface = interface
        self.scope = udp.scope
        self._unicast_scope = unicast_scope  # a bool: per frame, UdpScope.UNICAST costs 150 ns
        self._unicast = unicast
        self.echo_filtered = False
        self._sockets = [unicast] if group is None else [unicast, group]
        if group is not None:
            self.echo_filtered = drop_own_echo(group, (own_address[0], own_address[1]))  # type: ignore[arg-type]
        self._readers = [
            SocketReader(sock, self.datagrams_received, self._socket_error, udp.max_datagram_bytes)
            for sock in self._sockets
        ]
        self._group_address: list[Address] = []
        if udp.scope is UdpScope.MULTICAST:
            self._group_address = [(udp.group, udp.group_port)]
        elif udp.scope is UdpScope.BROADCAST and interface.broadcast is not None:
            self._group_address = [(interface.broadcast, udp.group_port)]
        if self._group_address:
            self._group_target = self._group_address[0]

    @classmethod
    async def open(cls, node_id: str, settings: TransportSettings) -> UdpTransport:
        udp = settings.udp
        interface = resolve_interface(udp.interface)
        if udp.scope is UdpScope.BROADCAST and interface.broadcast is None:
            raise ConfigurationError(
                f"interface {interface.name} ({interface.address}) has no broadcast address; "
                "give it one (`ip addr add ADDRESS/PREFIX brd + dev NAME`) or use the "
                "multicast or unicast scope"
            )
        if settings.secret is None and not interface.loopback:
            _warn_unprotected(interface)
        unicast = _unicast_socket(interface, udp)
        group = None
        try:
            group = _group_socket(interface, udp)
            transport = cls(node_id, settings, interface, unicast, group)
        except BaseException:
            unicast.close()
            if group is not None:
                group.close()
            raise
        transport._start()
        return transport

    def _start(self) -> None:
        for reader in self._readers:
            reader.start()
        self._start_gossip()

    def _broadcast_addresses(self) -> list[Address]:
        if self._unicast_scope:
            return self._peers.destinations()
        return self._group_address

    def _acceptable_peer(self, address: Address) -> bool:
        """A reported address must be an IPv4 host:port -- and loopback if we are."""
        if len(address) != 2 or not isinstance(address[0], str):
            return False
        host, port = address
        if not isinstance(port, int) or not 0 < port < 65536:
            return False
        try:
            parsed = ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return parsed.is_loopback or not self.interface.loopback

    def _close_sockets(self) -> None:
        for reader in self._readers:
            reader.stop()
        for sock in self._sockets:
            sock.close()


def _unicast_socket(interface: Interface, udp: UdpSettings) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _set_receive_buffer(sock, udp.receive_buffer_bytes)
        if udp.scope is UdpScope.MULTICAST:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface.address)
            )
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, udp.ttl)
        elif udp.scope is UdpScope.BROADCAST:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        _bind(sock, interface.address, udp.port, "--port")
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _group_socket(interface: Interface, udp: UdpSettings) -> socket.socket | None:
    if udp.scope is UdpScope.UNICAST:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        _set_receive_buffer(sock, udp.receive_buffer_bytes)
        if udp.scope is UdpScope.MULTICAST:
            _bind(sock, udp.group, udp.group_port, "the port of --group")
            membership = socket.inet_aton(udp.group) + socket.inet_aton(interface.address)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            if sys.platform == "linux":
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        else:
            assert interface.broadcast is not None, "checked in UdpTransport.open"
            _bind(sock, interface.broadcast, udp.group_port, "the port of --group")
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind(sock: socket.socket, host: str, port: int, setting: str) -> None:
    """Bind, or say which address and port could not be had: a bare "Address already in
    use" leaves the user guessing which of a node's sockets clashed."""
    try:
        sock.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"UDP address {host}:{port} is already in use (by another node or program); "
                f"choose another {setting}"
            ) from None
        raise OSError(error.errno, f"cannot bind UDP {host}:{port}: {error.strerror}") from None


def _set_receive_buffer(sock: socket.socket, size_bytes: int) -> None:
    """Ask for a deep buffer so a burst survives a busy event loop (the kernel may cap it)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size_bytes)
    except OSError as error:
        log.debug("SO_RCVBUF %d refused: %s", size_bytes, error)


def _warn_unprotected(interface: Interface) -> None:
    if interface.name in _warned_unprotected:
        return
    _warned_unprotected.add(interface.name)
    log.warning(
        "!!! paxos-kv is talking on %s (%s) WITHOUT a cluster secret: anyone who can reach "
        "this network can read the data and forge writes. Set a cluster secret (the "
        "transport's `secret` setting) before using it beyond a test. !!!",
        interface.name,
        interface.address,
    )
