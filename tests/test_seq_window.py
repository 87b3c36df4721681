"""A client's seqs stay inside the cluster's dedup window, so a late resend is never stale.

Found by `benchmarks/compare.py`: at 8 KB a follower's forward of 22 requests was lost and
resent half a second later, when the node's pipelined callers had gone more than 1,024 seqs
further, and the 22 writes failed as stale though none had been applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paxoskv.client import KVApi
from paxoskv.config import Config
from paxoskv.seq_window import SeqWindow
from paxoskv.state.commands import DEDUP_WINDOW_REQUESTS
from paxoskv.state.dedup import STALE, DedupTable
from paxoskv.state.results import Written, decode_result, encode_result


async def test_no_seq_is_handed_out_a_window_above_the_oldest_unfinished() -> None:
    seqs = SeqWindow(4)
    assert [seqs.take() for _ in range(5)] == [1, 2, 3, 4, 0]
    seqs.finish(2)
    seqs.finish(3)
    assert seqs.take() == 0, "seq 1 still waits: 5 would be a window above it"
    assert seqs.oldest_waiting == 1
    seqs.finish(1)
    assert seqs.oldest_waiting == 4
    assert [seqs.take() for _ in range(4)] == [5, 6, 7, 0]
    seqs.finish(99)  # never handed out: ignored
    seqs.finish(1)  # finished already: ignored
    assert seqs.oldest_waiting == 4


async def test_callers_waiting_for_room_get_seqs_in_the_order_they_came() -> None:
    seqs = SeqWindow(2)
    assert (seqs.take(), seqs.take()) == (1, 2)
    got: list[tuple[str, int]] = []

    async def caller(name: str) -> None:
        got.append((name, await seqs.take_when_room()))

    tasks = [asyncio.create_task(caller(name)) for name in "abc"]
    await asyncio.sleep(0)
    assert seqs.take() == 0, "a newcomer does not jump the queue"
    tasks[1].cancel()  # b gives up while waiting
    seqs.finish(1)
    await asyncio.wait_for(tasks[0], 5)
    assert got == [("a", 3)]
    seqs.finish(2)
    await asyncio.wait_for(tasks[2], 5)
    assert got == [("a", 3), ("c", 4)]
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]


async def test_a_caller_cancelled_after_being_woken_passes_the_room_on() -> None:
    seqs = SeqWindow(1)
    assert seqs.take() == 1
    first = asyncio.create_task(seqs.take_when_room())
    second = asyncio.create_task(seqs.take_when_room())
    await asyncio.sleep(0)
    seqs.finish(1)  # wakes the first ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 5) == 2
    with pytest.raises(asyncio.CancelledError):
        await first


def test_bad_windows_are_refused() -> None:
    for window in (0, -1, 1.5, "8"):
        with pytest.raises(ValueError, match="seq window"):
            SeqWindow(window)  # type: ignore[arg-type]


class HeldBackApi(KVApi):
    """A client whose requests go straight into one replica's dedup table, except the first,
    which is held back as if its datagram were lost, and sent once it is released."""

    def __init__(self) -> None:
        super().__init__(Config(node_id="n1"))
        self.table = DedupTable(DEDUP_WINDOW_REQUESTS, 600_000)
        self.revision = 0
        self.release = asyncio.Event()
        self.stale: list[int] = []
        self.sent: list[int] = []

    async def _submit(self, client_id: str, seq: int, command: bytes) -> bytes:  # type: ignore[override]
        self.sent.append(seq)
        if seq == 1:
            await self.release.wait()
        else:
            await asyncio.sleep(0)  # the answer comes back a loop turn later
        cached = self.table.check(client_id, seq, 0)
        if cached is STALE:
            self.stale.append(seq)
            raise AssertionError(f"seq {seq} was stale")
        assert cached is None, "each request is applied once here"
        self.revision += 1
        self.table.remember(client_id, seq, self.revision)
        return encode_result(Written(self.revision, None))

    async def _read(self, consistency: Any, op: str, argument: Any) -> Any:
        raise NotImplementedError

    def watch(self, prefix: Any = None, from_revision: int | None = None) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def members(self) -> list[Any]:
        raise NotImplementedError

    async def status(self) -> dict[str, Any]:
        raise NotImplementedError

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_held_back_request_stays_inside_the_window_while_callers_go_on() -> None:
    api = HeldBackApi()
    writes = DEDUP_WINDOW_REQUESTS + 500
    callers = 64
    done = 0

    async def caller(index: int) -> None:
        nonlocal done
        for i in range(index, writes, callers):
            await api.set(("k", i), i)
            done += 1

    tasks = [asyncio.create_task(caller(index)) for index in range(callers)]
    # Every other write completes; then the callers can go no further than the window.
    for _ in range(20_000):
        await asyncio.sleep(0)
        if done == DEDUP_WINDOW_REQUESTS - 1:
            break
    assert done == DEDUP_WINDOW_REQUESTS - 1
    for _ in range(200):  # loop turns, not time: nothing more may be sent while seq 1 waits
        await asyncio.sleep(0)
    assert max(api.sent) == DEDUP_WINDOW_REQUESTS
    api.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert api.stale == []
    assert sorted(api.sent) == list(range(1, writes + 1))


async def test_a_write_gets_its_result_through_the_window() -> None:
    api = HeldBackApi()
    api.release.set()
    result = decode_result(await api._write_encoded(b"\x00"))  # any bytes: the fake applies them
    assert result == Written(1, None)
    assert api._seqs.oldest_waiting is None
