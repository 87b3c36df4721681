"""Crashes at every step of writing a snapshot and pruning, and crashes at random.

A FaultyDisk stops the store between two steps (DiskStopped), as if the machine died there;
then the disk either loses all that was not synced (``crash()``), loses it untidily (torn
tails, half-synced directory entries: ``crash(rng)``), or keeps it all (``release()``, the
process died but the machine did not). Every outcome must recover the whole state.
"""

from __future__ import annotations

import random
from pathlib import Path

import msgpack
import pytest

from paxoskv.errors import DataDirLocked, StorageFailed
from paxoskv.storage import DiskStopped, FaultyDisk, MemoryDisk, OsDisk, Store
from paxoskv.storage.disk import Disk

from .conftest import recover_all

RECORDS = [b"record-%03d" % i * (1 + i % 4) for i in range(1, 41)]
SETTINGS = {"segment_size_bytes": 256, "keep_snapshots": 1, "keep_journal_records": 0}


def _state(disk: Disk) -> list[bytes]:
    """The whole log a store recovers: its snapshot's list, then the records after it."""
    with Store.open(None, disk=disk, **SETTINGS) as store:  # type: ignore[arg-type]
        snapshot, records = recover_all(store)
    state: list[bytes] = msgpack.unpackb(snapshot[1]) if snapshot else []
    assert [i for i, _ in records] == list(range(len(state) + 1, len(state) + len(records) + 1))
    return state + [record for _, record in records]


def _prepare(disk: Disk) -> tuple[FaultyDisk, Store]:
    """30 records over several segments and a snapshot at 12, all durable; store left open."""
    faulty = FaultyDisk(disk)
    store = Store.open(None, disk=faulty, **SETTINGS)  # type: ignore[arg-type]
    for index, record in enumerate(RECORDS[:30], start=1):
        store.append([record])
        store.sync()
        if index == 12:
            store.write_snapshot(12, msgpack.packb(RECORDS[:12]))
    return faulty, store


def _snapshot_steps() -> list[tuple[str, str]]:
    faulty, store = _prepare(MemoryDisk())
    before = len(faulty.changes)
    store.write_snapshot(25, msgpack.packb(RECORDS[:25]))
    steps = faulty.changes[before:]
    store.close()
    return steps


def test_the_snapshot_steps_are_the_crash_safe_order() -> None:
    steps = [operation for operation, _ in _snapshot_steps()]
    # The header's place, the body, the header over its place once the body's length and CRC
    # are known, then the sync that makes the whole file durable before the rename.
    assert steps[:7] == ["create", "append", "append", "write_at", "fsync", "rename", "fsync_dir"]
    assert steps.count("remove") >= 3  # the old snapshot and the segments it covered
    assert steps[-1] == "fsync_dir"


def _crash_at_every_step(make_disk: object, after_crash: object) -> int:
    steps = len(_snapshot_steps())
    for stop_after in range(steps + 1):
        disk = make_disk()  # type: ignore[operator]
        faulty, store = _prepare(disk)
        faulty.stop_after(stop_after)
        try:
            store.write_snapshot(25, msgpack.packb(RECORDS[:25]))
        except DiskStopped:
            pass
        else:
            assert stop_after == steps
        after_crash(disk, stop_after)  # type: ignore[operator]
        assert _state(disk) == RECORDS[:30], stop_after
        with Store.open(None, disk=disk, **SETTINGS) as store:  # type: ignore[arg-type]
            store.append(RECORDS[30:])
            store.write_snapshot(35, msgpack.packb(RECORDS[:35]))
        assert _state(disk) == RECORDS, stop_after
    return steps


def test_a_power_cut_at_every_step_of_snapshot_and_prune() -> None:
    assert _crash_at_every_step(MemoryDisk, lambda disk, _: disk.crash()) >= 10


@pytest.mark.parametrize("seed", range(6))
def test_an_untidy_power_cut_at_every_step(seed: int) -> None:
    rng = random.Random(seed)
    _crash_at_every_step(MemoryDisk, lambda disk, _: disk.crash(rng))


def test_a_process_death_at_every_step_on_real_files(tmp_path: Path) -> None:
    directories = iter(range(1000))
    _crash_at_every_step(
        lambda: OsDisk(tmp_path / f"run-{next(directories)}"),
        lambda disk, _: disk.release(),
    )


def test_a_crash_right_after_the_rename_keeps_the_new_snapshot() -> None:
    disk = MemoryDisk()
    faulty, store = _prepare(disk)
    faulty.stop_after(7)  # create, append, append, write_at, fsync, rename, fsync_dir: stop
    with pytest.raises(DiskStopped):
        store.write_snapshot(25, msgpack.packb(RECORDS[:25]))
    disk.crash()
    with Store.open(None, disk=disk, **SETTINGS) as reopened:  # type: ignore[arg-type]
        snapshot = reopened.recovered_snapshot()
        assert snapshot is not None and snapshot[0] == 25
        assert reopened.snapshot_indexes == [25]  # open finished the pruning


@pytest.mark.parametrize("seed", range(40))
def test_random_work_and_random_crashes_never_lose_a_durable_record(seed: int) -> None:
    """The simulator's use: one MemoryDisk, a store re-opened on it after every crash."""
    rng = random.Random(seed)
    disk = MemoryDisk()
    history: list[bytes] = []  # the log as the model knows it; a crash may shorten it
    durable = 0  # how much of it the store said was durable before the crash
    for _life in range(8):
        faulty = FaultyDisk(disk)
        store = Store.open(None, disk=faulty, **SETTINGS)  # type: ignore[arg-type]
        recovered = _recovered_log(store)
        assert recovered == history[: len(recovered)]
        assert len(recovered) >= durable
        history = recovered
        reported = [len(history)]
        faulty.stop_after(rng.randrange(5, 60))
        with pytest.raises(DiskStopped):
            _random_work(rng, store, history, reported)
        durable = reported[0]
        disk.crash(rng)


def _recovered_log(store: Store) -> list[bytes]:
    snapshot, records = recover_all(store)
    state: list[bytes] = msgpack.unpackb(snapshot[1]) if snapshot else []
    return state + [record for _, record in records]


def _random_work(
    rng: random.Random, store: Store, history: list[bytes], reported: list[int]
) -> None:
    """Appends, syncs, snapshots and installed snapshots until the disk stops.

    ``reported[0]`` follows the durable index the store reports, so that the caller still
    knows it after the stop.
    """
    while True:
        action = rng.random()
        if action < 0.6:
            batch = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 6))]
            assert store.append(batch) == len(history) + len(batch)
            history.extend(batch)
        elif action < 0.85:
            reported[0] = store.sync()
            assert reported[0] == len(history)
        elif action < 0.95:
            reported[0] = store.sync()
            store.write_snapshot(reported[0], msgpack.packb(history[: reported[0]]))
        else:  # a snapshot from a peer, past the end of our journal
            reported[0] = store.sync()
            history.extend(b"peer-%d" % i for i in range(rng.randrange(1, 30)))
            store.write_snapshot(len(history), msgpack.packb(history))
            reported[0] = store.durable_index
            assert reported[0] == len(history)


def test_a_store_abandoned_by_a_crash_cannot_release_its_successors_lock() -> None:
    disk = MemoryDisk()
    old = Store.open(None, disk=disk)
    old.append([b"a"])
    old.sync()
    disk.crash()
    new = Store.open(None, disk=disk)
    old.append([b"ghost"])
    with pytest.raises(StorageFailed):  # its file handles died with the crash
        old.sync()
    old.close()
    with pytest.raises(DataDirLocked):
        Store.open(None, disk=disk)
    assert recover_all(new) == (None, [(1, b"a")])
    new.close()
