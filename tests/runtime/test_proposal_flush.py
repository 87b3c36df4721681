"""When a node proposes what its callers submit: at once for a sequential caller, batched after
a burst.

``Replica.submit`` used to leave every proposal to a flush a turn of the loop later, so that
the writes of many callers woken in one turn go in one slot. A sequential caller paid that
turn, and its poll, on every write (nineteenth session: 678-723k against 621-634k instructions
a write, ``benchmarks/write_path.py --instructions``). Now a write is proposed at once when
nothing else of the node's own waits and the writes before it went one at a time; after a
batch, the callers it answered all write again in one turn, and the first of them flushed
alone would cost a slot of its own: without the second condition, 52-173 of each node's
600-1,052 flushes in a pipelined ``compare.py`` phase at 100 B were such lone writes (counted);
with it, none. A single voter keeps the later turn for every write (see its test).
"""

from __future__ import annotations

import asyncio

import pytest

from paxoskv.state import Set
from paxoskv.state.command_wire import encode_command
from tests.runtime.cluster import MemoryCluster, eventually


@pytest.mark.parametrize("role", ["leader", "follower"])
async def test_a_sequential_write_is_proposed_at_once_and_a_burst_in_one_batch(
    memory_cluster: MemoryCluster, role: str
) -> None:
    nodes = list(memory_cluster.nodes.values())
    await eventually(lambda: any(node.replica.engine.is_leader for node in nodes))  # type: ignore[union-attr]
    replica = next(
        node.replica
        for node in nodes
        if node.replica.engine.is_leader == (role == "leader")  # type: ignore[union-attr]
    )
    seq = 0

    def submit() -> asyncio.Future[bytes]:
        nonlocal seq
        seq += 1
        future = replica.submit("flush-test", seq, encode_command(Set(f"k{seq}", seq)))
        assert isinstance(future, asyncio.Future)
        return future

    await submit()  # (whatever came before: the writes from here on are one at a time)
    await submit()
    sequential = submit()
    assert replica._proposals == [], "a lone write after lone writes waited for a later turn"
    assert not sequential.done()  # answered only once another node replies: a turn later
    await sequential

    burst = [submit() for _ in range(5)]
    # The first went at once (nothing waited); the four after it wait for one flush together.
    assert len(replica._proposals) == 4
    for future in burst:
        await future
    after_burst = submit()
    assert len(replica._proposals) == 1, "the first write after a batch did not wait its turn"
    await after_burst
    assert await nodes[0].get(f"k{seq}") == seq


async def test_a_request_the_engine_refuses_at_once_is_the_callers_error(
    memory_cluster: MemoryCluster,
) -> None:
    """Proposed at once, a request the engine refuses raises in ``submit`` itself, and leaves
    nothing behind to wait for an answer (nor to keep the next write from going at once)."""
    replica = memory_cluster.nodes["n3"].replica
    for seq in (1, 2):
        await replica.submit("flush-test", seq, encode_command(Set("k", seq)))
    with pytest.raises(ValueError):
        replica.submit("", 1, encode_command(Set("k", 0)))  # no client id
    assert replica._answers == {} and replica._proposals == []
    sequential = replica.submit("flush-test", 3, encode_command(Set("k", 3)))
    assert replica._proposals == []
    await sequential


async def test_a_single_voter_leaves_every_write_to_a_later_turn() -> None:
    """Its own vote is a quorum: proposed at once, a write would be chosen, applied and answered
    inside ``submit``, and a caller writing in a loop would never yield to the event loop (a
    watch task created just before a write missed it: test_node_lifecycle.py)."""
    cluster = MemoryCluster()
    try:
        node = await cluster.start("s1", bootstrap_expect=1)
        await node.wait_ready(5)
        replica = node.replica
        for seq in (1, 2):
            await replica.submit("flush-test", seq, encode_command(Set("k", seq)))
        third = replica.submit("flush-test", 3, encode_command(Set("k", 3)))
        assert len(replica._proposals) == 1
        await third
        assert await node.get("k") == 3
    finally:
        await cluster.close()
