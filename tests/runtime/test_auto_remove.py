"""``auto_remove_down_after_s``: the leader removes voters down that long, and only those.

No test ran the setting in a cluster, and a review found the leader removing itself about
that long after it started, healthy, and then each next leader the same, down to
``min_voters`` (twenty-ninth session): the peers the policy is given are the others, and a
voter missing from them was judged as never heard since the leader started.
"""

from __future__ import annotations

from typing import Any

from paxoskv.runtime.membership import PeerView, membership_change
from paxoskv.state import Configuration, RemoveMember
from tests.runtime.cluster import MemoryCluster, eventually

FIVE = Configuration(voters=frozenset({"a", "b", "c", "d", "e"}))


def _policy(peers: dict[str, PeerView], **given: Any) -> object:
    settings: dict[str, Any] = {
        "now": 100.0,
        "leader_applied_slot": 10,
        "suspect_after_s": 1.0,
        "down_after_s": 3.0,
        "auto_remove_down_after_s": 4.0,
        "min_voters": 3,
        "watching_since": 0.0,
        "leader_id": "a",
    }
    return membership_change(FIVE, peers, **(settings | given))


def _heard(at: float) -> PeerView:
    return PeerView(at, "voter", 10, 10, "a", ())


def test_the_leader_is_never_removed_as_down() -> None:
    others = {node_id: _heard(99.9) for node_id in "bcde"}
    assert _policy(others) is None


def test_a_voter_down_longer_than_the_setting_is_removed_and_one_down_less_is_not() -> None:
    others = {node_id: _heard(99.9) for node_id in "bcd"} | {"e": _heard(95.0)}
    assert _policy(others) == RemoveMember("e")
    others["e"] = _heard(97.0)
    assert _policy(others) is None


async def test_in_a_cluster_only_the_stopped_voter_is_removed() -> None:
    cluster = MemoryCluster()
    settings = {"bootstrap_expect": 4, "auto_remove_down_after_s": 1.0, "min_voters": 3}
    try:
        for node_id in ("n1", "n2", "n3", "n4"):
            await cluster.start(node_id, **settings)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        await eventually(lambda: cluster.leader() is not None, 10, "a leader")
        leader = cluster.leader()
        assert leader is not None
        stopped = next(n for n in ("n1", "n2", "n3", "n4") if n != leader.node_id)
        await cluster.stop(stopped)

        def voters() -> frozenset[str]:
            engine = leader.replica.engine
            assert engine is not None
            return engine.configuration.voters

        await eventually(lambda: stopped not in voters(), 10, f"{stopped} removed")
        assert voters() == {"n1", "n2", "n3", "n4"} - {stopped}
    finally:
        await cluster.close()
