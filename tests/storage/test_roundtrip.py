"""Round trips: whatever goes in comes back out, byte for byte, after a re-open."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxoskv.storage import MemoryDisk, Store

from .conftest import KEY, numbered, recover_all

batches = st.lists(st.lists(st.binary(max_size=300), max_size=12), max_size=8)


@settings(max_examples=60, deadline=None)
@given(batches, st.booleans(), st.sampled_from([4096, 1 << 20]))
def test_records_round_trip(
    record_batches: list[list[bytes]], encrypted: bool, segment_size_bytes: int
) -> None:
    disk = MemoryDisk()
    key = KEY if encrypted else None
    expected: list[bytes] = []
    with Store.open(
        None, disk=disk, encryption_key=key, segment_size_bytes=segment_size_bytes
    ) as store:
        for batch in record_batches:
            last = store.append(batch)
            expected.extend(batch)
            assert last == len(expected)
            assert store.sync() == len(expected) == store.durable_index
    with Store.open(None, disk=disk, encryption_key=key) as store:
        assert recover_all(store) == (None, numbered(expected))
        assert store.last_index == len(expected)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(max_size=2000), min_size=1, max_size=4),
    st.lists(st.binary(max_size=100), max_size=10),
    st.booleans(),
)
def test_snapshot_blobs_round_trip(blobs: list[bytes], tail: list[bytes], encrypted: bool) -> None:
    disk = MemoryDisk()
    key = KEY if encrypted else None
    with Store.open(None, disk=disk, encryption_key=key) as store:
        for covered, blob in enumerate(blobs, start=1):
            store.append([b"r%d" % covered])
            store.sync()
            store.write_snapshot(covered, blob)
        store.append(tail)
    with Store.open(None, disk=disk, encryption_key=key) as store:
        covered = len(blobs)
        assert recover_all(store) == ((covered, blobs[-1]), numbered(tail, covered + 1))


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches, st.binary(max_size=5000))
def test_round_trip_on_real_files(
    tmp_path: Path, record_batches: list[list[bytes]], blob: bytes
) -> None:
    directory = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: hypothesis repeats
    flat = [record for batch in record_batches for record in batch]
    with Store.open(directory, segment_size_bytes=4096) as store:
        for batch in record_batches:
            store.append(batch)
            store.sync()
        store.write_snapshot(len(flat), blob)
        store.append([b"after"])
    with Store.open(directory) as store:
        assert recover_all(store) == ((len(flat), blob), [(len(flat) + 1, b"after")])


def test_the_snapshot_stream_gives_the_same_bytes() -> None:
    disk = MemoryDisk()
    blob = bytes(range(256)) * 40_000  # larger than one read chunk
    with Store.open(None, disk=disk, encryption_key=KEY) as store:
        store.write_snapshot(0, blob)
    with Store.open(None, disk=disk, encryption_key=KEY) as store:
        found = store.recovered_snapshot_reader()
        assert found is not None
        covered, stream = found
        pieces = []
        while piece := stream.read(70_001):
            pieces.append(piece)
        assert covered == 0 and b"".join(pieces) == blob
