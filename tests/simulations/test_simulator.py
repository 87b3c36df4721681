"""The simulator: seeds pass, runs are deterministic, and each checker catches a broken engine."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

import simulations.__main__ as simulations_main
from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.engine import Engine
from simulations.__main__ import main, replay_command
from simulations.run import SEED_SETTINGS, RunOptions, RunResult, run_seed
from simulations.world import World

CI_SEEDS = int(os.environ.get("PAXOSKV_SIM_SEEDS", "200"))


def _run(job: tuple[int, RunOptions]) -> tuple[int, bool, str, int]:
    seed, options = job
    result = run_seed(seed, options)
    return seed, result.ok, result.failure, result.operations


def _assert_seeds_pass(options: RunOptions, seeds: range) -> None:
    """Every seed passes every checker, on both cores; a failure names its replay command."""
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_run, [(seed, options) for seed in seeds], chunksize=4))
    failures = [
        f"seed {seed}: {failure}\n  replay: {replay_command(seed, options)}"
        for seed, ok, failure, _ in results
        if not ok
    ]
    assert not failures, "\n".join(failures)
    assert all(operations > 0 for _, ok, _, operations in results if ok)


def test_seeds_pass_every_checker() -> None:
    """A few hundred seeds on both cores; `make sim` runs thousands."""
    _assert_seeds_pass(RunOptions(), range(1, CI_SEEDS + 1))


def test_seeds_with_lease_reads_pass_every_checker() -> None:
    """Half the gets as 'leader' reads, served from a lease, on 3 voters with every fault:
    two holes in the lease guard were found this way or by hand (a voter restarted at once, a
    deposed leader's late datagram), and random seeds keep the rest of it honest."""
    _assert_seeds_pass(RunOptions(nodes=3, leader_reads=0.5), range(50_001, 50_001 + CI_SEEDS // 4))


def test_seeds_with_lease_reads_and_clocks_at_the_drift_bound_pass_every_checker() -> None:
    """The same with each node's clock running up to 5% fast or slow (two in three nodes
    at an edge), and read anew at every start: the README's bound for lease reads. Past it, a
    lease read can go stale (tests/paxos/test_lease_drift.py shows the story)."""
    options = RunOptions(nodes=3, leader_reads=0.5, clock_drift=0.05)
    _assert_seeds_pass(options, range(60_001, 60_001 + CI_SEEDS // 4))


def test_seeds_with_paused_processes_pass_every_checker() -> None:
    """Processes stopped for 5 ms to 4 s and resumed with what reached them meanwhile (the
    leader as often as not, and then cut off at its resume half the time), beside every other
    fault, lease reads and drifting clocks. A lease timed from the acks' reading rather than
    the heartbeat's sending is unsafe here (tests/paxos/test_lease_pause.py)."""
    faults = frozenset({"crash", "loss", "partition", "membership", "pause"})
    options = RunOptions(nodes=3, faults=faults, leader_reads=0.5, clock_drift=0.05)
    _assert_seeds_pass(options, range(70_001, 70_001 + CI_SEEDS // 4))


def test_a_seed_replays_exactly() -> None:
    first: list[str] = []
    second: list[str] = []
    run_seed(4242, trace=first.append)
    run_seed(4242, trace=second.append)
    assert first == second
    assert len(first) > 10


def test_a_seed_with_drifting_clocks_replays_exactly_and_its_clocks_differ() -> None:
    first: list[str] = []
    second: list[str] = []
    options = RunOptions(nodes=3, clock_drift=0.05)
    run_seed(4242, options, trace=first.append)
    run_seed(4242, options, trace=second.append)
    assert first == second
    world = World(4242, 3, clock_drift=0.05)
    rates = {node.clock_rate for node in world.nodes.values()}
    assert len(rates) > 1 and all(0.95 <= rate <= 1.05 for rate in rates)
    readings = {world.clock(node) for node in world.nodes.values()}
    assert len(readings) == 3  # each read its wall clock at start, off by up to a second
    world.scheduler.run_until(10.0)
    for node in world.nodes.values():
        assert world.clock(node) == pytest.approx(node.clock_offset + node.clock_rate * 10.0)


def test_the_command_line_reports_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--seeds", "1", "--first-seed", "77", "--nodes", "3"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_the_command_line_refuses_an_unknown_fault(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--faults", "meteor"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("drift", ["-0.01", "0.6"])
def test_the_command_line_refuses_a_drift_out_of_range(
    drift: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--clock-drift", drift])
    assert exit_info.value.code == 2
    assert "--clock-drift must be between 0 and 0.5" in capsys.readouterr().err


def test_a_failure_with_drifting_clocks_prints_a_replay_line_that_keeps_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[RunOptions] = []

    def failing(seed: int, options: RunOptions, trace: Any = None) -> RunResult:
        seen.append(options)
        return RunResult(seed, False, "linearizability: (made up)")

    monkeypatch.setattr(simulations_main, "run_seed", failing)
    argv = ["run", "--seed", "150", "--nodes", "3", "--faults", "loss,partition"]
    assert main([*argv, "--leader-reads", "0.5", "--clock-drift", "0.05"]) == 1
    assert seen == [
        RunOptions(
            nodes=3, faults=frozenset({"loss", "partition"}), leader_reads=0.5, clock_drift=0.05
        )
    ]
    out = capsys.readouterr().out
    assert (
        "replay: python -m simulations run --seed 150 --nodes 3 --faults loss,partition "
        "--leader-reads 0.5 --clock-drift 0.05 --trace"
    ) in out


# --- broken engines: each checker must catch its bug -----------------------------------------


class AcksBeforeDurable(Engine):
    """Answers promises and accepts before they are on disk (what prevalence without fsync does)."""

    def _hold(self, to: str, message: m.Message) -> None:
        self._send(to, message)


class IgnoresPromisedValues(Engine):
    """A new leader that forgets what the promises told it and fills every slot with a no-op."""

    def _become_leader(self, merged: dict[int, tuple[Ballot, bytes]], now: float) -> None:
        super()._become_leader({}, now)


class ReadsWithoutConfirming(Engine):
    """Serves 'linearizable' reads from local state without the read-index round."""

    def read(self, read_id: int, consistency: str, now: float) -> list[Any]:
        return super().read(read_id, "local", now)


class TakesAPromisesFirstPartForAll(Engine):
    """A candidate that counts a promise from its first part, forgetting values in the rest.

    It does not fetch chosen values from peers while it hears no leader either: that path
    often hands a candidate the very values its promise lost, which hides the bug on the
    seeds searched (it cannot hand over a value that is chosen but that nobody knows is).
    """

    def _assemble_promise(self, sender: str, part: m.Promise) -> m.Promise | None:
        if part.from_slot != self._from_slot:
            return None
        return m.Promise(part.ballot, part.from_slot, part.entries, part.chosen_upto, False)

    def _catch_up_from_a_peer(self, now: float) -> None:
        pass


class LeaseNeverExpires(Engine):
    """A leader that serves 'leader' (lease) reads for as long as it thinks it leads."""

    def _lease_valid(self, now: float) -> bool:
        return self._leader_ready()


def first_failure(engine_class: type[Engine], seeds: Iterable[int], **options: Any) -> str:
    for seed in seeds:
        result = run_seed(seed, RunOptions(engine_class=engine_class, **options))
        if not result.ok:
            return result.failure
    return ""


def test_acking_before_durable_is_caught() -> None:
    failure = first_failure(
        AcksBeforeDurable, range(1, 40), faults=frozenset({"crash"}), power_cut_chance=1.0
    )
    assert failure, "no seed caught an acceptor that acknowledges before fsync"


def test_a_leader_ignoring_promised_values_is_caught() -> None:
    failure = first_failure(IgnoresPromisedValues, range(1, 40))
    assert failure.split(":")[0] in {"agreement", "durability", "linearizability", "divergence"}


def test_unconfirmed_reads_are_caught_by_the_linearizability_checker() -> None:
    failure = first_failure(
        ReadsWithoutConfirming, range(1, 40), faults=frozenset({"partition", "loss"})
    )
    assert failure.startswith("linearizability"), failure


def test_lease_reads_in_the_workload_catch_a_lease_that_never_expires() -> None:
    """'leader' reads (with --leader-reads) are checked like the rest; without them the
    workload never asks for one, and nothing catches a broken lease."""
    faults = frozenset({"partition", "loss"})
    assert first_failure(LeaseNeverExpires, range(1, 10), faults=faults, leader_reads=0.5)
    assert not first_failure(LeaseNeverExpires, range(1, 4), faults=faults)


def test_a_candidate_missing_a_promises_later_parts_is_caught() -> None:
    small = [s for s in range(1, 600) if SEED_SETTINGS[s % 4].get("max_message_bytes") == 250]
    safety = {"agreement", "durability", "linearizability", "divergence"}
    failures = (
        result.failure
        for result in (
            run_seed(seed, RunOptions(engine_class=TakesAPromisesFirstPartForAll)) for seed in small
        )
        if not result.ok
    )
    # The first safety failure: a seed may first fail on liveness, which is not the point.
    failure = next((f for f in failures if f.split(":")[0] in safety), "")
    assert failure, "no seed caught a candidate that forgets a promise's later parts"


def test_a_wiped_voter_voting_again_is_caught_and_the_amnesia_rule_prevents_it() -> None:
    """A voter's disk lost whole and the node started again (``wipe``): voting at once, with
    no memory of its promises and accepts, it lets two values be chosen for one slot; run as
    the runtime runs it (a learner until removed), never."""
    options = RunOptions(nodes=3, faults=frozenset({"wipe", "crash", "partition", "loss"}))
    unsafe = replace(options, amnesia_rule=False)
    # Which seeds catch it depends on every random draw and timing of a run, so any change
    # to the engine moves them (9 and 47 in the eleventh session).
    _caught_without_the_rule_and_not_with_it(unsafe, options, "agreement")


def test_a_removed_voter_stopping_at_once_is_caught_and_the_leave_rule_prevents_it() -> None:
    """One of two voters removed (before the joiner is promoted) and stopped the moment it
    applies its removal leaves the other unable to choose or campaign over the old pair's last
    slots: no leader for good (found on real nodes in the twentieth session). Run as the
    runtime runs it now (it votes on until they are applied), never."""
    options = RunOptions(nodes=2, faults=frozenset({"membership", "crash", "partition", "loss"}))
    unsafe = replace(options, leave_rule=False)
    # (Half the seeds draw a removal, some after the joiner is a voter, which needs no rule.)
    _caught_without_the_rule_and_not_with_it(unsafe, options, "liveness")


def _caught_without_the_rule_and_not_with_it(
    unsafe: RunOptions, options: RunOptions, failure: str
) -> None:
    """The first two seeds of 1..299 that fail with ``failure`` run ``unsafe`` pass with
    ``options``, the same run with the rule."""
    caught = (s for s in range(1, 300) if run_seed(s, unsafe).failure.startswith(failure))
    seeds = list(itertools.islice(caught, 2))
    assert len(seeds) == 2, f"only seeds {seeds} of 1..299 failed on {failure} without the rule"
    for seed in seeds:
        result = run_seed(seed, options)
        assert result.ok, f"seed {seed}: {result.failure}"


def test_a_cut_scheduled_in_the_fault_phase_does_not_outlive_the_final_heal() -> None:
    from simulations.world import World

    world = World(7, 3)
    world.scheduler.at(2.0, world.partition, {"n1"}, {"n2"})
    world.scheduler.run_until(1.0)
    world.heal(for_good=True)
    world.scheduler.run_until(3.0)
    assert not world.cut


def test_seeds_that_once_failed_pass() -> None:
    """Each found a real bug; kept so that it stays found. 90594 (eleventh session): a leader
    elected after a power cut served a linearizable read once the first slot it recovered
    was applied, before the last, which held an acknowledged write. 294647 (twenty-fourth
    session, the simulator's own): a follower's lease read made ready in the step in which a
    call made during that step's effects stopped the node (removed), and the workload read a
    stopped node's state."""
    every_fault = frozenset({"loss", "crash", "partition", "membership", "wipe"})
    with_pauses = every_fault | {"pause"}
    for seed, options in [
        (90594, RunOptions(nodes=5, faults=every_fault)),
        (294647, RunOptions(nodes=5, faults=with_pauses, leader_reads=0.5, clock_drift=0.05)),
    ]:
        result = run_seed(seed, options)
        assert result.ok, f"seed {seed}: {result.failure}"
