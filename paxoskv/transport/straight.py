"""The transport's per-frame paths, written to be compiled: a data frame to everyone out, a
burst of frames to one address each out (how the runtime sends), and a data frame from a peer
whose header was checked before in.

:class:`~paxoskv.transport.endpoint.FramedEndpoint` keeps everything else (sockets, peer
learning, the full receive path, gossip) and hands these cases to a :class:`StraightPath`.
The endpoint cannot be compiled itself: UDP, TIPC, the tests and the benchmark subclass it, and
it inherits from an interpreted base. This module holds no sockets of its own and no asyncio
(the endpoint awaits when a send would block), so mypyc compiles it as it does the engine
(``paxoskv/compiled.py``); both builds run the same source and give the same verdicts
(tests/transport/test_fast_paths.py holds the straight cases to the full path, byte for byte
and counter for counter).

Why compiled helps here: with HMAC a 100-byte frame is about 55,000 instructions from
``broadcast`` to ``receive``, and after the two tags (30,000), the kernel and the event loop,
the largest share was the interpreter stepping between the calls that do the work -- header
reads, compares, the replay window's test, the counters. Compiled, the calls stay (the tags,
``struct``, ``sendto``) and the steps between them become C.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Coroutine, Mapping, Sequence
from hmac import compare_digest
from struct import error as struct_error
from typing import TYPE_CHECKING, Any, Final, Protocol

from paxoskv.transport.base import Address, Delivery, DropReason
from paxoskv.transport.frames import HEADER_BYTES, SEQ_OFFSET, Payload, invalid_tag
from paxoskv.transport.replay import ReplayGuard, ReplayWindow

if TYPE_CHECKING:
    from paxoskv.transport.base import TransportStats
    from paxoskv.transport.frames import FrameSealer

__all__ = ["UNKNOWN", "KnownHeader", "StraightPath", "header_layout"]

# Module names the per-frame code calls, as Final: compiled, a Final name is a C static, where
# any other global is a dictionary lookup per use (about 350 instructions each).
_new_delivery: Final[Any] = tuple.__new__  # a Delivery without its Python-level __new__
_DELIVERY: Final = Delivery
_COMPARE_DIGEST: Final = compare_digest
_NONCE_PAD: Final = bytes(4)  # AES-GCM's nonce is seq as 12 bytes (FrameCodec._decrypt)
_VIEW_FROM_BYTES: Final = 1024  # hash larger frames through a view: a slice would copy them

ReadHeader = Callable[[bytes], tuple[bytes, int, bytes]]


@functools.cache
def header_layout(ids_bytes: int) -> ReadHeader:
    """Reads the fixed bytes, ``seq`` and ``ids_bytes`` of ids (bounded: at most 511)."""
    read: ReadHeader = struct.Struct(f"!{SEQ_OFFSET}sQ{ids_bytes}s").unpack_from
    return read


class KnownHeader:
    """A data frame's header as the straight receive path knows it (``_remember`` in
    endpoint.py says when one is kept and how it stays true).

    ``read`` gives a frame's fixed bytes, ``seq`` and ids in one ``struct`` call; ``fixed``
    and ``ids`` are what they must equal; ``aead`` is the sender's AES-GCM cipher when that
    is the protection, ``window`` the sender's replay window (the guard's own object) when
    frames are authenticated.
    """

    __slots__ = (
        "address",
        "aead",
        "fixed",
        "header_end",
        "ids",
        "incarnation",
        "read",
        "sender_id",
        "window",
    )

    def __init__(
        self,
        read: ReadHeader,
        fixed: bytes,
        ids: bytes,
        sender_id: str,
        header_end: int,
        address: Address,
        incarnation: int,
        aead: Any,
        window: ReplayWindow | None,
    ) -> None:
        self.read = read
        self.fixed = fixed
        self.ids = ids
        self.sender_id = sender_id
        self.header_end = header_end
        self.address = address
        self.incarnation = incarnation
        self.aead = aead
        self.window = window


# Matches no frame (no fixed bytes are empty): where the straight path starts each batch.
UNKNOWN: Final = KnownHeader(header_layout(0), b"", b"", "", 0, ("",), 0, None, None)


class _Endpoint(Protocol):
    """What the straight path calls back for: the endpoint's full path and its refusals."""

    def _receive_one(
        self, datagram: bytes, address: Address, deliver: Callable[[Delivery], None]
    ) -> int: ...

    def _refused(self, reason: DropReason, address: Address) -> None: ...

    def _send_failed(self, error: OSError, address: Address) -> None: ...

    async def _broadcast_slowly(self, payload: Payload) -> None: ...

    async def _send_when_writable(self, datagram: bytes, address: Address) -> None: ...

    def _deliver(self, delivery: Delivery) -> None: ...

    def _send_soon_slowly(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None: ...

    def _send_all_blocked(
        self, waiting: list[tuple[bytes, list[Address]]]
    ) -> Coroutine[Any, Any, None]: ...


class StraightPath:
    """One endpoint's straight paths, and what they need at hand.

    ``known`` is the endpoint's own dictionary of known headers (it fills and empties it);
    ``put_many`` is its inbox's, ``sendto`` its send socket's.
    """

    def __init__(
        self,
        endpoint: _Endpoint,
        known: dict[bytes, KnownHeader],
        sealer: FrameSealer,
        peer_addresses: Mapping[str, Address],
        tag: Callable[[Any], bytes] | None,
        guard: ReplayGuard | None,
        stats: TransportStats,
        put_many: Callable[[list[Delivery]], int],
        sendto: Callable[[bytes, Address], object],
    ) -> None:
        self.endpoint = endpoint
        self.known = known
        self.sealer = sealer
        self.node_id = sealer.node_id
        self.peer_addresses = peer_addresses
        self.before_seq, self.after_seq = sealer.header_parts("")
        self.tag = tag  # the HMAC tag of a frame (frames._HmacSha256.tag), if any
        self.guard = guard
        self.stats = stats
        self.put_many = put_many
        self.sendto = sendto
        self.max_datagram_bytes = sealer.codec.max_datagram_bytes
        self.tag_bytes = sealer.codec.tag_bytes
        # Where broadcast() and send_soon() send a frame to everyone: the one group address
        # when there is one (the endpoint's ``_group_target``), and the largest payload they
        # seal themselves (-1, none: AES-GCM, which they leave to the sealer, or closed).
        self.group: Address | None = None
        self.limit = -1
        # Frames and bytes sent by broadcast() and send_soon() not yet added to ``stats``: a
        # counter of ours is a C field, one of the stats object two attribute lookups and a
        # store. The endpoint adds them (:meth:`flush_counts`) when its ``stats`` property is
        # read, so a stats object held across sends lags until then.
        self.sent_frames = 0
        self.sent_bytes = 0

    def flush_counts(self) -> None:
        """Add what broadcast() and send_soon() sent since the last call to the endpoint's
        stats."""
        if self.sent_frames:
            stats = self.stats
            stats.sent_frames += self.sent_frames
            stats.sent_bytes += self.sent_bytes
            self.sent_frames = self.sent_bytes = 0

    # --- out --------------------------------------------------------------------------------

    def seal_to_everyone(self, payload: Payload) -> bytes:
        """``FrameSealer.seal`` for a DATA frame to everyone without AES-GCM (the endpoint
        checks the size and the protection first; tests hold the two to the same bytes)."""
        sealer = self.sealer
        seq = sealer.next_seq
        sealer.next_seq = seq + 1
        # seq as 8 big-endian bytes (SEQ_FIELD's layout): compiled, ``to_bytes`` is a C
        # primitive where ``SEQ_FIELD.pack`` is a call.
        datagram = b"".join((self.before_seq, seq.to_bytes(8, "big"), self.after_seq, payload))
        tag = self.tag
        if tag is not None:
            datagram += tag(datagram)
        return datagram

    async def broadcast(self, payload: Payload) -> None:
        """``FramedEndpoint.broadcast``: a coroutine of compiled code, so awaiting it costs no
        interpreted frame. A DATA frame to the one group address, sealed here, sent at once,
        waiting only when the socket buffer is full; anything else is the endpoint's."""
        address = self.group
        if address is None or len(payload) > self.limit:
            await self.endpoint._broadcast_slowly(payload)
            return
        datagram = self.seal_to_everyone(payload)
        try:
            self.sendto(datagram, address)
        except (BlockingIOError, InterruptedError):
            await self.endpoint._send_when_writable(datagram, address)
            return
        except OSError as error:
            self.endpoint._send_failed(error, address)
            return
        self.sent_frames += 1
        self.sent_bytes += len(datagram)

    def send_soon(self, messages: Sequence[Any]) -> Coroutine[Any, Any, None] | None:
        """``FramedEndpoint.send_soon``, the way the runtime sends everything: each message
        sealed and sent at once, the frames a full socket buffer refused handed back as one
        coroutine to await. Here when every frame goes to one address (a group, or a known
        peer's) and is sealed without AES-GCM; anything else is the endpoint's
        (``_send_soon_slowly``). Interpreted, this loop cost more than the broadcast it runs
        for (about 6,400 instructions a 100-byte frame with HMAC, callgrind).

        ``messages`` is typed ``Any`` on purpose: compiled, a ``tuple[str | None, bytes]``
        annotation would refuse a bytearray or memoryview payload, a list for a pair, or a bad
        node id with a bare TypeError on entry, before anything is sent, where the pure build
        sends the bytes, or raises ConfigurationError after the frames before it went
        (tests/transport/test_fast_paths.py holds both builds to the same answers).
        """
        group = self.group
        limit = self.limit
        if group is None or limit < 0:
            return self.endpoint._send_soon_slowly(messages)
        for _, payload in messages:  # a refusal sends nothing: sizes first, as send_many
            if len(payload) > limit:
                return self.endpoint._send_soon_slowly(messages)  # raises PayloadTooLarge
        own_id = self.node_id
        peers = self.peer_addresses
        sendto = self.sendto
        waiting: list[tuple[bytes, list[Address]]] | None = None
        sent_frames = sent_bytes = 0
        try:
            for node_id, payload in messages:
                if node_id is None:
                    datagram = self.seal_to_everyone(payload)
                    address = group
                elif node_id == own_id:
                    self.endpoint._deliver(_new_delivery(_DELIVERY, (node_id, bytes(payload))))
                    continue
                else:
                    datagram = self.sealer.seal(payload, node_id)
                    address = peers.get(node_id, group)
                try:
                    sendto(datagram, address)
                except (BlockingIOError, InterruptedError):
                    if waiting is None:
                        waiting = []
                    waiting.append((datagram, [address]))
                    continue
                except OSError as error:
                    self.endpoint._send_failed(error, address)
                    continue
                sent_frames += 1
                sent_bytes += len(datagram)
        finally:  # a sealing error (a bad node id) still counts what went
            self.sent_frames += sent_frames
            self.sent_bytes += sent_bytes
        return None if waiting is None else self.endpoint._send_all_blocked(waiting)

    # --- in ---------------------------------------------------------------------------------

    def receive(self, batch: list[tuple[bytes, Address]]) -> None:
        """``FramedEndpoint.datagrams_received``: check, count and route one drained batch.

        Written for the common case -- a data frame from a peer whose header was checked
        before -- with no call of ours per datagram: one struct read gives the header's fixed
        bytes, ``seq`` and the ids, which are compared with the header the previous frame
        matched (looked up by the fixed bytes when the sender changes), and only the tag, the
        replay window and the body are worked out per frame. Anything else takes the
        endpoint's full path (``_receive_one``).
        """
        endpoint = self.endpoint
        max_bytes, tag_bytes, tag = self.max_datagram_bytes, self.tag_bytes, self.tag
        deliveries: list[Delivery] = []
        delivered_bytes = 0
        # The header the last frame matched: a burst mostly comes from one sender, so the next
        # frame is read with that header's layout and compared, with no lookup. Reset after
        # anything that can empty the known headers (the full path, the guard).
        entry = UNKNOWN
        for datagram, address in batch:
            size = len(datagram)
            matched = False
            seq = 0
            if size <= max_bytes:
                try:
                    prefix, seq, ids = entry.read(datagram)
                    matched = prefix == entry.fixed and ids == entry.ids
                except struct_error:  # shorter than that header: another one, or malformed
                    pass
            if not matched or address != entry.address:
                entry = self.known_header(datagram, address)
                if entry is UNKNOWN:
                    delivered_bytes += endpoint._receive_one(datagram, address, deliveries.append)
                    continue
                seq = entry.read(datagram)[1]
            header_end = entry.header_end
            body_end = size - tag_bytes
            if body_end < header_end:
                delivered_bytes += endpoint._receive_one(datagram, address, deliveries.append)
                entry = UNKNOWN
                continue
            if tag is not None:
                if body_end < _VIEW_FROM_BYTES:
                    expected = tag(datagram[:body_end])
                else:  # as in FrameCodec.unpack: a view, not a copy of a large body
                    expected = tag(memoryview(datagram)[:body_end])
                if not _COMPARE_DIGEST(expected, datagram[body_end:]):
                    endpoint._refused(DropReason.BAD_TAG, address)
                    continue
                body = datagram[header_end:body_end]
            elif entry.aead is not None:
                try:
                    body = entry.aead.decrypt(
                        _NONCE_PAD + datagram[SEQ_OFFSET:HEADER_BYTES],
                        datagram[header_end:],
                        datagram[:header_end],
                    )
                except invalid_tag():
                    endpoint._refused(DropReason.BAD_TAG, address)
                    continue
            else:
                body = datagram[header_end:]
            window = entry.window
            if window is not None:
                if seq == window.next_in_order and entry.incarnation == window.incarnation:
                    window.next_in_order = seq + 1  # ReplayWindow.accept's steady state
                else:
                    sender_id, incarnation = entry.sender_id, entry.incarnation
                    entry = UNKNOWN  # the guard may drop windows, and every known header
                    guard = self.guard
                    assert guard is not None
                    if not guard.accept(sender_id, incarnation, seq):
                        self.stats.dropped[DropReason.REPLAYED] += 1
                        continue
                    deliveries.append(_new_delivery(_DELIVERY, (sender_id, body)))
                    delivered_bytes += len(body)
                    continue
            deliveries.append(_new_delivery(_DELIVERY, (entry.sender_id, body)))
            delivered_bytes += len(body)
        if deliveries:
            stats = self.stats
            stats.received_frames += len(deliveries)
            stats.received_bytes += delivered_bytes
            overflow = self.put_many(deliveries)
            if overflow:
                stats.dropped[DropReason.OVERFLOW] += overflow

    def known_header(self, datagram: bytes, address: Address) -> KnownHeader:
        """The known header ``datagram`` carries from ``address``, or ``UNKNOWN``."""
        entry = self.known.get(datagram[:SEQ_OFFSET], UNKNOWN)
        if entry is UNKNOWN or address != entry.address:
            return UNKNOWN
        if len(datagram) > self.max_datagram_bytes:
            return UNKNOWN
        try:
            ids = entry.read(datagram)[2]
        except struct_error:
            return UNKNOWN
        return entry if ids == entry.ids else UNKNOWN
