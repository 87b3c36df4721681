"""The store's interface: indexes, modes, segments, retention, catch-up reads, group commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from paxoskv.errors import ConfigurationError, StorageFailed, StoreClosed, ValueTooLarge
from paxoskv.storage import FaultyDisk, GroupCommitter, MemoryDisk, OsDisk, Store, group_commit
from paxoskv.storage.snapshots import WHOLE_PIECE_BYTES, WRITE_BYTES, _in_writes

from .conftest import journal_names, numbered, recover_all


def test_indexes_are_gap_free_and_durable_only_after_sync() -> None:
    with Store.open(None, durability="memory") as store:
        assert (store.last_index, store.durable_index) == (0, 0)
        assert store.append([b"a", b"b"]) == 2
        assert store.append([]) == 2
        assert store.append([bytearray(b"c")]) == 3
        assert store.durable_index == 0
        assert store.sync() == 3 == store.durable_index
        assert store.sync() == 3  # nothing queued: no write


def test_records_must_be_bytes_and_not_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("paxoskv.storage.store.MAX_RECORD_BYTES", 100)
    with Store.open(None, durability="memory") as store:
        with pytest.raises(TypeError):
            store.append(["text"])  # type: ignore[list-item]
        with pytest.raises(ValueTooLarge, match="journal record of 101 bytes"):
            store.append([b"x" * 101])
        assert store.last_index == 0  # a refused batch queues nothing


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="needs a data dir"):
        Store.open(None)
    with pytest.raises(ConfigurationError, match="durability"):
        Store.open(None, durability="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="keep_snapshots"):
        Store.open(None, durability="memory", keep_snapshots=0)


def test_os_mode_survives_a_process_death_but_not_a_power_cut() -> None:
    for survives, end in ((True, MemoryDisk.release), (False, MemoryDisk.crash)):
        disk = MemoryDisk()
        with Store.open(None, disk=disk, durability="os") as store:
            store.append([b"a"])
            store.sync()
        end(disk)
        with Store.open(None, disk=disk) as store:
            assert recover_all(store)[1] == (numbered([b"a"]) if survives else [])


def test_a_batch_is_one_write_and_one_fsync(tmp_path: Path) -> None:
    faulty = FaultyDisk(OsDisk(tmp_path))
    with Store.open(None, disk=faulty) as store:
        store.append([b"first"])
        store.sync()  # creates the segment
        before = dict(faulty.calls)
        store.append([b"r%d" % i for i in range(1000)])
        store.sync()
        assert faulty.calls["append"] - before["append"] == 1
        assert faulty.calls["fsync"] - before["fsync"] == 1
        assert faulty.calls.get("fsync_dir", 0) == before.get("fsync_dir", 0)


def test_segments_roll_over_and_are_named_by_their_first_index() -> None:
    disk = MemoryDisk()
    records = [b"%05d" % i * 10 for i in range(1, 101)]
    with Store.open(None, disk=disk, segment_size_bytes=1024) as store:
        store.append(records)
        store.sync()
    names = journal_names(disk)
    assert len(names) > 5 and names[0] == "journal-00000000000000000001.log"
    firsts = [int(name[8:28]) for name in names]
    assert firsts == sorted(firsts)
    with Store.open(None, disk=disk) as store:
        assert recover_all(store)[1] == numbered(records)


def test_read_records_serves_durable_records_across_segments() -> None:
    records = [b"%05d" % i * 10 for i in range(1, 101)]
    with Store.open(None, durability="memory", segment_size_bytes=512) as store:
        store.append(records)
        store.sync()
        store.append([b"not yet durable"])
        assert store.read_records(5, 30) == numbered(records[4:34], 5)
        assert store.read_records(95, 30) == numbered(records[94:], 95)
        assert store.read_records(101, 10) == []
        assert store.read_records(1, 0) == []


def _append_200_with_a_snapshot_every_50(store: Store) -> None:
    """Records 1 to 200 of 40 bytes, each synced, and a snapshot after every fiftieth."""
    for index in range(1, 201):
        store.append([b"%05d" % index * 8])
        store.sync()
        if index % 50 == 0:
            store.write_snapshot(index, b"state %d" % index)


def test_retention_keeps_what_a_fallback_and_a_lagging_replica_need() -> None:
    disk = MemoryDisk()
    settings = {"segment_size_bytes": 512, "keep_snapshots": 2, "keep_journal_records": 20}
    with Store.open(None, disk=disk, **settings) as store:  # type: ignore[arg-type]
        _append_200_with_a_snapshot_every_50(store)
        assert store.snapshot_indexes == [150, 200]
        # records after the older snapshot (150) are kept, for a fall back to it
        assert store.first_index <= 151
        assert store.first_index > 100  # but segments wholly covered by it are gone
        assert store.read_records(store.first_index - 1, 5) is None  # pruned: send a snapshot
        assert store.read_records(151, 1) == [(151, b"%05d" % 151 * 8)]


def test_retention_keeps_a_margin_of_records_before_the_newest_snapshot() -> None:
    settings = {"segment_size_bytes": 512, "keep_snapshots": 1, "keep_journal_records": 100}
    with Store.open(None, durability="memory", **settings) as store:  # type: ignore[arg-type]
        _append_200_with_a_snapshot_every_50(store)
        assert store.snapshot_indexes == [200]
        assert 50 < store.first_index <= 101


def test_retention_bounds_the_margin_in_bytes_too() -> None:
    """A record may be a batch of hundreds of commands: the margin of records alone kept
    gigabytes of journal beside a small state. Segments of 512 bytes hold 8 records of 40
    bytes (480 bytes with their frames and header); a margin of 1,100 bytes keeps two of them
    before the one being written, not the 100 records (twelve) the count alone would."""
    disk = MemoryDisk()
    settings = {
        "segment_size_bytes": 512,
        "keep_snapshots": 1,
        "keep_journal_records": 100,
        "keep_journal_bytes": 1_100,
    }
    with Store.open(None, disk=disk, **settings) as store:  # type: ignore[arg-type]
        _append_200_with_a_snapshot_every_50(store)
        assert store.snapshot_indexes == [200]
        segments = sorted(name for name in disk.listdir() if name.startswith("journal-"))
        margin = [name for name in segments if int(name[8:-4]) <= 200]
        assert sum(disk.size(name) for name in margin[:-1]) <= 1_100  # the sealed ones before
        assert 150 < store.first_index < 200  # far fewer than the 100 records the count allows
        assert store.read_records(store.first_index, 200 - store.first_index + 1) == [
            (index, b"%05d" % index * 8) for index in range(store.first_index, 201)
        ]
    with Store.open(None, disk=disk, **settings) as store:  # type: ignore[arg-type]
        assert recover_all(store) == ((200, b"state 200"), [])


def test_the_journal_margin_in_bytes_must_not_be_negative() -> None:
    with pytest.raises(ConfigurationError, match="keep_journal_bytes must be 0 or more"):
        Store.open(None, durability="memory", keep_journal_bytes=-1)


def test_a_snapshot_past_the_end_of_the_journal_moves_the_next_index() -> None:
    disk = MemoryDisk()
    with Store.open(None, disk=disk) as store:
        store.append([b"a", b"b"])
        store.sync()
        store.write_snapshot(1000, b"state from a peer")
        assert (store.last_index, store.durable_index) == (1000, 1000)
        assert store.append([b"next"]) == 1001
        store.sync()
        assert store.read_records(3, 10) is None  # covered by the snapshot, not held
        assert store.read_records(1001, 10) == [(1001, b"next")]
    with Store.open(None, disk=disk) as store:
        assert recover_all(store) == ((1000, b"state from a peer"), [(1001, b"next")])


def test_a_snapshot_may_not_go_back() -> None:
    with Store.open(None, durability="memory") as store:
        store.write_snapshot(5, b"five")
        with pytest.raises(ValueError, match="at least index 5"):
            store.write_snapshot(4, b"four")


def test_what_open_found_is_handed_over_once() -> None:
    with Store.open(None, durability="memory") as store:
        assert store.recovered_snapshot() is None
        with pytest.raises(RuntimeError):
            store.recovered_snapshot_reader()
        assert list(store.recovered_records()) == []
        with pytest.raises(RuntimeError):
            store.recovered_records()


def test_a_closed_store_refuses_work_and_close_flushes() -> None:
    disk = MemoryDisk()
    store = Store.open(None, disk=disk)
    store.append([b"queued"])
    store.close()
    store.close()
    for call in (store.sync, lambda: store.append([b"x"]), lambda: store.write_snapshot(9, b"")):
        with pytest.raises(StoreClosed):
            call()
    disk.crash()  # close synced what was queued
    with Store.open(None, disk=disk) as reopened:
        assert recover_all(reopened)[1] == [(1, b"queued")]


class _GatedDisk(FaultyDisk):
    """Holds every fsync until the test lets it through, to make group commit visible."""

    def __init__(self) -> None:
        super().__init__(MemoryDisk())
        self.in_fsync = threading.Event()
        self.gate = threading.Event()

    def fsync(self, handle: int) -> None:
        self.in_fsync.set()
        assert self.gate.wait(timeout=30)
        super().fsync(handle)


def _held_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The group committer's clock, held by the test: ``clock[0]`` is the time it reads."""
    clock = [100.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return clock[0]

    monkeypatch.setattr(group_commit, "time", Clock)
    return clock


class _SlowDisk(FaultyDisk):
    """Every fsync takes ``fsync_s`` on a clock the test holds."""

    def __init__(self, clock: list[float], fsync_s: float) -> None:
        super().__init__(MemoryDisk())
        self.clock, self.fsync_s = clock, fsync_s

    def fsync(self, handle: int) -> None:
        self.clock[0] += self.fsync_s
        super().fsync(handle)


def test_records_appended_during_a_sync_go_into_the_next_one() -> None:
    disk = _GatedDisk()
    store = Store.open(None, disk=disk)
    store.append([b"first"])
    result: list[int] = []
    syncing = threading.Thread(target=lambda: result.append(store.sync()))
    syncing.start()
    assert disk.in_fsync.wait(timeout=30)
    assert store.append([b"second", b"third"]) == 3
    disk.gate.set()
    syncing.join(timeout=30)
    assert result == [1] and store.durable_index == 1
    assert store.sync() == 3
    store.close()


def test_group_commit_batches_whatever_waits_and_resolves_only_when_durable() -> None:
    disk = _GatedDisk()
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    first = committer.submit([b"first"])
    assert disk.in_fsync.wait(timeout=30)
    waiting = [committer.submit([b"w%d" % i, b"x%d" % i]) for i in range(50)]
    assert not any(future.done() for future in [first, *waiting])
    disk.gate.set()
    assert [future.result(timeout=30) for future in waiting] == list(range(3, 102, 2))
    assert first.result(timeout=30) == 1
    assert disk.calls["fsync"] == 2  # the first record's sync, then one for all 50 submits
    assert store.durable_index == 101
    committer.close()
    store.close()


def test_group_commit_lets_unwaited_records_ride_with_the_next_sync() -> None:
    disk = _GatedDisk()
    disk.gate.set()
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    lazy = committer.submit([b"chosen 1"], sync=False)
    assert store.last_index == 1  # written at once ...
    assert not lazy.done() and disk.calls.get("fsync", 0) == 0  # ... but no sync of its own
    urgent = committer.submit([b"accept 2"])
    assert urgent.result(timeout=30) == 2 and lazy.result(timeout=30) == 1
    assert disk.calls["fsync"] == 1  # one sync covered both
    later = committer.submit([b"chosen 3"], sync=False)
    committer.request_sync()  # the runtime's timer
    assert later.result(timeout=30) == 3 and disk.calls["fsync"] == 2
    committer.request_sync()  # nothing waits: no sync
    last = committer.submit([b"chosen 4"], sync=False)
    committer.close()  # closing syncs what is left
    assert last.result(timeout=30) == 4 and store.durable_index == 4
    store.close()


def test_sync_here_syncs_on_the_callers_thread_only_when_the_writer_is_idle() -> None:
    disk = _GatedDisk()
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    assert not committer.sync_here()  # nothing waits: nothing to do
    quiet = committer.submit([b"accept 1"], sync=False)
    fsyncs_on: list[str] = []
    original_fsync = disk.fsync

    def fsync(handle: int) -> None:
        fsyncs_on.append(threading.current_thread().name)
        original_fsync(handle)

    disk.fsync = fsync  # type: ignore[method-assign]
    disk.gate.set()
    assert committer.sync_here()  # the writer thread is idle: synced here, before returning
    assert quiet.done() and quiet.result() == 1 and store.durable_index == 1
    assert fsyncs_on == [threading.current_thread().name]

    disk.gate.clear()
    disk.in_fsync.clear()
    busy = committer.submit([b"accept 2"])  # the writer thread takes this one ...
    assert disk.in_fsync.wait(timeout=30)
    behind = committer.submit([b"accept 3"], sync=False)
    assert not committer.sync_here()  # ... so a caller does not sync beside it
    committer.request_sync()
    disk.gate.set()
    assert busy.result(timeout=30) == 2 and behind.result(timeout=30) == 3
    assert fsyncs_on[1:] == ["paxoskv-group-commit " + store.location] * 2
    committer.close()
    store.close()


def test_sync_here_declines_while_writes_stream_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within half a sync's time of the last one the disk is busy: the writer thread batches."""
    clock = _held_clock(monkeypatch)
    disk = _SlowDisk(clock, fsync_s=0.001)
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    clock[0] += 0.1
    first = committer.submit([b"accept 1"], sync=False)
    assert committer.sync_here() and first.result(timeout=30) == 1  # quiet: synced here
    second = committer.submit([b"accept 2"], sync=False)
    clock[0] += 0.0004  # less than half a sync's time since the last one ended
    assert not committer.sync_here()
    clock[0] += 0.01  # now more
    assert committer.sync_here() and second.result(timeout=30) == 2
    for index in range(3, 23):  # a stream of writes: each sync starts as the last one ends
        assert committer.submit([b"accept %d" % index]).result(timeout=30) == index
    third = committer.submit([b"accept 23"], sync=False)
    clock[0] += 0.0025  # a pause in the stream is not yet a quiet disk (on average) ...
    assert not committer.sync_here()
    committer.request_sync()
    assert third.result(timeout=30) == 23
    for index in range(24, 34):  # ... but a run of pauses is
        clock[0] += 0.01
        assert committer.submit([b"accept %d" % index]).result(timeout=30) == index
    clock[0] += 0.01
    fourth = committer.submit([b"accept 34"], sync=False)
    assert committer.sync_here() and fourth.result(timeout=30) == 34
    committer.close()
    store.close()


def test_sync_here_syncs_on_the_callers_thread_between_one_clients_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One client's sequential writes: a sync every round trip, the disk idle about as long
    as a sync takes. That is a quiet disk, and each sync runs on the caller's thread (the
    bound of two syncs' time sent half of them to the writer thread, a handoff each)."""
    clock = _held_clock(monkeypatch)
    disk = _SlowDisk(clock, fsync_s=0.0004)
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    clock[0] += 0.1
    for index in range(1, 30):
        clock[0] += 0.0005  # a round trip, a little longer than the sync
        waiting = committer.submit([b"accept %d" % index], sync=False)
        assert committer.sync_here() and waiting.result(timeout=30) == index
    committer.close()
    store.close()


def test_sync_here_takes_one_slow_sync_in_its_stride_but_not_a_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One 5 ms sync among 0.4 ms ones leaves the average under 2 ms: the next sync still
    runs here. A stall (a sync over 10 ms) sends the next ones to the writer thread at once,
    until the average is back under 2 ms."""
    clock = _held_clock(monkeypatch)
    disk = _SlowDisk(clock, fsync_s=0.0004)
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    clock[0] += 0.1
    index = 0

    def write(fsync_s: float, *, pause_s: float = 0.05) -> bool:
        nonlocal index
        index += 1
        disk.fsync_s = fsync_s
        clock[0] += pause_s
        waiting = committer.submit([b"accept %d" % index], sync=False)
        synced_here = committer.sync_here()
        if not synced_here:
            committer.request_sync()
        assert waiting.result(timeout=30) == index
        return synced_here

    assert all(write(0.0004) for _ in range(5))
    assert write(0.005)  # not known to be slow yet
    assert write(0.0004)  # one slow sync is not a slow disk
    assert write(0.02)
    assert not write(0.0004)  # right after a stall: to the writer thread ...
    # ... and on until fast syncs have brought the average back under 2 ms
    assert [write(0.0004) for _ in range(5)] == [False, False, False, False, True]
    committer.close()
    store.close()


def test_sync_here_never_waits_on_a_slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _held_clock(monkeypatch)
    disk = _SlowDisk(clock, fsync_s=0.02)  # a spinning disk's fsync
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    clock[0] += 1.0
    first = committer.submit([b"accept 1"], sync=False)
    assert committer.sync_here() and first.result(timeout=30) == 1  # not known to be slow yet
    for index in range(2, 5):
        clock[0] += 1.0  # however quiet the disk has been since
        waiting = committer.submit([b"accept %d" % index], sync=False)
        assert not committer.sync_here()  # the loop never waits 20 ms on it
        committer.request_sync()
        assert waiting.result(timeout=30) == index
    committer.close()
    store.close()


def test_a_failed_sync_here_fails_every_waiter_and_every_later_submit() -> None:
    disk = FaultyDisk(MemoryDisk())
    store = Store.open(None, disk=disk)
    committer = GroupCommitter(store)
    waiting = committer.submit([b"accept 1"], sync=False)
    disk.fail("fsync")
    assert committer.sync_here()
    with pytest.raises(StorageFailed):
        waiting.result(timeout=30)
    with pytest.raises(StorageFailed):
        committer.submit([b"accept 2"]).result(timeout=30)
    committer.close()


def test_group_commit_from_many_threads() -> None:
    store = Store.open(None, durability="memory")
    committer = GroupCommitter(store)
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        for round_number in range(50):
            index = committer.submit([b"%d-%d" % (number, round_number)]).result(timeout=30)
            assert store.durable_index >= index
            with lock:
                results.append((index, number))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    committer.close()
    assert sorted(index for index, _ in results) == list(range(1, 201))
    store.close()


@pytest.mark.parametrize("key", [None, b"k" * 32])
def test_a_snapshot_written_in_pieces_reads_back_as_their_concatenation(key: bytes | None) -> None:
    disk = MemoryDisk()
    pieces = [b"head", b"x" * 700_000, b"", b"y" * 700_000, b"tail"]  # more than one write
    with Store.open(None, disk=disk, encryption_key=key) as store:
        store.write_snapshot(7, pieces)
    with Store.open(None, disk=disk, encryption_key=key) as store:
        assert recover_all(store) == ((7, b"".join(pieces)), [])


def test_a_snapshot_goes_out_in_few_writes_without_copying_its_big_pieces() -> None:
    """Small pieces are joined into writes of up to WRITE_BYTES; a big one (a state of 1 KB
    values packs in 512 KB pieces) is written as the object it is, not copied into a join."""
    small = [bytes([n % 256]) * 1_000 for n in range(600)]  # 600 KB of small pieces
    big = [b"B" * WHOLE_PIECE_BYTES, b"C" * (WRITE_BYTES + 1)]
    pieces = [*small, big[0], b"s", big[1], *small[:3]]
    writes = list(_in_writes(pieces))
    assert b"".join(writes) == b"".join(pieces)
    assert [w for w in writes if len(w) >= WHOLE_PIECE_BYTES and w in big] == big
    assert any(w is big[0] for w in writes) and any(w is big[1] for w in writes)
    assert all(len(w) <= WRITE_BYTES for w in writes if w not in big)
    assert len(writes) == 5  # the small ones joined, each big one alone, the rest joined


def test_marked_submits_are_told_once_per_sync_with_the_highest_mark_made_durable() -> None:
    """The runtime's persists: no callback each, one call per sync with the highest mark."""
    disk = _GatedDisk()
    disk.gate.set()
    store = Store.open(None, disk=disk)
    told: list[tuple[int, object]] = []
    committer = GroupCommitter(store, lambda mark, error: told.append((mark, error)))
    committer.submit_marked([b"accept 1"], 7, False)
    committer.submit_marked([b"chosen 1", b"accept 2"], 8, False)
    assert told == [] and store.last_index == 3  # appended, not synced
    assert committer.sync_here()  # a fresh committer's disk is quiet
    assert told == [(8, None)] and store.durable_index == 3  # one call for both
    committer.submit_marked([b"accept 3"], 9)  # sync=True: the writer thread's
    deadline = time.monotonic() + 30
    while len(told) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert told == [(8, None), (9, None)] and disk.calls["fsync"] == 2
    committer.request_sync()  # nothing waits: no sync, nobody told
    committer.close()
    assert told == [(8, None), (9, None)] and disk.calls["fsync"] == 2
    committer.submit_marked([b"late"], 10)  # closed: told at once, with the error
    assert told[2][0] == 0 and isinstance(told[2][1], StoreClosed)
    store.close()


def test_marked_and_plain_submits_interleaved_are_each_told_by_the_sync_that_covers_them() -> None:
    disk = _GatedDisk()
    disk.gate.set()
    store = Store.open(None, disk=disk)
    told: list[tuple[int, object]] = []
    committer = GroupCommitter(store, lambda mark, error: told.append((mark, error)))
    committer.submit_marked([b"a"], 1, False)
    plain = committer.submit([b"b", b"c"], sync=False)
    committer.submit_marked([b"d"], 2, False)
    assert committer.sync_here()
    assert told == [(2, None)] and plain.result(timeout=0) == 3
    committer._sync_s = 1.0  # from here on the writer thread syncs
    disk.gate.clear()
    disk.in_fsync.clear()
    committer.submit_marked([b"e"], 3)
    assert disk.in_fsync.wait(10)  # the writer thread's sync of "e" is under way
    later = committer.submit([b"f"], sync=False)
    committer.submit_marked([b"g"], 4, False)
    committer.request_sync()
    disk.gate.set()
    assert later.result(timeout=10) == 6
    deadline = time.monotonic() + 10
    while told[-1][0] != 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert [mark for mark, _ in told] == [2, 3, 4]  # "e" alone, then "f" and "g" together
    committer.close()
    store.close()


def test_a_journal_write_stopped_by_something_other_than_an_io_error_fails_the_store() -> None:
    """An interrupt or a custom Disk raising anything but OSError mid-write left the store
    usable with its counters past records that never reached the file: the next record took
    the lost one's index. Now the store fails, as on an I/O error, and the error goes up."""

    class StopsOnce(MemoryDisk):
        calls = 0

        def append_parts(self, handle: int, parts: list[bytes]) -> None:
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            super().append_parts(handle, parts)

    disk = StopsOnce()
    store = Store.open(None, disk=disk)
    store.append([b"r1"])
    assert store.sync() == 1
    store.append([b"r2"])
    with pytest.raises(KeyboardInterrupt):
        store.sync()
    with pytest.raises(StorageFailed, match="interrupted"):
        store.append([b"r3"])
    assert store.durable_index == 1
    store.close()
    disk.crash()
    with Store.open(None, disk=disk) as again:
        assert recover_all(again)[1] == [(1, b"r1")]
