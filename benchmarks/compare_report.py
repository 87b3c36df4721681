"""The comparison's figures: result types, percentiles, ratios, the goals, table, JSON, plots.

Everything here is pure (no processes, no clocks) so that what the table claims can be unit
tested: a ratio is always paxos-kv's figure over PySyncObj's measured in the same run, and a
goal with a figure missing says "not measured" instead of passing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

BASELINE = "pysyncobj"
LABELS = {
    "pysyncobj": "PySyncObj",
    "pysyncobj-nobatch": "PySyncObj no-batch",
    "pysyncobj-files": "PySyncObj files",
    "paxoskv-durable": "paxos-kv durable",
    "paxoskv-os": "paxos-kv os",
}
ORDER = tuple(LABELS)


@dataclass(frozen=True, slots=True)
class Throughput:
    """Pipelined writes of one setup at one value size, summed over its three processes."""

    setup: str
    value_bytes: int
    seconds: float
    writes: int  # confirmed within the window
    errors: int
    cpu_s: float  # the three processes, within the window
    leader_cpu_s: float
    error_kinds: tuple[tuple[str, int], ...] = ()  # why writes failed, most frequent first
    minor_faults: int = 0  # the three processes, within the window
    resident_bytes: int = 0  # the largest of the three processes, at the window's close

    @property
    def writes_per_s(self) -> float:
        return self.writes / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_write(self) -> float | None:
        return self.cpu_s / self.writes * 1e6 if self.writes else None

    @property
    def leader_cpu_us_per_write(self) -> float | None:
        return self.leader_cpu_s / self.writes * 1e6 if self.writes else None


@dataclass(frozen=True, slots=True)
class Latency:
    """One client's sequential writes: each sample is one write from call to committed."""

    setup: str
    samples_ms: tuple[float, ...]  # sorted
    errors: int

    def percentile_ms(self, q: float) -> float | None:
        return percentile(self.samples_ms, q)

    @property
    def mean_ms(self) -> float | None:
        return sum(self.samples_ms) / len(self.samples_ms) if self.samples_ms else None


@dataclass(frozen=True, slots=True)
class Recovery:
    """A follower killed (SIGKILL) over ``writes`` committed writes and started again."""

    setup: str
    writes: int
    build_s: float
    read_s: float | None  # spawn to a local read of the last write; None: not within the bound
    ready_s: float | None  # spawn to confirmed-current (paxos-kv: linearizable read)
    imports_s: float | None = None  # spawn to the worker's main(): interpreter and imports
    read_s_runs: tuple[float, ...] = ()  # every restart's read_s (the fields above: medians)


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    target: str
    measured: str
    met: bool | None  # None: a figure it needs was not measured

    @property
    def verdict(self) -> str:
        return {True: "met", False: "SHORT", None: "not measured"}[self.met]


@dataclass
class Results:
    """What one run gathered, in the order it ran; filled in phase by phase."""

    settings: dict[str, Any] = field(default_factory=dict)
    throughput: list[Throughput] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    recovery: list[Recovery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # measurements that could not finish
    elapsed_s: float = 0.0

    def throughput_of(self, setup: str, value_bytes: int) -> Throughput | None:
        found = [t for t in self.throughput if t.setup == setup and t.value_bytes == value_bytes]
        return found[-1] if found else None

    def latency_of(self, setup: str) -> Latency | None:
        found = [entry for entry in self.latency if entry.setup == setup]
        return found[-1] if found else None

    def recovery_of(self, setup: str) -> Recovery | None:
        found = [entry for entry in self.recovery if entry.setup == setup]
        return found[-1] if found else None


def percentile(sorted_samples: tuple[float, ...] | list[float], q: float) -> float | None:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    if not sorted_samples:
        return None
    rank = max(1, math.ceil(q * len(sorted_samples)))
    return sorted_samples[min(rank, len(sorted_samples)) - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


# --- the goals of issue 6 --------------------------------------------------------------------


def goals(results: Results) -> list[Goal]:
    return [
        _throughput_goal(results, 100, 4.0),
        _throughput_goal(results, 1024, 10.0),
        _latency_p50_goal(results),
        _latency_versus_goal(results),
        _recovery_goal(results),
    ]


def _throughput_goal(results: Results, value_bytes: int, times: float) -> Goal:
    ours = results.throughput_of("paxoskv-durable", value_bytes)
    theirs = results.throughput_of(BASELINE, value_bytes)
    measured = ratio(ours.writes_per_s if ours else None, theirs.writes_per_s if theirs else None)
    return Goal(
        f"pipelined writes/s at {size_label(value_bytes)}, durable vs PySyncObj",
        f">= {times:g}x",
        _times(measured),
        None if measured is None else measured >= times,
    )


def _latency_p50_goal(results: Results) -> Goal:
    ours = results.latency_of("paxoskv-durable")
    p50 = ours.percentile_ms(0.5) if ours else None
    return Goal(
        "single-client write p50, durable",
        "< 1 ms",
        _ms(p50),
        None if p50 is None else p50 < 1.0,
    )


def _latency_versus_goal(results: Results) -> Goal:
    ours = results.latency_of("paxoskv-durable")
    theirs = results.latency_of("pysyncobj-nobatch")
    ours_p50 = ours.percentile_ms(0.5) if ours else None
    theirs_p50 = theirs.percentile_ms(0.5) if theirs else None
    met = None if ours_p50 is None or theirs_p50 is None else ours_p50 < theirs_p50
    return Goal(
        "single-client write p50, durable vs PySyncObj no-batch",
        "lower",
        f"{_ms(ours_p50)} vs {_ms(theirs_p50)}",
        met,
    )


def _recovery_goal(results: Results) -> Goal:
    ours = results.recovery_of("paxoskv-durable")
    theirs = results.recovery_of("pysyncobj-files")
    speedup = ratio(theirs.read_s if theirs else None, ours.read_s if ours else None)
    return Goal(
        "restart to serving the last write, vs PySyncObj",
        ">= 2x faster",
        _times(speedup),
        None if speedup is None else speedup >= 2.0,
    )


# --- the table ---------------------------------------------------------------------------------


def render(results: Results) -> str:
    sections = [
        _render_machine(results),
        _render_throughput(results),
        _render_latency(results),
        _render_recovery(results),
        _render_goals(results),
        "\n".join(f"FAILED: {failure}" for failure in results.failures),
        "\n".join(f"note: {note}" for note in results.notes),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _render_machine(results: Results) -> str:
    settings = results.settings
    if "cpus" not in settings:
        return ""
    start = settings.get("load_average_start", ["?"])[0]
    end = settings.get("load_average_end", ["?"])[0]
    return (
        f"{settings['cpus']} CPUs, Python {settings.get('python')}, paxos-kv nodes on "
        f"{settings.get('event_loop', 'asyncio')} with the {settings.get('core', '?')} core, "
        "PySyncObj "
        f"{settings.get('pysyncobj') or 'not installed'}; 1-minute load average {start} at the "
        f"start, {end} at the end (other work on the machine shows in every figure)"
    )


def setups_in(entries: list[Throughput] | list[Latency] | list[Recovery]) -> list[str]:
    present = {entry.setup for entry in entries}
    return [setup for setup in ORDER if setup in present]


def _render_throughput(results: Results) -> str:
    if not results.throughput:
        return ""
    setups = setups_in(results.throughput)
    sizes = sorted({t.value_bytes for t in results.throughput})
    header = "value  " + "".join(f"{LABELS[s]:>26}" for s in setups)
    lines = [_throughput_title(results), header]
    for size in sizes:
        cells = [_throughput_cell(results, setup, size) for setup in setups]
        lines.append(f"{size_label(size):>5}  " + "".join(f"{cell:>26}" for cell in cells))
    lines.append("CPU per committed write, us: 3 processes (leader alone)")
    for size in sizes:
        cells = [_cpu_cell(results.throughput_of(setup, size)) for setup in setups]
        lines.append(f"{size_label(size):>5}  " + "".join(f"{cell:>26}" for cell in cells))
    lines.append("minor page faults per committed write: 3 processes")
    for size in sizes:
        cells = [_faults_cell(results.throughput_of(setup, size)) for setup in setups]
        lines.append(f"{size_label(size):>5}  " + "".join(f"{cell:>26}" for cell in cells))
    lines.append("resident memory at the window's close, MB: the largest of the 3 processes")
    for size in sizes:
        cells = [_resident_cell(results.throughput_of(setup, size)) for setup in setups]
        lines.append(f"{size_label(size):>5}  " + "".join(f"{cell:>26}" for cell in cells))
    for entry in results.throughput:
        if entry.error_kinds:
            kinds = ", ".join(f"{count} {kind}" for kind, count in entry.error_kinds)
            where = f"{LABELS[entry.setup]} at {size_label(entry.value_bytes)}"
            lines.append(f"failed writes, {where}: {kinds}")
    return "\n".join(lines)


def _throughput_title(results: Results) -> str:
    seconds = results.settings.get("seconds", "?")
    window = results.settings.get("window", "?")
    return (
        f"Pipelined committed writes/s (3 processes on 127.0.0.1, {window} writes outstanding "
        f"per process, {seconds} s per size; x = ratio to PySyncObj)"
    )


def _throughput_cell(results: Results, setup: str, value_bytes: int) -> str:
    entry = results.throughput_of(setup, value_bytes)
    if entry is None:
        return "-"
    text = f"{entry.writes_per_s:,.0f}"
    if entry.errors:
        text += f" ({entry.errors} err)"
    baseline = results.throughput_of(BASELINE, value_bytes)
    if setup.startswith("paxoskv") and baseline is not None:
        text += f" {_times(ratio(entry.writes_per_s, baseline.writes_per_s))}"
    return text


def _faults_cell(entry: Throughput | None) -> str:
    if entry is None or not entry.writes or not entry.minor_faults:
        return "-"
    return f"{entry.minor_faults / entry.writes:.2f}"


def _resident_cell(entry: Throughput | None) -> str:
    if entry is None or not entry.resident_bytes:
        return "-"
    return f"{entry.resident_bytes / 2**20:,.0f}"


def _cpu_cell(entry: Throughput | None) -> str:
    if entry is None or entry.cpu_us_per_write is None:
        return "-"
    return f"{entry.cpu_us_per_write:,.0f} ({entry.leader_cpu_us_per_write or 0:,.0f})"


def _render_latency(results: Results) -> str:
    if not results.latency:
        return ""
    lines = [
        "One client, sequential writes, 100 B values, client in the leader's process (ms)",
        f"{'setup':<22}{'writes':>8}{'p50':>10}{'p90':>10}{'p99':>10}{'mean':>10}{'errors':>8}",
    ]
    for setup in setups_in(results.latency):
        entry = results.latency_of(setup)
        assert entry is not None
        figures = [entry.percentile_ms(q) for q in (0.5, 0.9, 0.99)] + [entry.mean_ms]
        cells = "".join(f"{_number(value):>10}" for value in figures)
        lines.append(f"{LABELS[setup]:<22}{len(entry.samples_ms):>8}{cells}{entry.errors:>8}")
    return "\n".join(lines)


def _render_recovery(results: Results) -> str:
    if not results.recovery:
        return ""
    lines = [
        "Recovery: a follower killed with SIGKILL and started again over N committed writes, "
        "medians of its restarts (s from spawning the process to: imports done, the last "
        "write read locally, ready; then every restart's read)",
        f"{'setup':<22}{'writes N':>10}{'built in':>10}{'imports':>10}{'to read':>10}"
        f"{'to ready':>10}  restarts",
    ]
    for setup in setups_in(results.recovery):
        entry = results.recovery_of(setup)
        assert entry is not None
        runs = " ".join(f"{run:.2f}" for run in entry.read_s_runs)
        lines.append(
            f"{LABELS[setup]:<22}{entry.writes:>10,}{entry.build_s:>10.1f}"
            f"{_number(entry.imports_s, 2):>10}{_number(entry.read_s, 2):>10}"
            f"{_number(entry.ready_s, 2):>10}  {runs}"
        )
    return "\n".join(lines)


def _render_goals(results: Results) -> str:
    lines = ["Goals (issue 6), measured in this run"]
    for goal in goals(results):
        lines.append(f"  {goal.verdict:<13}{goal.name}: {goal.measured} (goal {goal.target})")
    return "\n".join(lines)


def size_label(value_bytes: int) -> str:
    return f"{value_bytes // 1024} KB" if value_bytes >= 1024 else f"{value_bytes} B"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- JSON ---------------------------------------------------------------------------------------


def to_json(results: Results) -> dict[str, Any]:
    """Every figure the table shows, plus the raw counts and latency samples behind it."""
    return {
        "settings": results.settings,
        "elapsed_s": round(results.elapsed_s, 1),
        "throughput": [
            {
                **asdict(t),
                "writes_per_s": round(t.writes_per_s, 1),
                "cpu_us_per_write": _rounded(t.cpu_us_per_write),
                "leader_cpu_us_per_write": _rounded(t.leader_cpu_us_per_write),
            }
            for t in results.throughput
        ],
        "latency": [
            {
                "setup": entry.setup,
                "writes": len(entry.samples_ms),
                "errors": entry.errors,
                "p50_ms": _rounded(entry.percentile_ms(0.5), 3),
                "p90_ms": _rounded(entry.percentile_ms(0.9), 3),
                "p99_ms": _rounded(entry.percentile_ms(0.99), 3),
                "mean_ms": _rounded(entry.mean_ms, 3),
                "samples_ms": [round(sample, 3) for sample in entry.samples_ms],
            }
            for entry in results.latency
        ],
        "recovery": [asdict(entry) for entry in results.recovery],
        "goals": [{**asdict(goal), "verdict": goal.verdict} for goal in goals(results)],
        "failures": results.failures,
        "notes": results.notes,
    }


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
