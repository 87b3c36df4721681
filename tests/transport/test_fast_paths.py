"""The written-out fast paths mean exactly what the general ones mean, frame for frame.

The receive path takes a data frame whose header it has checked before by a straight path
(endpoint.py, ``FramedEndpoint._remember``), and ``send_many``/``broadcast`` send to a single
address without going through ``_send_now``. Both exist for speed only: here a reference
endpoint that never takes the straight path (it remembers nothing) gets the same datagrams --
valid, replayed, reordered, damaged, foreign, from moved or impersonated senders -- and must
deliver, count and learn exactly the same; and bursts must put the same bytes on the wire as
the general send path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxoskv.transport.base import Address, Delivery
from paxoskv.transport.endpoint import FramedEndpoint
from paxoskv.transport.frames import FrameCodec, FrameKind, FrameSealer, encode_node_id

from .conftest import SECRET

PROTECTIONS = [(None, False), (SECRET, False), (SECRET, True)]
RECEIVER = "rx"
OWN_ADDRESS: Address = ("10.0.0.9", 9)
SOURCES: list[Address] = [("10.0.0.1", 1), ("10.0.0.2", 2), OWN_ADDRESS]
MAX_DATAGRAM_BYTES = 700


class _Recorder:
    """A socket that records what is sent and fails for one address, as a kernel may."""

    def __init__(self, failing: Address | None = None) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.failing = failing

    def sendto(self, data: bytes, address: Any, /) -> int:
        if address == self.failing:
            raise OSError("no route")
        self.sent.append((data, address))
        return len(data)

    def recvfrom(self, size_bytes: int, /) -> tuple[bytes, Any]:
        raise BlockingIOError

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> Any:
        return OWN_ADDRESS

    def close(self) -> None:
        pass


class _Endpoint(FramedEndpoint):
    def __init__(self, codec: FrameCodec, everyone: list[Address], sock: _Recorder) -> None:
        super().__init__(RECEIVER, codec, OWN_ADDRESS, sock, incarnation=7, replay_window_frames=8)
        self.everyone = everyone
        if len(everyone) == 1:
            self._group_target = everyone[0]  # as UDP's multicast and broadcast scopes do

    def _broadcast_addresses(self) -> list[Address]:
        return self.everyone

    def _close_sockets(self) -> None:
        pass


class _Reference(_Endpoint):
    """Never remembers a header, so every datagram takes the full path."""

    def _remember(
        self, datagram: bytes, sender_id: str, incarnation: int, address: Address
    ) -> None:
        pass


def _drain(endpoint: FramedEndpoint) -> list[Delivery]:
    taken = []
    inbox = endpoint._inbox
    while len(inbox):
        taken.append(inbox._items.popleft())
    return taken


# One step of the story a receiver hears: which sender (id, incarnation), to whom, what, from
# where, how the sender's numbering moves, and what happened to the datagram on the way.
_senders = st.sampled_from(
    [
        ("s1", 1),
        ("s2", 1),  # same id length and incarnation as s1: the same header up to seq
        ("s1", 2),  # s1 restarted
        ("longer-id", 5),
        (RECEIVER, 7),  # ourselves, or an impostor with our id
        (RECEIVER, 8),
    ]
)
_damage = st.sampled_from(["none", "none", "none", "replay", "flip", "cut", "retag", "pad"])
_step = st.tuples(
    _senders,
    st.sampled_from(["", "", RECEIVER, "other"]),
    st.sampled_from([FrameKind.DATA, FrameKind.DATA, FrameKind.DATA, FrameKind.PEERS]),
    st.binary(max_size=40),
    st.sampled_from([0, 0, 0, 1]),  # source: mostly the first one
    st.sampled_from([1, 1, 1, 0, 3, 12]),  # how far the sender's seq moves first
    _damage,
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from([False, False, False, False, True]),  # forget the sender first
    st.sampled_from([False, False, True]),  # end the batch after this datagram
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    protection=st.sampled_from(PROTECTIONS),
    steps=st.lists(_step, max_size=40),
    max_senders=st.sampled_from(
        [4096, 2]
    ),  # 2: the guard drops windows, and known headers hold them
)
def test_the_receive_paths_straight_case_agrees_with_the_full_path(
    protection: tuple[bytes | None, bool], steps: list[Any], max_senders: int
) -> None:
    secret, encrypt = protection
    codec = FrameCodec("fast", secret, encrypt=encrypt, max_datagram_bytes=MAX_DATAGRAM_BYTES)
    fast = _Endpoint(codec, [], _Recorder())
    reference = _Reference(
        FrameCodec("fast", secret, encrypt=encrypt, max_datagram_bytes=MAX_DATAGRAM_BYTES),
        [],
        _Recorder(),
    )
    for endpoint in (fast, reference):
        endpoint._opener.guard.max_senders = max_senders
    sealers: dict[tuple[str, int], FrameSealer] = {}
    sent: list[bytes] = []
    batch: list[tuple[bytes, Address]] = []
    for step in steps:
        (node_id, incarnation), destination, kind, body, source, skip, damage, at, forget, end = (
            step
        )
        sealer = sealers.setdefault(
            (node_id, incarnation), FrameSealer(codec, node_id, incarnation)
        )
        sealer.next_seq += skip
        if kind is FrameKind.PEERS:
            body = b"\x90"  # an empty peer list
        datagram = sealer.seal(body, destination, kind)
        if damage == "replay" and sent:
            datagram = sent[at % len(sent)]
        elif damage == "flip":
            flipped = bytearray(datagram)
            flipped[at % len(flipped)] ^= 1 << (at % 8)
            datagram = bytes(flipped)
        elif damage == "cut":
            datagram = datagram[: at % len(datagram)]
        elif damage == "retag" and secret is not None:
            datagram = datagram[:-16] + bytes(16)
        elif damage == "pad":
            datagram += bytes(MAX_DATAGRAM_BYTES)  # oversized
        sent.append(datagram)
        if forget:
            fast.forget(node_id)
            reference.forget(node_id)
        batch.append((datagram, SOURCES[source]))
        if end:
            fast.datagrams_received(batch)
            reference.datagrams_received(batch)
            batch = []
        assert _drain(fast) == _drain(reference)
        assert fast.stats == reference.stats
        assert fast.peers == reference.peers
    fast.datagrams_received(batch)
    reference.datagrams_received(batch)
    assert _drain(fast) == _drain(reference)
    assert fast.stats == reference.stats
    assert fast.peers == reference.peers
    assert fast._impostors_seen == reference._impostors_seen
    assert fast._warned_sources == reference._warned_sources


def test_the_straight_case_is_taken_and_a_replay_through_it_is_refused() -> None:
    """The test above would pass if the straight case never ran: show that it does."""
    codec = FrameCodec("fast", SECRET)
    receiver = _Endpoint(codec, [], _Recorder())
    sealer = FrameSealer(codec, "s1", 1)
    first, second = sealer.seal(b"one"), sealer.seal(b"two")
    receiver.datagrams_received([(first, SOURCES[0])])
    assert len(receiver._known) == 1
    full_path = receiver._receive_one
    receiver._receive_one = None  # type: ignore[assignment,method-assign]
    receiver.datagrams_received([(second, SOURCES[0]), (second, SOURCES[0])])
    receiver._receive_one = full_path  # type: ignore[method-assign]
    assert [tuple(d) for d in _drain(receiver)] == [("s1", b"one"), ("s1", b"two")]
    assert receiver.stats.dropped_total == 1


def test_a_window_the_guard_drops_leaves_the_known_headers_with_it() -> None:
    """Known headers hold their sender's replay window; when the guard drops that window to
    make room, they must go too, or the sender's frames would be checked against two."""
    codec = FrameCodec("fast", SECRET)
    receiver = _Endpoint(codec, [], _Recorder())
    guard = receiver._opener.guard
    guard.max_senders = 1
    first = FrameSealer(codec, "s1", 1).seal(b"one")
    receiver.datagrams_received([(first, SOURCES[0])])
    assert receiver._known and next(iter(receiver._known.values())).window is guard.windows["s1"]
    receiver.datagrams_received([(FrameSealer(codec, "s2", 1).seal(b"two"), SOURCES[1])])
    assert list(guard.windows) == ["s2"]
    assert all(entry.sender_id == "s2" for entry in receiver._known.values())


def test_a_header_matched_earlier_in_a_batch_is_not_used_after_the_full_path_ran() -> None:
    """The straight path reads each frame with the header the previous one matched; a frame
    that took the full path in between may have emptied the known headers (here the guard
    drops s1's window for s2), so s1's next frame must be looked up again, not read with the
    header that still holds the dropped window."""
    codec = FrameCodec("fast", SECRET)
    receiver = _Endpoint(codec, [], _Recorder())
    guard = receiver._opener.guard
    guard.max_senders = 1
    s1 = FrameSealer(codec, "s1", 1)
    receiver.datagrams_received([(s1.seal(b"one"), SOURCES[0])])
    receiver.datagrams_received(
        [
            (s1.seal(b"two"), SOURCES[0]),
            (FrameSealer(codec, "s2", 1).seal(b"other"), SOURCES[1]),
            (s1.seal(b"three"), SOURCES[0]),
        ]
    )
    assert [d.payload for d in _drain(receiver)] == [b"one", b"two", b"other", b"three"]
    assert list(guard.windows) == ["s1"]  # s1's frame went through the guard again


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    protection=st.sampled_from(PROTECTIONS),
    everyone=st.sampled_from([[], [("239.1.1.1", 5)], [("10.0.0.1", 1), ("10.0.0.2", 2)]]),
    known=st.sets(st.sampled_from(["s1", "s2", "s3"])),
    failing=st.sampled_from([None, ("239.1.1.1", 5), ("10.0.0.2", 2)]),
    burst=st.lists(
        st.tuples(
            st.sampled_from([None, None, "s1", "s2", "s3", RECEIVER]), st.binary(max_size=20)
        ),
        max_size=12,
    ),
)
def test_bursts_and_broadcasts_send_what_the_general_path_sends(
    protection: tuple[bytes | None, bool],
    everyone: list[Address],
    known: set[str],
    failing: Address | None,
    burst: list[tuple[str | None, bytes]],
) -> None:
    secret, encrypt = protection
    codec = FrameCodec("fast", secret, encrypt=encrypt)
    addresses = {"s1": ("10.0.0.1", 1), "s2": ("10.0.0.2", 2), "s3": ("10.0.0.3", 3)}
    endpoints = []
    for _ in range(3):
        endpoint = _Endpoint(codec, everyone, _Recorder(failing))
        for node_id in sorted(known):
            endpoint._peers.learn_direct(node_id, addresses[node_id])
        endpoints.append(endpoint)
    with_burst, one_by_one, general = endpoints

    asyncio.run(with_burst.send_many(burst))

    async def each() -> None:
        for node_id, payload in burst:
            if node_id is None:
                await one_by_one.broadcast(payload)
            else:
                await one_by_one.send(node_id, payload)

    asyncio.run(each())
    # The reference: seal with the general sealer, send through _send_now, for each.
    for node_id, payload in burst:
        if node_id == RECEIVER:
            general._deliver(Delivery(node_id, payload))
            continue
        destination = "" if node_id is None else node_id
        datagram = codec.seal(
            FrameKind.DATA,
            encode_node_id(RECEIVER),
            7,
            general._sealer.next_seq,
            destination.encode(),
            payload,
        )
        general._sealer.next_seq += 1
        address = None if node_id is None else general.peers.get(node_id)
        assert not general._send_now(datagram, everyone if address is None else [address])
    delivered = _drain(general)
    for endpoint in (with_burst, one_by_one):
        assert endpoint._send_socket.sent == general._send_socket.sent  # type: ignore[attr-defined]
        assert endpoint.stats == general.stats
        assert _drain(endpoint) == delivered


def test_a_sender_seen_at_a_new_address_is_relearned_whichever_header_it_uses() -> None:
    """Headers are remembered with their source address, and the peer table is the truth:
    when one header shows the sender elsewhere, the others must not keep the old address."""
    codec = FrameCodec("fast", SECRET)
    fast, reference = _Endpoint(codec, [], _Recorder()), _Reference(codec, [], _Recorder())
    sealer = FrameSealer(codec, "s1", 1)
    story = [
        (sealer.seal(b"to all"), SOURCES[0]),
        (sealer.seal(b"to rx", RECEIVER), SOURCES[0]),
        (sealer.seal(b"to rx", RECEIVER), SOURCES[1]),  # s1 seen at another address
        (sealer.seal(b"to all"), SOURCES[0]),  # and back, through the other header
    ]
    for datagram, source in story:
        for endpoint in (fast, reference):
            endpoint.datagrams_received([(datagram, source)])
        assert fast.peers == reference.peers
    assert fast.peers == {"s1": SOURCES[0]}
    assert _drain(fast) == _drain(reference)


def test_bytes_like_payloads_and_bad_node_ids_get_the_same_answer_in_both_builds() -> None:
    """Compiled, a parameter annotated ``bytes`` or ``str`` refuses anything else on entry
    with a bare TypeError; what an application hands ``broadcast``/``send`` must get what the
    pure build gives: a bytearray or memoryview is sent as its bytes, a node id that is not a
    usable str is a ConfigurationError (frames.py: ``Payload``, ``encode_node_id``)."""
    from paxoskv.errors import ConfigurationError

    for secret, encrypt in PROTECTIONS:
        codec = FrameCodec("fast", secret, encrypt=encrypt)
        group: list[Address] = [("239.1.1.1", 5)]
        like, plain = _Endpoint(codec, group, _Recorder()), _Endpoint(codec, group, _Recorder())
        for payload in (bytearray(b"xy"), memoryview(b"xy")):
            asyncio.run(like.broadcast(payload))  # type: ignore[arg-type]
            asyncio.run(plain.broadcast(b"xy"))
            asyncio.run(like.send("s1", payload))  # type: ignore[arg-type]
            asyncio.run(plain.send("s1", b"xy"))
            # send_soon (the runtime's way) and send_many, a pair given as a list too
            burst: list[Any] = [(None, payload), ["s1", payload], (RECEIVER, payload)]
            assert like.send_soon(burst) is None
            assert plain.send_soon([(None, b"xy"), ("s1", b"xy"), (RECEIVER, b"xy")]) is None
            asyncio.run(like.send_many(burst))
            asyncio.run(plain.send_many([(None, b"xy"), ("s1", b"xy"), (RECEIVER, b"xy")]))
        if not encrypt:  # AES-GCM's nonces come from the sender's key: same bytes per seq
            assert like._send_socket.sent == plain._send_socket.sent  # type: ignore[attr-defined]
        assert len(like._send_socket.sent) == 12  # type: ignore[attr-defined]
        assert [d.payload for d in _drain(like)] == [b"xy"] * 4
        for node_id in (123, b"s1"):  # a bad id mid-burst: the frames before it went
            sent = len(like._send_socket.sent)  # type: ignore[attr-defined]
            try:
                like.send_soon([(None, b"x"), (node_id, b"x")])
            except ConfigurationError:
                pass
            else:
                raise AssertionError(f"{node_id!r} was taken for a node id")
            assert len(like._send_socket.sent) == sent + 1  # type: ignore[attr-defined]
        for node_id in (123, None, b"s1"):
            if node_id is not None:  # send(None, ...) has always meant everyone, in both builds
                try:
                    asyncio.run(like.send(node_id, b"x"))  # type: ignore[arg-type]
                except ConfigurationError:
                    pass
                else:
                    raise AssertionError(f"{node_id!r} was taken for a node id")
            try:
                FrameSealer(codec, node_id, 1)
            except ConfigurationError:
                pass
            else:
                raise AssertionError(f"{node_id!r} was taken for a node id")


class _Full(_Recorder):
    """A socket whose buffer is full for one address: that send would block."""

    def sendto(self, data: bytes, address: Any, /) -> int:
        if address == self.failing:
            raise BlockingIOError
        self.sent.append((data, address))
        return len(data)


def test_send_soon_hands_back_what_a_full_socket_refused_and_sends_the_rest_at_once() -> None:
    for secret, encrypt in PROTECTIONS:  # the straight path, and AES-GCM's slow one
        codec = FrameCodec("fast", secret, encrypt=encrypt)
        group: Address = ("239.1.1.1", 5)
        endpoint = _Endpoint(codec, [group], _Full(failing=("10.0.0.1", 1)))
        endpoint._peers.learn_direct("s1", ("10.0.0.1", 1))
        rest = endpoint.send_soon([(None, b"a"), ("s1", b"b"), (None, b"c")])
        assert rest is not None  # the frame to s1 waits for room; the others went
        sent = endpoint._send_socket.sent  # type: ignore[attr-defined]
        assert [address for _, address in sent] == [group, group]
        assert endpoint.stats.sent_frames == 2
        rest.close()  # (awaiting it needs a real socket: _send_when_writable)
