"""Transport configuration: frozen, validated at construction, with loopback as the default.

The runtime's ``Config`` builds a :class:`TransportSettings` from flags, ``PAXOS_KV_*``
variables or the TOML file and hands it to :func:`paxoskv.transport.open_transport`. Every
check happens here, in ``__post_init__``, so a bad setting fails at start-up with a message
that names it -- not as an ``OSError`` from deep inside a socket call.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import TYPE_CHECKING, TypeVar

from paxoskv.errors import ConfigurationError
from paxoskv.state.frozen_plain import PlainFrozen
from paxoskv.transport.frames import MIN_SECRET_BYTES
from paxoskv.transport.inbox import DEFAULT_INBOX_FRAMES
from paxoskv.transport.interfaces import DEFAULT_INTERFACE
from paxoskv.transport.replay import DEFAULT_WINDOW_FRAMES

if TYPE_CHECKING:  # imported when a chaos run asks for faults, not at every start
    from paxoskv.transport.faults import FaultSettings

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_GROUP_PORT",
    "UDP_MAX_DATAGRAM_BYTES",
    "TipcSettings",
    "TransportKind",
    "TransportSettings",
    "UdpScope",
    "UdpSettings",
    "parse_host_port",
]

DEFAULT_GROUP = "239.192.74.75"  # organisation-local scope (RFC 2365): never routed outside
DEFAULT_GROUP_PORT = 47475
UDP_MAX_DATAGRAM_BYTES = 65_507  # 65,535 minus the IPv4 and UDP headers
DEFAULT_TIPC_SERVICE_TYPE = 47_475  # types below 64 are reserved by TIPC itself


class TransportKind(enum.StrEnum):
    UDP = "udp"
    TIPC = "tipc"


class UdpScope(enum.StrEnum):
    MULTICAST = "multicast"  # one send reaches every node; the default
    BROADCAST = "broadcast"  # the interface's subnet broadcast address
    UNICAST = "unicast"  # one send per peer, for networks that route no multicast


def parse_host_port(text: str) -> tuple[str, int]:
    """``"10.0.0.5:47475"`` -> ``("10.0.0.5", 47475)``; IPv4 literals only, as we bind IPv4."""
    host, sep, port_text = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not 0 < port < 65536:
        raise ConfigurationError(f"peer {text!r} is not an IPv4 host:port such as 10.0.0.5:47475")
    return host, port


class UdpSettings(PlainFrozen):
    """UDP: one interface, one scope. ``port`` is this node's unicast port (0: any free one;
    the unicast scope needs a fixed one so that others can list it as a seed)."""

    __slots__ = (
        "gossip_interval_s",
        "group",
        "group_port",
        "interface",
        "max_datagram_bytes",
        "peers",
        "port",
        "receive_buffer_bytes",
        "scope",
        "ttl",
    )
    __match_args__ = (
        "scope",
        "interface",
        "group",
        "group_port",
        "port",
        "peers",
        "ttl",
        "max_datagram_bytes",
        "receive_buffer_bytes",
        "gossip_interval_s",
    )

    scope: UdpScope
    interface: str
    group: str
    group_port: int
    port: int
    peers: tuple[str, ...]
    ttl: int
    max_datagram_bytes: int
    receive_buffer_bytes: int
    gossip_interval_s: float

    def __init__(
        self,
        scope: UdpScope = UdpScope.MULTICAST,
        interface: str = DEFAULT_INTERFACE,
        group: str = DEFAULT_GROUP,
        group_port: int = DEFAULT_GROUP_PORT,
        port: int = 0,
        peers: tuple[str, ...] = (),
        ttl: int = 1,
        max_datagram_bytes: int = UDP_MAX_DATAGRAM_BYTES,
        receive_buffer_bytes: int = 4 * 1024 * 1024,
        gossip_interval_s: float = 2.0,
    ) -> None:
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "interface", interface)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "group_port", group_port)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "peers", peers)
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "max_datagram_bytes", max_datagram_bytes)
        object.__setattr__(self, "receive_buffer_bytes", receive_buffer_bytes)
        object.__setattr__(self, "gossip_interval_s", gossip_interval_s)
        self.__post_init__()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", _enum(UdpScope, self.scope, "udp scope"))
        object.__setattr__(self, "peers", tuple(self.peers))
        try:
            group = ipaddress.IPv4Address(self.group)
        except ValueError:
            group = None
        if self.scope is UdpScope.MULTICAST and (group is None or not group.is_multicast):
            raise ConfigurationError(
                f"multicast group {self.group!r} is not an IPv4 multicast address; use one in "
                "239.0.0.0/8 (organisation-local), such as the default " + DEFAULT_GROUP
            )
        for name in ("group_port", "port"):
            value = getattr(self, name)
            if not 0 <= value < 65536 or (name == "group_port" and value == 0):
                raise ConfigurationError(f"udp {name} {value} is not a valid port")
        if not 0 <= self.ttl <= 255:
            raise ConfigurationError(f"multicast ttl {self.ttl} must be 0..255")
        if not 1024 <= self.max_datagram_bytes <= UDP_MAX_DATAGRAM_BYTES:
            raise ConfigurationError(
                f"udp max_datagram_bytes must be 1024..{UDP_MAX_DATAGRAM_BYTES}, "
                f"not {self.max_datagram_bytes}"
            )
        if self.gossip_interval_s <= 0:
            raise ConfigurationError("udp gossip_interval_s must be positive")
        if self.scope is UdpScope.UNICAST and not self.peers and self.port == 0:
            raise ConfigurationError(
                "unicast scope needs peers (seed host:port addresses) or a fixed port that "
                "other nodes list as their seed"
            )
        for peer in self.peers:
            parse_host_port(peer)
        if self.peers and self.scope is not UdpScope.UNICAST:
            raise ConfigurationError(
                f"peers are the unicast scope's seeds; with scope {self.scope.value} they "
                "would be ignored: set scope to unicast, or leave peers out"
            )

    def seed_addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple(parse_host_port(peer) for peer in self.peers)


class TipcSettings(PlainFrozen):
    """TIPC: every node of the cluster binds the same service type; its instance is derived
    from the node id, and "all" is the whole instance range of that type."""

    __slots__ = ("service_type",)
    __match_args__ = ("service_type",)

    service_type: int

    def __init__(self, service_type: int = DEFAULT_TIPC_SERVICE_TYPE) -> None:
        object.__setattr__(self, "service_type", service_type)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not 64 <= self.service_type < 2**32:
            raise ConfigurationError(
                f"tipc service_type {self.service_type} must be 64..2**32-1 (0..63 are TIPC's)"
            )


class TransportSettings(PlainFrozen):
    """Everything a node's transport needs. ``secret`` turns on HMAC-SHA256 tags and replay
    windows; ``encrypt`` additionally hides bodies with AES-GCM; ``faults`` wraps the
    transport in :class:`FaultyTransport` for chaos runs. ``udp`` and ``tipc`` left out (None)
    are each a fresh default; the secret stays out of the ``repr``."""

    __slots__ = (
        "cluster",
        "encrypt",
        "faults",
        "inbox_frames",
        "incarnation",
        "kind",
        "replay_window_frames",
        "secret",
        "tipc",
        "udp",
    )
    __match_args__ = (
        "kind",
        "cluster",
        "secret",
        "encrypt",
        "incarnation",
        "inbox_frames",
        "replay_window_frames",
        "udp",
        "tipc",
        "faults",
    )

    kind: TransportKind
    cluster: str
    secret: bytes | str | None
    encrypt: bool
    incarnation: int | None
    inbox_frames: int
    replay_window_frames: int
    udp: UdpSettings
    tipc: TipcSettings
    faults: FaultSettings | None

    def __init__(
        self,
        kind: TransportKind = TransportKind.UDP,
        cluster: str = "paxos-kv",
        secret: bytes | str | None = None,
        encrypt: bool = False,
        incarnation: int | None = None,
        inbox_frames: int = DEFAULT_INBOX_FRAMES,
        replay_window_frames: int = DEFAULT_WINDOW_FRAMES,
        udp: UdpSettings | None = None,
        tipc: TipcSettings | None = None,
        faults: FaultSettings | None = None,
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "cluster", cluster)
        object.__setattr__(self, "secret", secret)
        object.__setattr__(self, "encrypt", encrypt)
        object.__setattr__(self, "incarnation", incarnation)
        object.__setattr__(self, "inbox_frames", inbox_frames)
        object.__setattr__(self, "replay_window_frames", replay_window_frames)
        object.__setattr__(self, "udp", UdpSettings() if udp is None else udp)
        object.__setattr__(self, "tipc", TipcSettings() if tipc is None else tipc)
        object.__setattr__(self, "faults", faults)
        self.__post_init__()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__match_args__ if name != "secret"
        )
        return f"{self.__class__.__qualname__}({shown})"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(TransportKind, self.kind, "transport kind"))
        if isinstance(self.secret, str):
            object.__setattr__(self, "secret", self.secret.encode("utf-8"))
        if self.secret is not None and len(self.secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"the cluster secret must be at least {MIN_SECRET_BYTES} bytes; generate one "
                "with `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if self.encrypt and self.secret is None:
            raise ConfigurationError("encrypt needs a cluster secret: set secret too")
        if not self.cluster:
            raise ConfigurationError("cluster name must not be empty")
        if self.inbox_frames < 1 or self.replay_window_frames < 1:
            raise ConfigurationError("inbox_frames and replay_window_frames must be at least 1")


_E = TypeVar("_E", bound=enum.StrEnum)


def _enum(kind: type[_E], value: object, what: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ConfigurationError(f"{what} {value!r} is not one of: {choices}") from None
