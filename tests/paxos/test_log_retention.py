"""What of the log a node keeps in memory, and when it snapshots.

Applied values are kept for peers a little behind (``log_retention_slots``, at most
``log_retention_bytes``), not back to the last snapshot; a peer further behind is sent a
snapshot, taken for it if the newest is older than the log kept; what a peer catching up asks
for is kept for it a while. Snapshots come after as many commands as the state has keys and
as many bytes of log as its rows packed, when those are more than the settings say.
"""

from __future__ import annotations

import random

from paxoskv.paxos import messages as m
from paxoskv.paxos.batches import encode_batch
from paxoskv.paxos.effects import SaveSnapshot, Send
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import decode_state_transfer
from paxoskv.state import Configuration, Set, encode_command
from tests.paxos.wire import Cluster

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}))
NO_SNAPSHOTS = {"snapshot_every_commands": 10**9, "snapshot_every_bytes": 10**12}


def entries(first: int, last: int, keys: int = 10) -> tuple[m.CatchupEntry, ...]:
    """Slots ``first`` to ``last``, each one Set of one of ``keys`` keys."""
    return tuple(
        m.CatchupEntry(
            slot,
            encode_batch(0, [m.Request("x", slot, encode_command(Set(f"k{slot % keys}", slot)))]),
        )
        for slot in range(first, last + 1)
    )


def learner(**settings: object) -> Engine:
    """Node b, fed chosen slots by catch-up replies from a (no election needed)."""
    return Engine(EngineSettings(node_id="b", **settings), random.Random(1), CONFIG)  # type: ignore[arg-type]


def test_applied_values_are_kept_only_as_far_as_retention_says_snapshot_or_not() -> None:
    """The log used to be kept back to the last snapshot, and with none taken, all of it."""
    b = learner(log_retention_slots=50, **NO_SNAPSHOTS)
    b.receive("a", m.CatchupReply(entries(1, 500), 500, 0), now=0.0)
    assert b.compacted_slot == 0, "what a step applied is kept until the next step"
    b.receive("a", m.CatchupReply(entries(501, 501), 501, 0), now=0.1)
    assert b.applied_slot == 501
    assert b.compacted_slot == 451
    assert sorted(b.values) == list(range(452, 502))
    by_bytes = learner(log_retention_slots=10**6, log_retention_bytes=2_000, **NO_SNAPSHOTS)
    by_bytes.receive("a", m.CatchupReply(entries(1, 500), 500, 0), now=0.0)
    by_bytes.receive("a", m.CatchupReply(entries(501, 501), 501, 0), now=0.1)
    kept = sum(map(len, by_bytes.values.values()))
    assert 0 < kept <= 2_000
    assert by_bytes.compacted_slot == 501 - len(by_bytes.values)


def test_a_peer_behind_the_kept_log_is_sent_a_snapshot_taken_for_it() -> None:
    b = learner(log_retention_slots=20, **NO_SNAPSHOTS)
    b.receive("a", m.CatchupReply(entries(1, 299), 299, 0), now=0.0)
    b.receive("a", m.CatchupReply(entries(300, 300), 300, 0), now=0.05)
    asked = b.receive("c", m.CatchupRequest(5), now=0.1)
    (save,) = [e for e in asked if isinstance(e, SaveSnapshot)]
    assert save.slot == 300
    (wait,) = [e.message for e in asked if isinstance(e, Send)]
    assert wait == m.CatchupReply((), 300, 0)  # nothing to download yet: ask again
    b.receive("a", m.CatchupReply(entries(301, 400), 400, 0), now=0.2)
    b.snapshot_saved(save.slot, now=0.3)
    again = b.receive("c", m.CatchupRequest(5), now=0.4)
    assert [e.message for e in again if isinstance(e, Send)] == [m.CatchupReply((), 400, 300)]
    # What follows the snapshot is kept for the peer, beyond the 20 slots retention keeps.
    assert b.compacted_slot <= 300
    served = b.receive("c", m.CatchupRequest(301), now=0.5)
    (reply,) = [e.message for e in served if isinstance(e, Send)]
    assert reply.entries and reply.entries[0].slot == 301


def test_a_whole_cluster_catches_a_node_up_past_the_kept_log() -> None:
    cluster = Cluster(log_retention_slots=20, **NO_SNAPSHOTS)
    cluster.run_until(3.0)
    leader = cluster.leader()
    behind = next(n for n in "abc" if n != leader)
    cluster.down.add(behind)
    for i in range(400):
        command = encode_command(Set(f"k{i % 50}", i))
        cluster.propose(leader, [m.Request("client", i + 1, command)])
        cluster.now += 0.0001
    ahead = cluster.nodes[leader]
    assert ahead.compacted_slot > cluster.nodes[behind].applied_slot + 20
    cluster.down.clear()
    cluster.run_until(cluster.now + 5.0)
    assert cluster.nodes[behind].applied_slot == ahead.applied_slot
    assert cluster.nodes[behind].state.digest() == ahead.state.digest()


def test_what_a_peer_catching_up_asks_for_is_kept_for_it_a_while() -> None:
    settings = {"log_retention_slots": 20, "catchup_hold_s": 1.0, "max_message_bytes": 200}
    b = learner(**settings, **NO_SNAPSHOTS)
    b.receive("a", m.CatchupReply(entries(1, 100), 100, 0), now=0.0)
    b.receive("c", m.CatchupRequest(81), now=0.1)  # within retention, more than one reply
    b.receive("a", m.CatchupReply(entries(101, 200), 200, 0), now=0.2)
    assert b.compacted_slot == 80, "c's slots are kept while it catches up"
    b.receive("c", m.CatchupRequest(150), now=0.5)  # c moved on: so does the log kept
    b.receive("a", m.CatchupReply(entries(201, 210), 210, 0), now=0.6)
    assert b.compacted_slot == 149
    b.receive("a", m.CatchupReply(entries(211, 220), 220, 0), now=1.6)  # c went quiet
    assert b.compacted_slot == 200
    b.receive("c", m.CatchupRequest(220), now=1.7)  # a reply that catches c up: no pin
    b.receive("c", m.CatchupRequest(210), now=1.7)  # (this one would pin 210)
    b.receive("c", m.CatchupRequest(221), now=1.7)  # c is caught up: the pin goes
    b.receive("a", m.CatchupReply(entries(221, 230), 230, 0), now=1.8)
    assert b.compacted_slot == 210


def test_pins_hold_no_more_than_a_snapshots_worth_of_log() -> None:
    b = learner(log_retention_slots=5, snapshot_every_commands=10**9, snapshot_every_bytes=3_000)
    b.receive("a", m.CatchupReply(entries(1, 20), 20, 0), now=0.0)
    b.receive("c", m.CatchupRequest(18), now=0.1)
    effects = b.receive("a", m.CatchupReply(entries(21, 400), 400, 0), now=0.2)
    effects += b.receive("a", m.CatchupReply(entries(401, 401), 401, 0), now=0.3)
    assert b.compacted_slot > 18, "c, that far behind, is sent a snapshot instead"
    assert sum(map(len, b.values.values())) <= 3_000 + 200
    assert [e for e in effects if isinstance(e, SaveSnapshot)]


def test_snapshots_are_spaced_by_the_states_size_when_it_is_bigger_than_the_settings() -> None:
    b = learner(snapshot_every_commands=5, snapshot_every_bytes=10**12, log_retention_slots=5)
    sets = [m.Request("x", i + 1, encode_command(Set(f"k{i}", i))) for i in range(30)]
    first = b.receive("a", m.CatchupReply((m.CatchupEntry(1, encode_batch(0, sets)),), 1, 0), 0.0)
    (save,) = [e for e in first if isinstance(e, SaveSnapshot)]
    assert (save.slot, save.image.keys) == (1, 30)
    b"".join(save.image.local_pieces())  # packed on the runtime's worker: then its size is known
    assert save.image.rows_bytes > 30 * 4
    b.snapshot_saved(save.slot, now=0.1)
    # The next is due after 30 commands, as many as the state has keys, not after 5.
    quiet = b.receive("a", m.CatchupReply(entries(2, 30, keys=30), 30, 0), now=0.2)
    assert not [e for e in quiet if isinstance(e, SaveSnapshot)]
    due = b.receive("a", m.CatchupReply(entries(31, 31, keys=30), 31, 0), now=0.3)
    assert [e.slot for e in due if isinstance(e, SaveSnapshot)] == [31]


def test_snapshots_are_spaced_by_the_packed_rows_not_the_watch_history() -> None:
    b = learner(snapshot_every_commands=10**9, snapshot_every_bytes=100, log_retention_slots=5)
    first = b.receive("a", m.CatchupReply(entries(1, 10, keys=10), 10, 0), now=0.0)
    saves = [e for e in first if isinstance(e, SaveSnapshot)]
    image = saves[-1].image
    local_bytes = len(b"".join(image.local_pieces()))  # streamed: held by nobody after
    b.snapshot_saved(saves[-1].slot, now=0.1)
    assert b._snapshot_due_bytes == max(100, image.rows_bytes)
    assert image.rows_bytes < local_bytes / 2, "the history is left out"


def _past_a_periodic_snapshot() -> tuple[Engine, SaveSnapshot]:
    """A learner fed 61 slots of 60 keys, and the periodic snapshot it took (not yet saved),
    past which its log is let go of."""
    b = learner(
        snapshot_every_commands=40,
        snapshot_every_bytes=10**12,
        log_retention_slots=20,
        max_message_bytes=1_500,
    )
    fed = b.receive("a", m.CatchupReply(entries(1, 60, keys=60), 60, 0), now=0.0)
    fed += b.receive("a", m.CatchupReply(entries(61, 61, keys=60), 61, 0), now=0.05)
    (periodic,) = [e for e in fed if isinstance(e, SaveSnapshot)]
    return b, periodic


def test_a_saved_snapshot_keeps_its_packed_bytes_only_while_peers_want_one() -> None:
    """Kept for nobody, the packed state was a second copy of the whole state in memory from
    one snapshot to the next. Saved with no peer asking, it is let go of; a peer asking later
    is sent one taken for it, in slices, which is let go of once nobody has asked for
    ``catchup_hold_s``."""
    b, periodic = _past_a_periodic_snapshot()
    assert b.compacted_slot > 1
    b"".join(periodic.image.local_pieces())  # what the runtime's worker writes
    b.snapshot_saved(periodic.slot, now=0.1)
    assert b._transfer is periodic.image
    assert not periodic.image.servable and periodic.image._state_parts is None

    asked = b.receive("c", m.CatchupRequest(1), now=0.2)
    (taken,) = [e for e in asked if isinstance(e, SaveSnapshot)]
    assert taken.slot == 61
    assert [e.message for e in asked if isinstance(e, Send)] == [m.CatchupReply((), 61, 0)]
    b"".join(taken.image.local_pieces())
    b.snapshot_saved(taken.slot, now=0.3)
    assert b._transfer is taken.image and taken.image.servable  # wanted: kept to send
    again = b.receive("c", m.CatchupRequest(1), now=0.4)
    assert [e.message for e in again if isinstance(e, Send)] == [m.CatchupReply((), 61, 61)]

    received = bytearray()
    total = None
    now = 0.5
    while total is None or len(received) < total:
        sent = b.receive("c", m.SnapshotRequest(61, len(received)), now=now)
        (chunk,) = [e.message for e in sent if isinstance(e, Send)]
        assert isinstance(chunk, m.SnapshotChunk) and 0 < len(chunk.data) <= 1_500
        assert chunk.offset == len(received)
        total = chunk.total_bytes
        received += chunk.data
        now += 0.01
    slot, state_snapshot, _, _ = decode_state_transfer(bytes(received))
    assert slot == 61 and state_snapshot == b.state.snapshot()

    b.tick(now + b.settings.catchup_hold_s - 0.1)
    assert taken.image.servable, "asked for within catchup_hold_s: still kept"
    b.tick(now + b.settings.catchup_hold_s + 0.1)
    assert not taken.image.servable, "nobody asked for catchup_hold_s: let go of"
    # A request for it now is stale (a live download keeps it): told there is none, with no
    # snapshot taken; a peer that still lacks one asks to catch up, and one is taken for it.
    late = b.receive("c", m.SnapshotRequest(61, 0), now=now + 6.0)
    assert [e.message for e in late if isinstance(e, Send)] == [m.CatchupReply((), 61, 0)]
    assert not [e for e in late if isinstance(e, SaveSnapshot)]
    assert not b._snapshot_wanted_until > now + 6.0, "a stale request keeps nothing"
    lacking = b.receive("c", m.CatchupRequest(1), now=now + 6.1)
    assert [e.slot for e in lacking if isinstance(e, SaveSnapshot)] == [61], "one taken for it"


def test_a_peer_asking_while_a_snapshot_is_streamed_gets_one_kept_for_it_at_its_next_ask() -> None:
    """A periodic snapshot is taken not kept (nobody asked) and streamed to its file. A peer
    behind the log asking meanwhile is told there is nothing yet; once that one is saved it
    holds nothing to send, so the peer's next ask takes one kept for it, which is served."""
    b, periodic = _past_a_periodic_snapshot()
    assert not periodic.image.keep
    assert b.compacted_slot > 1  # the log before it let go of: asking for slot 1 needs one
    during = b.receive("c", m.CatchupRequest(1), now=0.06)
    assert not [e for e in during if isinstance(e, SaveSnapshot)]  # one is being saved
    assert [e.message for e in during if isinstance(e, Send)] == [m.CatchupReply((), 61, 0)]
    b"".join(periodic.image.local_pieces())  # streamed, as the runtime's worker writes it
    b.snapshot_saved(periodic.slot, now=0.1)
    assert b._transfer is periodic.image and not periodic.image.servable

    asked = b.receive("c", m.CatchupRequest(1), now=0.2)
    (taken,) = [e for e in asked if isinstance(e, SaveSnapshot)]
    assert taken.image.keep and taken.slot == 61
    assert [e.message for e in asked if isinstance(e, Send)] == [m.CatchupReply((), 61, 0)]
    b"".join(taken.image.local_pieces())
    b.snapshot_saved(taken.slot, now=0.3)
    assert taken.image.servable
    again = b.receive("c", m.CatchupRequest(1), now=0.4)
    assert [e.message for e in again if isinstance(e, Send)] == [m.CatchupReply((), 61, 61)]
