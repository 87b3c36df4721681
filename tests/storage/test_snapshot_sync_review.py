"""Review of 2cc0287 (a snapshot synced every 8 MiB as it is written): what it leaves out.

``_in_writes`` writes a piece of WHOLE_PIECE_BYTES or more as it is, and the sync comes after
a write, so a big piece is written whole before any sync. An encrypted snapshot is one sealed
piece (the whole state): it is synced at the end as before, plus one more fdatasync of
nothing. A state of big values packs ROWS_PER_PIECE (512) rows a piece, 32 MB at 64 KB
values: synced every 32 MB, not 8. Both behave as before the commit (no regression): the
journal still waits behind a whole encrypted state's dirty pages, which the commit meant to end.
"""

from __future__ import annotations

import pytest

from paxoskv.storage.cipher import RecordCipher
from paxoskv.storage.snapshots import SYNC_EVERY_BYTES, WRITE_BYTES, write_snapshot_file
from tests.storage.test_snapshot_sync import SyncLog, _read


def test_an_encrypted_snapshot_is_synced_every_few_megabytes_too() -> None:
    disk = SyncLog()
    pieces = [bytes([n]) * (512 << 10) for n in range(40)]  # 20 MiB
    write_snapshot_file(disk, 9, pieces, RecordCipher(bytes(range(32))))
    assert max(disk.steps()) <= SYNC_EVERY_BYTES + WRITE_BYTES, disk.steps()


def test_a_state_of_big_values_is_synced_every_few_megabytes_too() -> None:
    disk = SyncLog()
    pieces = [bytes([n]) * (32 << 20) for n in range(2)]  # two pieces of 512 rows of 64 KB
    write_snapshot_file(disk, 9, pieces, None)
    assert max(disk.steps()) <= SYNC_EVERY_BYTES + WRITE_BYTES, disk.steps()
    assert _read(disk, 9) == b"".join(pieces)


def test_an_encrypted_snapshot_is_still_synced_whole_before_its_rename() -> None:
    disk = SyncLog()
    cipher = RecordCipher(bytes(range(32)))
    pieces = [bytes([n]) * (512 << 10) for n in range(40)]
    write_snapshot_file(disk, 9, pieces, cipher)
    assert disk.renamed_after_syncs == [len(disk.synced_at)]


def test_a_failed_fsync_on_the_way_stops_the_store_once_and_keeps_the_old_state() -> None:
    import errno

    from paxoskv.errors import StorageFailed
    from paxoskv.storage import FaultyDisk, MemoryDisk, Store

    disk = MemoryDisk()
    faulty = FaultyDisk(disk)
    store = Store.open(None, disk=faulty)
    store.append([b"one", b"two"])
    store.sync()
    before = faulty.calls.get("fsync", 0)
    faulty.fail("fsync", errno=errno.EIO)  # the first one, 8 MiB into the snapshot
    with pytest.raises(StorageFailed, match="snapshot-"):
        store.write_snapshot(2, [bytes([n]) * (1 << 20) for n in range(20)])
    assert faulty.calls.get("fsync", 0) == before + 1  # not retried, no sync at the end
    with pytest.raises(StorageFailed):
        store.write_snapshot(2, b"again")
    assert faulty.calls.get("fsync", 0) == before + 1
    store.close()
    disk.crash()
    with Store.open(None, disk=disk) as reopened:
        assert reopened.last_index == 2
        assert not [name for name in disk.listdir() if name.startswith("snapshot-")]
