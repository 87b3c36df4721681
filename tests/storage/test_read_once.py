"""A store's open reads what recovery needs once: the snapshot and the last segment are
checked at open and handed over (or replayed) from the bytes that check read."""

from __future__ import annotations

import pytest

from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage import recovery as recovery_module
from tests.storage.conftest import numbered, recover_all

RECORDS = [f"record {i}".encode() * (i % 7 + 1) for i in range(1, 301)]
BLOB = bytes(range(256)) * 4_000  # about 1 MB of snapshot


class CountingDisk(MemoryDisk):
    """A MemoryDisk that notes the name of every file read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        self.reads.append(name)
        return super().read(name, offset, size)


def stored(snapshot_at: int | None) -> CountingDisk:
    """A synced data dir: RECORDS in one segment, and a snapshot covering ``snapshot_at``."""
    disk = CountingDisk()
    with Store.open(None, disk=disk) as store:
        store.append(RECORDS)
        store.sync()
        if snapshot_at is not None:
            store.write_snapshot(snapshot_at, BLOB)
    return disk


def test_the_snapshot_checked_at_open_is_handed_over_without_reading_it_again() -> None:
    disk = stored(snapshot_at=200)
    with Store.open(None, disk=disk) as store:
        disk.reads.clear()
        snapshot, records = recover_all(store)
    assert snapshot == (200, BLOB)
    assert records == numbered(RECORDS[200:], first=201)
    assert disk.reads == [], f"read again after open: {disk.reads}"


def test_a_snapshot_too_big_to_keep_is_read_again_and_still_correct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recovery_module, "KEEP_SNAPSHOT_BYTES", len(BLOB) - 1)
    disk = stored(snapshot_at=200)
    with Store.open(None, disk=disk) as store:
        disk.reads.clear()
        assert store.recovered_snapshot() == (200, BLOB)
    assert any(name.startswith("snapshot-") for name in disk.reads)


def test_a_kept_snapshot_streams_from_the_bytes_open_read() -> None:
    disk = stored(snapshot_at=200)
    with Store.open(None, disk=disk) as store:
        disk.reads.clear()
        found = store.recovered_snapshot_reader()
        assert found is not None
        covered, stream = found
        assert (covered, stream.read(-1)) == (200, BLOB)
    assert disk.reads == []


def test_the_last_segment_is_replayed_from_the_bytes_open_read() -> None:
    disk = stored(snapshot_at=None)
    with Store.open(None, disk=disk) as store:
        disk.reads.clear()
        snapshot, records = recover_all(store)
    assert snapshot is None
    assert records == numbered(RECORDS)
    assert disk.reads == [], f"read again after open: {disk.reads}"
