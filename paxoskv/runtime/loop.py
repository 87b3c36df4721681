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
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from paxoskv.errors import ConfigurationError

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
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        factory = loop_factory(event_loop)
    except ConfigurationError:
        main.close()  # never awaited: say so quietly, not with a RuntimeWarning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
