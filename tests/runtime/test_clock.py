"""The engine's clock: the wall clock's reading at start, carried on monotonically."""

from __future__ import annotations

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
