"""Which event loop our own processes run on: uvloop where it is installed, else asyncio's.

A replica spends most of its time in the event loop's machinery (a wake-up per burst of
datagrams, a future per write, a callback per timer), and uvloop does that machinery in C:
in ``benchmarks/compare.py`` it cut the CPU per committed write by a third. It stays an
optional extra (``pip install 'paxos-kv[fast]'``): the library itself runs on whatever loop
the embedding application chose, and only the processes paxos-kv starts (``paxos-kv node``,
the benchmarks) pick one, through :func:`run`.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from paxoskv.errors import ConfigurationError

NODE_GC_GEN0 = 10_000
"""The cyclic collector's first threshold in the processes :func:`run` runs (CPython: 700).

A node under load keeps several tracked objects alive for each write in flight (its future,
its coroutine, its request, the keys it waits under): some thousands at the benchmarks'
windows. With the default threshold a young collection ran every few hundred new objects and
traversed all of them each time, 5-6% of a node's CPU in ``benchmarks/cluster.py`` (timed
with ``gc.callbacks``); at 10,000 it is 2.5-3%, and the longest pause was no longer (7-18 ms
either way: the default threshold's full collections take as long). Like the loop, only the
processes paxos-kv starts get this; an application embedding a node keeps its own settings.
"""

EventLoop = Literal["auto", "asyncio", "uvloop"]
EVENT_LOOPS: tuple[EventLoop, ...] = ("auto", "asyncio", "uvloop")
T = TypeVar("T")


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` names (None: asyncio's default loop)."""
    if choice not in EVENT_LOOPS:
        raise ConfigurationError(f"event_loop {choice!r} is not one of {', '.join(EVENT_LOOPS)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                "event_loop is 'uvloop' but uvloop is not installed: "
                "pip install 'paxos-kv[fast]', or choose 'auto' or 'asyncio'"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(choice: str = "auto") -> str:
    """What :func:`run` would run on, for logs and benchmark reports."""
    return "asyncio" if loop_factory(choice) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], *, event_loop: str = "auto") -> T:
    """``asyncio.run(main)`` on the chosen loop, with the collector tuned for a node meanwhile
    (see :data:`NODE_GC_GEN0`; the thresholds are put back when it returns)."""
    try:
        factory = loop_factory(event_loop)
    except ConfigurationError:
        main.close()  # never awaited: say so quietly, not with a RuntimeWarning
        raise
    with node_collector(), asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


@contextmanager
def node_collector() -> Iterator[None]:
    """The collector tuned as in a node's process (:data:`NODE_GC_GEN0`) while the block runs.

    :func:`run` uses it, and so does ``benchmarks/engine.py``: a ceiling for the engine measured
    under the default threshold would charge it collections a node does not make.
    """
    global _tuned
    thresholds = gc.get_threshold()
    if thresholds[0] < NODE_GC_GEN0:
        gc.set_threshold(NODE_GC_GEN0, *thresholds[1:])
    _tuned += 1
    try:
        yield
    finally:
        _tuned -= 1
        gc.set_threshold(*thresholds)


_tuned = 0  # how many node_collector blocks are running (a process paxos-kv runs, if any)


def start_up_done() -> None:
    """A replica has recovered its state: in a process paxos-kv runs, set start-up's objects
    aside from the cyclic collector for good (``gc.freeze``).

    A restart builds a million-odd objects at once (the modules, the restored rows, the
    applied tail) and keeps nearly all of them. Left to the collector, the first collections
    after the build walk every one of them (25 ms and 40 ms over the compare harness's
    100,000 keys, as the restarted node starts to serve); frozen, they are never walked.
    Called with the collector paused, so no collection runs first (freezing empties the young
    generations). What start-up built and later drops is still freed by reference counting
    (the rows are tuples of atoms, no cycles); only a cycle through one of them would outlive
    its use. An application embedding a node (no :func:`node_collector`) keeps its collector
    as it was.
    """
    if _tuned:
        gc.freeze()


async def until_either(one: asyncio.Event, other: asyncio.Event, timeout_s: float) -> None:
    """Until either event is set, or ``timeout_s`` has passed; the caller asks which.

    A wait for readiness that looked at one event alone waited out its whole timeout when
    the node stopped meanwhile (review of the API audit, twenty-second session)."""
    waits = {asyncio.ensure_future(one.wait()), asyncio.ensure_future(other.wait())}
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``awaitable``'s result, or TimeoutError once ``timeout_s`` has passed.

    Not ``asyncio.wait_for``: in Python 3.11 it swallows a cancellation that arrives once the
    awaited future is done, so a task reading in a loop (its reads answered at once) could
    not be cancelled, and ``asyncio.timeout`` around it never fired (twenty-fourth session).
    Python 3.12 rebuilt ``wait_for`` on ``asyncio.timeout``, as this is.
    """
    async with asyncio.timeout(timeout_s):
        return await awaitable
