"""Encryption at rest and file headers: a wrong key or a foreign version is refused at open."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from paxoskv.errors import ConfigurationError, CorruptData, UnsupportedFormat, WrongEncryptionKey
from paxoskv.storage import MemoryDisk, Store, load_key_file, snapshots
from paxoskv.storage.cipher import RecordCipher
from paxoskv.storage.crc import crc32c
from paxoskv.storage.headers import HEADER_SIZE

from .conftest import KEY, OTHER_KEY, journal_names, numbered, recover_all, write_journal


def _encrypted_disk(with_snapshot: bool) -> MemoryDisk:
    disk = MemoryDisk()
    with Store.open(None, disk=disk, encryption_key=KEY) as store:
        store.append([b"secret one", b"secret two"])
        store.sync()
        if with_snapshot:
            store.write_snapshot(1, b"secret state")
    return disk


@pytest.mark.parametrize("with_snapshot", [False, True])
def test_a_wrong_key_is_refused_at_open(with_snapshot: bool) -> None:
    disk = _encrypted_disk(with_snapshot)
    with pytest.raises(WrongEncryptionKey, match="does not decrypt with the given") as wrong:
        Store.open(None, disk=disk, encryption_key=OTHER_KEY)
    assert wrong.value.key_given and "--encryption-key-file" in str(wrong.value)
    with pytest.raises(WrongEncryptionKey, match="is encrypted, and no encryption key was given"):
        Store.open(None, disk=disk)  # no key at all: not told the key it has not got is wrong
    with Store.open(None, disk=disk, encryption_key=KEY) as store:  # and the right one works
        snapshot, records = recover_all(store)
    assert records[-1] == (2, b"secret two")
    assert snapshot == ((1, b"secret state") if with_snapshot else None)


def test_nothing_secret_reaches_the_disk() -> None:
    disk = _encrypted_disk(with_snapshot=True)
    for name in disk.listdir():
        assert b"secret" not in disk.read(name), name


def test_a_key_on_a_plain_data_dir_is_a_configuration_error() -> None:
    disk = MemoryDisk()
    write_journal(disk, [[b"plain"]])
    with pytest.raises(ConfigurationError, match="without encryption"):
        Store.open(None, disk=disk, encryption_key=KEY)


def test_a_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Store.open(None, durability="memory", encryption_key=b"short")


def test_an_encrypted_record_moved_to_another_place_does_not_decrypt() -> None:
    disk = MemoryDisk()
    write_journal(disk, [[b"A" * 20, b"B" * 20]], encryption_key=KEY)
    (name,) = journal_names(disk)
    data = disk.read(name)
    frame = (len(data) - HEADER_SIZE) // 2
    swapped = (
        data[:HEADER_SIZE] + data[HEADER_SIZE + frame :] + data[HEADER_SIZE : HEADER_SIZE + frame]
    )
    handle = disk.create(name)
    disk.append(handle, swapped)
    disk.close(handle)
    with (
        Store.open(None, disk=disk, encryption_key=KEY) as store,
        pytest.raises(CorruptData, match="does not decrypt"),
    ):
        list(store.recovered_records())


@pytest.mark.parametrize("form", ["raw", "hex", "hex with newline"])
def test_key_files_hold_raw_bytes_or_hex(tmp_path: Path, form: str) -> None:
    path = tmp_path / "key"
    content = {
        "raw": KEY,
        "hex": KEY.hex().encode(),
        "hex with newline": KEY.hex().encode() + b"\n",
    }
    path.write_bytes(content[form])
    assert load_key_file(path) == KEY


def test_a_bad_key_file_says_what_it_must_hold(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"not a key")
    with pytest.raises(ConfigurationError, match="32 raw bytes or 64 hex"):
        load_key_file(path)


def test_a_missing_key_file_or_one_of_64_non_hex_characters_is_named_as_the_key_file(
    tmp_path: Path,
) -> None:
    """A missing file was an OSError (exit 4, a failed disk, with no word of a key), and 64
    characters that are not hex were counted as 65 bytes with the newline."""
    with pytest.raises(ConfigurationError, match="cannot read the encryption key file"):
        load_key_file(tmp_path / "nokey")
    path = tmp_path / "key"
    path.write_bytes(b"z" * 64 + b"\n")
    with pytest.raises(ConfigurationError, match="64 characters that are not all hex digits"):
        load_key_file(path)


def test_a_file_of_another_format_version_is_refused_by_name(tmp_path: Path) -> None:
    disk = MemoryDisk()
    write_journal(disk, [[b"x"]])
    (name,) = journal_names(disk)
    data = bytearray(disk.read(name))
    struct.pack_into("<HH", data, 8, 2, 2 ^ 0xFFFF)  # version 2, consistently
    struct.pack_into("<I", data, HEADER_SIZE - 4, crc32c(bytes(data[: HEADER_SIZE - 4])))
    handle = disk.create(name)
    disk.append(handle, bytes(data))
    disk.close(handle)
    with pytest.raises(UnsupportedFormat, match=f"{name} has format version 2"):
        Store.open(None, disk=disk)


def test_an_encrypted_journal_round_trips_on_real_files(tmp_path: Path) -> None:
    with Store.open(tmp_path, encryption_key=KEY) as store:
        store.append([b"a", b"b"])
    with Store.open(tmp_path, encryption_key=KEY) as store:
        assert recover_all(store) == (None, numbered([b"a", b"b"]))


def test_an_encrypted_snapshot_handed_in_by_a_generator_reads_back_whole() -> None:
    """Pieces a generator packs as they are asked for are sealed as they come (GCM streams),
    and the snapshot reads back as their concatenation."""
    pieces = [bytes([n]) * (100 + 70_000 * (n % 3)) for n in range(12)]
    disk = MemoryDisk()
    with Store.open(None, disk=disk, encryption_key=KEY) as store:
        store.append([b"r"])
        store.sync()
        store.write_snapshot(1, (piece for piece in pieces))
    with Store.open(None, disk=disk, encryption_key=KEY) as store:
        assert store.recovered_snapshot() == (1, b"".join(pieces))


def test_a_snapshot_sealed_as_it_streams_is_the_bytes_sealing_it_whole_gives() -> None:
    """The same body as one ``seal`` of the pieces joined, which is how releases before
    this one wrote it and how a reader checks it: the format is unchanged."""
    cipher = RecordCipher(KEY)
    salt = bytes(range(8))
    pieces = [bytes([n]) * (1 + 50_000 * (n % 4)) for n in range(9)]
    streamed = b"".join(snapshots._sealed(iter(pieces), cipher, salt, 7))
    assert streamed == cipher.seal(salt, 0, 7, b"".join(pieces))
    assert cipher.open(salt, 0, 7, streamed) == b"".join(pieces)
