"""Hand-written stories over the simulator, including the known failures of SWI-Prolog's paxos."""

from paxoskv.state import (
    AddLearner,
    ConfigChanged,
    LeaseGrant,
    LeaseGranted,
    PromoteLearner,
    Set,
    Written,
)
from paxoskv.storage import LAZY_SYNC_S
from simulations.scenario import Scenario


def test_a_write_on_a_follower_is_read_linearizably_on_another() -> None:
    s = Scenario(3)
    leader = s.elect()
    follower, other = sorted(set(s.world.nodes) - {leader})
    assert isinstance(s.set(follower, "k", "v1"), Written)
    assert s.get(other, "k") == "v1"
    assert s.get(leader, "k", consistency="leader") == "v1"


def test_duelling_proposers_settle_on_one_leader_and_writes_go_through() -> None:
    s = Scenario(3, seed=7)
    for node_id in ("n1", "n2"):
        engine = s.world.nodes[node_id].engine
        assert engine is not None
        engine._election_deadline = 0.0  # both time out at the same instant
        s.world.call(node_id, "tick")
    leader = s.elect()
    assert isinstance(s.set(leader, "k", "after the duel"), Written)
    s.converge()
    assert {s.local(n, "k") for n in s.world.nodes} == {"after the duel"}


def test_a_value_accepted_by_a_minority_before_the_leader_crashes_never_splits_replicas() -> None:
    s = Scenario(5, seed=3)
    leader = s.elect()
    others = sorted(set(s.world.nodes) - {leader})
    s.world.partition({leader}, set(others[1:]), one_way=True)  # only others[0] hears it
    ticket = s.submit(leader, Set("k", "partial"))
    s.run_for(0.05)
    s.crash(leader)
    s.heal()
    new_leader = s.elect()
    assert new_leader != leader
    s.set(new_leader, "other", "x")
    s.restart(leader)
    s.converge()
    values = {s.local(n, "k") for n in s.world.nodes}
    assert len(values) == 1  # chosen everywhere or nowhere
    assert not s.answered(ticket) or values == {"partial"}


def test_a_stale_leader_steps_down_after_the_partition_heals() -> None:
    s = Scenario(3, seed=11)
    old = s.elect()
    s.isolate(old)
    rest = sorted(set(s.world.nodes) - {old})
    s.run_until(
        lambda: s.world.leader() is not None and s.world.leader() != old, 5.0, "a new leader"
    )
    s.set(rest[0], "k", "new")
    s.heal()
    assert s.get(old, "k") == "new"
    s.run_until(
        lambda: not s.world.nodes[old].engine.is_leader, 5.0, "the old leader stepping down"
    )


def test_a_learner_partitioned_during_compaction_catches_up_by_snapshot() -> None:
    s = Scenario(3, learners=1, seed=5, snapshot_every_commands=20, log_retention_slots=5)
    leader = s.elect()
    learner = "n4"
    s.isolate(learner)
    for i in range(60):
        s.set(leader, f"k{i % 7}", i)
    assert s.world.nodes[leader].engine.compacted_slot > s.applied(learner)
    s.heal()
    s.converge()
    assert s.local(learner, "k3") == 59  # the last i with i % 7 == 3


def test_burst_of_concurrent_writers_leaves_the_key_writable() -> None:
    """SWI-Prolog's paxos left a key permanently unwritable after such a burst."""
    s = Scenario(3, seed=13)
    s.elect()
    nodes = sorted(s.world.nodes)
    tickets = [s.submit(nodes[i % 3], Set("hot", f"w{i}"), client_id=f"c{i}") for i in range(30)]
    for ticket in tickets:
        s.answer(ticket)
    assert isinstance(s.set(nodes[0], "hot", "final"), Written)
    s.converge()
    assert {s.local(n, "hot") for n in nodes} == {"final"}


def test_writes_do_not_hang_at_five_percent_packet_loss() -> None:
    s = Scenario(3, seed=17)
    s.world.faults.loss = 0.05
    leader = s.elect()
    for i in range(40):
        s.set(sorted(s.world.nodes)[i % 3], "k", i, within_s=5.0)
    assert s.get(leader, "k") == 39


def test_a_node_that_missed_a_commit_does_not_serve_the_old_value_forever() -> None:
    """SWI-Prolog's paxos left such a node answering with the old value indefinitely."""
    s = Scenario(3, seed=19)
    leader = s.elect()
    lagging = sorted(set(s.world.nodes) - {leader})[0]
    s.set(leader, "k", "old")
    s.converge()
    s.isolate(lagging)
    s.set(leader, "k", "new")
    s.heal()  # no further writes: heartbeats alone must bring it up to date
    s.run_until(lambda: s.local(lagging, "k") == "new", 3.0, "the lagging node learning the commit")


def test_a_restarted_node_recovers_its_state_from_its_own_disk() -> None:
    s = Scenario(3, seed=23, snapshot_every_commands=10)
    leader = s.elect()
    for i in range(25):
        s.set(leader, f"k{i}", i)
    s.converge()
    s.run_for(2 * LAZY_SYNC_S)  # the last chosen markers, which no reply waited on, are synced
    victim = sorted(set(s.world.nodes) - {leader})[0]
    applied = s.applied(victim)
    s.crash(victim)
    s.restart(victim)
    assert s.applied(victim) == applied  # nothing that was synced is relearned
    s.converge()
    assert s.local(victim, "k24") == 24


def test_a_restart_relearns_chosen_markers_that_were_not_yet_synced() -> None:
    s = Scenario(3, seed=23, snapshot_every_commands=1000)
    leader = s.elect()
    for i in range(5):
        s.set(leader, f"k{i}", i)
    s.converge()  # at once: the last slot's chosen marker is still waiting for a sync
    victim = sorted(set(s.world.nodes) - {leader})[0]
    applied = s.applied(victim)
    s.crash(victim)
    s.restart(victim)
    assert s.applied(victim) < applied  # the marker was lost with the crash ...
    s.converge()
    assert s.applied(victim) >= applied  # ... and the leader's commits bring it back
    assert s.local(victim, "k4") == 4


def test_a_lease_expires_on_every_replica_in_a_quiet_cluster() -> None:
    s = Scenario(3, seed=29)
    leader = s.elect()
    granted = s.answer(s.submit(leader, LeaseGrant(ttl_ms=1_000)))
    assert isinstance(granted, LeaseGranted)
    s.answer(s.submit(leader, Set("session", "alive", lease_id=granted.lease_id)))
    s.converge()
    assert {s.local(n, "session") for n in s.world.nodes} == {"alive"}
    s.run_until(
        lambda: all(s.local(n, "session") is None for n in s.world.nodes),
        3.0,
        "the lease expiring everywhere with no writes",
    )
    engine = s.world.nodes[leader].engine
    assert engine is not None
    expiry = [e for e in engine.state.events_since(0) if e.kind == "expire"]
    assert [e.key for e in expiry] == ["session"]


def test_a_promoted_learner_votes_and_counts_for_quorum() -> None:
    s = Scenario(3, seed=31)
    leader = s.elect()
    s.world.add_node("n4", learner=False)
    assert isinstance(s.answer(s.submit(leader, AddLearner("n4"))), ConfigChanged)
    assert isinstance(s.answer(s.submit(leader, PromoteLearner("n4"))), ConfigChanged)
    s.set(leader, "k", "with four voters")  # pads past the alpha window: n4 now votes
    s.converge()
    engine = s.world.nodes[leader].engine
    assert engine is not None and "n4" in engine.configs.at(engine.applied_slot + 1).voters
    # With four voters a quorum is three: without n4's vote no write could commit now.
    victim = sorted({"n1", "n2", "n3"} - {leader})[0]
    s.crash(victim)
    assert isinstance(s.set(leader, "k", "needs n4"), Written)
    assert s.local("n4", "k") in ("with four voters", "needs n4")


def test_learners_alone_cannot_make_a_quorum() -> None:
    s = Scenario(3, learners=2, seed=37)
    leader = s.elect()
    s.set(leader, "k", "before")
    for voter in sorted({"n1", "n2", "n3"} - {leader}):
        s.crash(voter)
    ticket = s.submit(leader, Set("k", "after"))
    s.run_for(5.0)
    assert not s.answered(ticket)
    assert {s.local(n, "k") for n in ("n4", "n5")} == {"before"}
    assert not any(s.world.nodes[n].engine.is_leader for n in ("n4", "n5"))


def test_a_snapshot_is_taken_by_bytes_as_well_as_by_commands() -> None:
    s = Scenario(3, seed=41, snapshot_every_commands=10**9, snapshot_every_bytes=4_000)
    leader = s.elect()
    engine = s.world.nodes[leader].engine
    assert engine is not None
    s.set(leader, "small", 1)
    assert engine._transfer is None  # far under both thresholds
    for i in range(4):
        s.set(leader, f"big{i}", "x" * 1_500)
    # Saved off the engine a moment after it is taken (as the runtime does).
    s.run_until(lambda: engine._transfer is not None, 1.0, "the snapshot saved")
    assert engine._transfer is not None and engine._transfer.slot > 0


def test_a_node_cut_off_from_the_leader_alone_keeps_up_through_the_others() -> None:
    s = Scenario(3, seed=43)
    leader = s.elect()
    cut_off = sorted({"n1", "n2", "n3"} - {leader})[0]
    s.world.partition({leader}, {cut_off})  # one broken link; both still reach the third node
    for i in range(5):
        assert isinstance(s.set(leader, f"k{i}", i), Written)
    s.run_until(lambda: s.local(cut_off, "k4") == 4, 5.0, f"{cut_off} catching up")
    assert [s.local(cut_off, f"k{i}") for i in range(5)] == list(range(5))
    assert s.world.leader() == leader  # it caught up without unseating anyone


def test_a_learner_cut_off_from_the_leader_alone_keeps_up_through_the_others() -> None:
    s = Scenario(3, learners=1, seed=47)
    leader = s.elect()
    s.world.partition({leader}, {"n4"})  # a learner never campaigns: it keeps the leader's id
    for i in range(5):
        assert isinstance(s.set(leader, f"k{i}", i), Written)
    s.run_until(lambda: s.local("n4", "k4") == 4, 5.0, "the learner catching up")
