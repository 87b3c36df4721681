"""``paxos-kv local-cluster``: N real ``paxos-kv node`` processes on loopback, for trying it out.

:class:`LocalCluster` is also what ``make demo`` and the CLI's end-to-end tests use, so the
three share one way to start, kill, restart and stop nodes. Each cluster gets a name and a
multicast group of its own (``local-<hex>`` on a random 239.255.x.y:port), so two of them on one
machine, or two test runs in parallel, never hear each other.

The nodes are child processes in a process group of their own: a Ctrl-C at the terminal
reaches only this process, which stops them in order (SIGTERM, a bounded wait, then SIGKILL).
On Linux each child also asks the kernel for SIGTERM if its parent dies, so even a
``kill -9`` of this process leaves no orphan holding a data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self

from paxoskv.cli.cluster_options import ClientFactory, remote_client
from paxoskv.cli.errors import PROGRAM, NodeExited
from paxoskv.config import Config
from paxoskv.errors import ConfigurationError, NoQuorum, PaxosKVError
from paxoskv.runtime.identity import load_role, recorded_cluster
from paxoskv.runtime.membership import Member

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.1
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """What a client needs to find a local cluster: its name and multicast group."""

    cluster: str
    group: str
    interface: str = LOOPBACK
    secret_file: Path | None = None

    @classmethod
    def fresh(cls, secret_file: Path | None = None) -> ClusterAddress:
        """A name and group nobody else on this machine is using (random, not seeded: two
        runs must differ)."""
        a, b = (secrets.randbelow(254) + 1 for _ in range(2))
        port = 20_000 + secrets.randbelow(40_000)
        return cls(
            f"local-{secrets.token_hex(4)}", f"239.255.{a}.{b}:{port}", LOOPBACK, secret_file
        )

    def args(self) -> list[str]:
        """The flags that point a ``paxos-kv`` command at this cluster."""
        found = ["--group", self.group, "--cluster", self.cluster]
        if self.interface != LOOPBACK:
            found += ["--interface", self.interface]
        if self.secret_file is not None:
            found += ["--secret-file", str(self.secret_file)]
        return found

    def environment(self) -> dict[str, str]:
        """The same as ``PAXOS_KV_*`` variables, for a shell that runs many commands."""
        found = {"PAXOS_KV_GROUP": self.group, "PAXOS_KV_CLUSTER": self.cluster}
        if self.interface != LOOPBACK:
            found["PAXOS_KV_INTERFACE"] = self.interface
        if self.secret_file is not None:
            found["PAXOS_KV_SECRET_FILE"] = str(self.secret_file)
        return found

    def client_config(self, timeout_s: float = 5.0) -> Config:
        return Config(
            cluster=self.cluster,
            group=self.group,
            interface=self.interface,
            secret_file=self.secret_file,
            durability="memory",
            request_timeout_s=timeout_s,
        )


@dataclass(slots=True)
class LocalNode:
    """One node of a local cluster and, while it runs, its process."""

    node_id: str
    data_dir: Path
    log_path: Path
    learner: bool  # its role now: one started as a learner may have been promoted since
    process: subprocess.Popen[bytes] | None = None
    joined: bool = False  # started as a learner (it joined the cluster, never bootstrapped it)
    leaving: bool = False  # removed, and voting on until it may stop: not waited for
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class LocalCluster:
    """``voters`` + ``learners`` nodes on loopback under ``base_dir`` (a data dir each)."""

    def __init__(
        self,
        base_dir: Path,
        *,
        voters: int = 3,
        learners: int = 0,
        address: ClusterAddress | None = None,
        durability: str = "durable",
        log_level: str = "info",
        connect: ClientFactory = remote_client,
    ) -> None:
        if voters < 1 or learners < 0:
            raise ConfigurationError(
                "a local cluster needs at least one voter and no negative learners"
            )
        self.base_dir = Path(base_dir)
        self.voters = voters
        self.address = address or ClusterAddress.fresh()
        # Data dirs of an earlier run belong to its cluster: keep its name, and each node's
        # role. A memory run keeps nothing (its nodes have no data dir): every run is new.
        remembers = durability != "memory"
        if address is None and remembers:
            names = self._node_names(voters, learners)
            kept = {recorded_cluster(self.base_dir / name) for name in names} - {None}
            if len(kept) == 1:
                self.address = replace(self.address, cluster=str(kept.pop()))
        self.durability = durability
        self.log_level = log_level
        self._connect = connect
        logs = self.base_dir / "logs"
        self.nodes: dict[str, LocalNode] = {}
        self.removed: list[str] = []  # kept as removed by an earlier run: not started
        for name, learner in self._node_names(voters, learners).items():
            data_dir = self.base_dir / name
            role = _kept_role(data_dir) if remembers else None
            if role == "removed":
                self.removed.append(name)
                continue  # (`members remove`): its data dir never rejoins, so it is not started
            node = LocalNode(name, data_dir, logs / f"{name}.log", learner, joined=learner)
            if role in ("voter", "leaving"):
                node.learner = False  # a learner promoted in an earlier run (members promote)
            # Removed while the last run stopped it: started, since its vote may be what the
            # others wait for, but not waited for itself (it stops once they have it).
            node.leaving = role == "leaving"
            self.nodes[name] = node

    @staticmethod
    def _node_names(voters: int, learners: int) -> dict[str, bool]:
        """Each node's name, and whether it is a learner."""
        names = {f"n{i}": False for i in range(1, voters + 1)}
        return names | {f"l{i}": True for i in range(1, learners + 1)}

    # --- processes ---------------------------------------------------------------------------

    def node_args(self, node_id: str) -> list[str]:
        """The ``paxos-kv`` arguments that run ``node_id`` (shown to people, run as is)."""
        node = self.nodes[node_id]
        args = ["node"]
        if self.durability != "memory":  # (which keeps nothing on disk, so takes no data dir)
            args += ["--data-dir", str(node.data_dir)]
        args += ["--node-id", node_id, *self.address.args()]
        if self.durability != "durable":
            args += ["--durability", self.durability]
        if self.log_level != "info":
            args += ["--log-level", self.log_level]
        if node.learner:
            return [*args, "--learner", "--join"]
        if node.joined:
            return [*args, "--join"]
        return [*args, "--bootstrap-expect", str(self.voters)]

    def start(self) -> None:
        """Start every node that is not running."""
        for node_id, node in self.nodes.items():
            if not node.running:
                self.start_node(node_id)

    def start_node(self, node_id: str) -> LocalNode:
        """Start (or restart, from its data dir) one node; its output goes to its log file."""
        node = self.nodes[node_id]
        if node.running:
            raise PaxosKVError(f"node {node_id} is already running (pid {node.pid})")
        self._close_log(node)
        node.log_path.parent.mkdir(parents=True, exist_ok=True)
        node._log = node.log_path.open("ab")
        environment = dict(os.environ)
        if self.durability == "memory":  # (--data-dir, given otherwise, overrides it)
            environment.pop("PAXOS_KV_DATA_DIR", None)
        node.process = subprocess.Popen(
            [sys.executable, "-m", "paxoskv.cli", *self.node_args(node_id)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=node._log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        return node

    def kill(self, node_id: str, signal_number: int = signal.SIGKILL) -> int | None:
        """Send ``signal_number`` to one node and wait (bounded) for it to exit."""
        node = self.nodes[node_id]
        if node.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            node.process.send_signal(signal_number)
        try:
            return node.process.wait(STOP_TIMEOUT_S)
        finally:
            self._close_log(node)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every node, wait up to ``timeout_s``, then SIGKILL whatever is left."""
        running = [node for node in self.nodes.values() if node.running]
        for node in running:
            assert node.process is not None
            with contextlib.suppress(ProcessLookupError):
                node.process.terminate()
        deadline = time.monotonic() + timeout_s
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(KILL_TIMEOUT_S)
        for node in self.nodes.values():
            self._close_log(node)

    def exited(self) -> list[LocalNode]:
        """Nodes whose process has ended (crashed, or killed on purpose)."""
        return [n for n in self.nodes.values() if n.process is not None and not n.running]

    def _close_log(self, node: LocalNode) -> None:
        if node._log is not None:
            node._log.close()
            node._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- asking the cluster ------------------------------------------------------------------

    def members(self, timeout_s: float = 2.0, node_id: str | None = None) -> list[Member]:
        """The member list as ``node_id`` (default: the leader, or any member) sees it."""

        async def ask() -> list[Member]:
            async with self._connect(self.address.client_config(timeout_s), node_id) as client:
                return await client.members()

        return asyncio.run(ask())

    def leader(self, timeout_s: float = 2.0) -> str | None:
        return next((m.node_id for m in self.members(timeout_s) if m.is_leader), None)

    def wait_ready(
        self,
        timeout_s: float = 30.0,
        *,
        up: Sequence[str] | None = None,
        cancelled: threading.Event | None = None,
    ) -> list[Member]:
        """Until there is a leader and every node in ``up`` (default: all) is up in its role.

        Raises NoQuorum after ``timeout_s``, or NodeExited at once if a node's process exited.
        """
        wanted = self.awaited() if up is None else list(up)
        deadline = time.monotonic() + timeout_s
        seen: list[Member] = []
        while time.monotonic() < deadline and not (cancelled and cancelled.is_set()):
            dead = [n.node_id for n in self.exited() if n.node_id in wanted]
            if dead:
                raise self._exited(dead[0])
            with contextlib.suppress(NoQuorum, TimeoutError):
                seen = self.members(timeout_s=min(2.0, max(0.1, deadline - time.monotonic())))
                if self._is_ready(seen, wanted):
                    return seen
            time.sleep(POLL_INTERVAL_S)  # a poll interval, not a settle delay: we re-check
        raise NoQuorum(
            f"local cluster {self.address.cluster} not ready within {timeout_s:.0f}s "
            f"(last view: {_summary(seen) or 'no answer'}); see the logs in "
            f"{self.base_dir / 'logs'}"
        )

    def awaited(self) -> list[str]:
        """The nodes :meth:`wait_ready` waits for by default: all but those leaving."""
        return [node_id for node_id, node in self.nodes.items() if not node.leaving]

    def _exited(self, node_id: str) -> NodeExited:
        """Why ``node_id`` exited, from its exit code and the error line it logged last."""
        node = self.nodes[node_id]
        code = node.process.returncode if node.process is not None else None
        try:
            logged = node.log_path.read_text(errors="replace").splitlines()
        except OSError:
            logged = []
        errors = [line for line in logged if line.startswith(f"{PROGRAM}: ")]
        reason = errors[-1].removeprefix(f"{PROGRAM}: ").removeprefix("error: ") if errors else ""
        return NodeExited(node_id, code, reason, str(node.log_path))

    def _is_ready(self, members: list[Member], wanted: list[str]) -> bool:
        by_id = {member.node_id: member for member in members}
        for node_id in wanted:
            member = by_id.get(node_id)
            role = "learner" if self.nodes[node_id].learner else "voter"
            if member is None or member.state != "up" or member.role != role:
                return False
        return any(member.is_leader for member in members)


def _kept_role(data_dir: Path) -> str | None:
    """The role an earlier run left in ``data_dir``; None when there is none, or when it is
    damaged (the node's own start then says so)."""
    try:
        return load_role(data_dir)
    except ConfigurationError:
        return None


def _summary(members: list[Member]) -> str:
    return ", ".join(
        f"{m.node_id} {m.role} {m.state}{' leader' if m.is_leader else ''}" for m in members
    )


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: no imports after fork

    def arrange() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def shell_line(args: Sequence[str]) -> str:
    """``paxos-kv ...`` as a person would type it."""
    return shlex.join(["paxos-kv", *args])


@contextlib.contextmanager
def base_directory(data_dir: Path | None) -> Iterator[Path]:
    """``data_dir`` as given (kept), or a temporary one removed afterwards."""
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        yield data_dir
        return
    made = Path(tempfile.mkdtemp(prefix="paxos-kv-local-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while inside the block (handlers restored after)."""
    requested = threading.Event()

    def handle(number: int, frame: FrameType | None) -> None:
        requested.set()

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
