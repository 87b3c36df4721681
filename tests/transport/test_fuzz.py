"""Anything the network can send is dropped and counted, never raised (as h11 fuzzes its parser).

The pure half drives :class:`FrameOpener` and the shared receive path with hypothesis; the
socket half fires seeded garbage at a live UDP node and shows it still works afterwards.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxoskv.transport import TransportSettings, UdpTransport
from paxoskv.transport.base import Address, DropReason
from paxoskv.transport.endpoint import FramedEndpoint
from paxoskv.transport.frames import Frame, FrameCodec, FrameOpener, FrameSealer

from .conftest import SECRET, wait_until

PROTECTIONS = [(None, False), (SECRET, False), (SECRET, True)]


def _genuine(secret: bytes | None, encrypt: bool, body: bytes, seq: int) -> bytes:
    sealer = FrameSealer(FrameCodec("fuzz", secret, encrypt=encrypt), "sender", 42)
    sealer.next_seq = seq
    return sealer.seal(body, destination="receiver")


class _Loose(FramedEndpoint):
    """The shared receive path with no sockets behind it."""

    def _broadcast_addresses(self) -> list[Address]:
        return []

    def _close_sockets(self) -> None:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), protection=st.sampled_from(PROTECTIONS))
def test_random_bytes_are_dropped(data: bytes, protection: tuple[bytes | None, bool]) -> None:
    secret, encrypt = protection
    result = FrameOpener(FrameCodec("fuzz", secret, encrypt=encrypt)).open(data)
    assert isinstance(result, DropReason)


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=64),
    cut=st.integers(min_value=0),
    protection=st.sampled_from(PROTECTIONS),
)
def test_truncated_frames_are_dropped(
    body: bytes, cut: int, protection: tuple[bytes | None, bool]
) -> None:
    secret, encrypt = protection
    datagram = _genuine(secret, encrypt, body, 0)
    truncated = datagram[: cut % len(datagram)]
    result = FrameCodec("fuzz", secret, encrypt=encrypt).open(truncated)
    if secret is None and len(truncated) >= len(datagram) - len(body):
        # Without a tag, a cut inside the body is undetectable (UDP's checksum guards that);
        # what comes out must still be well formed.
        assert isinstance(result, Frame) and body.startswith(result.body)
    else:
        assert isinstance(result, DropReason)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=64),
    bit=st.integers(min_value=0),
    encrypt=st.booleans(),
)
def test_any_flipped_bit_breaks_an_authenticated_frame(
    body: bytes, bit: int, encrypt: bool
) -> None:
    datagram = bytearray(_genuine(SECRET, encrypt, body, 3))
    position = bit % (len(datagram) * 8)
    datagram[position // 8] ^= 1 << (position % 8)
    result = FrameCodec("fuzz", SECRET, encrypt=encrypt).open(bytes(datagram))
    assert isinstance(result, DropReason)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=64), tag=st.binary(min_size=16, max_size=16))
def test_retagged_frames_are_bad_tags(body: bytes, tag: bytes) -> None:
    """A frame whose tag was replaced (by someone without the secret) is refused."""
    datagram = _genuine(SECRET, False, body, 0)
    forged = datagram[:-16] + tag
    expected_ok = forged == datagram
    result = FrameCodec("fuzz", SECRET).open(forged)
    assert isinstance(result, Frame) if expected_ok else result is DropReason.BAD_TAG


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datagrams=st.lists(st.binary(max_size=200), max_size=20),
    protection=st.sampled_from(PROTECTIONS),
)
def test_the_receive_path_counts_every_bad_datagram(
    datagrams: list[bytes], protection: tuple[bytes | None, bool]
) -> None:
    secret, encrypt = protection
    codec = FrameCodec("fuzz", secret, encrypt=encrypt)
    endpoint = _Loose("receiver", codec, ("h", 1), socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    for index, datagram in enumerate(datagrams):
        endpoint.datagram_received(datagram, ("10.0.0.1", 1000 + index))
    endpoint._send_socket.close()
    stats = endpoint.stats
    assert stats.dropped_total == len(datagrams)
    assert stats.received_frames == 0


@pytest.mark.parametrize("secret", [None, SECRET])
async def test_a_live_node_survives_a_seeded_flood_of_garbage(
    group_settings: Callable[..., TransportSettings], secret: bytes | None
) -> None:
    rng = random.Random(1234)
    settings = group_settings(secret=secret)
    genuine = FrameSealer(FrameCodec("paxos-kv", secret), "sender", 1).seal(b"real")
    garbage = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200))) for _ in range(150)]
    header_end = len(genuine) - len(b"real") - (16 if secret else 0)
    garbage += [genuine[: rng.randrange(header_end)] for _ in range(50)]
    # Bits of the version, protection, kind and cluster bytes: caught with or without a
    # secret (without one, a flipped length or sequence number is a different valid frame).
    checked_bytes = [4, 5, 6, *range(9, 17)]
    flipped = []
    for _ in range(50):
        damaged = bytearray(genuine)
        damaged[rng.choice(checked_bytes)] ^= 1 << rng.randrange(8)
        flipped.append(bytes(damaged))
    garbage += flipped
    async with (
        await UdpTransport.open("victim", settings) as victim,
        await UdpTransport.open("sender", settings) as sender,
    ):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
            attacker.bind(("127.0.0.1", 0))
            for datagram in garbage:
                attacker.sendto(datagram, victim.local_address)  # type: ignore[arg-type]
        await wait_until(lambda: victim.stats.dropped_total >= len(garbage))
        assert victim.stats.received_frames == 0
        await sender.broadcast(b"still alive")
        assert await victim.receive() == ("sender", b"still alive")
        assert victim.stats.dropped_total == len(garbage)
