"""A caller's bad argument is refused at once with a typed error, the same on an embedded node
and on a thin client: before, a client with a misspelt consistency waited for its timeout and
heard NoQuorum, while a node raised a bare ValueError."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from paxoskv import KVApi, connect
from paxoskv.errors import InvalidArgument, InvalidKey, NoQuorum
from tests.runtime.cluster import MemoryCluster


@pytest.fixture(params=["node", "client"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[KVApi]:
    cluster = MemoryCluster()
    node = await cluster.start("n1", bootstrap_expect=1, request_timeout_s=2.0)
    await node.wait_ready(5)
    await node.set("k", "v")
    try:
        if request.param == "node":
            yield node
        else:
            config = cluster.config("client-1", request_timeout_s=2.0)
            async with connect(config, transport=cluster.network.attach("client-1")) as client:
                yield client
    finally:
        await cluster.close()


Call = Callable[[KVApi], Awaitable[Any]]


async def _first_event(api: KVApi, from_revision: Any) -> None:
    async for _ in api.watch(None, from_revision=from_revision):
        return


BAD_CALLS: dict[str, tuple[Call, str]] = {
    "get consistency": (
        lambda api: api.get("k", consistency="lineariable"),  # type: ignore[arg-type]
        "consistency 'lineariable' is not one of linearizable, leader, local",
    ),
    "keys consistency": (
        lambda api: api.keys("k", consistency="loacl"),  # type: ignore[arg-type]
        "consistency 'loacl' is not one of",
    ),
    "ttl negative": (lambda api: api.grant_lease(-5), "lease ttl_s -5 is out of range"),
    "ttl zero": (lambda api: api.grant_lease(0), "lease ttl_s 0 is out of range"),
    "ttl inf": (lambda api: api.grant_lease(math.inf), "finite number of seconds"),
    "ttl nan": (lambda api: api.grant_lease(math.nan), "finite number of seconds"),
    "ttl text": (lambda api: api.grant_lease("10"), "finite number of seconds"),  # type: ignore[arg-type]
    "ttl too long": (lambda api: api.grant_lease(1e12), "at most 3,155,760,000 seconds"),
    "if_revision negative": (
        lambda api: api.set("k", "w", if_revision=-3),
        "if_revision must be a whole number from 0 to",
    ),
    "if_revision past 64 bits": (
        lambda api: api.set("k", "w", if_revision=2**70),
        "if_revision must be a whole number from 0 to 18446744073709551615",
    ),
    "if_revision text": (
        lambda api: api.set("k", "w", if_revision="1"),  # type: ignore[arg-type]
        "if_revision must be a whole number",
    ),
    "from_revision zero": (lambda api: _first_event(api, 0), "from_revision must be"),
    "from_revision negative": (lambda api: _first_event(api, -5), "from_revision must be"),
    "from_revision text": (lambda api: _first_event(api, "3"), "from_revision must be"),
    # (it waited for good: no revision gets there)
    "from_revision past 64 bits": (lambda api: _first_event(api, 2**70), "from_revision must be"),
    "txn compares None": (
        lambda api: api.txn(None, []),  # type: ignore[arg-type]
        "txn compares must be a list (or tuple) of Compare steps, not NoneType",
    ),
    "txn success a str": (
        lambda api: api.txn([], "set"),  # type: ignore[arg-type]
        "txn success must be a list (or tuple) of Set and Delete steps, not str",
    ),
    "remove a node id that is no id": (
        lambda api: api.remove("\udcff"),
        "node id '\\udcff' must be 1-64 printable characters",
    ),
    "promote a node id that is no str": (
        lambda api: api.promote(7),  # type: ignore[arg-type]
        "a node id is a str, not int",
    ),
    "cas compare misspelt": (
        lambda api: api.cas("k", "v", "w", compare="values"),  # type: ignore[arg-type]
        "cas compare must be one of value, version, create_revision, mod_revision, not 'values'",
    ),
    "cas version as text": (
        lambda api: api.cas("k", "1", "w", compare="version"),
        "cas(compare='version') compares a whole number: expected must be an int",
    ),
    "cas revision None": (
        lambda api: api.cas("k", None, "w", compare="mod_revision"),
        "not None (0: the key does not exist)",
    ),
    "on_change callback": (
        lambda api: _on_change(api, "k", 5),
        "on_change needs a callable",
    ),
}


async def _on_change(api: KVApi, prefix: Any, callback: Any) -> None:
    """``on_change`` as a call that fails at once, or a task stopped here."""
    task = api.on_change(prefix, callback)
    task.cancel()


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_a_bad_argument_is_a_typed_error_naming_it(api: KVApi, case: str) -> None:
    call, message = BAD_CALLS[case]
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        await call(api)
    assert await api.get("k") == "v"  # nothing was written


async def test_good_arguments_still_work(api: KVApi) -> None:
    lease = await api.grant_lease(0.5)
    assert lease > 0
    revision = await api.set("k2", "a", if_revision=0)
    assert await api.set("k2", "b", if_revision=revision) > revision
    assert await api.cas("k3", 0, "a", compare="version") > revision  # 0: only if absent
    assert await api.cas("k3", "a", "b") > revision
    assert await api.get("k2", consistency="local") == "b"


async def test_a_lone_bootstrapping_node_is_told_what_it_waits_for_not_to_bootstrap() -> None:
    cluster = MemoryCluster()
    try:
        node = await cluster.start("n1", bootstrap_expect=3)
        with pytest.raises(NoQuorum) as caught:
            await node.wait_ready(0.2)
        message = str(caught.value)
        assert "waiting to form a cluster of 3 nodes started with the same bootstrap_expect" in (
            message
        )
        assert "met so far: n1" in message and "use --bootstrap-expect" not in message
    finally:
        await cluster.close()


async def _watch_first(api: KVApi, prefix: Any) -> None:
    async for _ in api.watch(prefix):
        return


BAD_KEYS: dict[str, tuple[Call, type[Exception]]] = {
    "get int key": (lambda api: api.get(123), InvalidKey),  # type: ignore[arg-type]
    "local get int key": (lambda api: api.get(123, consistency="local"), InvalidKey),  # type: ignore[arg-type]
    "keys list prefix": (lambda api: api.keys(["t"]), InvalidKey),  # type: ignore[arg-type]
    "set int key": (lambda api: api.set(5, "v"), InvalidKey),  # type: ignore[arg-type]
    "set float lease": (lambda api: api.set("k", "v", lease=1.5), InvalidArgument),  # type: ignore[arg-type]
    "set bool lease": (lambda api: api.set("k", "v", lease=True), InvalidArgument),
    "set str lease": (lambda api: api.set("k", "v", lease="5"), InvalidArgument),  # type: ignore[arg-type]
    "set lease with if_revision": (
        lambda api: api.set("k", "v", lease=0, if_revision=0),
        InvalidArgument,
    ),
    "keepalive None": (lambda api: api.keepalive(None), InvalidArgument),  # type: ignore[arg-type]
    "revoke negative": (lambda api: api.revoke(-5), InvalidArgument),
    "watch int prefix": (lambda api: _watch_first(api, 5), InvalidKey),
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
async def test_a_bad_key_prefix_or_lease_is_the_typed_error_in_either_build(
    api: KVApi, case: str
) -> None:
    """Where an application's keys, prefixes and leases reach compiled code, they are checked
    as ``object`` there or before: never a bare TypeError from a compiled boundary, and
    never True taken as lease 1 (tests/builds.py)."""
    call, error = BAD_KEYS[case]
    with pytest.raises(error):
        await call(api)
    assert await api.get("k") == "v"  # nothing was written


async def test_on_change_refuses_a_bad_prefix_at_once_not_in_its_task(api: KVApi) -> None:
    with pytest.raises(InvalidKey):
        await _on_change(api, 5, print)


async def test_wait_ready_refuses_a_timeout_that_is_no_positive_number() -> None:
    cluster = MemoryCluster()
    try:
        node = await cluster.start("n1", bootstrap_expect=1)
        for timeout in ("1", -1, math.nan, math.inf, 0):
            with pytest.raises(InvalidArgument, match="timeout_s must be a positive number"):
                await node.wait_ready(timeout)  # type: ignore[arg-type]
        await node.wait_ready(5)
    finally:
        await cluster.close()


async def test_a_key_that_is_not_utf8_is_told_so_not_told_what_a_key_is(api: KVApi) -> None:
    with pytest.raises(InvalidKey, match="not valid Unicode text"):
        await api.set("\udcff\udcfe", "v")
    with pytest.raises(InvalidKey, match="not valid Unicode text"):
        await api.keys("\udcff")
