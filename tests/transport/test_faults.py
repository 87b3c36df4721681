"""Fault injection for any transport, switched on by configuration, on real sockets too."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from paxoskv.errors import ConfigurationError, PayloadTooLarge
from paxoskv.transport import (
    DropReason,
    FaultPlan,
    FaultSettings,
    FaultyTransport,
    MemoryNetwork,
    TransportSettings,
    TransportStats,
    open_transport,
)

from .conftest import SECRET, wait_until

Settings = Callable[..., TransportSettings]


def test_a_plan_is_a_function_of_its_seed() -> None:
    settings = FaultSettings(seed=11, drop_rate=0.2, duplicate_rate=0.2, delay_max_s=0.01)
    plans = [FaultPlan(settings), FaultPlan(settings)]
    fates = [[plan.copies(TransportStats()) for _ in range(100)] for plan in plans]
    assert fates[0] == fates[1]
    assert () in fates[0] and any(len(f) == 2 for f in fates[0])
    assert all(0.0 <= d <= 0.01 for fate in fates[0] for d in fate)


def test_a_perfect_network_is_the_default() -> None:
    plan = FaultPlan(FaultSettings(), random.Random(0))
    assert {plan.copies(TransportStats()) for _ in range(100)} == {(0.0,)}


def test_settings_from_a_toml_table() -> None:
    settings = FaultSettings.from_mapping({"seed": 5, "drop_rate": 0.1, "cut": ["n2", "n3"]})
    assert settings.cut == frozenset({"n2", "n3"}) and settings.drop_rate == 0.1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"drop_rate": 1.5}, "drop_rate must be between 0 and 1"),
        ({"delay_min_s": 0.2, "delay_max_s": 0.1}, "delay_min_s <= delay_max_s"),
        ({"cut": "n2"}, "list of node ids"),
        ({"lossiness": 0.3}, "unknown setting"),
    ],
)
def test_bad_fault_settings_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FaultSettings.from_mapping(raw)


async def test_wrapper_cuts_a_peer_both_ways_and_heals() -> None:
    network = MemoryNetwork()
    a = FaultyTransport(network.attach("a"), FaultSettings(cut=frozenset({"b"})))
    b, c = network.attach("b"), network.attach("c")
    async with a:
        await a.send("b", b"lost")
        await b.send("a", b"lost too")
        await c.send("a", b"through")
        assert await asyncio.wait_for(a.receive(), 1.0) == ("c", b"through")
        with pytest.raises(PayloadTooLarge):  # a cut hides no caller mistakes
            await a.send("b", b"x" * (a.max_payload_bytes + 1))
        a.heal("b")
        await b.send("a", b"healed")
        assert await asyncio.wait_for(a.receive(), 1.0) == ("b", b"healed")
        assert a.stats.dropped[DropReason.CUT] == 2
        assert b.stats.received_frames == 0


async def test_configuration_wraps_real_sockets_with_seeded_loss(group_settings: Settings) -> None:
    """A chaos run on real UDP: same seed, same frames lost, on every run."""
    faults = FaultSettings(seed=99, drop_rate=0.5, duplicate_rate=0.1)
    plain, lossy = group_settings(secret=SECRET), group_settings(secret=SECRET, faults=faults)
    survivors: list[list[int]] = []
    for _ in range(2):
        sender, receiver = await open_transport("a", plain), await open_transport("b", lossy)
        assert isinstance(receiver, FaultyTransport)
        async with sender, receiver:
            for index in range(60):
                await sender.broadcast(bytes([index]))
            stats = receiver.stats
            await wait_until(lambda s=stats: s.received_frames == 60)  # type: ignore[misc]
            got = []
            while len(receiver._inbox):
                got.append((await receiver.receive()).payload[0])
            survivors.append(got)
            assert (
                stats.dropped[DropReason.INJECTED] + len(got) - stats.injected["duplicated"] == 60
            )
    assert survivors[0] == survivors[1]
    assert 15 < len(set(survivors[0])) < 45
