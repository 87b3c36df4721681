"""Who is up, and what the leader does about members: pure functions of what was heard.

The failure detector is gossip over hellos: every node broadcasts one every
``hello_interval_s``; a member not heard for ``suspect_after_s`` is suspect, for
``down_after_s`` down. The leader turns that view into configuration changes, one at a time,
through the log like any command: a node asking to join is added as a learner; a learner that
asked to vote is promoted once it has caught up; a voter down for longer than
``auto_remove_down_after_s`` (when set) is removed, never below ``min_voters``.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxoskv.state import AddLearner, Command, Configuration, PromoteLearner, RemoveMember

CATCH_UP_MARGIN_SLOTS = 64


@dataclass(slots=True)
class PeerView:
    last_seen: float
    wants: str
    applied_slot: int
    revision: int
    leader_id: str


@dataclass(frozen=True, slots=True)
class Member:
    """One member as this node sees it (``paxos-kv members``)."""

    node_id: str
    role: str  # voter | learner | joining
    state: str  # up | suspect | down
    applied_revision: int
    is_leader: bool


def liveness(
    now: float, last_seen: float | None, suspect_after_s: float, down_after_s: float
) -> str:
    if last_seen is None:
        return "down"
    silent = now - last_seen
    if silent < suspect_after_s:
        return "up"
    return "suspect" if silent < down_after_s else "down"


def membership_change(
    config: Configuration,
    peers: dict[str, PeerView],
    *,
    now: float,
    leader_applied_slot: int,
    suspect_after_s: float,
    down_after_s: float,
    auto_remove_down_after_s: float | None,
    min_voters: int,
    watching_since: float,
) -> Command | None:
    """The one configuration change the leader should propose now, if any."""
    for node_id in sorted(peers):
        view = peers[node_id]
        state = liveness(now, view.last_seen, suspect_after_s, down_after_s)
        if state != "up" or view.wants not in ("voter", "learner"):
            continue
        if node_id not in config.members():
            return AddLearner(node_id)
        caught_up = view.applied_slot >= leader_applied_slot - CATCH_UP_MARGIN_SLOTS
        if node_id in config.learners and view.wants == "voter" and caught_up:
            return PromoteLearner(node_id)
    if auto_remove_down_after_s is not None and len(config.voters) > min_voters:
        for node_id in sorted(config.voters):
            # A voter never heard is judged from when this node started listening.
            heard = peers.get(node_id)
            last_seen = heard.last_seen if heard else watching_since
            if now - last_seen > auto_remove_down_after_s:
                return RemoveMember(node_id)
    return None
