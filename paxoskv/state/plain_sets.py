"""The usual log slot, applied with its checks done once for the slot: the hot path.

A busy slot is a run of plain Sets (``[SET, str key, value, None]``) from one client whose
seqs are new. The general loop (:meth:`KVStateMachine._apply_requests
<paxoskv.state.machine.KVStateMachine._apply_requests>`) asks of every request whether it has a
client id, whether the client changed, whether its seq is a duplicate or stale, whether the
command is a plain Set, whether its result is wanted, whether the dedup table must prune: some
70 bytecodes a command, on every replica. Here those questions are asked once for the whole
slot: one typed pass over the commands proves each a plain Set (the compiled build runs it as a
C loop; ``zip(*items)`` into columns, the fastest form in CPython, made an iterator per command
and cost the three replicas some 3,000 instructions a command more), and the loop that remains
only writes the rows and gathers the history's columns; the dedup entries go in
by one ``update`` (on a follower, every seq of an in-order slot maps to one shared
:class:`~paxoskv.state.dedup.SetRun`) and the history records the slot's columns as one entry.
Seqs that continue the client's last ones in order, as a pipelining client sends them, are
proved new, distinct and in the window by one list comparison. Results for a waiting client
are packed by one comprehension, and answered as the slot's own columns.

The state, answers and snapshot bytes are exactly the general loop's (the tests hold the two
to each other): the slot is taken here only when that loop would take its plain-Set branch for
every request and no request could be a duplicate, stale, or make the client's table prune
(the loop prunes at the very request that crosses the bound, which moves the stale line of the
requests after it). Anything else returns None before changing anything, and the caller runs
the general loop, which handles every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from paxoskv.state.command_wire import SET
from paxoskv.state.dedup import (
    NO_ANSWERS,
    Answered,
    ClientId,
    ClientRecord,
    DedupTable,
    Kept,
    SetRun,
    Waiting,
)
from paxoskv.state.results import WRITTEN, encode_written_run

if TYPE_CHECKING:
    from paxoskv.state.machine import KVStateMachine

_SET_TAG: Final[object] = SET  # compared by identity, as the general loop does

MIN_REQUESTS = 4
"""Below this many requests a slot goes through the general loop, whose set-up is cheaper."""


def apply_plain_sets(
    machine: KVStateMachine,
    client_ids: Sequence[ClientId],
    seqs: Sequence[int],
    items: Sequence[bytes | list[Any]],
    answer: Waiting | None,
) -> Answered | None:
    """Apply one client's slot of plain Sets, or return None having changed nothing.

    Arguments as the general loop takes them: columns checked, the machine's time advanced.
    """
    count = len(items)
    client_id = client_ids[0]
    if (
        not client_id
        or client_ids.count(client_id) != count
        or type(items) is not list
        or type(items[0]) is not list
    ):
        return None  # several clients, the engine's own requests, or commands still bytes
    rows: list[Any] = items
    # One typed pass over the commands, compiled to a C loop: every item a plain Set. The
    # tag ``is SET``: the int 1 out of msgpack is one cached object, and a bool or a float
    # equal to it is not it. A str out of msgpack is valid UTF-8, so any non-empty one is a
    # valid key.
    for row in rows:
        if type(row) is not list:
            return None
        command: list[Any] = row
        if (
            len(command) != 4
            or command[0] is not _SET_TAG
            or command[3] is not None
            or type(command[1]) is not str
            or not command[1]
        ):
            return None
    dedup = machine._dedup
    window = dedup.window_requests
    record = dedup._clients.get(client_id)
    # Seqs distinct, none kept or stale, none making the table prune (see the module docstring).
    if count > window:  # the table could prune twice in the slot
        return None
    previous_highest = -1 if record is None else record.highest_seq
    first_seq = seqs[0]
    # A follower's ``read_batch`` hands over consecutive seqs as a ``range``, proved so already.
    in_order = first_seq > previous_highest and (
        (type(seqs) is range and seqs.step == 1) or _runs_on(seqs, first_seq)
    )
    if in_order:
        # The usual slot: a pipelining client's next seqs in order. All above every kept seq
        # (none kept, none stale) and distinct; one comparison instead of four passes.
        highest = first_seq + count - 1
    else:
        results: dict[int, Kept] = {} if record is None else record.settle()
        highest = max(previous_highest, max(seqs))
        if (
            min(seqs) <= highest - window
            or not results.keys().isdisjoint(seqs)
            or len(set(seqs)) != count
        ):
            return None

    # Checked: from here on every request is applied, in order, as the general loop would.
    client = dedup.touch(client_id, machine._log_time_ms)
    # Rows as plain tuples: the compiled build then indexes them in place rather than
    # converting each to its typed form first.
    data = cast(dict[str, tuple[Any, ...]], machine._data)
    leases = machine._leases
    first = revision = machine._revision + 1
    prevs: list[tuple[Any, ...] | None] = []
    keys: list[str] = []
    values: list[Any] = []
    for row in rows:
        command = row
        key: str = command[1]
        value = command[2]
        prev = data.get(key)
        if prev is None:
            data[key] = (key, value, revision, revision, 1, None)
        else:
            data[key] = (key, value, prev[2], revision, prev[4] + 1, None)
            if prev[5] is not None:
                leases.detach(key, prev[5])
        prevs.append(prev)
        keys.append(key)
        values.append(value)
        revision += 1
    machine._revision = revision - 1
    # One entry, not one per Set; its columns as tuples, which the cyclic collector stops
    # tracking once it finds them holding only strs and untracked rows (lists it would traverse
    # in every full collection for as long as the history keeps them).
    machine._history.record_sets(first, tuple(keys), tuple(values), tuple(prevs))
    asked = answer.get(client_id) if answer else None  # the seqs the client waits on here
    waited_on = 0
    if asked:
        for seq in seqs:
            if seq in asked:
                waited_on += 1
    answered: Answered = NO_ANSWERS
    kept: list[Kept]
    if not waited_on:  # a follower: results stay unpacked until a retry asks (see dedup)
        # In order: one entry shared by every seq, no int per request to make and free.
        kept = [SetRun(first_seq, first)] * count if in_order else list(range(first, revision))
    elif waited_on == count:  # the leader: a plain Set answers its revision alone (see results)
        encoded = encode_written_run(first, revision, machine._pack)
        answered = (client_ids, seqs, encoded)  # the slot's own columns
        kept = encoded  # type: ignore[assignment]  # bytes are a kept form
    else:
        kept = list(range(first, revision))
        pack = machine._pack
        answered_seqs: list[int] = []
        encoded_results: list[bytes] = []
        for index, seq in enumerate(seqs):
            if seq in asked:  # type: ignore[operator]  # (not None: something is waited on)
                kept[index] = result = pack([WRITTEN, first + index, None])
                answered_seqs.append(seq)
                encoded_results.append(result)
        answered = ([client_id] * len(answered_seqs), answered_seqs, encoded_results)
    if in_order:
        _remember_run(dedup, client, first_seq, kept)
    else:
        _remember(dedup, client, seqs, kept)
    client.highest_seq = highest
    return answered


def _runs_on(seqs: Sequence[int], first: int) -> bool:
    """Whether ``seqs`` are ``first``, ``first + 1`` and so on: a loop that the compiled build
    runs in C, with no list of the expected seqs made to compare with."""
    expected = first
    for seq in seqs:
        if seq != expected:
            return False
        expected += 1
    return True


def _remember_run(dedup: DedupTable, client: ClientRecord, first_seq: int, kept: list[Any]) -> None:
    """Keep the results of an in-order slot as one run (see :mod:`~paxoskv.state.dedup`),
    pruning where the general loop would (see :func:`_remember`)."""
    room = 2 * dedup.window_requests - len(client.results) - client.run_count
    if len(kept) <= room:
        client.add_run(first_seq, kept)
        return
    client.add_run(first_seq, kept[: room + 1])
    client.highest_seq = max(client.highest_seq, first_seq + room)
    dedup.prune(client)
    client.add_run(first_seq + room + 1, kept[room + 1 :])


def _remember(
    dedup: DedupTable, client: ClientRecord, seqs: Sequence[int], kept: list[Any]
) -> None:
    """Keep each result, pruning where the general loop would: right after the request that
    takes the client's table past twice the window, by the highest seq up to that request."""
    client.settle()
    room = 2 * dedup.window_requests - len(client.results)
    if len(seqs) <= room:
        client.results.update(zip(seqs, kept, strict=True))
        return
    client.results.update(zip(seqs[: room + 1], kept[: room + 1], strict=True))
    client.highest_seq = max(client.highest_seq, max(seqs[: room + 1]))
    dedup.prune(client).update(zip(seqs[room + 1 :], kept[room + 1 :], strict=True))
