"""Shared helpers for the CLI tests: an in-memory cluster for CliRunner, and real clusters.

``FakeCluster`` holds a real :class:`~paxoskv.state.KVStateMachine`, so revisions, versions,
leases, compares and watch history behave exactly as on a node; only the network and Paxos are
missing. Every ``paxos-kv`` invocation "connects" anew, as the real command does, and the
fake records each Config it was given, which is how the settings tests look at precedence.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from paxoskv.cli import CliState, main
from paxoskv.client import Consistency, KVApi
from paxoskv.config import Config
from paxoskv.runtime.membership import Member
from paxoskv.state import ChangeEvent, Configuration, Key, KVStateMachine

VOTERS = ("n1", "n2", "n3")


@dataclass
class FakeCluster:
    """One in-memory "cluster"; ``fail_with`` makes requests raise that error."""

    machine: KVStateMachine = field(
        default_factory=lambda: KVStateMachine(Configuration(voters=frozenset(VOTERS)))
    )
    fail_with: BaseException | None = None
    fail_only: str | None = None  # fail just this call ("watch"); None: every call
    configs: list[Config] = field(default_factory=list)
    targets: list[str | None] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    log_time_ms: int = 1_000
    applied: asyncio.Event | None = None

    def connect(self, config: Config, node_id: str | None) -> KVApi:
        self.configs.append(config)
        self.targets.append(node_id)
        return FakeClient(self, config)

    def submit(self, client_id: str, seq: int, command: bytes) -> bytes:
        self.log_time_ms += 1
        result = self.machine.apply_encoded(command, self.log_time_ms, client_id=client_id, seq=seq)
        if self.applied is not None:
            self.applied.set()
        return result


class FakeClient(KVApi):
    def __init__(self, cluster: FakeCluster, config: Config) -> None:
        super().__init__(config)
        self.cluster = cluster

    def _check(self, call: str, argument: Any = None) -> None:
        self.cluster.calls.append((call, argument))
        only = self.cluster.fail_only
        if self.cluster.fail_with is not None and only in (None, call):
            raise self.cluster.fail_with

    async def start(self) -> None:
        self._check("start")

    async def close(self) -> None:
        pass

    async def _submit(self, client_id: str, seq: int, command: bytes) -> bytes:
        self._check("submit")
        return self.cluster.submit(client_id, seq, command)

    async def _read(self, consistency: Consistency, op: str, argument: Any) -> Any:
        self._check(f"read {op}", consistency)
        machine = self.cluster.machine
        if op == "get":
            return machine.get(argument)
        if argument is None:  # every key: str keys, then bytes, then tuples, as a node lists
            return [*machine.range(""), *machine.range(b""), *machine.range(())]
        return machine.range(argument)

    async def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> AsyncIterator[ChangeEvent]:
        self._check("watch", (prefix, from_revision))
        machine = self.cluster.machine
        after = machine.revision if from_revision is None else from_revision - 1
        self.cluster.applied = applied = asyncio.Event()
        while True:
            for event in machine.events_since(after, prefix):
                yield event
            after = machine.revision
            applied.clear()
            await applied.wait()

    async def members(self) -> list[Member]:
        self._check("members")
        return [
            Member("n1", "voter", "up", self.cluster.machine.revision, False),
            Member("n2", "voter", "up", self.cluster.machine.revision, True),
            Member("n3", "voter", "down", 0, False),
            Member("l1", "learner", "suspect", 1, False),
        ]

    async def status(self) -> dict[str, Any]:
        self._check("status")
        return {
            "node_id": "n2",
            "leader": "n2",
            "revision": self.cluster.machine.revision,
            "voters": list(VOTERS),
            "learners": [],
            "data_dir": None,
            "transport": {"sent_frames": 7},
        }


@pytest.fixture
def fake() -> FakeCluster:
    return FakeCluster()


@dataclass
class Cli:
    """Runs ``paxos-kv`` in-process against a fake cluster, stdout and stderr kept apart."""

    cluster: FakeCluster
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        merged = {**self.env, **(env or {})}
        return runner.invoke(
            main, list(args), obj=CliState(connect=self.cluster.connect), env=merged
        )


@pytest.fixture
def cli(fake: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """A runner whose environment has no PAXOS_KV_* variables of the developer's shell."""
    import os

    for name in [name for name in os.environ if name.startswith("PAXOS_KV_")]:
        monkeypatch.delenv(name)
    yield Cli(fake)


def lines(text: str) -> Sequence[str]:
    return text.splitlines()


# --- real processes --------------------------------------------------------------------------

CLI_TIMEOUT_S = 30.0


def clean_environment() -> dict[str, str]:
    """This process's environment without PAXOS_KV_* settings from a developer's shell."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PAXOS_KV_")}


def run_cli(*args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``paxos-kv ARGS`` as a real process (the entry point, exit codes, stderr as users see)."""
    return subprocess.run(
        [sys.executable, "-m", "paxoskv.cli", *args],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def wait_for_text(path: Path, text: str, timeout_s: float) -> str:
    """Until ``path`` contains ``text`` (polled); its contents, or AssertionError at the bound."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = path.read_text() if path.exists() else ""
        if text in found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in {path} within {timeout_s}s; it holds:\n{found}")
        time.sleep(0.05)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout_s}s")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a killed child not yet reaped is gone)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Teardown for a process a test started: SIGKILL if still running, always reaped."""
    if process.poll() is None:
        process.kill()
    process.wait(10)
