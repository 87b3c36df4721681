"""``paxos-kv watch`` against a cluster that goes away: exit 3 with one line, never a hang."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from paxoskv.cli.local_cluster import ClusterAddress
from tests.cli.conftest import clean_environment, run_cli, stop_process, wait_for_text


def test_a_watch_exits_3_once_the_only_node_stops(tmp_path: Path) -> None:
    address = ClusterAddress.fresh()
    node_log, watch_out = tmp_path / "node.log", tmp_path / "watch.out"
    node_args = ["node", "--node-id", "n1", "--bootstrap-expect", "1"]
    with node_log.open("w") as node_sink, watch_out.open("w") as watch_sink:
        node = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", *node_args, "--durability", "memory",
             *address.args()],
            stdout=node_sink, stderr=subprocess.STDOUT, env=clean_environment(),
        )  # fmt: skip
        watch = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", "watch", "a", "--from-revision", "1",
             "--timeout", "2", *address.args()],
            stdout=watch_sink, stderr=subprocess.STDOUT, env=clean_environment(),
        )  # fmt: skip
        try:
            wait_for_text(node_log, "is a voter of the cluster", 20.0)
            assert run_cli("set", "a", "1", *address.args()).returncode == 0
            wait_for_text(watch_out, "set a 1", 20.0)
            node.send_signal(signal.SIGTERM)
            assert node.wait(15) == 0
            assert watch.wait(20) == 3
        finally:
            stop_process(watch)
            stop_process(node)
    lines = watch_out.read_text().splitlines()
    assert lines[0].endswith("set a 1")
    assert len(lines) == 2 and lines[1].startswith("paxos-kv: error: lost contact with the cluster")
