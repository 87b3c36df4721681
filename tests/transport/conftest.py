"""Shared helpers for the transport tests: fresh groups and ports, bounded waits.

Addresses are picked from the operating system (a free port) and from ``SystemRandom`` (a
group in 239.0.0.0/8), never from a seeded generator: they only keep parallel runs apart and
must differ between runs; nothing a test asserts depends on them.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable

import pytest

from paxoskv.transport import TransportSettings, UdpScope, UdpSettings

SECRET = b"test-secret-of-32-bytes-for-hmac"
_system_random = random.SystemRandom()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fresh_group() -> str:
    return f"239.{_system_random.randrange(1, 255)}.{_system_random.randrange(256)}." + str(
        _system_random.randrange(1, 255)
    )


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll ``condition`` until true; fail the test (not hang) when the bound runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.005)


@pytest.fixture
def group_settings() -> Callable[..., TransportSettings]:
    """Settings factory for one test: its own group and port, shared by all its nodes."""
    group, group_port = fresh_group(), free_udp_port()

    def make(scope: UdpScope = UdpScope.MULTICAST, **overrides: object) -> TransportSettings:
        udp = UdpSettings(scope=scope, group=group, group_port=group_port)
        return TransportSettings(udp=udp, **overrides)  # type: ignore[arg-type]

    return make
