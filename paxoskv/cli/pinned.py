"""A thin client that sends every request to one chosen member.

``paxos-kv get KEY --node n2 --consistency local`` must read n2's own copy (to show that a
restarted node caught up, or how stale a learner is), whereas the ordinary client picks the
leader and moves on to another member when one does not answer.
"""

from __future__ import annotations

from paxoskv.config import Config
from paxoskv.remote import Client


class PinnedClient(Client):
    """A :class:`~paxoskv.remote.Client` whose every attempt goes to ``node_id``."""

    def __init__(self, config: Config, node_id: str) -> None:
        super().__init__(config)
        self.pinned_node_id = node_id

    async def _target(self, deadline: float, attempt: int) -> str:
        # The base class waits until some member has been heard (or raises NoQuorum), which
        # is also when the transport has learned where members are; then we ignore its choice.
        await super()._target(deadline, attempt)
        return self.pinned_node_id
