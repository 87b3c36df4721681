"""The engine's clock: the wall clock's reading at start, carried on monotonically."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from paxoskv.runtime import clock


def test_a_wall_clock_stepped_back_or_forward_does_not_move_the_engines_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leases and a voter's wait before promising a rival are intervals of this clock: a
    step of the wall clock (NTP, an operator) stretched or cut them when it was read."""
    before = clock.now()
    assert abs(before - time.time()) < 1.0  # what log time is stamped from: the wall's
    monkeypatch.setattr(time, "time", lambda: before - 3600.0)
    after_back = clock.now()
    monkeypatch.setattr(time, "time", lambda: before + 3600.0)
    after_forward = clock.now()
    assert before <= after_back <= after_forward < before + 1.0


def test_the_runtime_reads_no_wall_clock() -> None:
    """Every time the runtime hands the engine, or compares with what it handed it, is
    ``clock.now()``: one wall-clock reading among them would mix two clocks."""
    runtime = Path(clock.__file__).parent
    for module in ("replica.py", "serving.py"):
        assert "time.time()" not in (runtime / module).read_text(), module


BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


@pytest.mark.skipif(BOOTTIME is None, reason="no CLOCK_BOOTTIME on this platform")
def test_the_engines_clock_counts_time_spent_suspended() -> None:
    """A leader suspended past an election timeout must resume with its lease over: under
    CLOCK_MONOTONIC, which stops while the machine sleeps, it ran on while the others elected
    a rival and acknowledged writes (found in review). The test stands in for the kernel:
    while suspended, CLOCK_BOOTTIME and the wall clock move on and CLOCK_MONOTONIC does not."""
    monotonic = [1_000.0]
    boottime = [1_000.0]
    wall = [1_700_000_000.0]

    def clock_gettime(which: int) -> float:
        if which == BOOTTIME:
            return boottime[0]
        if which == time.CLOCK_MONOTONIC:
            return monotonic[0]
        return wall[0]

    saved = (time.monotonic, time.time, time.clock_gettime)
    try:
        time.monotonic = lambda: monotonic[0]  # type: ignore[assignment]
        time.time = lambda: wall[0]  # type: ignore[assignment]
        time.clock_gettime = clock_gettime  # type: ignore[assignment]
        importlib.reload(clock)
        before = clock.now()
        # Suspended for 30 s: the kernel counts it on CLOCK_BOOTTIME and the wall clock.
        boottime[0] += 30.0
        wall[0] += 30.0
        after = clock.now()
    finally:
        time.monotonic, time.time, time.clock_gettime = saved  # type: ignore[assignment]
        importlib.reload(clock)
    assert after - before >= 30.0, (
        "a 30 s suspend did not move the engine's clock: a suspended leader's lease "
        "outlives the election of its rival"
    )
