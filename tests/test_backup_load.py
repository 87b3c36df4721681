"""``paxoskv.backup.load_file`` against a node of its own: what a review found it did wrong.

A load longer than a lease's ttl lost the keys on it; a failure with writes in flight printed
a traceback for each; a key that fitted a request where it was dumped, on a lease, did not
fit one here (lease ids grow with the revision), and was found only after the rest was
written.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import paxoskv
from paxoskv import KVApi, Node
from paxoskv.backup import LOAD_WINDOW, load_file
from paxoskv.client import MAX_COMMAND_BYTES
from paxoskv.dumpfile import DumpEntry, DumpHeader, write_dump
from paxoskv.errors import InvalidArgument, NoQuorum
from paxoskv.state.command_wire import encode_set
from tests.contrib.web_cluster import WAIT_S, web_cluster


@pytest.fixture
async def client() -> AsyncIterator[KVApi]:
    node_config, client_config = web_cluster()
    async with Node(node_config) as node:
        await node.wait_ready(WAIT_S)
        async with paxoskv.connect(client_config) as thin:
            yield thin


class _Slow:
    """The client, with every txn taking ``delay_s`` longer (a busy cluster), and failing
    with NoQuorum from the ``fail_at``-th on."""

    def __init__(self, client: KVApi, delay_s: float, fail_at: int | None = None) -> None:
        self._client, self._delay_s, self._fail_at = client, delay_s, fail_at
        self.txns = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def txn(self, *args: Any, **kwargs: Any) -> Any:
        self.txns += 1
        number = self.txns
        await asyncio.sleep(self._delay_s)
        if self._fail_at is not None and number >= self._fail_at:
            raise NoQuorum("the cluster went away")
        return await self._client.txn(*args, **kwargs)


def _dump(tmp_path: Path, entries: list[DumpEntry], ttls: dict[int, int]) -> Path:
    path = tmp_path / "x.dump"
    write_dump(path, DumpHeader("test", 1, None, ttls), entries)
    return path


async def test_a_load_longer_than_a_leases_ttl_keeps_its_keys(
    client: KVApi, tmp_path: Path
) -> None:
    entries = [DumpEntry(f"s/{i:03}", "v" * 4_000, 9) for i in range(200)]  # some 20 txns
    path = _dump(tmp_path, entries, {9: 600})
    slow = _Slow(client, delay_s=0.5)  # 20 txns, 8 at a time: some 1.5 s, past the ttl
    loaded = await load_file(slow, path)  # type: ignore[arg-type]
    assert (loaded.keys, loaded.leases, slow.txns > LOAD_WINDOW) == (200, 1, True)
    kept = await client.items("s/")
    assert len(kept) == 200 and len({entry.lease_id for entry in kept}) == 1


async def test_a_failed_load_raises_its_error_alone(
    client: KVApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = [DumpEntry(f"f/{i:03}", "v" * 4_000) for i in range(200)]
    slow = _Slow(client, delay_s=0.0, fail_at=1)  # the window fills, then all fail at once
    failed = False
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        try:
            await load_file(slow, _dump(tmp_path, entries, {}))  # type: ignore[arg-type]
        except NoQuorum:
            failed = True  # (not kept: its traceback would keep the load's tasks alive)
        gc.collect()  # where asyncio reports a failed task nobody asked for its outcome
        await asyncio.sleep(0)
    assert failed
    assert "never retrieved" not in caplog.text


async def test_a_key_that_cannot_fit_on_its_lease_here_is_refused_before_any_key_is_written(
    client: KVApi, tmp_path: Path
) -> None:
    """Lease ids grow with the revision they are granted at: a key at the size limit on lease
    1 where it was dumped does not fit on a lease of a two-byte id. Found after the rest was
    written (first review); and checked against the longest id, a key that would fit here was
    refused (second review): it is checked with the id granted here."""
    for number in range(130):
        await client.set(f"fill/{number}", number)  # leases granted from here have ids > 127
    key = "big"
    value = "x" * (MAX_COMMAND_BYTES - len(encode_set(key, "", 1)) - 2)  # a str16: 2 more
    assert len(encode_set(key, value, 1)) == MAX_COMMAND_BYTES
    entries = [DumpEntry("small", "a", 1), DumpEntry(key, value, 1)]
    with pytest.raises(InvalidArgument, match="'big' cannot be loaded on lease"):
        await load_file(client, _dump(tmp_path, entries, {1: 60_000}))
    assert {entry.key for entry in await client.items()} == {f"fill/{n}" for n in range(130)}
    fits = [DumpEntry(key, value[:-8], 1)]
    as_text = str(_dump(tmp_path, fits, {1: 60_000}))  # a path given as a str does as well
    assert (await load_file(client, as_text)).keys == 1
