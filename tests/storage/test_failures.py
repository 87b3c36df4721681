"""The store under trouble: a second opener, a full disk, a failing fsync.

An I/O error must stop the store for good, report nothing durable that is not, and never
retry an fsync (after a failed fsync the kernel may have dropped the dirty pages, so a retry
that succeeds proves nothing).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from paxoskv.errors import DataDirLocked, StorageFailed, StoreClosed
from paxoskv.storage import FaultyDisk, GroupCommitter, MemoryDisk, OsDisk, Store

from .conftest import numbered, recover_all

HOLDER = """
import sys
import threading
sys.path.insert(0, sys.argv[2])
from paxoskv.storage import Store
store = Store.open(sys.argv[1])
print("open", flush=True)
sys.stdin.readline()
"""


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    repository = str(Path(__file__).resolve().parents[2])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), repository],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(DataDirLocked) as caught:
            Store.open(tmp_path)
        assert caught.value.holder_pid == holder.pid
        assert f"process {holder.pid}" in str(caught.value)
    finally:
        holder.communicate("\n", timeout=30)
    with Store.open(tmp_path) as store:  # the lock died with its process
        assert store.last_index == 0


def test_a_second_opener_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path), pytest.raises(DataDirLocked, match=f"process {os.getpid()}"):
        Store.open(tmp_path)
    Store.open(tmp_path).close()  # closing released it


def test_a_second_opener_of_one_memory_disk_is_refused() -> None:
    disk = MemoryDisk()
    with Store.open(None, disk=disk), pytest.raises(DataDirLocked):
        Store.open(None, disk=disk)


def _store_with_durable_records(inner: object) -> tuple[FaultyDisk, Store]:
    faulty = FaultyDisk(inner)  # type: ignore[arg-type]
    store = Store.open(None, disk=faulty)
    store.append([b"one", b"two"])
    store.sync()
    return faulty, store


@pytest.mark.parametrize(
    ("operation", "code"), [("append", errno.ENOSPC), ("fsync", errno.EIO), ("fsync", errno.ENOSPC)]
)
def test_a_failed_write_or_fsync_stops_the_store_for_good(operation: str, code: int) -> None:
    disk = MemoryDisk()
    faulty, store = _store_with_durable_records(disk)
    faulty.fail(operation, errno=code)
    assert store.append([b"three"]) == 3
    with pytest.raises(StorageFailed) as caught:
        store.sync()
    assert caught.value.cause.errno == code
    assert "journal-" in str(caught.value) and "restart" in str(caught.value)
    assert store.durable_index == 2  # never past what was really synced
    fsyncs = faulty.calls.get("fsync", 0)
    for call in (store.sync, lambda: store.append([b"four"]), lambda: store.write_snapshot(2, b"")):
        with pytest.raises(StorageFailed):
            call()
    assert faulty.calls.get("fsync", 0) == fsyncs  # the failed fsync was not retried
    assert store.durable_index == 2
    store.close()
    with pytest.raises(StoreClosed):
        store.sync()
    disk.crash()
    with Store.open(None, disk=disk) as reopened:
        assert recover_all(reopened) == (None, numbered([b"one", b"two"]))


def test_a_full_disk_on_real_files(tmp_path: Path) -> None:
    faulty, store = _store_with_durable_records(OsDisk(tmp_path))
    faulty.fail("append", errno=errno.ENOSPC)
    store.append([b"three"])
    with pytest.raises(StorageFailed, match="No space left on device"):
        store.sync()
    store.close()
    with Store.open(tmp_path) as reopened:
        assert recover_all(reopened) == (None, numbered([b"one", b"two"]))


def test_a_full_disk_while_writing_a_snapshot_stops_the_store_and_keeps_the_old_state() -> None:
    disk = MemoryDisk()
    faulty, store = _store_with_durable_records(disk)
    faulty.fail("append", nth=2, errno=errno.ENOSPC)  # the snapshot body
    with pytest.raises(StorageFailed, match="snapshot-"):
        store.write_snapshot(2, b"state" * 1000)
    with pytest.raises(StorageFailed):
        store.append([b"three"])
    disk.crash()
    with Store.open(None, disk=disk) as reopened:
        assert recover_all(reopened) == (None, numbered([b"one", b"two"]))
        assert not [name for name in disk.listdir() if name.endswith(".tmp")]


def test_group_commit_fails_every_waiting_future_and_refuses_new_ones() -> None:
    disk = MemoryDisk()
    faulty, store = _store_with_durable_records(disk)
    committer = GroupCommitter(store)
    assert committer.submit([b"three"]).result(timeout=10) == 3
    faulty.fail("fsync", errno=errno.EIO)
    failed = committer.submit([b"four"])
    with pytest.raises(StorageFailed):
        failed.result(timeout=10)
    with pytest.raises(StorageFailed):
        committer.submit([b"five"]).result(timeout=10)
    committer.close()
    assert store.durable_index == 3
    store.close()


def test_group_commit_tells_a_marked_caller_of_a_failure_once() -> None:
    disk = MemoryDisk()
    faulty, store = _store_with_durable_records(disk)
    told: list[tuple[int, object]] = []
    committer = GroupCommitter(store, lambda mark, error: told.append((mark, error)))
    faulty.fail("fsync", errno=errno.EIO)
    committer.submit_marked([b"three"], 1, False)
    committer.submit_marked([b"four"], 2, False)
    assert committer.sync_here()  # it synced (and failed) here
    assert [mark for mark, _ in told] == [0] and isinstance(told[0][1], StorageFailed)
    committer.submit_marked([b"five"], 3)  # refused at once, told again
    assert [mark for mark, _ in told] == [0, 0] and isinstance(told[1][1], StorageFailed)
    committer.close()
    assert store.durable_index == 2
    store.close()


def test_a_failed_sync_here_whose_waiter_raises_still_lets_the_committer_close() -> None:
    """A callback that raises while told of the failure (a loop already closed, say) must not
    leave the sync marked running: the writer thread would sleep on it and close() hang."""
    disk = MemoryDisk()
    faulty, store = _store_with_durable_records(disk)

    def on_marked(mark: int, error: object) -> None:
        raise RuntimeError("Event loop is closed")

    committer = GroupCommitter(store, on_marked)
    faulty.fail("fsync", errno=errno.EIO)
    committer.submit_marked([b"three"], 1, False)
    with pytest.raises(RuntimeError):
        committer.sync_here()
    closer = threading.Thread(target=committer.close, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() hung: the failed sync was left running"
    store.close()


def test_a_cancelled_future_does_not_stop_the_writer_thread() -> None:
    """``asyncio.wrap_future`` cancels the future when its awaiter is cancelled: resolving it
    then raised InvalidStateError on the writer thread, which died, and no later submit was
    ever synced."""
    store = Store.open(None, disk=MemoryDisk())
    committer = GroupCommitter(store)
    committer._sync_s = 1.0  # never on the caller's thread: the writer thread syncs
    committer.submit([b"one"], sync=False).cancel()
    assert committer.submit([b"two"]).result(timeout=10) == 2
    committer.close()
    store.close()


def test_a_segment_that_cannot_be_opened_at_start_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only last segment (opened to sync it at recovery) was reported as the data
    dir failing, with no file named (storage audit, twenty-first session)."""
    store = Store.open(tmp_path)
    store.append([b"one"])
    store.sync()
    store.close()
    real_open = os.open

    def refuse_journal_writes(path: str, flags: int, *args: int) -> int:
        if path.endswith(".log") and flags & os.O_WRONLY:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse_journal_writes)
    with pytest.raises(StorageFailed) as caught:
        Store.open(tmp_path)
    assert caught.value.path.startswith(str(tmp_path / "journal-"))
    assert "Let this user write to the data dir" in str(caught.value)
