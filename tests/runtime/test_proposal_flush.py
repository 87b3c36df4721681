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

from paxoskv.state import Set
from paxoskv.state.command_wire import encode_command
from tests.runtime.cluster import MemoryCluster


async def test_a_sequential_write_is_proposed_at_once_and_a_burst_in_one_batch(
    memory_cluster: MemoryCluster,
) -> None:
    replica = memory_cluster.nodes["n2"].replica
    seq = 0

    def submit() -> object:
        nonlocal seq
        seq += 1
        return replica.submit("flush-test", seq, encode_command(Set(f"k{seq}", seq)))

    await submit()  # (whatever came before: the writes from here on are one at a time)
    await submit()
    sequential = submit()
    assert replica._proposals == [], "a lone write after lone writes waited for a later turn"
    await sequential

    burst = [submit() for _ in range(5)]
    # The first went at once (nothing waited); the four after it wait for one flush together.
    assert len(replica._proposals) == 4
    for future in burst:
        await future
    after_burst = submit()
    assert len(replica._proposals) == 1, "the first write after a batch did not wait its turn"
    await after_burst
    assert await memory_cluster.nodes["n1"].get(f"k{seq}") == seq


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
