"""An embedded replica: this process holds the whole map and votes (or learns) in the cluster."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from paxoskv.client import Consistency, KVApi, check_from_revision
from paxoskv.config import Config
from paxoskv.errors import InvalidArgument, NodeClosed, NodeRemoved, NoQuorum, NotStarted
from paxoskv.runtime.loop import until_either
from paxoskv.runtime.membership import Member
from paxoskv.runtime.replica import Replica
from paxoskv.runtime.serving import ClientService, all_entries
from paxoskv.state import ChangeEvent, Configuration, Key
from paxoskv.transport import Transport


def _between_changes(replica: Replica, key: Key, default: Any) -> Any:
    """:meth:`Node.get_local` on a thread other than the loop's (a blocking handle's caller)
    that found the loop's thread applying a slot (``KVStateMachine.changes`` odd).

    A command that changes several keys must show whole or not at all, as it does to a read on
    the loop. A row whose mod revision is no later than the revision the slot started from
    (``changing_from``) was there before the slot and is kept: most keys are not the slot's.
    A key the slot changed, or one missing (the slot may have deleted it), is read again once
    the slot is done; ``sleep(0)`` hands the GIL to the applying thread meanwhile, and the wait
    can last a switch interval (5 ms) or the rest of a long slot. On the loop's own thread (a
    finalizer run halfway through a slot) nothing would finish the slot while it waited: the
    read is taken as it stands. A loop thread gone halfway through a slot (in a child forked
    meanwhile) never finishes it either: NodeClosed, not a wait for good.
    """
    while True:
        engine = replica.engine
        assert engine is not None
        state = engine.state
        mark = state.changes
        if mark & 1 and threading.current_thread() is not replica.loop_thread:
            start = state.changing_from
            entry = state.get(key)
            if entry is not None and entry.mod_revision <= start and state.changes == mark:
                return entry.value  # there before the slot began
            if not replica.loop_thread.is_alive():
                raise NodeClosed(
                    f"node {replica.node_id}'s event loop thread is gone (in a process forked "
                    "from the one that started it?): start a node in this process"
                )
            time.sleep(0)
            continue
        entry = state.get(key)
        if state.changes == mark or threading.current_thread() is replica.loop_thread:
            return default if entry is None else entry.value


class Node(KVApi):
    """A replica in this process. ``async with Node(config) as node:`` starts and stops it.

    Reads are served from this process's own copy of the map, after the read barrier the
    consistency asks for; writes go through the leader (forwarded if this node is not it).
    """

    def __init__(self, config: Config, *, transport: Transport | None = None) -> None:
        super().__init__(config)
        self._transport = transport
        self._replica: Replica | None = None
        self._service: ClientService | None = None
        self._closed = False
        self._stop_watch: asyncio.Future[Any] | None = None
        self._watch_wakes: set[asyncio.Event] = set()  # set at close, so watchers end

    @property
    def replica(self) -> Replica:
        if self._replica is None:
            raise NotStarted(
                "this node is not started: use `async with Node(config) as node:`, or await "
                "node.start() first"
            )
        return self._replica

    @property
    def node_id(self) -> str:
        return self.replica.node_id

    async def start(self) -> None:
        """Open the data dir, recover, and take part in the cluster (``async with`` calls it).

        A Node starts once: a second start used to build a second replica over the running
        one's, which failed on the data dir's lock but had already taken the running one's
        place, so the node answered as a stranger and the first replica ran on past close.
        """
        if self._closed:
            raise NodeClosed("this node is closed: start a new Node to use the cluster again")
        if self._replica is not None:
            raise InvalidArgument(
                "this node is started already (a Node starts once, and `async with node` "
                "starts it): use it as it is, or close it and start a new Node"
            )
        replica = Replica(self.config, transport=self._transport)
        self.client_id = f"{replica.node_id}-{self.client_id.rsplit('-', 1)[-1]}"
        self._replica = replica
        try:
            await replica.start()
        except BaseException:
            self._replica = None  # (it let go of what it opened): a later start may try again
            raise
        self._service = ClientService(replica)
        # A replica that stops on its own (an I/O error) ends the watches too.
        self._stop_watch = asyncio.ensure_future(replica.stopped.wait())
        self._stop_watch.add_done_callback(self._on_replica_stopped)
        # Writes go straight to the replica (its default timeout is this config's): no frame
        # of ours in between.
        self._send_request = replica.submit

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Until this node belongs to a cluster and has caught up with it.

        It has bootstrapped a cluster or joined one, and has applied the log up to the
        highest slot it has heard applied elsewhere (the members' hellos, the leader's commit
        point), so a ``local`` read right after it sees what was written before it joined.
        A node restarted from its data dir has heard little yet, and waits for less: use a
        ``linearizable`` read where that matters. Raises :class:`NoQuorum` after
        ``timeout_s`` (default ``request_timeout_s``), saying how far it got.
        """
        if timeout_s is not None and (
            type(timeout_s) not in (int, float) or not 0 < timeout_s < math.inf
        ):
            raise InvalidArgument(
                f"timeout_s must be a positive number of seconds, or None for the config's "
                f"request_timeout_s; not {timeout_s!r}"
            )
        replica = self._live()
        timeout = timeout_s or self.config.request_timeout_s
        deadline = time.monotonic() + timeout
        await replica.wait_ready(timeout)
        engine = replica.engine
        assert engine is not None
        target = max(
            [engine.known_commit, *(p.applied_slot for p in replica.peers.values() if p.wants)]
        )
        caught_up = asyncio.Event()
        me = replica.node_id

        def member(configuration: Configuration) -> bool:
            # A removed voter still owed votes runs on as "leaving": it belongs until it goes.
            return me in configuration.voters or me in configuration.learners or replica.leaving

        def check() -> None:
            # A joining node has the log before the leader has added it: it belongs to the
            # cluster once its own AddLearner is applied here (a learner's wait returned while
            # it was still joining, API audit, twenty-second session).
            current = replica.engine
            if (
                current is not None
                and current.applied_slot >= target
                and member(current.configuration)
            ):
                caught_up.set()

        replica.add_applied_listener(check)
        try:
            check()
            await until_either(caught_up, replica.stopped, max(deadline - time.monotonic(), 0.001))
            if replica.stopped.is_set():  # it stopped meanwhile: say why, not "wait again"
                self._live()
            if not caught_up.is_set():
                raise TimeoutError
        except TimeoutError:
            current = replica.engine or engine
            if not member(current.configuration):
                raise NoQuorum(
                    f"node {me} has the cluster's log but was not added to it within "
                    f"{timeout:g}s (the leader adds a joining node as a learner): it goes on "
                    "asking; wait again, and check that a leader is up"
                ) from None
            raise NoQuorum(
                f"node {me} joined but has not caught up within {timeout:g}s: "
                f"applied slot {current.applied_slot} of {target}; it goes on catching up, "
                "wait again"
            ) from None
        finally:
            replica.remove_applied_listener(check)

    async def close(self) -> None:
        """Stop the replica; every call from here on raises :class:`NodeClosed` at once."""
        if self._closed:
            return
        self._closed = True
        self._send_request = self._submit
        self._wake_watches()
        if self._replica is not None:
            await self._replica.stop()

    def _on_replica_stopped(self, _: object) -> None:
        self._send_request = self._submit  # which refuses, rather than wait on a dead replica
        self._wake_watches()

    def _wake_watches(self) -> None:
        for wake in self._watch_wakes:
            wake.set()

    def _live(self) -> Replica:
        """The running replica, or :class:`NodeClosed` once :meth:`close` began."""
        if self._closed:
            raise NodeClosed(
                "this node is closed (its `async with` block ended): start a new Node to use "
                "the cluster again"
            )
        replica = self.replica
        if replica.stopped.is_set():
            if isinstance(replica.failure, NodeRemoved):  # it says what to do: a fresh data dir
                raise NodeClosed(f"this node stopped: {replica.failure}")
            raise NodeClosed(
                f"this node stopped ({replica.failure or 'stopped'}); fix the cause and start a "
                "new Node: it recovers from its data dir"
            )
        return replica

    def _submit(self, client_id: str, seq: int, command: bytes) -> Awaitable[bytes]:
        return self._live().submit(client_id, seq, command, self.config.request_timeout_s)

    def get_local(self, key: Key, default: Any = None) -> Any:
        """The key's value in this node's own copy now, or ``default``: no await, no message.

        What ``await node.get(key, consistency="local")`` answers (possibly stale: see
        README, Guarantees), without giving the event loop a turn, for code that reads often
        and must not suspend, as a web server reading session state in a request. A caller
        that polls in a loop must still await something, or the node never applies what it
        polls for. NoQuorum if the node has no cluster yet (``await node.wait_ready()``
        first), NodeClosed once it is closed or stopped.

        It may be called from another thread too (a blocking handle calls it on its caller's):
        a read that finds the loop's thread halfway through a slot waits for the slot to be
        applied if the slot changed the key (see :func:`_between_changes`).
        """
        replica = self._live()
        engine = replica.engine
        if engine is None:
            raise NoQuorum(
                f"node {replica.node_id} has no cluster yet: await node.wait_ready() before "
                "reading its own copy, or await node.get(), which waits"
            )
        state = engine.state
        mark = state.changes
        if not mark & 1:
            entry = state.get(key)
            if state.changes == mark:  # read between two changes (see KVStateMachine.changes)
                return default if entry is None else entry.value
        return _between_changes(replica, key, default)

    async def _read(self, consistency: Consistency, op: str, argument: Any) -> Any:
        replica = self._live()
        await replica.read_barrier(consistency, self.config.request_timeout_s)
        assert replica.engine is not None
        state = replica.engine.state
        if op == "get":
            return state.get(argument)
        return all_entries(state, argument)

    async def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> AsyncIterator[ChangeEvent]:
        check_from_revision(from_revision)
        replica = self._live()
        await replica.wait_ready(self.config.request_timeout_s)
        assert replica.engine is not None
        after = replica.engine.state.revision if from_revision is None else from_revision - 1
        wake = asyncio.Event()
        replica.add_applied_listener(wake.set)
        self._watch_wakes.add(wake)
        try:
            while True:
                self._live()
                state = replica.engine.state  # replaced when a snapshot is installed
                scanned = state.revision
                for event in state.events_since(after, prefix):
                    yield event
                after = max(after, scanned)
                wake.clear()
                if replica.engine.state.revision <= after and not self._closed:
                    if replica.stopped.is_set():
                        continue  # (raised at the top)
                    await wake.wait()
        finally:
            self._watch_wakes.discard(wake)
            replica.remove_applied_listener(wake.set)

    async def members(self) -> list[Member]:
        return self._live().members()

    async def status(self) -> dict[str, Any]:
        status = self._live().status()
        if self._service is not None:
            status["replies_in_parts"] = self._service.replies_in_parts
            status["replies_refused"] = self._service.replies_refused
        return status
