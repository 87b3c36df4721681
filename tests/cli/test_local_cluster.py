"""``paxos-kv local-cluster`` as a person runs it: start, copy the printed line, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paxoskv.cli.local_cluster import ClusterAddress, LocalCluster
from paxoskv.runtime.identity import save_genesis, save_role
from tests.cli.conftest import (
    clean_environment,
    pid_alive,
    run_cli,
    stop_process,
    wait_for_text,
    wait_until,
)

READY_LINE = "Ctrl-C stops every node."


class Foreground:
    """A ``local-cluster`` process with its output in a file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.output = tmp_path / "local-cluster.out"
        self._sink = self.output.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", "local-cluster", *args],
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            # A temporary data dir it makes lies under the test's own tmp_path, so one it
            # could not remove is pytest's to clear, not a leftover in /tmp.
            env={**clean_environment(), "TMPDIR": str(tmp_path)},
        )

    def wait_ready(self) -> str:
        return wait_for_text(self.output, READY_LINE, 40.0)

    def node_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"pid (\d+)", self.output.read_text())]

    def printed_command(self, verb: str) -> list[str]:
        """The ``paxos-kv VERB ...`` line it printed for people to copy, as arguments."""
        line = next(
            line.strip()
            for line in self.output.read_text().splitlines()
            if line.strip().startswith(f"paxos-kv {verb} ")
        )
        return shlex.split(line)[1:]

    def close(self) -> None:
        """Stopped as a person stops it (it removes what it made), killed only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
        stop_process(self.process)
        self._sink.close()


@pytest.fixture
def foreground(tmp_path: Path) -> Iterator[list[Foreground]]:
    started: list[Foreground] = []
    yield started
    for each in started:
        each.close()
        for pid in each.node_pids():  # never leave a node behind, whatever the test did
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_starts_prints_how_to_reach_it_and_stops_on_ctrl_c(
    tmp_path: Path, foreground: list[Foreground]
) -> None:
    data = tmp_path / "data"
    cluster = Foreground(tmp_path, "--nodes", "1", "--learners", "1", "--data-dir", str(data))
    foreground.append(cluster)
    cluster.wait_ready()
    pids = cluster.node_pids()
    assert len(pids) == 2 and all(map(pid_alive, pids))

    set_args = cluster.printed_command("set")
    assert run_cli(*set_args).returncode == 0
    got = run_cli(*cluster.printed_command("get"))
    assert (got.returncode, got.stdout) == (0, "hello\n")
    members = run_cli("members", *set_args[3:]).stdout
    assert re.search(r"^l1\s+learner\s+up", members, re.MULTILINE), members

    cluster.process.send_signal(signal.SIGINT)
    assert cluster.process.wait(20) == 0
    assert cluster.output.read_text().rstrip().endswith("stopped")
    wait_until(lambda: not any(map(pid_alive, pids)), 10.0, "every node gone")
    assert (data / "n1" / "node-id").read_text().strip() == "n1"  # a given data dir is kept


def test_a_temporary_data_dir_is_removed_on_sigterm(
    tmp_path: Path, foreground: list[Foreground]
) -> None:
    cluster = Foreground(tmp_path, "--nodes", "1", "--durability", "memory")
    foreground.append(cluster)
    text = cluster.wait_ready()
    data = Path(re.search(r"logs in (\S+) \(removed on exit\)", text).group(1))  # type: ignore[union-attr]
    assert data.is_dir()
    cluster.process.terminate()
    assert cluster.process.wait(20) == 0
    assert not data.exists()


def test_no_orphans_even_if_it_is_killed(tmp_path: Path, foreground: list[Foreground]) -> None:
    """SIGKILL gives local-cluster no chance to clean up; the kernel stops the nodes."""
    cluster = Foreground(tmp_path, "--nodes", "2", "--data-dir", str(tmp_path / "data"))
    foreground.append(cluster)
    cluster.wait_ready()
    pids = cluster.node_pids()
    assert len(pids) == 2
    cluster.process.kill()
    cluster.process.wait(10)
    wait_until(lambda: not any(map(pid_alive, pids)), 15.0, "the nodes gone with their parent")


def test_it_exits_3_once_every_node_has_exited(
    tmp_path: Path, foreground: list[Foreground]
) -> None:
    """It ran on with every node killed, saying only that each had exited (CLI audit,
    twenty-second session)."""
    cluster = Foreground(tmp_path, "--nodes", "2", "--data-dir", str(tmp_path / "data"))
    foreground.append(cluster)
    cluster.wait_ready()
    for pid in cluster.node_pids():
        os.kill(pid, signal.SIGKILL)
    assert cluster.process.wait(20) == 3
    assert "every node has exited" in cluster.output.read_text()


def test_a_rerun_names_the_removed_nodes_it_does_not_start(tmp_path: Path) -> None:
    """It started fewer nodes than asked and said nothing of it (CLI audit)."""
    for name in ("n1", "n2"):
        (tmp_path / name).mkdir()
        save_role(tmp_path / name, "removed")
    some = run_cli("local-cluster", "--nodes", "2", "--data-dir", str(tmp_path), timeout_s=30)
    assert some.returncode == 2 and "not starting n1, n2: removed" in some.stderr


def test_a_bad_count_is_a_usage_error() -> None:
    done = run_cli("local-cluster", "--nodes", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("paxos-kv: usage error: Invalid value for '--nodes'")


def test_a_data_dir_in_use_says_so_and_exits_4(
    tmp_path: Path, foreground: list[Foreground]
) -> None:
    """Before: "node n1 exited; see ...; check --group ..." and exit 3, for a locked dir."""
    data = tmp_path / "data"
    first = Foreground(tmp_path, "--nodes", "1", "--data-dir", str(data))
    foreground.append(first)
    first.wait_ready()
    second = run_cli("local-cluster", "--nodes", "1", "--data-dir", str(data), timeout_s=60.0)
    assert second.returncode == 4, second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("paxos-kv: error: node n1 exited with code 4: data dir ")
    assert "is in use by process" in last and "--group" not in last


def test_a_second_run_on_the_same_data_dir_keeps_the_cluster_its_nodes_belong_to(
    tmp_path: Path,
) -> None:
    """Each run picks a fresh name and group, but a data dir refuses another cluster's name:
    a run over an earlier run's data dirs takes the name they record (a fresh group is fine)."""
    (tmp_path / "n1").mkdir()
    save_genesis(tmp_path / "n1", ("n1", "n2"), "local-0badcafe", "f00d")
    again = LocalCluster(tmp_path, voters=2)
    assert again.address.cluster == "local-0badcafe"
    assert LocalCluster(tmp_path / "elsewhere", voters=2).address.cluster != "local-0badcafe"


def test_a_second_run_starts_a_promoted_learner_as_a_voter_and_leaves_out_a_removed_node(
    tmp_path: Path,
) -> None:
    """The tutorial's own steps (``members promote l1``, ``members remove``) and then a run
    on the same data dir: it passed ``--learner`` to the promoted l1, which a voter's data
    dir refuses (exit 2, and the whole run with it), and started the removed node, which
    stops at once (README audit, twentieth session)."""
    for name, role in (("l1", "voter"), ("n3", "removed")):
        (tmp_path / name).mkdir()
        save_role(tmp_path / name, role)  # type: ignore[arg-type]
    again = LocalCluster(tmp_path, voters=3, learners=1)
    assert set(again.nodes) == {"n1", "n2", "l1"}
    assert not again.nodes["l1"].learner
    l1_args = again.node_args("l1")
    assert "--join" in l1_args and "--learner" not in l1_args
    assert "--bootstrap-expect" in again.node_args("n1")
    fresh = LocalCluster(tmp_path / "fresh", voters=3, learners=1)
    assert fresh.nodes["l1"].learner and "--learner" in fresh.node_args("l1")


def test_a_memory_run_over_kept_data_dirs_starts_every_node_anew(tmp_path: Path) -> None:
    """Its nodes have no data dir (memory keeps nothing on disk), so a removed node left
    out as an earlier run's data dir said, and the rest waiting for it to bootstrap, never
    got ready; nor may a name an earlier run recorded bind a run that keeps nothing (review
    of the memory refusal, twenty-first session)."""
    for name, role in (("l1", "voter"), ("n3", "removed")):
        (tmp_path / name).mkdir()
        save_role(tmp_path / name, role)  # type: ignore[arg-type]
    (tmp_path / "n1").mkdir()
    save_genesis(tmp_path / "n1", ("n1", "n2", "n3"), "local-0badcafe", "f00d")
    again = LocalCluster(tmp_path, voters=3, learners=1, durability="memory")
    assert set(again.nodes) == {"n1", "n2", "n3", "l1"}
    assert again.nodes["l1"].learner and again.address.cluster != "local-0badcafe"
    assert all("--data-dir" not in again.node_args(name) for name in again.nodes)


def test_a_memory_run_ignores_a_data_dir_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its nodes inherit the environment, and ``--data-dir``, which overrode the variable,
    is not passed in memory mode: each node refused the data dir and exited 2."""
    monkeypatch.setenv("PAXOS_KV_DATA_DIR", str(tmp_path / "shared"))
    with LocalCluster(tmp_path / "base", voters=1, durability="memory") as cluster:
        cluster.start()
        cluster.wait_ready(30.0)
    assert not (tmp_path / "shared").exists()


def test_a_second_run_starts_a_leaving_node_but_does_not_wait_for_it(tmp_path: Path) -> None:
    """Stopped while it voted on after its removal, a node is started again (the others may
    need its vote) but not waited for: it stops once they have it, and a run that waited for
    it as a voter failed (second review of the leave rule)."""
    for name in ("n2", "l1"):
        (tmp_path / name).mkdir()
        save_role(tmp_path / name, "leaving")
    again = LocalCluster(tmp_path, voters=2, learners=1)
    assert set(again.nodes) == {"n1", "n2", "l1"}
    assert again.awaited() == ["n1"]
    assert not again.nodes["l1"].learner and "--learner" not in again.node_args("l1")


def test_a_node_of_an_earlier_cluster_of_the_same_name_exits_2_saying_what_to_do(
    tmp_path: Path,
) -> None:
    """Two clusters formed under one name with the same ids (n1..n3), then n1's data dir from
    the first started with the second's n2 and n3: it used to be taken as a member, with its
    old log. Now the members refuse it, and it exits with the usage code and the fix."""
    address = ClusterAddress.fresh()
    for run in ("A", "B"):
        with LocalCluster(tmp_path / run, voters=3, address=address, durability="os") as formed:
            formed.start()
            formed.wait_ready(30.0)
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "A" / "n1", mixed / "n1")
    for node_id in ("n2", "n3"):
        shutil.copytree(tmp_path / "B" / node_id, mixed / node_id)
    with LocalCluster(mixed, voters=3, address=address, durability="os") as running:
        running.start()
        running.wait_ready(30.0, up=["n2", "n3"])
        stranger = running.nodes["n1"]
        wait_until(lambda: not stranger.running, 30.0, "n1 exiting")
        assert stranger.process is not None and stranger.process.returncode == 2
        last = stranger.log_path.read_text().strip().splitlines()[-1]
        assert last.startswith("paxos-kv: error: node 'n1' belongs to another cluster named ")
        assert f"wipe (or move aside) {mixed / 'n1'}, remove it from the running" in last
        assert "n1 belongs to another cluster" in running.nodes["n2"].log_path.read_text()
