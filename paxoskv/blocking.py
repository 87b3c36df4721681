"""The API for code without an event loop (Flask views, scripts): the same methods, blocking.

An event loop runs in a daemon thread of its own; each call is handed to it and waited for,
but ``get_local``, which reads an embedded node's own copy on the caller's thread. ``watch``
becomes an ordinary iterator, and ``on_change`` calls its callback on that loop's thread (not
the caller's), so the callback must be quick and thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from paxoskv.client import KVApi, check_subscription
from paxoskv.config import Config
from paxoskv.errors import InvalidArgument, NodeClosed, NoQuorum, NotStarted
from paxoskv.runtime.loop import loop_factory
from paxoskv.state import ChangeEvent, Key

T = TypeVar("T")
_END = object()


class BlockingClient:
    """Wraps a :class:`~paxoskv.client.KVApi` (a Node or a Client) behind blocking calls."""

    def __init__(self, factory: Callable[[], KVApi], *, event_loop: str = "auto") -> None:
        self._factory = factory
        # The loop is the handle's own, in a thread of its own that the application never
        # sees, so it is chosen here as `paxos-kv node` chooses its loop (runtime.loop): uvloop
        # where installed. Every blocking call but get_local is a hand-over to it and back:
        # on uvloop a get(consistency="local") took 28 us p50 against 116, a write to a node
        # of one 177 us against 214 (twenty-seventh session).
        factory_of_loop = loop_factory(event_loop)
        self._loop = asyncio.new_event_loop() if factory_of_loop is None else factory_of_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="paxoskv")
        self._api: KVApi | None = None
        self._subscriptions: set[concurrent.futures.Future[None]] = set()
        self._failed = False  # its open failed: a second open says so, not "closed"
        # Set as close() begins: a call from another thread meanwhile (get_local runs on the
        # caller's) is told the handle is closed, not that it was never opened.
        self._closing = False
        # The process whose thread runs the loop: a child forked from it has no such thread,
        # and a call handed to the loop there would wait for good.
        self._pid = os.getpid()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise self._on_own_thread()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _on_own_thread(self) -> InvalidArgument:
        return InvalidArgument(
            "a blocking call from the handle's own loop thread (an on_change callback runs "
            "there) would wait for that thread, which is waiting for it: use the async API "
            "there (`await kv.api.set(...)`), or hand the call to another thread"
        )

    def open(self) -> Self:
        """Start the loop's thread and the API on it. A handle opens once; one that failed to
        open lets its thread and loop go (three failed opens left three threads running)."""
        if self._loop.is_closed():
            raise self._closed_error()
        if self._thread.is_alive():
            raise InvalidArgument(
                "this handle is open already (`with` opens it): use it as it is, or close it "
                "and open_blocking() a new one"
            )
        self._thread.start()

        async def start() -> KVApi:
            api = self._factory()
            try:
                await api.start()
            except BaseException:
                with contextlib.suppress(Exception):  # what it opened before it failed
                    await api.close()
                raise
            return api

        try:
            self._api = self._run(start())
        except BaseException:
            self._stop_loop()
            self._failed = True
            raise
        return self

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if threading.current_thread() is self._thread:  # before anything is changed
            raise self._on_own_thread()
        self._closing = True
        if os.getpid() != self._pid:
            return  # a forked child's copy: the node and its thread are the parent's to close
        for subscription in list(self._subscriptions):
            subscription.cancel()
        if self._api is not None:
            self._run(self._api.close())
            self._api = None
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _closed_error(self) -> NodeClosed:
        if self._failed:
            return NodeClosed(
                "this handle failed to open: fix the cause, and open_blocking() a new one"
            )
        return NodeClosed(
            "this handle is closed (its `with` block ended): open_blocking() a new one"
        )

    @property
    def api(self) -> KVApi:
        if self._closing or (self._api is None and self._loop.is_closed()):
            raise self._closed_error()
        if os.getpid() != self._pid:
            raise NodeClosed(
                f"this handle was opened in process {self._pid}, and this process was forked "
                "from it, without the thread that runs the handle: open_blocking() a new one "
                "in this process (a server that forks workers opens it in each worker, after "
                "the fork)"
            )
        if self._api is None:
            raise NotStarted(
                "this handle is not open: use `with paxoskv.open_blocking(config) as kv:`"
            )
        return self._api

    def get_local(self, key: Key, default: Any = None) -> Any:
        """The key's value in the embedded node's own copy now, read on the caller's thread.

        Every other call is handed to the loop's thread and waited for, which for this one was
        nearly all its cost: a request handler reading session state paid about 0.1 ms a read
        for a dict lookup of 1-2 us (twenty-seventh session, ``benchmarks/blocking_reads.py``).
        The lookup needs no loop: the node's loop replaces a key's row whole and never changes
        one in place or a value stored in it, and a command that changes several keys (a txn,
        a lease's revocation) shows whole or not at all, as to a read on the loop, since the
        node's read waits, yielding the GIL, while the loop's thread is halfway through a slot
        (``KVStateMachine.changes``). It is as stale as any ``local`` read (README,
        Guarantees). A caller that polls it should pause between reads (``time.sleep``) or use
        ``watch``/``on_change``: a thread that spins holds the GIL the node's loop needs, up to
        the interpreter's switch interval (5 ms) at a time, and slows the node's writes by as
        much. A thin client has no copy to read and says so (InvalidArgument).
        """
        api = self.api
        try:
            return api.get_local(key, default)
        except NodeClosed:
            if self._closing:  # closed under it: the handle's words, not the async Node's
                raise self._closed_error() from None
            raise
        except NoQuorum:  # the Node's words say "await": say what a blocking caller calls
            raise NoQuorum(
                "this node has no cluster yet: call kv.wait_ready() before reading its own "
                "copy with kv.get_local(), or read with kv.get(), which waits"
            ) from None

    def run(self, call: Callable[[KVApi], Awaitable[T]]) -> T:
        """``await call(api)`` on the handle's loop, and its result: several calls of the async
        API in one hand-over to the loop's thread, rather than one hand-over each (about
        0.1 ms apiece, ``benchmarks/blocking_reads.py``): a session backend's renewal and
        write, a read-modify-write of a few keys.

            revision = kv.run(lambda api: api.set("k", 1))
        """
        api = self.api  # NotStarted or NodeClosed here, in the caller's thread
        if not callable(call):
            raise InvalidArgument(
                f"run takes a function of the API, as `kv.run(lambda api: api.get('k'))`, "
                f"not {type(call).__name__}"
            )

        async def on_the_loop() -> T:
            awaitable = call(api)
            if not inspect.isawaitable(awaitable):
                raise InvalidArgument(
                    "run's function must return something to await (a call of the async "
                    f"API, or an async function's coroutine), not {type(awaitable).__name__}"
                )
            return await awaitable

        return self._run(on_the_loop())

    def __getattr__(self, name: str) -> Any:
        """Every method of the API, run to completion on the background loop; any other
        attribute (``config``, ``client_id``) as it is."""
        method = getattr(self.api, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if not inspect.iscoroutinefunction(method):  # made on the loop, where it may need it
                return self._run(_on_loop(method, *args, **kwargs))
            return self._run(method(*args, **kwargs))

        return call

    def on_change(
        self,
        prefix: Key | str | None,
        callback: Callable[[ChangeEvent], Awaitable[None] | None],
    ) -> concurrent.futures.Future[None]:
        """Call ``callback(event)`` for every change under ``prefix``, on the wrapper's own
        event-loop thread; ``.cancel()`` the returned future to stop (closing the wrapper
        stops it too). A callback that raises is logged and the next change still comes."""

        api = self.api  # NotStarted or NodeClosed here, in the caller's thread
        check_subscription(prefix, callback)  # here too: the future would only hold it

        async def follow() -> None:
            await api.on_change(prefix, callback)

        subscription = asyncio.run_coroutine_threadsafe(follow(), self._loop)
        self._subscriptions.add(subscription)
        subscription.add_done_callback(self._subscriptions.discard)
        return subscription

    def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> Iterator[ChangeEvent]:
        """Changes as an ordinary iterator; break out of the loop to stop watching."""
        # NotStarted or NodeClosed at the call, not at the first next(): a watch before open
        # waited for good, and a generator's body runs only when first iterated.
        api = self.api
        if threading.current_thread() is self._thread:  # its iteration would block the loop
            raise self._on_own_thread()
        return self._events(api, prefix, from_revision)

    def _events(
        self, api: KVApi, prefix: Key | str | None, from_revision: int | None
    ) -> Iterator[ChangeEvent]:
        events: queue.Queue[object] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in api.watch(prefix, from_revision):
                    events.put(event)
            except BaseException as error:  # handed to the iterating thread
                events.put(error)
            finally:
                events.put(_END)

        future = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while (item := events.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, ChangeEvent)
                yield item
        finally:
            future.cancel()


async def _on_loop(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return method(*args, **kwargs)


def open_blocking(config: Config, *, replica: bool = False) -> BlockingClient:
    """``with paxoskv.open_blocking(config) as kv: kv.set("k", 1)``.

    A thin client by default; ``replica=True`` embeds a :class:`~paxoskv.Node` instead.
    """
    from paxoskv.node import Node
    from paxoskv.remote import connect

    return BlockingClient(
        lambda: Node(config) if replica else connect(config), event_loop=config.event_loop
    )
