"""Which network interface a node talks on, given by name (``lo``, ``eth1``) or by address.

Names are resolved with netifaces (netifaces-plus), which reads the kernel's view the same way
on Linux and the BSDs. An address is looked up among the interfaces too, because broadcast
needs the interface's netmask and multicast needs to know whether it is loopback.

The default everywhere is loopback: a fresh install talks only to itself until someone names
a real interface on purpose.
"""

from __future__ import annotations

import ipaddress

import netifaces

from paxoskv.errors import ConfigurationError
from paxoskv.state.frozen_plain import PlainFrozen

__all__ = ["DEFAULT_INTERFACE", "Interface", "resolve_interface"]

DEFAULT_INTERFACE = "lo"


class Interface(PlainFrozen):
    """One IPv4 address of one interface, with what broadcast and multicast need of it."""

    __slots__ = ("address", "broadcast", "name", "netmask")
    __match_args__ = ("name", "address", "netmask", "broadcast")

    name: str
    address: str
    netmask: str
    broadcast: str | None  # None: the interface has no broadcast address configured

    def __init__(self, name: str, address: str, netmask: str, broadcast: str | None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "netmask", netmask)
        object.__setattr__(self, "broadcast", broadcast)

    @property
    def loopback(self) -> bool:
        return ipaddress.IPv4Address(self.address).is_loopback


def resolve_interface(name_or_address: str = DEFAULT_INTERFACE) -> Interface:
    """The interface named, or owning the address given; ConfigurationError if none does."""
    if _is_ipv4(name_or_address):
        for name in netifaces.interfaces():
            for interface in _ipv4_of(name):
                if interface.address == name_or_address:
                    return interface
        raise ConfigurationError(
            f"no interface has the address {name_or_address}; addresses here: "
            f"{', '.join(_all_addresses()) or 'none'}"
        )
    if name_or_address not in netifaces.interfaces():
        raise ConfigurationError(
            f"no interface named {name_or_address!r}; interfaces here: "
            f"{', '.join(netifaces.interfaces())}"
        )
    found = _ipv4_of(name_or_address)
    if not found:
        raise ConfigurationError(
            f"interface {name_or_address!r} has no IPv4 address; give it one or choose another"
        )
    return found[0]


def _ipv4_of(name: str) -> list[Interface]:
    entries = netifaces.ifaddresses(name).get(netifaces.AF_INET, [])
    found = []
    for entry in entries:
        address = entry.get("addr")
        netmask = entry.get("netmask") or "255.255.255.255"
        if not address:
            continue
        broadcast = entry.get("broadcast")
        if broadcast is None and "peer" in entry:
            # netifaces shows loopback's broadcast as a "peer"; the kernel routes the
            # subnet's broadcast address (127.255.255.255) to lo all the same.
            network = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
            broadcast = str(network.broadcast_address)
        elif broadcast == address:
            # An address added without `brd`: netifaces echoes the address, and the kernel
            # has no broadcast route, so the subnet's .255 would not be a broadcast at all.
            broadcast = None
        found.append(Interface(name, address, netmask, broadcast))
    return found


def _all_addresses() -> list[str]:
    return [i.address for name in netifaces.interfaces() for i in _ipv4_of(name)]


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True
