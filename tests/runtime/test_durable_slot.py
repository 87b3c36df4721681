"""A hello's durable slot: the applied slot a power cut cannot take back.

A removed voter leaves once a quorum of the voters left report having applied the last slot
its old configuration governs (``Replica._still_needed``). They used to report their applied
slot, whose chosen markers sync lazily, up to 50 ms later: one that lost power right after
such a hello came back below that slot, with the removed voter gone and no quorum of the old
configuration left to learn those slots from. Hellos now carry the slot whose records are
synced, and the leave rule reads it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from paxoskv import Node
from paxoskv.errors import NodeRemoved
from paxoskv.runtime import protocol
from paxoskv.runtime.membership import PeerView
from paxoskv.runtime.replica import Replica
from tests.runtime.cluster import MemoryCluster, eventually


def test_a_hello_carries_its_durable_slot_and_an_earlier_releases_stands_in() -> None:
    hello = protocol.Hello("voter", 9, 4, "n1", ("n1",), False, durable_slot=7)
    _, fields = protocol.decode_runtime(protocol.encode_hello(hello))
    assert protocol.decode_hello(fields).durable_slot == 7
    earlier = protocol.decode_hello(fields[:6])  # an earlier release sends six fields
    assert (earlier.applied_slot, earlier.durable_slot) == (9, 9)
    assert PeerView(1.0, "voter", 9, 4, "n1").durable_slot == 9


async def test_the_durable_slot_waits_for_the_sync_of_what_was_applied(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    replica = Replica(cluster.config("n1", durability="durable"))
    engine = SimpleNamespace(applied_slot=10)
    replica.engine = engine  # type: ignore[assignment]
    replica._last_sync_id, replica._durable_upto = 5, 4  # slot 10's markers: sync 5, not yet
    assert replica._durable_slot() == 0
    assert replica._durable_slot() == 0
    replica._durable_upto = 5
    assert replica._durable_slot() == 10
    engine.applied_slot, replica._last_sync_id = 20, 6
    assert replica._durable_slot() == 10  # slot 20 waits for sync 6
    replica._snapshots_saving = 1  # (a state transfer's slots are in no journal record)
    replica._durable_upto = 6
    assert replica._durable_slot() == 10
    replica._snapshots_saving = 0
    assert replica._durable_slot() == 20


async def test_a_snapshot_written_counts_its_slot_while_another_is_written(
    tmp_path: Path,
) -> None:
    """Snapshots written back to back (a small state under a steady load, a slow disk) kept
    the durable slot still for as long as the load lasted (review, twenty-first session)."""
    replica = Replica(MemoryCluster(tmp_path).config("n1", durability="durable"))
    replica.store = SimpleNamespace(write_snapshot=lambda index, pieces: None)  # type: ignore[assignment]
    replica._snapshots_saving = 2  # this one, and the next already under way
    image = SimpleNamespace(local_pieces=lambda: [], keep=False, servable=False)
    saved = SimpleNamespace(journal_index=1, slot=42, image=image)
    await replica._save_snapshot(saved)  # type: ignore[arg-type]  (no engine: none to step)
    replica.engine = SimpleNamespace(applied_slot=50)  # type: ignore[assignment]
    assert replica._snapshots_saving == 1
    assert replica._durable_slot() == 42


async def test_without_fsync_the_applied_slot_stands(tmp_path: Path) -> None:
    replica = Replica(MemoryCluster(tmp_path).config("n1", durability="os"))
    replica.engine = SimpleNamespace(applied_slot=10)  # type: ignore[assignment]
    assert replica._durable_slot() == 10


async def _durable_pair(cluster: MemoryCluster) -> tuple[Node, Node]:
    """Two durable voters that know they are members: (the leader, the other)."""
    for node_id in ("n1", "n2"):
        await cluster.start(node_id, bootstrap_expect=2, durability="durable")
    for node in cluster.nodes.values():
        await node.wait_ready(5)
    await cluster.nodes["n1"].set("k", 1)
    for node in cluster.nodes.values():
        await eventually(lambda node=node: node.replica._member, what="membership known")
    left = cluster.leader()
    assert left is not None
    return left, next(node for node in cluster.nodes.values() if node is not left)


async def test_a_removed_voter_of_a_durable_pair_leaves_once_the_other_has_synced(
    tmp_path: Path,
) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        left, gone = await _durable_pair(cluster)
        reported: list[tuple[int, int]] = []
        real = gone.replica._on_hello

        def on_hello(source: str, hello: protocol.Hello) -> None:
            reported.append((hello.applied_slot, hello.durable_slot))
            real(source, hello)

        gone.replica._on_hello = on_hello  # type: ignore[method-assign]
        await left.remove(gone.node_id)
        await eventually(gone.replica.stopped.is_set, 10, f"{gone.node_id} stopping")
        assert isinstance(gone.replica.failure, NodeRemoved)
        assert all(durable <= applied for applied, durable in reported)
        engine = left.replica.engine
        assert engine is not None
        await eventually(lambda: left.replica._durable_slot() == engine.applied_slot)
        await left.set("k", 2)
        assert engine.configuration.voters == frozenset({left.node_id})
    finally:
        await cluster.close()


async def test_a_leaving_voter_stays_while_the_voter_left_has_not_synced(tmp_path: Path) -> None:
    """The rule itself: applied past the last slot is not enough, synced past it is."""
    cluster = MemoryCluster(tmp_path)
    try:
        left, gone = await _durable_pair(cluster)
        real = gone.replica._on_hello
        unsynced = [True]

        def on_hello(source: str, hello: protocol.Hello) -> None:
            if unsynced[0]:  # as if the voter left had applied all but synced nothing since
                hello = protocol.Hello(
                    hello.wants,
                    hello.applied_slot,
                    hello.revision,
                    hello.leader_id,
                    hello.genesis,
                    hello.bootstrapping,
                    durable_slot=1,
                )
            real(source, hello)

        gone.replica._on_hello = on_hello  # type: ignore[method-assign]
        await left.remove(gone.node_id)
        await eventually(lambda: gone.replica._role == "leaving", 5, "leaving")
        last = gone.replica._leave_after
        assert last is not None
        view = gone.replica.peers
        await eventually(
            lambda: view[left.node_id].applied_slot >= last, 5, "the voter left applying it"
        )
        engine = gone.replica.engine
        assert engine is not None
        await eventually(lambda: engine.applied_slot >= last, 5, "the leaving voter applying it")
        assert gone.replica._still_needed(engine)  # applied by both, synced by one: stays
        unsynced[0] = False
        await eventually(gone.replica.stopped.is_set, 10, f"{gone.node_id} stopping")
        assert isinstance(gone.replica.failure, NodeRemoved)
    finally:
        await cluster.close()
