"""``KVStateMachine.changes``: the count a reader on another thread checks (a seqlock's).

A blocking handle's ``get_local`` reads the map on the caller's thread and keeps a read only
if the count was even, and the same, before and after it (``paxoskv/node.py``). So every apply
call must leave it even and moved on, whichever way it ends: an apply that raised and left it
odd would make every such reader wait for good; one that did not move it would let a reader
keep a read taken across it.
"""

from __future__ import annotations

import gc
from typing import Any

import msgpack
import pytest

from paxoskv.errors import InvalidCommand
from paxoskv.state import Configuration, KVStateMachine, NoOp, Set, Txn, encode_command

CONFIG = Configuration(frozenset({"a", "b", "c"}))


def _unpacked(command: Any) -> list[Any]:
    return msgpack.unpackb(encode_command(command), strict_map_key=False)  # type: ignore[no-any-return]


def test_every_way_of_applying_leaves_the_count_even_and_moved_on() -> None:
    m = KVStateMachine(CONFIG)
    assert m.changes == 0
    calls = [
        lambda: m.apply(Set("k", (1, "tuple")), 10),
        lambda: m.apply_encoded(encode_command(Set("k", 2)), 11, client_id="c", seq=0),
        lambda: m.apply_encoded(encode_command(Set("k", 2)), 11, client_id="c", seq=0),  # dup
        lambda: m.apply_encoded(b"\xc1 not a command", 12),
        lambda: m.apply_batch(["c"] * 5, list(range(1, 6)), [encode_command(NoOp())] * 5, 13),
        lambda: m.apply_items(
            ["d"] * 6,
            list(range(6)),
            [_unpacked(Set(f"p{i}", i)) for i in range(6)],
            14,
            checked=True,
        ),  # the plain-Set path
        lambda: m.apply_items(
            ["e"], [0], [_unpacked(Txn([], [Set("x", 1), Set("y", 2)]))], 15, checked=True
        ),
        lambda: m.apply_items([], [], [], 16),
    ]
    for count, call in enumerate(calls, 1):
        call()
        assert m.changes == 2 * count


def test_the_count_is_odd_while_an_apply_runs_and_names_the_revision_it_started_from() -> None:
    """Seen from inside an apply: the collector's callbacks run there (a collection of the
    containers a txn of tuple values allocates), as a thread switch could."""
    m = KVStateMachine(CONFIG)
    m.apply(Set("before", 1), 10)
    seen: list[tuple[int, int, int]] = []  # (changes, changing_from, keys in the map)

    def look(phase: str, info: dict[str, int]) -> None:
        seen.append((m.changes, m.changing_from, len(m)))

    thresholds = gc.get_threshold()
    gc.callbacks.append(look)
    gc.set_threshold(1)
    try:
        m.apply(Txn([], [Set(f"t/{i}", (i, "tuple")) for i in range(20)]), 11)
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(look)
    during = [(changes, start) for changes, start, _ in seen if changes % 2]
    assert during, "no collection ran inside the apply"
    assert set(during) == {(3, 1)}  # the second apply, running, from the first Set's revision
    # Before the apply began (its checks allocate too) the map was as it was: every change to
    # it was made while the count was odd.
    assert all(changes % 2 for changes, _, keys in seen if keys > 1)
    assert m.changes == 4 and len(m) == 21


def test_an_apply_that_raises_still_leaves_the_count_even() -> None:
    m = KVStateMachine(CONFIG)
    with pytest.raises(InvalidCommand):
        m.apply_batch(["c", "c"], [1], [encode_command(NoOp())], 5)  # columns of two lengths
    with pytest.raises(InvalidCommand):
        m.apply_items(["c"], [1], [3.5], 5)  # type: ignore[list-item]  # neither bytes nor list
    with pytest.raises(InvalidCommand):
        m.apply_encoded(encode_command(NoOp()), 5, client_id="", seq=1)  # refused before it
    assert m.changes % 2 == 0


def test_a_restored_machine_starts_even() -> None:
    m = KVStateMachine(CONFIG)
    m.apply(Set("k", 1), 10)
    assert KVStateMachine.restore(m.snapshot()).changes == 0
