"""``benchmarks/reads.py`` end to end, in its smallest form: real processes on 127.0.0.1.

It proves the pieces fit (a filled cluster, every consistency read pipelined and one at a
time, from the leader's process and a follower's, every figure in the JSON), not how fast
any read is.
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
    *("--keys", "300", "--seconds", "0.3", "--window", "8"),
    *("--latency-seconds", "0.2", "--latency-reads", "50"),
)


def run_reads(systems: str, out: Path) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "benchmarks/reads.py", "--systems", systems, "--out", str(out), *TINY],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Pipelined reads" in completed.stdout
    results: list[dict[str, Any]] = json.loads(out.read_text())
    return results


def test_paxos_kv_reads_at_every_consistency(tmp_path: Path) -> None:
    (result,) = run_reads("paxoskv", tmp_path / "reads.json")
    assert result["setup"] == "paxoskv-durable"
    consistencies = ["get_local", "local", "leader", "linearizable"]
    assert [row["consistency"] for row in result["pipelined"]] == consistencies
    for row in result["pipelined"]:
        assert row["reads_per_s"] > 0 and row["errors"] == 0 and row["cpu_us_per_read"] > 0
        assert 0 < row["found"] <= 1  # the fill's keys are found, the others read as absent
    sequential = [(row["process"], row["consistency"]) for row in result["sequential"]]
    assert sequential == [(p, c) for p in ("leader", "follower") for c in consistencies]
    for row in result["sequential"]:
        assert row["reads"] > 0 and row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]


def test_pysyncobj_reads_its_own_copy(tmp_path: Path) -> None:
    pytest.importorskip("pysyncobj", reason="PySyncObj is the bench extra: pip install .[bench]")
    (result,) = run_reads("pysyncobj", tmp_path / "reads.json")
    assert [row["consistency"] for row in result["pipelined"]] == ["local"]
    assert [row["process"] for row in result["sequential"]] == ["leader", "follower"]
    assert result["pipelined"][0]["reads_per_s"] > 0
