"""Frames without a network: layout, authentication, encryption, refusals."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.errors import ConfigurationError, PayloadTooLarge
from paxoskv.transport.base import DropReason
from paxoskv.transport.frames import (
    HEADER_BYTES,
    MAGIC,
    MAX_NODE_ID_BYTES,
    TAG_BYTES,
    Frame,
    FrameCodec,
    FrameKind,
    FrameOpener,
    FrameSealer,
    Protection,
    _HmacSha256,
    encode_node_id,
    native_keyed,
)

SECRET = b"0123456789abcdef0123456789abcdef"


def codec(**kwargs: object) -> FrameCodec:
    return FrameCodec("alpha", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("secret", "encrypt", "protection"),
    [
        (None, False, Protection.NONE),
        (SECRET, False, Protection.HMAC),
        (SECRET, True, Protection.AES_GCM),
    ],
)
def test_round_trip_keeps_every_header_fact(
    secret: bytes | None, encrypt: bool, protection: Protection
) -> None:
    sealer = FrameSealer(codec(secret=secret, encrypt=encrypt), "node-é", incarnation=7)
    datagram = sealer.seal(b"body bytes", destination="peer")
    frame = codec(secret=secret, encrypt=encrypt).open(datagram)
    assert frame == Frame(FrameKind.DATA, "node-é", 7, 0, "peer", b"body bytes")
    assert datagram[5] == protection
    tag_bytes = TAG_BYTES if secret else 0
    assert len(datagram) == HEADER_BYTES + len("node-é".encode()) + 4 + 10 + tag_bytes


def test_sequence_numbers_count_up_per_sealer() -> None:
    sealer = FrameSealer(codec(), "a", incarnation=1)
    seqs = [codec().open(sealer.seal(b"x")) for _ in range(3)]
    assert [f.seq for f in seqs if isinstance(f, Frame)] == [0, 1, 2]


def test_encryption_hides_the_body_and_hmac_does_not() -> None:
    body = b"the secret session cookie"
    plain = FrameSealer(codec(secret=SECRET), "a", 1).seal(body)
    hidden = FrameSealer(codec(secret=SECRET, encrypt=True), "a", 1).seal(body)
    assert body in plain
    assert body not in hidden


@pytest.mark.parametrize("encrypt", [False, True])
def test_wrong_secret_is_a_bad_tag(encrypt: bool) -> None:
    datagram = FrameSealer(codec(secret=SECRET, encrypt=encrypt), "a", 1).seal(b"x")
    other = codec(secret=b"another-secret-of-enough-length!", encrypt=encrypt)
    assert other.open(datagram) is DropReason.BAD_TAG


def test_other_cluster_is_foreign() -> None:
    datagram = FrameSealer(FrameCodec("beta", SECRET), "a", 1).seal(b"x")
    assert FrameCodec("alpha", SECRET).open(datagram) is DropReason.FOREIGN_CLUSTER


@pytest.mark.parametrize(
    ("sender_secret", "receiver_secret", "encrypt"),
    [(None, SECRET, False), (SECRET, None, False), (SECRET, SECRET, "sender only")],
)
def test_protection_mismatch_is_a_bad_tag(
    sender_secret: bytes | None, receiver_secret: bytes | None, encrypt: object
) -> None:
    """An unauthenticated frame is not believed, nor one this node cannot check."""
    datagram = FrameSealer(codec(secret=sender_secret, encrypt=bool(encrypt)), "a", 1).seal(b"x")
    assert codec(secret=receiver_secret).open(datagram) is DropReason.BAD_TAG


def test_bad_magic_version_and_kind_are_named() -> None:
    datagram = FrameSealer(codec(), "a", 1).seal(b"x")
    assert codec().open(b"XXXX" + datagram[4:]) is DropReason.MALFORMED
    assert codec().open(datagram[:4] + b"\x09" + datagram[5:]) is DropReason.WRONG_VERSION
    assert codec().open(datagram[:6] + b"\x07" + datagram[7:]) is DropReason.MALFORMED
    assert codec().open(datagram[: HEADER_BYTES - 1]) is DropReason.MALFORMED


def test_lengths_past_the_end_are_malformed() -> None:
    header = struct.pack("!4sBBBBB8sQQ", MAGIC, 1, 0, 0, 200, 0, codec().cluster_id, 1, 1)
    assert codec().open(header + b"short") is DropReason.MALFORMED


def test_empty_sender_and_bad_utf8_are_malformed() -> None:
    cluster = codec().cluster_id
    empty = struct.pack("!4sBBBBB8sQQ", MAGIC, 1, 0, 0, 0, 0, cluster, 1, 1)
    assert codec().open(empty + b"body") is DropReason.MALFORMED
    bad = struct.pack("!4sBBBBB8sQQ", MAGIC, 1, 0, 0, 2, 0, cluster, 1, 1) + b"\xff\xfe"
    assert codec().open(bad + b"body") is DropReason.MALFORMED


def test_oversized_datagram_is_dropped_before_parsing() -> None:
    small = FrameCodec("alpha", max_datagram_bytes=2048)
    assert small.open(b"\x00" * 2049) is DropReason.OVERSIZED


def test_payload_over_the_limit_is_refused_with_the_limit_in_the_message() -> None:
    sealer = FrameSealer(FrameCodec("alpha", SECRET, max_datagram_bytes=2048), "node-1", 1)
    limit = 2048 - HEADER_BYTES - len(b"node-1") - MAX_NODE_ID_BYTES - TAG_BYTES
    assert sealer.max_body_bytes == limit
    sealer.seal(b"x" * limit, destination="d" * MAX_NODE_ID_BYTES)  # the worst case still fits
    with pytest.raises(PayloadTooLarge, match=f"limit of {limit} bytes") as refused:
        sealer.seal(b"x" * (limit + 1))
    assert refused.value.limit == limit


def test_a_largest_frame_opens_at_the_limit() -> None:
    small = FrameCodec("alpha", SECRET, max_datagram_bytes=2048)
    sealer = FrameSealer(small, "n", 1)
    datagram = sealer.seal(b"y" * sealer.max_body_bytes, destination="d" * MAX_NODE_ID_BYTES)
    assert len(datagram) == 2048
    assert isinstance(small.open(datagram), Frame)


def test_replayed_frame_is_dropped_only_with_a_secret() -> None:
    keyed = FrameOpener(codec(secret=SECRET))
    datagram = FrameSealer(codec(secret=SECRET), "a", 1).seal(b"x")
    assert isinstance(keyed.open(datagram), Frame)
    assert keyed.open(datagram) is DropReason.REPLAYED
    open_cluster = FrameOpener(codec())
    plain = FrameSealer(codec(), "a", 1).seal(b"x")
    assert isinstance(open_cluster.open(plain), Frame)
    assert isinstance(open_cluster.open(plain), Frame)  # without a secret, nothing to trust


def test_a_forged_frame_does_not_move_the_replay_window() -> None:
    """Only authentic frames may advance a window, or a forger could lock a sender out."""
    opener = FrameOpener(codec(secret=SECRET))
    forger = FrameSealer(codec(secret=b"the-attackers-own-secret-32bytes"), "a", 1)
    forger.next_seq = 10_000
    assert opener.open(forger.seal(b"x")) is DropReason.BAD_TAG
    assert isinstance(opener.open(FrameSealer(codec(secret=SECRET), "a", 1).seal(b"x")), Frame)


@pytest.mark.parametrize("node_id", ["", "x" * (MAX_NODE_ID_BYTES + 1), "é" * 128])
def test_node_ids_the_frame_cannot_carry_are_refused(node_id: str) -> None:
    with pytest.raises(ConfigurationError):
        encode_node_id(node_id)


def test_short_secret_and_encryption_without_secret_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16"):
        FrameCodec("alpha", b"short")
    with pytest.raises(ConfigurationError, match="needs a cluster secret"):
        FrameCodec("alpha", None, encrypt=True)


def test_peer_list_frames_keep_their_kind() -> None:
    datagram = FrameSealer(codec(), "a", 1).seal(b"\x90", kind=FrameKind.PEERS)
    frame = codec().open(datagram)
    assert isinstance(frame, Frame) and frame.kind is FrameKind.PEERS


def test_the_tag_is_standard_hmac_sha256_truncated_to_16_bytes() -> None:
    """The precomputed-pad HMAC must agree with the standard library's, byte for byte."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    alpha = codec(secret=SECRET)
    datagram = FrameSealer(alpha, "a", 1).seal(b"some body")
    key = HKDF(hashes.SHA256(), 32, alpha.cluster_id, b"paxos-kv frame hmac-sha256 v1").derive(
        SECRET
    )
    expected = hmac.new(key, datagram[:-TAG_BYTES], hashlib.sha256).digest()[:TAG_BYTES]
    assert datagram[-TAG_BYTES:] == expected


@pytest.mark.parametrize(("secret", "encrypt"), [(None, False), (SECRET, False), (SECRET, True)])
@pytest.mark.parametrize("destination", ["", "peer"])
def test_the_sealers_fast_path_lays_out_what_the_codec_does(
    secret: bytes | None, encrypt: bool, destination: str
) -> None:
    """The sealer packs headers once and writes the HMAC case out; the codec is the reference."""
    alpha = codec(secret=secret, encrypt=encrypt)
    sealer = FrameSealer(alpha, "node-é", incarnation=2**63 + 5)
    for seq, body in enumerate([b"", b"one", b"z" * 3000]):
        fast = sealer.seal(body, destination)
        reference = alpha.seal(
            FrameKind.DATA, sealer.sender, 2**63 + 5, seq, destination.encode(), body
        )
        assert fast == reference


@pytest.mark.parametrize("size_bytes", [100, 1023, 1024, 8192])
def test_every_flipped_byte_of_a_large_frame_breaks_its_tag(size_bytes: int) -> None:
    """Frames from a kilobyte on are hashed through a view, not a copy: same verdicts."""
    alpha = codec(secret=SECRET)
    datagram = FrameSealer(alpha, "a", 1).seal(bytes(range(256)) * (size_bytes // 256 + 1))
    assert isinstance(alpha.open(datagram), Frame)
    for index in range(0, len(datagram), 97):
        flipped = bytearray(datagram)
        flipped[index] ^= 0x01
        assert isinstance(alpha.open(bytes(flipped)), DropReason)


_NATIVE = native_keyed()
_BOTH_WAYS = [
    pytest.param(True, id="C module", marks=[] if _NATIVE else [pytest.mark.skip("not built")]),
    pytest.param(False, id="cryptography"),
]


@pytest.mark.parametrize("native", _BOTH_WAYS)
@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=0, max_size=200), data=st.binary(max_size=3000))
def test_each_way_of_tagging_gives_hmac_sha256_truncated(
    native: bool, key: bytes, data: bytes
) -> None:
    """Keys of every length (RFC 2104 hashes one longer than a block first) and any data, as
    bytes, a bytearray or a view, get the standard library's HMAC-SHA256, first 16 bytes."""
    import hashlib
    import hmac

    mac = _HmacSha256(key, native=native)
    assert mac.native is native
    expected = hmac.new(key, data, hashlib.sha256).digest()[:TAG_BYTES]
    assert mac.tag(data) == mac.tag(bytearray(data)) == mac.tag(memoryview(data)) == expected
    assert mac.tag(data) == expected  # the keyed states are copied, never advanced


@pytest.mark.skipif(_NATIVE is None, reason="the C tag module is not built here (make compile)")
def test_the_c_module_refuses_what_it_cannot_tag_with_a_python_error() -> None:
    keyed = _NATIVE(b"k" * 32)
    with pytest.raises(TypeError):
        keyed.tag("text is not bytes")
    with pytest.raises(TypeError):
        _NATIVE("a str key")
    unkeyed = _NATIVE.__new__(_NATIVE)
    with pytest.raises(ValueError, match="not given a key"):
        unkeyed.tag(b"data")


def test_frames_sealed_by_either_way_open_with_the_other() -> None:
    """A node with the C module and one without tag every frame alike: they interoperate."""
    with_c, without = codec(secret=SECRET), codec(secret=SECRET)
    assert with_c.hmac is not None and without.hmac is not None
    assert with_c.hmac.native is (_NATIVE is not None)  # the codec takes the C module if built
    without.hmac.tag = _HmacSha256(_tag_key(without), native=False).tag
    for body in (b"", b"x", b"y" * 2000):
        for sender, receiver in ((with_c, without), (without, with_c)):
            datagram = FrameSealer(sender, "a", 1).seal(body)
            opened = receiver.open(datagram)
            assert isinstance(opened, Frame) and opened.body == body
            tampered = datagram[:-1] + bytes([datagram[-1] ^ 1])
            assert receiver.open(tampered) is DropReason.BAD_TAG


def _tag_key(alpha: FrameCodec) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = b"paxos-kv frame hmac-sha256 v1"
    return HKDF(hashes.SHA256(), 32, alpha.cluster_id, info).derive(SECRET)
