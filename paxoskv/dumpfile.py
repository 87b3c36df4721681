"""A cluster's keys in one file: what ``paxos-kv dump`` writes and ``paxos-kv load`` reads.

A logical copy (keys, values, which keys share a lease), not a node's data dir: it loads into
any cluster of any release that reads the format, and it is how a cluster that lost a quorum
for good carries its data into a new one (README, "Backups and disaster recovery"). Revisions
do not travel: the loading cluster numbers the writes its own way, as etcd's restore does.

The file is a msgpack stream, packed by the state machine's own codec so that every value
comes back with its type (a tuple is not a list, bytes are not str): a header, one item per
key, and a trailer that counts them. A file cut short loses its trailer, so a truncated dump
is refused rather than loaded in part; each item is checked as it is read.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from paxoskv.errors import InvalidArgument
from paxoskv.state.keys import check_key, key_from_wire, key_to_wire
from paxoskv.state.wire import TOP_EXT_HOOK, MalformedCommand, pack

FORMAT = "paxos-kv dump"
VERSION = 1
TRAILER = "end"
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
    count = 0
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(pack(header.to_wire()))
            for entry in entries:
                out.write(pack([key_to_wire(entry.key), entry.value, entry.lease_id]))
                count += 1
            out.write(pack([TRAILER, count]))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)
    return count


def read_header(source: BinaryIO, name: str) -> tuple[DumpHeader, msgpack.Unpacker]:
    """The header of the dump in ``source``, and the unpacker positioned at its first entry.

    ``name`` is how errors name the file. Every problem is an :class:`InvalidArgument`
    saying what the file is not.
    """
    unpacker = _unpacker(source)
    first = _next_item(unpacker, name, "its header")
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
    header = DumpHeader(source_name, revision, prefix, dict(ttls))
    return header, unpacker


def read_entries(unpacker: msgpack.Unpacker, name: str) -> Iterator[DumpEntry]:
    """The entries after the header, each checked, then the trailer's count checked: a dump
    cut short, or with an item damaged, raises :class:`InvalidArgument` where it is found."""
    count = 0
    while True:
        item = _next_item(unpacker, name, f"entry {count + 1} or its end")
        if type(item) is list and len(item) == 2 and item[0] == TRAILER:
            if item[1] != count:
                raise InvalidArgument(
                    f"{name} says it holds {item[1]!r} keys but holds {count}: it is damaged"
                )
            if _has_more(unpacker):
                raise InvalidArgument(f"{name} has bytes after its end: it is damaged")
            return
        try:
            assert type(item) is list and len(item) == 3
            key = check_key(key_from_wire(item[0]))
            lease_id = item[2]
            assert lease_id is None or (type(lease_id) is int and lease_id > 0)
        except (AssertionError, MalformedCommand, ValueError, TypeError):
            raise InvalidArgument(f"{name}: entry {count + 1} is damaged") from None
        count += 1
        yield DumpEntry(key, item[1], lease_id)


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
    except (ValueError, MalformedCommand, msgpack.ExtraData) as error:
        raise InvalidArgument(f"{name} is damaged where {what} should be ({error})") from None


def _has_more(unpacker: msgpack.Unpacker) -> bool:
    try:
        unpacker.skip()
    except msgpack.OutOfData:
        return False
    except ValueError:
        return True
    return True


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
