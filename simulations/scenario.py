"""A few verbs over the simulated world, so scenario tests read like the protocol's story.

Like etcd's interaction tests (``campaign``, ``deliver-msgs``, ``stabilize``), each verb runs
the virtual clock until its condition holds or its bound passes, and a missed bound raises
with what was seen. Nothing here sleeps: virtual time only moves when events run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paxoskv.paxos.effects import Answer
from paxoskv.paxos.engine import Engine
from paxoskv.paxos.messages import Request
from paxoskv.state import Command, Delete, Set, Written, decode_result, encode_command
from simulations.world import SimulationFailure, World


class Scenario:
    def __init__(
        self,
        voters: int = 3,
        *,
        learners: int = 0,
        seed: int = 1,
        trace: Callable[[str], None] | None = None,
        engine_class: type[Engine] = Engine,
        **settings: Any,
    ) -> None:
        self.world = World(
            seed,
            voters,
            learners=learners,
            settings=settings,
            trace=trace,
            engine_class=engine_class,
        )
        self._answers: dict[tuple[str, int], Any] = {}
        self._ready_reads: dict[int, str] = {}
        self._seq = 0
        self._read_id = 0
        self.world.on_answer = self._on_answer
        self.world.on_read_ready = self._on_read_ready

    def _on_read_ready(self, node_id: str, read_id: int) -> None:
        self._ready_reads.setdefault(read_id, node_id)

    def _on_answer(self, node_id: str, answer: Answer) -> None:
        self._answers[(answer.client_id, answer.seq)] = decode_result(answer.result)

    # --- time ----------------------------------------------------------------------------------

    def run_until(self, condition: Callable[[], bool], within_s: float, what: str) -> None:
        if not self.world.scheduler.run_until(self.world.now + within_s, condition):
            raise SimulationFailure(f"{what} did not happen within {within_s}s (virtual)")

    def run_for(self, duration_s: float) -> None:
        self.world.scheduler.run_until(self.world.now + duration_s)

    # --- verbs ---------------------------------------------------------------------------------

    def elect(self, within_s: float = 5.0) -> str:
        """Run until some node leads, and return its id."""
        self.run_until(lambda: self.world.leader() is not None, within_s, "an election")
        leader = self.world.leader()
        assert leader is not None
        return leader

    def submit(self, node_id: str, command: Command, client_id: str = "client") -> tuple[str, int]:
        self._seq += 1
        request = Request(client_id, self._seq, encode_command(command))
        self.world.call(node_id, "propose", [request])
        return (client_id, self._seq)

    def answer(self, ticket: tuple[str, int], within_s: float = 5.0) -> Any:
        self.run_until(lambda: ticket in self._answers, within_s, f"an answer to {ticket}")
        return self._answers[ticket]

    def answered(self, ticket: tuple[str, int]) -> bool:
        return ticket in self._answers

    def set(self, node_id: str, key: Any, value: Any, within_s: float = 5.0) -> Any:
        return self.answer(self.submit(node_id, Set(key, value)), within_s)

    def delete(self, node_id: str, key: Any, within_s: float = 5.0) -> Any:
        return self.answer(self.submit(node_id, Delete(key)), within_s)

    def get(
        self, node_id: str, key: Any, consistency: str = "linearizable", within_s: float = 5.0
    ) -> Any:
        """A read through the engine's read path; returns the value or None."""
        self._read_id += 1
        read_id = self._read_id
        self.world.call(node_id, "read", read_id, consistency)
        self.run_until(lambda: read_id in self._ready_reads, within_s, f"read {read_id}")
        engine = self.world.nodes[node_id].engine
        assert engine is not None
        entry = engine.state.get(key)
        return None if entry is None else entry.value

    def local(self, node_id: str, key: Any) -> Any:
        engine = self.world.nodes[node_id].engine
        assert engine is not None
        entry = engine.state.get(key)
        return None if entry is None else entry.value

    def lease_read_after_a_successor_writes(
        self, old: str, key: Any, value: Any
    ) -> tuple[bool, Any]:
        """Run until a node other than ``old`` leads, write ``value`` there, then read ``key``
        at ``old`` with consistency 'leader' if it still holds a lease (on its own clock).
        Returns (it held its lease, what the read saw): the end of every lease story."""
        world = self.world
        self.run_until(lambda: world.leader() not in (None, old), 5.0, "an election without it")
        new = world.leader()
        assert new is not None
        answer = self.set(new, key, value, within_s=1.0)
        if not isinstance(answer, Written):
            raise SimulationFailure(f"the successor's write answered {answer!r}")
        engine = world.nodes[old].engine
        if engine is None or not engine.is_leader:
            return False, None
        if not engine._lease_valid(world.clock(world.nodes[old])):
            return False, None
        return True, self.get(old, key, consistency="leader", within_s=0.001)

    def crash(self, node_id: str) -> None:
        self.world.crash(node_id)

    def restart(self, node_id: str) -> None:
        self.world.start(node_id)

    def isolate(self, node_id: str) -> None:
        others = set(self.world.nodes) - {node_id}
        self.world.partition({node_id}, others)

    def heal(self) -> None:
        self.world.heal()

    def applied(self, node_id: str) -> int:
        engine = self.world.nodes[node_id].engine
        assert engine is not None
        return engine.applied_slot

    def converge(self, within_s: float = 10.0) -> None:
        """Run until every live replica has applied every chosen slot."""

        def done() -> bool:
            target = max(self.world.chosen, default=0)
            return all(
                n.engine is not None and n.engine.applied_slot >= target
                for n in self.world.up_nodes()
            )

        self.run_until(done, within_s, "convergence")
        digests = {n.engine.state.digest() for n in self.world.up_nodes() if n.engine}
        if len(digests) != 1:
            raise SimulationFailure("replicas applied the same slots but differ")
