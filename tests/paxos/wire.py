"""A few engines wired by hand, for rules that need a cluster but not the simulator's faults.

Every message is delivered at once and in order, every persist is durable at once, every
snapshot is saved at once, and nodes in ``down`` neither send nor receive.
"""

from __future__ import annotations

import random
from typing import Any

from paxoskv.paxos import messages as m
from paxoskv.paxos.effects import Broadcast, Effect, Persist, SaveSnapshot, Send
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.state import Configuration

Wire = list[tuple[str, str, m.Message]]


def engines(names: str, **settings: Any) -> dict[str, Engine]:
    """One engine per name, voters all, each with ``settings`` and a seeded rng of its own."""
    config = Configuration(voters=frozenset(names), learners=frozenset())
    return {
        name: Engine(EngineSettings(node_id=name, **settings), random.Random(i), config)
        for i, name in enumerate(names)
    }


def carry_out(
    name: str, node: Engine, effects: list[object], now: float, everyone: str = "abc"
) -> list[tuple[str, str, m.Message]]:
    """Messages to deliver, every persist made durable at once (their replies included)."""
    out: list[tuple[str, str, m.Message]] = []
    for effect in effects:
        if isinstance(effect, Send):
            out.append((name, effect.to, effect.message))
        elif isinstance(effect, Broadcast):
            out += [(name, to, effect.message) for to in everyone if to != name]
        elif isinstance(effect, Persist):
            out += carry_out(name, node, node.handle_durable(effect.sync_id, now), now, everyone)
    return out


class Cluster:
    def __init__(self, names: str = "abc", **settings: Any) -> None:
        self.names = list(names)
        self.nodes = engines(names, **settings)
        self.now = 0.0
        self.down: set[str] = set()

    def carry_out(self, name: str, effects: list[Effect]) -> Wire:
        node, out = self.nodes[name], []
        for effect in effects:
            if isinstance(effect, Send):
                out.append((name, effect.to, effect.message))
            elif isinstance(effect, Broadcast):
                out += [(name, to, effect.message) for to in self.names if to != name]
            elif isinstance(effect, Persist):
                out += self.carry_out(name, node.handle_durable(effect.sync_id, self.now))
            elif isinstance(effect, SaveSnapshot):
                out += self.carry_out(name, node.snapshot_saved(effect.slot, self.now))
        return [(s, t, msg) for s, t, msg in out if s not in self.down and t not in self.down]

    def deliver(self, wire: Wire) -> None:
        while wire:
            sender, to, message = wire.pop(0)
            if to in self.nodes and to not in self.down:
                wire += self.carry_out(to, self.nodes[to].receive(sender, message, self.now))

    def run_until(self, until: float) -> None:
        """Fire every timer due before ``until``, delivering what each sends."""
        while True:
            up = [name for name in self.names if name not in self.down]
            due = min(self.nodes[name].next_deadline() for name in up)
            if due > until:
                self.now = until
                return
            self.now = max(self.now, due)
            wire: Wire = []
            for name in up:
                wire += self.carry_out(name, self.nodes[name].tick(self.now))
            self.deliver(wire)

    def leader(self) -> str:
        return next(n for n in self.names if n not in self.down and self.nodes[n].is_leader)

    def propose(self, name: str, requests: list[m.Request]) -> None:
        self.deliver(self.carry_out(name, self.nodes[name].propose(requests, self.now)))
