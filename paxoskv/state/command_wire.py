"""Commands to and from their wire form: what every replica runs per command.

On the wire a command is one msgpack array, its first element a small integer tag (the table
is in :mod:`commands`). The state machine applies the checked array itself
(:func:`read_command_wire`, :func:`unpack_command`), so a replica's hot path never builds the
dataclasses; a client builds them, or skips them for a plain set (:func:`encode_set`).
Compiled in the compiled build, unlike the dataclasses (see :mod:`commands` for why).
"""

from __future__ import annotations

from typing import Any

from paxoskv.errors import InvalidCommand
from paxoskv.state.commands import (
    OPS,
    TARGETS,
    AddLearner,
    Command,
    Compare,
    Delete,
    DemoteVoter,
    LeaseExpire,
    LeaseGrant,
    LeaseKeepalive,
    LeaseRevoke,
    NoOp,
    PromoteLearner,
    RemoveMember,
    Set,
    Txn,
    _check_lease_id,
    _check_node,
    _check_ttl,
)
from paxoskv.state.keys import Key, check_key, key_from_wire, key_to_wire
from paxoskv.state.wire import MalformedCommand, check_value, pack, unpack

NOOP, SET, DELETE, TXN = 0, 1, 2, 3
LEASE_GRANT, LEASE_KEEPALIVE, LEASE_REVOKE, LEASE_EXPIRE = 4, 5, 6, 7
ADD_LEARNER, PROMOTE_LEARNER, DEMOTE_VOTER, REMOVE_MEMBER = 8, 9, 10, 11


# --- to the wire ---------------------------------------------------------------------------


def command_to_wire(command: object) -> list[Any]:
    """The msgpack-ready array for ``command`` (tuple keys as arrays, see wire.py)."""
    try:
        to_wire = _TO_WIRE[type(command)]
    except KeyError:
        raise InvalidCommand(f"{command!r} is not a paxos-kv command") from None
    return to_wire(command)  # type: ignore[no-any-return]


def encode_command(command: object) -> bytes:
    """Compact msgpack bytes for ``command``; ValueNotSerialisable if a value cannot travel."""
    return pack(command_to_wire(command))


def encode_set(key: object, value: Any, lease_id: object = None) -> bytes:
    """``encode_command(Set(key, value, lease_id))``, checked the same, without the object.

    The one command a pipelined client sends most: building the frozen dataclass only to
    take it apart again was a tenth of a write's client-side cost. ``key`` and ``lease_id``
    are ``object`` so that a wrong type gets InvalidKey or InvalidCommand in the compiled
    build too (they are an application's; an ``int`` parameter would also take True as 1).
    """
    checked = check_key(key)
    check_value(value)
    if lease_id is not None:
        _check_lease_id(lease_id)
    return pack([SET, key_to_wire(checked), value, lease_id])


def _operation_to_wire(operation: Set | Delete) -> list[Any]:
    if type(operation) is Set:
        return [SET, key_to_wire(operation.key), operation.value, operation.lease_id]
    return [DELETE, key_to_wire(operation.key)]


def _txn_to_wire(txn: Txn) -> list[Any]:
    compares = [
        [key_to_wire(c.key), TARGETS.index(c.target), OPS.index(c.op), c.operand]
        for c in txn.compares
    ]
    return [
        TXN,
        compares,
        [_operation_to_wire(op) for op in txn.success],
        [_operation_to_wire(op) for op in txn.failure],
    ]


_TO_WIRE: dict[type, Any] = {
    NoOp: lambda c: [NOOP],
    Set: _operation_to_wire,
    Delete: _operation_to_wire,
    Txn: _txn_to_wire,
    LeaseGrant: lambda c: [LEASE_GRANT, c.ttl_ms, c.lease_id],
    LeaseKeepalive: lambda c: [LEASE_KEEPALIVE, c.lease_id],
    LeaseRevoke: lambda c: [LEASE_REVOKE, c.lease_id],
    LeaseExpire: lambda c: [LEASE_EXPIRE, c.lease_id],
    AddLearner: lambda c: [ADD_LEARNER, c.node_id],
    PromoteLearner: lambda c: [PROMOTE_LEARNER, c.node_id],
    DemoteVoter: lambda c: [DEMOTE_VOTER, c.node_id],
    RemoveMember: lambda c: [REMOVE_MEMBER, c.node_id],
}


# --- from the wire -------------------------------------------------------------------------


def read_command_wire(raw: object) -> list[Any]:
    """Check an unpacked command array and return it with key slots turned into keys.

    Works in place on the array it is given (fresh from the unpacker, or from
    :func:`command_to_wire`). Raises MalformedCommand on any problem. Values are not
    re-checked: whatever msgpack produced, msgpack can carry.
    """
    if type(raw) is not list or not raw or type(raw[0]) is not int:
        raise MalformedCommand("a command is an array that starts with an int tag")
    tag = raw[0]
    if not 0 <= tag < len(_READERS):
        raise MalformedCommand(f"unknown command tag {tag!r}")
    if len(raw) != _LENGTHS[tag]:
        raise MalformedCommand(f"command tag {tag} needs {_LENGTHS[tag]} fields, not {len(raw)}")
    try:
        _READERS[tag](raw)
    except MalformedCommand:
        raise
    except Exception as error:  # a field check; anything else here is still bad input
        raise MalformedCommand(f"bad command field: {error}") from None
    return raw


def _read_nothing(raw: list[Any]) -> None:
    return None


def _read_set(raw: list[Any]) -> None:
    raw[1] = key_from_wire(raw[1])
    if raw[3] is not None:
        _check_lease_id(raw[3])


def _read_delete(raw: list[Any]) -> None:
    raw[1] = key_from_wire(raw[1])


def _read_operations(raw: object) -> None:
    if type(raw) is not list:
        raise MalformedCommand("a transaction branch is an array")
    seen: set[Key] = set()
    for operation in raw:
        # Check the tag before reading further, so a transaction cannot nest another.
        if type(operation) is not list or not operation or operation[0] not in (SET, DELETE):
            raise MalformedCommand("a transaction step is a set or a delete")
        read_command_wire(operation)
        if operation[1] in seen:
            raise MalformedCommand(f"key {operation[1]!r} appears twice in one branch")
        seen.add(operation[1])


def _read_compare(raw: object) -> None:
    if type(raw) is not list or len(raw) != 4:
        raise MalformedCommand("a compare is [key, target, op, operand]")
    raw[0] = key_from_wire(raw[0])
    target, op, operand = raw[1], raw[2], raw[3]
    if type(target) is not int or not 0 <= target < len(TARGETS):
        raise MalformedCommand(f"unknown compare target {target!r}")
    if type(op) is not int or not 0 <= op < len(OPS):
        raise MalformedCommand(f"unknown compare op {op!r}")
    if target != 0 and type(operand) is not int:
        raise MalformedCommand("a version or revision compare needs an int operand")


def _read_txn(raw: list[Any]) -> None:
    if type(raw[1]) is not list:
        raise MalformedCommand("transaction compares are an array")
    for compare in raw[1]:
        _read_compare(compare)
    _read_operations(raw[2])
    _read_operations(raw[3])


def _read_grant(raw: list[Any]) -> None:
    _check_ttl(raw[1])
    if raw[2] is not None:
        _check_lease_id(raw[2])


def _read_lease_id(raw: list[Any]) -> None:
    _check_lease_id(raw[1])


def _read_node(raw: list[Any]) -> None:
    _check_node(raw[1])


_READERS = (
    _read_nothing,
    _read_set,
    _read_delete,
    _read_txn,
    _read_grant,
    _read_lease_id,
    _read_lease_id,
    _read_lease_id,
    _read_node,
    _read_node,
    _read_node,
    _read_node,
)
_LENGTHS = (1, 4, 2, 4, 3, 2, 2, 2, 2, 2, 2, 2)


def command_from_wire(wire: list[Any]) -> Command:
    """Build the dataclass for an array already checked by :func:`read_command_wire`."""
    tag = wire[0]
    if tag == SET:
        return Set(wire[1], wire[2], wire[3])
    if tag == DELETE:
        return Delete(wire[1])
    if tag == TXN:
        return Txn(
            tuple(Compare(c[0], TARGETS[c[1]], OPS[c[2]], c[3]) for c in wire[1]),
            tuple(_operation_from_wire(op) for op in wire[2]),
            tuple(_operation_from_wire(op) for op in wire[3]),
        )
    if tag == LEASE_GRANT:
        return LeaseGrant(wire[1], wire[2])
    if tag == NOOP:
        return NoOp()
    return _SIMPLE[tag](wire[1])  # type: ignore[no-any-return]


def _operation_from_wire(wire: list[Any]) -> Set | Delete:
    return Set(wire[1], wire[2], wire[3]) if wire[0] == SET else Delete(wire[1])


_SIMPLE: dict[int, Any] = {
    LEASE_KEEPALIVE: LeaseKeepalive,
    LEASE_REVOKE: LeaseRevoke,
    LEASE_EXPIRE: LeaseExpire,
    ADD_LEARNER: AddLearner,
    PROMOTE_LEARNER: PromoteLearner,
    DEMOTE_VOTER: DemoteVoter,
    REMOVE_MEMBER: RemoveMember,
}


def unpack_command(data: bytes) -> list[Any]:
    """Unpack and check command bytes into the wire form; MalformedCommand on any problem."""
    try:
        raw = unpack(data)
    except Exception as error:  # msgpack raises many types; the boundary turns them into one
        raise MalformedCommand(f"command bytes do not unpack: {error}") from None
    # The one hot case, checked inline: a Set of a str key with no lease. It is exactly what
    # read_command_wire would accept for it, minus three function calls.
    if type(raw) is list and len(raw) == 4 and raw[3] is None and type(raw[0]) is int:
        key = raw[1]
        if raw[0] == SET and type(key) is str and key and key.isascii():
            return raw
    return read_command_wire(raw)


def decode_command(data: bytes) -> Command:
    """The command in ``data``; raises MalformedCommand on any bad input and nothing else."""
    wire = unpack_command(data)
    try:
        return command_from_wire(wire)
    except Exception as error:
        raise MalformedCommand(f"command fields are out of range: {error}") from None
