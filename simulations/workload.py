"""Simulated clients: they read, write, delete and compare-and-set, retry, and keep a history.

A client has one call open at a time (as the linearizability checker expects of a process),
sends it to a random live node, and on a timeout retries the SAME (client_id, seq) elsewhere,
so the state machine's dedup table is what keeps a retried write from applying twice. After
its last attempt it gives up and records the call with an unknown outcome, which the checker
treats as "may take effect at any later time, or never".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, cast

from paxoskv.paxos import effects as fx
from paxoskv.paxos.messages import Request
from paxoskv.state import (
    Compare,
    Delete,
    Deleted,
    Failed,
    Set,
    Txn,
    TxnResult,
    decode_result,
    encode_command,
)
from simulations.kv_history import Operation
from simulations.world import SimulationFailure, World

KEYS = ("a", "b", "c")


@dataclass
class _Call:
    op: str
    key: str
    input: Any
    call_time: float
    seq: int = 0
    read_id: int = 0
    consistency: str = "linearizable"
    node_id: str = ""
    attempts: int = 0


@dataclass
class SimClient:
    client_id: str
    rng: random.Random
    call: _Call | None = None
    next_seq: int = 1
    completed: int = 0
    history: list[Operation] = field(default_factory=list)


class Workload:
    """Drives ``clients`` simulated clients against a :class:`World`."""

    def __init__(
        self,
        world: World,
        clients: int,
        *,
        timeout_s: float = 1.5,
        attempts: int = 4,
        think_s: float = 0.05,
        leader_reads: float = 0.0,
    ) -> None:
        self.world = world
        # The share of gets made as 'leader' (lease) reads, sent to a node that thinks it
        # leads (a deposed one too): served from the lease, they must be linearizable as well.
        self.leader_reads = leader_reads
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.think_s = think_s
        self.running = True
        self.clients = [
            SimClient(f"c{i}", random.Random(world.rng.getrandbits(64))) for i in range(clients)
        ]
        self._by_id = {client.client_id: client for client in self.clients}
        self._reads: dict[int, SimClient] = {}
        self._next_read_id = 1
        self._value_counter = 0
        self.acknowledged_writes: set[tuple[str, int]] = set()
        world.on_answer = self._on_answer
        world.on_read_ready = self._on_read_ready
        for client in self.clients:
            world.scheduler.at(client.rng.uniform(0, 0.1), self._start_call, client)

    @property
    def history(self) -> list[Operation]:
        return [op for client in self.clients for op in client.history]

    def open_calls(self) -> int:
        return sum(1 for client in self.clients if client.call is not None)

    # --- a call's life -----------------------------------------------------------------------

    def _start_call(self, client: SimClient) -> None:
        if not self.running or client.call is not None:
            return
        rng = client.rng
        key = rng.choice(KEYS)
        kind = rng.choices(("get", "set", "delete", "cas"), weights=(4, 4, 1, 2))[0]
        self._value_counter += 1
        new_value = f"{client.client_id}-{self._value_counter}"
        value: Any = None
        if kind == "set":
            value = new_value
        elif kind == "cas":
            expect = None if rng.random() < 0.2 else self._recent_value(key, rng)
            value = {"expect": expect, "new": new_value}
        call = _Call(kind, key, value, self.world.now)
        if kind == "get" and self.leader_reads and rng.random() < self.leader_reads:
            call.consistency = "leader"  # (drawn only when asked for: other runs keep their seeds)
        if kind != "get":
            call.seq = client.next_seq
            client.next_seq += 1
        client.call = call
        self._send(client)

    def _recent_value(self, key: str, rng: random.Random) -> str | None:
        """A value some client wrote to ``key``, so that compare-and-set sometimes succeeds."""
        written = [
            _written(op)
            for c in self.clients
            for op in c.history[-5:]
            if op.key == key and op.op in ("set", "cas")
        ]
        return rng.choice(written) if written else None

    def _send(self, client: SimClient) -> None:
        call = client.call
        assert call is not None
        live = [n.node_id for n in self.world.up_nodes()]
        if not live:  # the whole cluster is down: wait a timeout and try again
            call.attempts += 1
            self.world.scheduler.at(
                self.world.now + self.timeout_s, self._timeout, client, call, call.attempts
            )
            return
        leaders = [n.node_id for n in self.world.up_nodes() if n.engine and n.engine.is_leader]
        # A lease read goes to a leader half the time, and to any node otherwise: a follower
        # asks the leader, which answers under its lease (what the runtime does).
        if call.consistency == "leader" and leaders and client.rng.random() < 0.5:
            call.node_id = client.rng.choice(leaders)
        else:
            call.node_id = client.rng.choice(live)
        call.attempts += 1
        if call.op == "get":
            call.read_id = self._next_read_id
            self._next_read_id += 1
            self._reads[call.read_id] = client
            self.world.call(call.node_id, "read", call.read_id, call.consistency)
        else:
            request = Request(client.client_id, call.seq, encode_command(self._command(call)))
            self.world.call(call.node_id, "propose", [request])
        self.world.scheduler.at(
            self.world.now + self.timeout_s, self._timeout, client, call, call.attempts
        )

    @staticmethod
    def _command(call: _Call) -> Any:
        if call.op == "set":
            return Set(call.key, call.input)
        if call.op == "delete":
            return Delete(call.key)
        expect, new = call.input["expect"], call.input["new"]
        compare = (
            Compare(call.key, "version", "==", 0)
            if expect is None
            else Compare(call.key, "value", "==", expect)
        )
        return Txn(compares=(compare,), success=(Set(call.key, new),), failure=())

    def _timeout(self, client: SimClient, call: _Call, attempt: int) -> None:
        if client.call is not call or call.attempts != attempt:
            return
        node = self.world.nodes.get(call.node_id)
        if node is not None and node.engine is not None:
            if call.op == "get":
                node.engine.cancel_read(call.read_id)
            else:
                node.engine.cancel(client.client_id, call.seq)
        self._reads.pop(call.read_id, None)
        if call.attempts < self.attempts:
            self._send(client)
            return
        if call.op != "get":  # a write that may or may not have happened
            self._finish(client, None, returned=False)
        else:  # a read that never answered constrains nothing
            client.call = None
            self._schedule_next(client)

    def _on_answer(self, node_id: str, answer: fx.Answer) -> None:
        client = self._by_id.get(answer.client_id)
        if client is None or client.call is None or client.call.seq != answer.seq:
            return
        if client.call.op == "get":
            return
        result = decode_result(answer.result)
        call = client.call
        output: Any = None
        if isinstance(result, Failed):
            raise SimulationFailure(f"{client.client_id} {call.op} failed: {result}")
        if call.op == "delete":
            assert isinstance(result, Deleted)
            output = result.prev is not None
        elif call.op == "cas":
            assert isinstance(result, TxnResult)
            output = result.succeeded
        self.acknowledged_writes.add((client.client_id, call.seq))
        self._finish(client, output, returned=True)

    def _on_read_ready(self, node_id: str, read_id: int) -> None:
        client = self._reads.pop(read_id, None)
        if client is None or client.call is None or client.call.read_id != read_id:
            return
        engine = self.world.nodes[node_id].engine
        if engine is None:
            # The node stopped (removed) in the very step that made the read ready, through a
            # call made while that step's effects were carried out: left to its timeout, as
            # a read on a stopped node (seed 294647 of 5 nodes, a follower's lease read).
            return
        entry = engine.state.get(client.call.key)
        self._finish(client, None if entry is None else entry.value, returned=True)

    def _finish(self, client: SimClient, output: Any, *, returned: bool) -> None:
        call = client.call
        assert call is not None
        client.history.append(
            Operation(
                client_id=client.client_id,
                op=call.op,  # type: ignore[arg-type]
                key=call.key,
                input=call.input,
                output=output if returned else None,
                call_time=call.call_time,
                return_time=self.world.now if returned else None,
            )
        )
        client.call = None
        client.completed += 1
        self._schedule_next(client)

    def _schedule_next(self, client: SimClient) -> None:
        if self.running:
            delay = client.rng.uniform(0, self.think_s)
            self.world.scheduler.at(self.world.now + delay, self._start_call, client)


def _written(op: Operation) -> str:
    """The value a set or a compare-and-set wrote (this workload writes strings)."""
    value = op.input if op.op == "set" else cast(dict[str, object], op.input)["new"]
    assert isinstance(value, str)
    return value
