"""``make demo``: a three-node paxos-kv cluster on loopback, driven through the command line.

It starts three ``paxos-kv node`` processes in a temporary directory, writes and reads keys,
follows a prefix with ``paxos-kv watch``, kills the leader with SIGKILL, shows that writes go
on, restarts the killed node from its data dir and shows that it caught up, then stops
everything. Each command is printed before its output, exactly as you could type it (the
cluster's group and name are exported once, as ``PAXOS_KV_*`` variables).

Every wait is bounded, and the nodes are stopped whatever happens (they also die with this
process, so an interrupted demo leaves nothing running).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from paxoskv.cli.local_cluster import LocalCluster, shell_line

COMMAND_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
CATCH_UP_TIMEOUT_S = 20.0
WATCH_EVENTS = 3  # user/3 set, user/1 deleted, user/4 set


class DemoFailed(Exception):
    """A step did not do what the demo shows; the message says which and why."""


class Demo:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PAXOS_KV_")},
            **cluster.address.environment(),
        }

    def say(self, text: str) -> None:
        print(f"\n# {text}", flush=True)

    def show(self, args: Sequence[str]) -> None:
        print(f"$ {shell_line(args)}", flush=True)

    def run(self, *args: str, expect_code: int = 0, quiet: bool = False) -> str:
        """Run ``paxos-kv ARGS``, print it and its output, and return its stdout."""
        if not quiet:
            self.show(args)
        done = subprocess.run(
            [sys.executable, "-m", "paxoskv.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        if not quiet:
            print(done.stdout + done.stderr, end="", flush=True)
        if done.returncode != expect_code:
            raise DemoFailed(
                f"`{shell_line(args)}` exited {done.returncode}, not {expect_code}: "
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        return done.stdout

    def start_watch(self, *args: str, output: IO[str]) -> subprocess.Popen[str]:
        self.show(args)
        print("  (in the background; its output is shown further down)", flush=True)
        return subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", *args],
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="paxos-kv-demo-") as base:
        cluster = LocalCluster(Path(base), voters=3)
        try:
            with cluster:
                tour(Demo(cluster), Path(base))
        except (DemoFailed, subprocess.TimeoutExpired, OSError) as error:
            print(f"\ndemo failed: {error}", file=sys.stderr)
            for node in cluster.nodes.values():
                print(f"  log of {node.node_id}: {node.log_path}", file=sys.stderr)
                print(_tail(node.log_path), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted; every node has been stopped", file=sys.stderr)
            return 130
    print("\n# Every node is stopped and the temporary data is gone. That was paxos-kv.")
    return 0


def tour(demo: Demo, base: Path) -> None:
    cluster = demo.cluster
    demo.say("Three nodes on loopback, each with its own data dir, forming one cluster:")
    for node_id in cluster.nodes:
        demo.show(cluster.node_args(node_id))
        cluster.start_node(node_id)
    members = cluster.wait_ready(READY_TIMEOUT_S)
    leader = next(member.node_id for member in members if member.is_leader)
    demo.say("Clients need only the cluster's group and name; export them once:")
    exports = " ".join(f"{k}={v}" for k, v in cluster.address.environment().items())
    print(f"$ export {exports}")

    demo.say("Write and read. `set` prints the revision the write got.")
    demo.run("set", "greeting", "hello")
    demo.run("get", "greeting")
    demo.run("set", "user/1", '{"name": "Ada", "langs": ["en"]}', "--json-value")
    demo.run("get", "user/1", "--json")
    revision = int(demo.run("set", "user/2", "Grace").strip())
    demo.run("keys", "user/")
    demo.run("get", "nobody", expect_code=1)
    print("  (exit code 1: not found)")

    demo.say("Follow every change under user/ from the next revision on:")
    with tempfile.TemporaryFile("w+") as watch_output:
        watch = demo.start_watch(
            "watch", "user/", "--from-revision", str(revision + 1), "--count",
            str(WATCH_EVENTS), output=watch_output,
        )  # fmt: skip
        try:
            writes_survive_the_leader(demo, leader)
            restarted_node_catches_up(demo, leader)
            demo.say("The watch saw every change, across the leader's death:")
            try:
                code = watch.wait(COMMAND_TIMEOUT_S)
            finally:
                watch_output.seek(0)
                print(watch_output.read(), end="")
            if code != 0:
                raise DemoFailed(f"the watch exited {code}")
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait(5)
    demo.say(f"Stopping every node (SIGTERM) and removing {base}")


def writes_survive_the_leader(demo: Demo, leader: str) -> None:
    demo.say("Who leads? The leader is marked with '*':")
    demo.run("members")
    node = demo.cluster.nodes[leader]
    demo.say(f"Kill the leader, {leader}, without warning:")
    print(f"$ kill -9 {node.pid}")
    demo.cluster.kill(leader, signal.SIGKILL)
    demo.say("Writes go on: the client retries until the other two elect a new leader.")
    demo.run("set", "user/3", "Barbara", "--timeout", "15")
    demo.run("delete", "user/1")
    demo.run("set", "user/4", "Edsger")
    demo.run("members")


def restarted_node_catches_up(demo: Demo, node_id: str) -> None:
    cluster = demo.cluster
    demo.say(f"Restart {node_id} from its data dir; it rejoins as itself and catches up:")
    demo.show(cluster.node_args(node_id))
    cluster.start_node(node_id)
    cluster.wait_ready(READY_TIMEOUT_S)
    read = ("get", "user/4", "--node", node_id, "--consistency", "local")
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    # Up is not the same as caught up: ask the node's own copy until it has the write.
    while True:
        try:
            if demo.run(*read, "--timeout", "2", quiet=True).strip() == "Edsger":
                break
        except DemoFailed:
            pass
        if time.monotonic() > deadline:
            raise DemoFailed(f"{node_id} did not catch up within {CATCH_UP_TIMEOUT_S:.0f}s")
        time.sleep(0.2)  # a poll interval: the loop re-checks the condition
    demo.say(f"{node_id}'s own copy (--consistency local reads the contacted node only):")
    demo.run(*read)
    demo.run("members")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text().splitlines()[-lines:])
    except OSError:
        return "    (no log)"


if __name__ == "__main__":
    sys.exit(main())
