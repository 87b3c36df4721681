"""The watch history's byte bound: as exact about its floor as the count bound, on any path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.errors import Compacted, ConfigurationError
from paxoskv.state import Configuration, Delete, KVStateMachine, Set, encode_command
from paxoskv.state.history import (
    DEFAULT_LIMIT_BYTES,
    DELETE_EVENT,
    EXPIRE_EVENT,
    SET_EVENT,
    History,
    key_size,
    keys_size,
    value_size,
    values_size,
)
from paxoskv.state.wire import pack, unpack
from tests.builds import COMPILED, refused

CONFIG = Configuration(frozenset({"a"}))


def revisions(history: History, after: int) -> list[int]:
    return [event.revision for event in history.since(after)]


def row(key: str, value: Any) -> tuple[Any, ...]:
    return (key, value, 1, 1, 1, None)


def test_a_value_counts_its_characters_or_bytes_else_its_msgpack_length() -> None:
    assert value_size("abc") == 3
    assert value_size("\u00e9\u00e9") == 2  # characters, not UTF-8 bytes
    assert value_size(b"\x00" * 7) == 7
    assert value_size(None) == 0
    for value in (0, 2**40, -1.5, True, [1, "two", b"3"], {"a": [1, 2]}, ("t", 1)):
        assert value_size(value) == len(pack(value))
    mixed = ["ab", b"cde", None, 12345, ["x"]]
    assert values_size(mixed) == sum(map(value_size, mixed))
    assert values_size(["ab", "cd"]) == 4 and values_size([b"ab", b"c"]) == 3


def test_a_key_counts_its_characters_or_bytes_a_tuple_its_parts() -> None:
    """Keys count too: 5,000 events of 40 KB keys held 677-872 MB a node when only values
    did (CLI audit, twenty-second session)."""
    assert key_size("k\u00e9y") == 3 and key_size(b"\x00" * 5) == 5
    assert key_size(("user", b"ab", 7)) == 4 + 2 + 8
    keys = ["ab", b"cde", ("x", 1)]
    assert keys_size(keys) == sum(map(key_size, keys)) == 2 + 3 + 9
    history = History(1000, limit_bytes=100_000)
    history.record(1, SET_EVENT, "k" * 40_000, "v", None)
    history.record_sets(2, ("j" * 40_000, "i" * 40_000), ("v", "v"), [None, None])
    assert history.floor_revision == 1 and len(history) == 2  # the first went, for its key


def test_runs_are_dropped_whole_or_cut_by_bytes_and_the_floor_follows() -> None:
    # An event counts its value and its key: here 4, 4, 4, then 3, 3, then 9.
    history = History(1000, limit_bytes=14)
    history.record_sets(1, ("a", "b", "c"), ("xxx", "yyy", "zzz"), [None] * 3)  # 12 bytes
    assert (history.floor_revision, len(history), history.size_bytes) == (0, 3, 12)
    history.record_sets(4, ("d", "e"), ("dd", "ee"), [row("a", "xxx"), None])  # 18: cut 1
    assert (history.floor_revision, len(history), history.size_bytes) == (1, 4, 14)
    assert revisions(history, 1) == [2, 3, 4, 5]
    history.record_sets(6, ("f",), ("f" * 8,), [None])  # 23: the first run goes, then "d"
    assert (history.floor_revision, len(history), history.size_bytes) == (4, 2, 12)
    assert revisions(history, 4) == [5, 6]
    assert history.since(4)[0].prev_value is None and history.since(4)[1].value == "f" * 8


def test_single_events_are_dropped_by_bytes_and_deletes_count_what_they_removed() -> None:
    history = History(1000, limit_bytes=8)
    history.record(1, SET_EVENT, "a", "aaa", None)
    history.record(2, SET_EVENT, "b", "bbb", None)
    assert (history.floor_revision, history.size_bytes) == (0, 8)
    history.record(3, DELETE_EVENT, "a", None, "aaa")  # 4 bytes: the value it removed, the key
    assert (history.floor_revision, history.size_bytes, revisions(history, 1)) == (1, 8, [2, 3])
    history.record(4, EXPIRE_EVENT, "b", None, "bbbbbb")
    assert (history.floor_revision, history.size_bytes, revisions(history, 3)) == (3, 7, [4])


def test_an_event_larger_than_the_bound_is_dropped_at_once_and_raises_compacted() -> None:
    history = History(1000, limit_bytes=4)
    history.record(1, SET_EVENT, "a", "a", None)
    history.record(2, SET_EVENT, "big", "x" * 5, None)
    assert (history.floor_revision, len(history), history.since(2)) == (2, 0, [])
    with pytest.raises(Compacted) as caught:
        history.since(1)
    assert (caught.value.requested, caught.value.oldest) == (2, 3)


def test_appended_events_are_sized_at_the_next_trim_whatever_their_values() -> None:
    for values in (["aa", "bb", "cc"], [b"aa", b"bb", b"cc"], ["aa", b"bb", 12345]):
        history = History(1000, limit_bytes=9)
        for revision, value in enumerate(values, start=1):
            history.append((revision, SET_EVENT, f"k{revision}", value, None))
        history.append((4, DELETE_EVENT, "k1", None, values[0]))
        history.trim()
        expected = value_size(values[2]) + 2 + value_size(values[0]) + 2  # values, keys
        assert history.size_bytes == expected and history.floor_revision == 2, values
        assert revisions(history, 2) == [3, 4]


def test_the_floor_after_byte_trimming_admits_a_resume_there_and_refuses_one_below() -> None:
    history = History(1000, limit_bytes=20)
    for first in range(1, 40, 4):
        keys = tuple(f"k{first + i}" for i in range(4))
        history.record_sets(first, keys, ("abc", b"de", 12, None), [None] * 4)
    floor = history.floor_revision
    assert 0 < floor < 40 and history.size_bytes <= 20
    assert revisions(history, floor) == list(range(floor + 1, 41))
    with pytest.raises(Compacted):
        history.since(floor - 1)


def test_both_bounds_hold_whichever_bites_first() -> None:
    by_count = History(3, limit_bytes=1000)
    by_bytes = History(1000, limit_bytes=6)
    for history in (by_count, by_bytes):
        history.record_sets(1, ("a", "b", "c", "d", "e"), ("a", "b", "c", "d", "e"), [None] * 5)
        assert (history.floor_revision, len(history), history.size_bytes) == (2, 3, 6)


# --- the reference model ---------------------------------------------------------------------


def model_size(kind: int, key: Any, value: Any, prev_value: Any) -> int:
    return value_size(value if kind == SET_EVENT else prev_value) + key_size(key)


class Model:
    """The byte bound as the docs state it: drop the oldest event while either bound is
    passed; the floor is the revision of the last one dropped."""

    def __init__(self, limit_events: int, limit_bytes: int) -> None:
        self.limits = limit_events, limit_bytes
        self.events: list[tuple[int, int, str, Any, Any]] = []
        self.floor = 0

    def add(self, event: tuple[int, int, str, Any, Any]) -> None:
        self.events.append(event)
        while len(self.events) > self.limits[0] or self.size() > self.limits[1]:
            self.floor = self.events.pop(0)[0]

    def size(self) -> int:
        return sum(model_size(kind, key, value, prev) for _, kind, key, value, prev in self.events)


values = st.one_of(
    st.none(),
    st.text(max_size=6),
    st.binary(max_size=6),
    st.integers(-(2**40), 2**40),
    st.lists(st.text(max_size=2), max_size=2),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from([0, 1, 2]), st.integers(1, 3), values),
        st.tuples(st.just("append"), st.just(0), st.integers(1, 4), values),
        st.tuples(st.just("run"), st.just(0), st.integers(1, 9), values),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(steps, st.integers(1, 12), st.integers(1, 40))
def test_any_mix_of_runs_and_events_keeps_what_the_reference_model_keeps(
    steps: list[tuple[str, int, int, Any]], limit_events: int, limit_bytes: int
) -> None:
    history, model = History(limit_events, limit_bytes), Model(limit_events, limit_bytes)
    revision = 0
    for step, kind, count, value in steps:
        # Values vary by event, so that a cut in a run or a batch lands on unequal sizes.
        made = [value if index % 2 else f"v{index}" * index for index in range(count)]
        if step == "event":  # ``count`` events of one revision, as a lease revoke makes
            revision += 1
            for index in range(count):
                event = (revision, kind, f"k{index}", None if kind else made[index], made[index])
                history.record(*event)
                model.add(event)
        elif step == "append":  # the general loop's Sets, sized at the trim after them
            for index in range(count):
                revision += 1
                event = (revision, SET_EVENT, f"k{index}", made[index], None)
                history.append(event)
                model.add(event)
            history.trim()
        else:
            keys = tuple(f"k{index % 4}" for index in range(count))
            prev_rows = [None if index % 3 else row(keys[index], "p") for index in range(count)]
            history.record_sets(revision + 1, keys, tuple(made), prev_rows)
            for index in range(count):
                prev_value = None if prev_rows[index] is None else "p"
                model.add((revision + 1 + index, SET_EVENT, keys[index], made[index], prev_value))
            revision += count
        assert history.floor_revision == model.floor
        assert (len(history), history.size_bytes) == (len(model.events), model.size())
        flat = [
            field
            for revision_, kind_, key, value_, prev in model.events
            for field in (revision_, kind_, key, value_, prev)
        ]
        assert history.to_wire() == [model.floor, flat]
        for after in range(model.floor, revision + 1):
            expected = [event[0] for event in model.events if event[0] > after]
            assert revisions(history, after) == expected
        if model.floor:
            with pytest.raises(Compacted):
                history.since(model.floor - 1)
    restored = History.from_wire(history.to_wire(), limit_events, limit_bytes)
    assert restored.to_wire() == history.to_wire()
    assert restored.size_bytes == history.size_bytes


# --- through the state machine ---------------------------------------------------------------


def machine(limit_bytes: int) -> KVStateMachine:
    return KVStateMachine(CONFIG, history_limit_bytes=limit_bytes)


def test_a_slot_applied_as_a_run_and_one_command_at_a_time_trim_alike() -> None:
    """Plain-Set slots (one run each), mixed slots (the general loop) and single commands."""
    commands = [  # slots of str values and slots of bytes, of unequal sizes
        encode_command(Set(f"k{i % 7}", b"y" * (i % 11) if i // 10 % 3 else "x" * (i % 13)))
        for i in range(120)
    ]
    commands[50] = encode_command(Delete("k1"))
    by_slot, by_command = machine(200), machine(200)
    for start in range(0, len(commands), 10):
        slot = commands[start : start + 10]
        items = [unpack(command) for command in slot]  # as a follower reads a slot
        by_slot.apply_items(["c"] * len(slot), range(start, start + len(slot)), items, 0)
        for seq, command in enumerate(slot, start=start):
            by_command.apply_encoded(command, 0, client_id="c", seq=seq)
        assert by_slot.history_floor_revision == by_command.history_floor_revision
    floor = by_slot.history_floor_revision
    assert floor > 0
    assert by_slot.events_since(floor) == by_command.events_since(floor)
    assert by_slot.snapshot() == by_command.snapshot()
    with pytest.raises(Compacted):
        by_slot.events_since(floor - 1)


def test_a_restore_takes_the_restoring_nodes_byte_bound_and_moves_the_floor_up() -> None:
    big, small = machine(1000), machine(100)
    for seq in range(60):
        command = encode_command(Set(f"k{seq}", "v" * 10))
        big.apply_encoded(command, 0, client_id="c", seq=seq)
        small.apply_encoded(command, 0, client_id="c", seq=seq)
    assert big.history_floor_revision < small.history_floor_revision
    restored = KVStateMachine.restore(big.snapshot(), history_limit_bytes=100)
    assert restored.history_floor_revision == small.history_floor_revision
    assert restored.events_since(restored.history_floor_revision) == small.events_since(
        small.history_floor_revision
    )
    assert restored.digest() == big.digest()  # the history is in no digest
    default = KVStateMachine.restore(big.snapshot())
    assert default._history.limit_bytes == DEFAULT_LIMIT_BYTES
    assert default.history_floor_revision == big.history_floor_revision


@pytest.mark.parametrize("limit", [0, -1, 1.5, "64MiB", True])
def test_a_bad_byte_bound_is_a_configuration_error(limit: Any) -> None:
    if COMPILED and limit is True:
        # A compiled ``int`` parameter takes True as 1 (tests/builds.py); an application's
        # configuration refuses it before it gets here (tests/test_config.py).
        assert KVStateMachine(CONFIG, history_limit_bytes=limit)._history.limit_bytes == 1
        return
    with pytest.raises(refused(ConfigurationError)):
        KVStateMachine(CONFIG, history_limit_bytes=limit)
    with pytest.raises(refused(ConfigurationError)):
        KVStateMachine.restore(machine(10).snapshot(), history_limit_bytes=limit)
    if not COMPILED or type(limit) is int:
        with pytest.raises(ConfigurationError, match="history_limit_bytes must be a positive"):
            KVStateMachine(CONFIG, history_limit_bytes=limit)


def test_a_restore_takes_the_restoring_nodes_event_bound_too() -> None:
    """A node that lowers history_limit_events and restarts gets it: the snapshot's bound
    (which older releases read) used to win over the node's own setting."""
    many = KVStateMachine(CONFIG, history_limit_events=50)
    few = KVStateMachine(CONFIG, history_limit_events=10)
    for seq in range(40):
        command = encode_command(Set(f"k{seq}", seq))
        many.apply_encoded(command, 0, client_id="c", seq=seq)
        few.apply_encoded(command, 0, client_id="c", seq=seq)
    restored = KVStateMachine.restore(many.snapshot(), history_limit_events=10)
    assert restored.history_floor_revision == few.history_floor_revision
    assert restored.history_floor_revision > many.history_floor_revision
    assert restored.snapshot() == few.snapshot()
    kept = KVStateMachine.restore(few.snapshot())  # none given: the snapshot's, as before
    assert kept.history_floor_revision == few.history_floor_revision
    with pytest.raises(ConfigurationError, match="history_limit_events"):
        KVStateMachine.restore(few.snapshot(), history_limit_events=0)
