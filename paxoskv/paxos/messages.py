"""The messages Paxos nodes exchange, and their msgpack codec.

Each message is a frozen value class (:class:`~paxoskv.state.frozen.Frozen`) with a one-byte
tag. On the wire a message is the msgpack list ``[WIRE_VERSION, tag, *fields]``: positional,
because a field name in every datagram is pure overhead. :func:`decode_message` checks every
field's type before a message object exists, so a malformed datagram is rejected whole at the
boundary and never half-processed by the engine (the h11 rule: bad bytes from a peer raise one
remote-error type, here :class:`MalformedMessage`).

Values in the log (slot payloads) stay opaque ``bytes`` here: the engine never decodes a batch
it only relays, which keeps one msgpack pass per batch on the hot path.

Every message class spells out its ``__init__`` (``object.__setattr__`` per field): the
compiled build (mypyc) turns each such call into a store to the field, where a dataclass's
generated ``__init__`` ran interpreted, at some 3-5 thousand instructions a message, and a
sequential write makes a dozen messages and effects across three nodes. The pure build runs
the same code. ``__eq__``, ``__repr__``, ``__hash__`` and frozenness come from
:class:`~paxoskv.state.frozen.Frozen`, from the fields named in ``__match_args__``, as the
dataclasses these once were generated them; building those from source at import cost every
node process some 4 ms for the messages alone.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from operator import attrgetter
from typing import Any, Final, NamedTuple, cast

import msgpack

from paxoskv.paxos.ballot import Ballot
from paxoskv.state.frozen import Frozen

WIRE_VERSION: Final = 1
ALL_SLOTS = 2**63 - 1  # a Promise part that reaches to the end of the log says so with this
_UINT64_MAX: Final = 2**64 - 1


class MalformedMessage(ValueError):
    """The bytes are not a message of this wire version."""


class Prepare(Frozen):
    """Phase 1a for every slot from ``from_slot`` on (Multi-Paxos runs phase 1 once)."""

    __slots__ = ("ballot", "from_slot")
    __match_args__ = ("ballot", "from_slot")

    ballot: Ballot
    from_slot: int

    def __init__(self, ballot: Ballot, from_slot: int) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "from_slot", from_slot)


class PromiseEntry(Frozen):
    __slots__ = ("ballot", "chosen", "slot", "value")
    __match_args__ = ("slot", "ballot", "value", "chosen")

    slot: int
    ballot: Ballot
    value: bytes
    chosen: bool

    def __init__(self, slot: int, ballot: Ballot, value: bytes, chosen: bool) -> None:
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "chosen", chosen)


class Promise(Frozen):
    """Phase 1b: the acceptor's accepted values in slots ``from_slot`` to ``upto_slot``.

    One reply can take several of these parts, since a window of slots of big values is more
    than a datagram carries. Each part vouches for every value its sender accepted in its
    range before it promised ``ballot``; the candidate counts the promise once parts from the
    prepare's slot to :data:`ALL_SLOTS` cover the whole range. Parts of two replies to one
    ballot mix safely: the promise came before both, so each part alone tells the truth.
    ``truncated`` says the acceptor had more than a few windows' worth: the candidate is then
    too far behind to lead and catches up first.
    """

    __slots__ = ("ballot", "chosen_upto", "entries", "from_slot", "truncated", "upto_slot")
    __match_args__ = ("ballot", "from_slot", "entries", "chosen_upto", "truncated", "upto_slot")

    ballot: Ballot
    from_slot: int
    entries: tuple[PromiseEntry, ...]
    chosen_upto: int
    truncated: bool
    upto_slot: int

    def __init__(
        self,
        ballot: Ballot,
        from_slot: int,
        entries: tuple[PromiseEntry, ...],
        chosen_upto: int,
        truncated: bool,
        upto_slot: int = ALL_SLOTS,
    ) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "from_slot", from_slot)
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "chosen_upto", chosen_upto)
        object.__setattr__(self, "truncated", truncated)
        object.__setattr__(self, "upto_slot", upto_slot)


class Nack(Frozen):
    """The sender has promised ``promised``, higher than the ``ballot`` it was asked about."""

    __slots__ = ("ballot", "promised")
    __match_args__ = ("ballot", "promised")

    ballot: Ballot
    promised: Ballot

    def __init__(self, ballot: Ballot, promised: Ballot) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "promised", promised)


class Accept(Frozen):
    """Phase 2a for one slot, multicast to everyone; carries the leader's commit point."""

    __slots__ = ("ballot", "commit_upto", "slot", "value")
    __match_args__ = ("ballot", "slot", "value", "commit_upto")

    ballot: Ballot
    slot: int
    value: bytes
    commit_upto: int

    def __init__(self, ballot: Ballot, slot: int, value: bytes, commit_upto: int) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "commit_upto", commit_upto)


class Accepted(Frozen):
    """Phase 2b for every slot in ``slots``, sent once the accepts are durable."""

    __slots__ = ("ballot", "slots")
    __match_args__ = ("ballot", "slots")

    ballot: Ballot
    slots: tuple[int, ...]

    def __init__(self, ballot: Ballot, slots: tuple[int, ...]) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "slots", slots)


class Commit(Frozen):
    """Every slot up to ``upto`` is chosen; slots this leader proposed carry ``ballot``."""

    __slots__ = ("ballot", "upto")
    __match_args__ = ("ballot", "upto")

    ballot: Ballot
    upto: int

    def __init__(self, ballot: Ballot, upto: int) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "upto", upto)


class Heartbeat(Frozen):
    """The leader is alive. Acks to ``seq`` confirm leadership for read-index and leases."""

    __slots__ = ("ballot", "commit_upto", "seq")
    __match_args__ = ("ballot", "commit_upto", "seq")

    ballot: Ballot
    commit_upto: int
    seq: int

    def __init__(self, ballot: Ballot, commit_upto: int, seq: int) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "commit_upto", commit_upto)
        object.__setattr__(self, "seq", seq)


class HeartbeatAck(Frozen):
    __slots__ = ("applied_upto", "ballot", "seq")
    __match_args__ = ("ballot", "seq", "applied_upto")

    ballot: Ballot
    seq: int
    applied_upto: int

    def __init__(self, ballot: Ballot, seq: int, applied_upto: int) -> None:
        object.__setattr__(self, "ballot", ballot)
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "applied_upto", applied_upto)


class Request(NamedTuple):
    """One client command. (client_id, seq) makes retries idempotent.

    A NamedTuple, not a frozen class like the messages: one is made per command on the
    hot path, and a tuple is as immutable at under half the cost to build (a frozen
    class sets each field through ``object.__setattr__``); the engine also splits a list
    of them into columns in C with ``zip(*requests)``.
    """

    client_id: str
    seq: int
    command: bytes


class Forward(Frozen):
    """Client requests a non-leader passes to the leader, batched.

    Sent as three columns under :data:`FORWARD_COLUMNS_TAG`; the first format (a row per
    request, under its tag in ``TAGS``) is still read, so a leader upgraded before its
    followers keeps taking their forwards. (An old leader drops the new tag as unknown: its
    followers' clients retry until it is upgraded or leadership moves.)
    """

    __slots__ = ("requests",)
    __match_args__ = ("requests",)

    requests: tuple[Request, ...]

    def __init__(self, requests: tuple[Request, ...]) -> None:
        object.__setattr__(self, "requests", requests)


FORWARD_COLUMNS_TAG = 16
LEASE_READ_TAG = 17  # a ReadIndexRequest of lease reads (twenty-fourth session)


class ReadIndexRequest(Frozen):
    """A follower's reads, for the leader's commit point once it has confirmed it leads.

    With ``lease``, they are ``leader`` reads: a leader under its lease answers them at once,
    as it serves its own, rather than after a heartbeat round. Sent under
    :data:`LEASE_READ_TAG`; an older leader drops that tag as unknown, and the follower asks
    again at its retry period without it, and asks that leader without it for a while after
    (``Engine.tick``, ``Engine._flush_forwards``): a follower upgraded first still reads.
    """

    __slots__ = ("lease", "read_ids")
    __match_args__ = ("read_ids", "lease")

    read_ids: tuple[int, ...]
    lease: bool

    def __init__(self, read_ids: tuple[int, ...], lease: bool = False) -> None:
        object.__setattr__(self, "read_ids", read_ids)
        object.__setattr__(self, "lease", lease)


class ReadIndexReply(Frozen):
    """``index`` is -1 when the receiver is not (or no longer) the leader."""

    __slots__ = ("index", "read_ids")
    __match_args__ = ("read_ids", "index")

    read_ids: tuple[int, ...]
    index: int

    def __init__(self, read_ids: tuple[int, ...], index: int) -> None:
        object.__setattr__(self, "read_ids", read_ids)
        object.__setattr__(self, "index", index)


class CatchupRequest(Frozen):
    __slots__ = ("from_slot",)
    __match_args__ = ("from_slot",)

    from_slot: int

    def __init__(self, from_slot: int) -> None:
        object.__setattr__(self, "from_slot", from_slot)


class CatchupEntry(Frozen):
    __slots__ = ("slot", "value")
    __match_args__ = ("slot", "value")

    slot: int
    value: bytes

    def __init__(self, slot: int, value: bytes) -> None:
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "value", value)


class CatchupReply(Frozen):
    """Chosen values from ``from_slot``; empty with ``snapshot_slot`` set when compacted."""

    __slots__ = ("chosen_upto", "entries", "snapshot_slot")
    __match_args__ = ("entries", "chosen_upto", "snapshot_slot")

    entries: tuple[CatchupEntry, ...]
    chosen_upto: int
    snapshot_slot: int

    def __init__(
        self, entries: tuple[CatchupEntry, ...], chosen_upto: int, snapshot_slot: int
    ) -> None:
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "chosen_upto", chosen_upto)
        object.__setattr__(self, "snapshot_slot", snapshot_slot)


class SnapshotRequest(Frozen):
    __slots__ = ("offset", "snapshot_slot")
    __match_args__ = ("snapshot_slot", "offset")

    snapshot_slot: int
    offset: int

    def __init__(self, snapshot_slot: int, offset: int) -> None:
        object.__setattr__(self, "snapshot_slot", snapshot_slot)
        object.__setattr__(self, "offset", offset)


class SnapshotChunk(Frozen):
    __slots__ = ("data", "offset", "snapshot_slot", "total_bytes")
    __match_args__ = ("snapshot_slot", "offset", "total_bytes", "data")

    snapshot_slot: int
    offset: int
    total_bytes: int
    data: bytes

    def __init__(self, snapshot_slot: int, offset: int, total_bytes: int, data: bytes) -> None:
        object.__setattr__(self, "snapshot_slot", snapshot_slot)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "total_bytes", total_bytes)
        object.__setattr__(self, "data", data)


Message = (
    Prepare
    | Promise
    | Nack
    | Accept
    | Accepted
    | Commit
    | Heartbeat
    | HeartbeatAck
    | Forward
    | ReadIndexRequest
    | ReadIndexReply
    | CatchupRequest
    | CatchupReply
    | SnapshotRequest
    | SnapshotChunk
)

# --- codec ---------------------------------------------------------------------------------
#
# Every datagram is encoded once and decoded once per receiver, so the codec is written per
# message type rather than walked generically over the fields (``__match_args__``): a Ballot (a
# NamedTuple) and a tuple of ints pack as arrays as they are, so most messages are one
# ``attrgetter`` and one pack; only the three with nested records flatten them. Decoding checks
# every field's type inline before the message object is built.

# One byte on the wire names each message type. A table, not a ``TAG`` class variable on each
# class: one table is what the codec and the tests read.
TAGS: Final[dict[type[Any], int]] = {
    Prepare: 1,
    Promise: 2,
    Nack: 3,
    Accept: 4,
    Accepted: 5,
    Commit: 6,
    Heartbeat: 7,
    HeartbeatAck: 8,
    Forward: 9,
    ReadIndexRequest: 10,
    ReadIndexReply: 11,
    CatchupRequest: 12,
    CatchupReply: 13,
    SnapshotRequest: 14,
    SnapshotChunk: 15,
}

_MESSAGE_TYPES: tuple[type[Any], ...] = (
    Prepare,
    Promise,
    Nack,
    Accept,
    Accepted,
    Commit,
    Heartbeat,
    HeartbeatAck,
    Forward,
    ReadIndexRequest,
    ReadIndexReply,
    CatchupRequest,
    CatchupReply,
    SnapshotRequest,
    SnapshotChunk,
)
_BY_TAG: dict[int, type[Any]] = {TAGS[cls]: cls for cls in _MESSAGE_TYPES}
_BY_TAG[FORWARD_COLUMNS_TAG] = Forward
_BY_TAG[LEASE_READ_TAG] = ReadIndexRequest

# A free list rather than one shared packer (a runtime may encode from more than one thread);
# ``msgpack.packb`` would build a new Packer per call, which costs more than the packing.
_packers: Final[list[msgpack.Packer]] = []


def pack_body(body: object) -> bytes:
    """Pack one msgpack object (bin type for bytes) with a packer of the free list."""
    try:
        packer = _packers.pop()
    except IndexError:
        packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    try:
        return packer.pack(body)
    finally:
        _packers.append(packer)


def pack_with_bytes(head: list[Any], value: bytes, tail: list[Any] | None = None) -> bytes:
    """``pack_body([*head, value, *tail])``, with ``value`` copied once rather than twice.

    The packer copies a bin into its buffer and the buffer into the bytes it returns; for the
    slot-sized values of accepts and journal records that was most of their encoding's cost.
    Here the parts around ``value`` are packed as arrays of their own, their array headers
    swapped for the whole one, and everything joined in one pass: the same bytes (an array is
    its header and its elements' encodings back to back).
    """
    tail = tail or []
    count = len(head) + 1 + len(tail)
    if count > 15:  # only fixarrays are spliced here; a bigger one is packed whole
        return pack_body([*head, value, *tail])
    before = pack_body(head)
    size = len(value)
    if size < 1 << 8:
        header = b"\xc4" + size.to_bytes(1, "big")
    elif size < 1 << 16:
        header = b"\xc5" + size.to_bytes(2, "big")
    else:
        header = b"\xc6" + size.to_bytes(4, "big")  # (the packer refuses 4 GiB and up)
    parts = [bytes((0x90 | count,)), before[1:], header, value]
    if tail:
        parts.append(pack_body(tail)[1:])
    return b"".join(parts)


def _flat_encoder(cls: type[Any]) -> Callable[[Any], list[Any]]:
    names = list(cls.__match_args__)
    head = [WIRE_VERSION, TAGS[cls]]
    if len(names) == 1:
        name = names[0]
        return lambda message: [*head, getattr(message, name)]
    getter = attrgetter(*names)
    return lambda message: [*head, *getter(message)]


_ENCODERS: dict[type[Any], Callable[[Any], list[Any]]] = {
    cls: _flat_encoder(cls) for cls in _MESSAGE_TYPES
}
_ENCODERS[Promise] = lambda p: [
    WIRE_VERSION,
    TAGS[Promise],
    p.ballot,
    p.from_slot,
    [[e.slot, e.ballot, e.value, e.chosen] for e in p.entries],
    p.chosen_upto,
    p.truncated,
    p.upto_slot,
]
_ENCODERS[Forward] = lambda f: [WIRE_VERSION, FORWARD_COLUMNS_TAG, *_forward_columns(f.requests)]
_ENCODERS[ReadIndexRequest] = lambda r: [
    WIRE_VERSION,
    LEASE_READ_TAG if r.lease else TAGS[ReadIndexRequest],
    r.read_ids,
]


def _forward_columns(requests: tuple[Request, ...]) -> tuple[Any, Any, Any]:
    """A Forward travels as three columns (client ids, seqs, commands), as a batch does.

    Split here in C (``zip(*requests)``), and on the leader checked by a few C-level passes
    and turned back into requests without a Python call per request: rows of three, each
    checked by a function of its own, cost the leader some 2 us per forwarded write.
    """
    if not requests:
        return (), (), ()
    client_ids, seqs, commands = zip(*requests, strict=True)
    return client_ids, seqs, commands


_ENCODERS[CatchupReply] = lambda c: [
    WIRE_VERSION,
    TAGS[CatchupReply],
    [[e.slot, e.value] for e in c.entries],
    c.chosen_upto,
    c.snapshot_slot,
]


# --- the packer's bytes, by hand, for the messages and records of every write ----------------
#
# A sequential write makes a dozen small messages and journal records across three nodes, and
# ``pack_body`` spends some 2,600 instructions on each (the free list, the call into the
# packer and its set-up), most of it fixed cost. The few shapes made on every write (ints
# from 0 to 2**64 - 1, a ballot, a bin) are written here as msgpack's packer writes them, each
# in its smallest form; anything else (a negative or huge int, a bool where an int belongs, a
# long node id) raises :class:`NoFastForm` and goes to the packer, which writes it or refuses
# it as before. The tests hold these to the packer's bytes.


class NoFastForm(Exception):
    """The value has no form written by hand here: the caller packs it with the packer."""


_FIXINTS: Final[list[bytes]] = [bytes((i,)) for i in range(128)]


def packed_uint(n: object) -> bytes:
    """msgpack's bytes of an int from 0 to 2**64 - 1, or :class:`NoFastForm`."""
    if type(n) is not int:
        raise NoFastForm
    value: int = n
    if 0 <= value < 0x80:
        return _FIXINTS[value]
    if value < 0:
        raise NoFastForm
    if value < 0x100:
        return b"\xcc" + value.to_bytes(1, "big")
    if value < 0x10000:
        return b"\xcd" + value.to_bytes(2, "big")
    if value < 0x100000000:
        return b"\xce" + value.to_bytes(4, "big")
    if value <= _UINT64_MAX:
        return b"\xcf" + value.to_bytes(8, "big")
    raise NoFastForm


def packed_ballot(ballot: Ballot) -> bytes:
    """msgpack's bytes of ``[round, node_id]`` (a node id under 64 KiB encoded), or NoFastForm.

    The ballot packed last is kept with its bytes: an engine sends and records one ballot
    object (its own, or the one decoded messages share) for a whole term.
    """
    last = _last_packed_ballot[0]
    if last[0] is ballot:
        return last[1]
    packed = _pack_ballot(ballot)
    _last_packed_ballot[0] = (ballot, packed)  # (one store: a thread sees a pair whole)
    return packed


def _pack_ballot(ballot: Ballot) -> bytes:
    if type(ballot) is not Ballot:
        raise NoFastForm
    parts: tuple[object, object] = ballot  # read as they are (a bool is no int here)
    round_, node_id = parts
    return b"".join([b"\x92", packed_uint(round_), packed_str(node_id)])


_FIXSTR_HEADERS: Final[list[bytes]] = [bytes((0xA0 | i,)) for i in range(32)]
_last_packed_ballot: Final[list[tuple[object, bytes]]] = [(None, b"")]


def packed_str(text: object) -> bytes:
    """msgpack's bytes of a str under 64 KiB encoded, or :class:`NoFastForm`."""
    if type(text) is not str:
        raise NoFastForm
    string: str = text
    try:
        data = string.encode()
    except UnicodeEncodeError:  # a lone surrogate: the packer refuses it its own way
        raise NoFastForm from None
    size = len(data)
    if size < 32:
        return _FIXSTR_HEADERS[size] + data
    if size < 1 << 8:
        return b"".join([b"\xd9", size.to_bytes(1, "big"), data])
    if size < 1 << 16:
        return b"".join([b"\xda", size.to_bytes(2, "big"), data])
    raise NoFastForm


def packed_bin_header(value: object) -> bytes:
    """msgpack's header of a bin of ``value`` (bytes), or :class:`NoFastForm`."""
    if type(value) is not bytes:
        raise NoFastForm
    data: bytes = value
    size = len(data)
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    if size < 1 << 32:
        return b"\xc6" + size.to_bytes(4, "big")
    raise NoFastForm


def _encode_small(message: object, prefix: bytes = b"") -> bytes:
    """The bytes of an Accept, Accepted or Commit, written by hand after ``prefix``, or
    :class:`NoFastForm`."""
    kind = type(message)
    if kind is Accept:
        accept: Accept = cast(Accept, message)
        value = accept.value
        return b"".join(
            [
                prefix,
                _ACCEPT_HEAD,
                packed_ballot(accept.ballot),
                packed_uint(accept.slot),
                packed_bin_header(value),
                value,
                packed_uint(accept.commit_upto),
            ]
        )
    if kind is Accepted:
        accepted: Accepted = cast(Accepted, message)
        # Read as objects: a ``tuple[int, ...]`` item would be unboxed by the compiled build,
        # a bool turned into an int that the packer writes as true or false.
        slots: tuple[object, ...] = accepted.slots
        if type(slots) is not tuple or len(slots) >= 16:
            raise NoFastForm
        parts = [
            prefix,
            _ACCEPTED_HEAD,
            packed_ballot(accepted.ballot),
            bytes((0x90 | len(slots),)),
        ]
        for slot in slots:
            parts.append(packed_uint(slot))
        return b"".join(parts)
    if kind is Commit:
        commit: Commit = cast(Commit, message)
        return b"".join(
            [prefix, _COMMIT_HEAD, packed_ballot(commit.ballot), packed_uint(commit.upto)]
        )
    raise NoFastForm


def encode_message(message: Message, prefix: bytes = b"") -> bytes:
    """``prefix`` followed by the message's bytes (what :func:`decode_message` reads).

    The prefix (the runtime's kind byte) is joined in with the message's own parts: put in
    front by ``+`` afterwards, it copied an Accept's slot-sized value once more on every
    broadcast, some 1,000 instructions a 1 KB write on the leader.
    """
    kind = type(message)
    if kind is Accept or kind is Accepted or kind is Commit:
        try:
            return _encode_small(message, prefix)
        except NoFastForm:
            pass  # packed the general way below
    if kind is Accept:  # a slot's value: copied once (see pack_with_bytes)
        accept: Accept = cast(Accept, message)
        body = pack_with_bytes(
            [WIRE_VERSION, TAGS[Accept], accept.ballot, accept.slot],
            accept.value,
            [accept.commit_upto],
        )
    else:
        body = pack_body(_ENCODERS[type(message)](message))
    return prefix + body if prefix else body


_ACCEPT_HEAD: Final = bytes(
    (0x96, WIRE_VERSION, TAGS[Accept])
)  # [version, tag, ballot, slot, value, commit]
_ACCEPTED_HEAD: Final = bytes((0x94, WIRE_VERSION, TAGS[Accepted]))  # [version, tag, ballot, slots]
_COMMIT_HEAD: Final = bytes((0x94, WIRE_VERSION, TAGS[Commit]))  # [version, tag, ballot, upto]


def _int(raw: object) -> int:
    if type(raw) is not int:
        raise MalformedMessage(f"expected int, got {type(raw).__name__}")
    return raw


def _bytes(raw: object) -> bytes:
    if type(raw) is not bytes:
        raise MalformedMessage(f"expected bytes, got {type(raw).__name__}")
    return raw


def _bool(raw: object) -> bool:
    if type(raw) is not bool:
        raise MalformedMessage(f"expected bool, got {type(raw).__name__}")
    return raw


def _list(raw: object, length: int | None = None) -> list[Any]:
    if type(raw) is not list or (length is not None and len(raw) != length):
        raise MalformedMessage(f"expected a list of {length} items")
    return raw


_new_tuple: Final = tuple.__new__
_unpackb: Final = msgpack.unpackb  # (read from a static, not the module's attributes)


def _ballot(raw: object) -> Ballot:
    if type(raw) is list and len(raw) == 2:
        round_, node_id = raw[0], raw[1]
        if type(round_) is int and type(node_id) is str:
            # Nearly every message of a term carries the same ballot: the last one decoded is
            # handed out again (a tuple, immutable, equal either way) rather than made anew.
            last = _last_ballot[0]
            if last[1] == node_id and last[0] == round_:
                return last
            # What Ballot._make does, minus the checks just made.
            ballot: Ballot = _new_tuple(Ballot, raw)
            _last_ballot[0] = ballot  # (one store: a thread sees one ballot or the other)
            return ballot
    raise MalformedMessage("a ballot is [int round, str node id]")


_last_ballot: Final[list[Ballot]] = [Ballot(0, "")]


def _ints(raw: object) -> tuple[int, ...]:
    if type(raw) is list:
        numbers: list[Any] = raw
        for number in numbers:  # (a loop the compiled build runs in C: no set made)
            if type(number) is not int:
                break
        else:
            return tuple(numbers)
    raise MalformedMessage("expected a list of ints")


def _promise(f: list[Any]) -> Promise:
    from_slot, upto_slot = _int(f[1]), _int(f[5])
    if not 0 <= from_slot <= upto_slot <= ALL_SLOTS:
        raise MalformedMessage(f"Promise covers slots {from_slot} to {upto_slot}")
    entries = tuple(_promise_entry(e) for e in _list(f[2]))
    if any(not from_slot <= e.slot <= upto_slot for e in entries):
        raise MalformedMessage("Promise has an entry outside the slots it covers")
    return Promise(_ballot(f[0]), from_slot, entries, _int(f[3]), _bool(f[4]), upto_slot)


def _promise_entry(raw: object) -> PromiseEntry:
    slot, ballot, value, chosen = _list(raw, 4)
    return PromiseEntry(_int(slot), _ballot(ballot), _bytes(value), _bool(chosen))


def valid_request(client_id: object, seq: object, command: object) -> bool:
    """Whether a request may travel: a non-empty str client id, an int seq from 0 to
    2**64 - 1, and bytes. A Forward holding one that is not is refused whole, and a batch
    holding one is applied as empty by every replica, so a member checks a client's request
    before it takes it (``serving``): one taken unchecked was forwarded again with every
    later request, and refused with them, until it was dropped."""
    return (
        type(client_id) is str
        and client_id != ""
        and type(seq) is int
        and 0 <= seq <= _UINT64_MAX
        and type(command) is bytes
    )


def _request(raw: object) -> Request:
    """One request of a Forward in the first format (rows), checked as a column would be."""
    client_id, seq, command = _list(raw, 3)
    if not valid_request(client_id, seq, command):
        raise MalformedMessage(
            "a request is [str client id, int seq from 0 to 2**64 - 1, bytes command]"
        )
    return Request(client_id, seq, command)


def _forward(f: list[Any]) -> Forward:
    """The columns of a Forward back into requests, every one checked (see below)."""
    client_ids, seqs, commands = f
    if (
        type(client_ids) is not list
        or type(seqs) is not list
        or type(commands) is not list
        or not len(client_ids) == len(seqs) == len(commands)
    ):
        raise MalformedMessage("a Forward is three columns of one length")
    if client_ids and not (
        # A str out of msgpack is a str (no subclasses), so one count checks a one-client
        # forward, the usual one, and a non-empty one is a valid id.
        (
            (type(client_ids[0]) is str and client_ids.count(client_ids[0]) == len(client_ids))
            or set(map(type, client_ids)) <= _STR
        )
        and all(client_ids)
        and set(map(type, seqs)) <= _INT
        and set(map(type, commands)) <= _BYTES
        and min(seqs) >= 0
        and max(seqs) <= _UINT64_MAX
    ):
        # Passed on, one such request would make the leader's whole batch one no replica
        # applies: the message is refused whole.
        raise MalformedMessage("a request is [str client id, int seq from 0 to 2**64 - 1, bytes]")
    return Forward(
        tuple(map(_new_tuple, repeat(Request), zip(client_ids, seqs, commands, strict=True)))
    )


_STR: set[type] = {str}
_INT: set[type] = {int}
_BYTES: set[type] = {bytes}


def _catchup_entry(raw: object) -> CatchupEntry:
    slot, value = _list(raw, 2)
    return CatchupEntry(_int(slot), _bytes(value))


def _accept(f: list[Any]) -> Accept:
    ballot, slot, value, commit_upto = f
    if type(slot) is not int or type(value) is not bytes or type(commit_upto) is not int:
        raise MalformedMessage("an accept is [ballot, int slot, bytes value, int commit]")
    return Accept(_ballot(ballot), slot, value, commit_upto)


def _two_ints(cls: type[Any]) -> Callable[[list[Any]], Any]:
    """A decoder for the messages that are a ballot and two ints."""

    def decode(f: list[Any]) -> Any:
        ballot, first, second = f
        if type(first) is not int or type(second) is not int:
            raise MalformedMessage(f"{cls.__name__} is [ballot, int, int]")
        return cls(_ballot(ballot), first, second)

    return decode


_DECODERS: Final[dict[int, tuple[int, Callable[[list[Any]], Any]]]] = {
    TAGS[Prepare]: (2, lambda f: Prepare(_ballot(f[0]), _int(f[1]))),
    TAGS[Promise]: (6, lambda f: _promise(f)),
    TAGS[Nack]: (2, lambda f: Nack(_ballot(f[0]), _ballot(f[1]))),
    TAGS[Accept]: (4, _accept),
    TAGS[Accepted]: (2, lambda f: Accepted(_ballot(f[0]), _ints(f[1]))),
    TAGS[Commit]: (2, lambda f: Commit(_ballot(f[0]), _int(f[1]))),
    TAGS[Heartbeat]: (3, _two_ints(Heartbeat)),
    TAGS[HeartbeatAck]: (3, _two_ints(HeartbeatAck)),
    TAGS[Forward]: (1, lambda f: Forward(tuple(_request(r) for r in _list(f[0])))),
    FORWARD_COLUMNS_TAG: (3, _forward),
    TAGS[ReadIndexRequest]: (1, lambda f: ReadIndexRequest(_ints(f[0]))),
    LEASE_READ_TAG: (1, lambda f: ReadIndexRequest(_ints(f[0]), True)),
    TAGS[ReadIndexReply]: (2, lambda f: ReadIndexReply(_ints(f[0]), _int(f[1]))),
    TAGS[CatchupRequest]: (1, lambda f: CatchupRequest(_int(f[0]))),
    TAGS[CatchupReply]: (
        3,
        lambda f: CatchupReply(
            tuple(_catchup_entry(e) for e in _list(f[0])), _int(f[1]), _int(f[2])
        ),
    ),
    TAGS[SnapshotRequest]: (2, lambda f: SnapshotRequest(_int(f[0]), _int(f[1]))),
    TAGS[SnapshotChunk]: (
        4,
        lambda f: SnapshotChunk(_int(f[0]), _int(f[1]), _int(f[2]), _bytes(f[3])),
    ),
}


def decode_message(data: bytes | memoryview) -> Message:
    """Parse one message, or raise :class:`MalformedMessage`; never anything else.

    A memoryview is read in place (the runtime passes the datagram past its kind byte, which
    spares a copy of a whole slot); what the message keeps is copied out as bytes.
    """
    try:
        # use_list=True, raw=False, strict_map_key=True: msgpack's defaults, left unsaid
        # (keyword arguments cost a parse on every datagram); a test holds them to it.
        body = _unpackb(data)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise MalformedMessage(f"not msgpack: {error}") from None
    if type(body) is not list or len(body) < 2:
        raise MalformedMessage("not a message envelope")
    version, tag = body[0], body[1]
    if type(version) is not int or version != WIRE_VERSION:
        raise MalformedMessage(f"wire version {version!r}, expected {WIRE_VERSION}")
    if type(tag) is not int:
        raise MalformedMessage(f"unknown message tag {tag!r}")
    number: int = tag
    decoder = _DECODERS.get(number)
    if decoder is None:
        raise MalformedMessage(f"unknown message tag {tag!r}")
    length, decode = decoder
    if len(body) != length + 2:
        raise MalformedMessage(f"{_BY_TAG[tag].__name__} needs {length} fields")
    # The messages of every write, decoded by direct calls (the table's lambdas are called
    # the generic way): the same checks and the same message as the table's decoders.
    if number == _ACCEPT_TAG:
        return _accept(body[2:])
    if number == _COMMIT_TAG:
        return Commit(_ballot(body[2]), _int(body[3]))
    if number == _ACCEPTED_TAG:
        return Accepted(_ballot(body[2]), _ints(body[3]))
    message: Message = decode(body[2:])
    return message


_ACCEPT_TAG: Final = TAGS[Accept]
_ACCEPTED_TAG: Final = TAGS[Accepted]
_COMMIT_TAG: Final = TAGS[Commit]
