"""Records given in pieces: written as their concatenation, never joined, same bytes on disk.

The engine persists an accept as (header bytes, the slot's value); the journal must hold
exactly the record the joined bytes make, on every path the writer takes (one record, a
batch, a batch crossing segments, encryption), and read back as one record.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paxoskv.errors import ValueTooLarge
from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage.crc import crc32c, crc32c_extend, crc32c_python
from paxoskv.storage.framing import (
    encode_frame,
    frame_header,
    frame_records,
    record_bytes,
    record_size,
)
from paxoskv.storage.headers import HEADER_SIZE
from tests.storage.conftest import KEY, recover_all

PIECES = (b"\x95\x02\x01\x03\xa1a\xc5\x10\x00", b"v" * 4096)
BATCHES: list[list[bytes | tuple[bytes, ...]]] = [
    [PIECES],
    [b"plain", (b"", b"one"), (b"a", b"b", b"c")],
    [(b"x" * 300, b"y" * 300), b"z" * 50, (b"q",)],
]


def _joined(batches: list[list[bytes | tuple[bytes, ...]]]) -> list[bytes]:
    return [record_bytes(record) for batch in batches for record in batch]


def test_a_record_in_pieces_frames_as_its_bytes() -> None:
    joined = b"".join(PIECES)
    assert record_size(PIECES) == len(joined)
    assert frame_header(PIECES) == frame_header(joined)
    assert encode_frame(PIECES) == encode_frame(joined)
    parts: list[bytes] = []
    assert frame_records([b"a", PIECES], 0, 2, 1 << 20, parts) == (
        2,
        len(encode_frame(b"a")) + len(encode_frame(joined)),
    )
    assert b"".join(parts) == encode_frame(b"a") + encode_frame(joined)
    assert parts[-2:] == list(PIECES)  # the pieces themselves, not a copy joined


def test_crc_extend_continues_a_crc() -> None:
    for data in [b"", b"a", bytes(range(256)) * 5]:
        for cut in {0, len(data) // 3, len(data)}:
            assert crc32c_extend(crc32c(data[:cut]), data[cut:]) == crc32c(data)
            assert crc32c_extend(crc32c_extend(0, data[:cut]), data[cut:]) == crc32c(data)
            assert crc32c_python(data[cut:], crc32c_python(data[:cut])) == crc32c(data)


@pytest.mark.parametrize("segment_size_bytes", [64 << 20, 600])
@pytest.mark.parametrize("key", [None, KEY])
def test_records_in_pieces_are_written_and_read_back_whole(
    segment_size_bytes: int, key: bytes | None
) -> None:
    disk = MemoryDisk()
    settings = {"segment_size_bytes": segment_size_bytes, "encryption_key": key}
    with Store.open(None, disk=disk, **settings) as store:  # type: ignore[arg-type]
        for batch in BATCHES:
            store.append(batch)
            store.sync()
        expected = list(enumerate(_joined(BATCHES), start=1))
        assert store.read_records(1, 100) == expected
    with Store.open(None, disk=disk, **settings) as store:  # type: ignore[arg-type]
        assert recover_all(store) == (None, expected)


def test_the_journal_holds_the_joined_records_byte_for_byte(tmp_path: Path) -> None:
    pieces, joined = tmp_path / "pieces", tmp_path / "joined"
    for directory, batches in ((pieces, BATCHES), (joined, [_joined(BATCHES)])):
        with Store.open(directory, durability="os") as store:
            for batch in batches:
                store.append(batch)
                store.sync()
    (name,) = [n for n in os.listdir(pieces) if n.startswith("journal-")]
    data = (pieces / name).read_bytes()
    assert data[HEADER_SIZE:] == b"".join(map(encode_frame, _joined(BATCHES)))
    assert data[HEADER_SIZE:] == (joined / name).read_bytes()[HEADER_SIZE:]


def test_pieces_are_checked_like_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("paxoskv.storage.store.MAX_RECORD_BYTES", 100)
    with Store.open(None, durability="memory") as store:
        with pytest.raises(TypeError, match="piece of a record"):
            store.append([(b"a", "text")])  # type: ignore[list-item]
        with pytest.raises(ValueTooLarge, match="journal record of 101 bytes"):
            store.append([(b"x" * 60, b"y" * 41)])
        assert store.last_index == 0  # a refused batch queues nothing
        store.append([(b"x" * 60, bytearray(b"y" * 40))])  # type: ignore[list-item]
        store.sync()
        assert store.read_records(1, 1) == [(1, b"x" * 60 + b"y" * 40)]
