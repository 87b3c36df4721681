"""Three node processes of one system on 127.0.0.1, driven through stdin and stdout.

The parent never shares memory or an event loop with a node: each node is its own process
(as a real deployment's are), started in a session of its own so that killing it also ends
anything it forked (PySyncObj forks to write its dumps). A node that dies, or does not
answer within the bound a phase gives it, raises :class:`WorkerFailed` with the tail of its
log, and :meth:`Cluster.close` kills whatever is left, so no run leaves processes behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from benchmarks.compare_protocol import parse_reply

REPO_ROOT = Path(__file__).resolve().parents[1]
NODES = 3
START_TIMEOUT_S = 60.0


class WorkerFailed(RuntimeError):
    """A node process exited or did not answer in time; the message holds its log's tail."""


@dataclass(frozen=True, slots=True)
class Setup:
    """One system in one configuration: one column of the tables."""

    name: str
    system: str  # "paxoskv" or "pysyncobj"
    durability: str = "durable"  # paxos-kv only
    batching: bool = True  # PySyncObj only: appendEntriesUseBatch
    persist: bool = False  # PySyncObj only: journalFile and fullDumpFile


SETUPS = {
    setup.name: setup
    for setup in (
        Setup("pysyncobj", "pysyncobj"),
        Setup("pysyncobj-nobatch", "pysyncobj", batching=False),
        Setup("pysyncobj-files", "pysyncobj", persist=True),
        Setup("paxoskv-durable", "paxoskv", durability="durable"),
        Setup("paxoskv-os", "paxoskv", durability="os"),
    )
}


class NodeProcess:
    """One node: its process, a thread turning its stdout into a queue of replies, its log."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.spawned_at = time.time()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO_ROOT,
                env=_child_environment(),
                start_new_session=True,
            )
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            parsed = parse_reply(line)
            if parsed is not None:
                self.replies.put(parsed)
        self.replies.put(None)  # end of output: the process has gone

    def send(self, op: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise WorkerFailed(self.failure(f"had exited before {op}")) from None

    def receive(self, timeout_s: float, waiting_for: str) -> dict[str, Any]:
        try:
            answer = self.replies.get(timeout=timeout_s)
        except queue.Empty:
            raise WorkerFailed(
                self.failure(f"gave no answer to {waiting_for} within {timeout_s:.0f}s")
            ) from None
        if answer is None:
            raise WorkerFailed(self.failure(f"exited during {waiting_for}"))
        return answer

    def failure(self, what: str) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-8:]
        except OSError:
            tail = []
        return f"node process {self.process.pid} {what}; its log ends:\n  " + "\n  ".join(tail)

    def kill(self) -> None:
        """SIGKILL to the node and anything it forked (its own session, so its own group)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float) -> None:
        """Ask it to quit; kill it if it has not within ``timeout_s``."""
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=timeout_s)
            except (WorkerFailed, OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class Cluster:
    """Three nodes of one setup, each with a data dir of its own under ``root``."""

    def __init__(self, setup: Setup, root: Path) -> None:
        self.setup = setup
        self.root = root
        self.nodes: dict[int, NodeProcess] = {}
        self._cluster_name = f"compare-{secrets.token_hex(4)}"
        self._group = _random_group()
        self._ports = _free_tcp_ports(NODES) if setup.system == "pysyncobj" else []

    def __enter__(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for index in range(1, NODES + 1):
            self.spawn(index)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop(timeout_s=5.0)

    def spawn(self, index: int, recover: tuple[str, str] | None = None) -> NodeProcess:
        node = NodeProcess(self.argv(index, recover), self.root / f"node{index}.log")
        self.nodes[index] = node
        return node

    def argv(self, index: int, recover: tuple[str, str] | None) -> list[str]:
        data_dir = self.root / f"node{index}"
        if self.setup.system == "paxoskv":
            argv = [
                *("-m", "benchmarks.compare_paxoskv", "--index", str(index)),
                *("--data-dir", str(data_dir), "--cluster", self._cluster_name),
                *("--group", self._group, "--durability", self.setup.durability),
            ]
        else:
            addresses = [f"127.0.0.1:{port}" for port in self._ports]
            partners = [a for i, a in enumerate(addresses, start=1) if i != index]
            argv = [
                *("-m", "benchmarks.compare_pysyncobj", "--index", str(index)),
                *("--self", addresses[index - 1], "--partners", ",".join(partners)),
                *("--data-dir", str(data_dir)),
                *(() if self.setup.batching else ("--no-batching",)),
                *(("--persist",) if self.setup.persist else ()),
            ]
        if recover is not None:
            argv += ["--recover-key", recover[0], "--recover-value", recover[1]]
        return [sys.executable, *argv]

    def ask(self, index: int, op: str, timeout_s: float, **fields: Any) -> dict[str, Any]:
        self.nodes[index].send(op, **fields)
        return self.nodes[index].receive(timeout_s, op)

    def ask_all(self, op: str, timeout_s: float, **fields: Any) -> list[dict[str, Any]]:
        """Send to every node first, then collect: the phase runs on all three at once."""
        return self.ask_each(op, timeout_s, [fields] * len(self.nodes))

    def ask_each(
        self, op: str, timeout_s: float, fields_per_node: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """As :meth:`ask_all`, with fields of its own for each node (in index order)."""
        nodes = [self.nodes[index] for index in sorted(self.nodes)]
        for node, fields in zip(nodes, fields_per_node, strict=True):
            node.send(op, **fields)
        return [node.receive(timeout_s, op) for node in nodes]

    def wait_leader(self, timeout_s: float = START_TIMEOUT_S) -> int:
        """The index of the node that says it leads, once exactly one does."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            remaining = max(1.0, deadline - time.monotonic())
            leaders = [
                index for index in self.nodes if self.ask(index, "status", remaining).get("leader")
            ]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.05)  # an election is under way: ask again shortly
        raise WorkerFailed(f"{self.setup.name}: no single leader within {timeout_s:.0f}s")


def _child_environment() -> dict[str, str]:
    """The parent's environment with the repository importable as ``benchmarks.*``."""
    environment = dict(os.environ)
    existing = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + existing if existing else "")
    return environment


def _random_group() -> str:
    """A multicast group and port of this run's own, so parallel runs never hear each other."""
    octets = secrets.randbelow(254) + 1, secrets.randbelow(254) + 1
    return f"239.255.{octets[0]}.{octets[1]}:{20_000 + secrets.randbelow(40_000)}"


def _free_tcp_ports(count: int) -> list[int]:
    """Ports the kernel just gave out on 127.0.0.1 (all held open together, so distinct)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
