"""What UDP and TIPC share: framing, peer learning, routing, the inbox and the counters.

A concrete transport supplies the sockets: the one it sends from, where a broadcast goes
(``_broadcast_addresses``), which address is its own, and a call to
:meth:`FramedEndpoint.datagrams_received` with what each wake-up of a socket drained. The rest
-- the one receive path that checks, counts and routes every datagram -- lives here once.

Routing a ``send``: to the peer's learned unicast address when there is one; otherwise the
frame carries the destination id and goes the broadcast way, and every other node drops it.
So the first reply to a node just heard of by id (from the membership, say) is never lost for
want of an address, and once that node has sent anything, replies go point to point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, cast

from paxoskv.errors import TransportClosed
from paxoskv.transport.base import (
    Address,
    ClosesOnExit,
    Delivery,
    DropReason,
    TransportStats,
    check_sizes,
    send_all,
)
from paxoskv.transport.frames import (
    HEADER_BYTES,
    SEQ_OFFSET,
    FrameCodec,
    FrameKind,
    FrameOpener,
    FrameSealer,
    Payload,
    Protection,
)
from paxoskv.transport.inbox import DEFAULT_INBOX_FRAMES, Inbox
from paxoskv.transport.peers import PeerTable, decode_peer_list, encode_peer_list
from paxoskv.transport.replay import DEFAULT_WINDOW_FRAMES
from paxoskv.transport.sockio import DatagramSocket
from paxoskv.transport.straight import KnownHeader, StraightPath, header_layout

__all__ = ["FramedEndpoint", "default_incarnation"]

log = logging.getLogger("paxoskv.transport")

_MAX_WARNED_SOURCES = 256
_WORTH_A_WARNING = {
    DropReason.BAD_TAG: (
        "they do not authenticate (a different cluster secret, or encryption set on one side "
        "only); give every node the same secret and encrypt setting"
    ),
    DropReason.WRONG_VERSION: (
        "they use another frame format version; run the same paxos-kv release on every node"
    ),
}


_new_delivery = tuple.__new__  # a Delivery without the named tuple's Python-level __new__
_KNOWN_HEADERS = 1024


def default_incarnation() -> int:
    """Wall-clock nanoseconds: larger after every restart unless the clock went backwards."""
    return time.time_ns()


class FramedEndpoint(ClosesOnExit):
    """The shared half of a socket transport; subclasses add the sockets."""

    def __init__(
        self,
        node_id: str,
        codec: FrameCodec,
        own_address: Address,
        send_socket: DatagramSocket,
        *,
        seeds: tuple[Address, ...] = (),
        gossip_interval_s: float | None = None,
        incarnation: int | None = None,
        inbox_frames: int = DEFAULT_INBOX_FRAMES,
        replay_window_frames: int = DEFAULT_WINDOW_FRAMES,
    ) -> None:
        self._node_id = node_id
        self._send_socket = send_socket
        self._sealer = FrameSealer(
            codec, node_id, default_incarnation() if incarnation is None else incarnation
        )
        self._opener = FrameOpener(codec, replay_window_frames)
        # The codec's unpack with the opener's replay guard, called straight from the receive
        # path: one Python call per datagram fewer than going through the opener.
        self._unpack = codec.unpack
        self._replay_guard = self._opener.active_guard
        self._own_address = own_address
        self._peers = PeerTable(node_id, own_address, seeds)
        self._peer_addresses = self._peers.addresses
        self._codec = codec
        self._known: dict[bytes, KnownHeader] = {}
        if self._replay_guard is not None:
            # Known headers hold their sender's window: a window the guard drops goes with them.
            self._replay_guard.on_forget = self._known.clear
        self._max_datagram_bytes = codec.max_datagram_bytes
        self._tag_bytes = codec.tag_bytes
        self._tag = codec.hmac.tag if codec.hmac is not None else None
        self._inbox = Inbox(inbox_frames)
        self._stats = TransportStats()
        # The per-frame paths (straight.py, compiled in the compiled build): a data frame to
        # everyone out, a data frame with a known header in.
        self._straight = StraightPath(
            self,
            self._known,
            self._sealer,
            self._peer_addresses,
            self._tag,
            self._replay_guard,
            self._stats,
            self._inbox.put_many,
            send_socket.sendto,
        )
        # The largest payload broadcast() seals itself; -1 (none) with AES-GCM, which it leaves
        # to the sealer, and once closed.
        self._straight.limit = (
            -1 if codec.protection is Protection.AES_GCM else self._sealer.max_body_bytes
        )
        # ``broadcast()``: the straight path's own coroutine (compiled in the compiled build),
        # which hands anything but a frame to one group address back to _broadcast_slowly.
        self.broadcast = self._straight.broadcast  # type: ignore[method-assign]
        # ``datagrams_received()``: the straight path's own method (compiled in the compiled
        # build), which the socket readers then call with no Python frame of ours between.
        self.datagrams_received = self._straight.receive  # type: ignore[method-assign]
        # ``send_soon()``, how the runtime sends: the straight path's own method as well,
        # unless a subclass has a send_soon of its own.
        if type(self).send_soon is FramedEndpoint.send_soon:
            self.send_soon = self._straight.send_soon  # type: ignore[method-assign]
        # ``receive()``: the inbox's own method, so a call is the inbox's coroutine with no
        # Python call of ours around it (a frame fewer per datagram taken this way).
        self.receive: Callable[[], Coroutine[Any, Any, Delivery]] = self._inbox.get
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._gossip_interval_s = gossip_interval_s
        self._gossip_wanted = asyncio.Event()
        self._impostors_seen: set[Address] = set()
        self._duplicate_listener: Callable[[Address, int], None] | None = None
        self._warned_sources: set[Address] = set()

    # --- the Transport protocol ------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def incarnation(self) -> int:
        return self._sealer.incarnation

    @property
    def local_address(self) -> Address:
        return self._own_address

    @property
    def max_payload_bytes(self) -> int:
        return self._sealer.max_body_bytes

    @property
    def stats(self) -> TransportStats:
        # What broadcast() and send_soon() sent since the last look: a TransportStats held
        # across sends is brought up to date only here.
        self._straight.flush_counts()
        return self._stats

    @property
    def _group_target(self) -> Address | None:
        """Where every broadcast goes when that is one address that never changes (a
        multicast group, a subnet's broadcast address, TIPC's all-nodes range): subclasses set
        it, and broadcast() then sends without asking _broadcast_addresses. None (the start):
        ask every time."""
        return self._straight.group

    @_group_target.setter
    def _group_target(self, address: Address | None) -> None:
        self._straight.group = address

    @property
    def peers(self) -> Mapping[str, Address]:
        """The unicast address of every node heard of, directly or by report."""
        return self._peers.as_mapping()

    def forget(self, node_id: str) -> None:
        """Stop addressing a node that left the cluster (the runtime calls this)."""
        self._peers.forget(node_id)
        self._known.clear()

    async def send(self, node_id: str, payload: bytes) -> None:
        if self._closed:
            self._check_open()
        if node_id == self._node_id:
            self._deliver(_new_delivery(Delivery, (node_id, bytes(payload))))
            return
        datagram = self._sealer.seal(payload, node_id)
        address = self._peer_addresses.get(node_id)
        blocked = self._send_now(
            datagram, self._broadcast_addresses() if address is None else (address,)
        )
        if blocked:
            await self._send_blocked(datagram, blocked)

    async def broadcast(self, payload: bytes) -> None:
        """Replaced in ``__init__`` by :meth:`StraightPath.broadcast`; kept for the
        protocol's sake and for readers: it does the same."""
        await self._straight.broadcast(payload)

    async def _broadcast_slowly(self, payload: Payload) -> None:
        """A broadcast the straight path leaves to us: no single group address, closed,
        AES-GCM, or a payload the sealer refuses (_check_open raises on a closed transport)."""
        self._check_open()
        datagram = self._sealer.seal(payload)
        address = self._group_target
        blocked = self._send_now(
            datagram, self._broadcast_addresses() if address is None else (address,)
        )
        if blocked:
            await self._send_blocked(datagram, blocked)

    async def send_many(self, messages: Sequence[tuple[str | None, bytes]]) -> None:
        """Send each ``(node_id, payload)`` in order; ``None`` for a node id means everyone.

        The same as awaiting ``send``/``broadcast`` for each, in one coroutine for all: a
        node sends in bursts (an accept to everyone, replies, commit notices), and at 100-byte
        frames a coroutine per frame is a tenth of the send path. Every payload is checked
        against ``max_payload_bytes`` before anything is sent, so a refusal sends nothing.

        A datagram that goes to one address (a known peer, or a multicast group) is sent right
        here, :meth:`_send_now` written out; several addresses take :meth:`_send_now`.
        """
        await send_all(self, messages)

    def send_soon(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None:
        """What ``send_many`` does before its first wait, with the waiting handed back.

        Replaced in ``__init__`` by :meth:`StraightPath.send_soon`, which sends a burst to one
        address per frame itself and leaves the rest to :meth:`_send_soon_slowly`."""
        return self._straight.send_soon(messages)

    def _send_soon_slowly(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None:
        """``send_soon`` for any burst: no single group address, AES-GCM, closed, or too big."""
        if self._closed:
            self._check_open()
        sealer = self._sealer
        limit = sealer.max_body_bytes
        for _, payload in messages:  # check_sizes written out: a call fewer per burst
            if len(payload) > limit:
                check_sizes(messages, limit)  # raises
        seal, address_of, own_id = sealer.seal, self._peer_addresses.get, self._node_id
        sendto, stats = self._send_socket.sendto, self._stats
        # Once per burst: it is one moment's peer list. A fixed group address (the
        # straight path's) is that list without asking for it.
        group = self._straight.group
        everyone = self._broadcast_addresses() if group is None else [group]
        only_one = everyone[0] if len(everyone) == 1 else None
        sent_frames = sent_bytes = 0
        waiting: list[tuple[bytes, list[Address]]] | None = None
        try:
            for node_id, payload in messages:
                if node_id is None:
                    datagram = seal(payload)
                    address = only_one
                elif node_id == own_id:
                    self._deliver(_new_delivery(Delivery, (node_id, bytes(payload))))
                    continue
                else:
                    datagram = seal(payload, node_id)
                    address = address_of(node_id, only_one)
                if address is None:
                    blocked = self._send_now(datagram, everyone)
                else:
                    try:
                        sendto(datagram, address)
                    except (BlockingIOError, InterruptedError):
                        blocked = [address]
                    except OSError as error:
                        self._send_failed(error, address)
                        continue
                    else:
                        sent_frames += 1
                        sent_bytes += len(datagram)
                        continue
                if blocked:
                    if waiting is None:
                        waiting = []
                    waiting.append((datagram, blocked))
        finally:
            # Counted once per burst; a sealing error (a bad node id) still counts what went.
            stats.sent_frames += sent_frames
            stats.sent_bytes += sent_bytes
        return None if waiting is None else self._send_all_blocked(waiting)

    async def _send_all_blocked(self, waiting: list[tuple[bytes, list[Address]]]) -> None:
        for datagram, addresses in waiting:
            await self._send_blocked(datagram, addresses)

    def receive_many(
        self, max_frames: int = DEFAULT_INBOX_FRAMES
    ) -> Coroutine[Any, Any, list[Delivery]]:
        """Wait for at least one delivery, then take up to ``max_frames`` that are waiting.

        For a runtime that handles what arrived in one go: one wake-up and one coroutine per
        burst instead of per datagram.
        """
        return self._inbox.get_many(max_frames)

    def deliver_to(self, consumer: Callable[[list[Delivery]], None] | None) -> None:
        self._inbox.hand_to(consumer)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._straight.limit = -1
        self._inbox.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TransportClosed):
                await task
        self._tasks.clear()
        self._close_sockets()

    # --- the receive path: every datagram of every socket ends here -----------------------

    def datagram_received(self, datagram: bytes, address: Address) -> None:
        """Check, count and route one datagram. Never raises on anything the network sends."""
        self.datagrams_received([(datagram, address)])

    def datagrams_received(self, batch: list[tuple[bytes, Address]]) -> None:
        """Check, count and route what one wake-up of a socket drained, in arrival order.

        Every datagram of every socket comes through here. A data frame from a peer whose
        header this path has already checked once (see :meth:`_remember`) takes the straight
        path (:meth:`StraightPath.receive`, compiled in the compiled build); anything else
        takes :meth:`_receive_one`, the full path. Replaced in ``__init__`` by
        :meth:`StraightPath.receive` itself; kept for readers: it does the same.
        """
        self._straight.receive(batch)

    def _receive_one(
        self, datagram: bytes, address: Address, deliver: Callable[[Delivery], None]
    ) -> int:
        """The full receive path for one datagram: hand ``deliver`` its delivery, if any, and
        return the payload's size (0 if none). Never raises on anything the network sends."""
        if address == self._own_address:
            # Our own multicast looped back (where the kernel filter could not drop it):
            # refused on the source address alone, before any parsing or tag work.
            self._stats.dropped[DropReason.OWN_ECHO] += 1
            return 0
        fields = self._unpack(datagram, self._replay_guard)
        if type(fields) is not tuple:  # a DropReason; isinstance on an enum costs 150 ns
            self._refused(cast(DropReason, fields), address)
            return 0
        kind, sender_id, incarnation, _, destination, body = fields
        if sender_id == self._node_id:
            self._stats.dropped[DropReason.OWN_ECHO] += 1
            self._warn_impostor(incarnation, address)
            if self._duplicate_listener is not None and incarnation != self._sealer.incarnation:
                self._duplicate_listener(address, incarnation)
            return 0
        if self._peer_addresses.get(sender_id) != address:
            self._learn(sender_id, address)
        if destination and destination != self._node_id:
            self._stats.dropped[DropReason.OTHER_DESTINATION] += 1
            return 0
        if kind:  # FrameKind.PEERS, the only other kind
            self._take_peer_list(body)
            return 0
        self._remember(datagram, sender_id, incarnation, address)
        deliver(_new_delivery(Delivery, (sender_id, body)))
        return len(body)

    def _remember(
        self, datagram: bytes, sender_id: str, incarnation: int, address: Address
    ) -> None:
        """Keep the header of a data frame that was just delivered, for the straight path.

        Everything before ``seq`` (magic, version, protection, kind, the id lengths, cluster,
        incarnation) and the ids after it are the same in every frame a sender sends to one
        destination, so once one such frame has passed every check, the next one needs only
        a byte comparison of its header, its tag, its replay window and its body. Only frames
        that were delivered are kept -- with a secret, only frames whose tag checked out -- and
        only with the address they came from, which the peer table also holds (``_learn`` and
        ``forget`` empty this cache when the table changes), so a frame that takes the straight
        path gets exactly the verdict and the side effects of the full one. With a secret the
        entry also holds the sender's replay window, the guard's own object (the frame just
        passed it, so it exists), which saves a lookup per frame; the guard empties this cache
        when it drops a window (``ReplayGuard.on_forget``), so no entry outlives its window.
        """
        known = self._known
        if len(known) >= _KNOWN_HEADERS:
            known.clear()  # bounded: without a secret anyone can make new headers
        ids_bytes = datagram[7] + datagram[8]
        header_end = HEADER_BYTES + ids_bytes
        known[datagram[:SEQ_OFFSET]] = KnownHeader(
            header_layout(ids_bytes),
            datagram[:SEQ_OFFSET],
            datagram[HEADER_BYTES:header_end],
            sender_id,
            header_end,
            address,
            incarnation,
            self._codec.cipher_for(
                datagram[HEADER_BYTES : HEADER_BYTES + datagram[7]], incarnation
            ),
            None if self._replay_guard is None else self._replay_guard.windows.get(sender_id),
        )

    def _refused(self, reason: DropReason, address: Address) -> None:
        self._stats.dropped[reason] += 1
        if reason in _WORTH_A_WARNING:
            self._warn_once(reason, address)

    def _learn(self, sender_id: str, address: Address) -> None:
        self._known.clear()  # the straight path skips learning: it must not outlive a change
        if self._peers.learn_direct(sender_id, address) and self._gossip_interval_s is not None:
            self._gossip_wanted.set()

    def _deliver(self, delivery: Delivery) -> None:
        if not self._inbox.put(delivery):
            self._stats.dropped[DropReason.OVERFLOW] += 1

    def _take_peer_list(self, body: bytes) -> None:
        entries = decode_peer_list(body)
        if entries is None:
            self._stats.dropped[DropReason.MALFORMED] += 1
            return
        usable = [(node_id, addr) for node_id, addr in entries if self._acceptable_peer(addr)]
        if self._peers.learn_reported(usable) and self._gossip_interval_s is not None:
            self._gossip_wanted.set()

    def _warn_once(self, reason: DropReason, address: Address) -> None:
        """Say once per source what a misconfigured peer looks like from here.

        A wrong secret or an old release on one node shows up only as counters otherwise;
        the set is bounded so a flood of forged sources cannot grow it, or the log, forever.
        """
        if address in self._warned_sources or len(self._warned_sources) >= _MAX_WARNED_SOURCES:
            return
        self._warned_sources.add(address)
        log.warning("dropping frames from %s: %s", address, _WORTH_A_WARNING[reason])

    def report_duplicate_id(self, listener: Callable[[Address, int], None] | None) -> None:
        """Call ``listener(address, incarnation)`` for every frame another process sends
        under our node id: the runtime decides which of the two must stop."""
        self._duplicate_listener = listener

    def _warn_impostor(self, incarnation: int, address: Address) -> None:
        """Two processes with one node id break Paxos's assumptions; say so once per address."""
        if incarnation == self._sealer.incarnation or address in self._impostors_seen:
            return
        self._impostors_seen.add(address)
        log.warning(
            "another process at %s sends as node id %r (incarnation %d, ours %d): give every "
            "node its own id",
            address,
            self._node_id,
            incarnation,
            self._sealer.incarnation,
        )

    # --- gossip: unicast scopes learn the peer list from each other ----------------------

    def _start_gossip(self) -> None:
        """Send our peer list at once (the hello to the seeds) and then on change or timer."""
        if self._gossip_interval_s is None:
            return
        self._gossip_wanted.set()
        self._tasks.append(asyncio.create_task(self._gossip_loop(self._gossip_interval_s)))

    async def _gossip_loop(self, interval_s: float) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gossip_wanted.wait(), interval_s)
            self._gossip_wanted.clear()
            body = encode_peer_list(self._peers.entries())
            if len(body) > self._sealer.max_body_bytes:
                log.warning("peer list of %d bytes does not fit one datagram", len(body))
                continue
            datagram = self._sealer.seal(body, kind=FrameKind.PEERS)
            blocked = self._send_now(datagram, self._peers.destinations())
            if blocked:
                await self._send_blocked(datagram, blocked)

    # --- sending: straight to the socket, waiting only when its buffer is full ------------

    def _send_now(self, datagram: bytes, addresses: Iterable[Address]) -> list[Address] | None:
        """Send without waiting; the addresses whose socket buffer was full, if any.

        Not a coroutine: a send that succeeds at once (nearly all of them) then costs no
        coroutine frame of its own, which at 100-byte frames is a tenth of the send path.
        """
        blocked: list[Address] | None = None
        sendto, stats = self._send_socket.sendto, self._stats
        for address in addresses:
            try:
                sendto(datagram, address)
            except (BlockingIOError, InterruptedError):
                if blocked is None:
                    blocked = []
                blocked.append(address)
                continue
            except OSError as error:
                self._send_failed(error, address)
                continue
            stats.sent_frames += 1
            stats.sent_bytes += len(datagram)
        return blocked

    async def _send_blocked(self, datagram: bytes, addresses: list[Address]) -> None:
        for address in addresses:
            await self._send_when_writable(datagram, address)

    async def _send_when_writable(self, datagram: bytes, address: Address) -> None:
        sock = self._send_socket
        assert isinstance(sock, socket.socket), "only a real socket can be full"
        try:
            await asyncio.get_running_loop().sock_sendto(sock, datagram, address)
        except OSError as error:
            self._send_failed(error, address)
            return
        self._stats.sent_frames += 1
        self._stats.sent_bytes += len(datagram)

    def _send_failed(self, error: OSError, address: Address) -> None:
        # A datagram send can fail for a moment (no route, no neighbour yet); the protocol
        # above retries, so count it and carry on rather than stop the node.
        self._stats.send_errors += 1
        log.debug("send to %s failed: %s", address, error)

    def _socket_error(self, error: OSError) -> None:
        """An error the kernel queued on a socket (an ICMP reply): it concerns an earlier send."""
        self._stats.send_errors += 1
        log.debug("socket of %s reported %s", self._node_id, error)

    # --- for subclasses ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"transport of node {self._node_id!r} is closed")

    def _acceptable_peer(self, address: Address) -> bool:
        """Whether a reported address may be sent to; subclasses check its shape."""
        return True

    def _broadcast_addresses(self) -> list[Address]:
        raise NotImplementedError

    def _close_sockets(self) -> None:
        raise NotImplementedError
