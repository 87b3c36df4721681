"""The map itself: sets, deletes, revisions and counters, reads, and the encoded apply path."""

from __future__ import annotations

import msgpack
import pytest

from paxoskv.errors import ConfigurationError, InvalidCommand, InvalidKey
from paxoskv.state import (
    Applied,
    Configuration,
    Delete,
    Deleted,
    Failed,
    KeyValue,
    KVStateMachine,
    NoOp,
    Set,
    Written,
    decode_result,
    encode_command,
    encode_result,
)
from tests.builds import refused

CONFIG = Configuration(frozenset({"a", "b", "c"}))


def fresh() -> KVStateMachine:
    return KVStateMachine(CONFIG)


def test_a_new_machine_is_empty_at_revision_zero() -> None:
    m = fresh()
    assert m.revision == 0
    assert len(m) == 0
    assert m.get("k") is None
    assert m.configuration == CONFIG


def test_a_set_creates_a_key_with_create_and_mod_revision_and_version_one() -> None:
    m = fresh()
    assert m.apply(Set("k", "v1"), 10) == Written(1, None)
    assert m.get("k") == KeyValue("k", "v1", 1, 1, 1, None)


def test_a_second_set_bumps_version_and_mod_revision_and_answers_its_revision_alone() -> None:
    m = fresh()
    m.apply(Set("k", "v1"), 10)
    m.apply(NoOp(), 11)
    # The previous row stays out of a plain Set's answer (results' docstring): the answer is a
    # few bytes whatever the value's size. The change history still has the previous value.
    assert m.apply(Set("k", "v2"), 12) == Written(3, None)
    assert m.get("k") == KeyValue("k", "v2", 1, 3, 2, None)
    assert [e.prev_value for e in m.events_since(0)] == [None, "v1"]


def test_a_delete_returns_the_previous_and_a_recreated_key_starts_over() -> None:
    m = fresh()
    m.apply(Set("k", "v1"), 10)
    m.apply(Set("k", "v2"), 10)
    assert m.apply(Delete("k"), 10) == Deleted(3, KeyValue("k", "v2", 1, 2, 2, None))
    assert m.get("k") is None
    m.apply(Set("k", "v3"), 10)
    assert m.get("k") == KeyValue("k", "v3", 4, 4, 1, None)


def test_deleting_a_missing_key_is_not_an_error_but_still_takes_a_revision() -> None:
    m = fresh()
    assert m.apply(Delete("nothing"), 10) == Deleted(1, None)
    assert m.revision == 1


def test_every_command_takes_the_next_revision_including_no_ops_and_failures() -> None:
    m = fresh()
    assert m.apply(NoOp(), 1) == Applied(1)
    assert isinstance(m.apply(Set("k", 1, lease_id=99), 2), Failed)
    assert m.revision == 2
    m.apply_encoded(b"\xc1 not a command", 3)
    assert m.revision == 3


def test_str_bytes_and_tuple_keys_are_distinct_entries() -> None:
    m = fresh()
    m.apply(Set("a", 1), 1)
    m.apply(Set(b"a", 2), 1)
    m.apply(Set(("a",), 3), 1)
    assert [m.get(k).value for k in ("a", b"a", ("a",))] == [1, 2, 3]  # type: ignore[union-attr]
    assert len(m) == 3


def test_range_returns_keys_under_a_prefix_in_canonical_order() -> None:
    m = fresh()
    for key in ["b/2", "a/1", "b/1", "b", b"b/3", ("b", 1), ("b", "x"), ("b",), ("c", 1)]:
        m.apply(Set(key, str(key)), 1)
    assert [kv.key for kv in m.range("b/")] == ["b/1", "b/2"]
    assert [kv.key for kv in m.range("b")] == ["b", "b/1", "b/2"]
    assert [kv.key for kv in m.range(b"")] == [b"b/3"]
    assert [kv.key for kv in m.range(("b",))] == [("b",), ("b", 1), ("b", "x")]
    assert m.keys(()) == [("b",), ("b", 1), ("b", "x"), ("c", 1)]
    assert m.range("zzz") == []
    assert m.range("b/1")[0] == m.get("b/1")


def test_reads_check_their_arguments() -> None:
    m = fresh()
    with pytest.raises(InvalidKey):
        m.get(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        m.range(None)  # type: ignore[arg-type]


def test_apply_encoded_answers_the_bytes_of_the_result_apply_would_give() -> None:
    encoded, direct = fresh(), fresh()
    for log_time_ms, command in enumerate([Set("k", [1, (2,)]), Set("k", 2), Delete("k")]):
        answer = encoded.apply_encoded(encode_command(command), log_time_ms)
        result = direct.apply(command, log_time_ms)
        assert answer == encode_result(result)
        assert decode_result(answer) == result
    assert encoded.digest() == direct.digest()


def test_a_malformed_command_gets_the_same_failed_answer_on_every_replica() -> None:
    answers = {fresh().apply_encoded(b"\x93\x01\x02", 5) for _ in range(3)}
    assert len(answers) == 1
    result = decode_result(answers.pop())
    assert isinstance(result, Failed)
    assert (result.revision, result.error_code) == (1, "malformed_command")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", msgpack.packb([1, "k", "v"]), msgpack.packb([3, [], [[3, [], [], []]], []])],
)
def test_apply_encoded_never_raises_on_bad_command_bytes(data: bytes) -> None:
    m = fresh()
    result = decode_result(m.apply_encoded(data, 0))
    assert isinstance(result, Failed) and result.error_code == "malformed_command"
    assert len(m) == 0


def test_a_value_handed_in_is_stored_without_a_copy_and_read_out_as_one() -> None:
    """No copy on the write path; a read hands out a copy, since a caller that changed the
    map's own list changed this replica alone (twenty-fourth session)."""
    value = ["shared"]
    m = fresh()
    m.apply(Set("k", value), 0)
    assert m._data["k"][1] is value
    read = m.get("k").value  # type: ignore[union-attr]
    assert read == value and read is not value


def test_what_a_reader_changes_in_a_value_changes_nothing_in_the_machine() -> None:
    m = fresh()
    m.apply(Set("k", {"a": [1, {"b": [2]}], "t": (3, [4])}), 0)
    m.apply(Set("k", {"a": [5]}), 0)
    digest = m.digest()
    m.get("k").value["a"].append(6)  # type: ignore[union-attr]
    m.range("k")[0].value["a"].append(7)
    first, second = m.events_since(0)
    first.value["a"][1]["b"].append(8)
    first.value["t"][1].append(9)
    second.prev_value["a"].append(10)
    second.value["a"].append(11)
    assert m.digest() == digest
    assert m.get("k").value == {"a": [5]}  # type: ignore[union-attr]
    assert m.events_since(0)[0].value == {"a": [1, {"b": [2]}], "t": (3, [4])}


def test_values_that_cannot_change_are_handed_out_as_stored() -> None:
    """A private copy costs a container's walk; scalars and tuples of scalars are shared."""
    m = fresh()
    text, blob, numbers = "x" * 100, b"y" * 100, (1, "two", b"3", (4.0, None))
    for key, value in (("t", text), ("b", blob), ("n", numbers)):
        m.apply(Set(key, value), 0)
        assert m.get(key).value is value  # type: ignore[union-attr]


@pytest.mark.parametrize("log_time_ms", [1.5, "5", None, 2**63])
def test_a_log_time_that_is_not_an_int_in_range_is_a_caller_error(log_time_ms: object) -> None:
    with pytest.raises(refused(InvalidCommand)):
        fresh().apply(NoOp(), log_time_ms)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [{"history_limit_events": 0}, {"dedup_window_requests": -1}, {"dedup_client_idle_ms": 1.5}],
)
def test_machine_settings_must_be_positive_ints(settings: dict[str, object]) -> None:
    with pytest.raises(refused(ConfigurationError)):
        KVStateMachine(CONFIG, **settings)  # type: ignore[arg-type]


def test_apply_refuses_what_is_not_a_command() -> None:
    with pytest.raises(refused(InvalidCommand)):
        fresh().apply("set k v", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", [5, ["a"]])
def test_the_history_refuses_a_bad_prefix_with_invalid_key_in_either_build(prefix: object) -> None:
    """What ``Node.watch(prefix)`` reaches."""
    with pytest.raises(InvalidKey):
        fresh().events_since(0, prefix)
