"""The blocking-reads benchmark: one node in its own process, each way of reading timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "blocking_reads.py"


def test_every_way_of_reading_is_timed_and_reported() -> None:
    command = [sys.executable, str(SCRIPT), "--reads", "300", "--keys", "50"]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    lines = out.splitlines()
    assert lines[0].startswith("one reader, 300 reads one at a time of 50 keys of 100 B")
    rows = {line[:20].strip(): line[20:].split() for line in lines[2:]}
    assert list(rows) == ["get_local", "get, local", "get, linearizable"]
    for figures in rows.values():
        p50, p99, mean, rate = figures
        assert 0 < float(p50) <= float(p99)
        assert float(mean) > 0 and int(rate.replace(",", "")) > 0
