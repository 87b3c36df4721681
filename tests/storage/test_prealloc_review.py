"""Review of the preallocation branch: damage that is no torn write must still be refused.

The sector-of-zeros rule lets recovery cut a damaged frame of the last segment with whole
(durable) records after it. These cases are damage a crash cannot explain (a flipped bit in
a synced record), which main refuses at open or at the replay; each passes on main
(3f4f140) and shows where the branch instead cuts records that were reported durable.
"""

from __future__ import annotations

import pytest

from paxoskv.errors import CorruptData
from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage.framing import FRAME_HEADER_SIZE
from paxoskv.storage.headers import HEADER_SIZE

from .conftest import journal_names, recover_all


def _end(records: list[bytes]) -> int:
    return HEADER_SIZE + sum(FRAME_HEADER_SIZE + len(r) for r in records)


def _damaged(records: list[bytes], flip_at: int, *, close: bool) -> MemoryDisk:
    disk = MemoryDisk()
    store = Store.open(None, disk=disk)
    for record in records:
        store.append([record])
        store.sync()
    if close:
        store.close()  # trimmed: the file ends at the last record
    disk.crash()  # (after close: loses nothing)
    (segment,) = journal_names(disk)
    data = bytearray(disk.read(segment))
    data[flip_at] ^= 0x01
    handle = disk.create(segment)
    disk.append(handle, bytes(data))
    disk.fsync(handle)
    disk.close(handle)
    return disk


def _assert_refused(disk: MemoryDisk) -> None:
    with pytest.raises(CorruptData), Store.open(None, disk=disk) as store:
        got = recover_all(store)
        pytest.fail(f"opened and recovered {got[1]!r}: durable records were cut")


@pytest.mark.parametrize("close", [False, True])
def test_header_damage_before_a_last_record_that_ends_in_a_zero_byte_is_refused(
    close: bool,
) -> None:
    """``find_valid_frame(data[:content], ...)``: content stops at the last non-zero byte,
    inside a record whose payload ends in 0x00 (msgpack encodes the int 0 as 0x00), so that
    record is not seen as valid and the damage before it is taken for a torn tail."""
    records = [b"first", b"second", b"third\x00"]
    flip = _end(records[:1]) + 5  # the length CRC of the second frame
    _assert_refused(_damaged(records, flip, close=close))


@pytest.mark.parametrize("close", [False, True])
def test_a_damaged_segment_header_with_a_record_ending_in_zero_is_refused(close: bool) -> None:
    """Same in ``_last_segment_header``: the branch removes the whole segment."""
    _assert_refused(_damaged([b"only\x00"], 0, close=close))


@pytest.mark.xfail(
    strict=True,
    reason="inherent to the rule: a frame's first sector also holds synced frames, so its "
    "share of it (here 1 byte) is all an unlanded sector leaves as evidence; the docs' '512 "
    "bytes of zeros' overstates what recovery can require",
)
@pytest.mark.parametrize("close", [False, True])
def test_header_damage_with_one_zero_byte_of_the_frame_alone_in_a_sector_is_refused(
    close: bool,
) -> None:
    """``_unlanded`` asks whether the frame's own bytes within some sector are all zero: a
    frame starting at byte 511 whose length is a multiple of 256 has one such byte (the low
    byte of its length) and counts as 'a sector that never landed'. Passes on main."""
    first = bytes(range(1, 256)) + bytes(range(1, 181))  # frame 2 starts at byte 511
    assert _end([first]) == 511
    records = [first, b"\x07" * 256, b"after"]
    _assert_refused(_damaged(records, 511 + 5, close=close))


@pytest.mark.parametrize("close", [False, True])
def test_payload_damage_with_its_last_zero_byte_alone_in_a_sector_is_refused(
    close: bool,
) -> None:
    """With 512 zeros in some record (which makes open check every payload), a flipped bit
    in a record whose last byte, 0x00, is alone in the next sector cuts it and all after."""
    zeros = bytes(600)
    start = _end([zeros])  # 676
    middle = b"\x05" * (1024 + 1 - start - FRAME_HEADER_SIZE - 1) + b"\x00"  # ends at 1025
    assert _end([zeros, middle]) == 1025
    records = [zeros, middle, b"after"]
    _assert_refused(_damaged(records, start + FRAME_HEADER_SIZE + 3, close=close))
