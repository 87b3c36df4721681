"""What the engine writes to the journal and into snapshots, and how it reads them back.

Persisted state (etcd's ``HardState``) is the acceptor's promise and accepted values, plus
the chosen values this node has learned; everything else (who leads, what is in flight) is
volatile and rebuilt after a restart. Journal records are tiny msgpack lists with a kind tag:

- ``[PROMISED, round, node_id]``
- ``[ACCEPTED, slot, round, node_id, value]``
- ``[CHOSEN, first_slot, last_slot]``: the values accepted for these slots are chosen
  (written without waiting for a sync: losing it only means learning it again)
- ``[LEARNED, slot, value]``: a chosen value learned from a peer rather than accepted here

Storage sees only bytes; it is here that they mean something. A record reaches storage as
its bytes, or as pieces of them (:data:`JournalRecord`) that storage writes one after the
other: an accept's record is a few bytes of header and then the slot's value, which is never
copied into a record of its own.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from typing import Any, Final, TypeAlias

import msgpack

from paxoskv.paxos.ballot import ZERO_BALLOT, Ballot
from paxoskv.paxos.messages import (
    NoFastForm,
    pack_body,
    pack_with_bytes,
    packed_ballot,
    packed_bin_header,
    packed_uint,
)
from paxoskv.state import Configuration
from paxoskv.state.frozen import Record
from paxoskv.state.snapshot import StateImage, array_header

PROMISED, ACCEPTED, CHOSEN, LEARNED = 1, 2, 3, 4
SNAPSHOT_VERSION = 1

LOCAL_LAYOUT: Final = 2
"""The first field of a local snapshot's head (see :class:`SnapshotImage`); the older layout
begins with an array instead, so the two are told apart by their first byte."""

JournalRecord: TypeAlias = bytes | tuple[bytes, ...]
"""One journal record: its bytes, or pieces whose concatenation is its bytes (what the
store's ``append`` takes)."""


# Records are made on every slot: ``pack_body`` reuses a packer, where ``msgpack.packb`` would
# build a new one per call (the same bytes: bin type for bytes either way).


def promised_record(ballot: Ballot) -> bytes:
    return pack_body([PROMISED, ballot.round, ballot.node_id])


def accepted_record(slot: int, ballot: Ballot, value: bytes) -> bytes:
    """The record of an accept, in one piece (:func:`accepted_record_parts` joined)."""
    parts = accepted_record_parts(slot, ballot, value)
    return parts if isinstance(parts, bytes) else b"".join(parts)


def accepted_record_parts(slot: int, ballot: Ballot, value: bytes) -> JournalRecord:
    """The record of an accept as (everything before the value, the value itself).

    The value is a whole slot (a batch of commands): joined into a record here, it was copied
    once more per node for nothing, since storage writes pieces as they are.
    """
    try:  # the packer's bytes written by hand, as for the messages of every write
        head = b"".join(
            [
                _ACCEPTED_HEAD,
                packed_uint(slot),
                packed_ballot(ballot)[1:],  # its round and node id, without the array header
                packed_bin_header(value),
            ]
        )
    except NoFastForm:
        return pack_with_bytes([ACCEPTED, slot, ballot.round, ballot.node_id], value)
    return (head, value)


def chosen_record(first_slot: int, last_slot: int) -> bytes:
    try:
        return b"".join([_CHOSEN_HEAD, packed_uint(first_slot), packed_uint(last_slot)])
    except NoFastForm:
        return pack_body([CHOSEN, first_slot, last_slot])


_ACCEPTED_HEAD: Final = bytes((0x95, ACCEPTED))
_CHOSEN_HEAD: Final = bytes((0x93, CHOSEN))


def learned_record(slot: int, value: bytes) -> bytes:
    return pack_body([LEARNED, slot, value])


class DurableState(Record):
    """Everything a restarted engine starts from."""

    __slots__ = (
        "accepted",
        "applied_slot",
        "chosen",
        "config_entries",
        "last_log_time_ms",
        "promised",
        "state_snapshot",
    )
    __match_args__ = (
        "promised",
        "accepted",
        "chosen",
        "applied_slot",
        "state_snapshot",
        "config_entries",
        "last_log_time_ms",
    )

    promised: Ballot
    accepted: dict[int, tuple[Ballot, bytes]]
    chosen: dict[int, bytes]
    applied_slot: int
    state_snapshot: bytes | memoryview | None
    config_entries: list[tuple[int, Configuration]]
    last_log_time_ms: int

    def __init__(
        self,
        promised: Ballot = ZERO_BALLOT,
        accepted: dict[int, tuple[Ballot, bytes]] | None = None,
        chosen: dict[int, bytes] | None = None,
        applied_slot: int = 0,
        state_snapshot: bytes | memoryview | None = None,
        config_entries: list[tuple[int, Configuration]] | None = None,
        last_log_time_ms: int = 0,
    ) -> None:
        self.promised = promised
        self.accepted = dict() if accepted is None else accepted
        self.chosen = dict() if chosen is None else chosen
        self.applied_slot = applied_slot
        self.state_snapshot = state_snapshot
        self.config_entries = list() if config_entries is None else config_entries
        self.last_log_time_ms = last_log_time_ms

    def replay(self, record: bytes) -> None:
        """Fold one journal record in. Storage has verified its checksum already."""
        kind, *rest = msgpack.unpackb(record, raw=False)
        if kind == PROMISED:
            self.promised = max(self.promised, Ballot(rest[0], rest[1]))
        elif kind == ACCEPTED:
            slot, round_, node_id, value = rest
            self.promised = max(self.promised, Ballot(round_, node_id))  # accepting promises
            if slot > self.applied_slot:
                self.accepted[slot] = (Ballot(round_, node_id), value)
        elif kind == CHOSEN:
            # A slot already chosen here keeps its value: the engine writes one record over a
            # run of slots, some learned (LEARNED) rather than accepted, and the value this
            # node accepted in such a slot may be an older leader's that lost (review,
            # twenty-ninth session: a restart took it, and diverged from its peers).
            for slot in range(max(rest[0], self.applied_slot + 1), rest[1] + 1):
                if slot in self.accepted and slot not in self.chosen:
                    self.chosen[slot] = self.accepted[slot][1]
        elif kind == LEARNED:
            if rest[0] > self.applied_slot:
                self.chosen[rest[0]] = rest[1]
        else:
            raise AssertionError(f"unknown journal record kind {kind!r}")


class SnapshotImage:
    """A snapshot taken at one slot: captured in the engine's step, packed when first asked.

    The runtime packs it on a worker thread (:meth:`local_pieces`, for the snapshot file), in
    pieces that each hold the GIL a few milliseconds, so the engine's step stays short and
    heartbeats go on. An image taken with ``keep`` (a peer asked for a snapshot lately) keeps
    its packed pieces once saved, to serve to peers catching up (:meth:`transfer_chunk`,
    slices of what :func:`decode_state_transfer` reads) until the engine lets them go
    (:meth:`release`). One taken without is streamed to its file a piece at a time and holds
    nothing packed after: kept, the pieces were a second copy of the whole state in memory
    (115 MB beside a state of 100,000 values of 1 KB), in new pages each snapshot. Packing
    may be asked first or twice, from any thread: two racing builds produce equal bytes, and
    either one is kept. The captured rows are let go once packed: they would keep every
    value overwritten since alive.

    Layouts: the transfer is ``[version, slot, state snapshot (bin), configs, log_time_ms]``;
    the local snapshot is a ``bin`` holding ``[LOCAL_LAYOUT, version, slot, configs,
    log_time_ms, promised, accepted, chosen]`` packed, then the state snapshot itself, to the
    end of the file: nothing before the state gives its length, which is known only once it
    is packed. (Older releases wrote ``[transfer (bin), promised, accepted, chosen]``, which
    :func:`decode_local_snapshot` still reads.)
    """

    def __init__(
        self,
        slot: int,
        state: StateImage,
        configs: list[tuple[int, Configuration]],
        log_time_ms: int,
        durable: DurableState,
        keep: bool = True,
    ) -> None:
        self.slot = slot
        self.keys = len(state.rows)
        self.keep = keep
        self.rows_bytes = 0  # what the state's rows came to, packed; known once packed
        self._state: StateImage | None = state
        self._configs = configs
        self._log_time_ms = log_time_ms
        self._durable = durable
        self._state_parts: list[bytes] | None = None
        self._released = False
        # The transfer's pieces and where each begins in it, for slices (built when first asked).
        self._pieces: list[bytes] | None = None
        self._starts: list[int] = []

    @property
    def servable(self) -> bool:
        """Whether the transfer can still be served (not let go by :meth:`release`)."""
        return not self._released

    def release(self) -> None:
        """Let the packed state go: the snapshot is on disk, and no peer is being sent it."""
        self._released = True
        self._state_parts = None
        self._state = None
        self._pieces = None
        self._starts = []

    def _transfer_parts(self) -> list[bytes]:
        state = self._packed_state()
        entries = [[start, *config.to_wire()] for start, config in self._configs]
        head = [array_header(5), _pack(SNAPSHOT_VERSION), _pack(self.slot)]
        tail = [_pack(entries), _pack(self._log_time_ms)]
        return [*head, bin_header(sum(map(len, state))), *state, *tail]

    def _packed_state(self) -> list[bytes]:
        """The state's packed pieces, packed now if they were not yet, and kept."""
        if self._released:
            raise RuntimeError(f"the snapshot at slot {self.slot} was released after saving")
        state = self._state_parts
        if state is None:
            image = self._state
            if image is None:  # another thread packed it meanwhile (parts are set first)
                state = self._state_parts
                assert state is not None
            else:
                state = image.parts()
                self.rows_bytes = image.rows_bytes(state)
                self._state_parts = state
                self._state = None  # its rows would keep every overwritten value alive
        return state

    def transfer(self) -> bytes:
        """What a peer installs, in one buffer (the engine sends it in slices instead)."""
        return b"".join(self._transfer_parts())

    def transfer_size(self) -> int:
        """The length of :meth:`transfer`."""
        self._index_pieces()
        return self._starts[-1]

    def transfer_chunk(self, offset: int, size: int) -> bytes:
        """``transfer()[offset : offset + size]``, cut from the pieces: the whole transfer is
        never joined into one more copy of the state."""
        pieces = self._index_pieces()
        starts = self._starts
        end = min(offset + size, starts[-1])
        if offset >= end:
            return b""
        first = bisect_right(starts, offset) - 1
        out: list[bytes] = []
        index = first
        while index < len(pieces) and starts[index] < end:
            piece, start = pieces[index], starts[index]
            out.append(piece[max(offset - start, 0) : end - start])
            index += 1
        return out[0] if len(out) == 1 else b"".join(out)

    def _index_pieces(self) -> list[bytes]:
        pieces = self._pieces
        if pieces is None:
            pieces = self._transfer_parts()
            starts = [0]
            for piece in pieces:
                starts.append(starts[-1] + len(piece))
            self._starts = starts
            self._pieces = pieces
        return pieces

    def local_pieces(self) -> Iterator[bytes]:
        """This node's own snapshot (what :func:`decode_local_snapshot` reads), in pieces.

        Without ``keep`` the state is packed a piece at a time as the pieces are taken, and
        the image is let go of (:meth:`release`) once the last is: the caller writes each
        before it asks for the next (``Store.write_snapshot``).
        """
        durable = self._durable
        entries = [[start, *config.to_wire()] for start, config in self._configs]
        accepted = [[s, b.round, b.node_id, v] for s, (b, v) in sorted(durable.accepted.items())]
        chosen = [[s, v] for s, v in sorted(durable.chosen.items())]
        promised = [durable.promised.round, durable.promised.node_id]
        head = [LOCAL_LAYOUT, SNAPSHOT_VERSION, self.slot, entries, self._log_time_ms]
        yield _pack(_pack([*head, promised, accepted, chosen]))
        image = self._state
        if self.keep or image is None or self._state_parts is not None:
            yield from self._packed_state()
            return
        rows = image.row_pieces()
        rows_bytes = 0
        for index, piece in enumerate(image.iter_parts()):
            if index in rows:
                rows_bytes += len(piece)
            yield piece
        self.rows_bytes = rows_bytes
        self.release()


def bin_header(length: int) -> bytes:
    """The msgpack header of a ``length``-byte binary (what packing such bytes begins with)."""
    if length < 1 << 8:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 1 << 16:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def decode_state_transfer(
    blob: bytes | memoryview,
) -> tuple[int, bytes, list[tuple[int, Configuration]], int]:
    version, slot, state_snapshot, entries, log_time_ms = msgpack.unpackb(blob, raw=False)
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {version}, expected {SNAPSHOT_VERSION}")
    configs = [
        (start, Configuration.from_wire([voters, learners])) for start, voters, learners in entries
    ]
    return slot, state_snapshot, configs, log_time_ms


def decode_local_snapshot(blob: bytes) -> DurableState:
    if blob[:1] in _BIN_HEADS:
        return _decode_local_layout(blob)
    transfer, promised, accepted, chosen = _local_fields(blob)
    slot, state_snapshot, configs, log_time_ms = decode_state_transfer(transfer)
    return DurableState(
        promised=Ballot(promised[0], promised[1]),
        accepted={s: (Ballot(r, n), v) for s, r, n, v in accepted},
        chosen={s: v for s, v in chosen},
        applied_slot=slot,
        state_snapshot=state_snapshot,
        config_entries=configs,
        last_log_time_ms=log_time_ms,
    )


_BIN_HEADS: Final = (b"\xc4", b"\xc5", b"\xc6")
_BIN_LENGTH_BYTES: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4}


def _decode_local_layout(blob: bytes) -> DurableState:
    """A local snapshot in :data:`LOCAL_LAYOUT`: the state is the rest of ``blob`` past the
    head, handed on as a view of it (never copied out)."""
    width = _BIN_LENGTH_BYTES[blob[0]]
    start = 1 + width
    end = start + int.from_bytes(blob[1:start], "big")
    if end > len(blob):
        raise ValueError("a local snapshot's head runs past its end")
    layout, version, slot, entries, log_time_ms, promised, accepted, chosen = msgpack.unpackb(
        memoryview(blob)[start:end], raw=False
    )
    if layout != LOCAL_LAYOUT or version != SNAPSHOT_VERSION:
        raise ValueError(
            f"local snapshot layout {layout!r} version {version!r}, expected {LOCAL_LAYOUT} "
            f"version {SNAPSHOT_VERSION}"
        )
    configs = [
        (first, Configuration.from_wire([voters, learners])) for first, voters, learners in entries
    ]
    return DurableState(
        promised=Ballot(promised[0], promised[1]),
        accepted={s: (Ballot(r, n), v) for s, r, n, v in accepted},
        chosen={s: v for s, v in chosen},
        applied_slot=slot,
        state_snapshot=memoryview(blob)[end:],
        config_entries=configs,
        last_log_time_ms=log_time_ms,
    )


def _local_fields(blob: bytes) -> tuple[bytes | memoryview, Any, Any, Any]:
    """The four fields of a local snapshot; the state transfer, a ``bin`` that holds nearly all
    of it, as a view of ``blob`` rather than a copy.

    Unpacked whole, the transfer of a 100,000-key state (14 MB) was copied out into new memory
    only to be unpacked again: some 10 ms of a restart. A big one (``bin 32``, as
    the older layout packed it) is cut out in place and the small fields after it
    unpacked alone; anything else is unpacked whole, as before.
    """
    if len(blob) > 6 and blob[0] == 0x94 and blob[1] == 0xC6:
        end = 6 + int.from_bytes(blob[2:6], "big")
        if end <= len(blob):
            rest = msgpack.Unpacker(raw=False)
            rest.feed(blob[end:])
            promised, accepted, chosen = rest.unpack(), rest.unpack(), rest.unpack()
            if rest.tell() != len(blob) - end:
                raise ValueError("extra data after a local snapshot")
            return memoryview(blob)[6:end], promised, accepted, chosen
    transfer, promised, accepted, chosen = msgpack.unpackb(blob, raw=False)
    return transfer, promised, accepted, chosen
