"""A blocking handle's ``get_local`` reads the embedded node's copy on the caller's thread.

Every other blocking call is handed to the loop's thread and waited for; ``get_local`` was too,
which cost a request handler about 0.1 ms for a dict lookup of 1-2 us (twenty-seventh session).
These hold that it no longer waits on the loop at all, that what it reads while the loop
applies writes is always a whole value and never goes backwards, and that a thin client, which
has no copy, says so with a typed error instead of an AttributeError.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from paxoskv import open_blocking
from paxoskv.errors import InvalidArgument, NodeClosed, NotStarted
from paxoskv.remote import Client
from tests.runtime.cluster import MemoryCluster

BOUND_S = 10.0


def _on_a_thread(call: Any) -> Any:
    """``call()`` on a thread of its own, bounded: a call that waits on a held loop would
    otherwise hang the suite rather than fail."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert outcome, f"the call did not return within {BOUND_S:g} s"
    return outcome[0]


def test_get_local_answers_while_the_loop_is_held() -> None:
    config = MemoryCluster().config("b1", bootstrap_expect=1)
    kv = open_blocking(config, replica=True)
    with pytest.raises(NotStarted, match="open_blocking"):
        kv.get_local("k")
    with kv:
        kv.wait_ready(5)
        kv.set("session/1", {"user": "ada"})
        held, release = threading.Event(), threading.Event()

        def hold_the_loop() -> None:
            held.set()
            release.wait(BOUND_S)

        kv._loop.call_soon_threadsafe(hold_the_loop)
        try:
            assert held.wait(BOUND_S)
            # The loop's thread is stuck in hold_the_loop: a call handed to it would wait.
            assert _on_a_thread(lambda: kv.get_local("session/1")) == {"user": "ada"}
            assert _on_a_thread(lambda: kv.get_local("session/2", "none")) == "none"
            got = _on_a_thread(lambda: kv.get_local(3.5))  # not a key: typed, at once
            assert type(got).__name__ == "InvalidKey"
        finally:
            release.set()
        # A copy, as every read of a Node hands out: changing it leaves the node's map alone.
        kv.get_local("session/1")["user"] = "eve"
        assert kv.get_local("session/1") == {"user": "ada"}
    with pytest.raises(NodeClosed, match="closed"):
        kv.get_local("session/1")


def test_get_local_polled_while_another_thread_writes_never_goes_back() -> None:
    """The loop applies writes on its thread while this one reads: every value read is one
    that was written, in the order written, and the last one shows without any await."""
    config = MemoryCluster().config("b1", bootstrap_expect=1)
    writes = 200
    with open_blocking(config, replica=True) as kv:
        kv.wait_ready(5)
        kv.set("counter", -1)
        failures: list[BaseException] = []

        def write_all() -> None:
            try:
                for value in range(writes):
                    kv.set("counter", value)
            except BaseException as error:
                failures.append(error)

        writer = threading.Thread(target=write_all, daemon=True)
        writer.start()
        seen: list[int] = []
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            value = kv.get_local("counter")
            if not seen or value != seen[-1]:
                seen.append(value)
            if value == writes - 1:
                break
        writer.join(BOUND_S)
        assert not failures, failures
        assert seen[-1] == writes - 1, f"the last write never showed; saw up to {seen[-1]}"
        assert seen == sorted(seen), "a read went back to an older value"
        assert set(seen) <= set(range(-1, writes))


def test_a_thin_client_has_no_copy_to_read_and_says_what_to_use() -> None:
    client = Client(MemoryCluster().config("t1"))
    with pytest.raises(InvalidArgument, match=r"consistency='local'.*replica=True"):
        client.get_local("k")
