"""A cluster's keys in one file: what ``paxos-kv dump`` writes and ``paxos-kv load`` reads.

A logical copy (keys, values, which keys share a lease), not a node's data dir: it loads into
any cluster of any release that reads the format, and it is how a cluster that lost a quorum
for good carries its data into a new one (README, "Backups and disaster recovery"). Revisions
do not travel: the loading cluster numbers the writes its own way, as etcd's restore does.

The file is a msgpack stream, packed by the state machine's own codec so that every value
comes back with its type (a tuple is not a list, bytes are not str): a header, one item (a
list) per key, and a trailer (a map) that counts them and holds the CRC-32 of every byte
before it. A file cut short loses its trailer, and a byte changed anywhere fails the CRC, so a
damaged dump is refused whole rather than loaded in part.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from paxoskv.errors import InvalidArgument
from paxoskv.state.keys import check_key, key_from_wire, key_to_wire
from paxoskv.state.wire import TOP_EXT_HOOK, MalformedCommand, pack

FORMAT = "paxos-kv dump"
VERSION = 1
_READ_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class DumpEntry:
    """One key: its value, and the id its lease had where it was dumped (None: no lease)."""

    key: Any
    value: Any
    lease_id: int | None = None


@dataclass(frozen=True, slots=True)
class DumpHeader:
    """Where a dump came from. ``revision`` is the cluster's revision it was read at (a data
    dir's) or the newest ``mod_revision`` among its keys (a listing from a running cluster,
    which does not say its own); ``lease_ttl_ms`` holds each lease's ttl where it was known."""

    source: str
    revision: int
    prefix: Any = None
    lease_ttl_ms: dict[int, int] = field(default_factory=dict)

    def to_wire(self) -> list[Any]:
        prefix = None if self.prefix is None else key_to_wire(self.prefix)
        details = {
            "source": self.source,
            "revision": self.revision,
            "prefix": prefix,
            "lease_ttl_ms": dict(self.lease_ttl_ms),
        }
        return [FORMAT, VERSION, details]


def write_dump(path: Path, header: DumpHeader, entries: Iterable[DumpEntry]) -> int:
    """Write the dump to ``path`` whole or not at all (a temporary file synced, then renamed);
    the number of entries written."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            count = write_dump_to(out, header, entries)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)
    return count


def write_dump_to(out: BinaryIO, header: DumpHeader, entries: Iterable[DumpEntry]) -> int:
    """Write the dump to the open binary stream ``out`` (standard output, say); the number
    of entries written."""
    crc = 0
    count = 0

    def put(data: bytes) -> None:
        nonlocal crc
        out.write(data)
        crc = zlib.crc32(data, crc)

    put(pack(header.to_wire()))
    for entry in entries:
        put(pack([key_to_wire(entry.key), entry.value, entry.lease_id]))
        count += 1
    out.write(pack({"end": count, "crc32": crc}))
    return count


def read_dump(data: bytes, name: str) -> tuple[DumpHeader, list[DumpEntry]]:
    """The header and entries of the dump ``data``, every one checked, and the whole checked
    against the trailer's count and CRC.

    ``name`` is how errors name the file. Every problem is an :class:`InvalidArgument`
    saying what is wrong with it, raised before anything is returned.
    """
    unpacker = _unpacker(io.BytesIO(data))
    header = _header(_next_item(unpacker, name, "its header"), name)
    entries: list[DumpEntry] = []
    while True:
        start = unpacker.tell()
        item = _next_item(unpacker, name, f"entry {len(entries) + 1} or its end")
        if type(item) is dict:
            _check_trailer(item, len(entries), zlib.crc32(memoryview(data)[:start]), name)
            if unpacker.tell() != len(data):
                raise InvalidArgument(f"{name} has bytes after its end: it is damaged")
            return header, entries
        entries.append(_entry(item, len(entries) + 1, name))


def _header(first: Any, name: str) -> DumpHeader:
    if not (type(first) is list and len(first) == 3 and first[0] == FORMAT):
        raise InvalidArgument(f"{name} is not a paxos-kv dump (paxos-kv dump writes one)")
    if first[1] != VERSION:
        raise InvalidArgument(
            f"{name} is a paxos-kv dump of format {first[1]!r}, which this release does not "
            f"read (it reads format {VERSION}): load it with the release that wrote it"
        )
    details = first[2]
    try:
        assert type(details) is dict
        source_name, revision = details["source"], details["revision"]
        assert type(source_name) is str and type(revision) is int and revision >= 0
        raw_prefix = details["prefix"]
        prefix = None if raw_prefix is None else key_from_wire(raw_prefix)
        ttls = details["lease_ttl_ms"]
        assert type(ttls) is dict
        assert all(type(k) is int and type(v) is int and v > 0 for k, v in ttls.items())
    except (AssertionError, KeyError, MalformedCommand, TypeError) as error:
        raise InvalidArgument(f"{name} has a damaged header ({error or 'bad field'})") from None
    return DumpHeader(source_name, revision, prefix, dict(ttls))


def _entry(item: Any, number: int, name: str) -> DumpEntry:
    try:
        assert type(item) is list and len(item) == 3
        key = check_key(key_from_wire(item[0]))
        lease_id = item[2]
        assert lease_id is None or (type(lease_id) is int and lease_id > 0)
    except (AssertionError, MalformedCommand, ValueError, TypeError):
        raise InvalidArgument(f"{name}: entry {number} is damaged") from None
    return DumpEntry(key, item[1], lease_id)


def _check_trailer(trailer: dict[Any, Any], count: int, crc: int, name: str) -> None:
    if set(trailer) != {"end", "crc32"}:
        raise InvalidArgument(f"{name} has a damaged end: it is damaged")
    if trailer["end"] != count:
        raise InvalidArgument(
            f"{name} says it holds {trailer['end']!r} keys but holds {count}: it is damaged"
        )
    if trailer["crc32"] != crc:
        raise InvalidArgument(
            f"{name} fails its checksum: some byte of it changed since it was written, so it "
            "is not loaded (dump again, or use another copy)"
        )


def _unpacker(source: BinaryIO) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        source,
        raw=False,
        strict_map_key=False,
        ext_hook=TOP_EXT_HOOK,
        max_buffer_size=64 << 20,
        read_size=_READ_CHUNK_BYTES,
    )


def _next_item(unpacker: msgpack.Unpacker, name: str, what: str) -> Any:
    try:
        return unpacker.unpack()
    except msgpack.OutOfData:
        raise InvalidArgument(f"{name} ends before {what}: it is cut short") from None
    except (ValueError, TypeError, RecursionError, MalformedCommand, msgpack.ExtraData) as error:
        raise InvalidArgument(f"{name} is damaged where {what} should be ({error})") from None


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
