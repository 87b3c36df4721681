"""What applying a command answers, in a form that can travel back to the asking node.

A client talks to any node, but its command is applied on every replica; the node that holds
the client's connection needs the answer, and the dedup table keeps it so a retry gets the very
same bytes. So every result is a frozen value class with a compact wire form (a
:class:`~paxoskv.state.frozen.Frozen` subclass; ``KeyValue`` and ``TxnResult``, which an
application is given, are dataclasses), the first element a tag::

    Applied         [0, revision]
    Written         [1, revision, prev_row | nil]   (a plain Set's: [1, revision, nil])
    Deleted         [2, revision, prev_row | nil]
    TxnResult       [3, revision, succeeded, [Written | Deleted wire, ...]]
    LeaseGranted    [4, revision, lease_id, ttl_ms]
    LeaseRenewed    [5, revision, lease_id, ttl_ms, expires_at_ms]
    LeaseRevoked    [6, revision, lease_id, deleted_count]
    LeaseExpired    [7, revision, lease_id, expired, deleted_count]
    ConfigChanged   [8, revision, [voter, ...], [learner, ...]]
    Failed          [9, revision, error_code, message]

    row = [key, value, create_revision, mod_revision, version, lease_id | nil]

A ``Failed`` result is deterministic: its code and message depend only on the state and the
command, never on library versions or exception text, because the encoded result sits in the
dedup table and the dedup table is part of the replicated state's digest.

A plain Set (one outside a transaction) answers its revision alone, with no previous row: its
caller gets only the revision (``Node.set`` returns it, as etcd's Put returns no previous pair
unless asked). The row, value and all, was otherwise packed for every answered write, unpacked
again by the caller's node only to be dropped, sent to every client-mode caller, and kept in
every replica's dedup table (so in its snapshots) for the whole window. Watchers still see every
previous value, in the change history. A transaction's steps keep theirs: an etcd Txn's callers
read them. An answer in the older form, with the row, still decodes (a retry answered from a
snapshot an older version wrote).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

from paxoskv.errors import (
    ConfigurationError,
    InvalidCommand,
    LeaseNotFound,
    PaxosKVError,
)
from paxoskv.state.configuration import Configuration
from paxoskv.state.frozen import Frozen, reduce_by_fields
from paxoskv.state.keys import Key, key_from_wire, key_to_wire
from paxoskv.state.wire import MalformedResult, pack, unpack

APPLIED, WRITTEN, DELETED, TXN_RESULT = 0, 1, 2, 3
LEASE_GRANTED, LEASE_RENEWED, LEASE_REVOKED, LEASE_EXPIRED = 4, 5, 6, 7
CONFIG_CHANGED, FAILED = 8, 9

# Failed.error_code values.
LEASE_NOT_FOUND = "lease_not_found"
LEASE_EXISTS = "lease_exists"
INVALID_CONFIG_CHANGE = "invalid_config_change"
STALE_REQUEST = "stale_request"
MALFORMED_COMMAND = "malformed_command"


class Rejected(Exception):
    """Raised inside the state machine, before any change, to answer with a Failed result."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key's value and history counters, as etcd keeps them.

    ``version`` counts writes since the key was (re)created and restarts at 1 after a delete;
    ``create_revision`` and ``mod_revision`` are the global revisions of its creation and of
    its last write.
    """

    key: Key
    value: Any
    create_revision: int
    mod_revision: int
    version: int
    lease_id: int | None

    # Compiled, a frozen dataclass pickles and copies by setting its fields one by one, which
    # its frozenness refuses (FrozenInstanceError): rebuilt through __init__ instead, as the
    # interpreted dataclass is. A subclass (pure build) comes back as itself, fields and all.
    def __reduce__(self) -> tuple[Any, ...]:
        fields_ = (
            self.key,
            self.value,
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease_id,
        )
        return (KeyValue, fields_) if type(self) is KeyValue else reduce_by_fields(self)


class Applied(Frozen):
    """A command with nothing to report (a no-op) took this revision."""

    __slots__ = ("revision",)
    __match_args__ = ("revision",)

    revision: int

    def __init__(self, revision: int) -> None:
        object.__setattr__(self, "revision", revision)


# Written and Deleted stay dataclasses: they are the responses of a public TxnResult, which
# dataclasses.asdict turns into dicts all the way down.
@dataclass(frozen=True, slots=True)
class Written:
    """A Set took effect at ``revision``. Inside a transaction's responses ``prev`` is what the
    key held before (None: nothing); a plain Set reports its revision alone, with ``prev``
    None (see the module docstring)."""

    revision: int
    prev: KeyValue | None

    def __reduce__(self) -> tuple[Any, ...]:  # see KeyValue's
        return (
            (Written, (self.revision, self.prev))
            if type(self) is Written
            else reduce_by_fields(self)
        )


@dataclass(frozen=True, slots=True)
class Deleted:
    """A Delete took ``revision``; ``prev`` is None when there was nothing to delete."""

    revision: int
    prev: KeyValue | None

    def __reduce__(self) -> tuple[Any, ...]:  # see KeyValue's
        return (
            (Deleted, (self.revision, self.prev))
            if type(self) is Deleted
            else reduce_by_fields(self)
        )


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Whether the compares held, and one response per step of the branch that ran."""

    revision: int
    succeeded: bool
    responses: tuple[Written | Deleted, ...]

    def __reduce__(self) -> tuple[Any, ...]:  # see KeyValue's
        return (
            (TxnResult, (self.revision, self.succeeded, self.responses))
            if type(self) is TxnResult
            else reduce_by_fields(self)
        )


class LeaseGranted(Frozen):
    __slots__ = ("lease_id", "revision", "ttl_ms")
    __match_args__ = ("revision", "lease_id", "ttl_ms")

    revision: int
    lease_id: int
    ttl_ms: int

    def __init__(self, revision: int, lease_id: int, ttl_ms: int) -> None:
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "lease_id", lease_id)
        object.__setattr__(self, "ttl_ms", ttl_ms)


class LeaseRenewed(Frozen):
    """A keepalive moved the lease's expiry to ``expires_at_ms`` (log time)."""

    __slots__ = ("expires_at_ms", "lease_id", "revision", "ttl_ms")
    __match_args__ = ("revision", "lease_id", "ttl_ms", "expires_at_ms")

    revision: int
    lease_id: int
    ttl_ms: int
    expires_at_ms: int

    def __init__(self, revision: int, lease_id: int, ttl_ms: int, expires_at_ms: int) -> None:
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "lease_id", lease_id)
        object.__setattr__(self, "ttl_ms", ttl_ms)
        object.__setattr__(self, "expires_at_ms", expires_at_ms)


class LeaseRevoked(Frozen):
    __slots__ = ("deleted_count", "lease_id", "revision")
    __match_args__ = ("revision", "lease_id", "deleted_count")

    revision: int
    lease_id: int
    deleted_count: int

    def __init__(self, revision: int, lease_id: int, deleted_count: int) -> None:
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "lease_id", lease_id)
        object.__setattr__(self, "deleted_count", deleted_count)


class LeaseExpired(Frozen):
    """``expired`` is False when a keepalive or revoke got into the log first."""

    __slots__ = ("deleted_count", "expired", "lease_id", "revision")
    __match_args__ = ("revision", "lease_id", "expired", "deleted_count")

    revision: int
    lease_id: int
    expired: bool
    deleted_count: int

    def __init__(self, revision: int, lease_id: int, expired: bool, deleted_count: int) -> None:
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "lease_id", lease_id)
        object.__setattr__(self, "expired", expired)
        object.__setattr__(self, "deleted_count", deleted_count)


class ConfigChanged(Frozen):
    __slots__ = ("configuration", "revision")
    __match_args__ = ("revision", "configuration")

    revision: int
    configuration: Configuration

    def __init__(self, revision: int, configuration: Configuration) -> None:
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "configuration", configuration)


class Failed(Frozen):
    """The command took ``revision`` but changed nothing; ``error_code`` says why."""

    __slots__ = ("error_code", "message", "revision")
    __match_args__ = ("revision", "error_code", "message")

    revision: int
    error_code: str
    message: str

    def __init__(self, revision: int, error_code: str, message: str) -> None:
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "error_code", error_code)
        object.__setattr__(self, "message", message)

    def exception(self) -> PaxosKVError:
        """The typed error a client API raises for this failure."""
        kind = _ERRORS.get(self.error_code, InvalidCommand)
        return kind(self.message)


_ERRORS: dict[str, type[PaxosKVError]] = {
    LEASE_NOT_FOUND: LeaseNotFound,
    LEASE_EXISTS: InvalidCommand,
    INVALID_CONFIG_CHANGE: ConfigurationError,
}

Result: TypeAlias = (
    Applied
    | Written
    | Deleted
    | TxnResult
    | LeaseGranted
    | LeaseRenewed
    | LeaseRevoked
    | LeaseExpired
    | ConfigChanged
    | Failed
)


# --- to the wire ---------------------------------------------------------------------------


def row_to_wire(row: tuple[Any, ...] | None) -> list[Any] | None:
    """A stored row as it travels: an array, its tuple key an array too (see wire.py)."""
    if row is None:
        return None
    wire = list(row)
    if type(row[0]) is tuple:
        wire[0] = list(row[0])
    return wire


def _kv_to_wire(kv: KeyValue | None) -> list[Any] | None:
    if kv is None:
        return None
    return [
        key_to_wire(kv.key),
        kv.value,
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease_id,
    ]


def result_to_wire(result: Result) -> list[Any]:
    """The msgpack-ready array for ``result``."""
    match result:
        case Applied(revision):
            return [APPLIED, revision]
        case Written(revision, prev):
            return [WRITTEN, revision, _kv_to_wire(prev)]
        case Deleted(revision, prev):
            return [DELETED, revision, _kv_to_wire(prev)]
        case TxnResult(revision, succeeded, responses):
            return [TXN_RESULT, revision, succeeded, [result_to_wire(r) for r in responses]]
        case LeaseGranted(revision, lease_id, ttl_ms):
            return [LEASE_GRANTED, revision, lease_id, ttl_ms]
        case LeaseRenewed(revision, lease_id, ttl_ms, expires_at_ms):
            return [LEASE_RENEWED, revision, lease_id, ttl_ms, expires_at_ms]
        case LeaseRevoked(revision, lease_id, deleted_count):
            return [LEASE_REVOKED, revision, lease_id, deleted_count]
        case LeaseExpired(revision, lease_id, expired, deleted_count):
            return [LEASE_EXPIRED, revision, lease_id, expired, deleted_count]
        case ConfigChanged(revision, configuration):
            return [CONFIG_CHANGED, revision, *configuration.to_wire()]
        case Failed(revision, error_code, message):
            return [FAILED, revision, error_code, message]
    raise TypeError(f"{result!r} is not a state-machine result")


def encode_result(result: Result) -> bytes:
    """Compact msgpack bytes for ``result``."""
    return pack(result_to_wire(result))


# A plain Set's answer, [WRITTEN, revision, nil], as msgpack spells it: fixarray of 3, positive
# fixint 1, the revision as uint16, uint32 or uint64 (the smallest that holds it), nil. The leader
# answers a slot of such Sets at a stretch of consecutive revisions, nearly always of one width.
_WRITTEN_BY_WIDTH = (
    (1 << 8, 1 << 16, 2, b"\x93\x01\xcd"),
    (1 << 16, 1 << 32, 4, b"\x93\x01\xce"),
    (1 << 32, 1 << 64, 8, b"\x93\x01\xcf"),
)
_NIL = 0xC0


def encode_written_run(first: int, stop: int, pack: Callable[[Any], bytes] = pack) -> list[bytes]:
    """The answers of plain Sets that took revisions ``first`` to ``stop - 1``, in order: the
    bytes ``encode_result(Written(revision, None))`` makes (the tests hold the two to each other
    at every width). Each answer is its head, the revision at a fixed width and a nil; read as
    one big-endian number, the whole run is one multiply and two adds of numbers made once per
    width and length (:func:`_run_terms`), and each answer is then a slice of its bytes: an
    eighth of the cost of a ``struct`` pack per answer. ``pack`` packs a run that crosses a
    width (or starts below 256)."""
    count = stop - first
    for low, high, width, head in _WRITTEN_BY_WIDTH:
        if low <= first and stop <= high:
            if count <= 0:
                return []
            step = len(head) + width + 1
            ones, steps = _run_terms(step, count)
            # Entry i is head, first + i, nil: (head << 8 * (width + 1) | nil) + (first + i) << 8.
            constant = (int.from_bytes(head, "big") << (8 * (width + 1))) | _NIL
            run = ((constant + (first << 8)) * ones + (steps << 8)).to_bytes(count * step, "big")
            return [run[at : at + step] for at in range(0, count * step, step)]
    return [pack([WRITTEN, revision, None]) for revision in range(first, stop)]


def encode_written(revision: int, pack: Callable[[Any], bytes] = pack) -> bytes:
    """:func:`encode_written_run` of one revision, written out: a plain Set's answer in a slot
    of one command, without the packer's call (``pack`` packs a revision below 256)."""
    if 1 << 8 <= revision < 1 << 16:
        return b"".join([b"\x93\x01\xcd", revision.to_bytes(2, "big"), b"\xc0"])
    if 1 << 16 <= revision < 1 << 32:
        return b"".join([b"\x93\x01\xce", revision.to_bytes(4, "big"), b"\xc0"])
    if 1 << 32 <= revision < 1 << 64:
        return b"".join([b"\x93\x01\xcf", revision.to_bytes(8, "big"), b"\xc0"])
    return pack([WRITTEN, revision, None])


@lru_cache(maxsize=64)
def _run_terms(step: int, count: int) -> tuple[int, int]:
    """``ones = sum(B**j)`` and ``steps = sum(i * B**(count - 1 - i))`` for ``j, i`` below
    ``count``, ``B = 256**step``: ``sum((a + i * c) * B**(count - 1 - i)) = a * ones + c *
    steps``. Slots are mostly of a few sizes, so these are made once each."""
    ones = int.from_bytes((bytes(step - 1) + b"\x01") * count, "big")
    return ones, (ones - count) // ((1 << (8 * step)) - 1)


# --- from the wire -------------------------------------------------------------------------


def _int(raw: object) -> int:
    if type(raw) is not int or raw < 0:
        raise ValueError(f"expected a non-negative int, got {raw!r}")
    return raw


def _optional_int(raw: object) -> int | None:
    return None if raw is None else _int(raw)


def _bool(raw: object) -> bool:
    if type(raw) is not bool:
        raise ValueError(f"expected a bool, got {raw!r}")
    return raw


def _str(raw: object) -> str:
    if type(raw) is not str:
        raise ValueError(f"expected a str, got {raw!r}")
    return raw


def key_value_from_row(row: object) -> KeyValue:
    """A KeyValue from a row's wire form (or a stored row); ValueError/TypeError if bad."""
    if (type(row) is not list and type(row) is not tuple) or len(row) != 6:
        raise ValueError("a key-value row has six fields")
    key, value, create_revision, mod_revision, version, lease_id = row
    return KeyValue(
        key_from_wire(key),
        value,
        _int(create_revision),
        _int(mod_revision),
        _int(version),
        _optional_int(lease_id),
    )


def _optional_key_value(row: object) -> KeyValue | None:
    return None if row is None else key_value_from_row(row)


def _write_from_wire(raw: object) -> Written | Deleted:
    # Check the tag first, so a transaction result cannot nest another one.
    if type(raw) is not list or not raw or raw[0] not in (WRITTEN, DELETED):
        raise ValueError("a transaction response is a written or deleted result")
    return result_from_wire(raw)  # type: ignore[return-value]


def _config_from_wire(voters: object, learners: object) -> Configuration:
    return Configuration.from_wire([voters, learners])


_FROM_WIRE: tuple[tuple[int, Any], ...] = (
    (2, lambda w: Applied(_int(w[1]))),
    (3, lambda w: Written(_int(w[1]), _optional_key_value(w[2]))),
    (3, lambda w: Deleted(_int(w[1]), _optional_key_value(w[2]))),
    (
        4,
        lambda w: TxnResult(
            _int(w[1]), _bool(w[2]), tuple(_write_from_wire(r) for r in _list(w[3]))
        ),
    ),
    (4, lambda w: LeaseGranted(_int(w[1]), _int(w[2]), _int(w[3]))),
    (5, lambda w: LeaseRenewed(_int(w[1]), _int(w[2]), _int(w[3]), _int(w[4]))),
    (4, lambda w: LeaseRevoked(_int(w[1]), _int(w[2]), _int(w[3]))),
    (5, lambda w: LeaseExpired(_int(w[1]), _int(w[2]), _bool(w[3]), _int(w[4]))),
    (4, lambda w: ConfigChanged(_int(w[1]), _config_from_wire(w[2], w[3]))),
    (4, lambda w: Failed(_int(w[1]), _str(w[2]), _str(w[3]))),
)


def _list(raw: object) -> list[Any]:
    if type(raw) is not list:
        raise ValueError(f"expected an array, got {raw!r}")
    return raw


def result_from_wire(raw: object) -> Result:
    """Build a result from its wire form; ValueError or TypeError if the shape is wrong.

    Never changes ``raw``: the machine's own answers contain its stored rows.
    """
    if type(raw) is not list or not raw or type(raw[0]) is not int:
        raise ValueError("a result is an array that starts with an int tag")
    tag = raw[0]
    if not 0 <= tag < len(_FROM_WIRE):
        raise ValueError(f"unknown result tag {tag}")
    length, build = _FROM_WIRE[tag]
    if len(raw) != length:
        raise ValueError(f"result tag {tag} needs {length} fields, not {len(raw)}")
    return build(raw)  # type: ignore[no-any-return]


def decode_result(data: bytes) -> Result:
    """The result in ``data``; raises MalformedResult on any bad input and nothing else."""
    try:
        return result_from_wire(unpack(data))
    except Exception as error:  # the boundary: every failure becomes the one error type
        raise MalformedResult(f"result bytes are malformed: {error}") from None
