"""Keys and prefixes: what is a key, what lies under a prefix, and the one canonical order."""

from __future__ import annotations

import collections
import enum

import pytest

from paxoskv.errors import InvalidKey, ValueNotSerialisable
from paxoskv.state import check_key, check_prefix, sort_keys
from paxoskv.state.keys import key_from_wire, key_to_wire, matches
from paxoskv.state.wire import pack


@pytest.mark.parametrize(
    "key",
    ["a", "ключ", b"\x00", ("session", 5), ("s", b"b", -(2**63), 2**64 - 1), ("x",)],
)
def test_valid_keys_are_returned_unchanged(key: object) -> None:
    assert check_key(key) is key


@pytest.mark.parametrize(
    "key",
    [
        "",
        b"",
        (),
        1,
        None,
        1.5,
        ["a"],
        bytearray(b"a"),
        ("a", True),  # True == 1 would make ("a", True) and ("a", 1) one entry
        ("a", 1.0),
        ("a", ("nested",)),
        ("a", 2**64),
    ],
)
def test_invalid_keys_raise_invalid_key_saying_what_a_key_is(key: object) -> None:
    with pytest.raises(InvalidKey, match="a key is a non-empty str, bytes, or tuple"):
        check_key(key)


def test_a_str_key_or_prefix_that_cannot_be_utf8_says_so() -> None:
    """A lone surrogate cannot be UTF-8 (a command line's bytes that are not UTF-8 arrive so):
    told what a key is, the user was told that a non-empty str is not one."""
    with pytest.raises(InvalidKey, match="not valid Unicode text"):
        check_key("\ud800")
    with pytest.raises(InvalidKey, match="not valid Unicode text"):
        check_prefix("a\ud800")
    with pytest.raises(InvalidKey, match="not valid Unicode text"):
        check_key(("session", "a\udcff"))


def test_a_str_subclass_is_not_a_key_because_it_would_come_back_as_str() -> None:
    class Name(str):
        pass

    with pytest.raises(InvalidKey):
        check_key(Name("a"))


@pytest.mark.parametrize("prefix", ["", b"", (), "a", b"a", ("session",)])
def test_empty_and_non_empty_prefixes_are_valid(prefix: object) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", [None, 1, ["a"], ("a", None)])
def test_invalid_prefixes_raise(prefix: object) -> None:
    with pytest.raises(InvalidKey):
        check_prefix(prefix)


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("abc", "ab", True),
        ("abc", "", True),
        ("abc", "b", False),
        ("abc", b"ab", False),  # kinds never mix
        (b"abc", b"ab", True),
        (("session", 1), ("session",), True),
        (("session", 1), ("session", 1), True),
        (("session", 1), ("session", 1, 2), False),
        (("session", 1), ("sess",), False),  # a tuple prefix compares whole elements
        (("session", 1), (), True),
        (("session", 1), "session", False),
        ("session", ("session",), False),
    ],
)
def test_prefix_matching(key: object, prefix: object, expected: bool) -> None:
    assert matches(check_key(key), check_prefix(prefix)) is expected


def test_canonical_order_puts_str_then_bytes_then_tuples() -> None:
    keys = [("a", 2), b"b", "b", ("a", "x"), ("a",), "a", b"a", ("a", b"x"), ("a", 1), (0,)]
    assert sort_keys(keys) == [
        "a",
        "b",
        b"a",
        b"b",
        (0,),
        ("a",),
        ("a", 1),
        ("a", 2),
        ("a", "x"),
        ("a", b"x"),
    ]


def test_canonical_order_does_not_depend_on_input_order() -> None:
    keys = [("a", 2), b"b", "b", ("a", "x"), ("a",), "a", ("a", b"x"), ("a", 1)]
    assert sort_keys(keys) == sort_keys(reversed(keys)) == sort_keys(sorted(keys, key=repr))


def test_a_tuple_key_travels_as_an_array_and_comes_back_a_tuple() -> None:
    key = ("session", b"id", 7)
    assert key_to_wire(key) == ["session", b"id", 7]
    assert key_from_wire(key_to_wire(key)) == key
    assert key_from_wire("plain") == "plain"
    with pytest.raises(InvalidKey):
        key_from_wire(["a", ["nested"]])


def test_a_subclass_of_a_key_type_is_refused_saying_so() -> None:
    """A StrEnum member is a str, yet it would come back as a plain one: refused, with the
    reason and the fix (it said only "a key is a non-empty str ..."; API audit)."""

    class Colour(enum.StrEnum):
        RED = "red"

    Point = collections.namedtuple("Point", "x y")
    for key in (Colour.RED, Point("a", 1)):
        with pytest.raises(InvalidKey, match=r"a subclass .* convert it first"):
            check_key(key)
    assert check_key(str(Colour.RED)) == "red"


def test_a_subclass_of_a_value_type_is_refused_saying_so() -> None:
    class Level(enum.IntEnum):
        HIGH = 2

    for value in (collections.OrderedDict(a=1), collections.defaultdict(int), Level.HIGH):
        with pytest.raises(ValueNotSerialisable, match=r"a subclass .* convert it first"):
            pack({"v": [value]})
    with pytest.raises(ValueNotSerialisable, match="use None, bool, int"):
        pack(object())
