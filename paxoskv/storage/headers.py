"""File names and the header at the start of every journal segment and snapshot.

Header layout (little-endian, 64 bytes)::

    magic        8s   b"PXKVJRNL" (segment) or b"PXKVSNAP" (snapshot)
    version      u16  FORMAT_VERSION; checked at open, before anything else is trusted
    version_not  u16  version XOR 0xFFFF
    flags        u16  bit 0: encrypted
    reserved     u16  zero
    index        u64  segment: index of its first record; snapshot: the index it covers
    salt         8s   random per file; the nonce prefix when encrypted, zeros otherwise
    key_check    16s  GCM tag proving the key (see cipher.py), zeros when not encrypted
    body_length  u64  snapshot: bytes of body after the header; segment: 0
    body_crc     u32  snapshot: crc32c of the body; segment: 0
    header_crc   u32  crc32c of the 60 bytes before it

The first 12 bytes are the part every future version keeps. The version is stored twice
(plain and inverted) because it must be read before the CRC, whose place a later version may
move: a flipped bit in it then reads as damage, not as a release that does not exist.
The index is in the header as well as the file name so that a renamed or copied file cannot
pass for another; the name is what lets a directory listing be read without opening files.
"""

from __future__ import annotations

import re
import struct

from paxoskv.errors import CorruptData, UnsupportedFormat
from paxoskv.state.frozen_plain import PlainFrozen
from paxoskv.storage.crc import crc32c
from paxoskv.storage.disk import FileView

__all__ = [
    "FLAG_ENCRYPTED",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "SEGMENT_MAGIC",
    "SNAPSHOT_MAGIC",
    "FileHeader",
    "parse_segment_name",
    "parse_snapshot_name",
    "segment_name",
    "snapshot_name",
]

FORMAT_VERSION = 1
FLAG_ENCRYPTED = 1
SEGMENT_MAGIC = b"PXKVJRNL"
SNAPSHOT_MAGIC = b"PXKVSNAP"
_KNOWN_FLAGS = FLAG_ENCRYPTED

_HEADER = struct.Struct("<8sHHHHQ8s16sQI")
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _HEADER_CRC.size
KEY_CHECK_OFFSET = 8 + 2 + 2 + 2 + 2 + 8 + 8  # bytes before key_check: what the check signs

_SEGMENT_NAME = re.compile(r"journal-(\d{20})\.log")
_SNAPSHOT_NAME = re.compile(r"snapshot-(\d{20})\.msgpack")


def segment_name(first_index: int) -> str:
    return f"journal-{first_index:020d}.log"


def snapshot_name(covered_index: int) -> str:
    return f"snapshot-{covered_index:020d}.msgpack"


def parse_segment_name(name: str) -> int | None:
    match = _SEGMENT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def parse_snapshot_name(name: str) -> int | None:
    match = _SNAPSHOT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


class FileHeader(PlainFrozen):
    __slots__ = (
        "body_crc",
        "body_length",
        "flags",
        "index",
        "key_check",
        "magic",
        "salt",
        "version",
    )
    __match_args__ = (
        "magic",
        "flags",
        "index",
        "salt",
        "key_check",
        "body_length",
        "body_crc",
        "version",
    )

    magic: bytes
    flags: int
    index: int
    salt: bytes
    key_check: bytes
    body_length: int
    body_crc: int
    version: int

    def __init__(
        self,
        magic: bytes,
        flags: int,
        index: int,
        salt: bytes,
        key_check: bytes = bytes(16),
        body_length: int = 0,
        body_crc: int = 0,
        version: int = FORMAT_VERSION,
    ) -> None:
        object.__setattr__(self, "magic", magic)
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "salt", salt)
        object.__setattr__(self, "key_check", key_check)
        object.__setattr__(self, "body_length", body_length)
        object.__setattr__(self, "body_crc", body_crc)
        object.__setattr__(self, "version", version)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED)

    def signed_prefix(self) -> bytes:
        """The header bytes the key check authenticates (everything before the tag)."""
        return self.pack()[:KEY_CHECK_OFFSET]

    def pack(self) -> bytes:
        body = _HEADER.pack(
            self.magic,
            self.version,
            self.version ^ 0xFFFF,
            self.flags,
            0,
            self.index,
            self.salt,
            self.key_check,
            self.body_length,
            self.body_crc,
        )
        return body + _HEADER_CRC.pack(crc32c(body))

    @classmethod
    def unpack(cls, data: FileView, path: str, magic: bytes) -> FileHeader:
        """Check and decode a header; every failure names the file."""
        if len(data) < HEADER_SIZE:
            raise CorruptData(path, 0, f"the file header is cut short ({len(data)} bytes)")
        fields = _HEADER.unpack_from(data)
        if fields[0] != magic:
            raise CorruptData(path, 0, "the file does not start with a paxos-kv header")
        _, version, version_not, flags, reserved, index, salt, key_check, length, crc = fields
        if version ^ 0xFFFF != version_not:
            raise CorruptData(path, 8, "the format version field is damaged")
        if version != FORMAT_VERSION:
            raise UnsupportedFormat(path, version, FORMAT_VERSION)
        (stored_crc,) = _HEADER_CRC.unpack_from(data, _HEADER.size)
        if crc32c(data[: _HEADER.size]) != stored_crc:
            raise CorruptData(path, 0, "the file header fails its CRC")
        if flags & ~_KNOWN_FLAGS or reserved:
            raise CorruptData(path, 12, f"the file header has unknown flags {flags:#x}")
        return cls(magic, flags, index, salt, key_check, length, crc, version)
