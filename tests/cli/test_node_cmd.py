"""``paxos-kv node``: settings errors before anything starts, a clean stop on SIGTERM, and a
clear refusal to share a data dir."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from paxoskv.cli.local_cluster import ClusterAddress
from tests.cli.conftest import Cli, clean_environment, run_cli, stop_process, wait_for_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "a node needs --data-dir"),
        (  # (it started empty over the dir, a voter with none of its votes: storage audit)
            ["--data-dir", "d", "--durability", "memory"],
            "--durability memory keeps nothing on disk, so it cannot use the data dir",
        ),
        (["--data-dir", "d", "--learner", "--bootstrap-expect", "3"], "a learner cannot bootstrap"),
        (["--data-dir", "d", "--node-id", "has space"], "must be 1-64 printable characters"),
        (["--data-dir", "d", "--scope", "unicast"], "unicast scope needs peers"),
        (["--data-dir", "d", "--peer", "localhost"], "is not an IPv4 host:port"),
        (  # (it wrote node-id, life.json and LOCK first: CLI audit, twenty-second session)
            ["--data-dir", "d", "--interface", "nosuchif0", "--bootstrap-expect", "1"],
            "no interface named 'nosuchif0'",
        ),
        (
            ["--data-dir", "d", "--join", "--bootstrap-expect", "3"],
            "join and bootstrap_expect (--join, --bootstrap-expect) contradict each other",
        ),
    ],
)
def test_bad_settings_exit_2_before_starting(
    cli: Cli, tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli("node", *[str(tmp_path / a) if a == "d" else a for a in args])
    assert result.exit_code == 2
    assert result.stderr.startswith("paxos-kv: error: ")
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("timeout", ["nan", "inf", "0"])
def test_a_timeout_that_is_no_positive_number_of_seconds_is_a_usage_error(
    cli: Cli, timeout: str
) -> None:
    result = cli("node", "--durability", "memory", "--bootstrap-expect", "1", "--timeout", timeout)
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PAXOS_KV_HEARTBEAT_INTERVAL_S", "0", "heartbeat_interval_s must be positive"),
        ("PAXOS_KV_ELECTION_TIMEOUT_S", "-1", "election_timeout_s must be positive"),
        ("PAXOS_KV_HELLO_INTERVAL_S", "0", "hello_interval_s must be positive"),
        ("PAXOS_KV_HEARTBEAT_INTERVAL_S", "10", "at most a third of election_timeout_s"),
    ],
)
def test_timers_a_node_cannot_run_on_exit_2_without_a_traceback(
    cli: Cli, variable: str, value: str, message: str
) -> None:
    result = cli("node", "--durability", "memory", "--bootstrap-expect", "1", env={variable: value})
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_settings_can_come_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    result = cli("node", env={"PAXOS_KV_BOOTSTRAP_EXPECT": "0", "PAXOS_KV_DATA_DIR": "x"})
    assert result.exit_code == 2
    assert "bootstrap_expect must be at least 1" in result.stderr


def test_runs_until_sigterm_and_refuses_a_second_node_on_its_data_dir(tmp_path: Path) -> None:
    address = ClusterAddress.fresh()
    data = tmp_path / "n1"
    log = tmp_path / "n1.log"
    args = ["node", "--data-dir", str(data), "--bootstrap-expect", "1", *address.args()]
    with log.open("w") as sink:
        node = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
        )
        try:
            wait_for_text(log, "is a voter of the cluster", 20.0)
            written = run_cli("set", "k", "v", *address.args())
            assert written.returncode == 0, written.stderr

            second = run_cli(*args)
            assert second.returncode == 4
            assert f"data dir {data} is in use by process {node.pid}" in second.stderr
            assert len(second.stderr.splitlines()) == 1

            node.send_signal(signal.SIGTERM)
            assert node.wait(15) == 0
        finally:
            stop_process(node)
    assert "stopped" in log.read_text() and "Traceback" not in log.read_text()


def test_timeout_bounds_the_wait_for_a_cluster_and_exits_3(tmp_path: Path) -> None:
    """--join with nobody there: the node gives up after --timeout, saying what it waited
    for, instead of waiting until it is killed."""
    address = ClusterAddress.fresh()
    args = ["node", "--durability", "memory", "--join", "--timeout", "1", *address.args()]
    result = run_cli(*args, timeout_s=30.0)
    assert result.returncode == 3, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("paxos-kv: error: node ") and "has no cluster after 1s" in last
    assert "waiting for a running cluster to join" in result.stderr
    assert "None" not in result.stderr and "Traceback" not in result.stderr


def test_a_copy_of_a_running_nodes_data_dir_exits_non_zero(tmp_path: Path) -> None:
    """Two processes answering as one acceptor break Paxos: the copy (the newer) stops."""
    address = ClusterAddress.fresh()
    data, copy = tmp_path / "n1", tmp_path / "n1copy"
    log = tmp_path / "n1.log"
    args = ["node", "--bootstrap-expect", "1", *address.args()]
    with log.open("w") as sink:
        node = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", *args, "--data-dir", str(data)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
        )
        try:
            wait_for_text(log, "is a voter of the cluster", 20.0)
            shutil.copytree(data, copy)
            (copy / "LOCK").unlink()
            second = run_cli(*args, "--data-dir", str(copy))
            assert second.returncode == 2
            last = second.stderr.splitlines()[-1]
            assert last.startswith("paxos-kv: error: another process at")
            assert "runs as node id" in last and "give every node its own data dir" in last
            assert node.poll() is None  # the original keeps running, and serving
            assert run_cli("set", "k", "v", *address.args()).returncode == 0
            node.send_signal(signal.SIGTERM)
            assert node.wait(15) == 0
        finally:
            stop_process(node)
    assert "sends as node id" in log.read_text()


def test_a_fatal_signal_leaves_the_python_traceback(tmp_path: Path) -> None:
    """A node reads its last journal segment through a memory map at start, where a disk that
    cannot page it in raises SIGBUS rather than an OSError: the node's stderr then holds the
    Python traceback (``faulthandler``), which names the step, instead of nothing."""
    address = ClusterAddress.fresh()
    log = tmp_path / "n1.log"
    args = ["node", "--data-dir", str(tmp_path / "n1"), "--bootstrap-expect", "1"]
    with log.open("w") as sink:
        node = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", *args, *address.args()],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
        )
        try:
            wait_for_text(log, "is a voter of the cluster", 20.0)
            node.send_signal(signal.SIGBUS)
            assert node.wait(15) == -signal.SIGBUS
        finally:
            stop_process(node)
    text = log.read_text()
    assert "Fatal Python error: Bus error" in text
    assert 'File "' in text, text[-2000:]


def test_a_data_dir_under_a_file_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    """It was an OSError, exit 4 (a failed disk), 'Not a directory (...)' and no more."""
    (tmp_path / "afile").write_text("")
    result = cli("node", "--data-dir", str(tmp_path / "afile" / "sub"), "--bootstrap-expect", "1")
    assert result.exit_code == 2
    assert "cannot use" in result.stderr and "as a data dir: Not a directory" in result.stderr
