"""Dump a cluster's keys to a file, and load such a file into a cluster.

A running cluster is dumped with one linearizable listing (every key under a prefix as of one
moment); a stopped node's data dir is dumped offline (:mod:`paxoskv.runtime.offline`), which
is what saves a cluster that lost a quorum for good. Loading writes the keys through the
public API, in txns as large as a request may be, a few at a time: the loading cluster gives
them revisions of its own. Loading is idempotent: a load stopped halfway (a timeout, Ctrl-C)
can be run again, and rewrites the same values.

A key on a lease is loaded on a new lease of the same ttl, one per original lease, so that the
keys that would have expired together still do. A listing from a running cluster does not
carry the leases' ttls (a thin client cannot read them), so such keys need ``lease_ttl_s`` or
are left out and counted; a data dir's dump carries them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paxoskv.client import MAX_COMMAND_BYTES, KVApi, lease_ttl_ms
from paxoskv.dumpfile import DumpEntry, DumpHeader, read_entries, read_header, write_dump
from paxoskv.state.command_wire import encode_command
from paxoskv.state.commands import Set, Txn
from paxoskv.state.keys import check_prefix, key_to_wire
from paxoskv.state.wire import pack

LOAD_WINDOW = 8
"""Txns a load keeps in flight: enough to hide a round trip, few enough to leave the cluster
room for its other clients."""

_ROOM_BYTES = MAX_COMMAND_BYTES - 1_024  # a txn's own framing on top of its steps' bytes


@dataclass(frozen=True, slots=True)
class Dumped:
    """What a dump wrote."""

    keys: int
    revision: int
    leases_without_ttl: int
    accepted_slots_taken: int = 0


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a load wrote, and what it left out."""

    keys: int
    leases: int
    skipped_leased: int


async def dump_cluster(client: KVApi, path: Path, prefix: Any = None) -> Dumped:
    """Every key under ``prefix`` (None: all) as of one linearizable read, written to
    ``path`` whole or not at all."""
    if prefix is not None:
        prefix = check_prefix(prefix)
    entries = await client.items(prefix)
    revision = max((entry.mod_revision for entry in entries), default=0)
    header = DumpHeader("cluster", revision, prefix)
    dumped = [DumpEntry(entry.key, entry.value, entry.lease_id) for entry in entries]
    await asyncio.to_thread(write_dump, path, header, dumped)
    leases = {entry.lease_id for entry in dumped if entry.lease_id is not None}
    return Dumped(len(dumped), revision, len(leases))


def dump_data_dir(
    data_dir: Path,
    path: Path,
    prefix: Any = None,
    encryption_key_file: Path | None = None,
    *,
    chosen_only: bool = False,
) -> Dumped:
    """Every key under ``prefix`` as the stopped node of ``data_dir`` holds it (with the
    values it accepted past what it knew chosen, unless ``chosen_only``: see
    :mod:`paxoskv.runtime.offline`), and its leases' ttls, written to ``path``; the data dir
    is left as it was."""
    from paxoskv.runtime.offline import state_of_data_dir  # the engine: only for this
    from paxoskv.runtime.serving import all_entries

    if prefix is not None:
        prefix = check_prefix(prefix)
    found = state_of_data_dir(
        data_dir, encryption_key_file=encryption_key_file, chosen_only=chosen_only
    )
    state = found.state
    entries = [DumpEntry(kv.key, kv.value, kv.lease_id) for kv in all_entries(state, prefix)]
    ttls: dict[int, int] = {}
    for entry in entries:
        if entry.lease_id is not None and entry.lease_id not in ttls:
            info = state.lease_info(entry.lease_id)
            if info is not None:
                ttls[entry.lease_id] = info.ttl_ms
    header = DumpHeader(f"data dir {data_dir}", state.revision, prefix, ttls)
    write_dump(path, header, entries)
    leases = {entry.lease_id for entry in entries if entry.lease_id is not None}
    return Dumped(
        len(entries), state.revision, len(leases - ttls.keys()), found.accepted_slots_taken
    )


async def load_file(
    client: KVApi,
    path: Path,
    *,
    lease_ttl_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Loaded:
    """Write every key of the dump at ``path`` into the cluster of ``client``.

    The whole file is read and checked before anything is written, so a damaged or cut dump
    changes nothing. ``progress`` is called with the keys written so far and the keys to write.
    """
    fallback_ttl_ms = None if lease_ttl_s is None else lease_ttl_ms(lease_ttl_s)
    header, entries = await asyncio.to_thread(_read_whole, path)
    wanted: dict[int, int] = {}
    skipped = 0
    kept: list[DumpEntry] = []
    for entry in entries:
        if entry.lease_id is None:
            kept.append(entry)
            continue
        ttl_ms = header.lease_ttl_ms.get(entry.lease_id, fallback_ttl_ms)
        if ttl_ms is None:
            skipped += 1
            continue
        wanted.setdefault(entry.lease_id, ttl_ms)
        kept.append(entry)
    new_ids = {old: await client.grant_lease(ttl_ms / 1000) for old, ttl_ms in wanted.items()}
    written = 0

    async def write(batch: list[Set]) -> None:
        nonlocal written
        if len(batch) == 1:
            step = batch[0]
            await client.set(step.key, step.value, lease=step.lease_id)
        else:
            await client.txn([], batch)
        written += len(batch)
        if progress is not None:
            progress(written, len(kept))

    steps = (Set(e.key, e.value, None if e.lease_id is None else new_ids[e.lease_id]) for e in kept)
    pending: set[asyncio.Task[None]] = set()
    try:
        for batch in _batches(steps):
            if len(pending) >= LOAD_WINDOW:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # the first failure ends the load, as it is
            pending.add(asyncio.create_task(write(batch)))
        for task in pending:
            await task
    finally:
        for task in pending:
            task.cancel()
    return Loaded(written, len(new_ids), skipped)


def _read_whole(path: Path) -> tuple[DumpHeader, list[DumpEntry]]:
    name = str(path)
    with open(path, "rb") as source:
        header, unpacker = read_header(source, name)
        return header, list(read_entries(unpacker, name))


def _batches(steps: Iterable[Set]) -> Iterator[list[Set]]:
    """The steps in groups whose txn fits one request (a step too big to share goes alone,
    as the plain set it was when it was first written)."""
    batch: list[Set] = []
    size = 0
    for step in steps:
        step_bytes = len(pack([key_to_wire(step.key), step.value, step.lease_id])) + 8
        if batch and size + step_bytes > _ROOM_BYTES:
            yield from _fitting(batch)
            batch, size = [], 0
        batch.append(step)
        size += step_bytes
    if batch:
        yield from _fitting(batch)


def _fitting(batch: list[Set]) -> Iterator[list[Set]]:
    """``batch``, split in halves until each half's txn is within a request's size."""
    if len(batch) == 1 or len(encode_command(Txn((), tuple(batch)))) <= MAX_COMMAND_BYTES:
        yield batch
        return
    middle = len(batch) // 2
    yield from _fitting(batch[:middle])
    yield from _fitting(batch[middle:])
