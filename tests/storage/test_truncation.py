"""A journal cut at every byte offset: recovery keeps exactly the whole records before the cut.

This is what a crash in the middle of a write leaves. Every cut must recover the records that
end before it, keep the cut bytes in a ``.broken`` file, and leave a store that appends and
re-opens normally.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from paxoskv.storage import MemoryDisk, OsDisk, Store
from paxoskv.storage.framing import FRAME_HEADER_SIZE
from paxoskv.storage.headers import HEADER_SIZE

from .conftest import KEY, copy_disk, cut, journal_names, numbered, recover_all, write_journal

RECORDS = [b"", b"a", b"bb" * 7, b"ccc" * 11, b"last record"]


def _whole_before(cut_at: int, encrypted: bool) -> int:
    """How many records end at or before byte ``cut_at`` of the segment."""
    end, whole = HEADER_SIZE, 0
    for record in RECORDS:
        end += FRAME_HEADER_SIZE + len(record) + (16 if encrypted else 0)
        if end <= cut_at:
            whole += 1
    return whole


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_cut_at_every_byte_keeps_the_whole_records_before_it(
    encrypted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    key = KEY if encrypted else None
    template = MemoryDisk()
    write_journal(template, [RECORDS[:2], RECORDS[2:]], encryption_key=key)
    (segment,) = journal_names(template)
    size = template.size(segment)
    for cut_at in range(size):
        disk = copy_disk(template)
        cut(disk, segment, cut_at)
        whole = _whole_before(cut_at, encrypted)
        with caplog.at_level(logging.WARNING, logger="paxoskv.storage"):
            caplog.clear()
            with Store.open(None, disk=disk, encryption_key=key) as store:
                assert recover_all(store) == (None, numbered(RECORDS[:whole])), cut_at
                assert store.last_index == whole
                assert store.append([b"new"]) == whole + 1
                store.sync()
        torn = _has_torn_bytes(template.read(segment)[:cut_at], whole, encrypted)
        assert ("torn tail" in caplog.text) == torn, cut_at
        with Store.open(None, disk=disk, encryption_key=key) as store:
            assert recover_all(store) == (None, numbered([*RECORDS[:whole], b"new"]))
            assert store.last_index == whole + 1


def _has_torn_bytes(kept: bytes, whole: int, encrypted: bool) -> bool:
    """Whether bytes other than zeros follow the whole records (zeros alone read as the
    preallocated rest of a segment: a clean end)."""
    end = HEADER_SIZE + sum(
        FRAME_HEADER_SIZE + len(r) + (16 if encrypted else 0) for r in RECORDS[:whole]
    )
    if whole == 0 and len(kept) < HEADER_SIZE:
        return any(kept)
    return any(kept[end:])


def test_the_cut_bytes_are_kept_in_a_broken_file() -> None:
    disk = MemoryDisk()
    write_journal(disk, [RECORDS])
    (segment,) = journal_names(disk)
    original = disk.read(segment)
    cut(disk, segment, len(original) - 3)
    with Store.open(None, disk=disk) as store:
        assert [r for _, r in store.recovered_records()] == RECORDS[:-1]
    last_frame = FRAME_HEADER_SIZE + len(RECORDS[-1])
    assert disk.read(segment + ".broken") == original[-last_frame:-3]
    assert disk.size(segment) == len(original) - last_frame


def test_a_second_cut_keeps_both_broken_files() -> None:
    disk = MemoryDisk()
    for round_number in range(2):
        write_journal(disk, [[b"x" * 40]])
        segment = journal_names(disk)[-1]
        cut(disk, segment, disk.size(segment) - 1)
        Store.open(None, disk=disk).close()
        assert len([n for n in disk.listdir() if ".broken" in n]) == round_number + 1


@pytest.mark.parametrize("cut_back_bytes", [1, FRAME_HEADER_SIZE + 5, 10_000])
def test_a_cut_on_real_files(tmp_path: Path, cut_back_bytes: int) -> None:
    write_journal(OsDisk(tmp_path), [RECORDS])
    (segment,) = [p for p in tmp_path.iterdir() if p.suffix == ".log"]
    size = segment.stat().st_size
    cut_at = max(0, size - cut_back_bytes)
    with segment.open("r+b") as file:
        file.truncate(cut_at)
    whole = _whole_before(cut_at, encrypted=False)
    with Store.open(tmp_path) as store:
        assert recover_all(store) == (None, numbered(RECORDS[:whole]))
        store.append([b"new"])
    with Store.open(tmp_path) as store:
        assert recover_all(store)[1] == numbered([*RECORDS[:whole], b"new"])
