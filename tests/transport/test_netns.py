"""Real hosts: three network namespaces on a bridge, a node in each, then a cut link.

The bridge lives in a namespace of its own and every veth pair is created inside the
namespaces (``ip -n``), so the machine's own interfaces are never touched; the addresses are
a random private /24 that exists only inside them. Each node is a child process started with
``ip netns exec`` (tests/transport/netns_node.py), driven by JSON lines and bounded by
timeouts. Every namespace -- and with it every link -- is removed in ``finally``, even when
the test fails. Needs root and ``ip`` (iproute2); skips with that reason elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import SECRET

HOSTS = 3
NODE_SCRIPT = Path(__file__).with_name("netns_node.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 10.0


def _missing() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs `ip` from iproute2 (apt-get install -y iproute2)"
    return None


pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=COMMAND_TIMEOUT_S, capture_output=True)


class Lab:
    """Three hosts on one bridge; names and subnet random so parallel runs never meet."""

    def __init__(self) -> None:
        chooser = random.SystemRandom()
        tag = f"{chooser.randrange(16**6):06x}"
        self.bridge_ns = f"pkvbr-{tag}"
        self.hosts = [f"pkvh{i}-{tag}" for i in range(HOSTS)]
        subnet = f"10.{chooser.randrange(64, 250)}.{chooser.randrange(256)}"
        self.addresses = [f"{subnet}.{i + 1}" for i in range(HOSTS)]

    def build(self) -> None:
        try:
            ip("netns", "add", self.bridge_ns)
        except subprocess.CalledProcessError as refused:  # root without CAP_SYS_ADMIN, say
            reason = refused.stderr.decode().strip()
            pytest.skip(f"cannot create network namespaces here: {reason}")
        for namespace in self.hosts:
            ip("netns", "add", namespace)
        br = ("-n", self.bridge_ns)
        ip(*br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
        ip(*br, "link", "set", "br0", "up")
        for index, host in enumerate(self.hosts):
            port = f"port{index}"
            ip(*br, "link", "add", port, "type", "veth", "peer", "name", "pkv0", "netns", host)
            ip(*br, "link", "set", port, "master", "br0", "up")
            address = f"{self.addresses[index]}/24"
            ip("-n", host, "addr", "add", address, "brd", "+", "dev", "pkv0")
            ip("-n", host, "link", "set", "pkv0", "up")
            ip("-n", host, "link", "set", "lo", "up")

    def cut(self, index: int) -> None:
        ip("-n", self.bridge_ns, "link", "set", f"port{index}", "down")

    def heal(self, index: int) -> None:
        ip("-n", self.bridge_ns, "link", "set", f"port{index}", "up")

    def remove(self) -> None:
        for namespace in [*self.hosts, self.bridge_ns]:
            subprocess.run(
                ["ip", "netns", "del", namespace], timeout=COMMAND_TIMEOUT_S, check=False
            )

    def leftovers(self) -> list[str]:
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        ).stdout
        return [ns for ns in [self.bridge_ns, *self.hosts] if ns in listed]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    built = Lab()
    try:
        built.build()
        yield built
    finally:
        built.remove()
        assert built.leftovers() == [], "namespaces left behind"


class Node:
    """A child process in one namespace, answering one JSON line per command."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), COMMAND_TIMEOUT_S)
        if not raw:
            assert self.process.stderr is not None
            raise AssertionError(f"node died: {(await self.process.stderr.read()).decode()}")
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def ask(self, op: str, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self.line()

    async def received(self, count: int, timeout_s: float) -> list[list[str]]:
        answer = await self.ask("collect", count=count, timeout_s=timeout_s)
        got: list[list[str]] = answer["received"]
        return got

    async def stop(self) -> str:
        """Ask it to quit, kill it if it does not, and return what it logged."""
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.write(b'{"op": "quit"}\n')
            self.process.stdin.close()
        try:
            _, stderr = await asyncio.wait_for(self.process.communicate(), COMMAND_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()
            _, stderr = await self.process.communicate()
        return stderr.decode()


@asynccontextmanager
async def cluster(lab: Lab, settings: list[dict[str, Any]]) -> AsyncIterator[list[Node]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    async with AsyncExitStack() as stack:
        nodes = []
        for index, host in enumerate(lab.hosts):
            process = await asyncio.create_subprocess_exec(
                *("ip", "netns", "exec", host, sys.executable, str(NODE_SCRIPT)),
                *(f"n{index}", json.dumps(settings[index]), "--lifetime-s", "40"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            node = Node(process)
            stack.push_async_callback(node.stop)
            assert "ready" in await node.line()
            nodes.append(node)
        yield nodes


def node_settings(
    lab: Lab, scope: str, secret: bytes | None, encrypt: bool
) -> list[dict[str, Any]]:
    chooser = random.SystemRandom()
    group = f"239.{chooser.randrange(1, 255)}.{chooser.randrange(256)}.{chooser.randrange(1, 255)}"
    port = chooser.randrange(20_000, 60_000)
    common: dict[str, Any] = {"secret": secret.decode() if secret else None, "encrypt": encrypt}
    udp = {"scope": scope, "interface": "pkv0", "group": group, "group_port": port}
    if scope != "unicast":
        return [{**common, "udp": udp}] * HOSTS
    seed = {**common, "udp": {**udp, "port": port}}
    joiner = {**common, "udp": udp, "peers": [f"{lab.addresses[0]}:{port}"]}
    return [seed] + [joiner] * (HOSTS - 1)


async def wait_for_full_tables(nodes: list[Node]) -> None:
    for _ in range(200):
        tables = [(await node.ask("peers"))["peers"] for node in nodes]
        if all(len(table) == HOSTS - 1 for table in tables):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"peer tables incomplete: {tables}")


@pytest.mark.parametrize(
    ("scope", "secret", "encrypt"),
    [("multicast", SECRET, False), ("broadcast", SECRET, True), ("unicast", None, False)],
)
async def test_delivery_across_hosts_and_a_cut_link(
    lab: Lab, scope: str, secret: bytes | None, encrypt: bool
) -> None:
    stderr = ""
    async with cluster(lab, node_settings(lab, scope, secret, encrypt)) as (n0, n1, n2):
        if scope == "unicast":
            await wait_for_full_tables([n0, n1, n2])

        # Everyone hears everyone, across the bridge.
        for index, node in enumerate((n0, n1, n2)):
            await node.ask("broadcast", payload=f"hello from n{index}")
        for index, node in enumerate((n0, n1, n2)):
            heard = {sender for sender, _ in await node.received(HOSTS - 1, 5.0)}
            assert heard == {f"n{i}" for i in range(HOSTS)} - {f"n{index}"}

        # Point to point: n0 learned n1's address from its frames and sends there only.
        # (Sending to n2 too resolves its MAC now: with the link down, the kernel would hold
        # an unresolved datagram in its ARP queue and deliver it after the heal.)
        assert (await n0.ask("peers"))["peers"]["n1"][0] == lab.addresses[1]
        await n0.ask("send", to="n1", payload="direct")
        assert await n1.received(1, 5.0) == [["n0", "direct"]]
        await n0.ask("send", to="n2", payload="direct")
        assert await n2.received(1, 5.0) == [["n0", "direct"]]
        await n0.ask("broadcast", payload="marker")
        assert await n1.received(1, 5.0) == [["n0", "marker"]]
        assert await n2.received(1, 5.0) == [["n0", "marker"]]  # and nothing before it
        assert "dropped_other_destination" not in (await n2.ask("stats"))["stats"]

        # Cut host 2's link: it is unreachable, and it reaches no one.
        lab.cut(2)
        try:
            await n0.ask("broadcast", payload="after the cut")
            await n0.ask("send", to="n2", payload="are you there")
            assert await n1.received(1, 5.0) == [["n0", "after the cut"]]
            assert await n2.received(1, 1.0) == []
            await n2.ask("broadcast", payload="from the island")
            assert await n0.received(1, 1.0) == []
        finally:
            lab.heal(2)
        # The link comes back when the kernel has seen the carrier again (linkwatch may take
        # up to a second), so a datagram sent at once can still be lost: retry, as Paxos does.
        for _ in range(20):
            await n0.ask("send", to="n2", payload="welcome back")
            if got := await n2.received(1, 0.5):
                break
        assert got == [["n0", "welcome back"]]
        stderr = await n0.stop()
    if secret is None:
        assert "WITHOUT a cluster secret" in stderr  # not loopback: the loud warning, once
        assert stderr.count("WITHOUT a cluster secret") == 1
    else:
        assert "WITHOUT" not in stderr
