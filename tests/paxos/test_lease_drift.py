"""Leader leases under clocks that run at different rates (the simulator's per-node clocks).

A lease read rests on two intervals timed on two nodes' clocks: the leader's lease (90% of
the shortest election timeout after the heartbeat a quorum acked, on the leader's clock,
``clock_drift_bound`` 0.1) and each voter's wait before it promises a rival (a whole shortest
election timeout after it last heard the leader, on its own). The README promises the lease
is safe while every clock runs within 5% of real time: (1 + 0.05) / (1 - 0.05) is under
1 / (1 - 0.1), the ratio that holds while clocks stray by up to 5.26%. These tests put the
story at the promised 5%, the leader's clock slow and the voters' fast, and just beyond it,
where the same story serves a stale read: the bound is what keeps the read right, not slack
in the scenario. Every election timeout is the shortest (``election_timeout_max_s`` equal to
the min) so that a rival campaigns as early as the rule lets it; with them drawn as usual,
stale reads are rare even past the bound (seeds 1-20: none at 8%, 1 at 9-10%, 3 at 12-15%).

Swept over seeds 1-20 when these were written: no stale read up to 6%, 6 of 20 at 6.5%, 17
at 7%, all from 7.5%. At 5% the old leader's lease has run out by the time its successor's
write is acknowledged, so no lease read is served at all: the test says that.
"""

from __future__ import annotations

from typing import Any

import pytest

from paxoskv.state import Written
from simulations.scenario import Scenario


def _read_at_the_isolated_leader(slow: float, fast: float, seed: int) -> tuple[bool, Any]:
    """Three voters; the leader's clock runs at ``slow``, the others' at ``fast``. The leader
    is cut off just after a quorum acked its heartbeat; the others elect one of themselves
    and a write is acknowledged; then a 'leader' read at the old leader if it still holds
    its lease. Returns (it held its lease, what the read saw)."""
    s = Scenario(3, seed=seed, election_timeout_min_s=0.5, election_timeout_max_s=0.5)
    world = s.world
    old = s.elect()
    assert isinstance(s.set(old, "k", "v0"), Written)
    for name in world.nodes:
        world.set_clock_rate(name, slow if name == old else fast)
    engine = world.nodes[old].engine
    assert engine is not None
    renewed = engine._lease_until
    s.run_until(lambda: engine._lease_until > renewed, 1.0, "a lease renewed at the new rates")
    s.isolate(old)
    return s.lease_read_after_a_successor_writes(old, "k", "v1")


@pytest.mark.parametrize("seed", range(1, 9))
def test_at_the_promised_bound_the_lease_runs_out_before_a_successor_writes(seed: int) -> None:
    held, seen = _read_at_the_isolated_leader(0.95, 1.05, seed)
    assert not held, f"the old leader still held its lease, and read {seen!r}"


@pytest.mark.parametrize("seed", range(1, 9))
def test_beyond_the_bound_the_same_story_serves_a_stale_read(seed: int) -> None:
    held, seen = _read_at_the_isolated_leader(0.92, 1.08, seed)
    assert held and seen == "v0"
