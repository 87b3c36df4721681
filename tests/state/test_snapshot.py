"""Snapshot, restore and digest: a restored replica is the same replica."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import msgpack
import pytest

from paxoskv.state import (
    AddLearner,
    Configuration,
    Delete,
    Failed,
    KVStateMachine,
    LeaseGrant,
    LeaseKeepalive,
    MalformedCommand,
    MalformedSnapshot,
    NoOp,
    Set,
    decode_result,
    encode_command,
)
from paxoskv.state.snapshot import (
    ROWS_PER_PIECE,
    SNAPSHOT_FORMAT,
    SNAPSHOT_MAGIC,
    _flat_rows,
    array_header,
    pack_items,
)
from paxoskv.state.wire import pack

REPO_ROOT = Path(__file__).resolve().parents[2]


def busy() -> KVStateMachine:
    """A machine with something in every part of its state."""
    m = KVStateMachine(
        Configuration(frozenset({"a", "b"}), frozenset({"c"})),
        history_limit_events=5,
        dedup_window_requests=3,
        dedup_client_idle_ms=10_000,
    )
    lease = m.apply(LeaseGrant(1000), 100).lease_id  # type: ignore[union-attr]
    m.apply(Set(("session", 1), {"user": (1, [2])}, lease_id=lease), 200)
    m.apply(Set("plain", b"bytes"), 300)
    m.apply(Set(b"raw", [None, 1.5]), 300)
    m.apply_encoded(encode_command(Set("counted", 1)), 400, client_id="client", seq=1)
    m.apply_encoded(encode_command(Delete("plain")), 400, client_id="client", seq=2)
    m.apply(AddLearner("d"), 500)
    m.apply(Set("z", "last"), 600)
    return m


def test_restore_gives_the_same_state_reads_and_digest() -> None:
    m = busy()
    restored = KVStateMachine.restore(m.snapshot())
    assert restored.digest() == m.digest()
    assert restored.revision == m.revision
    assert restored.log_time_ms == m.log_time_ms
    assert restored.configuration == m.configuration
    assert restored.configuration_revision == m.configuration_revision
    assert restored.range(("session",)) == m.range(("session",))
    assert restored.get(b"raw") == m.get(b"raw")
    assert restored.due_leases(10**6) == m.due_leases(10**6) == [1]
    assert restored.lease_info(1) == m.lease_info(1)


def test_a_snapshot_is_stable_through_restore() -> None:
    snapshot = busy().snapshot()
    assert KVStateMachine.restore(snapshot).snapshot() == snapshot


def test_a_restored_replica_still_serves_watchers_resuming_from_the_kept_history() -> None:
    m = busy()
    restored = KVStateMachine.restore(m.snapshot())
    assert restored.history_floor_revision == m.history_floor_revision > 0
    assert restored.events_since(m.history_floor_revision) == m.events_since(
        m.history_floor_revision
    )


def test_a_restored_replica_still_answers_duplicates_and_keeps_the_dedup_window() -> None:
    m = busy()
    restored = KVStateMachine.restore(m.snapshot())
    again = restored.apply_encoded(encode_command(NoOp()), 700, client_id="client", seq=2)
    assert again == m.cached_result("client", 2)
    restored.apply_encoded(encode_command(NoOp()), 700, client_id="client", seq=9)
    stale = decode_result(
        restored.apply_encoded(encode_command(NoOp()), 700, client_id="client", seq=5)
    )
    assert isinstance(stale, Failed) and stale.error_code == "stale_request"


def test_a_restored_replica_expires_and_keeps_alive_like_the_original() -> None:
    m = busy()
    restored = KVStateMachine.restore(m.snapshot())
    for machine in (m, restored):
        machine.apply(LeaseKeepalive(1), 900)
    assert restored.digest() == m.digest()
    assert restored.due_leases(1899) == [] and restored.due_leases(1900) == [1]


def test_the_digest_changes_with_every_part_of_the_state() -> None:
    base = busy()
    digests = {base.digest()}
    changes = [
        lambda m: m.apply(Set("z", "other"), 600),
        lambda m: m.apply(NoOp(), 600),  # the revision alone
        lambda m: m.apply(LeaseKeepalive(1), 600),  # a lease's expiry
        lambda m: m.apply(AddLearner("e"), 600),
        lambda m: m.apply_encoded(encode_command(NoOp()), 600, client_id="new", seq=1),
    ]
    for change in changes:
        m = KVStateMachine.restore(base.snapshot())
        change(m)
        digests.add(m.digest())
    assert len(digests) == len(changes) + 1


def test_the_digest_does_not_depend_on_insertion_order() -> None:
    m = busy()
    shuffled = KVStateMachine.restore(m.snapshot())
    shuffled._data = dict(reversed(shuffled._data.items()))
    assert shuffled.snapshot() != m.snapshot()
    assert shuffled.digest() == m.digest()


def test_the_digest_does_not_depend_on_the_hash_seed() -> None:
    script = textwrap.dedent(
        """
        from paxoskv.state import *
        m = KVStateMachine(Configuration(frozenset("abcdefg"), frozenset("xyz")))
        for i in range(50):
            m.apply(Set(("k", str(i)), {str(i): [i]}), i)
            m.apply_encoded(encode_command(NoOp()), i, client_id=f"c{i}", seq=i)
        m.apply(LeaseGrant(10), 60)
        print(m.digest().hex())
        """
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def good_snapshot_wire() -> list[object]:
    return msgpack.unpackb(busy().snapshot(), strict_map_key=False)  # type: ignore[no-any-return]


def mutated(change: object) -> bytes:
    wire = good_snapshot_wire()
    change(wire)  # type: ignore[operator]
    return msgpack.packb(wire)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb(["paxoskv-state"]),
        msgpack.packb({"a": 1}),
        mutated(lambda w: w.__setitem__(0, "other-thing")),
        mutated(lambda w: w.__setitem__(1, 2)),  # a future format
        mutated(lambda w: w.__setitem__(2, [0, 3, 10])),  # a history limit of zero
        mutated(lambda w: w[3].__setitem__(0, -1)),  # a negative revision
        mutated(lambda w: w[4].__setitem__(0, 5)),  # a key that is not a key
        mutated(lambda w: w[4].extend(w[4][:6])),  # a key twice
        mutated(lambda w: w[4].pop()),  # a row cut short
        mutated(lambda w: w[5].clear()),  # a row naming a lease that is missing
        mutated(lambda w: w[6].append(["c", 1])),  # a dedup row cut short
        mutated(lambda w: w[7].__setitem__(0, "floor")),
        mutated(lambda w: w[7][1].__setitem__(1, 7)),  # an unknown event kind
        mutated(lambda w: w[7][1].__setitem__(1, True)),  # a kind that is no int
        mutated(lambda w: w[7][1].__setitem__(0, 1.5)),  # a revision that is no int
        mutated(lambda w: w[7][1].__setitem__(5, 0)),  # events out of revision order
        mutated(lambda w: w[7].__setitem__(0, w[7][1][0] + 1)),  # an event below the floor
        mutated(lambda w: w[7][1].__setitem__(2, "")),  # an event's key that is not a key
        mutated(lambda w: w[4].__setitem__(0, "")),  # an empty key
    ],
)
def test_bad_snapshot_bytes_raise_malformed_snapshot_and_nothing_else(data: bytes) -> None:
    with pytest.raises(MalformedSnapshot):
        KVStateMachine.restore(data)


def test_a_snapshot_cut_anywhere_is_refused() -> None:
    snapshot = busy().snapshot()
    for length in range(0, len(snapshot), 7):
        with pytest.raises(MalformedSnapshot):
            KVStateMachine.restore(snapshot[:length])


def test_malformed_snapshot_is_caught_by_an_except_malformed_command() -> None:
    assert issubclass(MalformedSnapshot, MalformedCommand)


@pytest.mark.parametrize("length", [0, 15, 16, 65_535, 65_536])
def test_an_array_header_is_what_msgpack_begins_a_list_of_that_length_with(length: int) -> None:
    assert msgpack.packb([0] * length).startswith(array_header(length))
    assert pack_items([7] * length) == msgpack.packb([7] * length)[len(array_header(length)) :]


def test_an_image_packed_in_pieces_is_the_one_call_packing_and_later_changes_miss_it() -> None:
    m = KVStateMachine(Configuration(frozenset({"a"}), frozenset()), history_limit_events=2000)
    for i in range(3 * ROWS_PER_PIECE + 5):  # several pieces of rows and of history events
        m.apply(Set(f"k{i}", "v" * (i % 7)), 100 + i)
    image = m.snapshot_image()
    whole = [
        SNAPSHOT_MAGIC,
        SNAPSHOT_FORMAT,
        image.parameters,
        image.header,
        _flat_rows(image.rows),
    ]
    expected = pack([*whole, image.leases, image.dedup, image.history])  # in one call
    m.apply(Set("after", "the image"), 10_000)  # the image was captured before this
    m.apply(Delete("k1"), 10_001)
    joined = b"".join(image.parts())
    assert len(image.parts()) > 6  # it really came in pieces
    assert joined == expected
    restored = KVStateMachine.restore(joined)
    assert restored.get("after") is None and restored.get("k1") is not None


@pytest.mark.parametrize("leased", [False, True])
def test_a_map_of_plain_str_keys_restores_row_for_row_with_its_leases(leased: bool) -> None:
    m = KVStateMachine(Configuration(voters=frozenset({"a"})))
    lease = m.apply(LeaseGrant(1000), 100).lease_id if leased else None  # type: ignore[union-attr]
    for i in range(50):
        m.apply(Set(f"k{i % 20}", [i, "v"], lease_id=lease if i % 7 == 0 else None), 200 + i)
    restored = KVStateMachine.restore(m.snapshot())
    assert restored.digest() == m.digest()
    assert restored.range("k") == m.range("k")
    assert restored.get("k7").value == [47, "v"]  # type: ignore[union-attr]  # still a list
    if leased:
        assert lease is not None
        assert restored.lease_info(lease) == m.lease_info(lease)
        assert restored.lease_info(lease).keys  # type: ignore[union-attr]
