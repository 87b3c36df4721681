"""Seeded network faults: drop, duplicate, delay, reorder, cut a peer -- for chaos tests.

The same knobs serve the in-memory transport (memory.py) and :class:`FaultyTransport`, which
wraps any real transport, so a scenario found in fast in-process tests can be replayed on real
sockets by configuration alone (``[transport.faults]`` in the TOML file, or
:meth:`FaultSettings.from_mapping`). Only faults a datagram network really has are offered:
Paxos claims to survive exactly these.

Faults are applied where a datagram is received: a multicast reaches each node separately in
real networks, so each receiver decides for itself whether it lost, doubled or delayed its
copy. A cut is enforced on both sides of the wrapped node (what it sends to the peer, what it
hears from it); for a cut that also stops the peer's multicasts reaching others, wrap every
node. One ``random.Random(seed)`` makes every decision, so a seed replays the same faults
given the same order of arrivals.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from paxoskv.errors import ConfigurationError, PayloadTooLarge, TransportClosed
from paxoskv.transport.base import (
    Address,
    ClosesOnExit,
    Delivery,
    DropReason,
    Transport,
    TransportStats,
    check_sizes,
    send_all,
)
from paxoskv.transport.inbox import DEFAULT_INBOX_FRAMES, Inbox

__all__ = ["FaultPlan", "FaultSettings", "FaultyTransport"]


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """How unreliable the network should look. All zero means a perfect network."""

    seed: int = 0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    delay_min_s: float = 0.0
    delay_max_s: float = 0.0
    reorder_rate: float = 0.0
    reorder_delay_s: float = 0.01
    cut: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("drop_rate", "duplicate_rate", "reorder_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ConfigurationError(f"faults: {name} must be between 0 and 1, not {rate}")
        if not 0.0 <= self.delay_min_s <= self.delay_max_s:
            raise ConfigurationError(
                "faults: need 0 <= delay_min_s <= delay_max_s, not "
                f"{self.delay_min_s} and {self.delay_max_s}"
            )
        if self.reorder_delay_s < 0:
            raise ConfigurationError("faults: reorder_delay_s must not be negative")
        cut: object = self.cut
        if isinstance(cut, str) or not isinstance(cut, Iterable):
            raise ConfigurationError("faults: cut must be a list of node ids")
        peers = frozenset(cut)
        if not all(isinstance(peer, str) for peer in peers):
            raise ConfigurationError("faults: cut must be a list of node ids")
        object.__setattr__(self, "cut", peers)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FaultSettings:
        """From a TOML table or parsed environment; unknown keys are refused, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigurationError(
                f"faults: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**raw)
        except TypeError as error:
            raise ConfigurationError(f"faults: {error}") from error


class FaultPlan:
    """Decides the fate of each datagram: no copies (lost), one, or two, each with a delay."""

    def __init__(self, settings: FaultSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng if rng is not None else random.Random(settings.seed)

    def copies(self, stats: TransportStats) -> tuple[float, ...]:
        """Delays in seconds of the copies to deliver (empty: lost), tallied into ``stats``."""
        s, rng = self.settings, self.rng
        if s.drop_rate and rng.random() < s.drop_rate:
            stats.dropped[DropReason.INJECTED] += 1
            return ()
        count = 1
        if s.duplicate_rate and rng.random() < s.duplicate_rate:
            count = 2
            stats.injected["duplicated"] += 1
        return tuple(self._delay_s(stats) for _ in range(count))

    def _delay_s(self, stats: TransportStats) -> float:
        s, rng = self.settings, self.rng
        delay_s = rng.uniform(s.delay_min_s, s.delay_max_s) if s.delay_max_s else 0.0
        if s.reorder_rate and rng.random() < s.reorder_rate:
            delay_s += s.reorder_delay_s  # later datagrams overtake this one
            stats.injected["reordered"] += 1
        if delay_s:
            stats.injected["delayed"] += 1
        return delay_s


class FaultyTransport(ClosesOnExit):
    """Any transport, with faults injected on what it receives and cuts on both directions.

    Build it inside a running event loop (it starts a task that pulls from the inner
    transport); :func:`paxoskv.transport.open_transport` does so when settings ask for faults.
    """

    def __init__(
        self,
        inner: Transport,
        settings: FaultSettings,
        *,
        inbox_frames: int = DEFAULT_INBOX_FRAMES,
    ) -> None:
        self.inner = inner
        self.settings = settings
        self._plan = FaultPlan(settings)
        self._cut: set[str] = set(settings.cut)
        self._inbox = Inbox(inbox_frames)
        self._pump = asyncio.create_task(self._pump_received())

    @property
    def node_id(self) -> str:
        return self.inner.node_id

    @property
    def local_address(self) -> Address:
        return self.inner.local_address

    @property
    def max_payload_bytes(self) -> int:
        return self.inner.max_payload_bytes

    @property
    def stats(self) -> TransportStats:
        """The inner transport's counters, with injected faults counted in them too."""
        return self.inner.stats

    def cut(self, peer_id: str) -> None:
        """Stop all traffic with ``peer_id`` until :meth:`heal`."""
        self._cut.add(peer_id)

    def heal(self, peer_id: str | None = None) -> None:
        """Restore the link to ``peer_id``, or every link when None."""
        if peer_id is None:
            self._cut.clear()
        else:
            self._cut.discard(peer_id)

    async def send(self, node_id: str, payload: bytes) -> None:
        if node_id in self._cut:
            if len(payload) > self.inner.max_payload_bytes:  # a cut link hides no caller bug
                raise PayloadTooLarge(len(payload), self.inner.max_payload_bytes)
            self.stats.dropped[DropReason.CUT] += 1
            return
        await self.inner.send(node_id, payload)

    async def broadcast(self, payload: bytes) -> None:
        await self.inner.broadcast(payload)

    async def receive(self) -> Delivery:
        return await self._inbox.get()

    async def send_many(self, messages: Sequence[tuple[str | None, bytes]]) -> None:
        await send_all(self, messages)

    def send_soon(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None:
        check_sizes(messages, self.inner.max_payload_bytes)  # a cut link hides no caller bug
        through = [(node_id, payload) for node_id, payload in messages if node_id not in self._cut]
        self.stats.dropped[DropReason.CUT] += len(messages) - len(through)
        return self.inner.send_soon(through)

    async def receive_many(self, max_frames: int = DEFAULT_INBOX_FRAMES) -> list[Delivery]:
        return await self._inbox.get_many(max_frames)

    def deliver_to(self, consumer: Callable[[list[Delivery]], None] | None) -> None:
        self._inbox.hand_to(consumer)

    async def close(self) -> None:
        self._inbox.close()
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        await self.inner.close()

    async def _pump_received(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                delivery = await self.inner.receive()
                if delivery.sender_id in self._cut:
                    self.stats.dropped[DropReason.CUT] += 1
                    continue
                for delay_s in self._plan.copies(self.stats):
                    if delay_s:
                        loop.call_later(delay_s, self._deliver, delivery)
                    else:
                        self._deliver(delivery)
        except TransportClosed:
            pass
        finally:
            self._inbox.close()  # whatever stopped the pump, receive() must not hang

    def _deliver(self, delivery: Delivery) -> None:
        if not self._inbox.put(delivery) and not self._inbox.closed:
            self.stats.dropped[DropReason.OVERFLOW] += 1
