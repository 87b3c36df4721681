"""In-process clusters for runtime tests: real nodes over the memory transport."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paxoskv import Config, Node
from paxoskv.paxos.messages import Message, decode_message
from paxoskv.runtime import protocol
from paxoskv.transport import MemoryNetwork

FAST = {
    "heartbeat_interval_s": 0.02,
    "election_timeout_s": 0.2,
    "hello_interval_s": 0.05,
    "suspect_after_s": 0.3,
    "down_after_s": 0.8,
    "request_timeout_s": 5.0,
}


async def eventually(condition: Callable[[], Any], timeout_s: float = 5.0, what: str = "") -> None:
    """Wait for ``condition()`` to hold, polling, for at most ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")
        await asyncio.sleep(0.01)


class PaxosHold:
    """Keep a node's incoming Paxos messages back, but for the kinds ``passed``, until
    :meth:`release`: a node that hears its leader (heartbeats) and catches up on nothing."""

    def __init__(self, node: Node, passed: tuple[type[Message], ...]) -> None:
        replica = node.replica
        self.held = True
        deliveries = replica._on_deliveries

        def held_back(sender: str, payload: bytes) -> bool:
            if not self.held or payload[:1] != protocol.PAXOS:
                return False
            return type(decode_message(payload[1:])) not in passed

        def filtered(batch: list[Any]) -> None:
            batch = [delivery for delivery in batch if not held_back(*delivery)]
            if batch:
                deliveries(batch)

        assert replica.transport is not None
        replica.transport.deliver_to(filtered)
        # Messages held for a sender not yet verified are released later straight to
        # _on_deliveries (not through the transport's hook): filter those too.
        replica._on_deliveries = filtered  # type: ignore[method-assign]

    def release(self) -> None:
        self.held = False


class MemoryCluster:
    def __init__(self, tmp_path: Path | None = None) -> None:
        self.network = MemoryNetwork()
        self.nodes: dict[str, Node] = {}
        self.tmp_path = tmp_path

    def config(self, node_id: str, **overrides: Any) -> Config:
        settings: dict[str, Any] = {**FAST, "node_id": node_id, "durability": "memory"}
        if self.tmp_path is not None:
            settings.update(durability="os", data_dir=self.tmp_path / node_id)
        settings.update(overrides)
        return Config(**settings)

    async def start(self, node_id: str, **overrides: Any) -> Node:
        node = Node(self.config(node_id, **overrides), transport=self.network.attach(node_id))
        await node.start()
        self.nodes[node_id] = node
        return node

    async def stop(self, node_id: str) -> None:
        node = self.nodes.pop(node_id)
        await node.close()
        self.network._detach(node_id)

    def leader(self) -> Node | None:
        for node in self.nodes.values():
            engine = node.replica.engine
            if engine is not None and engine.is_leader:
                return node
        return None

    async def close(self) -> None:
        for node_id in list(self.nodes):
            await self.stop(node_id)


def unique_cluster_name() -> str:
    return f"test-{secrets.token_hex(4)}"
