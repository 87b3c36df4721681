"""The harness end to end, in its smallest form: real processes on 127.0.0.1, a few seconds.

It proves the pieces fit (processes start, answer, are measured, killed, restarted, and every
figure lands in the JSON), not how fast anything is: the figures themselves are only checked
for being there and plausible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = (
    *("--sizes", "100", "--seconds", "0.5", "--window", "16"),
    *("--latency-writes", "20", "--latency-seconds", "0.5"),
    *("--recovery-writes", "300", "--recovery-build-s", "10", "--budget-s", "50"),
)


def run_harness(systems: str, out_dir: Path) -> dict[str, Any]:
    """The script as a user runs it; its JSON, once it exited 0 with a table printed."""
    argv = [
        sys.executable,
        "benchmarks/compare.py",
        "--systems",
        systems,
        "--out-dir",
        str(out_dir),
    ]
    completed = subprocess.run(
        [*argv, *TINY],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Goals (issue 6)" in completed.stdout
    document: dict[str, Any] = json.loads((out_dir / "compare.json").read_text())
    return document


def assert_measured(document: dict[str, Any], setups: set[str], recovered: str) -> None:
    assert {row["setup"] for row in document["throughput"]} == setups & {
        "pysyncobj",
        "paxoskv-durable",
        "paxoskv-os",
    }
    for row in document["throughput"]:
        assert row["writes"] > 0 and row["cpu_us_per_write"] > 0
    for row in document["latency"]:
        assert row["writes"] > 0 and row["p50_ms"] > 0
    assert {row["setup"] for row in document["latency"]} == setups
    (recovery,) = document["recovery"]
    assert recovery["setup"] == recovered and recovery["writes"] == 300
    assert 0 < recovery["imports_s"] <= recovery["read_s"] <= recovery["ready_s"]
    assert len(recovery["read_s_runs"]) == 3  # the follower was restarted three times
    assert document["failures"] == []


def test_paxos_kv_alone(tmp_path: Path) -> None:
    document = run_harness("paxoskv", tmp_path)
    assert_measured(document, {"paxoskv-durable", "paxoskv-os"}, "paxoskv-durable")


def test_pysyncobj_alone(tmp_path: Path) -> None:
    pytest.importorskip("pysyncobj", reason="PySyncObj is the bench extra: pip install .[bench]")
    document = run_harness("pysyncobj", tmp_path)
    assert_measured(document, {"pysyncobj", "pysyncobj-nobatch"}, "pysyncobj-files")
