"""Random runtime messages from a non-member: a member drops what it cannot use, and goes on.

Anyone who can reach a member's port can send it runtime messages (without a cluster secret,
nothing tells them apart). A fuzz of 200,000 such messages found a member that stopped on an
``unwatch`` with no fields, and one that took a request with a negative seq and forwarded it
with every request beside it, all refused by the leader (twenty-first session). This is that
fuzz, seeded and smaller: a failing seed is printed and replays.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from paxoskv.errors import ValueNotSerialisable
from paxoskv.runtime import protocol
from tests.runtime.cluster import MemoryCluster

NAMES = ["hello", "ident", "boot", "whois", "req", "read", "watch", "unwatch", "more", "status"]
MESSAGES = 5_000


def _field(rng: random.Random, depth: int = 0) -> Any:
    """One field: the values that broke handlers (infinities, wrong types), and plain ones."""
    choices = [
        lambda: None,
        lambda: True,
        lambda: rng.randint(-5, 5),
        lambda: 2**63 - 1,
        lambda: float("inf"),
        lambda: float("nan"),
        lambda: -1.5,
        lambda: rng.choice(["n1", "", "rogue", "get", "linearizable"]),
        lambda: b"\xff" * rng.randrange(3),
    ]
    if depth < 2:
        choices += [
            lambda: [_field(rng, depth + 1) for _ in range(rng.randrange(4))],
            lambda: {"k": _field(rng, depth + 1)},
        ]
    return rng.choice(choices)()


@pytest.mark.parametrize("seed", [21, 22])
async def test_random_runtime_messages_stop_no_member(
    memory_cluster: MemoryCluster, seed: int
) -> None:
    rng = random.Random(seed)
    n1 = memory_cluster.nodes["n1"]
    for number in range(MESSAGES):
        name = rng.choice(NAMES)
        fields = [_field(rng) for _ in range(rng.randrange(8))]
        try:
            payload = protocol.encode_runtime(name, *fields)
        except ValueNotSerialisable:
            continue
        n1.replica._on_deliveries([("rogue", payload)])
        assert n1.replica.failure is None, f"seed {seed}, message {number}: {name} {fields!r}"
        if number % 100 == 0:
            await asyncio.sleep(0)  # (a member's deliveries come a batch a turn)
    await n1.set("after", 1)
    assert await memory_cluster.nodes["n2"].get("after") == 1
