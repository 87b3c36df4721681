"""Who is where: node ids mapped to unicast addresses, learned from traffic and from each other.

Every transport learns a peer's address from the frames it sends (the id is in the frame, the
address comes from ``recvfrom``), so point-to-point replies need no configuration. Where the
network routes no multicast (most clouds) the unicast scope also has to know whom to send a
"broadcast" to; there a node starts from one or more seed addresses and the nodes tell each
other the peers they know (``PEERS`` frames), so the table fills in without a full list.

Trust order: what a peer's own frame shows (``learn_direct``) always wins over what another
peer reports (``learn_reported``), and a report never overwrites an entry. That keeps two
peers with different stale views from flipping a third back and forth forever; a node that
moved is corrected as soon as it sends anything itself.

Pure (no sockets): the gossip and its convergence are tested without a network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgpack

from paxoskv.transport.base import Address

__all__ = ["PeerTable", "decode_peer_list", "encode_peer_list"]

_MAX_REPORTED_PEERS = 1024


class PeerTable:
    """Addresses of the other nodes, plus seed addresses whose owners are not known yet."""

    def __init__(self, own_id: str, own_address: Address, seeds: Iterable[Address] = ()) -> None:
        self.own_id = own_id
        self.own_address = own_address
        self._seeds = [seed for seed in dict.fromkeys(seeds) if seed != own_address]
        self._addresses: dict[str, Address] = {}
        self._direct: set[str] = set()

    @property
    def addresses(self) -> Mapping[str, Address]:
        """The live table, read-only: the receive path checks a sender's address with one
        ``get`` on it per datagram, instead of a call into this class."""
        return self._addresses

    def address_of(self, node_id: str) -> Address | None:
        return self._addresses.get(node_id)

    def as_mapping(self) -> Mapping[str, Address]:
        return dict(self._addresses)

    def learn_direct(self, node_id: str, address: Address) -> bool:
        """Record what a frame from ``node_id`` showed; True if the table changed."""
        if node_id == self.own_id:
            return False
        self._direct.add(node_id)
        if self._addresses.get(node_id) == address:
            return False
        self._addresses[node_id] = address
        return True

    def learn_reported(self, entries: Iterable[tuple[str, Address]]) -> bool:
        """Fill in peers another node told us of; True if any was new to us."""
        changed = False
        for node_id, address in entries:
            if node_id == self.own_id or node_id in self._addresses:
                continue
            self._addresses[node_id] = address
            changed = True
        return changed

    def forget(self, node_id: str) -> None:
        """Stop sending to a node that left the cluster for good."""
        self._addresses.pop(node_id, None)
        self._direct.discard(node_id)

    def destinations(self) -> list[Address]:
        """Every address a broadcast goes to: known peers, then seeds nobody answered from."""
        known = dict.fromkeys(self._addresses.values())
        known.update(dict.fromkeys(seed for seed in self._seeds if seed not in known))
        known.pop(self.own_address, None)
        return list(known)

    def entries(self) -> list[tuple[str, Address]]:
        return list(self._addresses.items())


def encode_peer_list(entries: Iterable[tuple[str, Address]]) -> bytes:
    """The body of a ``PEERS`` frame: ``[[node_id, [address parts...]], ...]`` in msgpack."""
    return msgpack.packb([[node_id, list(address)] for node_id, address in entries])


def decode_peer_list(body: bytes) -> list[tuple[str, Address]] | None:
    """The entries of a ``PEERS`` body, or None if it is not one (never raises)."""
    try:
        raw = msgpack.unpackb(body, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None
    if not isinstance(raw, list) or len(raw) > _MAX_REPORTED_PEERS:
        return None
    entries: list[tuple[str, Address]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return None
        node_id, parts = item
        if not (isinstance(parts, list) and 0 < len(parts) <= 5):
            return None
        if not all(isinstance(part, str | int) and not isinstance(part, bool) for part in parts):
            return None
        entries.append((node_id, tuple(parts)))
    return entries
