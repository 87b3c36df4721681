"""The engine's per-client request tables hold the same requests as flat tables of id pairs.

:mod:`paxoskv.paxos.waiting` keys its tables by client id, then seq, with a fast path for a call
of one client's requests; the flat model here (a dict and a set keyed by ``(client_id, seq)``)
is what the engine kept before, and every operation must leave the two holding the same.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.paxos.engine import _columns_size_bytes, _size_bytes
from paxoskv.paxos.messages import Request
from paxoskv.paxos.waiting import (
    QueuedIds,
    WaitingTable,
    add_waiting,
    discard_waiting,
    is_waiting,
    pop_waiting,
    queue_new,
    unqueue,
    waiting_items,
    waiting_requests,
)

_requests = st.lists(
    st.builds(
        Request,
        st.sampled_from(["x", "y", ""]),
        st.integers(0, 12),
        st.sampled_from([b"\x90", b"\x91\xc0"]),
    ),
    min_size=1,
    max_size=8,
)
# One client's calls are the usual ones (and take the fast paths): draw them often.
_one_client = st.builds(
    lambda client, seqs: [Request(client, s, b"\x90") for s in seqs],
    st.sampled_from(["x", "y"]),
    st.lists(st.integers(0, 12), min_size=1, max_size=8),
)
_calls = st.lists(
    st.tuples(
        st.sampled_from(["add", "pop", "discard", "queue", "unqueue"]), _one_client | _requests
    ),
    max_size=30,
)


def _columns(requests: list[Request]) -> tuple[list[str], list[int]]:
    return [r.client_id for r in requests], [r.seq for r in requests]


def _flat(table: WaitingTable) -> dict[tuple[str, int], Request]:
    return dict(waiting_items(table))


def _distinct_ids(requests: Any) -> list[tuple[str, int]]:
    return list(dict.fromkeys((r.client_id, r.seq) for r in requests if r.client_id))


@given(_calls)
@settings(max_examples=300, derandomize=True, database=None)
def test_the_per_client_tables_hold_what_flat_tables_of_id_pairs_would(
    calls: list[tuple[str, list[Request]]],
) -> None:
    waiting: WaitingTable = {}
    queued: QueuedIds = {}
    flat_waiting: dict[tuple[str, int], Request] = {}
    flat_queued: set[tuple[str, int]] = set()
    for operation, requests in calls:
        client_ids, seqs = _columns(requests)
        ids = list(zip(client_ids, seqs, strict=True))
        if operation == "add":
            named = [r for r in requests if r.client_id]  # the engine refuses empty ids
            if named:
                add_waiting(waiting, *_columns(named), named)
                flat_waiting.update(((r.client_id, r.seq), r) for r in named)
        elif operation == "pop":
            popped = pop_waiting(waiting, client_ids, seqs)
            assert popped == [flat_waiting.pop(key, None) for key in ids]
        elif operation == "discard":
            discard_waiting(waiting, *ids[0])
            flat_waiting.pop(ids[0], None)
        elif operation == "queue":
            kept = queue_new(queued, requests, client_ids, seqs)
            expected = [r for r in requests if not r.client_id or (r[0], r[1]) not in flat_queued]
            flat_queued.update(key for key in ids if key[0])
            # A copy twice in one call may be kept twice or once: it is applied once either way.
            assert _distinct_ids(kept) == _distinct_ids(expected)
            assert [r for r in kept if not r.client_id] == [r for r in requests if not r.client_id]
        else:
            unqueue(queued, client_ids, seqs)
            flat_queued.difference_update(ids)
        assert _flat(waiting) == flat_waiting
        assert sorted(waiting_requests(waiting)) == sorted(flat_waiting.values())
        assert all(is_waiting(waiting, *key) for key in flat_waiting)
        assert not is_waiting(waiting, "z", 0)
        assert {(c, s) for c, seen in queued.items() for s in seen} == flat_queued
        # No empty inner table is kept: an empty table means nothing waits (or is queued).
        assert all(waiting.values()) and all(queued.values())


@given(_one_client | _requests)
@settings(max_examples=200, derandomize=True, database=None)
def test_a_call_is_sized_from_its_columns_as_from_its_requests(requests: list[Request]) -> None:
    client_ids, _, commands = zip(*requests, strict=True)
    assert _columns_size_bytes(client_ids, commands) == _size_bytes(requests)
