"""The messages Paxos nodes exchange, and their msgpack codec.

Each message is a frozen dataclass with a one-byte tag. On the wire a message is the msgpack
list ``[WIRE_VERSION, tag, *fields]``: positional, because a field name in every datagram is
pure overhead. :func:`decode_message` checks every field's type before a message object exists,
so a malformed datagram is rejected whole at the boundary and never half-processed by the
engine (the h11 rule: bad bytes from a peer raise one remote-error type, here
:class:`MalformedMessage`).

Values in the log (slot payloads) stay opaque ``bytes`` here: the engine never decodes a batch
it only relays, which keeps one msgpack pass per batch on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import msgpack

from paxoskv.paxos.ballot import Ballot

WIRE_VERSION = 1


class MalformedMessage(ValueError):
    """The bytes are not a message of this wire version."""


@dataclass(frozen=True, slots=True)
class Prepare:
    """Phase 1a for every slot from ``from_slot`` on (Multi-Paxos runs phase 1 once)."""

    TAG: ClassVar[int] = 1
    ballot: Ballot
    from_slot: int


@dataclass(frozen=True, slots=True)
class PromiseEntry:
    slot: int
    ballot: Ballot
    value: bytes
    chosen: bool


@dataclass(frozen=True, slots=True)
class Promise:
    """Phase 1b: the acceptor's accepted values from ``from_slot`` on.

    ``truncated`` says the acceptor had more than fit; the candidate is then too far behind to
    lead and catches up first.
    """

    TAG: ClassVar[int] = 2
    ballot: Ballot
    from_slot: int
    entries: tuple[PromiseEntry, ...]
    chosen_upto: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Nack:
    """The sender has promised ``promised``, higher than the ``ballot`` it was asked about."""

    TAG: ClassVar[int] = 3
    ballot: Ballot
    promised: Ballot


@dataclass(frozen=True, slots=True)
class Accept:
    """Phase 2a for one slot, multicast to everyone; carries the leader's commit point."""

    TAG: ClassVar[int] = 4
    ballot: Ballot
    slot: int
    value: bytes
    commit_upto: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """Phase 2b for every slot in ``slots``, sent once the accepts are durable."""

    TAG: ClassVar[int] = 5
    ballot: Ballot
    slots: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Commit:
    """Every slot up to ``upto`` is chosen; slots this leader proposed carry ``ballot``."""

    TAG: ClassVar[int] = 6
    ballot: Ballot
    upto: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The leader is alive. Acks to ``seq`` confirm leadership for read-index and leases."""

    TAG: ClassVar[int] = 7
    ballot: Ballot
    commit_upto: int
    seq: int


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    TAG: ClassVar[int] = 8
    ballot: Ballot
    seq: int
    applied_upto: int


@dataclass(frozen=True, slots=True)
class Request:
    """One client command. (client_id, seq) makes retries idempotent."""

    client_id: str
    seq: int
    command: bytes


@dataclass(frozen=True, slots=True)
class Forward:
    """Client requests a non-leader passes to the leader, batched."""

    TAG: ClassVar[int] = 9
    requests: tuple[Request, ...]


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    TAG: ClassVar[int] = 10
    read_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadIndexReply:
    """``index`` is -1 when the receiver is not (or no longer) the leader."""

    TAG: ClassVar[int] = 11
    read_ids: tuple[int, ...]
    index: int


@dataclass(frozen=True, slots=True)
class CatchupRequest:
    TAG: ClassVar[int] = 12
    from_slot: int


@dataclass(frozen=True, slots=True)
class CatchupEntry:
    slot: int
    value: bytes


@dataclass(frozen=True, slots=True)
class CatchupReply:
    """Chosen values from ``from_slot``; empty with ``snapshot_slot`` set when compacted."""

    TAG: ClassVar[int] = 13
    entries: tuple[CatchupEntry, ...]
    chosen_upto: int
    snapshot_slot: int


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    TAG: ClassVar[int] = 14
    snapshot_slot: int
    offset: int


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    TAG: ClassVar[int] = 15
    snapshot_slot: int
    offset: int
    total_bytes: int
    data: bytes


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
_BY_TAG: dict[int, type[Any]] = {cls.TAG: cls for cls in _MESSAGE_TYPES}


def _flatten(value: object) -> object:
    if isinstance(value, Ballot):
        return [value.round, value.node_id]
    if isinstance(value, tuple):
        return [_flatten(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return [_flatten(getattr(value, f.name)) for f in fields(value)]  # type: ignore[arg-type]
    return value


def encode_message(message: Message) -> bytes:
    body = [
        WIRE_VERSION,
        message.TAG,
        *(_flatten(getattr(message, f.name)) for f in fields(message)),
    ]
    return msgpack.packb(body, use_bin_type=True)


def _int(raw: object) -> int:
    if type(raw) is not int:
        raise MalformedMessage(f"expected int, got {type(raw).__name__}")
    return raw


def _str(raw: object) -> str:
    if type(raw) is not str:
        raise MalformedMessage(f"expected str, got {type(raw).__name__}")
    return raw


def _bytes(raw: object) -> bytes:
    if type(raw) is not bytes:
        raise MalformedMessage(f"expected bytes, got {type(raw).__name__}")
    return raw


def _bool(raw: object) -> bool:
    if type(raw) is not bool:
        raise MalformedMessage(f"expected bool, got {type(raw).__name__}")
    return raw


def _list(raw: object, length: int | None = None) -> Sequence[object]:
    if type(raw) is not list or (length is not None and len(raw) != length):
        raise MalformedMessage(f"expected a list of {length} items")
    return raw


def _ballot(raw: object) -> Ballot:
    round_, node_id = _list(raw, 2)
    return Ballot(_int(round_), _str(node_id))


def _tuple_of(item: Callable[[object], Any]) -> Callable[[object], tuple[Any, ...]]:
    return lambda raw: tuple(item(element) for element in _list(raw))


def _promise_entry(raw: object) -> PromiseEntry:
    slot, ballot, value, chosen = _list(raw, 4)
    return PromiseEntry(_int(slot), _ballot(ballot), _bytes(value), _bool(chosen))


def _request(raw: object) -> Request:
    client_id, seq, command = _list(raw, 3)
    return Request(_str(client_id), _int(seq), _bytes(command))


def _catchup_entry(raw: object) -> CatchupEntry:
    slot, value = _list(raw, 2)
    return CatchupEntry(_int(slot), _bytes(value))


_FIELD_PARSERS: dict[type[Any], tuple[Callable[[object], Any], ...]] = {
    Prepare: (_ballot, _int),
    Promise: (_ballot, _int, _tuple_of(_promise_entry), _int, _bool),
    Nack: (_ballot, _ballot),
    Accept: (_ballot, _int, _bytes, _int),
    Accepted: (_ballot, _tuple_of(_int)),
    Commit: (_ballot, _int),
    Heartbeat: (_ballot, _int, _int),
    HeartbeatAck: (_ballot, _int, _int),
    Forward: (_tuple_of(_request),),
    ReadIndexRequest: (_tuple_of(_int),),
    ReadIndexReply: (_tuple_of(_int), _int),
    CatchupRequest: (_int,),
    CatchupReply: (_tuple_of(_catchup_entry), _int, _int),
    SnapshotRequest: (_int, _int),
    SnapshotChunk: (_int, _int, _int, _bytes),
}


def decode_message(data: bytes) -> Message:
    """Parse one message, or raise :class:`MalformedMessage`; never anything else."""
    try:
        body = msgpack.unpackb(data, use_list=True, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise MalformedMessage(f"not msgpack: {error}") from None
    if type(body) is not list or len(body) < 2:
        raise MalformedMessage("not a message envelope")
    version, tag, *raw_fields = body
    if version != WIRE_VERSION:
        raise MalformedMessage(f"wire version {version!r}, expected {WIRE_VERSION}")
    cls = _BY_TAG.get(tag) if type(tag) is int else None
    if cls is None:
        raise MalformedMessage(f"unknown message tag {tag!r}")
    parsers = _FIELD_PARSERS[cls]
    if len(raw_fields) != len(parsers):
        raise MalformedMessage(f"{cls.__name__} needs {len(parsers)} fields")
    message: Message = cls(*(parse(raw) for parse, raw in zip(parsers, raw_fields, strict=True)))
    return message
