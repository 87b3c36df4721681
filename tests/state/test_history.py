"""The watch history: bounded, resumable from a revision, and honest when it cannot be."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.errors import Compacted
from paxoskv.state import (
    ChangeEvent,
    Configuration,
    Delete,
    KVStateMachine,
    LeaseGrant,
    LeaseRevoke,
    NoOp,
    Set,
)
from paxoskv.state.history import History


def fresh(limit: int = 10_000) -> KVStateMachine:
    return KVStateMachine(Configuration(frozenset({"a"})), history_limit_events=limit)


def test_sets_and_deletes_are_recorded_with_value_previous_value_and_revision() -> None:
    m = fresh()
    m.apply(Set("k", 1), 0)
    m.apply(Set("k", 2), 0)
    m.apply(Delete("k"), 0)
    m.apply(Delete("k"), 0)  # nothing to delete: no event
    assert m.events_since(0) == [
        ChangeEvent("set", "k", 1, None, 1),
        ChangeEvent("set", "k", 2, 1, 2),
        ChangeEvent("delete", "k", None, 2, 3),
    ]


def test_events_since_gives_only_later_revisions() -> None:
    m = fresh()
    for i in range(5):
        m.apply(Set(f"k{i}", i), 0)
    assert [e.revision for e in m.events_since(3)] == [4, 5]
    assert m.events_since(5) == []
    assert m.events_since(500) == []


def test_events_since_can_filter_by_prefix() -> None:
    m = fresh()
    m.apply(Set(("session", 1), "a"), 0)
    m.apply(Set("config", "b"), 0)
    m.apply(Set(("session", 2), "c"), 0)
    assert [e.key for e in m.events_since(0, ("session",))] == [("session", 1), ("session", 2)]
    assert [e.key for e in m.events_since(0, "con")] == ["config"]


def test_a_resume_from_before_the_kept_history_raises_compacted() -> None:
    m = fresh(limit=3)
    for i in range(5):
        m.apply(Set("k", i), 0)
    assert [e.revision for e in m.events_since(2)] == [3, 4, 5]
    with pytest.raises(Compacted):
        m.events_since(1)
    assert m.history_floor_revision == 2


def test_compacted_speaks_of_the_revision_a_watch_starts_from_and_its_advice_works() -> None:
    """A watch "from revision R" asks for the events after R - 1: the error names R and the
    first revision that works, not R - 1 and the floor (whose events are gone)."""
    m = fresh(limit=3)
    for i in range(5):
        m.apply(Set("k", i), 0)
    with pytest.raises(Compacted) as caught:
        m.events_since(2 - 1)  # from revision 2: its event was dropped
    assert (caught.value.requested, caught.value.oldest) == (2, 3)
    assert "revision 2 is compacted" in str(caught.value)
    assert "Watch from revision 3 or later" in str(caught.value)
    oldest = caught.value.oldest
    assert [e.revision for e in m.events_since(oldest - 1)] == [3, 4, 5]


def test_no_op_revisions_do_not_use_history_room() -> None:
    m = fresh(limit=2)
    m.apply(Set("k", 1), 0)
    for _ in range(10):
        m.apply(NoOp(), 0)
    assert [e.revision for e in m.events_since(0)] == [1]


def test_a_revision_that_lost_some_of_its_events_cannot_be_resumed_before() -> None:
    m = fresh(limit=3)
    lease = m.apply(LeaseGrant(1000), 0).lease_id  # type: ignore[union-attr]
    for key in ("a", "b", "c"):
        m.apply(Set(key, key, lease_id=lease), 0)
    m.apply(LeaseRevoke(lease), 0)  # three deletes at revision 5, filling the history
    m.apply(Set("d", "d"), 0)  # pushes out one delete of revision 5
    with pytest.raises(Compacted):
        m.events_since(4)  # would miss the first delete of revision 5
    assert [(e.kind, e.key) for e in m.events_since(5)] == [("set", "d")]


def test_a_lease_revoke_bigger_than_the_history_still_leaves_a_consistent_floor() -> None:
    m = fresh(limit=2)
    lease = m.apply(LeaseGrant(1000), 0).lease_id  # type: ignore[union-attr]
    for key in ("a", "b", "c", "d"):
        m.apply(Set(key, key, lease_id=lease), 0)
    m.apply(LeaseRevoke(lease), 0)
    assert m.events_since(6) == []
    with pytest.raises(Compacted):
        m.events_since(5)


# A history fed runs of Sets (as a slot applied as columns records them) is the same history as
# one fed those Sets one event at a time: floor, length, every resume point and the wire form.
history_steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from([0, 1, 2]), st.integers(1, 3)),
        st.tuples(st.just("run"), st.just(0), st.integers(0, 9)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(history_steps, st.integers(1, 12))
def test_a_run_of_sets_is_the_same_history_as_its_events_one_by_one(
    steps: list[tuple[str, int, int]], limit: int
) -> None:
    runs, events = History(limit), History(limit)
    revision = 0
    for step, kind, size in steps:
        if step == "event":  # ``size`` events of one revision, as a lease revoke makes
            revision += 1
            for index in range(size):
                value = None if kind else index
                for history in (runs, events):
                    history.record(revision, kind, f"k{index}", value, "old")
        else:
            keys = tuple(f"k{index % 4}" for index in range(size))
            values = tuple(range(size))
            prev_rows = [
                None if index % 3 else (keys[index], "p", 1, 1, 1, None) for index in range(size)
            ]
            runs.record_sets(revision + 1, keys, values, prev_rows)
            for index in range(size):
                prev = prev_rows[index]
                events.record(
                    revision + 1 + index, 0, keys[index], index, None if prev is None else prev[1]
                )
            revision += size
        assert runs.floor_revision == events.floor_revision
        assert len(runs) == len(events)
        assert runs.to_wire() == events.to_wire()
        for after in range(events.floor_revision, revision + 1):
            assert runs.since(after) == events.since(after)
            assert runs.since(after, "k1") == events.since(after, "k1")


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["a", "bb", "cccc", b"dd", None, 7])),
        max_size=40,
    ),
    limit_events=st.integers(1, 12),
    limit_bytes=st.integers(1, 30),
)
def test_a_history_restored_under_tighter_bounds_keeps_what_recording_under_them_keeps(
    events: list[tuple[int, object]], limit_events: int, limit_bytes: int
) -> None:
    """A restore puts every record in at once and trims once; recording trims per event.
    Both must keep the same events and floor (the newest run within the bounds)."""
    wide, tight = History(100, 1 << 20), History(limit_events, limit_bytes)
    for revision, (kind, value) in enumerate(events, start=1):
        for history in (wide, tight):
            set_value, prev = (value, "old") if kind == 0 else (None, value)
            history.record(revision, kind, f"k{revision % 5}", set_value, prev)
    restored = History.from_wire(wide.to_wire(), limit_events, limit_bytes)
    assert restored.to_wire() == tight.to_wire()
    assert (len(restored), restored.size_bytes) == (len(tight), tight.size_bytes)
    assert restored.since(tight.floor_revision) == tight.since(tight.floor_revision)
