"""Real nodes in one process over UDP multicast on loopback, and a thin client beside them."""

from __future__ import annotations

import asyncio
import random

import pytest

from paxoskv import Config, Node, connect
from paxoskv.errors import NoQuorum, WrongSecret
from tests.runtime.cluster import FAST, unique_cluster_name


def udp_config(cluster: str, port: int, **overrides: object) -> Config:
    settings: dict[str, object] = {
        **FAST,
        "cluster": cluster,
        "group": f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}:{port}",
        "interface": "127.0.0.1",
        "secret": b"a-test-secret-of-at-least-16-bytes",
    }
    settings.update(overrides)
    return Config(**settings)  # type: ignore[arg-type]


async def test_three_nodes_and_a_client_over_loopback_multicast() -> None:
    name = unique_cluster_name()
    port = random.randint(20_000, 60_000)
    base = udp_config(name, port)
    nodes = [
        Node(
            Config(
                **{
                    **base.__dict__,
                    "node_id": f"u{i}",
                    "durability": "memory",
                    "bootstrap_expect": 3,
                }
            )
        )
        for i in (1, 2, 3)
    ]
    try:
        for node in nodes:
            await node.start()
        await asyncio.gather(*(node.wait_ready(10) for node in nodes))
        await nodes[0].set("over", "udp")
        assert await nodes[2].get("over") == "udp"
        async with connect(Config(**{**base.__dict__, "durability": "memory"})) as client:
            await client.set(("tuple", 1), b"bytes")
            assert await client.get(("tuple", 1)) == b"bytes"
            assert await nodes[1].get(("tuple", 1)) == b"bytes"
            status = await client.status()
            assert status["transport"]["received_frames"] > 0
    finally:
        for node in nodes:
            await node.close()


async def test_a_client_with_the_wrong_secret_hears_nothing() -> None:
    name = unique_cluster_name()
    port = random.randint(20_000, 60_000)
    base = udp_config(name, port)
    node = Node(
        Config(**{**base.__dict__, "node_id": "w1", "durability": "memory", "bootstrap_expect": 1})
    )
    try:
        await node.start()
        await node.wait_ready(5)
        wrong = Config(
            **{
                **base.__dict__,
                "durability": "memory",
                "secret": b"another-secret-16-bytes!!",
                "request_timeout_s": 1.0,
            }
        )
        async with connect(wrong) as client:
            with pytest.raises(WrongSecret, match=r"the secret given .* is not the cluster's"):
                await client.get("anything")
        without = Config(**{**wrong.__dict__, "secret": None})
        async with connect(without) as client:
            with pytest.raises(WrongSecret, match="no secret was given") as caught:
                await client.get("anything")
            assert "secret given" not in str(caught.value)
        assert node.replica.transport is not None
        assert node.replica.transport.stats.dropped["bad_tag"] > 0  # type: ignore[index]
    finally:
        await node.close()


@pytest.mark.parametrize("scope", ["unicast", "broadcast"])
async def test_no_answer_without_multicast_does_not_name_the_multicast_group(scope: str) -> None:
    port = random.randint(20_000, 60_000)
    config = Config(
        scope=scope,
        peers=(f"127.0.0.1:{port}",) if scope == "unicast" else (),
        group=f"239.192.74.75:{port + 1}",
        cluster=unique_cluster_name(),
        durability="memory",
        request_timeout_s=0.3,
    )
    async with connect(config) as client:
        with pytest.raises(NoQuorum) as caught:
            await client.get("anything")
    message = str(caught.value)
    assert "239.192.74.75" not in message and scope in message
