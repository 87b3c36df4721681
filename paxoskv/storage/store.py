"""The store: a node's durable log of opaque records plus snapshots of its state.

This is system prevalence as Prevayler has it - the state lives in RAM, every change is a
journal record written before it counts, and a snapshot now and then bounds the replay - with
the gaps of the usual implementations closed: every record and file is checksummed, a write
is durable only after fdatasync, a torn tail is cut (and kept) while any other damage refuses
to start, an I/O error stops the store for good, and the directory is locked.

Threads. ``append`` is called from the event loop and must not block on the disk; ``sync``
runs in one writer thread (see group_commit.py) and takes whatever was appended before it
started as one batch. A short lock guards the queue and the counters; a second lock keeps
syncs, pruning and closing one at a time.
"""

from __future__ import annotations

import bisect
import errno
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

from paxoskv.errors import ConfigurationError, StorageFailed, StoreClosed, ValueTooLarge
from paxoskv.storage.cipher import TAG_SIZE_BYTES, RecordCipher
from paxoskv.storage.disk import Disk, NoSyncDisk, OsDisk
from paxoskv.storage.framing import MAX_RECORD_BYTES, Record, record_size
from paxoskv.storage.headers import FileHeader, snapshot_name
from paxoskv.storage.journal import SegmentFile, read_segment_header, read_segment_records
from paxoskv.storage.memory_disk import MemoryDisk
from paxoskv.storage.recovery import Recovered, recover, replay
from paxoskv.storage.snapshots import (
    SnapshotStream,
    iter_snapshot_blob,
    read_snapshot,
    write_snapshot_file,
)
from paxoskv.storage.writer import Run, SegmentWriter

__all__ = [
    "DEFAULT_KEEP_JOURNAL_BYTES",
    "DEFAULT_KEEP_JOURNAL_RECORDS",
    "DEFAULT_KEEP_SNAPSHOTS",
    "DEFAULT_SEGMENT_SIZE_BYTES",
    "Durability",
    "Store",
]

Durability = Literal["durable", "os", "memory"]
DEFAULT_SEGMENT_SIZE_BYTES = 16 << 20
"""A restart scans the whole last segment (its end, any torn tail) and reads the whole segment
its replay starts in, most of it covered by the snapshot: at 64 MB those two reads were most of
a restart's I/O (0.065 s of open, and 50 ms more when the pages were not cached). 16 MB, as
PostgreSQL's WAL segments, bounds both to a quarter; a segment seals four times as often,
which cost no measurable throughput (sixteenth session, README)."""
DEFAULT_KEEP_SNAPSHOTS = 2
DEFAULT_KEEP_JOURNAL_RECORDS = 100_000
DEFAULT_KEEP_JOURNAL_BYTES = 64 << 20
"""The margin before the newest snapshot is bounded in bytes too: a record is a batch of
commands, 48 KB at 1 KB values, so 100,000 of them alone kept 4.8 GB of journal beside a state of
100 MB (nineteenth session: a data dir grew by 1.1 KB a write, nothing pruned)."""
MIN_SEGMENT_SIZE_BYTES = 256  # tiny segments are for tests; 16 MiB is the default


class Store:
    """A locked data dir: journal of opaque records, snapshots of an opaque blob.

    Open it with :meth:`open`. Records get gap-free indexes 1, 2, 3, ... across segments
    (a snapshot installed past the end of the journal moves the next index beyond it).
    """

    def __init__(
        self,
        disk: Disk,
        cipher: RecordCipher | None,
        recovered: Recovered,
        *,
        lock_id: int,
        segment_size_bytes: int,
        keep_snapshots: int,
        keep_journal_records: int,
        keep_journal_bytes: int,
    ) -> None:
        """Use :meth:`open`; this only wires the parts together."""
        self._disk = disk
        self._cipher = cipher
        self._lock_id = lock_id
        self._keep_snapshots = keep_snapshots
        self._keep_journal_records = keep_journal_records
        self._keep_journal_bytes = keep_journal_bytes
        self._writer = SegmentWriter(disk, cipher, segment_size_bytes, recovered.segments)
        self._writer.durable_end = recovered.last_segment_end
        self._recovered: Recovered | None = recovered
        self._snapshot_indexes = list(recovered.snapshot_indexes)
        self._snapshot_handed_over = False
        self._records_handed_over = False
        self._lock = threading.Lock()  # the queue, the counters, the state
        self._sync_lock = threading.Lock()  # one sync, prune or close at a time
        self._snapshot_lock = threading.Lock()  # one snapshot at a time; taken before _sync_lock
        self._pending: list[Run] = []
        self._last_index = recovered.last_index
        self._durable_index = recovered.last_index
        self._failure: StorageFailed | None = None
        self._closed = False
        self._limit = MAX_RECORD_BYTES - (TAG_SIZE_BYTES if cipher is not None else 0)

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None,
        *,
        durability: Durability = "durable",
        encryption_key: bytes | None = None,
        segment_size_bytes: int = DEFAULT_SEGMENT_SIZE_BYTES,
        keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
        keep_journal_records: int = DEFAULT_KEEP_JOURNAL_RECORDS,
        keep_journal_bytes: int = DEFAULT_KEEP_JOURNAL_BYTES,
        disk: Disk | None = None,
    ) -> Store:
        """Lock the data dir, recover what is there, and get ready to append.

        ``durable`` syncs every batch (the default); ``os`` writes without syncing, which
        survives a crash of the process but not of the machine; ``memory`` keeps everything
        in RAM and ignores ``data_dir``. ``disk`` replaces the files under the store (the
        simulator passes one :class:`MemoryDisk` per node and re-opens on it after a crash).
        """
        _check_settings(
            durability, segment_size_bytes, keep_snapshots, keep_journal_records, keep_journal_bytes
        )
        base = disk if disk is not None else _default_disk(data_dir, durability)
        working: Disk = NoSyncDisk(base) if durability == "os" else base
        cipher = RecordCipher(encryption_key) if encryption_key is not None else None
        lock_id = working.lock()
        try:
            recovered = recover(working, cipher)
            store = cls(
                working,
                cipher,
                recovered,
                lock_id=lock_id,
                segment_size_bytes=segment_size_bytes,
                keep_snapshots=keep_snapshots,
                keep_journal_records=keep_journal_records,
                keep_journal_bytes=keep_journal_bytes,
            )
            store._prune()
        except OSError as error:
            working.unlock(lock_id)
            raise StorageFailed(_failed_path(error, working.location), error) from error
        except BaseException:
            working.unlock(lock_id)
            raise
        return store

    # --- what open found ---------------------------------------------------------------

    def recovered_snapshot(self) -> tuple[int, bytes] | None:
        """(covered index, blob) of the snapshot recovery chose, or None.

        A snapshot of up to 64 MB comes as open read and checked it (no second read); a
        bigger one was checked without being kept and is read again here, in one go. For a
        big state prefer :meth:`recovered_snapshot_reader`, which never holds the blob and the
        objects made from it at the same time.
        """
        chosen, chunks = self._chosen_snapshot()
        if chosen is None:
            return None
        covered, header = chosen
        if chunks is not None:
            return covered, chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return covered, read_snapshot(self._disk, covered, header, self._cipher)

    def recovered_snapshot_reader(self) -> tuple[int, SnapshotStream] | None:
        """(covered index, a stream of the blob), for ``msgpack.Unpacker(stream)``; or None.

        The stream checks the CRC (and tag) again as it goes and raises
        :class:`~paxoskv.errors.CorruptData` at its end if the file changed since open.
        """
        chosen, kept = self._chosen_snapshot()
        if chosen is None:
            return None
        covered, header = chosen
        if kept is not None:
            return covered, SnapshotStream(iter(kept))
        chunks = iter_snapshot_blob(self._disk, covered, header, self._cipher)
        return covered, SnapshotStream(chunks)

    def _chosen_snapshot(self) -> tuple[tuple[int, FileHeader] | None, list[bytes] | None]:
        """The snapshot open chose and its blob if open kept it; the store lets go of both."""
        if self._snapshot_handed_over or self._recovered is None:
            raise RuntimeError("the recovered snapshot is handed over once; keep what you got")
        self._snapshot_handed_over = True
        chunks, self._recovered.snapshot_chunks = self._recovered.snapshot_chunks, None
        return self._recovered.snapshot, chunks

    def recovered_records(self) -> Iterator[tuple[int, bytes]]:
        """(index, record) for every journal record after the snapshot, read lazily; once only.

        Records are checked as they are read: a damaged record in a sealed segment raises
        :class:`~paxoskv.errors.CorruptData` before any record after it is yielded, and the
        caller must not start serving. Finish the replay before the first snapshot is
        written, since pruning may remove segments it has yet to read.
        """
        if self._records_handed_over or self._recovered is None:
            raise RuntimeError("recovered_records() can be iterated once; keep the iterator")
        self._records_handed_over = True
        recovered = self._recovered
        steps, recovered.replay_steps = recovered.replay_steps, []  # the replay owns the bytes
        return replay(self._disk, self._cipher, steps, recovered.replay_after)

    # --- the journal ---------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> int:
        """Queue records for the next sync and return the index of the last one.

        A record is bytes, or a tuple of bytes pieces: the record is their concatenation,
        written piece by piece (its pieces must not change until it is synced).

        Never touches the disk, so it is safe on an event loop; nothing is durable until a
        :meth:`sync` that started after this call has returned.
        """
        checked: list[Record]
        only = records[0] if len(records) == 1 else None
        if type(only) is bytes and len(only) <= self._limit:
            checked = [only]  # a replica's usual persist: a chosen marker, or one accept
        elif only is not None and _accept_pieces(only, self._limit):
            checked = [only]  # (an accept as the engine gives it: head and value)
        else:
            checked = _checked_records(records, self._cipher is not None)
        lock = self._lock  # acquire/release, not ``with``: see GroupCommitter.__init__
        lock.acquire()
        try:
            if self._closed or self._failure is not None:
                self._check_usable()  # raises
            if not checked:
                return self._last_index
            first = self._last_index + 1
            pending = self._pending
            if pending and pending[-1][0] + len(pending[-1][1]) == first:
                start, queued = pending[-1]
                pending[-1] = (start, [*queued, *checked])
            else:
                pending.append((first, checked))
            self._last_index += len(checked)
            return self._last_index
        finally:
            lock.release()

    def sync(self) -> int:
        """Write every queued record with one write and one fdatasync; return durable_index.

        On an I/O error the store stops: this and every later call raise
        :class:`~paxoskv.errors.StorageFailed`, and the failed fsync is never retried.
        """
        # (acquire/release, not ``with``: see GroupCommitter.__init__)
        sync_lock, lock = self._sync_lock, self._lock
        sync_lock.acquire()
        try:
            lock.acquire()
            try:
                if self._closed or self._failure is not None:
                    self._check_usable()  # raises
                runs, self._pending = self._pending, []
            finally:
                lock.release()
            if runs:
                self._write(runs)
            return self._durable_index
        finally:
            sync_lock.release()

    @property
    def durable_index(self) -> int:
        """Every record at or below this index is on disk (or in a snapshot)."""
        return self._durable_index

    @property
    def last_index(self) -> int:
        """The index of the last record appended, durable or not."""
        return self._last_index

    @property
    def first_index(self) -> int:
        """The lowest index :meth:`read_records` may still serve."""
        segments = self._writer.segments
        return segments[0].first_index if segments else self._durable_index + 1

    @property
    def snapshot_indexes(self) -> list[int]:
        """Covered indexes of the snapshots kept, oldest first."""
        return list(self._snapshot_indexes)

    @property
    def location(self) -> str:
        return self._disk.location

    def read_records(self, start_index: int, max_records: int) -> list[tuple[int, bytes]] | None:
        """Up to ``max_records`` durable records from ``start_index`` on, for a lagging replica.

        Returns None when the journal no longer holds ``start_index`` (it was pruned, or it
        lies in a stretch a snapshot covers): send that replica a snapshot instead.
        """
        with self._lock:
            self._check_usable()
        durable = self._durable_index
        if start_index > durable or max_records <= 0:
            return []
        segments = self._writer.segments
        position = bisect.bisect_right([s.first_index for s in segments], start_index) - 1
        if position < 0:
            return None
        try:
            found = self._read_from(
                segments[position:], start_index, min(durable, start_index + max_records - 1)
            )
        except FileNotFoundError:  # pruned while we read
            return None
        except OSError as error:  # the device fails under us: stop, as for a write
            raise self._fail("", error) from error
        return found or None

    def _read_from(
        self, segments: Sequence[SegmentFile], start_index: int, stop_index: int
    ) -> list[tuple[int, bytes]]:
        found: list[tuple[int, bytes]] = []
        durable_end = self._writer.durable_end
        next_index = start_index
        for segment in segments:
            if segment.first_index > next_index:
                break  # a stretch covered by a snapshot: the records stop here
            header = read_segment_header(self._disk, segment, self._cipher)
            if durable_end is not None and durable_end[0] == segment:
                end = durable_end[1]
            else:
                end = self._disk.size(segment.name)
            skip = max(0, next_index - segment.first_index)
            chunks = read_segment_records(self._disk, segment, header, self._cipher, end, skip)
            for index, payloads in chunks:
                for offset, record in enumerate(payloads):
                    if next_index <= index + offset <= stop_index:
                        found.append((index + offset, record))
                        next_index += 1
                if next_index > stop_index:
                    return found
        return found

    # --- snapshots -----------------------------------------------------------------------

    def write_snapshot(self, covered_index: int, blob: bytes | Iterable[bytes]) -> None:
        """Durably store ``blob`` as the state after record ``covered_index``, then prune.

        ``blob`` may come in pieces (written as their concatenation), from a list or from a
        generator that packs each as it is asked for: a large snapshot is then never copied
        whole into one buffer, nor held whole at all (``snapshots.write_snapshot_file``).

        ``covered_index`` may lie beyond the journal (a snapshot installed from a peer): the
        next record appended then gets ``covered_index + 1``.

        In ``os`` mode too the file is synced as it is written and leaves the OS's cache
        (``snapshots.write_snapshot_file``): no write waits on it, and left to the kernel, a
        whole state of dirty pages a snapshot piled up in new memory. At 8 KB values, ``os``
        mode wrote at 416-575 µs of CPU a write, twice ``durable`` (202-210), and 3,900-4,300
        writes/s against its 7,300; with this, 246-294 µs and 6,200-7,000 writes/s.
        """
        # (Its journal still syncs nothing: that is what the mode is.)
        disk = self._disk.inner if isinstance(self._disk, NoSyncDisk) else self._disk
        with self._snapshot_lock:
            with self._lock:
                self._check_usable()
                newest = self._snapshot_indexes[-1] if self._snapshot_indexes else 0
            if covered_index < newest:
                raise ValueError(
                    f"a snapshot must cover at least index {newest}, the newest one kept; "
                    f"got {covered_index}"
                )
            try:
                write_snapshot_file(disk, covered_index, blob, self._cipher)
            except OSError as error:
                raise self._fail(snapshot_name(covered_index), error) from error
            with self._lock:
                if covered_index not in self._snapshot_indexes:
                    self._snapshot_indexes.append(covered_index)
                self._last_index = max(self._last_index, covered_index)
                self._durable_index = max(self._durable_index, covered_index)
            with self._sync_lock:
                try:
                    self._prune()
                except OSError as error:
                    raise self._fail("", error) from error

    def _prune(self) -> None:
        """Retention: keep the newest ``keep_snapshots`` snapshots, and every segment holding
        a record after the oldest of them; of the segments before, the newest whose last index
        is within ``keep_journal_records`` of the newest snapshot, as long as they add up to no
        more than ``keep_journal_bytes`` (a segment's last index is taken as the next one's
        first less one, which after a snapshot installed past the journal's end overstates it:
        the byte bound still holds). The first rule is what lets a damaged newest snapshot fall
        back to the one before it; the second keeps records for replicas that lag a little,
        bounded both ways since a record may be one command or hundreds.
        """
        indexes = self._snapshot_indexes
        dropped = indexes[: max(0, len(indexes) - self._keep_snapshots)]
        kept = indexes[len(dropped) :]
        if not kept:
            return
        segments = self._writer.segments
        covered = 0  # segments[:covered] hold only records the oldest snapshot kept covers
        while covered + 1 < len(segments) and segments[covered + 1].first_index - 1 <= kept[0]:
            covered += 1
        margin_floor = kept[-1] - self._keep_journal_records
        margin_bytes = 0
        removed = set()
        for position in range(covered - 1, -1, -1):
            last = segments[position + 1].first_index - 1
            if last > margin_floor:
                margin_bytes += self._disk.size(segments[position].name)
            if last <= margin_floor or margin_bytes > self._keep_journal_bytes:
                removed = {segment.name for segment in segments[: position + 1]}
                break
        for name in sorted(removed):
            self._disk.remove(name)
        self._writer.drop(removed)
        for covered in dropped:
            self._disk.remove(snapshot_name(covered))
        self._snapshot_indexes = kept
        if removed or dropped:
            self._disk.fsync_dir()

    # --- life cycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Sync what is queued, release the files and the lock. Safe to call twice."""
        with self._snapshot_lock, self._sync_lock:
            with self._lock:
                if self._closed:
                    return
                runs = self._pending if self._failure is None else []
                self._pending = []
            try:
                if runs:
                    self._write(runs)
            finally:
                with self._lock:
                    self._closed = True
                    # What open found and nobody took: a view of the last segment would
                    # otherwise keep that file mapped (and its space in use once pruned).
                    self._recovered = None
                self._release()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Store {self._disk.location} last={self._last_index} "
            f"durable={self._durable_index}{' failed' if self._failure else ''}>"
        )

    def _write(self, runs: list[Run]) -> None:
        try:
            self._writer.write(runs)
        except OSError as error:
            raise self._fail(self._writer.current_name, error) from error
        except BaseException as error:
            # Not an I/O error: an interrupt, MemoryError, or a Disk of the application's
            # raising something else. The writer may already count records that never reached
            # the file, and the next ones would get their indexes: the store fails as it does
            # on an I/O error, and the exception goes on up.
            cause = OSError(errno.EIO, f"the journal write was interrupted: {error!r}")
            self._fail(self._writer.current_name, cause)
            raise
        last_first, last_records = runs[-1]
        last = last_first + len(last_records) - 1
        lock = self._lock  # (acquire/release, not ``with``: see GroupCommitter.__init__)
        lock.acquire()
        try:
            if last > self._durable_index:
                self._durable_index = last
        finally:
            lock.release()

    def _fail(self, name: str, error: OSError) -> StorageFailed:
        """Enter the failed state for good; nothing queued will ever be reported durable."""
        path = self._disk.path_of(name) if name else _failed_path(error, self._disk.location)
        failure = StorageFailed(path, error)
        with self._lock:
            if self._failure is None:
                self._failure = failure
            self._pending = []
        return failure

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreClosed(f"the store on {self._disk.location} is closed")
        if self._failure is not None:
            raise StorageFailed(self._failure.path, self._failure.cause)

    def _release(self) -> None:
        try:
            # A store closed in good order leaves its segment cut back to its last record, as
            # a release before preallocation wrote it (and can read it).
            self._writer.close(trim=self._failure is None)
        except OSError:
            pass  # the data that matters was synced or reported lost already
        finally:
            self._disk.unlock(self._lock_id)


def _accept_pieces(record: Record, limit: int) -> bool:
    """Whether ``record`` is a (head, value) pair of bytes within ``limit``: how the engine
    persists an accept, on every write, told apart here without a loop."""
    return (
        type(record) is tuple
        and len(record) == 2
        and type(record[0]) is bytes
        and type(record[1]) is bytes
        and len(record[0]) + len(record[1]) <= limit
    )


def _checked_records(records: Sequence[Record], encrypted: bool) -> list[Record]:
    """The records as a list, or a TypeError / ValueTooLarge for the first bad one.

    The common case (all bytes, none huge) is checked with C-level ``map`` calls: this runs on
    the event loop for every record. Types are checked at run time despite the annotation,
    because a str slipping into a journal would fail only at replay.
    """
    limit = MAX_RECORD_BYTES - (TAG_SIZE_BYTES if encrypted else 0)
    if len(records) == 1:  # a replica's usual persist: one accept, or one chosen marker
        record = records[0]
        if type(record) is bytes and len(record) <= limit:
            return [record]
    elif records and set(map(type, records)) == {bytes} and max(map(len, records)) <= limit:
        return list(records)
    return [_checked_record(record, encrypted) for record in records]


def _checked_record(given: object, encrypted: bool) -> Record:
    record: Record
    if type(given) is tuple:  # pieces: an accept's head and the slot's value
        if set(map(type, given)) <= {bytes}:
            record = given
        else:
            record = tuple(_as_bytes(piece, "a piece of a record") for piece in given)
    else:
        record = _as_bytes(given, "a record")
    limit = MAX_RECORD_BYTES - (TAG_SIZE_BYTES if encrypted else 0)
    size = record_size(record)
    if size > limit:
        raise ValueTooLarge(size, limit, "journal record")
    return record


def _as_bytes(given: object, what: str) -> bytes:
    if isinstance(given, bytes):
        return given
    if isinstance(given, (bytearray, memoryview)):
        return bytes(given)  # a copy: the caller may change its buffer before the sync
    raise TypeError(f"{what} is bytes, not {type(given).__name__}")


def _default_disk(data_dir: str | Path | None, durability: Durability) -> Disk:
    if durability == "memory":
        return MemoryDisk()
    if data_dir is None:
        raise ConfigurationError(
            f"durability {durability!r} needs a data dir; pass one, or use durability='memory'"
        )
    return OsDisk(data_dir)


def _check_settings(
    durability: str,
    segment_size_bytes: int,
    keep_snapshots: int,
    keep_journal_records: int,
    keep_journal_bytes: int,
) -> None:
    if durability not in get_args(Durability):
        raise ConfigurationError(
            f"durability must be one of {', '.join(get_args(Durability))}; got {durability!r}"
        )
    if segment_size_bytes < MIN_SEGMENT_SIZE_BYTES:
        raise ConfigurationError(
            f"segment_size_bytes must be at least {MIN_SEGMENT_SIZE_BYTES}; "
            f"got {segment_size_bytes}"
        )
    if keep_snapshots < 1:
        raise ConfigurationError(f"keep_snapshots must be at least 1; got {keep_snapshots}")
    if keep_journal_records < 0:
        raise ConfigurationError(
            f"keep_journal_records must be 0 or more; got {keep_journal_records}"
        )
    if keep_journal_bytes < 0:
        raise ConfigurationError(f"keep_journal_bytes must be 0 or more; got {keep_journal_bytes}")


def _failed_path(error: OSError, location: str) -> str:
    """The file an OSError names, else the data dir (a read-only segment named the dir)."""
    return str(error.filename) if error.filename else location
