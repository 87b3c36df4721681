"""Dump a cluster's keys to a file, and load such a file into a cluster.

A running cluster is dumped with one linearizable listing (every key under a prefix as of one
moment); a stopped node's data dir is dumped offline (:mod:`paxoskv.runtime.offline`), which
is what saves a cluster that lost a quorum for good. Loading writes the keys through the
public API, in txns as large as a request may be, a few at a time: the loading cluster gives
them revisions of its own. Loading is idempotent: a load stopped halfway (a timeout, Ctrl-C)
can be run again, and rewrites the same values.

A key on a lease is loaded on a new lease of the same ttl, one per original lease, so that the
keys that would have expired together still do; the new leases are kept alive while the load
runs, so their ttl counts from its end. A listing from a running cluster does not carry the
leases' ttls (a thin client cannot read them), so such keys need ``lease_ttl_s`` or are left
out and counted; a data dir's dump carries them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from paxoskv.client import MAX_COMMAND_BYTES, KVApi, lease_ttl_ms
from paxoskv.dumpfile import DumpEntry, DumpHeader, read_dump, write_dump, write_dump_to
from paxoskv.errors import InvalidArgument
from paxoskv.state.command_wire import encode_command, encode_set
from paxoskv.state.commands import Set, Txn
from paxoskv.state.keys import check_prefix, key_to_wire
from paxoskv.state.wire import pack

LOAD_WINDOW = 8
"""Txns a load keeps in flight: enough to hide a round trip, few enough to leave the cluster
room for its other clients."""

_ROOM_BYTES = MAX_COMMAND_BYTES - 1_024  # a txn's own framing on top of its steps' bytes

Target = str | Path | BinaryIO
"""Where a dump goes or comes from: a path, or an open binary stream (standard output or
input, for ``-``)."""


@dataclass(frozen=True, slots=True)
class Dumped:
    """What a dump wrote, and for a data dir's, what it took or left past the commit point."""

    keys: int
    revision: int
    leases_without_ttl: int
    accepted_slots_taken: int = 0
    accepted_slots_left: int = 0


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a load wrote, and what it left out."""

    keys: int
    leases: int
    skipped_leased: int


async def dump_cluster(client: KVApi, target: Target, prefix: Any = None) -> Dumped:
    """Every key under ``prefix`` (None: all) as of one linearizable read, written to
    ``target`` (a path: whole or not at all)."""
    if prefix is not None:
        prefix = check_prefix(prefix)
    entries = await client.items(prefix)
    revision = max((entry.mod_revision for entry in entries), default=0)
    header = DumpHeader("cluster", revision, prefix)
    dumped = [DumpEntry(entry.key, entry.value, entry.lease_id) for entry in entries]
    await asyncio.to_thread(_write, target, header, dumped)
    leases = {entry.lease_id for entry in dumped if entry.lease_id is not None}
    return Dumped(len(dumped), revision, len(leases))


def dump_data_dir(
    data_dir: Path,
    target: Target,
    prefix: Any = None,
    encryption_key_file: Path | None = None,
    *,
    with_accepted: bool = False,
) -> Dumped:
    """Every key under ``prefix`` as the stopped node of ``data_dir`` knew it chosen (and
    with ``with_accepted``, more: see :mod:`paxoskv.runtime.offline`), with its leases'
    ttls, written to ``target``; the data dir is only read."""
    from paxoskv.runtime.offline import state_of_data_dir  # the engine: only for this
    from paxoskv.runtime.serving import all_entries

    if prefix is not None:
        prefix = check_prefix(prefix)
    found = state_of_data_dir(
        data_dir, encryption_key_file=encryption_key_file, with_accepted=with_accepted
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
    _write(target, header, entries)
    leases = {entry.lease_id for entry in entries if entry.lease_id is not None}
    return Dumped(
        len(entries),
        state.revision,
        len(leases - ttls.keys()),
        found.accepted_slots_taken,
        found.accepted_slots_left,
    )


def _write(target: Target, header: DumpHeader, entries: list[DumpEntry]) -> None:
    if isinstance(target, str | Path):
        write_dump(Path(target), header, entries)
    else:
        write_dump_to(target, header, entries)
        target.flush()


async def load_file(
    client: KVApi,
    source: Target,
    *,
    lease_ttl_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Loaded:
    """Write every key of the dump in ``source`` into the cluster of ``client``.

    The whole file is read and checked first (its checksum, each entry), and each key is
    checked to fit a request with the lease id granted here before any is written, so a
    damaged or unloadable dump writes no key. ``progress`` is called with the keys written
    so far and the keys to write.
    """
    fallback_ttl_ms = None if lease_ttl_s is None else lease_ttl_ms(lease_ttl_s)
    header, entries = await asyncio.to_thread(_read_whole, source)
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
    new_ids: dict[int, int] = {}
    keeper = asyncio.create_task(_keep_alive(client, new_ids, min(wanted.values(), default=0)))
    try:
        grants = list(wanted.items())
        for start in range(0, len(grants), LOAD_WINDOW):  # each kept alive once granted
            chunk = grants[start : start + LOAD_WINDOW]
            ids = await asyncio.gather(*(client.grant_lease(ttl / 1000) for _, ttl in chunk))
            new_ids.update(zip((old for old, _ in chunk), ids, strict=True))
        steps = [
            Set(e.key, e.value, None if e.lease_id is None else new_ids[e.lease_id]) for e in kept
        ]
        try:
            _check_each_fits(steps)
        except InvalidArgument:
            for lease in new_ids.values():
                await client.revoke(lease)
            raise
        written = await _write_batches(client, _batches(steps), len(kept), progress)
    finally:
        keeper.cancel()  # a keepalive that failed shows as the writes' own failure
        await asyncio.gather(keeper, return_exceptions=True)
    return Loaded(written, len(new_ids), skipped)


def _read_whole(source: Target) -> tuple[DumpHeader, list[DumpEntry]]:
    if isinstance(source, str | Path):
        return read_dump(Path(source).read_bytes(), str(source))
    return read_dump(source.read(), "standard input")


def _check_each_fits(steps: list[Set]) -> None:
    """Refuse, before any key is written, a key that no request can carry here: one that
    fitted where it was dumped may not, with a longer lease id (ids grow with the revision
    at which a lease is granted), so this runs with the ids granted here."""
    for step in steps:
        size = len(encode_set(step.key, step.value, step.lease_id))
        if size > MAX_COMMAND_BYTES:
            on_lease = f" on lease {step.lease_id}" if step.lease_id is not None else ""
            raise InvalidArgument(
                f"{step.key!r} cannot be loaded{on_lease}: its write takes {size:,} bytes, "
                f"over the {MAX_COMMAND_BYTES:,} a request may hold; nothing was written "
                "(dump without it, by prefix, or set it by hand)"
            )


async def _keep_alive(client: KVApi, leases: dict[int, int], shortest_ttl_ms: int) -> None:
    """Renew the new leases while the load runs, every third of the shortest ttl counted from
    each round's start, all of a round's at once (one after another, 3,000 leases of 2 s ran
    out: second review); a round that fails is tried again at the next, and a lease that ran
    out shows as the writes' own failure."""
    if not shortest_ttl_ms:
        return
    period_s = shortest_ttl_ms / 3000
    loop = asyncio.get_running_loop()
    next_at = loop.time() + period_s
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at += period_s
        await asyncio.gather(
            *(client.keepalive(lease) for lease in list(leases.values())), return_exceptions=True
        )


async def _write_batches(
    client: KVApi,
    batches: Iterable[list[Set]],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Write each batch, :data:`LOAD_WINDOW` at a time; the first failure ends the load with
    that error alone (the others in flight are cancelled and their outcomes collected)."""
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
            progress(written, total)

    started: list[asyncio.Task[None]] = []
    pending: set[asyncio.Task[None]] = set()
    try:
        for batch in batches:
            if len(pending) >= LOAD_WINDOW:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            task = asyncio.create_task(write(batch))
            started.append(task)
            pending.add(task)
        for task in list(pending):
            await task
    finally:
        # Every task, done ones too, and every outcome collected: a failed task nobody asked
        # is a traceback from asyncio when it is freed (review: one per write in flight).
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
    return written


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
