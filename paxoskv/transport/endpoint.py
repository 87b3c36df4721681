"""What UDP and TIPC share: framing, peer learning, routing, the inbox and the counters.

A concrete transport supplies the sockets: the one it sends from, where a broadcast goes
(``_broadcast_addresses``), which address is its own, and a call to
:meth:`FramedEndpoint.datagram_received` for every datagram that arrives. The rest -- the one
receive path that checks, counts and routes every datagram -- lives here once.

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
from collections.abc import Mapping

from paxoskv.errors import TransportClosed
from paxoskv.transport.base import Address, ClosesOnExit, Delivery, DropReason, TransportStats
from paxoskv.transport.frames import Frame, FrameCodec, FrameKind, FrameOpener, FrameSealer
from paxoskv.transport.inbox import DEFAULT_INBOX_FRAMES, Inbox
from paxoskv.transport.peers import PeerTable, decode_peer_list, encode_peer_list
from paxoskv.transport.replay import DEFAULT_WINDOW_FRAMES
from paxoskv.transport.sockio import DatagramSocket

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
        self._own_address = own_address
        self._peers = PeerTable(node_id, own_address, seeds)
        self._inbox = Inbox(inbox_frames)
        self._stats = TransportStats()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._gossip_interval_s = gossip_interval_s
        self._gossip_wanted = asyncio.Event()
        self._impostors_seen: set[Address] = set()
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
        return self._stats

    @property
    def peers(self) -> Mapping[str, Address]:
        """The unicast address of every node heard of, directly or by report."""
        return self._peers.as_mapping()

    def forget(self, node_id: str) -> None:
        """Stop addressing a node that left the cluster (the runtime calls this)."""
        self._peers.forget(node_id)

    async def send(self, node_id: str, payload: bytes) -> None:
        self._check_open()
        if node_id == self._node_id:
            self._deliver(Delivery(node_id, bytes(payload)))
            return
        datagram = self._sealer.seal(payload, node_id)
        address = self._peers.address_of(node_id)
        for destination in self._broadcast_addresses() if address is None else [address]:
            if not self._send_now(datagram, destination):
                await self._send_when_writable(datagram, destination)

    async def broadcast(self, payload: bytes) -> None:
        self._check_open()
        datagram = self._sealer.seal(payload)
        for address in self._broadcast_addresses():
            if not self._send_now(datagram, address):
                await self._send_when_writable(datagram, address)

    async def receive(self) -> Delivery:
        return await self._inbox.get()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
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
        if address == self._own_address:
            self._stats.dropped[DropReason.OWN_ECHO] += 1
            return
        frame = self._opener.open(datagram)
        if isinstance(frame, DropReason):
            self._stats.dropped[frame] += 1
            if frame in _WORTH_A_WARNING:
                self._warn_once(frame, address)
            return
        sender_id = frame.sender_id
        if sender_id == self._node_id:
            self._stats.dropped[DropReason.OWN_ECHO] += 1
            self._warn_impostor(frame, address)
            return
        if self._peers.learn_direct(sender_id, address) and self._gossip_interval_s is not None:
            self._gossip_wanted.set()
        if frame.destination and frame.destination != self._node_id:
            self._stats.dropped[DropReason.OTHER_DESTINATION] += 1
            return
        if frame.kind is FrameKind.PEERS:
            self._take_peer_list(frame.body)
            return
        self._stats.received_frames += 1
        self._stats.received_bytes += len(frame.body)
        self._deliver(Delivery(sender_id, frame.body))

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

    def _warn_impostor(self, frame: Frame, address: Address) -> None:
        """Two processes with one node id break Paxos's assumptions; say so once per address."""
        if frame.incarnation == self._sealer.incarnation or address in self._impostors_seen:
            return
        self._impostors_seen.add(address)
        log.warning(
            "another process at %s sends as node id %r (incarnation %d, ours %d): give every "
            "node its own id",
            address,
            self._node_id,
            frame.incarnation,
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
            for address in self._peers.destinations():
                if not self._send_now(datagram, address):
                    await self._send_when_writable(datagram, address)

    # --- sending: straight to the socket, waiting only when its buffer is full ------------

    def _send_now(self, datagram: bytes, address: Address) -> bool:
        """Send without waiting; False if the socket buffer is full and the caller must wait.

        Not a coroutine: a send that succeeds at once (nearly all of them) then costs no
        coroutine frames at all, which is a fifth of the whole send path at 100-byte frames.
        """
        try:
            self._send_socket.sendto(datagram, address)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as error:
            self._send_failed(error, address)
            return True
        self._stats.sent_frames += 1
        self._stats.sent_bytes += len(datagram)
        return True

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
