"""An engine built over a node's recovered journal: what it does before it first answers."""

import random
from collections.abc import Callable

import msgpack
import pytest

from paxoskv.paxos import messages as m
from paxoskv.paxos import records
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.batches import encode_batch
from paxoskv.paxos.effects import Broadcast, Persist, SaveSnapshot, Send
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import (
    DurableState,
    accepted_record,
    chosen_record,
    learned_record,
)
from paxoskv.state import Configuration, KVStateMachine, encode_set

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}), learners=frozenset())
LEADER = Ballot(1, "a")


def batch(first_seq: int, count: int) -> bytes:
    requests = [
        m.Request("client", seq, encode_set(f"k{seq}", "v"))
        for seq in range(first_seq, first_seq + count)
    ]
    return encode_batch(1_000, requests)


def restarted(node_id: str, chosen: dict[int, bytes], now: float, **settings: int) -> Engine:
    durable = DurableState(promised=LEADER, chosen=dict(chosen))
    return Engine(
        EngineSettings(node_id=node_id, **settings),
        random.Random(3),
        CONFIG,
        durable=durable,
        now=now,
    )


def prepares(effects: list[object]) -> list[m.Prepare]:
    return [
        e.message for e in effects if isinstance(e, Broadcast) and isinstance(e.message, m.Prepare)
    ]


def test_a_replayed_tail_past_the_snapshot_threshold_is_snapshotted_only_at_the_next_slot() -> None:
    b = restarted("b", {1: batch(1, 5), 2: batch(6, 5)}, now=0.0, snapshot_every_commands=8)
    assert b.applied_slot == 2 and b.state.revision == 10
    started = b.tick(now=0.01)
    assert not [e for e in started if isinstance(e, SaveSnapshot)], "snapshotted before serving"

    accepted = b.receive("a", m.Accept(LEADER, 3, batch(11, 1), 2), now=0.02)
    sync_id = max(e.sync_id for e in accepted if isinstance(e, Persist))
    b.handle_durable(sync_id, now=0.03)
    committed = b.receive("a", m.Commit(LEADER, 3), now=0.04)
    snapshots = [e for e in committed if isinstance(e, SaveSnapshot)]
    assert b.applied_slot == 3
    assert len(snapshots) == 1 and snapshots[0].slot == 3


def test_a_restarted_voter_listens_a_whole_election_timeout_before_campaigning() -> None:
    # Built at 0.0 (its election timer armed then); its replay "took" 5 s.
    b = restarted("b", {1: batch(1, 3)}, now=0.0)
    b.hold_election(now=5.0)
    assert not prepares(b.tick(now=5.0)), "campaigned before it could hear the leader"

    b.receive("a", m.Heartbeat(LEADER, 1, 1), now=5.01)
    assert b.leader_id == "a"
    assert not prepares(b.tick(now=5.02))


def test_a_held_election_still_happens_when_no_leader_speaks() -> None:
    b = restarted("b", {1: batch(1, 3)}, now=0.0)
    b.hold_election(now=5.0)
    for _ in range(20):  # follow the engine's own deadlines until it campaigns
        now = b.next_deadline()
        found = prepares(b.tick(now))
        if found:
            break
    assert found and found[0].ballot > LEADER
    assert now >= 5.0 + b.settings.election_timeout_min_s


def test_a_restarted_node_asked_for_slots_before_its_log_takes_a_snapshot_to_serve() -> None:
    machine = KVStateMachine(CONFIG)
    machine.apply_items(["client"] * 3, [1, 2, 3], [encode_set(f"k{i}", "v") for i in range(3)], 1)
    durable = DurableState(promised=LEADER, applied_slot=5, state_snapshot=machine.snapshot())
    b = Engine(EngineSettings(node_id="b"), random.Random(3), CONFIG, durable=durable, now=0.0)
    assert b.compacted_slot == 5

    first = b.receive("c", m.CatchupRequest(2), now=0.1)
    (taken,) = [e for e in first if isinstance(e, SaveSnapshot)]
    assert taken.slot == 5
    assert [e.message for e in first if isinstance(e, Send)] == [m.CatchupReply((), 5, 0)]
    again = b.receive("c", m.CatchupRequest(2), now=0.2)
    assert not [e for e in again if isinstance(e, SaveSnapshot)], "one snapshot at a time"

    b.snapshot_saved(5, now=0.3)
    served = b.receive("c", m.CatchupRequest(2), now=0.4)
    assert [e.message for e in served if isinstance(e, Send)] == [m.CatchupReply((), 5, 5)]
    (chunk,) = [
        e.message for e in b.receive("c", m.SnapshotRequest(5, 0), now=0.5) if isinstance(e, Send)
    ]
    assert isinstance(chunk, m.SnapshotChunk) and chunk.total_bytes > 0


@pytest.mark.parametrize("number", [0, 127, 128, 65536, 2**32, 2**64 - 1, -1, 2**64])
@pytest.mark.parametrize("node_id", ["a", "n" * 31, "n" * 32, "é" * 16])
def test_records_written_by_hand_are_the_packers_bytes(number: int, node_id: str) -> None:
    """Accepted and chosen records are written without the packer: the same bytes, or the
    same refusal, for any field."""

    def packed(body: list[object]) -> bytes | type[BaseException]:
        try:
            return msgpack.packb(body, use_bin_type=True)
        except Exception as error:
            return type(error)

    def made(make: Callable[..., bytes], *args: object) -> bytes | type[BaseException]:
        try:
            return make(*args)
        except Exception as error:
            return type(error)

    for value in [b"", b"v" * 300, b"v" * 70_000]:
        expected = packed([records.ACCEPTED, number, number, node_id, value])
        ballot = Ballot(number, node_id)
        assert made(records.accepted_record, number, ballot, value) == expected
    assert made(records.chosen_record, number, 7) == packed([records.CHOSEN, number, 7])
    assert made(records.chosen_record, 7, number) == packed([records.CHOSEN, 7, number])


def test_a_replayed_run_of_chosen_slots_keeps_a_value_learned_over_one_accepted() -> None:
    """The engine learned slot 2's chosen value V from a promise, having accepted U there
    from a deposed leader; then a commit over slots 1-2 wrote one CHOSEN record for both.
    Replay took U for slot 2 (review, twenty-ninth session): a restarted node, and a dump of
    its data dir, held a value that was never chosen."""
    old, new = Ballot(1, "a"), Ballot(2, "b")
    durable = DurableState()
    for record in (
        accepted_record(2, old, b"U"),
        learned_record(2, b"V"),
        accepted_record(1, new, b"X"),
        chosen_record(1, 2),
    ):
        durable.replay(record)
    assert durable.chosen == {1: b"X", 2: b"V"}
