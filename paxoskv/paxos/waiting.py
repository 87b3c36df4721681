"""The engine's per-client tables of requests: those a local client waits on, and those queued.

Both are keyed by client id, then by seq, rather than by ``(client_id, seq)`` pairs. A call to
:meth:`~paxoskv.paxos.engine.Engine.propose` and a log slot usually carry one client's
requests, so each table is then reached once per call and its seqs are plain ints: no pair is
made, hashed and freed per command in each of the half-dozen places a leader looks a request
up (wait for it, queue it, unqueue it once applied, ask whether to pack its result, answer it).
The state machine takes the waiting table as it is to learn whose results to pack
(:data:`~paxoskv.state.dedup.Waiting`).

Neither table keeps a client whose requests are all gone, so an empty table means nothing
waits (or is queued). Mixed calls (several clients, the engine's own requests) take a loop per
request that does the same as the one-client path; the tests hold the two to each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain, repeat
from typing import TypeAlias

from paxoskv.paxos.messages import Request

WaitingTable: TypeAlias = dict[str, dict[int, Request]]
"""Client id -> seq -> the request a local client waits on; no empty inner table."""
QueuedIds: TypeAlias = dict[str, set[int]]
"""Client id -> the seqs pending or proposed in this term and not yet applied; no empty set."""


def add_waiting(
    table: WaitingTable, client_ids: Sequence[str], seqs: Sequence[int], requests: Sequence[Request]
) -> None:
    """Note that local clients wait on ``requests`` (columns split out by the caller)."""
    first = client_ids[0]
    if len(client_ids) == 1:  # a sequential writer's call: no zip, no count
        seqs_of = table.get(first)
        if seqs_of is None:
            table[first] = {seqs[0]: requests[0]}
        else:
            seqs_of[seqs[0]] = requests[0]
        return
    if client_ids.count(first) == len(client_ids):  # one client's requests
        seqs_of = table.get(first)
        if seqs_of is None:
            table[first] = dict(zip(seqs, requests, strict=True))
        else:
            seqs_of.update(zip(seqs, requests, strict=True))
        return
    for client_id, seq, request in zip(client_ids, seqs, requests, strict=True):
        seqs_of = table.get(client_id)
        if seqs_of is None:
            seqs_of = table[client_id] = {}
        seqs_of[seq] = request


def pop_waiting(
    table: WaitingTable, client_ids: Sequence[str], seqs: Sequence[int]
) -> list[Request | None]:
    """Take these requests out of the table: each one's request, None where none waited."""
    if len(client_ids) == 1:  # a slot of one request
        return [_pop_one(table, client_ids[0], seqs[0])]
    if client_ids and client_ids.count(first := client_ids[0]) == len(client_ids):
        seqs_of = table.get(first)
        if seqs_of is None:
            return [None] * len(seqs)
        popped = list(map(seqs_of.pop, seqs, repeat(None)))
        if not seqs_of:
            del table[first]
        return popped
    return [
        _pop_one(table, client_id, seq) for client_id, seq in zip(client_ids, seqs, strict=True)
    ]


def _pop_one(table: WaitingTable, client_id: str, seq: int) -> Request | None:
    seqs_of = table.get(client_id)
    if seqs_of is None:
        return None
    request = seqs_of.pop(seq, None)
    if not seqs_of:
        del table[client_id]
    return request


def discard_waiting(table: WaitingTable, client_id: str, seq: int) -> None:
    """Forget one request, if it waits."""
    _pop_one(table, client_id, seq)


def is_waiting(table: WaitingTable, client_id: str, seq: int) -> bool:
    seqs_of = table.get(client_id)
    return seqs_of is not None and seq in seqs_of


def waiting_items(table: WaitingTable) -> Iterator[tuple[tuple[str, int], Request]]:
    """``((client_id, seq), request)`` for every waiting request, client by client."""
    for client_id, seqs_of in table.items():
        for seq, request in seqs_of.items():
            yield (client_id, seq), request


def waiting_requests(table: WaitingTable) -> list[Request]:
    """Every waiting request, client by client, each client's in the order they came."""
    return list(chain.from_iterable(seqs_of.values() for seqs_of in table.values()))


def queue_new(
    queued: QueuedIds,
    requests: Sequence[Request],
    client_ids: Sequence[str],
    seqs: Sequence[int],
) -> Sequence[Request]:
    """The requests not queued already, each now noted as queued.

    One client's call none of whose requests is queued keeps them all (a copy twice in one
    call is applied once and answered once anyway); otherwise each request is kept only if no
    copy of it is queued, an earlier one in the call included. The engine's own requests (an
    empty client id) are never resent, so they are kept and not noted.
    """
    first = client_ids[0]
    if first and len(client_ids) == 1:  # a sequential writer's request
        seen = queued.get(first)
        if seen is None:
            queued[first] = {seqs[0]}
            return requests
        if seqs[0] not in seen:
            seen.add(seqs[0])
            return requests
        return []
    if first and client_ids.count(first) == len(client_ids):
        seen = queued.get(first)
        if seen is None:
            queued[first] = set(seqs)
            return requests
        if seen.isdisjoint(seqs):
            seen.update(seqs)
            return requests
    kept: list[Request] = []
    for client_id, seq, request in zip(client_ids, seqs, requests, strict=True):
        if not client_id:
            kept.append(request)
            continue
        seen = queued.get(client_id)
        if seen is None:
            queued[client_id] = {seq}
        elif seq in seen:
            continue
        else:
            seen.add(seq)
        kept.append(request)
    return kept


def unqueue(queued: QueuedIds, client_ids: Sequence[str], seqs: Sequence[int]) -> None:
    """These requests were applied (or will never be): they may be queued again."""
    if not client_ids:
        return
    first = client_ids[0]
    if len(client_ids) == 1:  # a slot of one request
        seen = queued.get(first)
        if seen is not None:
            seen.discard(seqs[0])
            if not seen:
                del queued[first]
        return
    if client_ids.count(first) == len(client_ids):
        seen = queued.get(first)
        if seen is not None:
            seen.difference_update(seqs)
            if not seen:
                del queued[first]
        return
    for client_id, seq in zip(client_ids, seqs, strict=True):
        seen = queued.get(client_id)
        if seen is not None:
            seen.discard(seq)
            if not seen:
                del queued[client_id]
