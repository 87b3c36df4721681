"""An in-process network: the real runtime, many nodes, one event loop, no sockets.

For fast tests of the runtime (the deterministic simulator drives the engine without any
transport at all; this is the next step up, with asyncio and real timers). It behaves as a
datagram network does, so code that works here has not been spoiled by a perfect one:
payloads over the limit are refused at send, a closed node silently loses what is sent to it,
and the :class:`FaultSettings` knobs (seeded drop, duplicate, delay, reorder) plus cuts and
partitions apply per receiver, exactly as :class:`FaultyTransport` applies them on sockets.

Payloads are not framed: nothing here can be forged, so the frame checks would only cost time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from paxoskv.errors import ConfigurationError, PayloadTooLarge, TransportClosed
from paxoskv.transport.base import (
    Address,
    ClosesOnExit,
    Delivery,
    DropReason,
    TransportStats,
    check_sizes,
)
from paxoskv.transport.faults import FaultPlan, FaultSettings
from paxoskv.transport.inbox import DEFAULT_INBOX_FRAMES, Inbox

__all__ = ["DEFAULT_MEMORY_PAYLOAD_BYTES", "MemoryNetwork", "MemoryTransport"]

DEFAULT_MEMORY_PAYLOAD_BYTES = 65_000  # about what a UDP frame carries, so sizes stay honest


class MemoryNetwork:
    """The medium: who is attached, which links are cut, and the seeded fault plan."""

    def __init__(
        self,
        faults: FaultSettings | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MEMORY_PAYLOAD_BYTES,
        inbox_frames: int = DEFAULT_INBOX_FRAMES,
    ) -> None:
        self.faults = faults if faults is not None else FaultSettings()
        self.max_payload_bytes = max_payload_bytes
        self.inbox_frames = inbox_frames
        self._plan = FaultPlan(self.faults)
        self._nodes: dict[str, MemoryTransport] = {}
        self._cut_links: set[tuple[str, str]] = set()
        self._groups: dict[str, int] | None = None

    def attach(self, node_id: str) -> MemoryTransport:
        """A new node on this network; ids are unique while attached."""
        if not isinstance(node_id, str) or not node_id:
            raise ConfigurationError(f"node id must be a non-empty str, not {node_id!r}")
        if node_id in self._nodes:
            raise ConfigurationError(f"node id {node_id!r} is already attached to this network")
        transport = MemoryTransport(self, node_id)
        self._nodes[node_id] = transport
        return transport

    @property
    def nodes(self) -> Mapping[str, MemoryTransport]:
        return dict(self._nodes)

    def cut(self, a: str, b: str, *, both_ways: bool = True) -> None:
        """Lose everything ``a`` sends to ``b`` (and ``b`` to ``a`` unless one-way)."""
        self._cut_links.add((a, b))
        if both_ways:
            self._cut_links.add((b, a))

    def isolate(self, node_id: str) -> None:
        """Cut ``node_id`` from every node attached now."""
        for other in self._nodes:
            if other != node_id:
                self.cut(node_id, other)

    def partition(self, *groups: Iterable[str]) -> None:
        """Only nodes in the same group hear each other; nodes in no group hear nobody."""
        self._groups = {node: index for index, group in enumerate(groups) for node in group}

    def heal(self) -> None:
        """Every link works again (faults from the settings still apply)."""
        self._cut_links.clear()
        self._groups = None

    def linked(self, source: str, destination: str) -> bool:
        if (source, destination) in self._cut_links:
            return False
        if self._groups is None:
            return True
        group = self._groups.get(source)
        return group is not None and group == self._groups.get(destination)

    def _detach(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    def _carry(self, source: str, destination: str, payload: bytes) -> None:
        receiver = self._nodes.get(destination)
        if receiver is None:
            return  # nobody there: lost, as on a real network
        if not self.linked(source, destination):
            receiver.stats.dropped[DropReason.CUT] += 1
            return
        loop = asyncio.get_running_loop()
        delivery = Delivery(source, payload)
        for delay_s in self._plan.copies(receiver.stats):
            if delay_s:
                loop.call_later(delay_s, receiver._arrive, delivery)
            else:
                receiver._arrive(delivery)


class MemoryTransport(ClosesOnExit):
    """One node's end of a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, node_id: str) -> None:
        self._network = network
        self._node_id = node_id
        self._inbox = Inbox(network.inbox_frames)
        self._stats = TransportStats()
        self._closed = False

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def local_address(self) -> Address:
        return ("memory", self._node_id)

    @property
    def max_payload_bytes(self) -> int:
        return self._network.max_payload_bytes

    @property
    def stats(self) -> TransportStats:
        return self._stats

    async def send(self, node_id: str, payload: bytes) -> None:
        self._send_now(node_id, payload)

    async def broadcast(self, payload: bytes) -> None:
        self._broadcast_now(payload)

    def _send_now(self, node_id: str, payload: bytes) -> None:
        self._check(payload)
        self._count_sent(payload)
        if node_id == self._node_id:
            self._arrive(Delivery(node_id, bytes(payload)))
        else:
            self._network._carry(self._node_id, node_id, bytes(payload))

    def _broadcast_now(self, payload: bytes) -> None:
        self._check(payload)
        frozen = bytes(payload)
        for node_id in list(self._network.nodes):
            if node_id != self._node_id:
                self._count_sent(frozen)
                self._network._carry(self._node_id, node_id, frozen)

    async def receive(self) -> Delivery:
        return await self._inbox.get()

    async def send_many(self, messages: Sequence[tuple[str | None, bytes]]) -> None:
        self.send_soon(messages)

    def send_soon(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None:
        """Everything goes at once: an in-process network has no buffer to fill."""
        if self._closed:
            raise TransportClosed(f"transport of node {self._node_id!r} is closed")
        check_sizes(messages, self._network.max_payload_bytes)
        for node_id, payload in messages:
            if node_id is None:
                self._broadcast_now(payload)
            else:
                self._send_now(node_id, payload)
        return None

    async def receive_many(self, max_frames: int = DEFAULT_INBOX_FRAMES) -> list[Delivery]:
        return await self._inbox.get_many(max_frames)

    def deliver_to(self, consumer: Callable[[list[Delivery]], None] | None) -> None:
        """As a network would: the consumer gets a delivery in a later turn of the loop, never
        inside the sender's own call (where an in-process cluster would nest one node's
        engine step inside another's)."""
        if consumer is None:
            self._inbox.hand_to(None)
            return
        call_soon = asyncio.get_running_loop().call_soon

        def later(deliveries: list[Delivery]) -> None:
            call_soon(consumer, deliveries)

        self._inbox.hand_to(later)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.close()
            self._network._detach(self._node_id)

    def _arrive(self, delivery: Delivery) -> None:
        if self._closed:
            return
        if self._inbox.put(delivery):
            self._stats.received_frames += 1
            self._stats.received_bytes += len(delivery.payload)
        else:
            self._stats.dropped[DropReason.OVERFLOW] += 1

    def _check(self, payload: bytes) -> None:
        if self._closed:
            raise TransportClosed(f"transport of node {self._node_id!r} is closed")
        if len(payload) > self._network.max_payload_bytes:
            raise PayloadTooLarge(len(payload), self._network.max_payload_bytes)

    def _count_sent(self, payload: bytes) -> None:
        self._stats.sent_frames += 1
        self._stats.sent_bytes += len(payload)
