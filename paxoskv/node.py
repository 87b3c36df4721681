"""An embedded replica: this process holds the whole map and votes (or learns) in the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from paxoskv.client import Consistency, KVApi, check_from_revision
from paxoskv.config import Config
from paxoskv.runtime.membership import Member
from paxoskv.runtime.replica import Replica
from paxoskv.runtime.serving import ClientService, all_entries
from paxoskv.state import ChangeEvent, Key
from paxoskv.transport import Transport


class Node(KVApi):
    """A replica in this process. ``async with Node(config) as node:`` starts and stops it.

    Reads are served from this process's own copy of the map, after the read barrier the
    consistency asks for; writes go through the leader (forwarded if this node is not it).
    """

    def __init__(self, config: Config, *, transport: Transport | None = None) -> None:
        super().__init__(config)
        self._transport = transport
        self._replica: Replica | None = None

    @property
    def replica(self) -> Replica:
        if self._replica is None:
            raise RuntimeError("the node is not started: use `async with Node(config) as node`")
        return self._replica

    @property
    def node_id(self) -> str:
        return self.replica.node_id

    async def start(self) -> None:
        replica = Replica(self.config, transport=self._transport)
        self.client_id = f"{replica.node_id}-{self.client_id.rsplit('-', 1)[-1]}"
        self._replica = replica
        await replica.start()
        ClientService(replica)
        # Writes go straight to the replica (its default timeout is this config's): no frame
        # of ours in between.
        self._send_request = replica.submit

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Until this node belongs to a cluster (it bootstrapped one or joined one)."""
        await self.replica.wait_ready(timeout_s or self.config.request_timeout_s)

    async def close(self) -> None:
        if self._replica is not None:
            await self._replica.stop()

    def _submit(self, client_id: str, seq: int, command: bytes) -> Awaitable[bytes]:
        return self.replica.submit(client_id, seq, command, self.config.request_timeout_s)

    async def _read(self, consistency: Consistency, op: str, argument: Any) -> Any:
        replica = self.replica
        await replica.read_barrier(consistency, self.config.request_timeout_s)
        assert replica.engine is not None
        state = replica.engine.state
        if op == "get":
            return state.get(argument)
        return all_entries(state, argument)

    async def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> AsyncIterator[ChangeEvent]:
        check_from_revision(from_revision)
        replica = self.replica
        await replica.wait_ready(self.config.request_timeout_s)
        assert replica.engine is not None
        after = replica.engine.state.revision if from_revision is None else from_revision - 1
        wake = asyncio.Event()
        replica.add_applied_listener(wake.set)
        try:
            while True:
                state = replica.engine.state  # replaced when a snapshot is installed
                scanned = state.revision
                for event in state.events_since(after, prefix):
                    yield event
                after = max(after, scanned)
                wake.clear()
                if replica.engine.state.revision <= after:
                    await wake.wait()
        finally:
            replica.remove_applied_listener(wake.set)

    async def members(self) -> list[Member]:
        return self.replica.members()

    async def status(self) -> dict[str, Any]:
        return self.replica.status()
