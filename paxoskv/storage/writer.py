"""The append side of the journal: frames batches of records into segments.

Group commit lives here at the bottom: a batch, however many records, becomes one ``append``
and one ``fsync`` of the current segment. When a batch crosses into a new segment, the old one
is synced - its data, and its name if that is new too - before the next one is created, so
that a crash can only ever tear or lose the last segment; that is what lets recovery treat
damage or a hole anywhere else as corruption. A new segment's name becomes durable with one
directory sync after its first batch.

Segments are preallocated: zeros are written ahead of the records a chunk at a time
(:data:`PREALLOCATE_CHUNK_BYTES`, up to the segment size), by the batch that first needs
them and within its one fsync, so the fdatasync of every other batch writes over zeros and
commits no change of the file's size or blocks (disk.py, OsDisk, has the figures). Recovery
takes an all-zero remainder as the clean end (journal.py). A segment is cut back to its last
record when it is sealed, when the store is closed in good order, and by recovery when a
store opens, so only the last segment ever ends in zeros (after a crash), and files written
before preallocation read the same. The ``os`` mode, which
never syncs, does not preallocate.

The writer never appends to a file it did not create: a store opened after a crash starts a
new segment. Recovery is simpler for it, and so is the nonce rule of encryption (cipher.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from paxoskv.storage.cipher import MAX_COUNTER, SALT_SIZE_BYTES, TAG_SIZE_BYTES, RecordCipher
from paxoskv.storage.disk import Disk, NoSyncDisk, folio_ceil, folio_floor
from paxoskv.storage.framing import (
    FRAME_HEADER_SIZE,
    Record,
    frame_header,
    frame_records,
    record_bytes,
    record_size,
)
from paxoskv.storage.headers import (
    FLAG_ENCRYPTED,
    HEADER_SIZE,
    SEGMENT_MAGIC,
    FileHeader,
    segment_name,
)
from paxoskv.storage.journal import SegmentFile

__all__ = ["PREALLOCATE_CHUNK_BYTES", "SegmentWriter"]

PREALLOCATE_CHUNK_BYTES = 1 << 20
"""Zeros are written ahead of the records this much at a time (at most up to the segment
size): one batch in a chunk's worth pays for writing them and committing the new size."""

DROP_CACHED_EVERY_BYTES = 1 << 20
"""Synced records are let go from the OS's cache when this much more was written: at most one
``posix_fadvise`` a MiB, and a few MiB of the journal cached (see
:meth:`SegmentWriter._drop_synced`)."""

Run = tuple[int, Sequence[Record]]  # (index of the first record, records with gap-free indexes)


class SegmentWriter:
    """Owns the segment being written; used by one thread at a time (the store's sync lock)."""

    def __init__(
        self,
        disk: Disk,
        cipher: RecordCipher | None,
        segment_size_bytes: int,
        segments: list[SegmentFile],
    ) -> None:
        self._disk = disk
        self._cipher = cipher
        self._segment_size_bytes = segment_size_bytes
        # Swapped whole, never changed in place, so a reader thread may take it at any time.
        self.segments: tuple[SegmentFile, ...] = tuple(segments)
        self.current_name = ""  # the file being worked on, for error messages
        self.durable_end: tuple[SegmentFile, int] | None = None
        self._segment: SegmentFile | None = None
        self._handle: int | None = None
        self._salt = bytes(SALT_SIZE_BYTES)
        self._next_index = 0
        self._size_bytes = 0
        self._count = 0
        self._name_durable = True
        # ``os`` mode's disk syncs nothing: its fsync need not be called at all.
        self._fsyncs = not isinstance(disk, NoSyncDisk)
        self._preallocates = self._fsyncs  # (zeros ahead save fsyncs work; with none, waste)
        self._allocated = 0  # the current segment's size, zeros past _size_bytes included
        self._dropped = 0  # the current segment's bytes before this are out of the OS's cache
        self._next_drop = DROP_CACHED_EVERY_BYTES  # the size at which the next drop comes

    def write(self, runs: Sequence[Run]) -> None:
        """Write and sync every run; raises OSError, after which the writer is unusable.

        The usual batch -- one run that follows on in the open segment and fits it, not
        encrypted -- is framed and flushed right here: a replica syncs once or twice per
        write, and each call left out of this path is a share of every write's cost. Frames
        go to the disk as parts (headers and records as they came), never joined: a join
        copied every record, a whole slot of values each time, once more in user space.
        """
        if len(runs) == 1 and self._cipher is None and self._handle is not None:
            first_index, records = runs[0]
            count = len(records)
            if (
                count
                and first_index == self._next_index
                and self._count + count <= MAX_COUNTER
                and self._segment is not None
            ):
                room = self._segment_size_bytes - self._size_bytes
                parts: list[bytes]
                if count == 1:  # one frame: no loop
                    record = records[0]
                    if isinstance(record, tuple):
                        parts = [frame_header(record), *record]
                    else:
                        parts = [frame_header(record), record]
                    size = FRAME_HEADER_SIZE + record_size(record)
                    taken = 1
                else:
                    parts = []
                    taken, size = frame_records(records, 0, count, room, parts)
                if taken == count and size <= room:
                    self._size_bytes += size
                    self._next_index += count
                    self._count += count
                    segment = self._segment
                    self.current_name = segment.name
                    disk = self._disk
                    disk.append_parts(self._handle, parts)
                    if self._size_bytes > self._allocated and self._preallocates:
                        self._preallocate()
                    if self._fsyncs:
                        disk.fsync(self._handle)
                    self.durable_end = (segment, self._size_bytes)
                    if self._size_bytes >= self._next_drop and self._fsyncs:
                        self._drop_synced()
                    if not self._name_durable:
                        self._make_name_durable()
                    return
        self._write_runs(runs)

    def _write_runs(self, runs: Sequence[Run]) -> None:
        parts: list[bytes] = []
        extra = TAG_SIZE_BYTES if self._cipher else 0
        for first_index, records in runs:
            position = 0
            while position < len(records):
                index = first_index + position
                if self._needs_new_segment(
                    index, FRAME_HEADER_SIZE + record_size(records[position]) + extra
                ):
                    self._seal(parts)
                    parts = [self._start_segment(index)]
                position = self._frame_many(records, position, parts)
        self._flush(parts)
        self._make_name_durable()

    def close(self, *, trim: bool = False) -> None:
        """Close the segment; with ``trim``, cut off its preallocated zeros first, durably."""
        if self._handle is not None:
            if trim and self._allocated > self._size_bytes:
                self._flush([], seal=True)
            if self._fsyncs:  # (synced: write() syncs before it returns, or it failed, and
                # then the hint only starts writing back what it finds dirty)
                self._drop_synced(to_end=True)
            handle, self._handle = self._handle, None
            self._disk.close(handle)

    def drop(self, removed: set[str]) -> None:
        """Forget segments that pruning removed."""
        self.segments = tuple(s for s in self.segments if s.name not in removed)

    def _needs_new_segment(self, index: int, frame_size: int) -> bool:
        if self._handle is None or index != self._next_index or self._count >= MAX_COUNTER:
            return True
        return self._count > 0 and self._size_bytes + frame_size > self._segment_size_bytes

    def _start_segment(self, first_index: int) -> bytes:
        segment = SegmentFile(first_index, segment_name(first_index))
        self.current_name = segment.name
        self._handle = self._disk.create(segment.name)
        self._name_durable = False
        self._segment = segment
        self.segments = (*(s for s in self.segments if s.name != segment.name), segment)
        self._salt = os.urandom(SALT_SIZE_BYTES) if self._cipher else bytes(SALT_SIZE_BYTES)
        header = self._header(first_index)
        self._next_index = first_index
        self._size_bytes = HEADER_SIZE
        self._allocated = 0
        self._dropped = 0
        self._next_drop = DROP_CACHED_EVERY_BYTES
        self._count = 0
        return header

    def _header(self, first_index: int) -> bytes:
        if self._cipher is None:
            return FileHeader(SEGMENT_MAGIC, 0, first_index, self._salt).pack()
        unsigned = FileHeader(SEGMENT_MAGIC, FLAG_ENCRYPTED, first_index, self._salt)
        key_check = self._cipher.key_check(self._salt, unsigned.signed_prefix())
        return FileHeader(SEGMENT_MAGIC, FLAG_ENCRYPTED, first_index, self._salt, key_check).pack()

    def _frame_many(self, records: Sequence[Record], position: int, parts: list[bytes]) -> int:
        """Frame records from ``position`` on while they fit the segment (at least one) and
        return the position of the first record left over."""
        room = self._segment_size_bytes - self._size_bytes
        stop = position + min(len(records) - position, MAX_COUNTER - self._count)
        if self._cipher is None:
            taken, size = frame_records(records, position, stop, room, parts)
        else:
            sealed = self._seal_fitting(self._cipher, records[position:stop], room)
            taken, size = frame_records(sealed, 0, len(sealed), room, parts)
        self._size_bytes += size
        self._next_index += taken
        self._count += taken
        return position + taken

    def _seal_fitting(
        self, cipher: RecordCipher, records: Sequence[Record], room: int
    ) -> list[bytes]:
        """Encrypt the records whose frames will fit, each under its own nonce (cipher.py)."""
        sealed: list[bytes] = []
        size = 0
        for record in records:
            size += FRAME_HEADER_SIZE + record_size(record) + TAG_SIZE_BYTES
            if size > room and sealed:
                break
            offset = len(sealed)
            sealed.append(
                cipher.seal(
                    self._salt,
                    self._count + offset,
                    self._next_index + offset,
                    record_bytes(record),
                )
            )
        return sealed

    def _seal(self, parts: list[bytes]) -> None:
        """Finish the current segment durably before another one is started: its records
        synced, and the zeros preallocated past them cut off."""
        if self._handle is None:
            return
        self._flush(parts, seal=True)
        self._make_name_durable()
        self.close()

    def _preallocate(self) -> None:
        """Write zeros past the records up to the next chunk boundary (the caller syncs)."""
        assert self._handle is not None
        end = self._size_bytes
        chunk = PREALLOCATE_CHUNK_BYTES
        self._allocated = max(end, min(-(-end // chunk) * chunk, self._segment_size_bytes))
        self._disk.extend(self._handle, self._allocated)

    def _make_name_durable(self) -> None:
        if not self._name_durable:
            self.current_name = ""
            self._disk.fsync_dir()
            self._name_durable = True

    def _flush(self, parts: list[bytes], *, seal: bool = False) -> None:
        if self._handle is None or self._segment is None:
            return
        cut = seal and self._allocated > self._size_bytes
        if not parts and not cut:
            return
        self.current_name = self._segment.name
        if parts:
            self._disk.append_parts(self._handle, parts)
        if cut:
            self._disk.truncate(self._handle, self._size_bytes)
            self._allocated = self._size_bytes
        elif self._size_bytes > self._allocated and self._preallocates and not seal:
            self._preallocate()
        if self._fsyncs:
            self._disk.fsync(self._handle)
        self.durable_end = (self._segment, self._size_bytes)
        if self._size_bytes >= self._next_drop and self._fsyncs:
            self._drop_synced()

    def _drop_synced(self, *, to_end: bool = False) -> None:
        """Let the OS drop the cached pages of the records synced since the last drop, whole
        folios of them (see :data:`~paxoskv.storage.disk.FOLIO_BYTES`), or all of them when
        the segment is done: the journal is rarely read again, at the next start or for a
        replica far behind (see :meth:`Disk.drop_cached`). Never the zeros ahead, which the
        next records overwrite, and, but at the end, never the folio still being filled:
        ranges do not overlap, and the newest pages are left alone."""
        assert self._handle is not None
        end = folio_ceil(self._size_bytes) if to_end else folio_floor(self._size_bytes)
        if end > self._dropped:
            self._disk.drop_cached(self._handle, self._dropped, end - self._dropped)
            self._dropped = end
        self._next_drop = self._size_bytes + DROP_CACHED_EVERY_BYTES
