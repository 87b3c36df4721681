"""A simulated cluster: real engines and real storage code on a virtual clock and network.

Everything runs in one thread on one priority queue of events, and every random choice comes
from generators seeded from one seed, so a run is a pure function of its seed: run it twice
and the traces are equal (TigerBeetle's VOPR and FoundationDB's simulator work the same way).

What is real: the Paxos engine, the message codec (every message crosses the network as
bytes), the state machine, and the storage layer's framing and recovery, which run on a
:class:`~paxoskv.storage.MemoryDisk` that a crash cuts back to what was synced (tearing the
last write when the dice say so). What is simulated: time, the network (loss, duplication,
delay and so reordering, one-way cuts), disk latency, each node's clock, and processes paused
(a stop-the-world pause, SIGSTOP, a VM descheduled): a paused node does nothing, and what
reaches it waits until it resumes.

A node's clock is what the runtime's is (``runtime.clock``): the wall clock read at the
process's start, carried on by a monotonic clock. Here that is an offset drawn at every start
and a rate fixed per node, ``1 ± clock_drift``; with no drift every clock is the world's own.
Leader leases rest on the rates (a lease timed on the leader's clock, a voter's wait before
it promises a rival on its own), so runs with drift check the bound the engine allows for.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from paxoskv.paxos import effects as fx
from paxoskv.paxos.batches import decode_batch
from paxoskv.paxos.configs import last_voted_slot, may_leave
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.messages import decode_message, encode_message
from paxoskv.paxos.records import DurableState, decode_local_snapshot
from paxoskv.state import Configuration
from paxoskv.storage import LAZY_SYNC_S, MemoryDisk, Store


class SimulationFailure(AssertionError):
    """An invariant broke. The message says which; the seed replays it."""


class Scheduler:
    """A virtual clock and the events waiting on it, in (time, insertion) order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._counter = 0

    def at(self, time: float, action: Callable[..., None], *args: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (max(time, self.now), self._counter, action, args))

    def run_until(self, end: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Run events up to ``end``; True if ``stop()`` became true first."""
        while self._queue and self._queue[0][0] <= end:
            time, _, action, args = heapq.heappop(self._queue)
            self.now = time
            action(*args)
            if stop():
                return True
        self.now = max(self.now, end)
        return stop()


@dataclass
class NetworkFaults:
    loss: float = 0.0
    duplicate: float = 0.0
    delay_min_s: float = 0.0005
    delay_max_s: float = 0.002


@dataclass
class SimNode:
    node_id: str
    disk: MemoryDisk
    learner: bool
    engine: Engine | None = None
    store: Store | None = None
    incarnation: int = 0
    unsynced_ids: list[int] = field(default_factory=list)
    sync_scheduled: bool = False
    sync_due: float = 0.0
    snapshot_due: float = 0.0  # when the last snapshot asked for is written
    tick_at: float = float("inf")  # on the node's clock, as the engine gave it
    clock_rate: float = 1.0  # its clock's seconds per real second
    clock_offset: float = 0.0  # its clock's reading at real time 0, this life
    clock_read: float = float("-inf")  # the last reading given its engine (never goes back)
    paused_until: float = 0.0  # in the world's time: it runs nothing before then
    # What reached it while paused, in order (with the life it reached), run at the resume.
    held: deque[tuple[int, Callable[..., None], tuple[Any, ...]]] = field(default_factory=deque)
    draining: bool = False  # running what was held: it goes through, not back in the queue
    rate_epoch: int = 0  # counts set_clock_rate: a timer armed at an earlier rate is void
    recorded_slot: int = 0
    amnesiac: bool = False  # its disk was lost whole while its id is a voter's: see World.wipe
    # What its data dir keeps of its membership (the runtime's role file): it has been a
    # member; removed, the last slot it votes on (Replica._still_needed); stopped for good.
    was_member: bool = False
    leave_after: int | None = None
    retired: bool = False

    @property
    def up(self) -> bool:
        return self.engine is not None


class StoreSettings(TypedDict, total=False):
    """What a seed may set of ``Store.open``'s own: segment size and retention."""

    segment_size_bytes: int
    keep_snapshots: int
    keep_journal_records: int
    keep_journal_bytes: int


class World:
    """The cluster under test: nodes, network, and the observers the checkers hang on."""

    def __init__(
        self,
        seed: int,
        voters: int,
        *,
        learners: int = 0,
        settings: dict[str, Any] | None = None,
        store_settings: StoreSettings | None = None,
        trace: Callable[[str], None] | None = None,
        engine_class: type[Engine] = Engine,
        clock_drift: float = 0.0,
    ) -> None:
        self.seed = seed
        self.engine_class = engine_class
        self.rng = random.Random(seed)
        # Clocks draw from a generator of their own, so that a run without drift makes every
        # other draw as it always did (and seeds replay as before).
        self.clock_drift = clock_drift
        self._clock_rng = random.Random(f"clocks-{seed}")
        self.scheduler = Scheduler()
        self.faults = NetworkFaults()
        self.sync_latency_s = (0.001, 0.01)  # an fsync on a real disk: milliseconds
        self.cut: set[tuple[str, str]] = set()
        self.faults_over = False  # healed for good: cuts scheduled earlier no longer happen
        self.nodes: dict[str, SimNode] = {}
        self.settings_overrides = settings or {}
        self.store_settings: StoreSettings = store_settings or {}
        # The runtime's rule against acceptor amnesia (``Replica._may_vote``): a voter's id
        # started on an empty disk votes in no seat it did not get in that life. Modelled as
        # what the runtime does until the id is removed: its engine runs as a learner. Off,
        # to show what the rule prevents.
        self.amnesia_rule = True
        # The runtime's rule for a voter taken out (Replica._still_needed): it votes on until
        # the slots its old configuration governs no longer need it. Off, it stops the moment
        # it applies its removal, as it did before the twentieth session.
        self.leave_rule = True
        self.wipes = False  # a disk may be wiped in this run (the membership faults heed it)
        self.trace = trace
        ids = [f"n{i}" for i in range(1, voters + learners + 1)]
        self.genesis = Configuration(
            voters=frozenset(ids[:voters]), learners=frozenset(ids[voters:])
        )
        self.chosen: dict[int, bytes] = {}  # slot -> value, as first applied anywhere
        self.digests: dict[int, tuple[str, bytes]] = {}  # slot -> (node, digest) seen first
        self.on_answer: Callable[[str, fx.Answer], None] = lambda node, answer: None
        self.on_read_ready: Callable[[str, int], None] = lambda node, read_id: None
        self.messages_sent: dict[str, int] = {}  # per receiver: what unicast would cost
        self.datagrams_sent: dict[str, int] = {}  # a broadcast counts once: multicast
        for node_id in ids:
            self.add_node(node_id, learner=node_id in self.genesis.learners)

    @property
    def now(self) -> float:
        return self.scheduler.now

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.trace(f"{self.now:10.4f} {text}")

    # --- nodes -------------------------------------------------------------------------------

    def add_node(self, node_id: str, *, learner: bool) -> SimNode:
        node = SimNode(node_id, MemoryDisk(), learner)
        if self.clock_drift:
            # As often at either edge of the bound as inside it: the edges are where a lease
            # and a rival's wait come closest.
            low, high = 1.0 - self.clock_drift, 1.0 + self.clock_drift
            node.clock_rate = self._clock_rng.choice(
                (low, high, self._clock_rng.uniform(low, high))
            )
        self.nodes[node_id] = node
        self.start(node_id)
        return node

    def start(self, node_id: str) -> None:
        """Open the node's store and recover its engine, as a real process restart would."""
        node = self.nodes[node_id]
        assert not node.up
        if node.retired:
            return  # removed, and stopped: its data dir never starts again
        # A member again only by what it replays, or once it sees itself added (the runtime's
        # ``_member``), unless it was leaving (kept in its role file): a joiner restarted at a
        # slot before its own addition is no removed member.
        node.was_member = node.leave_after is not None
        node.paused_until = 0.0  # a new process
        node.held.clear()
        if self.clock_drift:
            # A new process reads the wall clock anew: off from the others' by up to a second
            # (NTP's error on a bad day), and from its own last life's.
            error = self._clock_rng.uniform(0.0, 1.0)
            node.clock_offset = self.now + error - node.clock_rate * self.now
            node.clock_read = float("-inf")
        node.store = Store.open(None, durability="memory", disk=node.disk, **self.store_settings)
        recovered = node.store.recovered_snapshot()
        durable = decode_local_snapshot(recovered[1]) if recovered else DurableState()
        for _, record in node.store.recovered_records():
            durable.replay(record)
        learner = node.learner or (node.amnesiac and self.amnesia_rule)
        settings = EngineSettings(node_id=node_id, learner=learner, **self.settings_overrides)
        node.incarnation += 1
        node.engine = self.engine_class(
            settings,
            random.Random(self.rng.getrandbits(64)),
            self.genesis,
            durable=durable,
            journal_index=node.store.last_index,
            now=self.clock(node),
        )
        node.recorded_slot = node.engine.applied_slot
        node.unsynced_ids = []
        node.sync_scheduled = False
        node.tick_at = float("inf")
        self.log(f"{node_id} started (applied {node.engine.applied_slot})")
        self._after(node, node.engine.tick(self.clock(node)))

    def crash(self, node_id: str, *, torn: bool = True) -> None:
        """Kill -9: unsynced journal bytes are lost, the last write maybe torn."""
        node = self.nodes[node_id]
        if not node.up:
            return
        node.engine = None
        node.store = None
        node.incarnation += 1
        node.disk.crash(self.rng if torn else None)
        self.log(f"{node_id} crashed")

    def wipe(self, node_id: str) -> None:
        """Crash the node and lose its disk whole (a wiped data dir, a new machine given the
        old id): it starts again with no memory of its promises and accepts."""
        self.crash(node_id)
        node = self.nodes[node_id]
        node.disk = MemoryDisk()
        node.was_member, node.leave_after = False, None  # (its role file went with the disk)
        node.amnesiac = node_id in self.genesis.voters or node.amnesiac
        self.log(f"{node_id} lost its disk")

    def clock(self, node: SimNode, *, at_least: float = float("-inf")) -> float:
        """What the node's clock reads now. Never less than ``at_least`` (a timer's deadline,
        whose real time was worked out from it, may come back a rounding short) nor than its
        last reading: a monotonic clock does not run back within a life."""
        reading = max(node.clock_offset + node.clock_rate * self.now, at_least, node.clock_read)
        node.clock_read = reading
        return reading

    def set_clock_rate(self, node_id: str, rate: float) -> None:
        """From now on the node's clock runs at ``rate`` (its reading carries on from where
        it is: a clock that starts to run fast or slow, not one stepped)."""
        node = self.nodes[node_id]
        reading = node.clock_offset + node.clock_rate * self.now
        node.clock_rate = rate
        node.clock_offset = reading - rate * self.now
        node.rate_epoch += 1  # the timer set in real time by the old rate is void
        if node.tick_at != float("inf") and node.engine is not None:
            when = self._real_time(node, node.tick_at)
            self.scheduler.at(
                when, self._tick, node, node.incarnation, node.tick_at, node.rate_epoch
            )

    def _real_time(self, node: SimNode, reading: float) -> float:
        """When, in the world's time, the node's clock shows ``reading``."""
        return (reading - node.clock_offset) / node.clock_rate

    def pause(self, node_id: str, duration_s: float) -> None:
        """Stop the node's process for ``duration_s``: no timer fires, no message is read, no
        write or snapshot completes, and its clock runs on (CLOCK_BOOTTIME counts a pause, as
        ``runtime.clock`` says). Whatever came due meanwhile runs at the resume, in the order
        it came, a pause extended meanwhile included. Healing for good resumes every node."""
        node = self.nodes[node_id]
        if not node.up or self.faults_over:
            return
        node.paused_until = max(node.paused_until, self.now + duration_s)
        self.log(f"{node_id} paused for {duration_s:.3f}s")

    def _held(self, node: SimNode, action: Callable[..., None], *args: Any) -> bool:
        """If the node is paused (or has held work not yet run), queue ``action`` for the
        resume, and say so. A node that crashes meanwhile loses it (a socket's buffer, a call
        in flight)."""
        if node.draining or (node.paused_until <= self.now and not node.held):
            return False
        node.held.append((node.incarnation, action, args))
        if len(node.held) == 1:
            self.scheduler.at(node.paused_until, self._drain, node)
        return True

    def _drain(self, node: SimNode) -> None:
        """The resume: run what was held, first come first, unless the pause was extended."""
        if not node.held:
            return
        if node.paused_until > self.now:
            self.scheduler.at(node.paused_until, self._drain, node)
            return
        node.draining = True
        try:
            while node.held:
                incarnation, action, args = node.held.popleft()
                if incarnation == node.incarnation:
                    action(*args)
        finally:
            node.draining = False

    def up_nodes(self) -> list[SimNode]:
        return [node for node in self.nodes.values() if node.up]

    def leader(self) -> str | None:
        leaders = [n.node_id for n in self.up_nodes() if n.engine and n.engine.is_leader]
        return max(leaders, key=lambda i: self.nodes[i].engine.ballot) if leaders else None  # type: ignore[union-attr]

    # --- driving engines ---------------------------------------------------------------------

    def call(self, node_id: str, method: str, *args: Any) -> None:
        """Invoke an engine input on a live node and carry out its effects."""
        node = self.nodes[node_id]
        if node.engine is None or self._held(node, self.call, node_id, method, *args):
            return
        effects = getattr(node.engine, method)(*args, self.clock(node))
        self._after(node, effects)

    def _after(self, node: SimNode, effects: list[fx.Effect]) -> None:
        engine, store = node.engine, node.store
        assert engine is not None and store is not None
        for effect in effects:
            if isinstance(effect, (fx.Send, fx.Broadcast)):
                sent = self.datagrams_sent.get(node.node_id, 0)
                self.datagrams_sent[node.node_id] = sent + 1
            if isinstance(effect, fx.Send):
                self._transmit(node.node_id, effect.to, encode_message(effect.message))
            elif isinstance(effect, fx.Broadcast):
                data = encode_message(effect.message)
                for other in self.nodes:
                    if other != node.node_id:
                        self._transmit(node.node_id, other, data)
            elif isinstance(effect, fx.Persist):
                store.append(effect.records)
                node.unsynced_ids.append(effect.sync_id)
                # As the runtime does: records no reply waits on are synced by a later sync,
                # or by a timer, so a crash before then loses them.
                due = self.now + (
                    self.rng.uniform(*self.sync_latency_s) if effect.sync_now else LAZY_SYNC_S
                )
                if not node.sync_scheduled or due < node.sync_due:
                    node.sync_scheduled = True
                    node.sync_due = due
                    self.scheduler.at(due, self._sync, node, node.incarnation)
            elif isinstance(effect, fx.SaveSnapshot):
                # As the runtime does: packed and written off the engine, a while later (in
                # order), and the engine told once it is saved; a crash before loses it.
                node.snapshot_due = max(node.snapshot_due, self.now) + self.rng.uniform(
                    *self.sync_latency_s
                )
                self.scheduler.at(
                    node.snapshot_due, self._save_snapshot, node, node.incarnation, effect
                )
            elif isinstance(effect, fx.Answers):
                for answer in effect.each():
                    self.on_answer(node.node_id, answer)
            elif isinstance(effect, fx.ReadReady):
                self.on_read_ready(node.node_id, effect.read_id)
            elif isinstance(effect, fx.LeaderChanged):
                self.log(f"{node.node_id} sees leader {effect.leader_id}")
        self._record_applied(node, engine)
        deadline = engine.next_deadline()
        if deadline < node.tick_at or node.tick_at <= node.clock_read:
            node.tick_at = deadline
            when = self._real_time(node, deadline)
            self.scheduler.at(when, self._tick, node, node.incarnation, deadline, node.rate_epoch)
        self._leave_if_removed(node, engine)

    def _leave_if_removed(self, node: SimNode, engine: Engine) -> None:
        """The runtime's rule for a member taken out (``Replica._still_needed``): a learner
        stops at once; a voter votes on until it and a quorum of the latest voters have applied
        the last slot it votes in, then stops for good. The others' applied slots are read
        here as they stand, where the runtime hears them in hellos a little later: the world
        lets it go as early as the rule ever could."""
        if node.engine is not engine:
            return  # stopped already, by a call made while this one's effects were carried out
        if node.node_id in engine.configuration.members():
            node.was_member = True
            return
        if not node.was_member:
            return  # a joiner not yet added
        last = last_voted_slot(engine.configs, node.node_id)
        if last is not None and last > (node.leave_after or 0):
            node.leave_after = last
        if node.leave_after is not None and self.leave_rule:
            reported = {
                other.node_id: other.engine.applied_slot
                for other in self.nodes.values()
                if other.engine is not None
            }
            latest = engine.configs.latest()
            if not may_leave(latest, node.leave_after, engine.applied_slot, reported):
                return
        assert node.store is not None
        node.store.sync()  # (a clean stop: the runtime's committer syncs what it holds)
        node.engine = None
        node.store = None
        node.incarnation += 1
        node.retired = True
        self.log(f"{node.node_id} removed, stopped (voted to slot {node.leave_after})")

    def _tick(self, node: SimNode, incarnation: int, when: float, rate_epoch: int = 0) -> None:
        if self._held(node, self._tick, node, incarnation, when, rate_epoch):
            return
        if (
            node.incarnation == incarnation
            and node.tick_at == when
            and node.rate_epoch == rate_epoch
            and node.engine is not None
        ):
            node.tick_at = float("inf")
            self._after(node, node.engine.tick(self.clock(node, at_least=when)))

    def _sync(self, node: SimNode, incarnation: int) -> None:
        if node.incarnation != incarnation or node.engine is None or node.store is None:
            return
        if self._held(node, self._sync, node, incarnation):
            return
        node.sync_scheduled = False
        node.store.sync()
        ids, node.unsynced_ids = node.unsynced_ids, []
        if ids:
            self._after(node, node.engine.handle_durable(max(ids), self.clock(node)))

    def _save_snapshot(self, node: SimNode, incarnation: int, effect: fx.SaveSnapshot) -> None:
        if node.incarnation != incarnation or node.store is None:
            return  # crashed before it was written
        if self._held(node, self._save_snapshot, node, incarnation, effect):
            return
        node.store.write_snapshot(effect.journal_index, effect.image.local_pieces())
        self.call(node.node_id, "snapshot_saved", effect.slot)

    # --- network -----------------------------------------------------------------------------

    def _transmit(self, source: str, target: str, data: bytes) -> None:
        self.messages_sent[source] = self.messages_sent.get(source, 0) + 1
        if (source, target) in self.cut or self.rng.random() < self.faults.loss:
            return
        copies = 2 if self.rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            delay = self.rng.uniform(self.faults.delay_min_s, self.faults.delay_max_s)
            self.scheduler.at(self.now + delay, self._deliver, source, target, data)

    def _deliver(self, source: str, target: str, data: bytes) -> None:
        node = self.nodes.get(target)
        if node is None or node.engine is None:
            return
        if self._held(node, self._deliver, source, target, data):
            return
        message = decode_message(data)
        self._after(node, node.engine.receive(source, message, self.clock(node)))

    def partition(self, side_a: set[str], side_b: set[str], *, one_way: bool = False) -> None:
        if self.faults_over:
            return  # a flap or swizzle scheduled in the fault phase, due after it ended
        for a in side_a:
            for b in side_b:
                self.cut.add((a, b))
                if not one_way:
                    self.cut.add((b, a))
        self.log(f"cut {sorted(side_a)} {'->' if one_way else '<->'} {sorted(side_b)}")

    def heal(self, *, for_good: bool = False) -> None:
        """Restore every link; ``for_good`` also drops every cut still scheduled."""
        self.cut.clear()
        self.faults_over = self.faults_over or for_good
        self.log("network healed" + (" for good" if for_good else ""))
        if for_good:  # and every paused process resumed: the healed phase has no faults
            for node in self.nodes.values():
                if node.paused_until > self.now:
                    node.paused_until = self.now
                    self.log(f"{node.node_id} resumed")
                if node.held:
                    self.scheduler.at(self.now, self._drain, node)

    # --- invariants checked as the run goes ---------------------------------------------------

    def _record_applied(self, node: SimNode, engine: Engine) -> None:
        """Agreement: every node applies the same value in each slot, and reaches equal states."""
        if engine.applied_slot == node.recorded_slot:
            return
        for slot in range(node.recorded_slot + 1, engine.applied_slot + 1):
            value = engine.values.get(slot)
            if value is None:
                continue  # came in a snapshot
            first = self.chosen.setdefault(slot, value)
            if first != value:
                raise SimulationFailure(
                    f"agreement: slot {slot} applied as two different values "
                    f"({_describe(first)} vs {_describe(value)} on {node.node_id})"
                )
        node.recorded_slot = engine.applied_slot
        digest = engine.state.digest()
        seen = self.digests.setdefault(engine.applied_slot, (node.node_id, digest))
        if seen[1] != digest:
            raise SimulationFailure(
                f"divergence: {node.node_id} and {seen[0]} differ at applied slot "
                f"{engine.applied_slot}"
            )


def _describe(value: bytes) -> str:
    try:
        log_time_ms, requests = decode_batch(value)
    except ValueError:
        return f"{len(value)} undecodable bytes"
    return f"t={log_time_ms} {[(r.client_id, r.seq) for r in requests]}"
