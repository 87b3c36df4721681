"""The one shape every transport has, so the runtime and the tests never ask which one it is.

Theory of operation
-------------------
A transport moves opaque payloads (bytes) between nodes named by ``str`` ids. It knows nothing
of Paxos: the engine above it encodes messages, and this layer frames, authenticates, routes
and counts them. Three verbs and a few facts:

* ``await send(node_id, payload)`` -- to one node, over its unicast address when known;
* ``await broadcast(payload)`` -- to every other node (one multicast send where there is one);
* ``await receive()`` -> :class:`Delivery` ``(sender_id, payload)``;
* ``await send_many([(node_id or None, payload), ...])`` and ``await receive_many()`` -- the
  same for a burst, in one call: at small frames a coroutine per frame is a noticeable part
  of the cost of moving it (benchmarks/transport.py measures both forms);
* ``send_soon(messages)`` -- ``send_many`` without the wait: sends what the sockets take at
  once and returns ``None``, or a coroutine that sends the rest once they drain. A runtime
  sends an engine step's messages the moment the step ends, without a task switch first;
* ``deliver_to(consumer)`` -- instead of queueing deliveries for ``receive()``, hand each
  burst to ``consumer`` as it arrives (a runtime that wants no task switch per hop);
* ``local_address``, ``max_payload_bytes``, ``stats``, ``close()`` (and ``async with``).

Why ``receive()`` is pulled rather than a callback: the runtime is one asyncio task that waits
for the next input, steps the sans-IO engine and carries out its effects, in that order. A
pull keeps that order in the runtime's hands (no engine step ever runs inside a socket
callback, so an exception in the engine is never swallowed by the event loop's protocol
machinery) and gives back-pressure a single, visible place: a bounded inbox whose overflow is
counted. Tests read the same way: ``sender, payload = await transport.receive()``. The
runtime itself, since a task switch on every hop is latency on every write, takes the
deliveries by ``deliver_to``: the engine step then does run inside the socket callback, so the
runtime catches whatever the step raises and stops the node (see ``Replica._on_deliveries``).

Broadcasts never come back to their sender: the engine handles its own messages itself, and a
looped-back multicast copy is dropped (counted as ``own_echo``).

Bad bytes from the network are never raised: they are dropped and counted by reason in
:class:`TransportStats`. Caller mistakes (a payload over ``max_payload_bytes``, using a
closed transport) raise typed errors from :mod:`paxoskv.errors` at once.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self

from paxoskv.errors import PayloadTooLarge
from paxoskv.state.frozen_plain import PlainRecord

__all__ = [
    "Address",
    "Delivery",
    "DropReason",
    "Transport",
    "TransportStats",
    "check_sizes",
    "send_all",
]

# A socket address as the socket module gives it: ``(host, port)`` for UDP, the 5-tuple of a
# TIPC port id, ``("memory", node_id)`` for the in-process transport.
Address = tuple[str | int, ...]


class Delivery(NamedTuple):
    """One payload handed up to the runtime.

    A named tuple rather than a dataclass because the runtime unpacks it
    (``sender_id, payload = await t.receive()``) and it is built once per datagram on the
    hottest path of the node.
    """

    sender_id: str
    payload: bytes


class DropReason(enum.StrEnum):
    """Why an incoming datagram never reached the runtime."""

    MALFORMED = "malformed"  # too short, bad magic, bad lengths, unknown kind, bad utf-8
    WRONG_VERSION = "wrong_version"  # a frame format this build does not read
    FOREIGN_CLUSTER = "foreign_cluster"  # another cluster shares the group or port
    BAD_TAG = "bad_tag"  # unauthenticated, forged, corrupted or wrong secret
    REPLAYED = "replayed"  # seen before, or older than the sender's sliding window
    OVERSIZED = "oversized"  # bigger than this transport's datagram limit
    OTHER_DESTINATION = "other_destination"  # addressed to another node via the group
    OWN_ECHO = "own_echo"  # our own broadcast looped back by the kernel
    OVERFLOW = "overflow"  # the inbox was full: the runtime is not keeping up
    INJECTED = "injected"  # dropped on purpose by fault injection (chaos tests)
    CUT = "cut"  # the link to that peer is cut by fault injection


class TransportStats(PlainRecord):
    """Counters a transport keeps; mutable because it is a tally, not a message.

    ``injected`` counts what fault injection did besides dropping (``duplicated``,
    ``delayed``, ``reordered``), so a chaos test can show its faults really happened.
    """

    __slots__ = (
        "dropped",
        "injected",
        "received_bytes",
        "received_frames",
        "send_errors",
        "sent_bytes",
        "sent_frames",
    )
    __match_args__ = (
        "sent_frames",
        "sent_bytes",
        "received_frames",
        "received_bytes",
        "send_errors",
        "dropped",
        "injected",
    )

    sent_frames: int
    sent_bytes: int
    received_frames: int
    received_bytes: int
    send_errors: int
    dropped: Counter[DropReason]
    injected: Counter[str]

    def __init__(
        self,
        sent_frames: int = 0,
        sent_bytes: int = 0,
        received_frames: int = 0,
        received_bytes: int = 0,
        send_errors: int = 0,
        dropped: Counter[DropReason] | None = None,
        injected: Counter[str] | None = None,
    ) -> None:
        self.sent_frames = sent_frames
        self.sent_bytes = sent_bytes
        self.received_frames = received_frames
        self.received_bytes = received_bytes
        self.send_errors = send_errors
        self.dropped = Counter() if dropped is None else dropped
        self.injected = Counter() if injected is None else injected

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, int]:
        """A flat copy for logs, ``status()`` and JSON output."""
        flat = {
            "sent_frames": self.sent_frames,
            "sent_bytes": self.sent_bytes,
            "received_frames": self.received_frames,
            "received_bytes": self.received_bytes,
            "send_errors": self.send_errors,
        }
        flat.update({f"dropped_{reason.value}": n for reason, n in self.dropped.items()})
        flat.update({f"injected_{what}": n for what, n in self.injected.items()})
        return flat


class Transport(Protocol):
    """What the runtime needs from any transport: UDP, TIPC, in-memory, or a fault wrapper."""

    @property
    def node_id(self) -> str: ...

    @property
    def local_address(self) -> Address:
        """Where other nodes reach this one point to point (learned by them from our frames)."""
        ...

    @property
    def max_payload_bytes(self) -> int:
        """The largest payload ``send``/``broadcast`` accept; larger ones raise at once."""
        ...

    @property
    def stats(self) -> TransportStats: ...

    async def send(self, node_id: str, payload: bytes) -> None: ...

    async def broadcast(self, payload: bytes) -> None: ...

    async def receive(self) -> Delivery: ...

    async def send_many(self, messages: Sequence[tuple[str | None, bytes]]) -> None:
        """``send`` (or ``broadcast`` where the node id is None) for each, in order, as one
        call; every size is checked before anything is sent, so a refusal sends nothing."""
        ...

    def send_soon(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None:
        """``send_many`` now, as far as the sockets take it: None when everything went, else a
        coroutine the caller must await to send the rest (a full socket buffer's back-pressure).
        Sizes are checked first, as ``send_many`` does, and a refusal raises here."""
        ...

    async def receive_many(self, max_frames: int = ...) -> list[Delivery]:
        """Wait for at least one delivery, then take up to ``max_frames`` waiting ones."""
        ...

    def deliver_to(self, consumer: Callable[[list[Delivery]], None] | None) -> None:
        """Hand every delivery to ``consumer`` as it arrives instead of queueing it for
        ``receive()`` (None: queue again). Bounded and counted as before; ``consumer`` must not
        raise."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class ClosesOnExit:
    """``async with`` for every transport: leaving the block closes it, even on error."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def send_all(transport: Transport, messages: Sequence[tuple[str | None, bytes]]) -> None:
    """``send_many`` for a transport that has ``send_soon``: send now, then wait for the rest."""
    rest = transport.send_soon(messages)
    if rest is not None:
        await rest


def check_sizes(messages: Sequence[tuple[str | None, bytes]], limit_bytes: int) -> None:
    """Refuse a whole burst for ``send_many`` if any payload is over ``limit_bytes``."""
    for _, payload in messages:
        if len(payload) > limit_bytes:
            raise PayloadTooLarge(len(payload), limit_bytes)
