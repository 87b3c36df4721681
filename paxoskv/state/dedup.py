"""Exactly-once application of client requests: the dedup table.

A client retries a write whose answer it did not see, and the retry may reach the log a second
time (a new leader re-proposes it, or the first copy was chosen after all). Each request carries
``(client_id, seq)``; the table keeps, per client, the *encoded* result of each recent seq, so a
duplicate is answered with the very same bytes and applied once, as in "Paxos Made Moderately
Complex" (the replica's per-client "already performed" check) and Raft's client sessions.

Clients pipeline, so seqs arrive out of order within a window: the table keeps the results of
(at least) the last ``window_requests`` seqs up to the highest seen. A seq below the window
whose result is gone cannot be told apart from a new request any more, so it is refused as
stale rather than risk applying twice.

Clients that go quiet are forgotten after ``client_idle_ms`` of *log* time, judged in log order,
so every replica forgets the same clients at the same command. Clients are kept in an
``OrderedDict`` in order of last use: log time never goes back, so the front is always the
longest idle, and forgetting is a pop from the front.

A result is kept *unencoded* until someone needs its bytes (a duplicate arrives, a snapshot or a
digest is taken): most results are never asked for again, and on a replica with no local client
waiting, packing each one would be most of the cost of applying a write. The kept form is the
result's wire array, the bare revision (an int) for a plain Set (whose result is its revision
alone: see :mod:`~paxoskv.state.results`), or, for a slot of one client's plain Sets with
consecutive seqs (the usual busy slot), one :class:`SetRun` that every seq of the slot maps to,
so a follower makes and later frees one object per slot instead of an entry per request. What
they refer to is immutable, so the bytes made later are the bytes that would have been made at
once, and they replace the kept form when made (each result is packed at most once).

Such a slot is not even spread into the client's dict of results, one entry per seq, until
something reads the dict: it is kept as one *run*, ``(first seq, kept results in seq order)``,
in a list after the dict (:attr:`ClientRecord.runs`), and a run that falls below the window is
dropped (or cut) whole. Whatever reads or writes the dict first spreads the runs into it, in
order (:meth:`ClientRecord.settle`): a run is always younger than every entry of the dict, so
the dict then holds exactly what it would have held had each seq gone in as it came, in the
same order, and snapshots, digests and answers cannot tell the difference.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Container, Mapping, Sequence
from itertools import islice
from typing import Any, Final, TypeAlias

from paxoskv.state.frozen import Record
from paxoskv.state.results import WRITTEN
from paxoskv.state.wire import pack

ClientId = str

Waiting: TypeAlias = Mapping[ClientId, Container[int]]
"""The seqs a client waits on at this replica, per client id: whose results to pack.

Per client rather than a set of ``(client_id, seq)`` pairs: a slot is usually one client's, so
its seqs are looked up as ints in one client's table, with no pair made and hashed per command
(the engine keeps its waiting requests in this very shape and passes them as they are)."""
Answered: TypeAlias = tuple[Sequence[ClientId], Sequence[int], Sequence[bytes]]
"""The answers of one slot as columns: ``results[i]`` is the encoded result of request
``(client_ids[i], seqs[i])``. Columns, not a tuple per answer: the usual slot answers every
request of it, and its columns are then the slot's own (see :mod:`~paxoskv.state.plain_sets`)."""
NO_ANSWERS: Answered = ((), (), ())


class SetRun:
    """The results of one client's plain Sets with seqs ``first_seq`` on, one per seq: seq
    ``first_seq + i`` wrote revision ``first_revision + i``. Shared by all those seqs in the
    client's table; read-only once made."""

    __slots__ = ("first_revision", "first_seq")

    def __init__(self, first_seq: int, first_revision: int) -> None:
        self.first_seq = first_seq
        self.first_revision = first_revision


Kept: TypeAlias = bytes | list[Any] | int | SetRun
"""A kept result: its bytes, its wire array, the revision of a plain Set, or the
:class:`SetRun` it belongs to."""

STALE: Final = b""
"""Returned by :meth:`DedupTable.check` for a seq older than the window (a real encoded result
is never empty, so the empty bytes are free to mean this)."""


def encode_kept(kept: Kept, seq: int) -> bytes:
    """The bytes of the kept result of ``seq`` (see the module docstring for the forms)."""
    if isinstance(kept, bytes):
        return kept
    if isinstance(kept, int):
        return pack([WRITTEN, kept, None])
    if isinstance(kept, SetRun):
        return pack([WRITTEN, kept.first_revision + seq - kept.first_seq, None])
    return pack(kept)


class ClientRecord(Record):
    """One client's recent results. The state machine's batch loop works on it directly."""

    __slots__ = ("highest_seq", "last_seen_ms", "results", "run_count", "runs")
    __match_args__ = ("last_seen_ms", "highest_seq", "results", "runs", "run_count")

    last_seen_ms: int
    highest_seq: int
    results: dict[int, Kept]
    runs: list[tuple[int, Sequence[Kept]]]
    """Results not yet in :attr:`results`, as ``(first seq, one kept result per seq on)``:
    consecutive seqs, above every seq in :attr:`results` and every earlier run's, and younger
    than all of them (see the module docstring)."""
    run_count: int  # results in ``runs``

    def __init__(
        self,
        last_seen_ms: int,
        highest_seq: int = -1,
        results: dict[int, Kept] | None = None,
        runs: list[tuple[int, Sequence[Kept]]] | None = None,
        run_count: int = 0,
    ) -> None:
        self.last_seen_ms = last_seen_ms
        self.highest_seq = highest_seq
        self.results = dict() if results is None else results
        self.runs = list() if runs is None else runs
        self.run_count = run_count

    def settle(self) -> dict[int, Kept]:
        """Spread the runs into :attr:`results`, in order; return it (to read or write)."""
        results = self.results
        if self.runs:
            for first, kept in self.runs:
                results.update(zip(range(first, first + len(kept)), kept, strict=True))
            self.runs = []
            self.run_count = 0
        return results

    def add_run(self, first_seq: int, kept: Sequence[Kept]) -> None:
        """Keep the results of seqs ``first_seq`` on, all above every kept seq, as one run."""
        if kept:
            self.runs.append((first_seq, kept))
            self.run_count += len(kept)

    def encoded(self, seq: int) -> bytes | None:
        """The bytes of ``seq``'s result if kept; packs it now (once) if it was not yet."""
        kept = self.settle().get(seq)
        if kept is None or isinstance(kept, bytes):
            return kept
        encoded = self.results[seq] = encode_kept(kept, seq)
        return encoded

    def encoded_results(self) -> dict[int, bytes]:
        """Every kept result as bytes (packing the ones not yet packed, once)."""
        results = self.settle()
        for seq, kept in results.items():
            if type(kept) is not bytes:
                results[seq] = encode_kept(kept, seq)  # replacing a value keeps the dict's order
        return results  # type: ignore[return-value]


class DedupTable:
    """Per-client results of recent requests, bounded in seqs and in idle time."""

    def __init__(self, window_requests: int, client_idle_ms: int) -> None:
        self.window_requests = window_requests
        self.client_idle_ms = client_idle_ms
        self._clients: OrderedDict[ClientId, ClientRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def forget_idle(self, now_ms: int) -> None:
        """Drop clients whose last request is more than ``client_idle_ms`` before ``now_ms``."""
        clients, deadline_ms = self._clients, now_ms - self.client_idle_ms
        while clients:
            client_id = next(iter(clients))
            if clients[client_id].last_seen_ms >= deadline_ms:
                return
            del clients[client_id]

    def check(self, client_id: ClientId, seq: int, now_ms: int) -> bytes | None:
        """The cached result of a duplicate, :data:`STALE`, or None for a new request.

        Marks the client as seen at ``now_ms`` in every case.
        """
        client = self.touch(client_id, now_ms)
        cached = client.encoded(seq)
        if cached is not None:
            return cached
        if seq <= client.highest_seq - self.window_requests:
            return STALE
        return None

    def touch(self, client_id: ClientId, now_ms: int) -> ClientRecord:
        """The client's record (a new one for a new client), marked as seen at ``now_ms``."""
        clients = self._clients
        client = clients.get(client_id)
        if client is None:
            client = clients[client_id] = ClientRecord(now_ms)
            return client
        clients.move_to_end(client_id)
        client.last_seen_ms = now_ms
        return client

    def peek(self, client_id: ClientId, seq: int) -> bytes | None:
        """The cached result for ``(client_id, seq)`` if any, changing no result and no
        client's place in the table (it unpacks the client's runs of results and keeps the
        packed bytes it makes: the applying thread's to call, as every other method is).

        For a leader that wants to answer a retry without proposing it again.
        """
        client = self._clients.get(client_id)
        return None if client is None else client.encoded(seq)

    def remember(self, client_id: ClientId, seq: int, kept: Kept) -> None:
        """Keep the result of a request just applied (after :meth:`check` said it was new).

        Results that fall below the window are pruned in batches, once a client holds twice
        the window: one pass per ``window_requests`` requests instead of one per request,
        whatever the gaps between seqs. Until then an old duplicate still finds its result,
        which is only more helpful; it is deterministic either way.
        """
        client = self._clients[client_id]
        results = client.settle()
        results[seq] = kept
        if seq > client.highest_seq:
            client.highest_seq = seq
        if len(results) > 2 * self.window_requests:
            self.prune(client)

    def prune(self, client: ClientRecord) -> dict[int, Kept]:
        """Drop the client's results below the window; return its new results dict."""
        floor_seq = client.highest_seq - self.window_requests
        if client.runs:
            _prune_runs(client, floor_seq)
        results = client.results
        if not results:
            return results
        seqs = list(results)
        if seqs == sorted(seqs):  # in seq order, as a pipelining client sends: cut, in C
            cut = bisect_right(seqs, floor_seq)
            client.results = dict(zip(seqs[cut:], islice(results.values(), cut, None), strict=True))
        else:
            client.results = {s: r for s, r in results.items() if s > floor_seq}
        return client.results

    # --- snapshot and digest ---------------------------------------------------------------

    def to_wire(self) -> list[Any]:
        """``[[client_id, last_seen_ms, highest_seq, [seq, result, ...]], ...]`` in use order."""
        return [
            [
                client_id,
                c.last_seen_ms,
                c.highest_seq,
                [x for item in c.encoded_results().items() for x in item],
            ]
            for client_id, c in self._clients.items()
        ]

    def canonical_wire(self) -> list[Any]:
        """As :meth:`to_wire` but sorted by client id and seq, for the digest."""
        rows = []
        for client_id in sorted(self._clients):
            c = self._clients[client_id]
            results = c.encoded_results()
            flat = [x for seq in sorted(results) for x in (seq, results[seq])]
            rows.append([client_id, c.last_seen_ms, c.highest_seq, flat])
        return [self.window_requests, self.client_idle_ms, rows]

    @classmethod
    def from_wire(cls, raw: object, window_requests: int, client_idle_ms: int) -> DedupTable:
        """Inverse of :meth:`to_wire`; ValueError on a bad shape."""
        if type(raw) is not list:
            raise ValueError("dedup table is not an array")
        table = cls(window_requests, client_idle_ms)
        for row in raw:
            client_id, last_seen_ms, highest_seq, flat = row
            if type(client_id) is not str or type(last_seen_ms) is not int:
                raise ValueError("dedup client id is a str and last seen an int")
            if type(highest_seq) is not int or type(flat) is not list or len(flat) % 2:
                raise ValueError("dedup seqs are ints and results a flat array of pairs")
            items = iter(flat)
            results: dict[int, Kept] = dict(zip(items, items, strict=True))
            if not all(type(s) is int and type(r) is bytes and r for s, r in results.items()):
                raise ValueError("dedup results are int seqs with non-empty bytes")
            if client_id in table._clients:
                raise ValueError(f"dedup client {client_id!r} appears twice")
            table._clients[client_id] = ClientRecord(last_seen_ms, highest_seq, results)
        return table


def _prune_runs(client: ClientRecord, floor_seq: int) -> None:
    """Drop the runs' results of seqs up to ``floor_seq``: whole runs, and the front of one."""
    runs = client.runs
    dropped = 0
    while dropped < len(runs) and runs[dropped][0] + len(runs[dropped][1]) <= floor_seq + 1:
        dropped += 1
    if dropped:
        runs = client.runs = runs[dropped:]
    if runs and runs[0][0] <= floor_seq:
        first, kept = runs[0]
        runs[0] = (floor_seq + 1, kept[floor_seq + 1 - first :])
    client.run_count = sum(len(kept) for _, kept in runs)
