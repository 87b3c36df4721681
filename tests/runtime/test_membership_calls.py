"""What a membership change says when no quorum answers it.

It may still be made once a quorum is back, so the writes' advice ("read the key back")
misled: a remove that failed so took effect minutes later (membership review, twenty-ninth
session).
"""

from __future__ import annotations

import pytest

from paxoskv.errors import NoQuorum
from tests.runtime.cluster import MemoryCluster


async def test_a_change_no_quorum_answered_says_to_check_the_members() -> None:
    cluster = MemoryCluster()
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3, request_timeout_s=0.5)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        n1 = cluster.nodes["n1"]
        await cluster.stop("n2")
        await cluster.stop("n3")
        with pytest.raises(NoQuorum, match=r"change \(remove n3\).*check `paxos-kv members`"):
            await n1.remove("n3")
        with pytest.raises(NoQuorum, match=r"change \(promote n2\).*may still be made"):
            await n1.promote("n2")
    finally:
        await cluster.close()
