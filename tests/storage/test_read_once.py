"""A store's open reads what recovery needs once: the snapshot and the last segment are
checked at open and handed over (or replayed) from the bytes that check read (on real files,
the last segment through a memory map)."""

from __future__ import annotations

import errno
import mmap
from pathlib import Path

import pytest

from paxoskv.errors import CorruptData
from paxoskv.storage import MemoryDisk, OsDisk, Store
from paxoskv.storage import journal as journal_module
from paxoskv.storage import recovery as recovery_module
from paxoskv.storage.framing import FRAME_HEADER_SIZE
from paxoskv.storage.headers import HEADER_SIZE, snapshot_name
from tests.storage.conftest import KEY, copy_disk, flip, journal_names, numbered, recover_all

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


def segmented(snapshot_at: int, key: bytes | None = None) -> MemoryDisk:
    """RECORDS in segments of about 2 KB, and a snapshot covering ``snapshot_at``."""
    disk = MemoryDisk()
    with Store.open(None, disk=disk, segment_size_bytes=2048, encryption_key=key) as store:
        store.append(RECORDS)
        store.sync()
        store.write_snapshot(snapshot_at, BLOB)
    return disk


@pytest.mark.parametrize("chunk_bytes", [16, 64, 300, 8 << 20])  # below, near, above a frame
@pytest.mark.parametrize("snapshot_at", [1, 37, 150, 299, 300])
@pytest.mark.parametrize("key", [None, KEY])  # sealed records are opened by their index
def test_records_a_snapshot_covers_are_stepped_over_in_any_chunking(
    monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, snapshot_at: int, key: bytes | None
) -> None:
    monkeypatch.setattr(journal_module, "READ_CHUNK_BYTES", chunk_bytes)
    disk = segmented(snapshot_at, key)
    with Store.open(None, disk=disk, encryption_key=key) as store:
        assert recover_all(store)[1] == numbered(RECORDS[snapshot_at:], first=snapshot_at + 1)
        first = store.first_index
        for start in (first, first + 1, snapshot_at, 290):
            expected = numbered(RECORDS[start - 1 : start + 19], first=start)
            assert store.read_records(start, 20) == expected  # a lagging replica's catch-up


def test_a_covered_records_payload_is_not_read_but_its_header_is_checked() -> None:
    """Records a snapshot covers are not replayed: their payloads are not checked (nobody
    reads them), but the chain of headers that leads past them still is."""
    disk = segmented(snapshot_at=150)
    names = journal_names(disk)
    sealed = next(name for name in names if _holds(disk, name, 150) and name != names[-1])
    damaged = copy_disk(disk)
    flip(damaged, sealed, HEADER_SIZE + FRAME_HEADER_SIZE)  # the first record's payload
    with Store.open(None, disk=damaged) as store:
        assert recover_all(store)[1] == numbered(RECORDS[150:], first=151)
    damaged = copy_disk(disk)
    flip(damaged, sealed, HEADER_SIZE)  # the first record's length
    with Store.open(None, disk=damaged) as store, pytest.raises(CorruptData):
        recover_all(store)


def _holds(disk: MemoryDisk, name: str, index: int) -> bool:
    """Whether segment ``name`` starts at or before record ``index`` and ends after it."""
    first = int(name[8:28])
    later = [int(other[8:28]) for other in journal_names(disk) if int(other[8:28]) > first]
    return first < index and (not later or min(later) > index + 1)


def test_on_real_files_the_last_segment_is_viewed_through_a_memory_map(tmp_path: Path) -> None:
    """Open scans the last segment where it lies (a map of the page cache) rather than copy up
    to a segment's size into fresh memory; an empty file, which cannot be mapped, comes as bytes."""
    disk = OsDisk(tmp_path)
    handle = disk.create("file")
    disk.append(handle, b"0123456789" * 1000)
    disk.close(handle)
    view = disk.view("file")
    assert isinstance(view, mmap.mmap)
    assert view[:] == disk.read("file")
    assert view.find(b"90", 5) == 9
    disk.close(disk.create("empty"))
    assert disk.view("empty") == b""


def test_a_file_system_that_cannot_map_is_read_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> mmap.mmap:
        raise OSError(errno.ENODEV, "no mmap here")

    disk = OsDisk(tmp_path)
    handle = disk.create("file")
    disk.append(handle, b"abc")
    disk.close(handle)
    monkeypatch.setattr(mmap, "mmap", refused)
    assert disk.view("file") == b"abc"


@pytest.mark.parametrize("snapshot_at", [None, 1, 150, 300])
def test_on_real_files_a_torn_last_segment_replays_from_its_view(
    tmp_path: Path, snapshot_at: int | None
) -> None:
    """The replay parses the map open made, up to the end open found: the segment's
    preallocated zeros and a torn record after that end are never parsed, the records a
    snapshot covers are stepped over, and the store appends after the cut."""
    with Store.open(tmp_path) as store:
        store.append(RECORDS)
        store.sync()
        if snapshot_at is not None:
            store.write_snapshot(snapshot_at, BLOB)
        store.append([b"torn" * 500])
        store.sync()
    (segment,) = [p for p in tmp_path.iterdir() if p.suffix == ".log"]
    content = segment.stat().st_size  # (a close cuts the preallocated zeros: put some back)
    with segment.open("r+b") as file:  # the last record loses its end to zeros: torn
        file.seek(content - 1000)
        file.write(bytes(1000 + (1 << 20)))
    after = snapshot_at or 0
    with Store.open(tmp_path) as store:
        assert recover_all(store)[1] == numbered(RECORDS[after:], first=after + 1)
        store.append([b"new"])
        store.sync()
    with Store.open(tmp_path) as store:
        replayed = recover_all(store)[1]
    assert replayed == numbered([*RECORDS[after:], b"new"], first=after + 1)
    assert [p.name for p in tmp_path.iterdir() if ".broken" in p.name]


def _snapshots_on_real_files(tmp_path: Path, key: bytes | None = None) -> list[Path]:
    """Two snapshots (covering 100 and 200, both BLOB with their index appended) and the
    records after them, on real files."""
    with Store.open(tmp_path, encryption_key=key) as store:
        store.append(RECORDS)
        store.sync()
        store.write_snapshot(100, BLOB + b"100")
        store.write_snapshot(200, BLOB + b"200")
    return sorted(tmp_path.glob("snapshot-*"))


def test_an_unencrypted_snapshot_is_kept_in_one_read(tmp_path: Path) -> None:
    """Read in 8 MB chunks and joined, a kept blob was two copies into new memory; now the
    body is one read, checked as it lies and handed over as those very bytes. (The reader
    hands out the same bytes.)"""
    big = bytes(range(256)) * 40_000  # 10 MB: more than one chunk of the streaming read
    disk = CountingDisk()
    with Store.open(None, disk=disk) as store:
        store.append(RECORDS)
        store.sync()
        store.write_snapshot(100, big)
    disk.reads.clear()
    with Store.open(None, disk=disk) as store:
        assert disk.reads.count(snapshot_name(100)) == 2  # its header, then its body
        found = store.recovered_snapshot()
        assert found == (100, big) and type(found[1]) is bytes
    _snapshots_on_real_files(tmp_path)
    with Store.open(tmp_path) as store:
        streamed = store.recovered_snapshot_reader()
        assert streamed is not None
        stream = streamed[1]
        assert stream.read(7) == BLOB[:7]
        assert stream.read() == BLOB[7:] + b"200"


def test_on_real_files_an_encrypted_snapshot_is_read_and_opened_as_before(
    tmp_path: Path,
) -> None:
    _snapshots_on_real_files(tmp_path, KEY)
    with Store.open(tmp_path, encryption_key=KEY) as store:
        assert store.recovered_snapshot() == (200, BLOB + b"200")


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_on_real_files_a_damaged_mapped_snapshot_falls_back_to_the_one_before(
    tmp_path: Path, damage: str
) -> None:
    """The check of a mapped snapshot is the check of a read one: a flipped byte anywhere in
    the blob (here in its last MiB slice) or a file cut short sets it aside."""
    newest = _snapshots_on_real_files(tmp_path)[-1]
    size = newest.stat().st_size
    with newest.open("r+b") as file:
        if damage == "flip":
            file.seek(size - 2)
            byte = file.read(1)
            file.seek(size - 2)
            file.write(bytes([byte[0] ^ 0x01]))
        else:
            file.truncate(size - 1)
    with Store.open(tmp_path) as store:
        snapshot, records = recover_all(store)
    assert snapshot == (100, BLOB + b"100")
    assert records == numbered(RECORDS[100:], first=101)
    assert [p.name for p in tmp_path.glob("snapshot-*.broken*")] == [f"{newest.name}.broken"]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_a_store_closed_without_its_replay_lets_go_of_the_map(tmp_path: Path) -> None:
    """Open maps the last segment for the replay; a store closed before anyone replayed must
    not keep it mapped (a pruned segment's space would stay in use)."""
    with Store.open(tmp_path) as store:
        store.append(RECORDS)
        store.sync()
    (segment,) = tmp_path.glob("journal-*.log")

    def mapped() -> bool:
        return str(segment) in Path("/proc/self/maps").read_text()

    store = Store.open(tmp_path)
    assert mapped()
    store.close()
    assert not mapped()
