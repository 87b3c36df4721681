"""Frames: how a payload travels in one datagram, and how a receiver knows whom to believe.

Pure (no sockets, no clocks): the transports, the simulator and the fuzz tests all drive it.
Opening a datagram never raises on bad input -- it returns the :class:`DropReason` -- because
anything on the wire may be garbage, a stranger's cluster, or an attacker.

Layout (big-endian)::

    magic "PXKV" | version u8 | protection u8 | kind u8 | sender_len u8 | destination_len u8
    | cluster 8 bytes | incarnation u64 | seq u64 | sender | destination | body | tag 16 bytes

* ``cluster`` is a BLAKE2b digest of the cluster name, so two clusters sharing a multicast
  group or port ignore each other (counted as ``foreign_cluster``).
* ``incarnation`` and ``seq`` number the sender's frames for the replay window (replay.py).
* ``destination`` is empty for a broadcast; a node-addressed frame that had to travel by the
  group (its address was not yet known) carries the node id, and everyone else drops it.
* ``protection`` 0: no secret, no tag. 1: HMAC-SHA256 over everything before the tag,
  truncated to 16 bytes (RFC 2104; truncation to 128 bits per RFC 4868). 2: AES-GCM: the body
  is encrypted, the header is the associated data, the tag is GCM's.

Keys come from the cluster secret through HKDF-SHA256 (RFC 5869), salted with the cluster
digest, one key per purpose, so an HMAC key is never reused as a cipher key. With AES-GCM a
(key, nonce) pair must never repeat; nonces are the 96-bit ``seq`` and each sender
incarnation gets its own key, derived from the master key with its id and incarnation. A
node id must therefore never restart with an incarnation it used before (see replay.py).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Callable
from hmac import compare_digest
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, cast

from paxoskv.errors import ConfigurationError, PayloadTooLarge
from paxoskv.transport.base import DropReason
from paxoskv.transport.replay import DEFAULT_WINDOW_FRAMES, ReplayGuard

if TYPE_CHECKING:  # imported with a secret only: a cluster without one never loads OpenSSL
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "MAGIC",
    "MAX_NODE_ID_BYTES",
    "MIN_SECRET_BYTES",
    "SEQ_FIELD",
    "SEQ_OFFSET",
    "TAG_BYTES",
    "Frame",
    "FrameCodec",
    "FrameKind",
    "FrameOpener",
    "FrameSealer",
    "Protection",
    "cluster_digest",
    "encode_node_id",
]

MAGIC = b"PXKV"
FORMAT_VERSION = 1
TAG_BYTES = 16
MAX_NODE_ID_BYTES = 255
MIN_SECRET_BYTES = 16
_HEADER = struct.Struct("!4sBBBBB8sQQ")
HEADER_BYTES = _HEADER.size
SEQ_OFFSET = HEADER_BYTES - 8  # seq is the header's last field: a sealer packs only it per frame
SEQ_FIELD = struct.Struct("!Q")
_AEAD_CACHE_ENTRIES = 1024
# What a payload (or a secret) may be: the bytes-like objects callers hand in. Spelled out,
# not ``bytes``: the pure build has always sent a bytearray or memoryview as its bytes (an
# untyped caller, or one checked by an older mypy, passes them), and the compiled build checks
# an annotation on entry, so ``bytes`` alone would refuse them there with a bare TypeError.
Payload: TypeAlias = bytes | bytearray | memoryview


class FrameKind(enum.IntEnum):
    DATA = 0  # a payload for the runtime
    PEERS = 1  # the transport's own peer list (unicast scope learns peers from peers)


class Protection(enum.IntEnum):
    NONE = 0
    HMAC = 1
    AES_GCM = 2


# Module constants, not ``FrameKind.DATA`` and the like, on the per-frame paths: in Python
# 3.11 reading a member off an enum class (or ``isinstance`` against one) costs about 150 ns,
# as much as packing a whole header.
_KIND_BY_VALUE = tuple(FrameKind)  # FrameKind(n) costs an enum call per datagram; this is an index
_MAX_KIND = len(_KIND_BY_VALUE) - 1
_DATA = FrameKind.DATA
_AES_GCM = Protection.AES_GCM
_MAX_PROTECTION = int(max(Protection))
_HEADER_CACHE_ENTRIES = 4096
_new_tuple = tuple.__new__  # a named tuple from a tuple, without its Python-level __new__


class Frame(NamedTuple):
    """A frame that passed every check, with its header facts.

    A named tuple, not a frozen dataclass: one is built per datagram received, and a frozen
    dataclass's ``__init__`` (an ``object.__setattr__`` per field) cost more than the rest
    of opening a frame put together (benchmarks/transport.py).
    """

    kind: FrameKind
    sender_id: str
    incarnation: int
    seq: int
    destination: str
    body: bytes


# What :meth:`FrameCodec.unpack` gives: a Frame's fields as a plain tuple. Building even a
# named tuple costs a quarter of a microsecond, a tenth of opening a frame, and the receive
# path only unpacks the fields again.
FrameFields = tuple[FrameKind, str, int, int, str, bytes]


def cluster_digest(cluster: str) -> bytes:
    """Eight bytes naming the cluster on the wire (collisions only make a stranger audible)."""
    return hashlib.blake2b(
        cluster.encode("utf-8"), digest_size=8, person=b"paxoskv-cluster"
    ).digest()


def encode_node_id(node_id: object) -> bytes:
    """A node id as it goes on the wire; refuses ids the frame cannot carry.

    Takes ``object`` and checks it here, as the sealer does its node ids and destinations: a
    node id comes from the application (``send(node_id, ...)``), and compiled, a ``str``
    parameter would refuse anything else with a bare TypeError before this check could say
    what is wrong -- both builds must raise the same ConfigurationError.
    """
    if not isinstance(node_id, str) or not node_id:
        raise ConfigurationError(f"node id must be a non-empty str, not {node_id!r}")
    encoded = node_id.encode("utf-8")
    if len(encoded) > MAX_NODE_ID_BYTES:
        raise ConfigurationError(
            f"node id {node_id[:40]!r}... is {len(encoded)} bytes in UTF-8; the limit is "
            f"{MAX_NODE_ID_BYTES}: choose a shorter id"
        )
    return encoded


def _secret_bytes(secret: Payload | str) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the cluster secret is {len(raw)} bytes; use at least {MIN_SECRET_BYTES} random "
            "bytes (for example `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return raw


class _HmacSha256:
    """HMAC-SHA256 (RFC 2104) keyed once; :attr:`tag` gives a frame's 16-byte tag.

    ``hmac.digest`` sets up the key on every call; with OpenSSL 3 that set-up costs more than
    the hashing itself on a 100-byte frame. So the key's pads are hashed once, and each tag
    starts from copies of those states. Where the build has it, ``tag`` is the C module
    ``_hmac_sha256`` (one call, the states copied on the stack: about a quarter of the time
    below); otherwise it copies the ``cryptography`` package's keyed HMAC context (three calls
    into OpenSSL, which allocates and frees the contexts each time). Both give
    ``hmac.new(key, data, "sha256").digest()[:16]`` (tests/transport/test_frames.py).
    """

    __slots__ = ("native", "tag")

    def __init__(self, key: bytes, *, native: bool = True) -> None:
        keyed = native_keyed() if native else None
        self.native = keyed is not None
        # The hot paths (FrameCodec.unpack, FrameSealer.seal, straight.py) call this directly.
        self.tag: Callable[[Payload], bytes] = (
            keyed(key).tag if keyed is not None else _context_tagger(key)
        )


def native_keyed() -> Any:
    """The C module's ``Keyed`` type, or None where the build has no such module."""
    try:
        from paxoskv.transport._hmac_sha256 import Keyed  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Keyed


def _context_tagger(key: bytes) -> Callable[[Payload], bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    keyed_copy = crypto_hmac.HMAC(key, hashes.SHA256()).copy

    def tag(data: Payload) -> bytes:
        mac = keyed_copy()
        mac.update(data)
        return mac.finalize()[:TAG_BYTES]

    return tag


def invalid_tag() -> type[Exception]:
    """``cryptography``'s InvalidTag, for ``except invalid_tag():`` around AES-GCM calls.

    An except clause evaluates its expression only while an exception is being matched, and
    there only an AES-GCM cipher (made once ``cryptography`` is imported) can raise: so a
    cluster without a secret never imports OpenSSL's bindings, a sizeable share of a node's
    start-up, and the receive path pays nothing for the lookup.
    """
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def _derive(secret: bytes, salt: bytes, purpose: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"paxos-kv frame " + purpose)
    return kdf.derive(secret)


class FrameCodec:
    """Seals and opens frames for one cluster, with or without a secret.

    ``max_datagram_bytes`` is the transport's limit on a whole frame; opening refuses anything
    larger as ``oversized`` and sealing refuses a body that would not fit.
    """

    def __init__(
        self,
        cluster: str,
        secret: Payload | str | None = None,
        *,
        encrypt: bool = False,
        max_datagram_bytes: int = 65507,
    ) -> None:
        if encrypt and secret is None:
            raise ConfigurationError("encryption needs a cluster secret: set one, or turn it off")
        if max_datagram_bytes < HEADER_BYTES + 2 * MAX_NODE_ID_BYTES + TAG_BYTES + 1:
            raise ConfigurationError(f"max_datagram_bytes {max_datagram_bytes} is too small")
        self.cluster = cluster
        self.cluster_id = cluster_digest(cluster)
        self.max_datagram_bytes = max_datagram_bytes
        self.protection = Protection.NONE
        self._hmac: _HmacSha256 | None = None
        self._aes_master = b""
        self._aeads: dict[tuple[bytes, int], AESGCM] = {}
        if secret is not None:
            raw = _secret_bytes(secret)
            if encrypt:
                self.protection = Protection.AES_GCM
                self._aes_master = _derive(raw, self.cluster_id, b"aes-gcm v1")
            else:
                self.protection = Protection.HMAC
                self._hmac = _HmacSha256(_derive(raw, self.cluster_id, b"hmac-sha256 v1"))
        self.tag_bytes = TAG_BYTES if self.protection else 0
        # The keyed HMAC states when that is the protection: sealers use them directly.
        self.hmac = self._hmac

    @property
    def authenticated(self) -> bool:
        return self.protection is not Protection.NONE

    def max_body_bytes(self, sender: bytes) -> int:
        """The largest body ``sender`` can seal, whatever the destination's id length."""
        overhead = HEADER_BYTES + len(sender) + MAX_NODE_ID_BYTES + self.tag_bytes
        return self.max_datagram_bytes - overhead

    def header_parts(
        self, kind: FrameKind, sender: bytes, incarnation: int, destination: bytes
    ) -> tuple[bytes, bytes]:
        """A header without its ``seq``: the bytes before it and the bytes after it.

        Everything but ``seq`` is the same for every frame a node sends to one destination,
        so a sealer packs this once and only ``seq`` per frame.
        """
        fixed = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            self.protection,
            kind,
            len(sender),
            len(destination),
            self.cluster_id,
            incarnation,
            0,
        )
        return fixed[:SEQ_OFFSET], sender + destination

    def seal(
        self,
        kind: FrameKind,
        sender: bytes,
        incarnation: int,
        seq: int,
        destination: bytes,
        body: Payload,
    ) -> bytes:
        """One datagram; ``sender`` and ``destination`` come from :func:`encode_node_id`."""
        before_seq, after_seq = self.header_parts(kind, sender, incarnation, destination)
        return self.seal_parts(before_seq, seq, after_seq, body, sender, incarnation)

    def seal_parts(
        self,
        before_seq: bytes,
        seq: int,
        after_seq: bytes,
        body: Payload,
        sender: bytes,
        incarnation: int,
    ) -> bytes:
        """One datagram from :meth:`header_parts`; the only place that lays out a frame."""
        if self._hmac is not None:
            signed = b"".join((before_seq, SEQ_FIELD.pack(seq), after_seq, body))
            return signed + self._hmac.tag(signed)
        if self.protection is _AES_GCM:
            header = b"".join((before_seq, SEQ_FIELD.pack(seq), after_seq))
            aead = self._aead_for(sender, incarnation)
            return header + aead.encrypt(seq.to_bytes(12, "big"), body, header)
        return b"".join((before_seq, SEQ_FIELD.pack(seq), after_seq, body))

    def open(self, datagram: bytes) -> Frame | DropReason:
        """The frame in ``datagram``, or why it must be dropped. Never raises."""
        fields = self.unpack(datagram)
        if type(fields) is not tuple:
            return cast(DropReason, fields)
        return _new_tuple(Frame, fields)

    def unpack(self, datagram: bytes, guard: ReplayGuard | None = None) -> FrameFields | DropReason:
        """The fields of the frame in ``datagram``, or why it must be dropped. Never raises.

        With a ``guard``, a frame whose tag checks out is also refused as ``replayed`` if the
        guard has seen it. One function, checks in the order that lets the cheapest refuse
        first, because every datagram a node receives comes through here.
        """
        size = len(datagram)
        if size > self.max_datagram_bytes:
            return DropReason.OVERSIZED
        if size < HEADER_BYTES:
            return DropReason.MALFORMED
        magic, version, protection, kind, sender_len, dest_len, cluster, incarnation, seq = (
            _HEADER.unpack_from(datagram)
        )
        if magic != MAGIC:
            return DropReason.MALFORMED
        if version != FORMAT_VERSION:
            return DropReason.WRONG_VERSION
        if cluster != self.cluster_id:
            return DropReason.FOREIGN_CLUSTER
        if kind > _MAX_KIND or protection > _MAX_PROTECTION or sender_len == 0:
            return DropReason.MALFORMED
        if protection != self.protection:
            return DropReason.BAD_TAG  # unauthenticated, or protected in a way we cannot check
        sender_end = HEADER_BYTES + sender_len
        header_end = sender_end + dest_len
        body_end = size - self.tag_bytes
        if body_end < header_end:
            return DropReason.MALFORMED
        if self._hmac is not None:
            # Large frames are hashed through a view: slicing would first copy the whole body,
            # which costs more than making the view from about a kilobyte on.
            signed = datagram[:body_end] if body_end < 1024 else memoryview(datagram)[:body_end]
            if not compare_digest(self._hmac.tag(signed), datagram[body_end:]):
                return DropReason.BAD_TAG
            body = datagram[header_end:body_end]
        elif protection:
            opened = self._decrypt(datagram, sender_end, header_end, incarnation, seq)
            if opened is None:
                return DropReason.BAD_TAG
            body = opened
        else:
            body = datagram[header_end:]
        try:
            sender_id = datagram[HEADER_BYTES:sender_end].decode()
            destination = datagram[sender_end:header_end].decode() if dest_len else ""
        except UnicodeDecodeError:
            return DropReason.MALFORMED
        if guard is not None and not guard.accept(sender_id, incarnation, seq):
            return DropReason.REPLAYED
        return (_KIND_BY_VALUE[kind], sender_id, incarnation, seq, destination, body)

    def _decrypt(
        self, datagram: bytes, sender_end: int, header_end: int, incarnation: int, seq: int
    ) -> bytes | None:
        aead = self._aead_for(datagram[HEADER_BYTES:sender_end], incarnation)
        try:
            return aead.decrypt(
                seq.to_bytes(12, "big"), datagram[header_end:], datagram[:header_end]
            )
        except invalid_tag():
            return None

    def cipher_for(self, sender: bytes, incarnation: int) -> AESGCM | None:
        """The AES-GCM cipher of a sender incarnation, or None if that is not the protection."""
        return self._aead_for(sender, incarnation) if self.protection is _AES_GCM else None

    def _aead_for(self, sender: bytes, incarnation: int) -> AESGCM:
        """Each sender incarnation its own key, so ``seq`` alone makes nonces unique."""
        cache_key = (sender, incarnation)
        aead = self._aeads.get(cache_key)
        if aead is None:
            if len(self._aeads) >= _AEAD_CACHE_ENTRIES:
                del self._aeads[next(iter(self._aeads))]
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            material = sender + incarnation.to_bytes(8, "big")
            aead = AESGCM(hmac.digest(self._aes_master, material, "sha256"))
            self._aeads[cache_key] = aead
        return aead


class FrameSealer:
    """One node's outgoing side: its id, incarnation and the running frame number."""

    def __init__(self, codec: FrameCodec, node_id: object, incarnation: int) -> None:
        if not 0 <= incarnation < 2**64:
            raise ConfigurationError(f"incarnation {incarnation} is not an unsigned 64-bit int")
        self.codec = codec
        self.sender = encode_node_id(node_id)  # refuses anything but a usable str
        self.node_id = self.sender.decode()
        self.incarnation = incarnation
        self.max_body_bytes = codec.max_body_bytes(self.sender)
        self.next_seq = 0
        # Per destination ("" for everyone), the DATA header around ``seq``: packed once.
        self._data_headers: dict[str, tuple[bytes, bytes]] = {}
        self._tag = codec.hmac.tag if codec.hmac is not None else None
        self._plain = not codec.authenticated

    def seal(
        self, body: Payload, destination: object = "", kind: FrameKind = FrameKind.DATA
    ) -> bytes:
        """Frame ``body``; raises :class:`PayloadTooLarge` if it cannot fit in one datagram.

        ``destination`` is a node id ("" for everyone) and is checked as one
        (:func:`encode_node_id`, which says why it is typed ``object``).
        """
        if len(body) > self.max_body_bytes:
            raise PayloadTooLarge(len(body), self.max_body_bytes)
        parts = (
            self._data_headers.get(destination)
            if kind is _DATA and isinstance(destination, str)
            else None
        )
        if parts is None:
            parts = self.header_parts(destination, kind)
        seq = self.next_seq
        self.next_seq = seq + 1
        # FrameCodec.seal_parts's HMAC and plain cases, written out: one call fewer per frame
        # sent (tests/transport/test_frames.py holds the two to the same bytes).
        if self._tag is not None:
            signed = b"".join((parts[0], SEQ_FIELD.pack(seq), parts[1], body))
            return signed + self._tag(signed)
        if self._plain:
            return b"".join((parts[0], SEQ_FIELD.pack(seq), parts[1], body))
        return self.codec.seal_parts(parts[0], seq, parts[1], body, self.sender, self.incarnation)

    def header_parts(
        self, destination: object, kind: FrameKind = FrameKind.DATA
    ) -> tuple[bytes, bytes]:
        """A header around ``seq`` (:meth:`FrameCodec.header_parts`) for this sender; keeps
        DATA ones (bounded: node ids are few, but come from callers)."""
        encoded = encode_node_id(destination) if destination else b""
        parts = self.codec.header_parts(kind, self.sender, self.incarnation, encoded)
        if (
            kind is _DATA
            and isinstance(destination, str)
            and len(self._data_headers) < _HEADER_CACHE_ENTRIES
        ):
            self._data_headers[destination] = parts
        return parts


class FrameOpener:
    """One node's incoming side: the codec's checks, then the replay window when keyed."""

    def __init__(self, codec: FrameCodec, window_frames: int = DEFAULT_WINDOW_FRAMES) -> None:
        self.codec = codec
        self.guard = ReplayGuard(window_frames)
        # Without a secret anyone can forge a fresh number: the window would protect nothing.
        self.active_guard = self.guard if codec.authenticated else None

    def open(self, datagram: bytes) -> Frame | DropReason:
        fields = self.unpack(datagram)
        if type(fields) is not tuple:
            return cast(DropReason, fields)
        return _new_tuple(Frame, fields)

    def unpack(self, datagram: bytes) -> FrameFields | DropReason:
        """As :meth:`open`, without building a :class:`Frame` (the receive path's form)."""
        return self.codec.unpack(datagram, self.active_guard)
