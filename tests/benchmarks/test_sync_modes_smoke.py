"""The sync-modes benchmark: every mode, then two and three writers syncing at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sync_modes.py"


def test_every_mode_and_every_completion_of_writers_at_once_is_reported(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--writes", "20", "--dir", str(tmp_path)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines()[1:]}
    assert list(rows)[-5:] == [
        "2 at once, 1st done",
        "2 at once, 2nd done",
        "3 at once, 1st done",
        "3 at once, 2nd done",
        "3 at once, 3rd done",
    ]
    for p50, p90, p99 in rows.values():
        assert 0 < float(p50) <= float(p90) <= float(p99)
    assert list(tmp_path.iterdir()) == []  # its scratch dir is gone
