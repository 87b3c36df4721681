"""Preallocated segments: zeros written ahead of the records, and what a crash leaves in them.

The writer puts zeros past the records (a chunk at a time) so that an fdatasync writes over
them and commits no change of size; a crash therefore leaves the last segment with zeros
after its records, a record torn into those zeros, or (a write whose sectors landed out of
order) zeros inside a record with whole records after it. Recovery must read zeros as the
clean end, cut a torn record as before, and still refuse damage that a crash cannot explain.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

from paxoskv.errors import CorruptData
from paxoskv.storage import DiskStopped, FaultyDisk, MemoryDisk, OsDisk, Store
from paxoskv.storage.crc import crc32c
from paxoskv.storage.framing import FRAME_HEADER_SIZE, FrameProblem, check_frames, walk_frames
from paxoskv.storage.headers import HEADER_SIZE
from paxoskv.storage.writer import PREALLOCATE_CHUNK_BYTES

from .conftest import KEY, copy_disk, journal_names, numbered, recover_all

RECORDS = [b"", b"a", b"bb" * 7, b"ccc" * 11, bytes(300), b"last record"]


def _records_end(records: list[bytes], encrypted: bool = False) -> int:
    tag = 16 if encrypted else 0
    return HEADER_SIZE + sum(FRAME_HEADER_SIZE + len(r) + tag for r in records)


def _write_and_crash(key: bytes | None = None, segment_size: int = 64 << 20) -> MemoryDisk:
    """RECORDS in three synced batches, then a power cut with nothing unsynced to lose."""
    disk = MemoryDisk()
    store = Store.open(None, disk=disk, encryption_key=key, segment_size_bytes=segment_size)
    for batch in (RECORDS[:2], RECORDS[2:5], RECORDS[5:]):
        store.append(batch)
        store.sync()
    disk.crash()
    return disk


def _agreeing(original: bytes, at: int, tail: bytes) -> int:
    """Where ``tail`` written at ``at`` stops agreeing with ``original``."""
    agree = 0
    while agree < len(tail) and at + agree < len(original) and tail[agree] == original[at + agree]:
        agree += 1
    return at + agree


def _rewrite(disk: MemoryDisk, name: str, data: bytes) -> None:
    handle = disk.create(name)
    disk.append(handle, data)
    disk.fsync(handle)
    disk.close(handle)


def test_a_zero_frame_header_never_passes_its_crc() -> None:
    assert crc32c(bytes(4)) == 0x48674BC7  # crc32c of a zero length is not zero
    zeros = bytes(64)
    assert walk_frames(zeros, 0)[3] is FrameProblem.HEADER_CRC
    assert check_frames(zeros, 0) == (0, 0, FrameProblem.HEADER_CRC)


def test_a_segment_is_preallocated_and_a_crash_leaves_zeros_read_as_the_clean_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = _write_and_crash()
    (segment,) = journal_names(disk)
    end = _records_end(RECORDS)
    data = disk.read(segment)
    assert len(data) == PREALLOCATE_CHUNK_BYTES  # zeros ahead, written and synced
    assert not any(data[end:])
    with (
        caplog.at_level(logging.WARNING, logger="paxoskv.storage"),
        Store.open(None, disk=disk) as store,
    ):
        assert recover_all(store) == (None, numbered(RECORDS))
        assert store.append([b"next"]) == len(RECORDS) + 1
        store.sync()
    assert "torn tail" not in caplog.text
    assert not [name for name in disk.listdir() if ".broken" in name]
    assert disk.size(segment) == end  # cut back to its records at open: sealed, exact
    # The store went on in a segment of its own, named for the next index.
    assert journal_names(disk)[-1] == f"journal-{len(RECORDS) + 1:020d}.log"
    with Store.open(None, disk=disk) as store:
        assert recover_all(store) == (None, numbered([*RECORDS, b"next"]))


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_crash_at_every_byte_of_a_preallocated_segment(
    encrypted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The file as any crash may leave it: the records up to some byte, then either zeros
    (nothing more landed; a record torn into zeros) or non-zero garbage and then zeros."""
    key = KEY if encrypted else None
    template = _write_and_crash(key, segment_size=2048)  # preallocated to 2 kB: quicker
    (segment,) = journal_names(template)
    original = template.read(segment)
    assert len(original) == 2048
    end = _records_end(RECORDS, encrypted)
    garbage = bytes(range(1, 41))
    for cut_at in range(HEADER_SIZE, end + 1):
        for tail in (b"", garbage):
            # (zeros that the record has where it was cut complete it: b"" ends in a zero CRC)
            same = cut_at + len(original[cut_at:]) - len(original[cut_at:].lstrip(b"\0"))
            # (and garbage that happens to hold the record's own next bytes completes it too:
            # an encrypted record's last byte is random, 1 in 256 the garbage's first, b"\x01")
            landed = _agreeing(original, cut_at, tail) if tail else same
            ends = [_records_end(RECORDS[:n], encrypted) for n in range(1, len(RECORDS) + 1)]
            whole = sum(1 for record_end in ends if record_end <= landed)
            whole_end = _records_end(RECORDS[:whole], encrypted)
            stop = min(len(original), cut_at + len(tail))
            torn = original[:cut_at] + tail[: stop - cut_at] + bytes(len(original) - stop)
            disk = copy_disk(template)
            _rewrite(disk, segment, torn)
            with caplog.at_level(logging.WARNING, logger="paxoskv.storage"):
                caplog.clear()
                with Store.open(None, disk=disk, encryption_key=key) as store:
                    assert recover_all(store) == (None, numbered(RECORDS[:whole])), cut_at
                    assert store.append([b"new"]) == whole + 1
                    store.sync()
            cut_bytes = torn[whole_end:].rstrip(b"\0")
            assert ("torn tail" in caplog.text) == bool(cut_bytes), (cut_at, tail)
            broken = [n for n in disk.listdir() if ".broken" in n]
            assert [disk.read(n) for n in broken] == ([cut_bytes] if cut_bytes else [])
            if whole:
                assert disk.size(segment) == whole_end
            with Store.open(None, disk=disk, encryption_key=key) as store:
                assert recover_all(store) == (None, numbered([*RECORDS[:whole], b"new"]))


def test_sectors_that_never_landed_cut_the_journal_there_despite_whole_records_after() -> None:
    """Writes into preallocated zeros may reach the disk sector by sector in any order: a
    record with a sector of zeros inside, whole records after it, is a torn write."""
    disk = MemoryDisk()
    store = Store.open(None, disk=disk)
    store.append([b"durable"])
    store.sync()
    batch = [bytes([i]) * 700 for i in range(1, 5)]  # frames across 512-byte sectors
    store.append(batch)
    store.sync()
    disk.crash()
    (segment,) = journal_names(disk)
    data = bytearray(disk.read(segment))
    first_end = _records_end([b"durable"])
    hole = (first_end // 512 + 1) * 512  # a sector in the second record's payload
    data[hole : hole + 512] = bytes(512)
    assert check_frames(bytes(data), first_end)[0] == first_end
    _rewrite(disk, segment, bytes(data))
    with Store.open(None, disk=disk) as store:
        assert recover_all(store) == (None, [(1, b"durable")])
    (broken,) = [n for n in disk.listdir() if ".broken" in n]
    assert disk.read(broken) == bytes(data[first_end : _records_end([b"durable", *batch])])


@pytest.mark.parametrize("zeros", [0, 1500])
def test_a_flipped_byte_with_whole_records_after_it_is_still_refused(zeros: int) -> None:
    """Refused at open or, as before preallocation, at the replay; with a record of zeros
    among the frames (which makes open check every payload) as without."""
    disk = MemoryDisk()
    store = Store.open(None, disk=disk)
    records = [b"first", b"second", bytes(zeros), b"third"]
    store.append(records)
    store.sync()
    disk.crash()
    (segment,) = journal_names(disk)
    data = bytearray(disk.read(segment))
    data[_records_end(records[:1]) + FRAME_HEADER_SIZE + 3] ^= 0x01  # in the second record
    _rewrite(disk, segment, bytes(data))
    with pytest.raises(CorruptData), Store.open(None, disk=disk) as reopened:
        recover_all(reopened)
    assert not [name for name in disk.listdir() if ".broken" in name]


def test_untidy_power_cuts_into_preallocated_space_never_lose_a_synced_record() -> None:
    """The machine dies after a batch was written over preallocated zeros and before its
    fsync returned; the batch lands not at all, whole, as a prefix or sector by sector."""
    scattered = 0
    for seed in range(100):
        rng = random.Random(seed)
        disk = MemoryDisk()
        faulty = FaultyDisk(disk)
        store = Store.open(None, disk=faulty)
        synced: list[bytes] = []
        for _ in range(rng.randrange(1, 6)):
            batch = [rng.randbytes(rng.randrange(0, 900)) for _ in range(rng.randrange(1, 4))]
            store.append(batch)
            store.sync()
            synced.extend(batch)
        unsynced = [rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 30))]
        store.append(unsynced)
        faulty.stop_after(1)  # the write, not its fsync
        with pytest.raises(DiskStopped):
            store.sync()
        disk.crash(rng)
        with Store.open(None, disk=disk) as reopened:
            records = [record for _, record in recover_all(reopened)[1]]
        assert records[: len(synced)] == synced, seed
        assert records[len(synced) :] == unsynced[: len(records) - len(synced)], seed
        scattered += len(records) < len(synced) + len(unsynced) and any(
            ".broken" in name for name in disk.listdir()
        )
    assert scattered > 10


def test_a_restart_on_real_files_continues_with_the_next_index(tmp_path: Path) -> None:
    disk = OsDisk(tmp_path)
    store = Store.open(tmp_path, disk=disk)
    store.append([b"one", b"two"])
    store.sync()
    (segment,) = journal_names(disk)
    assert os.stat(tmp_path / segment).st_size == PREALLOCATE_CHUNK_BYTES
    disk.release()  # the process dies: the zeros stay
    with Store.open(tmp_path) as store:
        assert recover_all(store) == (None, [(1, b"one"), (2, b"two")])
        assert store.append([b"three"]) == 3
        store.sync()
    assert os.stat(tmp_path / segment).st_size == _records_end([b"one", b"two"])
    with Store.open(tmp_path) as store:
        assert recover_all(store) == (None, [(1, b"one"), (2, b"two"), (3, b"three")])
    # A clean close leaves every segment cut back to its records.
    for name in journal_names(OsDisk(tmp_path)):
        data = (tmp_path / name).read_bytes()
        end, count, problem = check_frames(data, HEADER_SIZE)
        assert (end, problem) == (len(data), None) and count > 0


def test_a_data_dir_of_the_previous_release_opens_and_continues(tmp_path: Path) -> None:
    """Before preallocation a segment ended at its last record; the ``os`` mode still
    writes it so (no syncs, so no zeros ahead)."""
    with Store.open(tmp_path, durability="os") as store:
        store.append([b"old-1", b"old-2"])
        store.sync()
    (segment,) = journal_names(OsDisk(tmp_path))
    assert os.stat(tmp_path / segment).st_size == _records_end([b"old-1", b"old-2"])
    with Store.open(tmp_path) as store:
        assert recover_all(store) == (None, [(1, b"old-1"), (2, b"old-2")])
        assert store.append([b"new"]) == 3
        store.sync()
        newest = journal_names(OsDisk(tmp_path))[-1]
        assert os.stat(tmp_path / newest).st_size == PREALLOCATE_CHUNK_BYTES
    with Store.open(tmp_path) as store:
        assert recover_all(store) == (None, [(1, b"old-1"), (2, b"old-2"), (3, b"new")])


def test_rotation_seals_segments_exact_and_preallocates_up_to_the_segment_size(
    tmp_path: Path,
) -> None:
    size = 4096
    disk = OsDisk(tmp_path)
    store = Store.open(tmp_path, disk=disk, segment_size_bytes=size, keep_journal_records=0)
    records = [b"%05d" % i * 20 for i in range(100)]  # 100-byte records: ~40 a segment
    for record in records:
        store.append([record])
        store.sync()
    names = journal_names(disk)
    assert len(names) >= 3
    for name in names[:-1]:
        data = (tmp_path / name).read_bytes()
        end, count, problem = check_frames(data, HEADER_SIZE)
        assert (end, problem) == (len(data), None) and count > 0  # sealed: no zeros left
    assert os.stat(tmp_path / names[-1]).st_size == size  # the chunk, capped at the segment
    store.write_snapshot(90, b"state")
    assert journal_names(disk)[0] != names[0]  # pruning still removes covered segments
    disk.release()
    with Store.open(tmp_path, segment_size_bytes=size) as store:
        snapshot, recovered = recover_all(store)
        assert snapshot == (90, b"state")
        assert recovered == list(enumerate(records[90:], start=91))
        assert store.append([b"more"]) == 101
