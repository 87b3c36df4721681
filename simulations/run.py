"""One seed, one run: a fault phase, a healed phase that must converge, then the checkers.

The seed picks the cluster's fault rates and every fault's time and target (TigerBeetle's
VOPR does the same), so a failure is replayed exactly by running its seed again. Faults are
only those the protocol claims to survive: any loss, duplication, delay and reordering;
partitions (two-way, one-way, flapping, leader isolation, FoundationDB's "swizzle" of links
clogged one at a time and restored in random order); crashes of a minority at a time with
unsynced writes lost and the last write torn; a learner joining and being promoted, and a
voter (the leader as often as not) taken out, which votes on as long as the runtime keeps it
and then stops for good. With ``clock_drift``, each node's clock also runs fast or slow. Opt-in:
``wipe`` (a voter's disk lost whole) and ``pause`` (a process stopped for a while, then resumed
with what reached it meanwhile, a leader as often as not).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from paxoskv.paxos.batches import decode_batch
from paxoskv.paxos.effects import Answer
from paxoskv.paxos.engine import Engine
from paxoskv.paxos.messages import Request
from paxoskv.runtime.window import WINDOW_SLOTS
from paxoskv.state import AddLearner, Command, PromoteLearner, RemoveMember, encode_command
from simulations.linearizability import check_history
from simulations.workload import Workload
from simulations.world import SimulationFailure, StoreSettings, World

FAULT_KINDS = ("loss", "crash", "partition", "membership")
# Not among "all": a wiped voter stays a learner (World.wipe); pauses came later, and "all"
# keeps the draws, and so the runs, its seeds always had.
EXTRA_FAULT_KINDS = ("wipe", "pause")


@dataclass
class RunOptions:
    nodes: int = 5
    clients: int = 4
    faults: frozenset[str] = frozenset(FAULT_KINDS)
    fault_phase_s: float = 12.0
    liveness_bound_s: float = 15.0
    power_cut_chance: float = 0.15  # of a crash event taking down every node at once
    engine_class: type[Engine] = Engine  # tests swap in deliberately broken engines
    amnesia_rule: bool = True  # off: a wiped voter votes again at once (World.amnesia_rule)
    leave_rule: bool = True  # off: a voter taken out stops at once (World.leave_rule)
    leader_reads: float = 0.0  # the share of gets made as lease ('leader') reads
    clock_drift: float = 0.0  # each node's clock runs at 1 ± this (World's clocks)


# Engine settings by seed (seed % 4), so rarer paths meet the faults too: frequent snapshots
# and a short log kept in memory, by slots and by bytes (compaction; catching up by snapshot;
# candidates behind the compacted log; pins of peers catching up),
# and small message limits (promises in many parts, some cut short; batches in many slots;
# snapshots in many chunks), with snapshots often enough that the journal is pruned.
# Half the classes run the window of clusters formed now (window.WINDOW_SLOTS), half the
# legacy one that clusters formed before run for good.
SEED_SETTINGS: tuple[dict[str, int], ...] = (
    {"window_slots": WINDOW_SLOTS},
    {"snapshot_every_commands": 40, "log_retention_slots": 10, "log_retention_bytes": 1_000},
    {"max_message_bytes": 2_000, "snapshot_every_commands": 60, "window_slots": WINDOW_SLOTS},
    {"max_message_bytes": 250, "snapshot_every_commands": 25},
)

# Storage settings by the same seed classes: with the default 16 MiB segments a simulated
# journal never leaves its first segment, so segments sealed, started and pruned under
# crashes and power cuts would go untested. Tiny segments, and a margin before the newest
# snapshot bounded by records or by bytes (or none at all).
SEED_STORE_SETTINGS: tuple[StoreSettings, ...] = (
    {},
    {"segment_size_bytes": 1_024, "keep_journal_records": 30, "keep_journal_bytes": 1 << 20},
    {"segment_size_bytes": 2_048, "keep_journal_records": 1_000, "keep_journal_bytes": 3_000},
    {"segment_size_bytes": 512, "keep_snapshots": 1, "keep_journal_records": 0},
)


@dataclass
class RunResult:
    seed: int
    ok: bool
    failure: str = ""
    operations: int = 0
    slots: int = 0
    messages: int = 0
    virtual_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def run_seed(
    seed: int, options: RunOptions | None = None, trace: Callable[[str], None] | None = None
) -> RunResult:
    options = options or RunOptions()
    settings = SEED_SETTINGS[seed % len(SEED_SETTINGS)]
    world = World(
        seed,
        options.nodes,
        settings=settings,
        store_settings=SEED_STORE_SETTINGS[seed % len(SEED_STORE_SETTINGS)],
        trace=trace,
        engine_class=options.engine_class,
        clock_drift=options.clock_drift,
    )
    world.amnesia_rule = options.amnesia_rule
    world.leave_rule = options.leave_rule
    try:
        return _run(world, options)
    except SimulationFailure as failure:
        return RunResult(seed, False, str(failure), virtual_s=world.now)


def _run(world: World, options: RunOptions) -> RunResult:
    rng = random.Random(world.rng.getrandbits(64))
    if "loss" in options.faults:
        world.faults.loss = rng.choice((0.0, 0.01, 0.05, 0.1))
        world.faults.duplicate = rng.choice((0.0, 0.01, 0.05))
        world.faults.delay_max_s = rng.choice((0.002, 0.01, 0.03))
    workload = Workload(world, options.clients, leader_reads=options.leader_reads)
    admin = _Admin(world, rng)
    _schedule_faults(world, rng, options, admin)
    world.scheduler.run_until(options.fault_phase_s)

    # Healed phase: everyone up and connected; every client must make progress in bounded time.
    world.heal(for_good=True)
    world.faults.loss = world.faults.duplicate = 0.0
    for node in world.nodes.values():
        if not node.up:
            world.start(node.node_id)
    healed_at = world.now
    baseline = {c.client_id: c.completed for c in workload.clients}

    def progressed() -> bool:
        return all(c.completed >= baseline[c.client_id] + 2 for c in workload.clients)

    if not world.scheduler.run_until(healed_at + options.liveness_bound_s, progressed):
        stuck = [c.client_id for c in workload.clients if c.completed < baseline[c.client_id] + 2]
        raise SimulationFailure(
            f"liveness: clients {stuck} made no progress within {options.liveness_bound_s}s "
            f"of healing (leader: {world.leader()})"
        )
    workload.running = False
    admin.running = False
    world.scheduler.run_until(world.now + 10.0, lambda: workload.open_calls() == 0)
    _await_convergence(world)
    _check_durability(world, workload)
    history = workload.history
    verdict = check_history(history, timeout_s=30.0)
    if not verdict.ok:
        raise SimulationFailure(f"linearizability: {verdict.explanation()}")
    return RunResult(
        world.seed,
        True,
        operations=len(history),
        slots=max(world.chosen, default=0),
        messages=sum(world.messages_sent.values()),
        virtual_s=world.now,
        notes=admin.notes,
    )


def _await_convergence(world: World) -> None:
    def converged() -> bool:
        engines = [n.engine for n in world.up_nodes() if n.engine is not None]
        target = max(world.chosen, default=0)
        return all(e.applied_slot >= target for e in engines)

    if not world.scheduler.run_until(world.now + 10.0, converged):
        applied = {n.node_id: n.engine.applied_slot for n in world.up_nodes() if n.engine}
        raise SimulationFailure(
            f"convergence: replicas did not reach slot {max(world.chosen)}: {applied}"
        )
    digests = {n.node_id: n.engine.state.digest() for n in world.up_nodes() if n.engine}
    if len(set(digests.values())) != 1:
        raise SimulationFailure("divergence: replica digests differ after convergence")


def _check_durability(world: World, workload: Workload) -> None:
    """Every write a client was told succeeded is in the one chosen log."""
    in_log: set[tuple[str, int]] = set()
    for value in world.chosen.values():
        _, requests = decode_batch(value)
        in_log.update((r.client_id, r.seq) for r in requests)
    lost = workload.acknowledged_writes - in_log
    if lost:
        raise SimulationFailure(f"durability: acknowledged writes missing from the log: {lost}")


class _Admin:
    """An operator who adds a learner and promotes it, retrying until the cluster answers."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.running = True
        self.notes: list[str] = []
        self._seq = 0
        self._waiting: dict[int, tuple[str, Callable[[], None] | None]] = {}
        forward = world.on_answer

        def on_answer(node_id: str, answer: Answer) -> None:
            forward(node_id, answer)
            if answer.client_id == "admin" and answer.seq in self._waiting:
                name, then = self._waiting.pop(answer.seq)
                self.notes.append(f"{name} applied at {self.world.now:.2f}s")
                if then is not None:
                    then()

        world.on_answer = on_answer

    def change(self, command: Command, then: Callable[[], None] | None = None) -> None:
        self._seq += 1
        request = Request("admin", self._seq, encode_command(command))
        self._waiting[request.seq] = (type(command).__name__, then)
        self._attempt(request)

    def _attempt(self, request: Request) -> None:
        if request.seq not in self._waiting or not self.running:
            return
        live = self.world.up_nodes()
        if live:
            self.world.call(self.rng.choice(live).node_id, "propose", [request])
        self.world.scheduler.at(self.world.now + 1.0, self._attempt, request)


def _schedule_faults(world: World, rng: random.Random, options: RunOptions, admin: _Admin) -> None:
    end = options.fault_phase_s
    time = rng.uniform(0.5, 1.5)
    kinds = [k for k in ("crash", "partition") if k in options.faults]
    if "membership" in options.faults:
        joiner = f"n{options.nodes + 1}"
        at = rng.uniform(1.0, end / 2)

        def join() -> None:
            world.add_node(joiner, learner=False)
            admin.change(AddLearner(joiner), then=lambda: admin.change(PromoteLearner(joiner)))

        world.scheduler.at(at, join)
    while kinds and time < end - 1.0:
        kind = rng.choice(kinds)
        if kind == "crash":
            world.scheduler.at(time, _crash_some, world, rng, options, end)
        else:
            world.scheduler.at(time, _partition_some, world, rng, end)
        time += rng.uniform(0.3, 2.0)
    if "wipe" in options.faults:  # (drawn last: the other faults' seeds stay as they were)
        world.wipes = True
        world.scheduler.at(rng.uniform(1.0, end - 2.0), _wipe_one, world, rng)
    if "membership" in options.faults and rng.random() < 0.5:  # (last, likewise)
        world.scheduler.at(rng.uniform(1.0, end - 1.0), _remove_one, world, rng, admin)
    if "pause" in options.faults:  # (after every other draw, likewise)
        for _ in range(rng.randint(1, 4)):
            world.scheduler.at(rng.uniform(0.5, end - 1.0), _pause_one, world, rng)


def _pause_one(world: World, rng: random.Random) -> None:
    """Stop one node's process for a while, the leader as often as not: shorter than a
    heartbeat, about a lease or an election timeout, or long past both."""
    leader = world.leader()
    victim = (
        leader if leader is not None and rng.random() < 0.5 else rng.choice(sorted(world.nodes))
    )
    low, high = rng.choice(((0.005, 0.05), (0.3, 1.2), (1.2, 4.0)))
    world.pause(victim, rng.uniform(low, high))
    if victim == leader and rng.random() < 0.5:
        # Cut off just before it resumes (a pause it was in already may have been extended),
        # so that it wakes to what reached it while paused and nothing newer: the acks of its
        # last heartbeat, say, and no word of a successor. Only its own links heal after.
        resume = world.nodes[victim].paused_until
        cut_at = world.now + (resume - world.now) * 0.98
        world.scheduler.at(cut_at, world.partition, {victim}, set(world.nodes) - {victim})
        heal_at = resume + rng.uniform(0.5, 2.0)
        for other in sorted(world.nodes):
            if other != victim:
                world.scheduler.at(heal_at, _unpartition_pair, world, victim, other)


def _remove_one(world: World, rng: random.Random, admin: _Admin) -> None:
    """Take a voter out of the configuration, the leader as often as not: it votes on while
    the slots its old configuration governs need it, then stops for good (World's
    ``_leave_if_removed``, the runtime's rule)."""
    engines = [n.engine for n in world.up_nodes() if n.engine is not None]
    if not engines:
        return
    voters = sorted(max(engines, key=lambda e: e.applied_slot).configuration.voters)
    if len(voters) < (4 if world.wipes else 2):
        # Never the last voter; and where a disk may be wiped, never down to two: a wiped
        # voter votes no more (World.wipe), and one of two is no quorum, which is past what
        # the protocol survives (two voters of three lost).
        return
    leader = world.leader()
    victim = leader if leader in voters and rng.random() < 0.5 else rng.choice(voters)
    world.log(f"removing {victim}")
    admin.change(RemoveMember(victim))


def _wipe_one(world: World, rng: random.Random) -> None:
    """Lose one voter's disk, the leader's as often as not, and start it again soon."""
    leader = world.leader()
    voters = sorted(world.genesis.voters)
    victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(voters)
    world.wipe(victim)
    world.scheduler.at(world.now + rng.uniform(0.05, 1.0), _restart, world, victim)


def _crash_some(world: World, rng: random.Random, options: RunOptions, end: float) -> None:
    """Kill a node, or as many at once as may be down (often the leader), or all of them.

    A power cut of the whole cluster is more than Paxos must survive for liveness, but with
    fsync before every acknowledgement no acknowledged write may be lost to it, so it is the
    sharpest test of the durability discipline.
    """
    down = sum(1 for n in world.nodes.values() if not n.up)
    live = [n.node_id for n in world.up_nodes()]
    if down == 0 and rng.random() < options.power_cut_chance:
        world.log("power cut: every node at once")
        for victim in live:
            world.crash(victim)
            world.scheduler.at(world.now + rng.uniform(0.05, 1.0), _restart, world, victim)
        return
    budget = (options.nodes - 1) // 2 - down
    if budget <= 0 or not live:
        return
    count = budget if rng.random() < 0.3 else 1
    leader = world.leader()
    victims = [leader] if leader is not None and rng.random() < 0.5 else []
    rng.shuffle(live)
    victims += [n for n in live if n not in victims][: count - len(victims)]
    for victim in victims:
        world.crash(victim)
        restart_at = min(world.now + rng.uniform(0.3, 4.0), end)
        world.scheduler.at(restart_at, _restart, world, victim)


def _restart(world: World, node_id: str) -> None:
    if not world.nodes[node_id].up:
        world.start(node_id)


def _partition_some(world: World, rng: random.Random, end: float) -> None:
    ids = sorted(world.nodes)
    pattern = rng.choice(("split", "one-way", "isolate-leader", "flap", "swizzle"))
    heal_at = min(world.now + rng.uniform(0.5, 3.0), end)
    if pattern == "split":
        rng.shuffle(ids)
        cut_at = rng.randint(1, len(ids) - 1)
        world.partition(set(ids[:cut_at]), set(ids[cut_at:]))
    elif pattern == "one-way":
        a, b = rng.sample(ids, 2)
        world.partition({a}, {b}, one_way=True)
    elif pattern == "isolate-leader":
        leader = world.leader() or rng.choice(ids)
        world.partition({leader}, set(ids) - {leader})
    elif pattern == "flap":
        a, b = rng.sample(ids, 2)
        at = world.now
        for i in range(6):
            step = rng.uniform(0.05, 0.3)  # (drawn for i = 0 too, as seeds always have)
            at += step if i else 0.0  # in order: a flap ends healed, as it is meant to
            if i % 2 == 0:
                world.scheduler.at(at, world.partition, {a}, {b})
            else:
                world.scheduler.at(at, _unpartition_pair, world, a, b)
        return
    else:  # swizzle: clog links one at a time, restore them in random order
        links = [(a, b) for a in ids for b in ids if a != b]
        rng.shuffle(links)
        clog = links[: rng.randint(1, len(links) // 2)]
        for i, (a, b) in enumerate(clog):
            world.scheduler.at(world.now + i * 0.05, _cut_one_way, world, a, b)
        rng.shuffle(clog)
        for i, (a, b) in enumerate(clog):
            world.scheduler.at(heal_at + i * 0.05, _unpartition_pair, world, a, b)
        return
    world.scheduler.at(heal_at, world.heal)


def _unpartition_pair(world: World, a: str, b: str) -> None:
    world.cut.discard((a, b))
    world.cut.discard((b, a))


def _cut_one_way(world: World, a: str, b: str) -> None:
    world.partition({a}, {b}, one_way=True)
