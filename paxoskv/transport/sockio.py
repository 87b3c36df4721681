"""Datagram sockets on the asyncio loop: drain on every wake-up, send without a detour.

Why not asyncio's datagram endpoints (or asyncio-dgram, built on them): they read exactly one
datagram per readiness event and, in asyncio-dgram, pass it through a queue and a task switch
before anyone sees it. On this machine that caps even raw, unframed loopback multicast at
about 15-25 thousand datagrams per second, below what a node under load receives (every
accept and commit notice of every slot goes to everyone). Reading until the socket is empty
on each wake-up, and handing the whole batch to the receive path at once, moves raw
datagrams at 130-180 thousand per second on the same machine, close to a blocking socket
loop with no event loop at all (benchmarks/transport.py measures all three). asyncio's
datagram endpoints also accept only ``SOCK_DGRAM``, and TIPC's ``SOCK_RDM`` needs the same
treatment anyway.

Sends go straight to ``sendto`` on the non-blocking socket; only when the socket buffer is
full does the sender wait for it to drain (``loop.sock_sendto``), which is the back-pressure
(endpoint.py).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import socket
import struct
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from paxoskv.transport.base import Address

__all__ = ["DatagramSocket", "SocketReader", "drop_own_echo"]

_READS_PER_WAKEUP = 256  # bound one socket's turn, so a flood cannot starve the loop
_FIONREAD = getattr(__import__("termios"), "FIONREAD", 0x541B)  # SIOCINQ, as Linux has it
_NOTHING = bytes(4)  # FIONREAD's answer for a socket with no datagram (or an empty one) next


class DatagramSocket(Protocol):
    """What the readers and senders use of a socket, so tests can stand in for a kernel."""

    def fileno(self) -> int: ...
    def getsockname(self) -> Any: ...
    def recvfrom(self, size_bytes: int, /) -> tuple[bytes, Any]: ...
    def sendto(self, data: bytes, address: Any, /) -> int: ...
    def close(self) -> None: ...


class SocketReader:
    """Hands ``on_datagrams`` everything a socket holds, one list of ``(datagram, address)``
    per wake-up of the event loop.

    A list per wake-up rather than a call per datagram: the receive path then runs its checks
    in one loop, updates its counters and wakes the runtime once per burst, which at 100-byte
    frames is a noticeable part of what a datagram costs in Python.
    """

    def __init__(
        self,
        sock: DatagramSocket,
        on_datagrams: Callable[[list[tuple[bytes, Address]]], None],
        on_error: Callable[[OSError], None],
        receive_bytes: int,
    ) -> None:
        self.sock = sock
        self._on_datagrams = on_datagrams
        self._on_error = on_error
        # One byte more than the largest datagram we accept, so an oversized one shows as
        # oversized rather than arriving silently truncated.
        self._receive_bytes = receive_bytes + 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_size: Callable[[], object] | None = None  # see _next_size_query
        self._next_size_bytes = bytearray(4)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._next_size = self._next_size_query()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None

    def _next_size_query(self) -> Callable[[], object] | None:
        """How to ask the kernel for the size of the next datagram waiting (FIONREAD, its
        answer left in ``self._next_size_bytes``), if this socket answers: a socket that does
        not (TIPC's, a test's stand-in) is drained until it says it is empty, as before.

        The answer goes into a bytearray: given bytes, ``ioctl`` first tries the argument as
        a writable buffer and fails, an exception made and cleared on every call."""
        answer = self._next_size_bytes
        try:
            fd = self.sock.fileno()
            fcntl.ioctl(fd, _FIONREAD, answer)
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        return partial(fcntl.ioctl, fd, _FIONREAD, answer)

    def _readable(self) -> None:
        """Read what the socket holds, and hand it on as one batch.

        After the first datagram the kernel is asked whether another waits (FIONREAD; 0 also
        for an empty datagram next, which the next wake-up reads: the loop polls readiness
        level-triggered). Most wake-ups at low load bring one datagram, and a read that finds
        the socket empty raises BlockingIOError, about three times what the question costs.
        Only when more are waiting is the socket drained until it is empty.
        """
        recvfrom, size = self.sock.recvfrom, self._receive_bytes
        batch: list[tuple[bytes, Address]] = []
        append = batch.append
        next_size = self._next_size
        if next_size is not None:
            try:
                append(recvfrom(size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                self._on_error(error)
            else:
                try:
                    next_size()
                    more = self._next_size_bytes != _NOTHING
                except OSError:
                    more = True
                if not more:
                    self._on_datagrams(batch)
                    return
        for _ in range(_READS_PER_WAKEUP - len(batch)):
            try:
                append(recvfrom(size))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                # An error queued on the socket (an ICMP reply to an earlier send): it belongs
                # to no datagram still waiting, so report it and keep reading.
                self._on_error(error)
        if batch:
            self._on_datagrams(batch)


# Classic BPF, as in linux/filter.h: a program the kernel runs on every datagram for a socket.
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_SKF_NET_OFF = -0x100000  # loads at this offset read the IP header, not the UDP one
_BPF_LD_W_ABS, _BPF_LD_H_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x28, 0x15, 0x06


def drop_own_echo(group_socket: socket.socket, own_address: tuple[str, int]) -> bool:
    """Have the kernel drop, on ``group_socket``, datagrams sent from ``own_address``.

    Multicast and broadcast loop back to every local member of the group, the sender
    included -- loopback must stay on, or nodes on one host would not hear each other. A node
    drops its own echo anyway (endpoint.py), but each echo still costs a wake-up and a read;
    for a leader, whose every accept goes to the group, that is one read in three in a
    three-node cluster. This filter makes the kernel discard the echo instead: source address
    and port equal to our unicast socket's, which no other socket can have. Linux only;
    elsewhere (or if the kernel refuses) it returns False and the check in user space stays.
    """
    if sys.platform != "linux":
        return False
    host, port = own_address
    source = int.from_bytes(socket.inet_aton(host), "big")
    program = [
        (_BPF_LD_W_ABS, 0, 0, (_SKF_NET_OFF + 12) & 0xFFFF_FFFF),  # A = IPv4 source address
        (_BPF_JEQ_K, 0, 3, source),  # not ours: accept
        (_BPF_LD_H_ABS, 0, 0, 0),  # A = UDP source port (the socket sees the UDP header)
        (_BPF_JEQ_K, 0, 1, port),  # not ours: accept
        (_BPF_RET_K, 0, 0, 0),  # our own echo: drop
        (_BPF_RET_K, 0, 0, 0xFFFF_FFFF),  # accept the whole datagram
    ]
    # The program in a buffer of its own, whose address struct sock_fprog carries (an array:
    # socket has already imported it, where ctypes would cost a node's start a millisecond or
    # two). ``code`` lives until setsockopt has returned, and the kernel copies it there.
    code = array.array("B", b"".join(struct.pack("HBBI", *op) for op in program))
    fprog = struct.pack("HP", len(program), code.buffer_info()[0])  # struct sock_fprog
    try:
        group_socket.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True
