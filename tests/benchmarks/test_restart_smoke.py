"""The restart breakdown over a real node's data dir: every step runs and adds up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.restart import STEPS, breakdown, main
from tests.runtime.cluster import MemoryCluster, eventually


async def test_the_breakdown_recovers_what_the_node_wrote(tmp_path: Path) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3, snapshot_every_commands=20)
        for i in range(50):
            await cluster.nodes["n1"].set(f"k{i}", i)
        n3 = cluster.nodes["n3"]
        await eventually(
            lambda: n3.replica.engine.state.get("k49") is not None,  # type: ignore[union-attr]
            5,
            "n3 applying the last write",
        )
        await cluster.stop("n3")
    finally:
        await cluster.close()

    steps, facts = breakdown(tmp_path / "n3")
    assert [name for name, _, _ in steps] == list(STEPS)
    assert all(wall >= 0 and cpu >= 0 for _, wall, cpu in steps)
    assert facts["keys"] == 50
    assert facts["snapshot_covers_record"] > 0  # 50 writes, a snapshot every 20 commands
    assert facts["applied_slot"] > 0
    assert (tmp_path / "n3" / "node-id").exists()  # the original dir is left as it was
    assert main([str(tmp_path / "n3")]) == 0
    # What --instructions runs under callgrind for each step: the steps up to one, then out.
    for stop_after in (0, len(STEPS) - 1):
        scratch = tmp_path / f"scratch{stop_after}"
        scratch.mkdir()
        script = Path(__file__).resolve().parents[2] / "benchmarks" / "restart.py"
        argv = [str(tmp_path / "n3"), "--stop-after", str(stop_after), "--scratch-in", str(scratch)]
        done = subprocess.run([sys.executable, str(script), *argv], timeout=120, check=False)
        assert done.returncode == 0
