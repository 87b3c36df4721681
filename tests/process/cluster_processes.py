"""Clusters of real ``paxos-kv node`` processes on loopback, started and always killed by tests."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from paxoskv import Config

FAST_FLAGS = {
    "PAXOS_KV_HEARTBEAT_INTERVAL_S": "0.02",
    "PAXOS_KV_ELECTION_TIMEOUT_S": "0.25",
    "PAXOS_KV_HELLO_INTERVAL_S": "0.1",
    "PAXOS_KV_SUSPECT_AFTER_S": "0.5",
    "PAXOS_KV_DOWN_AFTER_S": "1.5",
}


class ProcessCluster:
    """N node processes sharing a fresh cluster name and multicast group on 127.0.0.1."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.size = size
        self.cluster = f"proc-{secrets.token_hex(4)}"
        port = random.randint(20_000, 60_000)
        self.group = f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}:{port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def flags(self) -> list[str]:
        return ["--group", self.group, "--cluster", self.cluster, "--interface", "127.0.0.1"]

    def client_config(self, **overrides: object) -> Config:
        settings: dict[str, object] = {
            "cluster": self.cluster,
            "group": self.group,
            "interface": "127.0.0.1",
            "durability": "memory",
            "request_timeout_s": 5.0,
        }
        settings.update(overrides)
        return Config(**settings)  # type: ignore[arg-type]

    def start(self, node_id: str, *extra: str) -> None:
        data_dir = self.root / node_id
        log = self.root / f"{node_id}.log"
        self.logs[node_id] = log
        command = [
            sys.executable,
            "-m",
            "paxoskv.cli",
            "node",
            "--data-dir",
            str(data_dir),
            "--node-id",
            node_id,
            "--bootstrap-expect",
            str(self.size),
            *self.flags(),
            *extra,
        ]
        env = {**os.environ, **FAST_FLAGS}
        with log.open("ab") as handle:
            self.processes[node_id] = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=env
            )

    def start_all(self) -> None:
        for index in range(1, self.size + 1):
            self.start(f"p{index}")

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(node_id)
        process.send_signal(sig)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for node_id in list(self.processes):
            process = self.processes.pop(node_id)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def log_tail(self) -> str:
        parts = []
        for node_id, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {node_id} ---\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(parts)


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)
