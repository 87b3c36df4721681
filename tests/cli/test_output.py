"""Output formats: what a person sees and what a program parses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.cli.output import (
    event_line,
    from_jsonable,
    json_text,
    jsonable,
    members_table,
    show_key,
    show_value,
    status_lines,
)
from paxoskv.runtime.membership import Member
from paxoskv.state import ChangeEvent

# What msgpack can carry (and so what a value in the store can be).
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary()
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text() | st.integers() | st.binary(), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150)
@given(values)
def test_every_storable_value_has_a_json_text(value: Any) -> None:
    text = json_text(value)
    assert "\n" not in text  # one event per line in `watch --json`
    json.loads(text)


@settings(max_examples=150)
@given(values.filter(lambda value: "nan" not in repr(value)))
def test_every_storable_value_reads_back_from_its_json_text(value: Any) -> None:
    """(Tuples are arrays in JSON, and come back as lists: the strategy makes none.)"""
    assert from_jsonable(json.loads(json_text(value))) == value


@settings(max_examples=100)
@given(st.text())
def test_a_string_value_is_shown_as_itself(text: str) -> None:
    assert show_value(text) == text


def test_bytes_and_non_finite_floats_are_not_lost() -> None:
    assert jsonable(b"\x00\xff") == {"$bytes": "AP8="}
    # Tagged: the bare "nan" of an earlier release was the str "nan" as well (README audit).
    assert jsonable([math.inf, -math.inf, 1.5]) == [{"$float": "inf"}, {"$float": "-inf"}, 1.5]
    assert jsonable(math.nan) == {"$float": "nan"}
    assert jsonable("nan") == "nan"
    assert jsonable({1: "a", b"k": "b"}) == {"$map": [[1, "a"], [{"$bytes": "aw=="}, "b"]]}


@pytest.mark.parametrize(
    "value",
    [
        {1: "a", "1": "b"},  # came out as {"1": "b"}: the "a" was lost
        {(1, 2): "x", ("s", b"b"): [b"\x00"]},  # came out as {"[1,2]": "x"}
        {"$bytes": "AAA="},  # a str map that printed exactly as the bytes b"\x00\x00"
        {"$map": []},
        [b"\x01\x02", {"k": math.inf}, {"nested": {2: None}}],
        {"plain": {"str": "keys"}, "$other": 1},
    ],
)
def test_json_output_reads_back_as_the_value_it_was(value: object) -> None:
    """What ``--json`` prints, ``--json-value`` reads back as the very value (CLI audit,
    twenty-second session: maps with non-str keys lost entries, and tags were ambiguous)."""
    assert from_jsonable(json.loads(json_text(value))) == value


def test_a_tag_that_is_not_as_written_is_refused() -> None:
    for text in ('{"$bytes": "not base64!"}', '{"$float": "1.5"}', '{"$map": [[1]]}'):
        with pytest.raises(ValueError, match="\\$"):
            from_jsonable(json.loads(text))


def test_keys_of_other_kinds_cannot_pass_for_str_keys() -> None:
    assert show_key("user/1") == "user/1"
    assert show_key(b"user/1") == "b'user/1'"
    assert show_key(("user", 1)) == "('user', 1)"
    assert show_key("nl\nkey") == "'nl\\nkey'"  # one line, not two keys (CLI audit)
    assert show_key("tab\there") == "'tab\\there'"
    assert show_key("ключ") == "ключ"


def test_event_lines_show_the_value_only_for_sets() -> None:
    assert event_line(ChangeEvent("set", "k", [1], None, 4)) == "4 set k [1]"
    assert event_line(ChangeEvent("delete", "k", None, [1], 5)) == "5 delete k"
    assert event_line(ChangeEvent("expire", ("s", 1), None, "x", 6)) == "6 expire ('s', 1)"


def test_members_table_aligns_long_ids() -> None:
    table = members_table([Member("a-long-node-id", "voter", "up", 12345, True)])
    assert table == [
        "ID              ROLE   STATE  APPLIED  LEADER",
        "a-long-node-id  voter  up     12345    *",
    ]


def test_status_lines_flatten_nested_maps() -> None:
    assert status_lines({"a": 1, "b": {"c": True, "d": None}, "e": []}) == [
        "a: 1",
        "b.c: true",
        "b.d: -",
        "e: -",
    ]
