"""The CLI against a real three-node cluster of ``paxos-kv node`` processes on loopback.

One cluster for the module (starting one costs a second or two), with a secret, a cluster
name and a multicast group of its own, so parallel runs never cross. Each test uses keys of
its own. Most commands run in-process through CliRunner with the real thin client; the exit
code tests run the real entry point as a process, since that is what scripts see.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from paxoskv.cli import main
from paxoskv.cli.local_cluster import ClusterAddress, LocalCluster
from tests.cli.conftest import clean_environment, run_cli, stop_process, wait_until

SECRET = "a-secret-for-the-cli-end-to-end-tests"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("cli-e2e")
    secret = base / "secret"
    secret.write_text(SECRET)
    address = ClusterAddress.fresh(secret_file=secret)
    with LocalCluster(base, voters=3, address=address, durability="os") as running:
        running.start()
        running.wait_ready(30.0)
        yield running


def kv(cluster: LocalCluster, *args: str) -> Result:
    """``paxos-kv ARGS`` in-process, pointed at the module's cluster."""
    unset = {name: None for name in os.environ if name.startswith("PAXOS_KV_")}
    return CliRunner().invoke(main, [*args, *cluster.address.args()], env=unset)


def test_set_get_delete_round_trip(cluster: LocalCluster) -> None:
    written = kv(cluster, "set", "rt/greeting", "hello")
    assert written.exit_code == 0, written.output
    assert int(written.stdout) >= 1
    assert kv(cluster, "get", "rt/greeting").stdout == "hello\n"
    assert kv(cluster, "delete", "rt/greeting").exit_code == 0
    missing = kv(cluster, "get", "rt/greeting")
    assert (missing.exit_code, missing.stderr) == (1, "paxos-kv: key 'rt/greeting' not found\n")


def test_json_values_and_entries(cluster: LocalCluster) -> None:
    revision = int(kv(cluster, "set", "js/n", '{"a": [1, 2]}', "--json-value").stdout)
    entry = json.loads(kv(cluster, "get", "js/n", "--json").stdout)
    assert entry == {
        "key": "js/n",
        "value": {"a": [1, 2]},
        "create_revision": revision,
        "mod_revision": revision,
        "version": 1,
        "lease": None,
    }


def test_keys_lists_a_prefix_in_order(cluster: LocalCluster) -> None:
    for key in ["ks/b", "ks/a", "ks/c", "other/x"]:
        assert kv(cluster, "set", key, "1").exit_code == 0
    assert kv(cluster, "keys", "ks/").stdout.splitlines() == ["ks/a", "ks/b", "ks/c"]
    assert json.loads(kv(cluster, "keys", "ks/", "--json").stdout) == ["ks/a", "ks/b", "ks/c"]


def test_if_revision_is_a_compare_and_set(cluster: LocalCluster) -> None:
    revision = kv(cluster, "set", "cas/k", "v1").stdout.strip()
    assert kv(cluster, "set", "cas/k", "v2", "--if-revision", revision).exit_code == 0
    stale = kv(cluster, "set", "cas/k", "v3", "--if-revision", revision)
    assert stale.exit_code == 1
    assert kv(cluster, "get", "cas/k").stdout == "v2\n"


def test_a_key_set_with_ttl_expires(cluster: LocalCluster) -> None:
    assert kv(cluster, "set", "ttl/k", "soon gone", "--ttl", "0.5").exit_code == 0
    wait_until(lambda: kv(cluster, "get", "ttl/k").exit_code == 1, 15.0, "expired")


def test_watch_count_follows_live_writes(cluster: LocalCluster, tmp_path: Path) -> None:
    start = int(kv(cluster, "set", "wt/0", "before").stdout) + 1
    output = tmp_path / "watch.out"
    with output.open("w") as sink:
        watch = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", "watch", "wt/", "--from-revision", str(start),
             "--count", "3", *cluster.address.args()],
            stdout=sink, stderr=subprocess.STDOUT, env=clean_environment(),
        )  # fmt: skip
        try:
            revisions = [kv(cluster, "set", "wt/1", "one").stdout.strip()]
            kv(cluster, "set", "elsewhere", "ignored")
            revisions.append(kv(cluster, "set", "wt/2", "[2]", "--json-value").stdout.strip())
            assert kv(cluster, "delete", "wt/1").exit_code == 0
            assert watch.wait(20) == 0
        finally:
            stop_process(watch)
    lines = output.read_text().splitlines()
    assert lines[:2] == [f"{revisions[0]} set wt/1 one", f"{revisions[1]} set wt/2 [2]"]
    assert lines[2].endswith(" delete wt/1") and len(lines) == 3


def test_members_shows_three_voters_up_and_one_leader(cluster: LocalCluster) -> None:
    members = json.loads(kv(cluster, "members", "--json").stdout)
    assert sorted(m["node_id"] for m in members) == ["n1", "n2", "n3"]
    assert {m["role"] for m in members} == {"voter"}
    assert sum(m["is_leader"] for m in members) == 1
    table = kv(cluster, "members").stdout.splitlines()
    assert table[0].split() == ["ID", "ROLE", "STATE", "APPLIED", "LEADER"]
    assert sum(line.endswith("*") for line in table) == 1


def test_status_of_a_chosen_node(cluster: LocalCluster) -> None:
    status = json.loads(kv(cluster, "status", "--node", "n2", "--json").stdout)
    assert status["node_id"] == "n2"
    assert status["voters"] == ["n1", "n2", "n3"]
    assert "node_id: n2" in kv(cluster, "status", "--node", "n2").stdout.splitlines()


def test_every_node_local_copy_gets_a_write(cluster: LocalCluster) -> None:
    assert kv(cluster, "set", "local/k", "everywhere").exit_code == 0

    def has_it(node_id: str) -> bool:
        read = kv(cluster, "get", "local/k", "--node", node_id, "--consistency", "local")
        return read.stdout == "everywhere\n"

    for node_id in cluster.nodes:
        wait_until(partial(has_it, node_id), 10.0, f"the write on {node_id}")


def test_promoting_a_stranger_is_refused_in_one_line(cluster: LocalCluster) -> None:
    result = kv(cluster, "members", "promote", "nobody")
    assert result.exit_code == 2
    assert result.stderr.startswith("paxos-kv: error: ")
    assert len(result.stderr.splitlines()) == 1


# --- exit codes of the real entry point --------------------------------------------------------


def test_missing_key_exits_1(cluster: LocalCluster) -> None:
    done = run_cli("get", "exit/missing", *cluster.address.args())
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "paxos-kv: key 'exit/missing' not found\n",
    )


def test_bad_flag_exits_2(cluster: LocalCluster) -> None:
    done = run_cli("get", "k", "--no-such-flag", *cluster.address.args())
    assert done.returncode == 2
    assert done.stderr == (
        "paxos-kv: usage error: No such option '--no-such-flag' (see 'paxos-kv get --help')\n"
    )


def test_an_unreachable_cluster_exits_3(cluster: LocalCluster) -> None:
    done = run_cli("get", "k", "--group", cluster.address.group, "--cluster", "nobody-uses-this",
                   "--timeout", "1")  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.startswith("paxos-kv: error: no member of cluster 'nobody-uses-this'")
    assert len(done.stderr.splitlines()) == 1


def test_a_wrong_secret_exits_3_and_says_why(cluster: LocalCluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret-of-this-cluster-at-all")
    args = ["--group", cluster.address.group, "--cluster", cluster.address.cluster]
    done = run_cli("get", "k", *args, "--secret-file", str(wrong), "--timeout", "1")
    assert done.returncode == 3
    # Either the client's own WrongSecret or the transport's warning kept for the message.
    assert "authenticat" in done.stderr and "secret" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_an_oversized_value_exits_2_with_the_limit(cluster: LocalCluster) -> None:
    done = run_cli("set", "big", "x" * 60_000, *cluster.address.args())
    assert done.returncode == 2
    assert done.stderr.startswith("paxos-kv: error: request of ")
    assert "over the limit of" in done.stderr and len(done.stderr.splitlines()) == 1


def test_sigint_ends_a_watch_with_exit_0(cluster: LocalCluster, tmp_path: Path) -> None:
    output = tmp_path / "watch.out"
    with output.open("w") as sink:
        watch = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", "watch", "sig/", "--from-revision", "1",
             *cluster.address.args()],
            stdout=sink, stderr=subprocess.STDOUT, env=clean_environment(),
        )  # fmt: skip
        try:
            kv(cluster, "set", "sig/k", "v")
            wait_until(lambda: "set sig/k v" in output.read_text(), 15.0, "watching")
            watch.send_signal(signal.SIGINT)
            assert watch.wait(10) == 0
        finally:
            stop_process(watch)
    assert "Traceback" not in output.read_text()
