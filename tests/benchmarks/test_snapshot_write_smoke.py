"""The snapshot-write benchmark: both ways run in their own process and print their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "snapshot_write.py"


@pytest.mark.parametrize("encrypted", [False, True])
def test_each_way_writes_a_snapshot_and_reports_its_peak_and_cpu(encrypted: bool) -> None:
    command = [sys.executable, str(SCRIPT), "--values", "3000", "--repeat", "1"]
    command += ["--encrypted"] if encrypted else []
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    lines = out.splitlines()
    assert lines[0].startswith("one snapshot of 3,000 values of 1,024 B")
    assert [line.split()[0] for line in lines[1:]] == ["streamed", "whole"]
    assert all(" MB " in line and line.endswith("ms CPU") for line in lines[1:])
