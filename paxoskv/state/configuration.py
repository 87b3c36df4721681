"""Cluster membership as replicated state: who votes, who only listens.

The configuration changes only through the log (add learner, promote, demote, remove), so every
replica knows, at every revision, which nodes form a quorum. A new node joins as a learner,
catches up, and is promoted only then, which keeps an empty newcomer from counting towards a
quorum it cannot yet serve. Learners receive the stream and never vote.

A change that makes no sense (adding a node twice, promoting a voter, removing the last voter)
is answered with a deterministic ``Failed("invalid_config_change")`` result: the command is in
the log already, so refusing it must look the same on every replica.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from paxoskv.errors import ConfigurationError

NodeId: TypeAlias = str


class RejectedChange(Exception):
    """A configuration change that cannot be applied to the current configuration."""


_NOT_A_MEMBER = (
    "node {node_id!r} is not a member of the cluster (members() lists them, as `paxos-kv "
    "members` does)"
)


@dataclass(frozen=True, slots=True)
class Configuration:
    """The voters and learners of the cluster at one revision."""

    voters: frozenset[NodeId]
    learners: frozenset[NodeId] = frozenset()

    def __post_init__(self) -> None:
        # Accept any iterable of ids for convenience, but store frozensets: the object is
        # hashed, compared and shared between threads.
        object.__setattr__(self, "voters", _node_ids(self.voters, "voters"))
        object.__setattr__(self, "learners", _node_ids(self.learners, "learners"))
        both = self.voters & self.learners
        if both:
            raise ConfigurationError(
                f"nodes {sorted(both)} are listed as both voter and learner; list each once"
            )

    def quorum_size(self) -> int:
        """How many voters make a majority."""
        return len(self.voters) // 2 + 1

    def is_quorum(self, nodes: Iterable[NodeId]) -> bool:
        """True if ``nodes`` include a majority of the voters (learners do not count)."""
        return len(self.voters.intersection(nodes)) >= self.quorum_size()

    def members(self) -> frozenset[NodeId]:
        """Every node in the cluster, voting or not."""
        return self.voters | self.learners

    def with_learner_added(self, node_id: NodeId) -> Configuration:
        if node_id in self.voters or node_id in self.learners:
            raise RejectedChange(f"node {node_id!r} is already a member")
        return Configuration(self.voters, self.learners | {node_id})

    def with_learner_promoted(self, node_id: NodeId) -> Configuration:
        if node_id not in self.learners:
            if node_id not in self.voters:
                raise RejectedChange(_NOT_A_MEMBER.format(node_id=node_id))
            raise RejectedChange(f"node {node_id!r} is a voter already, so it cannot be promoted")
        return Configuration(self.voters | {node_id}, self.learners - {node_id})

    def with_voter_demoted(self, node_id: NodeId) -> Configuration:
        if node_id not in self.voters:
            if node_id not in self.learners:
                raise RejectedChange(_NOT_A_MEMBER.format(node_id=node_id))
            raise RejectedChange(f"node {node_id!r} is a learner already, so it cannot be demoted")
        self._keep_a_voter(node_id)
        return Configuration(self.voters - {node_id}, self.learners | {node_id})

    def with_member_removed(self, node_id: NodeId) -> Configuration:
        if node_id in self.learners:
            return Configuration(self.voters, self.learners - {node_id})
        if node_id not in self.voters:
            raise RejectedChange(_NOT_A_MEMBER.format(node_id=node_id))
        self._keep_a_voter(node_id)
        return Configuration(self.voters - {node_id}, self.learners)

    def _keep_a_voter(self, node_id: NodeId) -> None:
        if self.voters == {node_id}:
            raise RejectedChange(
                f"node {node_id!r} is the last voter; promote another node before taking it away"
            )

    def to_wire(self) -> list[Any]:
        """Sorted lists, so the encoding does not depend on set iteration (hash seed) order."""
        return [sorted(self.voters), sorted(self.learners)]

    @classmethod
    def from_wire(cls, raw: object) -> Configuration:
        """Inverse of :meth:`to_wire`; raises ValueError or TypeError on a bad shape."""
        if type(raw) is not list or len(raw) != 2:
            raise ValueError("configuration is not [voters, learners]")
        voters, learners = raw
        if type(voters) is not list or type(learners) is not list:
            raise ValueError("configuration voters and learners must be arrays")
        return cls(frozenset(voters), frozenset(learners))


def _node_ids(nodes: Iterable[object], role: str) -> frozenset[NodeId]:
    if isinstance(nodes, str | bytes):
        raise ConfigurationError(f"{role} must be a collection of node ids, not one string")
    ids = frozenset(nodes)
    for node_id in ids:
        check_node_id(node_id)
    return ids  # type: ignore[return-value]


def check_node_id(node_id: object) -> NodeId:
    """Return ``node_id`` if it is a non-empty str, else raise ConfigurationError."""
    if type(node_id) is not str or not node_id:
        raise ConfigurationError(f"node id {node_id!r} is not a non-empty str")
    return node_id
