"""The commands the replicated log carries, as an application builds them.

Each command is a frozen, slotted value class that checks its fields when built, so a caller's
mistake raises at once in the caller's hands (InvalidKey, InvalidCommand, ValueNotSerialisable)
rather than as a failure deep in the log. The four an application builds (``Set``, ``Delete``,
``Compare``, ``Txn``) are dataclasses, which ``dataclasses.fields`` and ``replace`` work on; the
ones only paxos-kv builds are :class:`~paxoskv.state.frozen_plain.PlainFrozen` subclasses (the
same equality, hash and repr, without the dataclass's cost at import: see that module). Their
wire form is in :mod:`command_wire`; on the wire a command is one msgpack array, its first
element a small integer tag::

    NoOp            [0]
    Set             [1, key, value, lease_id | nil]
    Delete          [2, key]
    Txn             [3, [[key, target, op, operand], ...], [op, ...], [op, ...]]
    LeaseGrant      [4, ttl_ms, lease_id | nil]
    LeaseKeepalive  [5, lease_id]        LeaseRevoke [6, lease_id]    LeaseExpire [7, lease_id]
    AddLearner      [8, node_id]         PromoteLearner [9, node_id]
    DemoteVoter     [10, node_id]        RemoveMember [11, node_id]

The state machine applies the *wire form* directly (``command_wire.read_command_wire``), so
the hot path of a replica never builds these objects: it unpacks, checks, and applies.

This module stays interpreted in the compiled build (``paxoskv/compiled.py``): compiled, an
``int`` field would turn ``True`` into ``1`` and a wrong type would raise a bare TypeError
before ``__post_init__`` could say what is wrong, so an application would see other errors
than the pure build gives. Its wire module is compiled, and it is what the hot path runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from paxoskv.errors import InvalidCommand
from paxoskv.state.configuration import NodeId, check_node_id
from paxoskv.state.frozen_plain import PlainFrozen
from paxoskv.state.keys import Key, check_key
from paxoskv.state.wire import check_value

MAX_LEASE_ID = 2**63 - 1
MAX_TTL_MS = 3_155_760_000_000
"""A hundred years: long enough for any lease, short enough that expiry times stay in int64."""
DEDUP_WINDOW_REQUESTS = 1024
"""How many of a client's latest seqs a replica keeps results for (the state machine's
default); a client never has a seq waiting this far below its newest one
(:mod:`paxoskv.seq_window`), so a resend is never refused as stale."""

CompareTarget: TypeAlias = Literal["value", "version", "create_revision", "mod_revision"]
CompareOp: TypeAlias = Literal["==", "!=", "<", ">"]
TARGETS: tuple[CompareTarget, ...] = ("value", "version", "create_revision", "mod_revision")
OPS: tuple[CompareOp, ...] = ("==", "!=", "<", ">")


@dataclass(frozen=True, slots=True)
class Set:
    """Write ``value`` under ``key``, attached to ``lease_id`` if given (detached otherwise)."""

    key: Key
    value: Any
    lease_id: int | None = None

    def __post_init__(self) -> None:
        check_key(self.key)
        check_value(self.value)
        if self.lease_id is not None:
            _check_lease_id(self.lease_id)


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key``; deleting a missing key is not an error (it still takes a revision)."""

    key: Key

    def __post_init__(self) -> None:
        check_key(self.key)


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction, etcd style.

    A missing key compares as version 0, create and mod revision 0, and value None.
    """

    key: Key
    target: CompareTarget
    op: CompareOp
    operand: Any

    def __post_init__(self) -> None:
        check_key(self.key)
        if self.target not in TARGETS:
            raise InvalidCommand(f"compare target {self.target!r} is not one of {TARGETS}")
        if self.op not in OPS:
            raise InvalidCommand(f"compare op {self.op!r} is not one of {OPS}")
        if self.target != "value" and type(self.operand) is not int:
            raise InvalidCommand(f"comparing {self.target} needs an int, not {self.operand!r}")
        check_value(self.operand)


@dataclass(frozen=True, slots=True)
class Txn:
    """If every compare holds, apply ``success``, else ``failure``; all at one revision."""

    compares: tuple[Compare, ...]
    success: tuple[Set | Delete, ...]
    failure: tuple[Set | Delete, ...] = ()

    def __post_init__(self) -> None:
        # Lists are accepted for convenience; the stored form is a tuple so the command stays
        # hashable and immutable.
        object.__setattr__(self, "compares", tuple(self.compares))
        object.__setattr__(self, "success", tuple(self.success))
        object.__setattr__(self, "failure", tuple(self.failure))
        for compare in self.compares:
            if type(compare) is not Compare:
                raise InvalidCommand(f"a transaction compare must be a Compare, not {compare!r}")
        _check_branch(self.success, "success")
        _check_branch(self.failure, "failure")


class LeaseGrant(PlainFrozen):
    """Create a lease of ``ttl_ms``; with no ``lease_id`` the id is the grant's revision."""

    __slots__ = ("lease_id", "ttl_ms")
    __match_args__ = ("ttl_ms", "lease_id")

    ttl_ms: int
    lease_id: int | None

    def __init__(self, ttl_ms: int, lease_id: int | None = None) -> None:
        object.__setattr__(self, "ttl_ms", ttl_ms)
        object.__setattr__(self, "lease_id", lease_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_ttl(self.ttl_ms)
        if self.lease_id is not None:
            _check_lease_id(self.lease_id)


class LeaseKeepalive(PlainFrozen):
    """Push a lease's expiry to the command's log time plus its TTL."""

    __slots__ = ("lease_id",)
    __match_args__ = ("lease_id",)

    lease_id: int

    def __init__(self, lease_id: int) -> None:
        object.__setattr__(self, "lease_id", lease_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_lease_id(self.lease_id)


class LeaseRevoke(PlainFrozen):
    """End a lease now and delete the keys attached to it."""

    __slots__ = ("lease_id",)
    __match_args__ = ("lease_id",)

    lease_id: int

    def __init__(self, lease_id: int) -> None:
        object.__setattr__(self, "lease_id", lease_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_lease_id(self.lease_id)


class LeaseExpire(PlainFrozen):
    """Proposed by the leader when it sees a lease due; applied only if still due in log time.

    The condition makes the race with a keepalive harmless: whichever is first in the log wins,
    the same way on every replica.
    """

    __slots__ = ("lease_id",)
    __match_args__ = ("lease_id",)

    lease_id: int

    def __init__(self, lease_id: int) -> None:
        object.__setattr__(self, "lease_id", lease_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_lease_id(self.lease_id)


class NoOp(PlainFrozen):
    """Fills a slot (a new leader closes holes with these); takes a revision, changes nothing."""

    __slots__ = ()
    __match_args__ = ()


class AddLearner(PlainFrozen):
    """Add a node that receives the log but does not vote."""

    __slots__ = ("node_id",)
    __match_args__ = ("node_id",)

    node_id: NodeId

    def __init__(self, node_id: NodeId) -> None:
        object.__setattr__(self, "node_id", node_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_node(self.node_id)


class PromoteLearner(PlainFrozen):
    """Make a caught-up learner a voter."""

    __slots__ = ("node_id",)
    __match_args__ = ("node_id",)

    node_id: NodeId

    def __init__(self, node_id: NodeId) -> None:
        object.__setattr__(self, "node_id", node_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_node(self.node_id)


class DemoteVoter(PlainFrozen):
    """Make a voter a learner (it keeps receiving the log)."""

    __slots__ = ("node_id",)
    __match_args__ = ("node_id",)

    node_id: NodeId

    def __init__(self, node_id: NodeId) -> None:
        object.__setattr__(self, "node_id", node_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_node(self.node_id)


class RemoveMember(PlainFrozen):
    """Take a voter or learner out of the cluster."""

    __slots__ = ("node_id",)
    __match_args__ = ("node_id",)

    node_id: NodeId

    def __init__(self, node_id: NodeId) -> None:
        object.__setattr__(self, "node_id", node_id)
        self.__post_init__()

    def __post_init__(self) -> None:
        _check_node(self.node_id)


Command: TypeAlias = (
    Set
    | Delete
    | Txn
    | LeaseGrant
    | LeaseKeepalive
    | LeaseRevoke
    | LeaseExpire
    | NoOp
    | AddLearner
    | PromoteLearner
    | DemoteVoter
    | RemoveMember
)
ConfigChange: TypeAlias = AddLearner | PromoteLearner | DemoteVoter | RemoveMember


# --- field checks --------------------------------------------------------------------------


def _check_lease_id(lease_id: object) -> None:
    if type(lease_id) is not int or not 1 <= lease_id <= MAX_LEASE_ID:
        raise InvalidCommand(f"lease id {lease_id!r} is not an int from 1 to {MAX_LEASE_ID}")


def _check_ttl(ttl_ms: object) -> None:
    if type(ttl_ms) is not int or not 1 <= ttl_ms <= MAX_TTL_MS:
        raise InvalidCommand(f"lease ttl_ms {ttl_ms!r} is not an int from 1 to {MAX_TTL_MS}")


def _check_node(node_id: object) -> None:
    try:
        check_node_id(node_id)
    except ValueError as error:
        raise InvalidCommand(str(error)) from None


def _check_branch(operations: tuple[object, ...], name: str) -> None:
    seen: set[Key] = set()
    for operation in operations:
        if type(operation) is not Set and type(operation) is not Delete:
            raise InvalidCommand(f"a transaction {name} step must be Set or Delete")
        if operation.key in seen:
            # etcd refuses this too: two writes to one key at one revision have no clear meaning.
            raise InvalidCommand(f"key {operation.key!r} appears twice in the {name} branch")
        seen.add(operation.key)
