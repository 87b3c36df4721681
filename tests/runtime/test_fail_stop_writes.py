"""Every write on a node that stopped on an error ends (found in review of the seq window).

A replica that fails (``_fail_stop``) fails what waits with NoQuorum, and the Node switches
its writes to refusing with NodeClosed only in a done callback two loop turns after the
replica's ``stopped`` is set. A pipelined caller that takes the NoQuorum and writes again in
between (as ``benchmarks/compare_paxoskv.py`` does) goes to ``Replica.submit`` of the stopped
replica: its future is put in ``_answers`` with no sweeper to fail it (the cancelled sweeper
task is still in ``_sweeper``, so none is started) and no engine step to answer it (the
replica has failed). The write waited forever, and its seq held back the client's seq window
(paxoskv/seq_window.py): 1,023 writes later every write of that Node waited forever too,
instead of raising NodeClosed. A stopping or failed replica now refuses new requests.
"""

from __future__ import annotations

import asyncio

from paxoskv.errors import NodeClosed, PaxosKVError
from tests.runtime.cluster import MemoryCluster, eventually


async def test_pipelined_writes_on_a_node_that_failed_all_end() -> None:
    cluster = MemoryCluster()
    node = await cluster.start("f1", bootstrap_expect=1, request_timeout_s=0.5)
    try:
        await node.wait_ready(5)
        written = 0
        ended: list[str] = []

        async def caller(index: int) -> None:
            nonlocal written
            while True:
                try:
                    await node.set(f"k{index}", written)
                except NodeClosed:
                    ended.append("closed")
                    return
                except PaxosKVError:
                    continue  # as a pipelined benchmark caller does
                written += 1

        callers = [asyncio.create_task(caller(i)) for i in range(64)]
        await eventually(lambda: written > 500, what="writes to flow")
        node.replica._fail_stop(OSError("disk on fire"))
        # request_timeout_s is 0.5 s: anything still waiting after 5 s waits for good.
        _, pending = await asyncio.wait(callers, timeout=5)
        for task in pending:
            task.cancel()
        assert not pending, f"{len(pending)} of 64 writers never ended after the node stopped"
        assert len(ended) == 64
    finally:
        await cluster.close()
