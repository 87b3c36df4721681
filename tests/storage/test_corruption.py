"""Damage that is not a torn tail: every flipped byte before the last record is caught.

A flipped byte in a record that was durable must stop the store, never be cut away quietly
(that is how replicas diverge) and never be replayed as data. Only the last record may be
cut, because damage there cannot be told from a torn write. A damaged snapshot is set aside
and the one before it used; a missing segment is refused with its place named.
"""

from __future__ import annotations

import msgpack
import pytest

from paxoskv.errors import CorruptData, StorageError
from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage.framing import FRAME_HEADER_SIZE
from paxoskv.storage.headers import HEADER_SIZE, snapshot_name

from .conftest import KEY, copy_disk, flip, journal_names, numbered, recover_all, write_journal

RECORDS = [bytes([65 + i]) * (5 + 7 * i % 23) for i in range(14)]
SEGMENT_SIZE_BYTES = 256


def _template(encrypted: bool) -> MemoryDisk:
    disk = MemoryDisk()
    batches = [RECORDS[:3], RECORDS[3:4], RECORDS[4:11], RECORDS[11:]]
    key = KEY if encrypted else None
    write_journal(disk, batches, encryption_key=key, segment_size_bytes=SEGMENT_SIZE_BYTES)
    return disk


def _recover(disk: MemoryDisk, encrypted: bool) -> list[tuple[int, bytes]]:
    with Store.open(None, disk=disk, encryption_key=KEY if encrypted else None) as store:
        return recover_all(store)[1]


@pytest.mark.parametrize(("encrypted", "mask"), [(False, 0x01), (False, 0xFF), (True, 0x40)])
def test_every_flipped_byte_before_the_last_record_is_refused(encrypted: bool, mask: int) -> None:
    template = _template(encrypted)
    segments = journal_names(template)
    assert len(segments) >= 3, "the journal must span sealed segments and a last one"
    last_record_size = FRAME_HEADER_SIZE + len(RECORDS[-1]) + (16 if encrypted else 0)
    checked = 0
    for name in segments:
        size = template.size(name)
        limit = size - last_record_size if name == segments[-1] else size
        for offset in range(limit):
            disk = copy_disk(template)
            flip(disk, name, offset, mask)
            with pytest.raises(StorageError):
                _recover(disk, encrypted)
            checked += 1
    assert checked > 500


def test_a_flipped_byte_in_the_last_record_cuts_it_or_refuses() -> None:
    template = _template(encrypted=False)
    last = journal_names(template)[-1]
    size = template.size(last)
    for offset in range(size - FRAME_HEADER_SIZE - len(RECORDS[-1]), size):
        disk = copy_disk(template)
        flip(disk, last, offset)
        try:
            recovered = _recover(disk, encrypted=False)
        except CorruptData:
            continue
        assert recovered == numbered(RECORDS[:-1]), offset


def test_a_missing_segment_in_the_middle_is_refused_with_its_place_named() -> None:
    disk = _template(encrypted=False)
    first, middle, *_ = journal_names(disk)
    disk.remove(middle)
    with pytest.raises(CorruptData) as caught:
        _recover(disk, encrypted=False)
    message = str(caught.value)
    assert first in message and "missing" in message
    assert "from a peer" in message  # it says how to recover


def test_a_missing_first_segment_is_refused_at_open() -> None:
    disk = _template(encrypted=False)
    disk.remove(journal_names(disk)[0])
    with pytest.raises(CorruptData, match="records 1 to"):
        Store.open(None, disk=disk)


def _snapshotted_store() -> MemoryDisk:
    """Records 1-12; snapshots at 5 and 10 whose blobs hold the records they cover."""
    disk = MemoryDisk()
    with Store.open(None, disk=disk) as store:
        for index, record in enumerate(RECORDS[:12], start=1):
            store.append([record])
            store.sync()
            if index in (5, 10):
                store.write_snapshot(index, msgpack.packb(RECORDS[:index]))
    return disk


def _state(disk: MemoryDisk) -> list[bytes]:
    with Store.open(None, disk=disk) as store:
        snapshot, records = recover_all(store)
    state = msgpack.unpackb(snapshot[1]) if snapshot else []
    assert [index for index, _ in records] == list(
        range(len(state) + 1, len(state) + 1 + len(records))
    )
    return state + [record for _, record in records]


def test_every_flipped_byte_of_the_newest_snapshot_falls_back_to_the_one_before() -> None:
    template = _snapshotted_store()
    name = snapshot_name(10)
    for offset in range(template.size(name)):
        disk = copy_disk(template)
        flip(disk, name, offset)
        with Store.open(None, disk=disk) as store:
            snapshot = store.recovered_snapshot()
            assert snapshot is not None and snapshot[0] == 5, offset
        assert _state(disk) == RECORDS[:12]
        assert name + ".broken" in disk.listdir()


def test_two_bad_snapshots_fall_back_to_the_journal_from_the_start() -> None:
    disk = _snapshotted_store()
    flip(disk, snapshot_name(10), 70)
    flip(disk, snapshot_name(5), 70)
    assert _state(disk) == RECORDS[:12]


def test_a_cut_short_snapshot_falls_back() -> None:
    disk = _snapshotted_store()
    name = snapshot_name(10)
    handle = disk.open_append(name)
    disk.truncate(handle, disk.size(name) - 1)
    disk.close(handle)
    assert _state(disk) == RECORDS[:12]


def test_the_error_names_the_file_and_the_offset_of_the_bad_record() -> None:
    disk = _template(encrypted=False)
    first = journal_names(disk)[0]
    third_record = HEADER_SIZE + sum(FRAME_HEADER_SIZE + len(r) for r in RECORDS[:2])
    flip(disk, first, third_record + FRAME_HEADER_SIZE)  # the first payload byte of record 3
    with pytest.raises(CorruptData) as caught:
        _recover(disk, encrypted=False)
    assert caught.value.path.endswith(first) and caught.value.offset == third_record
    assert f"{first} at byte {third_record}" in str(caught.value)
    assert "catch up from a peer" in str(caught.value)
