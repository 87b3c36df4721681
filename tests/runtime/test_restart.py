"""A node restarted from its data dir, in a running cluster: it rejoins without a fuss."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from paxoskv.paxos.engine import Engine
from paxoskv.runtime import replica
from tests.runtime.cluster import MemoryCluster, eventually

REPLAY_S = 30.0  # how long the restarted node's replay "took": far past any election timeout


class SlowReplayEngine(Engine):
    """An engine whose journal replay seemingly took :data:`REPLAY_S`: its timers were armed
    that long before the runtime first drives it (``now`` is when construction began)."""

    def __init__(self, *args: Any, now: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, now=now - REPLAY_S, **kwargs)


async def test_a_node_restarted_after_a_long_replay_follows_the_leader_it_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3)
        await eventually(lambda: cluster.leader() is not None, 5, "a leader")
        leader = cluster.leader()
        assert leader is not None and leader.replica.engine is not None
        ballot = leader.replica.engine.ballot
        await leader.set("before", 1)
        follower_id = next(n for n in ("n1", "n2", "n3") if n != leader.node_id)
        await cluster.stop(follower_id)

        monkeypatch.setattr(replica, "Engine", SlowReplayEngine)
        restarted = await cluster.start(follower_id)
        engine = restarted.replica.engine
        assert engine is not None
        assert gc.isenabled(), "the collector stayed paused after the replay"
        await eventually(lambda: engine.leader_id is not None, 5, "hearing the leader")
        assert await restarted.get("before") == 1  # a linearizable read, through the leader
        assert engine.leader_id == leader.node_id
        assert leader.replica.engine.is_leader and leader.replica.engine.ballot == ballot, (
            "the restarted node campaigned before it had heard the live leader"
        )
    finally:
        await cluster.close()
