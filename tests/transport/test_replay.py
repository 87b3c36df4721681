"""Replay windows against a model that remembers everything."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.transport.replay import ReplayGuard, ReplayWindow


def test_new_duplicate_and_old_frames() -> None:
    window = ReplayWindow(incarnation=1, seq=100, window_frames=8)
    assert not window.accept(1, 100)  # the first one is recorded
    assert window.accept(1, 99)  # late but inside the window
    assert not window.accept(1, 99)
    assert window.accept(1, 105)
    assert not window.accept(1, 97)  # 105 - 97 = 8: fell out of the window
    assert window.accept(1, 98)


def test_a_jump_larger_than_the_window_forgets_the_past() -> None:
    window = ReplayWindow(1, 0, window_frames=4)
    assert window.accept(1, 1000)
    assert not window.accept(1, 999 - 3)
    assert window.accept(1, 999)


def test_a_new_incarnation_restarts_numbering_and_the_old_one_is_refused() -> None:
    window = ReplayWindow(incarnation=5, seq=500, window_frames=64)
    assert window.accept(6, 0)
    assert window.accept(6, 1)
    assert not window.accept(5, 501)


def test_guard_keeps_one_window_per_sender_and_stays_bounded() -> None:
    guard = ReplayGuard(window_frames=16, max_senders=2)
    assert guard.accept("a", 1, 0)
    assert guard.accept("b", 1, 0)
    assert not guard.accept("a", 1, 0)
    assert guard.accept("c", 1, 0)  # evicts "a", the longest known
    assert len(guard) == 2
    assert guard.accept("a", 1, 0)  # "a" starts over: the documented backstop


@settings(max_examples=200)
@given(
    window_frames=st.integers(min_value=1, max_value=70),
    seqs=st.lists(st.integers(min_value=0, max_value=300), max_size=120),
)
def test_window_accepts_exactly_what_an_unbounded_memory_would_within_its_reach(
    window_frames: int, seqs: list[int]
) -> None:
    """Accepted: never seen and not older than highest - window_frames + 1. Nothing else."""
    window: ReplayWindow | None = None
    seen: set[int] = set()
    highest = -1
    for seq in seqs:
        if window is None:
            window, accepted = ReplayWindow(1, seq, window_frames), True
        else:
            accepted = window.accept(1, seq)
        expected = seq not in seen and seq > highest - window_frames
        assert accepted == expected, (seq, sorted(seen), highest)
        if accepted:
            seen.add(seq)
            highest = max(highest, seq)


@settings(max_examples=200)
@given(
    window_frames=st.integers(min_value=1, max_value=16),
    runs=st.lists(
        st.tuples(st.integers(min_value=-40, max_value=40), st.integers(0, 40)), max_size=12
    ),
)
def test_the_guards_in_order_shortcut_accepts_exactly_what_an_unbounded_memory_would(
    window_frames: int, runs: list[tuple[int, int]]
) -> None:
    """Long in-order runs (where the guard skips the bitmap), broken by jumps both ways."""
    guard = ReplayGuard(window_frames)
    seen: set[int] = set()
    highest = -1
    seq = 100
    for jump, length in runs:
        seq = max(0, seq + jump)
        for _ in range(length):
            expected = seq not in seen and seq > highest - window_frames
            assert guard.accept("a", 1, seq) == expected, (seq, highest)
            if expected:
                seen.add(seq)
                highest = max(highest, seq)
            seq += 1
