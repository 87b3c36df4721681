"""The scale benchmark end to end in its smallest form, and the simulator's scale model.

The benchmark test proves the pieces fit (voters bootstrap, a learner joins, every node
measures the same window, the figures land in the table and the JSON), not how fast anything
is: figures are checked for being there and plausible only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scale import Shape, ShapeResult, row
from simulations.scale import measure, report, report_cpu

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = ("--shapes", "3+1", "--seconds", "0.5", "--warmup-s", "0.3", "--window", "8")


@pytest.mark.slow
def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/scale.py", *TINY, "--budget-s", "18", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[1].startswith("voters learners   writes/s")
    assert lines[2].split()[:2] == ["3", "1"]
    document: dict[str, Any] = json.loads(out.read_text())
    assert document["settings"]["durability"] == "os"
    (result,) = document["results"]
    assert result["failure"] is None
    assert (result["voters"], result["learners"]) == (3, 1)
    assert result["writes"] > 0 and result["writes_per_s"] > 0
    assert result["leader_cpu_s_per_1000_writes"] > 0
    assert result["follower_cpu_us_per_write"] > 0 and result["learner_cpu_us_per_write"] > 0
    assert 0 < result["leader_sent_frames_per_write"] < 10
    assert sorted(node["node_id"] for node in result["nodes"]) == ["l1", "v1", "v2", "v3"]
    writers = [node for node in result["nodes"] if node["writes"] > 0]
    assert len(writers) == 1 and writers[0]["node_id"].startswith("v")  # clients: leader only


def test_shapes_parse_and_refuse() -> None:
    assert Shape.parse("3+10") == Shape(3, 10)
    assert str(Shape(5, 0)) == "5+0"
    for bad in ("3", "3+x", "0+2", "3+-1"):
        with pytest.raises(Exception, match="shape"):
            Shape.parse(bad)


def test_a_failed_shape_is_a_row_not_a_crash() -> None:
    line = row(ShapeResult(3, 2, failure="node process 1 exited during measure\n  log tail"))
    assert line.split()[:3] == ["3", "2", "FAILED:"]
    assert "log tail" not in line


def test_simulated_leader_sends_flat_with_learners_and_spends_cpu() -> None:
    alone = measure(3, 0, duration_s=0.3, clients_at="voters")
    followed = measure(3, 4, duration_s=0.3, clients_at="voters")
    for point in (alone, followed):
        assert point.commands > 50
        assert point.leader_engine_us_per_command > 0 and point.follower_us_per_command > 0
        assert point.commands_per_slot >= 1
    assert alone.learner_us_per_command == 0 and followed.learner_us_per_command > 0
    # Multicast: four learners add no datagram the leader sends per command (within noise of
    # batching), while a unicast leader would send to each of them.
    assert followed.leader_sent_per_command < alone.leader_sent_per_command * 1.3
    assert followed.unicast_equivalent_per_command > alone.unicast_equivalent_per_command + 3
    assert len(report([alone, followed]).splitlines()) == 3
    assert "leader-bound cmds/s" in report_cpu([alone, followed])
