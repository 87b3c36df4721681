"""apply_batch: one call per log slot, the same replica as one apply_encoded per command.

The batch entry point inlines the hot path and packs a result only when someone waits for it
or a retry asks; these tests pin that it changes nothing a replica, a client or a snapshot can
observe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxoskv.errors import InvalidCommand
from paxoskv.state import (
    Configuration,
    Delete,
    KVStateMachine,
    LeaseGrant,
    NoOp,
    Set,
    encode_command,
)
from paxoskv.state.dedup import Answered
from paxoskv.state.wire import TOP_EXT_HOOK
from tests.state.test_properties import PROPERTY, commands, fresh, small_keys, visible

# A slot: (log time step, [(command or raw bytes, request id or None), ...]).
slot_entries = st.tuples(
    st.one_of(commands(small_keys), st.binary(max_size=6)),
    st.none() | st.tuples(st.sampled_from(["x", "y"]), st.integers(0, 30)),
)
slots = st.lists(
    st.tuples(st.integers(min_value=-50, max_value=400), st.lists(slot_entries, max_size=8)),
    max_size=12,
)


def _bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else encode_command(item)


def _item(command: bytes) -> bytes | list[Any]:
    """What a batch carries for ``command``: the list it unpacks to if it is one (embedded)."""
    try:
        item = msgpack.unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
    except Exception:
        return command
    return item if type(item) is list else command


def asking(ids: Iterable[tuple[str, int]]) -> dict[str, set[int]]:
    """The ``answer`` argument for these request ids: their seqs, per client."""
    waiting: dict[str, set[int]] = {}
    for client_id, seq in ids:
        waiting.setdefault(client_id, set()).add(seq)
    return waiting


def rows(answered: Answered) -> list[tuple[str, int, bytes]]:
    """The answers of a slot, ``(client_id, seq, result)`` each."""
    return list(zip(*answered, strict=True))


def _columns(entries: list[Any]) -> tuple[list[str], list[int], list[bytes]]:
    client_ids = [request[0] if request else "" for _, request in entries]
    seqs = [request[1] if request else 0 for _, request in entries]
    return client_ids, seqs, [_bytes(item) for item, _ in entries]


@PROPERTY
@given(slots, st.data())
def test_a_batch_is_the_same_as_applying_its_commands_one_by_one(
    log: list[Any], data: st.DataObject
) -> None:
    batched, one_by_one, unpacked = fresh(), fresh(), fresh()
    now_ms = 0
    for step_ms, entries in log:
        now_ms = max(0, now_ms + step_ms)
        ids = [request for _, request in entries if request is not None]
        wanted = set(data.draw(st.lists(st.sampled_from(ids), max_size=4))) if ids else set()
        answers = rows(batched.apply_batch(*_columns(entries), now_ms, answer=asking(wanted)))
        client_ids, seqs, commands_ = _columns(entries)
        items = [_item(command) for command in commands_]
        assert (
            rows(unpacked.apply_items(client_ids, seqs, items, now_ms, answer=asking(wanted)))
            == answers
        )
        expected = []
        for item, request in entries:
            client_id, seq = request if request is not None else (None, None)
            result = one_by_one.apply_encoded(_bytes(item), now_ms, client_id=client_id, seq=seq)
            if request in wanted:
                expected.append((client_id, seq, result))
        assert answers == expected
        assert batched.revision == one_by_one.revision
    assert batched.digest() == one_by_one.digest() == unpacked.digest()
    assert visible(batched) == visible(one_by_one) == visible(unpacked)
    assert batched.snapshot() == one_by_one.snapshot() == unpacked.snapshot()


def test_a_result_nobody_waited_for_is_packed_when_a_retry_asks_with_the_same_bytes() -> None:
    lazy, eager = fresh(), fresh()
    command = encode_command(Set("k", {"nested": (1, [2.5, None])}))
    first = eager.apply_encoded(command, 10, client_id="c", seq=1)
    assert rows(lazy.apply_batch(["c"], [1], [command], 10)) == []  # kept unpacked
    retry = encode_command(NoOp())  # a retry's bytes do not matter, its id does
    assert rows(lazy.apply_batch(["c"], [1], [retry], 20, answer={"c": {1}})) == [("c", 1, first)]
    assert lazy.cached_result("c", 1) == first
    assert lazy.revision == eager.revision == 1


@pytest.mark.parametrize("count", [1, 8])  # the general loop, and a slot of plain Sets
def test_a_plain_set_answers_its_revision_alone_whatever_the_value_it_replaced(count: int) -> None:
    m = fresh()
    big = "v" * 4096
    m.apply_batch(["c"] * count, list(range(count)), [encode_command(Set("k", big))] * count, 0)
    seqs = list(range(count, 2 * count))
    commands_ = [encode_command(Set("k", big))] * count
    answers = rows(m.apply_batch(["c"] * count, seqs, commands_, 0, answer={"c": set(seqs)}))
    assert [msgpack.unpackb(a[2]) for a in answers] == [
        [1, count + i + 1, None] for i in range(count)
    ]
    assert [e.prev_value for e in m.events_since(count)] == [big] * count  # watchers keep it
    # The dedup table keeps (so a snapshot carries) the same few bytes for a retry.
    assert all(len(m.cached_result("c", seq) or b"") < 16 for seq in range(2 * count))


def test_a_request_twice_in_one_slot_is_applied_once_and_answered_alike() -> None:
    m = fresh()
    command = encode_command(Set("k", 1))
    answers = rows(m.apply_batch(["c", "c"], [7, 7], [command, command], 0, answer={"c": {7}}))
    assert m.revision == 1
    assert [a[2] for a in answers] == [answers[0][2]] * 2


def test_requests_without_an_id_are_applied_but_never_answered_or_deduplicated() -> None:
    m = fresh()
    command = encode_command(Set("k", 1))
    assert rows(m.apply_batch(["", ""], [0, 0], [command, command], 0, answer={"": {0}})) == []
    assert m.revision == 2


@pytest.mark.parametrize(
    ("client_ids", "seqs", "commands_"),
    [
        (["c"], [1, 2], [b"\x91\x00"]),  # columns of different lengths
        ([b"c"], [1], [b"\x91\x00"]),  # a client id that is not a str
        (["c"], [-1], [b"\x91\x00"]),  # a negative seq
        (["c"], [2**64], [b"\x91\x00"]),  # a seq beyond uint64
        (["c"], [True], [b"\x91\x00"]),  # a bool is not a seq
        (["c"], [1], ["text"]),  # a command that is not bytes
    ],
)
def test_a_bad_batch_is_refused_before_any_change(
    client_ids: list[Any], seqs: list[Any], commands_: list[Any]
) -> None:
    m = fresh()
    m.apply_encoded(encode_command(Set("k", 1)), 5, client_id="c", seq=0)
    digest = m.digest()
    with pytest.raises(InvalidCommand):
        m.apply_batch(client_ids, seqs, commands_, 6)
    assert m.digest() == digest
    assert m.log_time_ms == 5


def test_a_bad_log_time_is_refused_before_any_change() -> None:
    m = fresh()
    with pytest.raises(InvalidCommand):
        m.apply_batch(["c"], [1], [encode_command(NoOp())], 2**63)
    assert m.revision == 0


def test_apply_encoded_refuses_an_empty_client_id_which_would_name_no_request() -> None:
    m = KVStateMachine(Configuration(frozenset({"a"})))
    with pytest.raises(InvalidCommand, match="non-empty client_id"):
        m.apply_encoded(encode_command(NoOp()), 0, client_id="", seq=1)
    assert m.revision == 0


def test_the_dedup_window_still_prunes_and_refuses_stale_seqs_in_batches() -> None:
    m = KVStateMachine(Configuration(frozenset({"a"})), dedup_window_requests=4)
    command = encode_command(Set("k", 1))
    for first in range(0, 40, 10):
        seqs = list(range(first, first + 10))
        m.apply_batch(["c"] * 10, seqs, [command] * 10, first)
    stale = rows(m.apply_batch(["c"], [3], [command], 50, answer={"c": {3}}))
    assert m.cached_result("c", 3) is None
    assert b"stale_request" in stale[0][2]
    assert m.revision == 41  # the stale request takes a revision, like any failure


# Slots shaped like the engine's busy ones: one client, plain Sets of str keys (a key may come
# twice), seqs that run on (or jump back or ahead), and now and then one request that makes the
# slot leave the path that applies it as columns: a lease, a Delete, another client, a seq twice.
plain_sets = st.lists(st.builds(Set, st.sampled_from("abcdefghij"), st.integers(0, 9)), max_size=11)
odd_entries = st.one_of(
    st.builds(Set, st.sampled_from("abc"), st.integers(0, 9), st.just(1)),
    st.builds(Delete, st.sampled_from("abc")),
    st.builds(LeaseGrant, st.just(1000), st.just(1)),
    st.just("another client"),
    st.just("a seq twice"),
)
busy_slots = st.lists(
    st.tuples(
        plain_sets,
        st.none() | st.tuples(odd_entries, st.integers(0, 13)),
        st.integers(-14, 12),  # where the slot's seqs start, from the client's highest so far
        st.sampled_from(["x", "y"]),
    ),
    max_size=16,
)


@PROPERTY
@given(busy_slots, st.data())
def test_a_busy_slot_of_one_client_is_the_same_as_its_commands_one_by_one(
    log: list[Any], data: st.DataObject
) -> None:
    batched, one_by_one = (
        KVStateMachine(
            Configuration(frozenset({"a"})), history_limit_events=24, dedup_window_requests=12
        )
        for _ in range(2)
    )
    highest: dict[str, int] = {"x": 0, "y": 0}
    for now_ms, (entries, odd, client, start) in enumerate((e, o, c, j) for e, o, j, c in log):
        entries = list(entries)
        first = max(0, highest[client] + start)
        seqs = list(range(first, first + len(entries) + (odd is not None)))
        client_ids = [client] * len(seqs)
        if odd is not None:
            entry, position = odd
            position %= len(seqs)
            if entry == "another client":
                client_ids[position] = "z"
            elif entry == "a seq twice":
                seqs[position] = seqs[0]
            if isinstance(entry, str):
                entry = Set("k", 0)
            entries.insert(position, entry)
        if not entries:
            continue
        highest[client] = max(highest[client], *seqs)
        commands_ = [encode_command(entry) for entry in entries]
        ids = list(zip(client_ids, seqs, strict=True))
        wanted = set(data.draw(st.sampled_from([[], ids, ids[::2]])))
        items = [_item(command) for command in commands_]
        answers = rows(
            batched.apply_items(
                client_ids, seqs, items, now_ms * 100, answer=asking(wanted), checked=True
            )
        )
        expected = []
        for client_id, seq, command in zip(client_ids, seqs, commands_, strict=True):
            result = one_by_one.apply_encoded(command, now_ms * 100, client_id=client_id, seq=seq)
            if (client_id, seq) in wanted:
                expected.append((client_id, seq, result))
        assert answers == expected
        assert batched.revision == one_by_one.revision
        assert batched.snapshot() == one_by_one.snapshot()
    assert batched.digest() == one_by_one.digest()
    assert visible(batched) == visible(one_by_one)
    assert batched.events_since(batched.history_floor_revision) == one_by_one.events_since(
        one_by_one.history_floor_revision
    )


def test_a_retry_of_a_follower_slot_kept_as_one_run_gets_the_bytes_of_applying_it_alone() -> None:
    """A follower keeps an in-order slot of plain Sets as one shared entry; a retry, a peek and a
    snapshot then see what one result per request would have given."""
    runs, one_by_one = (KVStateMachine(Configuration(frozenset({"a"}))) for _ in range(2))
    commands_ = [encode_command(Set(f"k{i % 3}", i)) for i in range(8)]
    seqs = list(range(40, 48))
    runs.apply_items(["c"] * 8, seqs, [_item(c) for c in commands_], 5, checked=True)
    for seq, command in zip(seqs, commands_, strict=True):
        one_by_one.apply_encoded(command, 5, client_id="c", seq=seq)
    assert runs.cached_result("c", 41) == one_by_one.cached_result("c", 41)
    [(_, _, retried)] = rows(
        runs.apply_items(["c"], [46], [_item(commands_[6])], 6, answer={"c": {46}}, checked=True)
    )
    assert retried == one_by_one.apply_encoded(commands_[6], 6, client_id="c", seq=46)
    assert runs.snapshot() == one_by_one.snapshot()
    assert runs.digest() == one_by_one.digest()


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(1, 9), st.booleans(), st.booleans()), max_size=30),
    st.integers(9, 14),  # a slot of more than the window goes the general way: keep it above
)
def test_in_order_slots_kept_as_runs_prune_and_read_as_one_result_per_seq(
    slots_: list[tuple[int, bool, bool]], window: int
) -> None:
    """A client's in-order slots stay runs across slots (nothing reads them between), runs are
    cut and dropped as the window moves, and whatever reads them at last (a snapshot, a digest,
    a retry) sees what one result per request would have left: here with nothing read between
    slots, unlike the busy-slot test above, which snapshots after every slot."""
    runs, one_by_one = (
        KVStateMachine(Configuration(frozenset({"a"})), dedup_window_requests=window)
        for _ in range(2)
    )
    seq = 0
    for now_ms, (count, answered, peek) in enumerate(slots_):
        seqs = list(range(seq, seq + count))
        seq += count
        commands_ = [encode_command(Set(f"k{s % 4}", s)) for s in seqs]
        answers = rows(
            runs.apply_items(
                ["c"] * count,
                seqs,
                [_item(c) for c in commands_],
                now_ms,
                answer={"c": set(seqs)} if answered else None,
                checked=True,
            )
        )
        expected = [
            ("c", s, one_by_one.apply_encoded(c, now_ms, client_id="c", seq=s))
            for s, c in zip(seqs, commands_, strict=True)
        ]
        assert answers == (expected if answered else [])
        if peek:  # a retry's peek spreads the runs into the table; later slots make new ones
            assert runs.cached_result("c", seq - 1 - window) == one_by_one.cached_result(
                "c", seq - 1 - window
            )
    assert runs.snapshot() == one_by_one.snapshot()
    assert runs.digest() == one_by_one.digest()
