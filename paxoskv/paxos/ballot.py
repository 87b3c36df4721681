"""Ballots: the total order that makes Paxos safe.

A ballot is (round, node id). Two proposers never share a ballot because the node id breaks
ties, so "one value per ballot per slot" holds without coordination (Paxos Made Simple, 2.2).
"""

from __future__ import annotations

from typing import NamedTuple


class Ballot(NamedTuple):
    """Compared as a tuple: round first, then node id."""

    round: int
    node_id: str

    def next_for(self, node_id: str) -> Ballot:
        """The smallest ballot owned by ``node_id`` that is greater than this one."""
        return Ballot(self.round + 1, node_id)


ZERO_BALLOT = Ballot(0, "")
