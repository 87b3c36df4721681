"""Snapshot files: an opaque state blob and the journal index it covers.

Writing follows the one order that survives a crash at any step: write ``<name>.tmp``, fsync
it, rename it over the final name, fsync the directory. Until the rename is durable the old
snapshots and the journal still describe the state; after it, the new snapshot does. A
leftover ``.tmp`` is debris from a crash and is removed at open.

Reading checks the header, the key, the body CRC and (when encrypted) the GCM tag before a
single byte of the blob is believed; a snapshot that fails is set aside as ``.broken`` and
the one before it is used, which is why the journal keeps the records after the oldest kept
snapshot. The check streams through the file, and so can the caller's load
(:class:`SnapshotStream`): a state of a million keys is then never held both as a blob and
as objects, which is what keeps a load's peak memory near the size of the state itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from paxoskv.errors import CorruptData
from paxoskv.storage.cipher import SALT_SIZE_BYTES, TAG_SIZE_BYTES, RecordCipher, invalid_tag
from paxoskv.storage.crc import crc32c, crc32c_extend
from paxoskv.storage.disk import FOLIO_BYTES, Disk, folio_ceil, folio_floor
from paxoskv.storage.headers import (
    FLAG_ENCRYPTED,
    HEADER_SIZE,
    SNAPSHOT_MAGIC,
    FileHeader,
    parse_snapshot_name,
    snapshot_name,
)
from paxoskv.storage.journal import check_key

__all__ = [
    "TEMP_SUFFIX",
    "SnapshotStream",
    "check_snapshot",
    "iter_snapshot_blob",
    "list_snapshots",
    "read_snapshot",
    "write_snapshot_file",
]

TEMP_SUFFIX = ".tmp"
STREAM_CHUNK_BYTES = 8 << 20


def list_snapshots(names: list[str]) -> list[int]:
    """Covered indexes of the snapshot files present, oldest first."""
    return sorted(i for i in map(parse_snapshot_name, names) if i is not None)


def write_snapshot_file(
    disk: Disk, covered_index: int, blob: bytes | Iterable[bytes], cipher: RecordCipher | None
) -> None:
    """Write one snapshot durably under its final name (see the module docstring for order).

    ``blob`` may come in pieces, from a list or as a generator packs them: each is
    checksummed (and sealed, if encrypted: GCM streams) and written as it comes, in writes of
    about :data:`WRITE_BYTES`, and not held after. The header, which gives the body's length
    and CRC, is written last, over the place kept for it, so a state packed piece by piece
    is never in memory whole as well (a second copy of the state, in new pages each time).
    """
    pieces: Iterable[bytes] = [blob] if isinstance(blob, bytes | bytearray) else blob
    salt = os.urandom(SALT_SIZE_BYTES) if cipher else bytes(SALT_SIZE_BYTES)
    flags = FLAG_ENCRYPTED if cipher else 0
    unsigned = FileHeader(SNAPSHOT_MAGIC, flags, covered_index, salt)
    if cipher:
        pieces = _sealed(pieces, cipher, salt, covered_index)
    key_check = cipher.key_check(salt, unsigned.signed_prefix()) if cipher else bytes(16)
    final = snapshot_name(covered_index)
    temp = final + TEMP_SUFFIX
    handle = disk.create(temp)
    try:
        disk.append(handle, bytes(HEADER_SIZE))  # the header's place, written last
        written = synced = HEADER_SIZE
        crc = 0
        # Read again only at the next start or by a peer far behind: dropped from the OS's
        # cache as it goes, in whole folios (disk.FOLIO_BYTES), a 100 MB snapshot reuses the
        # same few MB of pages (disk.py). The first folio, which holds the header's place,
        # stays until the header is written into it.
        dropped = FOLIO_BYTES
        for write in _in_writes(pieces):
            crc = crc32c_extend(crc, write)
            for part in _up_to_syncs(write, written - synced):
                disk.append(handle, part)
                written += len(part)
                if written - synced >= SYNC_EVERY_BYTES:
                    disk.fsync(handle)
                    synced = written
                    drop_to = folio_floor(synced)
                    if drop_to > dropped:
                        disk.drop_cached(handle, dropped, drop_to - dropped)
                        dropped = drop_to
        length = written - HEADER_SIZE
        header = FileHeader(SNAPSHOT_MAGIC, flags, covered_index, salt, key_check, length, crc)
        disk.write_at(handle, 0, header.pack())
        disk.fsync(handle)
        disk.drop_cached(handle, 0, FOLIO_BYTES)
        disk.drop_cached(handle, dropped, folio_ceil(written) - dropped)
    finally:
        disk.close(handle)
    disk.rename(temp, final)
    disk.fsync_dir()


def _sealed(
    pieces: Iterable[bytes], cipher: RecordCipher, salt: bytes, covered_index: int
) -> Iterator[bytes]:
    """The body :meth:`RecordCipher.seal` makes of the pieces joined, a piece at a time:
    their ciphertexts in turn, then the tag. (Sealed whole, they were joined first: a copy
    of the whole state beside it.)"""
    context = cipher.encryptor(salt, 0, covered_index)
    for piece in pieces:
        yield context.update(piece)
    rest = context.finalize()  # (empty for GCM: its ciphertext comes as the plaintext does)
    yield rest + context.tag


WRITE_BYTES = 1 << 20
WHOLE_PIECE_BYTES = WRITE_BYTES // 4
SYNC_EVERY_BYTES = 8 << 20
"""A snapshot is synced as it is written, every this many bytes, not once at the end: the
journal shares the disk, and its next fdatasync waited behind a whole state's worth of dirty
pages (a 100 MB state of 1 KB values: journal syncs of up to 74 ms during a snapshot, against
at most 6 ms without one, strace -T of the compare harness's 1 KB phase)."""


def _up_to_syncs(write: bytes, unsynced: int) -> Sequence[bytes | memoryview]:
    """``write`` as it is, or, if it would carry the file more than WRITE_BYTES past the next
    sync point, in slices of a view (never copied): the first ends at that point, the others
    are SYNC_EVERY_BYTES each. A big piece (one sealed blob when encrypted, 32 MB of 64 KB
    values) is then synced on the way like the rest; slicing it from its own start instead let
    a run of small pieces before it stretch the first step to nearly twice SYNC_EVERY_BYTES.
    """
    if unsynced + len(write) <= SYNC_EVERY_BYTES + WRITE_BYTES:
        return (write,)
    view = memoryview(write)
    cut = SYNC_EVERY_BYTES - unsynced  # > 0: the caller syncs once it reaches the point
    rest = range(cut, len(view), SYNC_EVERY_BYTES)
    return [view[:cut], *(view[start : start + SYNC_EVERY_BYTES] for start in rest)]


def _in_writes(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Pieces in writes of about WRITE_BYTES: few syscalls, and no copy of the big ones.

    A piece of WHOLE_PIECE_BYTES or more is written as it is (a state of 1 KB values packs
    in 512 KB pieces: joining them copied the whole snapshot once more, about a fifth of
    its write's CPU); only runs of smaller pieces are joined.
    """
    group: list[bytes] = []
    size = 0
    for piece in pieces:
        if group and (size + len(piece) > WRITE_BYTES or len(piece) >= WHOLE_PIECE_BYTES):
            yield group[0] if len(group) == 1 else b"".join(group)
            group, size = [], 0
        if len(piece) >= WHOLE_PIECE_BYTES:
            yield piece
            continue
        group.append(piece)
        size += len(piece)
    if group:
        yield group[0] if len(group) == 1 else b"".join(group)


def check_snapshot(
    disk: Disk, covered_index: int, cipher: RecordCipher | None, *, keep_up_to: int = 0
) -> tuple[FileHeader, list[bytes] | None]:
    """Check a whole snapshot; return its header, and its blob in chunks if it is small.

    A blob of at most ``keep_up_to`` bytes is kept as it is checked, so that whoever loads
    it next gets the very bytes the check passed instead of reading and checking the file a
    second time (a restarted node's start-up did both, for as long again as the read). A
    bigger one is not held: it is checked in chunks and read again when asked for. An
    unencrypted one is kept in one read and checked as it lies: read in chunks and joined, a
    14 MB blob was two copies into new memory before it was even decoded. (Not a memory map:
    the bytes handed over must be the ones checked, and a read error must be an ``OSError``,
    not a SIGBUS on some later page-in.)
    """
    header = read_snapshot_header(disk, covered_index, cipher)
    keep = header.body_length <= keep_up_to
    if keep and cipher is None:
        return header, [_read_body(disk, covered_index, header, "the snapshot body fails its CRC")]
    chunks = [
        chunk
        for chunk in iter_snapshot_blob(disk, covered_index, header, cipher)
        if keep  # every chunk is checked either way: the last step is the check itself
    ]
    return header, chunks if keep else None


def _read_body(disk: Disk, covered_index: int, header: FileHeader, problem: str) -> bytes:
    """The snapshot's body in one read, or CorruptData saying ``problem`` if it is short or
    fails its CRC (the header's check of the file size comes first, so a short read means the
    file changed since)."""
    name = snapshot_name(covered_index)
    body = disk.read(name, HEADER_SIZE, header.body_length)
    if len(body) != header.body_length or crc32c(body) != header.body_crc:
        raise CorruptData(disk.path_of(name), HEADER_SIZE, problem)
    return body


def read_snapshot_header(disk: Disk, covered_index: int, cipher: RecordCipher | None) -> FileHeader:
    name = snapshot_name(covered_index)
    path = disk.path_of(name)
    header = FileHeader.unpack(disk.read(name, 0, HEADER_SIZE), path, SNAPSHOT_MAGIC)
    if header.index != covered_index:
        raise CorruptData(
            path, 0, f"the header says it covers {header.index}, the name says {covered_index}"
        )
    check_key(header, cipher, path)
    if header.encrypted and header.body_length < TAG_SIZE_BYTES:
        raise CorruptData(path, 0, "the header gives an encrypted body too short to be one")
    size = disk.size(name)
    if size != HEADER_SIZE + header.body_length:
        raise CorruptData(
            path,
            min(size, HEADER_SIZE + header.body_length),
            f"the file has {size} bytes, the header says {HEADER_SIZE + header.body_length}",
        )
    return header


def read_snapshot(
    disk: Disk, covered_index: int, header: FileHeader, cipher: RecordCipher | None
) -> bytes:
    """The whole blob of a snapshot already checked by :func:`check_snapshot`, in one read."""
    path = disk.path_of(snapshot_name(covered_index))
    body = _read_body(disk, covered_index, header, "the snapshot body changed since it was checked")
    if cipher is None:
        return body
    try:
        return cipher.open(header.salt, 0, covered_index, body)
    except invalid_tag():
        raise CorruptData(path, HEADER_SIZE, "the snapshot does not decrypt") from None


def iter_snapshot_blob(
    disk: Disk, covered_index: int, header: FileHeader, cipher: RecordCipher | None
) -> Iterator[bytes]:
    """The blob in chunks, decrypted on the way; CRC and tag are checked after the last one.

    The chunks handed out before the check are not yet proven: a caller that cannot undo
    what it built from them must first run :func:`check_snapshot` (open does).
    """
    name = snapshot_name(covered_index)
    path = disk.path_of(name)
    offset = HEADER_SIZE
    end = HEADER_SIZE + header.body_length
    tag = b""
    decryptor = None
    if cipher is not None:
        end -= TAG_SIZE_BYTES
        tag = disk.read(name, end, TAG_SIZE_BYTES)
        decryptor = cipher.decryptor(header.salt, 0, covered_index, tag)
    crc = 0
    while offset < end:
        want = min(STREAM_CHUNK_BYTES, end - offset)
        data = disk.read(name, offset, want)
        if len(data) != want:
            raise CorruptData(path, offset + len(data), "the snapshot is cut short")
        crc = crc32c_extend(crc, data)
        yield decryptor.update(data) if decryptor is not None else data
        offset += want
    if crc32c_extend(crc, tag) != header.body_crc:
        raise CorruptData(path, HEADER_SIZE, "the snapshot body fails its CRC")
    if decryptor is not None:
        try:
            decryptor.finalize()
        except invalid_tag():
            raise CorruptData(path, HEADER_SIZE, "the snapshot does not decrypt") from None


class SnapshotStream:
    """A read-only file-like object over a snapshot's blob: ``read(size)`` is all it offers,
    which is all ``msgpack.Unpacker`` needs. It does the checks of :func:`iter_snapshot_blob`
    again on the way and raises :class:`CorruptData` at the end if the file changed.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        wanted = size if size >= 0 else 1 << 62
        while wanted > 0:
            if self._position == len(self._chunk):
                next_chunk = next(self._chunks, None)
                if next_chunk is None:
                    break
                self._chunk, self._position = next_chunk, 0
                continue
            part = self._chunk[self._position : self._position + wanted]
            self._position += len(part)
            wanted -= len(part)
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)
