"""How a socket reader drains a socket: one read for a lone datagram, all of a burst."""

from __future__ import annotations

import socket
from typing import Any

from paxoskv.transport.sockio import SocketReader


class _CountingSocket:
    """A real socket whose reads are counted (the reader asks the kernel about its fd)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def recvfrom(self, size_bytes: int, /) -> tuple[bytes, Any]:
        self.reads += 1
        return self.sock.recvfrom(size_bytes)

    def sendto(self, data: bytes, address: Any, /) -> int:
        return self.sock.sendto(data, address)

    def close(self) -> None:
        self.sock.close()


class _NoFileSocket(_CountingSocket):
    """A stand-in the kernel cannot be asked about: the reader drains it until it is empty."""

    def fileno(self) -> int:
        return -1


def _reader(sock: _CountingSocket) -> tuple[SocketReader, list[list[Any]]]:
    batches: list[list[Any]] = []
    reader = SocketReader(sock, batches.append, lambda error: None, 65_000)
    reader._next_size = reader._next_size_query()  # what start() does, without a loop
    return reader, batches


def _pair() -> tuple[socket.socket, socket.socket]:
    # Unix datagram sockets: a datagram sent is queued at the other end before send returns.
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    two.setblocking(False)
    return one, two


def test_a_lone_datagram_takes_one_read() -> None:
    """No second read to find the socket empty (an exception per wake-up)."""
    sender, receiver = _pair()
    counting = _CountingSocket(receiver)
    reader, batches = _reader(counting)
    assert reader._next_size is not None
    sender.send(b"one")
    reader._readable()
    assert [[datagram for datagram, _ in batch] for batch in batches] == [[b"one"]]
    assert counting.reads == 1
    reader._readable()  # a wake-up that finds nothing: one read, no batch
    assert len(batches) == 1 and counting.reads == 2
    sender.close()
    receiver.close()


def test_a_burst_is_taken_in_one_wake_up_in_order() -> None:
    sender, receiver = _pair()
    for sock in (_CountingSocket(receiver), _NoFileSocket(receiver)):
        reader, batches = _reader(sock)
        assert (reader._next_size is None) is isinstance(sock, _NoFileSocket)
        payloads = [b"p%d" % i for i in range(5)] + [b"", b"after an empty one"]
        for payload in payloads:
            sender.send(payload)
        reader._readable()
        assert [[datagram for datagram, _ in batch] for batch in batches] == [payloads]
        assert sock.reads == len(payloads) + 1  # and one that found the socket empty
    sender.close()
    receiver.close()


def test_an_empty_datagram_after_the_first_is_read_on_the_next_wake_up() -> None:
    """FIONREAD says 0 for an empty datagram next, as for none: the reader stops there and
    the level-triggered loop wakes it again for what is left, which it then reads in order."""
    sender, receiver = _pair()
    reader, batches = _reader(_CountingSocket(receiver))
    for payload in (b"one", b"", b"two"):
        sender.send(payload)
    reader._readable()
    reader._readable()  # the wake-up the socket's readiness brings
    assert [datagram for batch in batches for datagram, _ in batch] == [b"one", b"", b"two"]
    reader._readable()
    assert len(batches) == 2
    sender.close()
    receiver.close()
