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
from paxoskv.errors import NodeClosed
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


class WritesOnlyApi(KVApi):
    """A client that only writes: subclasses say where its requests go (``_submit``)."""

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


class HeldBackApi(WritesOnlyApi):
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


async def test_a_caller_closed_while_waiting_for_room_does_not_block_the_window() -> None:
    """A coroutine closed (GeneratorExit, not CancelledError) while it waits for room must
    leave the line: woken, it would take no seq, and every later caller would wait forever
    (found in review)."""
    seqs = SeqWindow(1)
    assert seqs.take() == 1
    waiting = seqs.take_when_room()
    waiting.send(None)  # runs up to its wait for room (the future it yields)
    waiting.close()  # as when a coroutine nobody runs any more is closed or collected
    seqs.finish(1)
    assert seqs.take() == 2, "the closed caller's place in line must not keep the room"
    seqs.finish(2)
    assert await asyncio.wait_for(seqs.take_when_room(), 1) == 3


def test_finishing_a_seq_not_handed_out_yet_is_ignored() -> None:
    """Finishing the very next seq, not handed out yet, moved the floor above it: the window
    then let ``window + 1`` seqs out (found in review)."""
    seqs = SeqWindow(2)
    seqs.finish(1)  # not handed out
    assert [seqs.take(), seqs.take(), seqs.take()] == [1, 2, 0]
    assert seqs.oldest_waiting == 1


class StuckApi(WritesOnlyApi):
    """Requests that are never answered, or refused at once (``refuse``)."""

    def __init__(self) -> None:
        super().__init__(Config(node_id="n1"))
        self.refuse = False
        self._seqs = SeqWindow(2)

    def _submit(self, client_id: str, seq: int, command: bytes) -> Any:
        if self.refuse:
            raise NodeClosed("closed")  # raised by the call, before anything is awaited
        return asyncio.get_running_loop().create_future()  # never answered


@pytest.mark.parametrize("write", ["set", "delete"])
async def test_a_write_cancelled_in_flight_or_refused_gives_its_seq_back(write: str) -> None:
    api = StuckApi()

    def call() -> Any:
        return api.set("k", 1) if write == "set" else api.delete("k")

    in_flight = [asyncio.create_task(call()) for _ in range(3)]  # the third waits for room
    for _ in range(5):
        await asyncio.sleep(0)
    assert api._seqs.oldest_waiting == 1 and api._seqs.take() == 0
    for task in in_flight:
        task.cancel()
    await asyncio.gather(*in_flight, return_exceptions=True)
    assert api._seqs.oldest_waiting is None
    api.refuse = True
    for _ in range(5):  # more than the window: a leaked seq would make these wait
        with pytest.raises(NodeClosed):
            await asyncio.wait_for(call(), 1)
    assert api._seqs.oldest_waiting is None
