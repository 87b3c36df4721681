"""Which member a thin client asks, and asks again: a killed leader is not asked twice.

A retry used to rotate over every member heard within ``down_after_s``, a killed leader among
them for 3 s, and never went to the new leader the hellos named: with the leader killed, a
thin client's writes waited 1.4-3 s and some ran out of time (API audit, twenty-second
session). These drive ``Client._target`` over hellos set by hand: no network, no clock waits.
"""

from __future__ import annotations

import time

import pytest

from paxoskv import Config, connect
from paxoskv.errors import NoQuorum
from paxoskv.remote import Client
from paxoskv.runtime.protocol import Hello
from tests.runtime.cluster import MemoryCluster


def _hello(leader: str) -> Hello:
    return Hello("voter", 10, 10, leader, ("n1", "n2", "n3"), False)


def _client(heard: dict[str, tuple[float, str]]) -> Client:
    """A client that heard each member ``ago`` seconds ago, naming ``leader``."""
    client = Client(Config())
    now = time.monotonic()
    client._heard = {node: (now - ago, _hello(leader)) for node, (ago, leader) in heard.items()}
    client._heard_any.set()
    return client


async def _targets(client: Client, attempts: int) -> list[str]:
    tried: list[str] = []
    for attempt in range(attempts):
        tried.append(await client._target(time.monotonic() + 5, attempt, tried))
    return tried


@pytest.mark.asyncio
async def test_a_retry_goes_to_the_new_leader_the_hellos_name() -> None:
    # n1 (the old leader) went silent 1.5 s ago; n2 and n3 now name n2.
    client = _client({"n1": (1.5, "n1"), "n2": (0.1, "n2"), "n3": (0.05, "n2")})
    assert await _targets(client, 1) == ["n2"]
    client._heard["n3"] = (time.monotonic(), _hello("n2"))
    # A retry after n2 did not answer: not n2 again, and not the silent n1.
    assert (await _targets(client, 2))[1] == "n3"


@pytest.mark.asyncio
async def test_before_an_election_a_retry_skips_the_silent_leader_and_those_tried() -> None:
    # No new leader yet: the hellos still name n1, which has been silent for 1.5 s.
    client = _client({"n1": (1.5, "n1"), "n2": (0.1, "n1"), "n3": (0.05, "n1")})
    first, second, third = await _targets(client, 3)
    assert {first, second} == {"n2", "n3"}  # the members heard lately, each once
    assert third in {"n2", "n3"}  # and again; n1 is suspect (silent past suspect_after_s)


@pytest.mark.asyncio
async def test_a_leader_heard_lately_is_asked_first() -> None:
    client = _client({"n1": (0.2, "n1"), "n2": (0.1, "n1"), "n3": (0.05, "n1")})
    assert (await _targets(client, 1)) == ["n1"]


@pytest.mark.asyncio
async def test_once_all_were_tried_the_members_heard_lately_are_asked_in_turn() -> None:
    client = _client({"n1": (1.5, "n1"), "n2": (0.1, "n1"), "n3": (0.05, "n1")})
    targets = await _targets(client, 7)
    assert "n1" not in targets
    assert set(targets) == {"n2", "n3"}


@pytest.mark.asyncio
async def test_with_every_member_silent_a_while_they_are_all_still_asked() -> None:
    # Nobody heard within suspect_after_s (a slow network, say): none is left out.
    client = _client({"n1": (1.5, "n1"), "n2": (1.6, "n1"), "n3": (1.7, "n1")})
    assert set(await _targets(client, 3)) == {"n1", "n2", "n3"}


@pytest.mark.asyncio
async def test_a_command_pinned_to_a_node_nobody_heard_fails_soon() -> None:
    """`--node nosuch` waited out the whole request timeout (CLI audit)."""
    cluster = MemoryCluster()
    try:
        for node_id in ("n1", "n2", "n3"):
            await cluster.start(node_id, bootstrap_expect=3)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        config = cluster.config("client-1", request_timeout_s=30.0)
        transport = cluster.network.attach("client-1")
        async with connect(config, transport=transport, node_id="nosuch") as client:
            started = time.monotonic()
            with pytest.raises(NoQuorum, match="'nosuch' is not heard from"):
                await client.get("k")
            assert time.monotonic() - started < 5  # suspect_after_s, not the 30 s timeout
        async with connect(
            config, transport=cluster.network.attach("client-2"), node_id="n2"
        ) as ok:
            await ok.set("k", 1)
    finally:
        await cluster.close()
