"""Commands: checked when built, compact on the wire, and decoded to exactly what was sent."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from paxoskv.errors import InvalidCommand, InvalidKey, ValueNotSerialisable
from paxoskv.state import (
    AddLearner,
    Command,
    Compare,
    Delete,
    DemoteVoter,
    LeaseExpire,
    LeaseGrant,
    LeaseKeepalive,
    LeaseRevoke,
    MalformedCommand,
    NoOp,
    PromoteLearner,
    RemoveMember,
    Set,
    Txn,
    decode_command,
    encode_command,
    encode_set,
)
from paxoskv.state.commands import MAX_TTL_MS
from paxoskv.state.wire import MAX_NESTING

EVERY_KIND: list[Command] = [
    NoOp(),
    Set("k", "v"),
    Set(("session", b"id", 3), {"user": [1, 2.5, None, True]}, lease_id=9),
    Delete(b"raw"),
    Txn(
        (Compare("k", "value", "==", [1, (2, 3)]), Compare(("a", 1), "version", ">", 0)),
        (Set("k", 1), Delete(("a", 1))),
        (Set("other", (1, "tuple")),),
    ),
    Txn((), ()),
    LeaseGrant(1000),
    LeaseGrant(5, lease_id=42),
    LeaseKeepalive(42),
    LeaseRevoke(42),
    LeaseExpire(42),
    AddLearner("n4"),
    PromoteLearner("n4"),
    DemoteVoter("n1"),
    RemoveMember("n1"),
]


@pytest.mark.parametrize("command", EVERY_KIND, ids=lambda c: type(c).__name__)
def test_every_command_round_trips_exactly(command: Command) -> None:
    decoded = decode_command(encode_command(command))
    assert decoded == command
    assert type(decoded) is type(command)


def test_values_come_back_with_their_types() -> None:
    value = {
        "list": [1, [2]],
        "tuple": (1, (2, [3])),
        "bytes": b"\x00\xff",
        "str": "text",
        "big": 2**64 - 1,
        "neg": -(2**63),
        "float": 0.1,
        (1, "k"): "tuple dict key",
        7: "int dict key",
        "ts": msgpack.Timestamp(5, 6),
        "ext": msgpack.ExtType(9, b"user ext"),
    }
    decoded = decode_command(encode_command(Set("k", value)))
    assert isinstance(decoded, Set)
    assert decoded.value == value
    assert type(decoded.value["list"]) is list
    assert type(decoded.value["list"][1]) is list
    assert type(decoded.value["tuple"]) is tuple
    assert type(decoded.value["tuple"][1]) is tuple
    assert type(decoded.value["tuple"][1][1]) is list
    assert type(decoded.value["bytes"]) is bytes
    assert type(decoded.value["str"]) is str


def test_the_wire_form_is_a_compact_array_not_a_map_of_field_names() -> None:
    assert encode_command(Set("k", "v")) == msgpack.packb([1, "k", "v", None])
    assert encode_command(Set(("s", 1), 2)) == msgpack.packb([1, ["s", 1], 2, None])
    assert encode_command(NoOp()) == msgpack.packb([0])
    assert len(encode_command(Delete("session:abc"))) == 14


@pytest.mark.parametrize(
    "make",
    [
        lambda: Set("k", object()),
        lambda: Set("k", [1, {2: {3}}]),
        lambda: Set("k", bytearray(b"x")),
        lambda: Set("k", 2**64),
        lambda: Set("k", -(2**63) - 1),
        lambda: Set("k", "\ud800"),
        lambda: Set("k", {"a": ["\udc00"]}),
        lambda: Set("k", msgpack.ExtType(1, b"reserved for tuples")),
        lambda: Compare("k", "value", "==", object()),
        lambda: Compare("k", "version", "<", 2**64),
    ],
)
def test_values_msgpack_cannot_carry_are_refused_when_the_command_is_built(make: Any) -> None:
    with pytest.raises(ValueNotSerialisable):
        make()


def test_a_str_subclass_value_is_refused_because_it_would_come_back_as_str() -> None:
    class Label(str):
        pass

    with pytest.raises(ValueNotSerialisable):
        Set("k", Label("x"))


@pytest.mark.parametrize("container", [list, tuple])
def test_a_value_nested_to_the_limit_travels_and_one_level_deeper_is_refused(
    container: Any,
) -> None:
    value: Any = container()
    for _ in range(MAX_NESTING):
        value = container([value])
    assert decode_command(encode_command(Set("k", value))) == Set("k", value)
    with pytest.raises(ValueNotSerialisable, match="nested deeper"):
        Set("k", container([value]))


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: Set("", 1), InvalidKey),
        (lambda: Delete(None), InvalidKey),
        (lambda: Set("k", 1, lease_id=0), InvalidCommand),
        (lambda: Set("k", 1, lease_id=True), InvalidCommand),
        (lambda: LeaseGrant(0), InvalidCommand),
        (lambda: LeaseGrant(MAX_TTL_MS + 1), InvalidCommand),
        (lambda: LeaseGrant(10, lease_id=-1), InvalidCommand),
        (lambda: LeaseKeepalive(2**63), InvalidCommand),
        (lambda: Compare("k", "lease", "==", 1), InvalidCommand),  # type: ignore[arg-type]
        (lambda: Compare("k", "value", "<=", 1), InvalidCommand),  # type: ignore[arg-type]
        (lambda: Compare("k", "version", "==", "1"), InvalidCommand),
        (lambda: Compare("k", "mod_revision", "==", True), InvalidCommand),
        (lambda: Txn((Set("k", 1),), ()), InvalidCommand),  # type: ignore[arg-type]
        (lambda: Txn((), (NoOp(),)), InvalidCommand),  # type: ignore[arg-type]
        (lambda: Txn((), (Set("k", 1), Delete("k"))), InvalidCommand),
        (lambda: Txn((), (), (Set("k", 1), Set("k", 2))), InvalidCommand),
        (lambda: AddLearner(""), InvalidCommand),
        (lambda: RemoveMember(5), InvalidCommand),  # type: ignore[arg-type]
    ],
)
def test_fields_that_make_no_sense_raise_at_construction(make: Any, error: type) -> None:
    with pytest.raises(error):
        make()


def test_a_txn_accepts_lists_and_stores_tuples() -> None:
    txn = Txn([Compare("k", "version", "==", 0)], [Set("k", 1)], [Delete("k")])  # type: ignore[arg-type]
    assert txn.compares == (Compare("k", "version", "==", 0),)
    assert txn.success == (Set("k", 1),)
    assert txn.failure == (Delete("k"),)
    hash(txn)


def test_encode_refuses_what_was_changed_after_the_checks_saying_why() -> None:
    value = [1]
    command = Set("k", value)
    value.append(2**64)  # mutating a value after handing it over is the caller's bug
    with pytest.raises(ValueNotSerialisable, match="64-bit range"):
        encode_command(command)


def test_encoding_something_that_is_not_a_command_is_a_caller_error() -> None:
    with pytest.raises(InvalidCommand, match="not a paxos-kv command"):
        encode_command("set k v")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\x93\x01",  # truncated array
        msgpack.packb([1, "k", "v", None]) + b"\x00",  # trailing data
        msgpack.packb({"tag": 1}),
        msgpack.packb([]),
        msgpack.packb([True, "k", "v", None]),  # bool is not an int tag
        msgpack.packb([-1, "k"]),  # a negative tag must not index from the end
        msgpack.packb([12]),
        msgpack.packb([1, "k", "v"]),
        msgpack.packb([1, "", "v", None]),
        msgpack.packb([1, 5, "v", None]),
        msgpack.packb([1, ["a", ["b"]], "v", None]),
        msgpack.packb([1, "k", "v", 0]),
        msgpack.packb([2, None]),
        msgpack.packb([3, [], [[3, [], [], []]], []]),  # a txn may not nest a txn
        msgpack.packb([3, [], [[1, "k", 1, None], [2, "k"]], []]),
        msgpack.packb([3, [["k", 4, 0, 1]], [], []]),
        msgpack.packb([3, [["k", 1, 0, "1"]], [], []]),
        msgpack.packb([3, [["k", 0, 9, 1]], [], []]),
        msgpack.packb([3, "compares", [], []]),
        msgpack.packb([4, 0, None]),
        msgpack.packb([4, 10, "id"]),
        msgpack.packb([5, 1.5]),
        msgpack.packb([8, ""]),
        msgpack.packb([8, b"node"]),
        msgpack.packb([1, "k", msgpack.ExtType(1, b"\x05"), None]),  # tuple ext without array
        msgpack.packb([1, "k", msgpack.ExtType(1, b"\xc1"), None]),
        b"\x94\x01\xa1k\x81\x91\x01\x01\xc0",  # a map keyed by an array
        b"\xa2\xff\xfe",  # invalid UTF-8
    ],
)
def test_bad_bytes_raise_malformed_command_and_nothing_else(raw: bytes) -> None:
    with pytest.raises(MalformedCommand):
        decode_command(raw)


def test_deeply_nested_tuple_exts_are_malformed_not_a_recursion_crash() -> None:
    payload = msgpack.packb([])
    for _ in range(3000):
        payload = msgpack.packb([msgpack.ExtType(1, payload)])
    with pytest.raises(MalformedCommand):
        decode_command(msgpack.packb([1, "k", msgpack.ExtType(1, payload), None]))


def test_malformed_command_is_a_value_error() -> None:
    assert issubclass(MalformedCommand, ValueError)


@pytest.mark.parametrize(
    ("key", "value", "lease_id"),
    [("k", "v", None), (("session", 42, b"x"), {"a": [1, 2.5, None]}, 7), (b"raw", b"\0", None)],
)
def test_encode_set_is_encode_command_of_a_set(key: Any, value: Any, lease_id: Any) -> None:
    assert encode_set(key, value, lease_id) == encode_command(Set(key, value, lease_id))


@pytest.mark.parametrize(
    ("key", "value", "lease_id", "error"),
    [
        ("", "v", None, InvalidKey),
        ("k", object(), None, ValueNotSerialisable),
        ("k", 2**70, None, ValueNotSerialisable),
        ("k", "v", -1, InvalidCommand),
    ],
)
def test_encode_set_refuses_what_set_refuses(
    key: Any, value: Any, lease_id: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        Set(key, value, lease_id)
    with pytest.raises(error):
        encode_set(key, value, lease_id)


@pytest.mark.parametrize("lease_id", [1.5, "7", True, 0])
def test_encode_set_refuses_a_bad_lease_with_the_typed_error_in_either_build(
    lease_id: object,
) -> None:
    """What ``Node.set(key, value, lease=...)`` reaches: compiled, an ``int`` parameter would
    raise a bare TypeError for 1.5 and take True as lease 1 (tests/builds.py)."""
    with pytest.raises(InvalidCommand):
        encode_set("k", 1, lease_id)


@pytest.mark.parametrize("key", [5, None, ["t"], ""])
def test_encode_set_refuses_a_bad_key_with_the_typed_error_in_either_build(key: object) -> None:
    with pytest.raises(InvalidKey):
        encode_set(key, 1)


def test_encoding_a_non_command_is_invalid_command_in_either_build() -> None:
    with pytest.raises(InvalidCommand):
        encode_command("set k v")  # type: ignore[arg-type]
