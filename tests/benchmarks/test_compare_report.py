"""The comparison's arithmetic and its table: what it claims must follow from what it measured."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.compare import parse_args, plan_from
from benchmarks.compare_phases import FULL, QUICK, merge_counts, split
from benchmarks.compare_protocol import REPLY_PREFIX, parse_reply
from benchmarks.compare_report import (
    Latency,
    Recovery,
    Results,
    Throughput,
    goals,
    percentile,
    ratio,
    render,
    to_json,
)


def throughput(setup: str, value_bytes: int, writes: int) -> Throughput:
    return Throughput(setup, value_bytes, 2.0, writes, 0, writes * 1e-4, 1.0)


def measured_run(ours_per_s: int, theirs_per_s: int, ours_p50_ms: float) -> Results:
    results = Results(settings={"seconds": 2.0, "window": 512})
    for size in (100, 1024):
        results.throughput.append(throughput("pysyncobj", size, theirs_per_s * 2))
        results.throughput.append(throughput("paxoskv-durable", size, ours_per_s * 2))
    results.latency.append(Latency("paxoskv-durable", (ours_p50_ms,) * 3, 0))
    results.latency.append(Latency("pysyncobj-nobatch", (0.9, 0.9, 0.9), 0))
    results.recovery.append(Recovery("pysyncobj-files", 1000, 3.0, 3.0, 3.1, 0.1))
    results.recovery.append(Recovery("paxoskv-durable", 1000, 1.0, 1.0, 1.1, 0.4))
    return results


def test_nearest_rank_percentiles_are_measured_values() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile(samples, 1.0) == 100.0
    assert percentile([7.0], 0.5) == 7.0
    assert percentile([], 0.5) is None


@settings(max_examples=60)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_a_percentile_is_a_sample_and_grows_with_q(
    samples: list[float], a: float, b: float
) -> None:
    samples.sort()
    low, high = percentile(samples, min(a, b)), percentile(samples, max(a, b))
    assert low in samples and high in samples
    assert low is not None and high is not None and low <= high


def test_ratio_refuses_what_it_cannot_divide() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None
    assert ratio(10.0, None) is None
    assert ratio(10.0, 0.0) is None


def test_goals_met_when_the_figures_say_so() -> None:
    verdicts = [goal.verdict for goal in goals(measured_run(12_000, 1_000, 0.5))]
    assert verdicts == ["met", "met", "met", "met", "met"]


def test_goals_short_when_the_figures_fall_short() -> None:
    found = {goal.name: goal for goal in goals(measured_run(5_000, 1_000, 2.5))}
    by_verdict = {name: goal.verdict for name, goal in found.items()}
    assert by_verdict["pipelined writes/s at 100 B, durable vs PySyncObj"] == "met"
    assert by_verdict["pipelined writes/s at 1 KB, durable vs PySyncObj"] == "SHORT"
    assert by_verdict["single-client write p50, durable"] == "SHORT"
    assert found["pipelined writes/s at 1 KB, durable vs PySyncObj"].measured == "5.0x"


def test_a_goal_without_its_figures_is_not_measured_rather_than_met() -> None:
    results = Results()
    results.throughput.append(throughput("paxoskv-durable", 100, 10_000))
    assert {goal.verdict for goal in goals(results)} == {"not measured"}


def test_the_table_shows_both_systems_ratios_cpu_and_notes() -> None:
    results = measured_run(8_000, 2_000, 1.5)
    results.notes.append("PySyncObj does not fsync")
    table = render(results)
    assert "PySyncObj" in table and "paxos-kv durable" in table
    assert "8,000 4.0x" in table  # writes/s and the ratio to PySyncObj at the same size
    assert "CPU per committed write" in table
    assert "note: PySyncObj does not fsync" in table
    assert "SHORT" in table and "met" in table


def test_json_carries_every_figure_and_the_goals() -> None:
    document = json.loads(json.dumps(to_json(measured_run(8_000, 2_000, 1.5))))
    row = document["throughput"][1]
    assert row["setup"] == "paxoskv-durable" and row["writes_per_s"] == 8000.0
    assert row["cpu_us_per_write"] is not None
    assert document["latency"][0]["p50_ms"] == 1.5
    assert document["recovery"][1]["read_s"] == 1.0
    assert [goal["verdict"] for goal in document["goals"]].count("SHORT") >= 1


@settings(max_examples=60)
@given(st.integers(0, 10_000_000), st.integers(1, 9))
def test_split_shares_add_up_and_differ_by_at_most_one(total: int, parts: int) -> None:
    shares = split(total, parts)
    assert len(shares) == parts and sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_plans_start_from_a_preset_and_take_overrides() -> None:
    assert plan_from(parse_args([])) == FULL
    quick = plan_from(parse_args(["--quick", "--sizes", "10,100", "--seconds", "0.5"]))
    assert quick.sizes == (10, 100) and quick.seconds == 0.5
    assert quick.budget_s == QUICK.budget_s < FULL.budget_s


def test_only_prefixed_lines_are_replies() -> None:
    assert parse_reply(REPLY_PREFIX + '{"writes": 3}\n') == {"writes": 3}
    assert parse_reply('{"writes": 3}\n') is None
    assert parse_reply("INFO elected leader\n") is None


def test_failed_writes_are_listed_with_their_reasons() -> None:
    results = Results()
    results.throughput.append(
        Throughput("paxoskv-durable", 8192, 2.0, 10, 7, 0.1, 0.05, (("NoQuorum", 7),))
    )
    table = render(results)
    assert "(7 err)" in table
    assert "failed writes, paxos-kv durable at 8 KB: 7 NoQuorum" in table


def test_error_counts_add_up_across_processes_most_frequent_first() -> None:
    merged = merge_counts([{"LEADER_CHANGED": 2}, {}, {"NOT_LEADER": 5, "LEADER_CHANGED": 1}])
    assert merged == (("NOT_LEADER", 5), ("LEADER_CHANGED", 3))


def test_failures_and_every_restart_show_in_the_table() -> None:
    results = Results()
    results.recovery.append(
        Recovery("paxoskv-durable", 1000, 1.0, 0.6, 0.7, 0.3, read_s_runs=(0.5, 0.6, 0.9))
    )
    results.failures.append("paxos-kv durable at 8192 B: no single leader within 60s")
    table = render(results)
    assert "0.50 0.60 0.90" in table
    assert "FAILED: paxos-kv durable at 8192 B: no single leader" in table
    assert to_json(results)["failures"] == results.failures


def test_resident_memory_shows_per_system_in_mb_and_a_dash_where_not_read() -> None:
    results = Results(settings={"seconds": 2.0, "window": 512})
    results.throughput.append(
        Throughput("paxoskv-durable", 1024, 2.0, 10, 0, 0.1, 0.05, resident_bytes=300 * 2**20)
    )
    results.throughput.append(throughput("pysyncobj", 1024, 10))  # no /proc: not read
    table = render(results)
    (line,) = [row for row in table.splitlines() if row.startswith(" 1 KB") and "300" in row]
    assert "-" in line.split("300")[0], "PySyncObj's column comes first and was not read"
    assert json.loads(json.dumps(to_json(results)))["throughput"][0]["resident_bytes"] == (
        300 * 2**20
    )
