"""Snapshot, restore and digest of the state machine: the whole state as one msgpack blob.

A snapshot is what prevalence writes instead of replaying the log from genesis, and what a
lagging learner receives when the log it needs was compacted. Its layout::

    ["paxoskv-state", format, [history_limit_events, dedup_window_requests,
     dedup_client_idle_ms], [revision, log_time_ms, configuration, configuration_revision],
     rows, leases, dedup, history]

``rows`` is one flat array, six fields per key, so packing a million keys is a single C-level
pass of the packer over a list built by ``itertools.chain``, and restoring one is a loop with no
per-row msgpack call. The parameters travel with the state because they shape its future
(the dedup window decides which requests are stale): a restored replica must behave exactly like
the one the snapshot came from.

The watch history is in the snapshot, so a replica restored from it still serves a watcher
resuming from any revision the history covered. Lease attachments are not: each row names its
lease, and the attachments are rebuilt from the rows.

The digest hashes a *canonical* encoding (keys, leases, clients and seqs sorted) with blake2b,
so it does not depend on insertion order or the hash seed; it leaves out the history (a
per-node cache of the log).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from hashlib import blake2b
from itertools import chain, compress, repeat
from operator import countOf, is_not
from typing import Any, Final

from paxoskv.state.configuration import Configuration
from paxoskv.state.dedup import DedupTable
from paxoskv.state.frozen import Frozen, Record
from paxoskv.state.history import DEFAULT_LIMIT_BYTES, History
from paxoskv.state.keys import Key, key_to_wire, keys_from_wire
from paxoskv.state.leases import LeaseTable
from paxoskv.state.wire import MalformedSnapshot, pack, unpack

SNAPSHOT_MAGIC = "paxoskv-state"
SNAPSHOT_FORMAT = 1
DIGEST_FORMAT = 1
ROW_FIELDS = 6
HISTORY_FIELDS = 5  # revision, kind, key, value, previous value


class RestoredState(Record):
    """The parts of a machine read back from a snapshot, checked and rebuilt."""

    __slots__ = (
        "configuration",
        "configuration_revision",
        "dedup",
        "history",
        "leases",
        "log_time_ms",
        "parameters",
        "revision",
        "rows",
    )
    __match_args__ = (
        "parameters",
        "revision",
        "log_time_ms",
        "configuration",
        "configuration_revision",
        "rows",
        "leases",
        "dedup",
        "history",
    )

    parameters: tuple[int, int, int]
    revision: int
    log_time_ms: int
    configuration: Configuration
    configuration_revision: int
    rows: dict[Key, tuple[Any, ...]]
    leases: LeaseTable
    dedup: DedupTable
    history: History

    def __init__(
        self,
        parameters: tuple[int, int, int],
        revision: int,
        log_time_ms: int,
        configuration: Configuration,
        configuration_revision: int,
        rows: dict[Key, tuple[Any, ...]],
        leases: LeaseTable,
        dedup: DedupTable,
        history: History,
    ) -> None:
        self.parameters = parameters
        self.revision = revision
        self.log_time_ms = log_time_ms
        self.configuration = configuration
        self.configuration_revision = configuration_revision
        self.rows = rows
        self.leases = leases
        self.dedup = dedup
        self.history = history


def _flat_rows(rows: Iterable[tuple[Any, ...]]) -> list[Any]:
    flat = list(chain.from_iterable(rows))
    keys = flat[0::ROW_FIELDS]
    if tuple in set(map(type, keys)):  # str and bytes keys travel as they are: no call per key
        flat[0::ROW_FIELDS] = [key_to_wire(key) for key in keys]
    return flat


ROWS_PER_PIECE = 512  # 4 MB of 8 KB values, 80 KB of small ones: a few ms of packing at most
EVENTS_PER_PIECE = 512


class StateImage(Frozen):
    """A machine's state as of one revision, captured cheaply and packed later, anywhere.

    Packing a large state takes long (180 MB of 8 KB values and their history: about a
    second here), and a node that packs on its event loop sends no heartbeats meanwhile: its
    followers elected another leader at every snapshot. Capturing is a copy of references
    (rows are immutable tuples; the tables' wire forms are fresh lists); :meth:`parts` packs
    in pieces of a few milliseconds each, so a thread packing them hands the GIL back between
    pieces. The pieces joined are exactly the one-call packing of the layout above.
    """

    __slots__ = ("dedup", "header", "history", "leases", "parameters", "rows")
    __match_args__ = ("parameters", "header", "rows", "leases", "dedup", "history")

    parameters: list[int]
    header: list[Any]
    rows: list[tuple[Any, ...]]
    leases: list[Any]
    dedup: list[Any]
    history: list[Any]  # [floor_revision, flat records]

    def __init__(
        self,
        parameters: list[int],
        header: list[Any],
        rows: list[tuple[Any, ...]],
        leases: list[Any],
        dedup: list[Any],
        history: list[Any],
    ) -> None:
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "leases", leases)
        object.__setattr__(self, "dedup", dedup)
        object.__setattr__(self, "history", history)

    def parts(self) -> list[bytes]:
        return list(self.iter_parts())

    def iter_parts(self) -> Iterator[bytes]:
        """:meth:`parts`, each piece packed only when asked for: a snapshot streamed to its
        file never holds more than one piece of the state packed."""
        rows = self.rows
        yield array_header(8)
        yield pack(SNAPSHOT_MAGIC)
        yield pack(SNAPSHOT_FORMAT)
        yield pack(self.parameters)
        yield pack(self.header)
        yield array_header(len(rows) * ROW_FIELDS)
        for start in range(0, len(rows), ROWS_PER_PIECE):
            yield pack_items(_flat_rows(rows[start : start + ROWS_PER_PIECE]))
        floor_revision, records = self.history
        yield pack(self.leases)
        yield pack(self.dedup)
        yield array_header(2)
        yield pack(floor_revision)
        yield array_header(len(records))
        step = EVENTS_PER_PIECE * HISTORY_FIELDS
        for start in range(0, len(records), step):
            yield pack_items(records[start : start + step])

    def row_pieces(self) -> range:
        """Where the rows are among :meth:`parts`: their sizes add up to the state's size,
        less the history, which is bounded on its own (``history_limit_bytes``)."""
        return range(_ROWS_FROM, _ROWS_FROM + -(-len(self.rows) // ROWS_PER_PIECE))

    def rows_bytes(self, parts: list[bytes]) -> int:
        """How many bytes of :meth:`parts` (what it returned) are the rows."""
        pieces = self.row_pieces()
        return sum(map(len, parts[pieces.start : pieces.stop]))


_ROWS_FROM: Final = 6  # the parts before the rows: see StateImage.parts


def array_header(length: int) -> bytes:
    """The msgpack array header for ``length`` items (what packing the whole list begins with)."""
    if length < 16:
        return bytes([0x90 | length])
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def pack_items(items: list[Any]) -> bytes:
    """The items of a list packed one after another, without the list's header."""
    return pack(items)[len(array_header(len(items))) :]


def digest_state(
    *, header: list[Any], rows: list[tuple[Any, ...]], leases: list[Any], dedup: list[Any]
) -> bytes:
    """blake2b of the canonical parts; ``rows`` must already be in canonical key order."""
    hasher = blake2b(digest_size=32, person=b"paxoskv-state")
    hasher.update(pack([DIGEST_FORMAT, header, leases, dedup]))
    hasher.update(pack(_flat_rows(rows)))
    return hasher.digest()


def restore_state(
    data: bytes | memoryview,
    history_limit_bytes: int = DEFAULT_LIMIT_BYTES,
    history_limit_events: int | None = None,
) -> RestoredState:
    """Read snapshot bytes back; MalformedSnapshot on any problem, and nothing else.

    The history's byte bound is not in the snapshot: the caller gives its own. Its event
    bound is (older releases read it), but a caller that gives its own has it instead.
    """
    try:
        raw = unpack(data)
    except Exception as error:  # msgpack raises many types; the boundary turns them into one
        raise MalformedSnapshot(f"snapshot bytes do not unpack: {error}") from None
    try:
        return _read(raw, history_limit_bytes, history_limit_events)
    except MalformedSnapshot:
        raise
    except Exception as error:
        raise MalformedSnapshot(f"snapshot is not a paxos-kv state snapshot: {error}") from None


def _read(raw: Any, history_limit_bytes: int, history_limit_events: int | None) -> RestoredState:
    if type(raw) is not list or len(raw) != 8 or raw[0] != SNAPSHOT_MAGIC:
        raise MalformedSnapshot("not a paxos-kv state snapshot")
    if raw[1] != SNAPSHOT_FORMAT:
        raise MalformedSnapshot(
            f"snapshot format {raw[1]!r}, this paxos-kv reads format {SNAPSHOT_FORMAT}; restore "
            "it with the release that wrote it, or rebuild this node from a peer"
        )
    _, _, parameters, header, flat_rows, leases_wire, dedup_wire, history_wire = raw
    limit_events, window_requests, idle_ms = (_positive(n) for n in parameters)
    limit_events = history_limit_events or limit_events
    revision, log_time_ms, configuration_wire, configuration_revision = header
    leases = LeaseTable.from_wire(leases_wire)
    return RestoredState(
        parameters=(limit_events, window_requests, idle_ms),
        revision=_natural(revision),
        log_time_ms=_natural(log_time_ms),
        configuration=Configuration.from_wire(configuration_wire),
        configuration_revision=_natural(configuration_revision),
        rows=_read_rows(flat_rows, leases),
        leases=leases,
        dedup=DedupTable.from_wire(dedup_wire, window_requests, idle_ms),
        history=History.from_wire(history_wire, limit_events, history_limit_bytes),
    )


def _read_rows(flat: object, leases: LeaseTable) -> dict[Key, tuple[Any, ...]]:
    """Rebuild the map from the flat rows, checking each column in one C-level pass.

    A per-row Python loop costs seconds for a million keys on a slow machine; slicing the
    columns out and testing them with ``map`` keeps restore near the cost of unpacking.
    """
    if type(flat) is not list or len(flat) % ROW_FIELDS:
        raise MalformedSnapshot("rows are not a flat array of six-field rows")
    stored = flat[0::ROW_FIELDS]
    keys = keys_from_wire(stored)
    as_stored = keys is stored
    for column in (2, 3, 4):
        # Counted, not gathered in a set: the same C-level pass without a set insert per row
        # (a quarter less, some 15M instructions of a 100,000-key restore).
        values = flat[column::ROW_FIELDS]
        if countOf(map(type, values), int) != len(values):
            raise MalformedSnapshot("a row has a revision or version that is not an int")
    lease_ids = flat[5::ROW_FIELDS]
    if as_stored:  # each row is six items of the flat array as they stand: group them in C
        rows = zip(*[iter(flat)] * ROW_FIELDS, strict=True)  # the length is a multiple of six
    else:
        columns = (flat[column::ROW_FIELDS] for column in range(1, ROW_FIELDS))
        rows = zip(keys, *columns, strict=True)
    data = dict(zip(keys, rows, strict=True))
    if len(data) != len(keys):
        raise MalformedSnapshot("a key appears twice")
    if lease_ids.count(None) == len(lease_ids):
        return data  # no key holds a lease (the usual map): nothing to attach
    leased = compress(zip(keys, lease_ids, strict=True), map(is_not, lease_ids, repeat(None)))
    for key, lease_id in leased:
        if type(lease_id) is not int or lease_id not in leases:
            raise MalformedSnapshot(f"key {key!r} names lease {lease_id!r}, which is missing")
        leases.attach(key, lease_id)
    return data


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector off while millions of containers are built.

    Snapshots, restores and digests of a large map allocate a list per row; every 700
    allocations the collector runs, and each time enough survive it walks the whole heap
    (seconds, for a million keys). Nothing built here forms a cycle, so reference counting
    frees it all; the collector is switched back on afterwards if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _natural(number: object) -> int:
    if type(number) is not int or number < 0:
        raise MalformedSnapshot(f"expected a non-negative int, found {number!r}")
    return number


def _positive(number: object) -> int:
    if type(number) is not int or number < 1:
        raise MalformedSnapshot(f"expected a positive int, found {number!r}")
    return number
