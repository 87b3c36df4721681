"""A blocking handle's ``get_local`` reads the embedded node's copy on the caller's thread.

Every other blocking call is handed to the loop's thread and waited for; ``get_local`` was too,
which cost a request handler about 0.1 ms for a dict lookup of 1-2 us (twenty-seventh session).
These hold that it no longer waits on the loop at all; that what it reads while the loop
applies writes is what a read on the loop could have read (a txn's keys all from before it or
all from after it: the review found reads that saw one key of a txn and not the other); that
a handle being closed says so with its own error; and that a thin client, which has no copy,
says so with a typed error instead of an AttributeError.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from paxoskv import Set, open_blocking
from paxoskv.blocking import BlockingClient
from paxoskv.errors import InvalidArgument, InvalidKey, NodeClosed, NoQuorum, NotStarted
from paxoskv.remote import Client
from tests.runtime.cluster import MemoryCluster, unique_cluster_name

BOUND_S = 10.0


def _own_cluster(bootstrap_expect: int = 1) -> Any:
    """A node of a cluster of its own on loopback (a name and a multicast port of its own, so
    that runs side by side and a developer's local cluster never meet)."""
    port = random.randint(20_000, 60_000)
    return MemoryCluster().config(
        "b1",
        bootstrap_expect=bootstrap_expect,
        cluster=unique_cluster_name(),
        group=f"239.255.74.76:{port}",
    )


def _waits(call: Any) -> tuple[threading.Thread, list[Any]]:
    """``call()`` started on a thread of its own; the thread and where its outcome lands."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _on_a_thread(call: Any) -> Any:
    """``call()`` on a thread of its own, bounded: a call that waits on a held loop would
    otherwise hang the suite rather than fail."""
    thread, outcome = _waits(call)
    thread.join(BOUND_S)
    assert outcome, f"the call did not return within {BOUND_S:g} s"
    return outcome[0]


@pytest.fixture
def switching_often() -> Iterator[None]:
    """The GIL handed between threads every microsecond rather than every 5 ms, so that a
    reader lands inside the loop thread's slot often, as it would now and then in a server."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_get_local_answers_while_the_loop_is_held() -> None:
    kv = open_blocking(_own_cluster(), replica=True)
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
    with pytest.raises(NodeClosed, match="handle is closed"):
        kv.get_local("session/1")


def test_a_txn_shows_whole_or_not_at_all_to_readers_on_other_threads(
    switching_often: None,
) -> None:
    """Two keys written by one txn at each step, read one after the other by two threads: the
    second key read is never older than the first. Tuple values make the loop's thread call
    into interpreted code in the middle of the txn (sizing a value for the watch history), where
    it can lose the GIL to a reader: before the reads waited for a slot to be applied whole, a
    reader saw ``t/a`` of one txn with ``t/b`` of the one before (269 times in a review run)."""
    txns = 300
    with open_blocking(_own_cluster(), replica=True) as kv:
        kv.wait_ready(5)
        kv.txn([], [Set("t/a", (-1, "a")), Set("t/b", (-1, "b"))])
        stop = threading.Event()
        torn: list[tuple[Any, Any]] = []
        failures: list[BaseException] = []

        def read_pairs() -> None:
            try:
                while not stop.is_set():
                    first = kv.get_local("t/a")
                    second = kv.get_local("t/b")
                    if second[0] < first[0]:
                        torn.append((first, second))
                    time.sleep(0)  # a poller that yields, as the README asks
            except BaseException as error:
                failures.append(error)

        readers = [threading.Thread(target=read_pairs, daemon=True) for _ in range(2)]
        for reader in readers:
            reader.start()
        try:
            for n in range(txns):
                kv.txn([], [Set("t/a", (n, "a")), Set("t/b", (n, "b"))])
        finally:
            stop.set()
            for reader in readers:
                reader.join(BOUND_S)
        assert not failures, failures
        assert not torn, f"{len(torn)} reads saw half a txn, e.g. {torn[:3]}"
        assert kv.get_local("t/a") == (txns - 1, "a")
        assert kv.get_local("t/b") == (txns - 1, "b")


def test_get_local_polled_while_another_thread_writes_never_goes_back() -> None:
    """The loop applies writes on its thread while this one reads: every value read is one
    that was written, in the order written, and the last one shows without any await."""
    writes = 200
    with open_blocking(_own_cluster(), replica=True) as kv:
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
        while writer.is_alive() and time.monotonic() < deadline:
            value = kv.get_local("counter")
            if not seen or value != seen[-1]:
                seen.append(value)
            time.sleep(0)
        writer.join(BOUND_S)
        assert not failures, failures
        seen.append(kv.get_local("counter"))  # a write is answered once this node applied it
        assert seen[-1] == writes - 1
        assert seen == sorted(seen), "a read went back to an older value"
        assert set(seen) <= set(range(-1, writes))


def test_a_handle_being_closed_says_so_to_its_readers() -> None:
    """A reader on another thread while the handle closes gets the handle's NodeClosed, never
    NotStarted ("not open: use `with`") nor the async Node's wording."""
    kv = open_blocking(_own_cluster(), replica=True)
    with kv:
        kv.wait_ready(5)
        kv.set("k", 1)
        errors: list[BaseException] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    kv.get_local("k")
                except BaseException as error:
                    errors.append(error)
                    return
                time.sleep(0)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
    reader.join(BOUND_S)
    stop.set()
    assert errors, "the reader never saw the handle close"
    assert all(isinstance(error, NodeClosed) for error in errors), errors
    assert "handle is closed" in str(errors[0])


def test_a_thin_client_has_no_copy_to_read_and_says_what_to_use() -> None:
    client = Client(MemoryCluster().config("t1"))
    with pytest.raises(InvalidArgument, match=r"consistency='local'.*replica=True"):
        client.get_local("k")
    handle = BlockingClient(lambda: client)
    handle._api = client  # as open() leaves it, without a member to reach
    try:
        with pytest.raises(InvalidArgument, match=r"consistency='local'"):
            handle.get_local("k")
    finally:
        handle._api = None
        handle.close()  # its loop never ran: closed at once


async def test_a_read_during_a_slot_keeps_what_the_slot_left_alone_and_waits_for_the_rest() -> None:
    """The loop's thread halfway through a slot, as a reader on another thread finds it: the
    count odd, the slot's starting revision recorded (set here by hand, as the machine sets
    them when an apply begins)."""
    cluster = MemoryCluster()
    node = await cluster.start("s1", bootstrap_expect=1)
    try:
        await node.wait_ready(5)
        await node.set("untouched", "old")
        await node.set("touched", "new")  # its revision is the last: the slot's own
        state = node.replica.engine.state  # type: ignore[union-attr]
        state.changing_from = state.revision - 1
        state.changes += 1
        try:
            assert _on_a_thread(lambda: node.get_local("untouched")) == "old"  # at once
            assert node.get_local("touched") == "new"  # the loop's own thread reads as it stands
            touched, touched_got = _waits(lambda: node.get_local("touched"))
            missing, missing_got = _waits(lambda: node.get_local("missing", "none"))
            touched.join(0.05)
            missing.join(0.05)
            assert not touched_got and not missing_got, "a read kept what the slot may change"
        finally:
            state.changes += 1  # the slot is done
        touched.join(BOUND_S)
        missing.join(BOUND_S)
        assert touched_got == ["new"] and missing_got == ["none"]
    finally:
        await cluster.close()


async def test_a_read_during_a_slot_whose_loop_thread_is_gone_is_refused() -> None:
    """As in a child forked while the loop's thread applied a slot: nothing will finish it."""
    cluster = MemoryCluster()
    node = await cluster.start("s1", bootstrap_expect=1)
    try:
        await node.wait_ready(5)
        await node.set("k", 1)
        state = node.replica.engine.state  # type: ignore[union-attr]
        gone = threading.Thread(target=lambda: None)
        gone.start()
        gone.join()
        loop_thread, node.replica.loop_thread = node.replica.loop_thread, gone
        state.changing_from = state.revision - 1
        state.changes += 1
        try:
            got = _on_a_thread(lambda: node.get_local("k"))
        finally:
            state.changes += 1
            node.replica.loop_thread = loop_thread
        assert isinstance(got, NodeClosed) and "thread is gone" in str(got)
    finally:
        await cluster.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not on this platform")
def test_a_forked_child_is_told_to_open_its_own_handle() -> None:
    """A server that opens a handle and then forks workers (gunicorn --preload): the child has
    no thread running the handle's loop, so any call handed to it would wait for good."""
    with open_blocking(_own_cluster(), replica=True) as kv:
        kv.wait_ready(5)
        kv.set("k", 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork with threads
            pid = os.fork()
        if pid == 0:  # the child: report by exit code, never return into pytest
            code = 1
            try:
                for call in (lambda: kv.get_local("k"), lambda: kv.set("k", 2)):
                    try:
                        call()
                    except NodeClosed as error:
                        code = 0 if "forked" in str(error) and code != 2 else 2
                    else:
                        code = 2
                kv.close()  # at once: the node is the parent's to close
            finally:
                os._exit(code)
        deadline = time.monotonic() + BOUND_S
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(status) == 0
        assert kv.get_local("k") == 1  # the parent's handle is untouched


def test_a_handle_with_no_cluster_yet_says_what_a_blocking_caller_calls() -> None:
    with open_blocking(_own_cluster(bootstrap_expect=3), replica=True) as kv:  # waits for two
        with pytest.raises(NoQuorum, match=r"kv\.wait_ready\(\)") as caught:
            kv.get_local("k")
        assert "await" not in str(caught.value)


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_a_handle_runs_its_own_loop_on_the_loop_config_names(choice: str) -> None:
    """The handle's loop is its own, in a thread the application never sees: chosen as
    `paxos-kv node` chooses (uvloop where installed, unless the config says asyncio)."""
    uvloop = pytest.importorskip("uvloop") if choice == "auto" else None
    kv = open_blocking(dataclasses.replace(_own_cluster(), event_loop=choice), replica=True)
    try:
        if uvloop is not None:
            assert isinstance(kv._loop, uvloop.Loop)
        else:
            assert type(kv._loop).__module__.startswith("asyncio")
    finally:
        kv.close()  # never opened: its loop is closed at once


def test_run_makes_several_calls_in_one_hand_over() -> None:
    """``kv.run``: an async function of the API awaited on the handle's loop (a session
    backend's renewal and write go together), with the handle's errors at the call."""
    kv = open_blocking(_own_cluster(), replica=True)
    with pytest.raises(NotStarted, match="open_blocking"):
        kv.run(lambda api: api.get("k"))
    with kv:
        kv.wait_ready(5)
        loop_threads: list[str] = []

        async def two_writes_and_a_read(api: Any) -> Any:
            loop_threads.append(threading.current_thread().name)
            await api.set("a", 1)
            await api.set("b", 2)
            return await asyncio.gather(api.get("a"), api.get("b"))

        assert kv.run(two_writes_and_a_read) == [1, 2]
        assert loop_threads == ["paxoskv"]  # on the handle's own loop, not the caller's thread
    with pytest.raises(NodeClosed):
        kv.run(lambda api: api.get("a"))


def test_run_refuses_what_it_cannot_await_and_calls_from_its_own_loop() -> None:
    """Third review: a sync function or a coroutine object gave a bare TypeError, and a
    blocking call from an on_change callback (on the handle's own loop thread) hung the
    handle for good."""
    with open_blocking(_own_cluster(), replica=True) as kv:
        kv.wait_ready(5)
        coroutine = kv.api.get("k")
        with pytest.raises(InvalidArgument, match="run takes a function of the API"):
            kv.run(coroutine)  # type: ignore[arg-type]
        coroutine.close()
        with pytest.raises(InvalidArgument, match="must return something to await"):
            kv.run(lambda api: 5)  # type: ignore[arg-type,return-value]
        outcome: list[BaseException] = []

        def blocking_call_in_a_callback(event: Any) -> None:
            for call in (lambda: kv.get("k"), lambda: kv.watch("k"), kv.close):
                try:
                    call()
                except InvalidArgument as error:
                    outcome.append(error)

        subscription = kv.on_change("k", blocking_call_in_a_callback)
        kv.set("k", 1)
        deadline = time.monotonic() + BOUND_S
        while len(outcome) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        subscription.cancel()
        assert len(outcome) == 3 and all("own loop thread" in str(error) for error in outcome)
        assert kv.get("k") == 1  # the handle still answers, not closed by the refused close


def test_on_change_refuses_a_bad_prefix_or_callback_at_the_call() -> None:
    """As the async API does: the returned future held the error, so a caller who did not
    look at it had a subscription that never ran (review, twenty-ninth session)."""
    kv = open_blocking(_own_cluster(), replica=True)
    with kv:
        kv.wait_ready(5)
        with pytest.raises(InvalidKey, match="invalid prefix 123"):
            kv.on_change(123, print)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="on_change needs a callable"):
            kv.on_change("p/", 5)  # type: ignore[arg-type]
