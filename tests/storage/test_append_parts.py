"""``Disk.append_parts``: the journal's frames go to the disk as parts, never joined.

What lands in the file must be the parts' concatenation on every disk, whatever ``pwritev``
does with them (a short write, more parts than one call takes), and a journal written this
way must be the bytes the joined write made.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage import disk as disk_module
from paxoskv.storage.disk import Disk, NoSyncDisk, OsDisk
from paxoskv.storage.faults import FaultyDisk
from paxoskv.storage.framing import encode_frame, frame_header
from paxoskv.storage.headers import HEADER_SIZE

PARTS = [b"head", b"", b"x" * 5000, b"y", bytes(range(256)) * 3]


def _written(disk: Disk, parts: Sequence[bytes]) -> bytes:
    handle = disk.create("file")
    disk.append(handle, b"before|")
    disk.append_parts(handle, parts)
    disk.append(handle, b"|after")
    disk.close(handle)
    return disk.read("file")


def _disk(kind: str, tmp_path: Path) -> Disk:
    """Each kind of disk the store runs on: files, files without syncs, memory, faults."""
    if kind == "os":
        return OsDisk(tmp_path)
    if kind == "nosync":
        return NoSyncDisk(OsDisk(tmp_path))
    if kind == "memory":
        return MemoryDisk()
    return FaultyDisk(MemoryDisk())


@pytest.mark.parametrize("kind", ["os", "nosync", "memory", "faulty"])
def test_every_disk_writes_the_concatenation(tmp_path: Path, kind: str) -> None:
    disk = _disk(kind, tmp_path)
    assert _written(disk, PARTS) == b"before|" + b"".join(PARTS) + b"|after"
    assert _written(disk, []) == b"before||after"


@pytest.mark.parametrize("kind", ["os", "nosync", "memory", "faulty"])
def test_appends_go_over_preallocated_zeros_not_past_them(tmp_path: Path, kind: str) -> None:
    """``extend`` puts zeros past the end and leaves the write position where it was: the
    appends that follow overwrite the zeros, and a handle opened later starts at the size."""
    disk = _disk(kind, tmp_path)
    handle = disk.create("file")
    disk.append(handle, b"head|")
    disk.extend(handle, 64)
    disk.extend(handle, 32)  # never shrinks
    disk.append_parts(handle, [b"ab", b"cd"])
    disk.append(handle, b"|tail")
    disk.fsync(handle)
    disk.close(handle)
    assert disk.read("file") == b"head|abcd|tail" + bytes(64 - 14)
    handle = disk.open_append("file")
    disk.append(handle, b"!")
    disk.truncate(handle, 10)
    disk.append(handle, b"?")
    disk.close(handle)
    assert disk.read("file") == b"head|abcd|?"


def test_short_writes_are_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pwritev may take fewer bytes than given (a signal): the rest goes on where it stopped,
    inside a part or at a part's edge."""
    real_pwritev = os.pwritev
    takes = iter([3, 4, 1, 0, 4998, 2, 10_000])  # 0: nothing taken once (tried again)
    calls: list[int] = []

    def short_pwritev(fd: int, buffers: Sequence[bytes | memoryview], offset: int) -> int:
        calls.append(len(buffers))
        limit = next(takes, 1 << 30)
        joined = b"".join(buffers)[:limit]
        return real_pwritev(fd, [joined], offset)

    monkeypatch.setattr(os, "pwritev", short_pwritev)
    assert _written(OsDisk(tmp_path), PARTS) == b"before|" + b"".join(PARTS) + b"|after"
    assert len(calls) > 5


def test_more_parts_than_one_writev_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwritev = os.pwritev
    sizes: list[int] = []

    def counting_pwritev(fd: int, buffers: Sequence[bytes | memoryview], offset: int) -> int:
        if len(buffers) > disk_module._IOV_MAX:
            raise OSError(errno.EINVAL, "too many buffers")  # as Linux does past IOV_MAX
        sizes.append(len(buffers))
        return real_pwritev(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", counting_pwritev)
    parts = [i.to_bytes(2, "big") for i in range(disk_module._IOV_MAX * 2 + 5)]
    assert _written(OsDisk(tmp_path), parts) == b"before|" + b"".join(parts) + b"|after"
    assert sizes == [disk_module._IOV_MAX, disk_module._IOV_MAX, 5]


def test_a_faulty_disk_counts_and_fails_append_parts_as_an_append() -> None:
    disk = FaultyDisk(MemoryDisk())
    handle = disk.create("file")
    disk.fail("append", nth=2)
    disk.append_parts(handle, [b"a", b"b"])
    with pytest.raises(OSError):
        disk.append_parts(handle, [b"c"])
    assert disk.calls["append"] == 2
    assert disk.read("file") == b"ab"


def test_memory_disk_loses_unsynced_parts_in_a_crash_like_an_append() -> None:
    disk = MemoryDisk()
    handle = disk.create("file")
    disk.append_parts(handle, [b"synced", b"."])
    disk.fsync(handle)
    disk.fsync_dir()
    disk.append_parts(handle, [b"lost", b"tail"])
    disk.crash()
    assert disk.read("file") == b"synced."


@pytest.mark.parametrize("batches", [[[b"one"]], [[b"a", b"bb" * 900, b"c"], [b"d"], []]])
def test_the_journal_is_header_then_frames_of_the_records(
    tmp_path: Path, batches: list[list[bytes]]
) -> None:
    """Byte for byte what the frames joined make: the format is unchanged."""
    with Store.open(tmp_path, durability="os") as store:
        for batch in batches:
            store.append(batch)
            store.sync()
    (name,) = [n for n in os.listdir(tmp_path) if n.startswith("journal-")]
    data = (tmp_path / name).read_bytes()
    assert data[HEADER_SIZE:] == b"".join(encode_frame(r) for batch in batches for r in batch)


def test_frame_header_is_what_encode_frame_puts_before_the_payload() -> None:
    for payload in [b"", b"x", b"z" * 70_000]:
        assert encode_frame(payload) == frame_header(payload) + payload
