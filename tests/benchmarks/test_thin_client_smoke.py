"""``benchmarks/thin_client.py`` end to end, in its smallest form: real nodes on 127.0.0.1.

It proves the pieces fit (three nodes, a filled map, every operation one at a time and
pipelined, every figure in the JSON, every read finding what was filled), not how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_thin_client_runs_every_operation(tmp_path: Path) -> None:
    out = tmp_path / "thin.json"
    completed = subprocess.run(
        [
            *(sys.executable, "benchmarks/thin_client.py", "--out", str(out)),
            *("--seconds", "0.3", "--window", "8", "--keys", "300"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = json.loads(out.read_text())
    phases = [(row["operation"], row["window"]) for row in rows]
    operations = ["local", "leader", "linearizable", "write"]
    assert phases == [(name, window) for name in operations for window in (1, 8)]
    for row in rows:
        assert row["requests"] > 0 and row["client_cpu_us"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["found"] == (None if row["operation"] == "write" else 1.0)
