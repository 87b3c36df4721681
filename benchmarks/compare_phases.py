"""The comparison's workloads, each run the same way against either system's cluster.

A phase starts one cluster, runs its workload on all three processes at once (they start
together at an agreed wall-clock moment, a fraction of a second ahead), and adds what the
processes reported to :class:`~benchmarks.compare_report.Results`. Every wait is bounded: a
phase that overruns raises :class:`~benchmarks.compare_cluster.WorkerFailed`.
"""

from __future__ import annotations

import contextlib
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.compare_cluster import Cluster, Setup, WorkerFailed
from benchmarks.compare_protocol import LAST_KEY
from benchmarks.compare_report import LABELS, Latency, Recovery, Results, Throughput

Say = Callable[[str], None]
START_DELAY_S = 0.3  # lets the command reach all three processes before the agreed start
ANSWER_MARGIN_S = 30.0  # beyond a phase's own length, for a slow machine
LATENCY_VALUE_BYTES = 100
RECOVERY_VALUE_BYTES = 100
RESTARTS = 3  # of the same follower over the same store: the median is reported
RECOVERY_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of each workload a run does; ``--quick`` and the full run differ only here."""

    sizes: tuple[int, ...]
    seconds: float
    window: int
    latency_writes: int
    latency_seconds: float
    recovery_writes: int
    recovery_build_s: float
    budget_s: float
    seed: int


FULL = Plan(
    sizes=(10, 100, 1024, 8192),
    seconds=5.0,
    window=512,
    latency_writes=2000,
    latency_seconds=8.0,
    recovery_writes=1_000_000,
    recovery_build_s=240.0,
    budget_s=600.0,
    seed=6,
)
QUICK = Plan(
    sizes=(10, 100, 1024, 8192),
    seconds=2.0,
    window=512,
    latency_writes=300,
    latency_seconds=3.0,
    recovery_writes=50_000,
    recovery_build_s=15.0,
    budget_s=120.0,
    seed=6,
)


def throughput_and_latency(
    setup: Setup, plan: Plan, root: Path, results: Results, say: Say, *, pipelined: bool = True
) -> None:
    """One client's latency, then pipelined writes at every value size, each on a fresh cluster.

    A fresh cluster per measurement costs a second or two of start-up and buys independence:
    an overload at one value size (a backlog, a lost leader) cannot spill into the next
    figure. A measurement that fails is recorded as such and the next one still runs.
    """
    label = LABELS[setup.name]
    if plan.latency_writes:
        with _failures_noted(results, f"{label} latency"), _cluster(setup, root, say) as cluster:
            say(f"{label}: one client's sequential writes, up to {plan.latency_seconds:g}s")
            results.latency.append(_latency(cluster, setup, plan, cluster.wait_leader()))
    for size in plan.sizes if pipelined else ():
        with (
            _failures_noted(results, f"{label} at {size} B"),
            _cluster(setup, root, say) as cluster,
        ):
            leader = cluster.wait_leader()
            say(f"{label}: pipelined writes, {size} B values, {plan.seconds:g}s")
            results.throughput.append(_pipelined(cluster, setup, plan, size, leader))


@contextlib.contextmanager
def _cluster(setup: Setup, root: Path, say: Say) -> Iterator[Cluster]:
    say(f"{LABELS[setup.name]}: starting 3 processes")
    with Cluster(setup, root / f"{setup.name}-{secrets.token_hex(3)}") as cluster:
        yield cluster


@contextlib.contextmanager
def _failures_noted(results: Results, what: str) -> Iterator[None]:
    try:
        yield
    except WorkerFailed as error:
        results.failures.append(f"{what}: {error}")


def _latency(cluster: Cluster, setup: Setup, plan: Plan, leader: int) -> Latency:
    answer = cluster.ask(
        leader,
        "latency",
        plan.latency_seconds + ANSWER_MARGIN_S,
        value_bytes=LATENCY_VALUE_BYTES,
        max_writes=plan.latency_writes,
        seconds=plan.latency_seconds,
    )
    samples = tuple(float(sample) for sample in answer["latency_ms"])
    return Latency(setup.name, samples, int(answer["errors"]))


def _pipelined(cluster: Cluster, setup: Setup, plan: Plan, size: int, leader: int) -> Throughput:
    answers = cluster.ask_all(
        "pipeline",
        plan.seconds + START_DELAY_S + ANSWER_MARGIN_S,
        value_bytes=size,
        seconds=plan.seconds,
        window=plan.window,
        start_at=time.time() + START_DELAY_S,
        seed=plan.seed,
    )
    return Throughput(
        setup=setup.name,
        value_bytes=size,
        seconds=plan.seconds,
        writes=sum(int(a["writes"]) for a in answers),
        errors=sum(int(a["errors"]) for a in answers),
        cpu_s=sum(float(a["cpu_s"]) for a in answers),
        leader_cpu_s=float(answers[leader - 1]["cpu_s"]),
        minor_faults=sum(int(a.get("minor_faults", 0)) for a in answers),
        resident_bytes=max(int(a.get("resident_bytes", 0)) for a in answers),
        error_kinds=merge_counts(a.get("error_kinds", {}) for a in answers),
    )


def merge_counts(counts: Iterable[dict[str, int]]) -> tuple[tuple[str, int], ...]:
    """Counts by name summed over processes, most frequent first."""
    total: Counter[str] = Counter()
    for one in counts:
        total.update(one)
    return tuple(total.most_common())


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` whole shares that differ by at most one."""
    share, extra = divmod(total, parts)
    return [share + (1 if part < extra else 0) for part in range(parts)]


def recovery(
    setup: Setup, plan: Plan, root: Path, say: Say, target_writes: int, build_s: float
) -> Recovery:
    """Fill a store, kill a follower with SIGKILL, start it again: how long until it serves.

    The follower is killed only once its own copy holds the last write, so both systems
    recover the same thing from their own disk; the clock runs from the moment the new
    process is spawned (interpreter start-up and imports included, for both). It is killed
    and started again :data:`RESTARTS` times, since one restart can land just before or
    just after a snapshot (PySyncObj's full dump) and differ by seconds.
    """
    label = LABELS[setup.name]
    with _cluster(setup, root, say) as cluster:
        leader = cluster.wait_leader()
        say(f"{label}: writing {target_writes:,} values (at most {build_s:.0f}s)")
        started = time.monotonic()
        fill = {
            "window": plan.window,
            "value_bytes": RECOVERY_VALUE_BYTES,
            "seed": plan.seed,
            "seconds_max": build_s,
        }
        shares = split(target_writes - 1, len(cluster.nodes))  # the last write comes after
        answers = cluster.ask_each(
            "fill", build_s + ANSWER_MARGIN_S, [{**fill, "count": share} for share in shares]
        )
        built_s = time.monotonic() - started
        writes = sum(int(a["writes"]) for a in answers)
        last_value = secrets.token_hex(8)
        cluster.ask(leader, "put", ANSWER_MARGIN_S, key=LAST_KEY, value=last_value)
        follower = next(index for index in cluster.nodes if index != leader)
        held = cluster.ask(
            follower, "await", ANSWER_MARGIN_S + 5, key=LAST_KEY, value=last_value, limit_s=30
        )
        if not held["ok"]:
            raise WorkerFailed(f"{label}: the follower never applied the last write")
        say(f"{label}: follower killed; restarting it over {writes + 1:,} writes")
        runs = [_restart(cluster, follower, last_value) for _ in range(RESTARTS)]
    return Recovery(
        setup.name,
        writes + 1,
        built_s,
        read_s=_median([run[0] for run in runs]),
        ready_s=_median([run[1] for run in runs]),
        imports_s=_median([run[2] for run in runs]),
        read_s_runs=tuple(run[0] for run in runs if run[0] is not None),
    )


def _restart(
    cluster: Cluster, follower: int, last_value: str
) -> tuple[float | None, float | None, float | None]:
    """SIGKILL, spawn again; seconds from the spawn to: a local read, ready, imports done."""
    cluster.nodes[follower].kill()
    node = cluster.spawn(follower, recover=(LAST_KEY, last_value))
    answer = node.receive(RECOVERY_TIMEOUT_S, "recovery")
    read_s = float(answer["read_at"]) - node.spawned_at if "read_at" in answer else None
    ready_s = float(answer["ready_at"]) - node.spawned_at if answer.get("ok") else None
    imports_s = float(answer["imported_at"]) - node.spawned_at
    return read_s, ready_s, imports_s


def _median(values: list[float | None]) -> float | None:
    """The median of the runs that got there; None if any did not (a failed restart shows)."""
    if not values or any(value is None for value in values):
        return None
    return statistics.median(value for value in values if value is not None)
