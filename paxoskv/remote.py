"""A thin client: use the cluster from a process that is not a replica (the CLI, small apps).

It joins the cluster's transport under an id of its own, learns the members from their
hellos (asking with a ``whois`` at start), and sends each request to the leader it heard of,
or to any member. A request that gets no answer is sent again, to the next member, under the
same (client_id, seq): the state machine's dedup table applies it once however many copies
arrive. A reply too big for one datagram comes in parts, which it fetches one after another
(see :mod:`paxoskv.runtime.serving`). It needs the cluster name, the group (or peers), the
interface and the secret (``paxoskv.connect(config)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Collection, Coroutine
from typing import TYPE_CHECKING, Any

from paxoskv.client import Consistency, KVApi, check_from_revision
from paxoskv.config import Config
from paxoskv.errors import (
    Compacted,
    InvalidKey,
    NodeClosed,
    NoQuorum,
    NotStarted,
    PayloadTooLarge,
    UndecodableReply,
    WrongSecret,
)
from paxoskv.runtime import protocol
from paxoskv.runtime.loop import within
from paxoskv.state.keys import Key, check_key, check_prefix, key_to_wire
from paxoskv.state.results import key_value_from_row
from paxoskv.transport.base import DropReason, Transport
from paxoskv.transport.factory import open_transport

if TYPE_CHECKING:
    from paxoskv.runtime.membership import Member
    from paxoskv.state.history import ChangeEvent

log = logging.getLogger(__name__)

RETRY_AFTER_S = 0.5
# A turn's requests go in bundles of at most this many, each as soon as it is full: the
# member works on one while this process makes the next, rather than the two taking turns.
BUNDLE_REQUESTS = 16
WATCH_RENEW_S = 3.0
PART_RETRY_S = 0.2  # a part asked for and not come: ask again (one part is in flight at a time)

_Reply = tuple[str, str, list[Any]]  # sender, name, fields


class Client(KVApi):
    """A handle on a cluster this process does not replicate. Made by :func:`connect`."""

    def __init__(
        self, config: Config, *, transport: Transport | None = None, node_id: str | None = None
    ) -> None:
        super().__init__(config)
        self.pinned_node_id = node_id  # send everything to this member (its own local reads)
        self.client_node_id = f"client-{secrets.token_hex(6)}"
        self.client_id = self.client_node_id
        self._given_transport = transport
        self._transport: Transport | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._heard: dict[str, tuple[float, protocol.Hello]] = {}
        self._heard_any = asyncio.Event()
        self._waiting: dict[tuple[Any, ...], asyncio.Future[_Reply | None]] = {}
        self._early: dict[tuple[Any, ...], _Reply] = {}  # see _on_message
        # Parts asked for, by (member, part id, offset): a list, so two fetches of the same
        # part both get it rather than one overwriting the other's wait.
        self._part_waiters: dict[tuple[Any, ...], list[asyncio.Future[_Reply]]] = {}
        self._watch_queues: dict[int, asyncio.Queue[_Reply]] = {}
        self._closed = False
        self._ids = itertools.count(1)
        self._rotation = 0
        self._first_heard_at = 0.0  # when the first member's hello came
        # Requests of this turn of the loop, by member: sent together when the turn ends.
        self._outgoing: dict[str, list[bytes]] = {}
        self._sends: asyncio.Task[None] | None = None  # sends a full socket buffer held up

    async def start(self) -> None:
        self._transport = self._given_transport or await open_transport(
            self.client_node_id, self.config.transport_settings(node_incarnation=None)
        )
        self._receiver = asyncio.create_task(self._receive_loop(), name="paxoskv client")
        await self._transport.broadcast(protocol.encode_runtime("whois"))

    async def close(self) -> None:
        self._closed = True
        for queue in self._watch_queues.values():  # watchers end rather than wait forever
            queue.put_nowait(("", "closed", []))
        for key, future in self._waiting.items():
            if not future.done():  # a write's outcome is unknown then: it may have been applied
                future.set_exception(self._closed_error(write=key[0] == "rep"))
        for waiter in itertools.chain.from_iterable(self._part_waiters.values()):
            if not waiter.done():
                waiter.set_exception(self._closed_error())
        if self._sends is not None:
            self._sends.cancel()
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        if self._transport is not None and self._given_transport is None:
            await self._transport.close()

    # --- the network -----------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        assert self._transport is not None
        while True:
            sender, payload = await self._transport.receive()
            if payload[:1] != protocol.RUNTIME:
                continue  # Paxos traffic is for the replicas
            try:
                name, fields = protocol.decode_runtime(payload)
                if name == protocol.BUNDLE:
                    for part in protocol.bundle_parts(fields):
                        self._on_payload(sender, part)
                else:
                    self._on_message(sender, name, fields)
            except protocol.MalformedRuntimeMessage as error:
                self._on_undecodable(sender, error)
            except (ValueError, TypeError, LookupError):  # (a reply short of its fields)
                continue

    def _on_payload(self, sender: str, payload: bytes) -> None:
        """One reply of a bundle: a malformed one fails its own request, not its neighbours'."""
        try:
            name, fields = protocol.decode_runtime(payload)
            if name != protocol.BUNDLE:
                self._on_message(sender, name, fields)
        except protocol.MalformedRuntimeMessage as error:
            self._on_undecodable(sender, error)
        except (ValueError, TypeError, LookupError):
            pass

    def _post(self, target: str, payload: bytes) -> None:
        """Send ``payload`` to ``target`` when this turn of the loop ends, with whatever else
        goes there: in one bundle where the member reads them (its hellos say so)."""
        waiting = self._outgoing.get(target)
        if waiting is None:
            if not self._outgoing:
                asyncio.get_running_loop().call_soon(self._flush_outgoing)
            self._outgoing[target] = [payload]
        else:
            waiting.append(payload)
            if len(waiting) >= BUNDLE_REQUESTS:
                self._flush_outgoing()

    def _flush_outgoing(self) -> None:
        outgoing, self._outgoing = self._outgoing, {}
        transport = self._transport
        if not outgoing or transport is None or self._closed:
            return  # (sent already: a bundle that filled up went at once)
        limit = transport.max_payload_bytes
        sends: list[tuple[str | None, bytes]] = []
        for target, payloads in outgoing.items():
            heard = self._heard.get(target)
            if len(payloads) > 1 and heard is not None and heard[1].bundles:
                sends.extend((target, datagram) for datagram in protocol.bundles(payloads, limit))
            else:
                sends.extend((target, payload) for payload in payloads)
        if self._sends is not None:  # behind sends a full buffer holds up, in order
            self._sends = asyncio.ensure_future(self._send_after(self._sends, sends))
            return
        try:
            rest = transport.send_soon(sends)
        except Exception as error:  # as a lost datagram: the request's retry sends it again
            log.debug("a client's send failed: %s", error)
            return
        if rest is not None:
            self._sends = asyncio.ensure_future(self._send_rest(rest))

    async def _send_rest(self, rest: Coroutine[Any, Any, None]) -> None:
        try:
            await rest
        except Exception as error:
            log.debug("a client's send failed: %s", error)
        finally:
            if self._sends is asyncio.current_task():  # (not one chained behind it since)
                self._sends = None

    async def _send_after(
        self, before: asyncio.Task[None], sends: list[tuple[str | None, bytes]]
    ) -> None:
        with contextlib.suppress(Exception):
            await before
        assert self._transport is not None
        try:
            await self._transport.send_many(sends)
        except Exception as error:
            log.debug("a client's send failed: %s", error)
        finally:
            if self._sends is asyncio.current_task():
                self._sends = None

    def _on_undecodable(self, sender: str, error: protocol.MalformedRuntimeMessage) -> None:
        """A reply that does not decode fails the request it answers, if it says which."""
        route = protocol.ROUTE_FIELDS.get(error.name or "")
        if route is None or len(error.head) < route:
            return
        self._on_message(sender, "fail", [error.name, error.head[:route], str(error)])

    def _on_message(self, sender: str, name: str, fields: list[Any]) -> None:
        if name == "hello":
            hello = protocol.decode_hello(fields)
            # (A leaving node is heard too, so that a command pinned to it reaches it, but no
            # request goes its way unpinned: it stops soon.)
            if hello.wants in ("voter", "learner", "leaving"):
                self._heard[sender] = (time.monotonic(), hello)
                if not self._heard_any.is_set():
                    self._first_heard_at = time.monotonic()
                    self._heard_any.set()
            return
        key: tuple[Any, ...] = ()
        if name in ("part", "gone"):  # a part this client asked for, or its absence
            key = ("part", sender, *(fields[2:4] if name == "part" else fields[0:2]))
            waiters = self._part_waiters.pop(key, [])
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result((sender, name, fields))
            if waiters or name == "gone":
                return
        if name in ("part", "fail"):  # the first part of a reply, or a reply's failure
            kind, route = fields[0], fields[1]
            key = (kind, *route)
            if kind in ("events", "compacted"):
                self._to_watch(int(route[0]), (sender, name, fields))
                return
        elif name in ("events", "compacted"):
            self._to_watch(int(fields[0]), (sender, name, fields))
            return
        elif name == "rep":
            key = ("rep", fields[0], fields[1])
        elif name in ("readrep", "statusrep"):
            key = (name, fields[0])
        else:
            return
        future = self._waiting.pop(key, None)
        if future is None:
            return
        if not future.done():
            future.set_result((sender, name, fields))
        elif not future.cancelled() and future.exception() is None:
            # Its retry timer woke the wait empty in this same turn, and the wait has not
            # resumed yet: it takes this reply when it does, rather than ask again.
            self._early[key] = (sender, name, fields)

    def _to_watch(self, watch_id: int, reply: _Reply) -> None:
        queue = self._watch_queues.get(watch_id)
        if queue is not None:
            queue.put_nowait(reply)

    async def _fetch_rest(self, sender: str, first: list[Any]) -> bytes | None:
        """The whole of a reply whose first part came: each next part asked for in turn.

        None if the member stopped answering, no longer has it, or answers with a part of
        another reply (its name, route or total differ: it restarted and reused the id); the
        caller then asks again from the start (its retry or its watch renewal). A part comes at
        most ``request_timeout_s`` after the one before, however long the whole takes.
        """
        assert self._transport is not None
        kind, route, part_id, offset, total, piece = first
        if offset != 0 or type(total) is not int or type(piece) is not bytes:
            return None
        received = bytearray(piece)
        loop = asyncio.get_running_loop()
        while len(received) < total:
            key = ("part", sender, part_id, len(received))
            future: asyncio.Future[_Reply] = loop.create_future()
            self._part_waiters.setdefault(key, []).append(future)
            deadline = time.monotonic() + self.config.request_timeout_s
            ask = protocol.encode_runtime("more", part_id, len(received))
            try:
                while not future.done():
                    if time.monotonic() >= deadline:
                        return None
                    await self._transport.send(sender, ask)
                    with contextlib.suppress(TimeoutError):
                        await within(asyncio.shield(future), PART_RETRY_S)
            finally:
                waiters = self._part_waiters.get(key, [])
                if future in waiters:
                    waiters.remove(future)
                    if not waiters:
                        del self._part_waiters[key]
            _, name, fields = future.result()
            if name != "part" or type(fields[5]) is not bytes or not fields[5]:
                return None  # "gone": it expired there
            if fields[0] != kind or fields[1] != route or fields[4] != total:
                return None  # a part of another reply under the same id
            received += fields[5]
        return bytes(received)

    async def _whole(self, reply: _Reply) -> _Reply | None:
        """``reply`` itself, or the reply its parts make; None if the parts could not be had.

        Raises :class:`UndecodableReply` for a reply that failed (``fail``) or does not decode.
        """
        sender, name, fields = reply
        if name == "part":
            payload = await self._fetch_rest(sender, fields)
            if payload is None:
                return None
            try:
                name, fields = protocol.decode_runtime(payload)
            except protocol.MalformedRuntimeMessage as error:
                name, fields = "fail", [error.name, [], str(error)]
        if name == "fail" and fields[3:4] == ["busy"]:
            await asyncio.sleep(PART_RETRY_S)  # it keeps all the answers it can: not at once
            return None
        if name == "fail" and fields[3:4] == ["too_large"]:
            raise PayloadTooLarge(int(fields[4]), int(fields[5]), str(fields[2]))
        if name == "fail":
            raise UndecodableReply(
                f"member {sender!r} answered, but its {fields[0]} could not be read: "
                f"{fields[2]}; run the same paxos-kv release on clients and nodes"
            )
        if name == "closed":
            raise self._closed_error()
        return sender, name, fields

    def _closed_error(self, *, write: bool = False) -> NodeClosed:
        unknown = (
            "; the write waiting then may or may not have been applied: read the key back"
            if write
            else ""
        )
        return NodeClosed(
            "this client is closed (its `async with` block ended): connect again to use the "
            f"cluster{unknown}"
        )

    def _fresh_leader(self, now: float) -> str | None:
        """The leader, if its hello is recent and it is not leaving: where a first attempt
        goes, found without building the lists :meth:`_target` looks through."""
        if self.pinned_node_id is not None:
            return None
        leader = self._leader()
        if leader is None:
            return None
        seen, hello = self._heard[leader]
        if now - seen >= self.config.suspect_after_s or hello.wants == "leaving":
            return None
        return leader

    def _members_up(self) -> list[str]:
        now = time.monotonic()
        return sorted(
            node
            for node, (seen, hello) in self._heard.items()
            if now - seen < self.config.down_after_s and hello.wants != "leaving"
        )

    def _leader(self) -> str | None:
        latest = max(self._heard.values(), key=lambda item: item[0], default=None)
        leader = latest[1].leader_id if latest else ""
        return leader if leader in self._heard else None

    async def _target(self, deadline: float, attempt: int, tried: Collection[str] = ()) -> str:
        """The member to ask: the leader, if heard from lately; on a retry, a leader not yet
        tried (a new one, once the old is gone), else a member heard from lately that was not
        tried, in turn (any member forwards to the leader).

        A retry used to rotate over every member heard within ``down_after_s``, a killed
        leader among them for 3 s, and never went to the new leader the hellos named: with a
        leader killed, writes of a thin client waited 1.4-3 s, and some ran out of time
        (API audit, twenty-second session)."""
        remaining = deadline - time.monotonic()
        if not self._heard_any.is_set():
            try:
                await within(self._heard_any.wait(), max(remaining, 0.001))
            except TimeoutError:
                self._raise_if_wrong_secret()
                raise NoQuorum(
                    f"no member of cluster {self.config.cluster!r} answered within "
                    f"{self.config.request_timeout_s:g}s {self.config.reach()}: is it "
                    f"running? Check {self.config.reach_flags()}"
                ) from None
        if self.pinned_node_id is not None:
            await self._await_heard(self.pinned_node_id, deadline)
            return self.pinned_node_id
        members = self._members_up() or sorted(self._heard)
        now = time.monotonic()
        fresh = [
            node for node in members if now - self._heard[node][0] < self.config.suspect_after_s
        ] or members
        leader = self._leader()
        if leader in fresh and (attempt == 0 or leader not in tried):
            return leader
        untried = [node for node in fresh if node not in tried] or fresh
        self._rotation += 1
        return untried[self._rotation % len(untried)]

    async def _await_heard(self, node_id: str, deadline: float) -> None:
        """Until ``node_id`` has said hello (so the transport knows where it is); given up
        ``suspect_after_s`` after the first member was heard, when every member up has said
        hello at least once (a misspelt ``--node`` waited out the whole request timeout)."""
        while node_id not in self._heard:
            waited = time.monotonic() - self._first_heard_at
            if self._heard_any.is_set() and waited >= self.config.suspect_after_s:
                heard = ", ".join(sorted(self._heard))
                raise NoQuorum(
                    f"member {node_id!r} is not heard from: it is not a member, or it is down; "
                    f"members heard: {heard}"
                )
            if time.monotonic() >= deadline:
                heard = ", ".join(sorted(self._heard)) or "none"
                raise NoQuorum(f"member {node_id!r} did not answer; members heard: {heard}")
            await asyncio.sleep(0.02)

    def _raise_if_wrong_secret(self) -> None:
        """Frames arrived but none authenticated: the secret is wrong, not the cluster down."""
        transport = self._transport
        if transport is not None and transport.stats.dropped[DropReason.BAD_TAG] > 0:
            if self.config.cluster_secret() is None:
                problem = (
                    "they carry a secret's tag and no secret was given (secret_file, --secret-file)"
                )
            else:
                problem = (
                    "the secret given (secret_file, --secret-file) is not the cluster's, or "
                    "the cluster's encrypt setting is not this one's (encrypt, PAXOS_KV_ENCRYPT)"
                )
            raise WrongSecret(
                f"datagrams from cluster {self.config.cluster!r} failed authentication: "
                f"{problem}; use the cluster's secret file and encrypt setting"
            )

    def _check_open(self) -> None:
        """:class:`NodeClosed` after close, :class:`NotStarted` before start (not an assert)."""
        if self._closed:
            raise self._closed_error()
        if self._transport is None:
            raise NotStarted(
                "this client is not connected: use `async with paxoskv.connect(config) as "
                "client:`, or await client.start() first"
            )

    async def _ask(self, key: tuple[Any, ...], message: bytes, what: str) -> list[Any]:
        """Send ``message`` until the reply named ``key`` comes, trying member after member."""
        self._check_open()
        assert self._transport is not None
        now = time.monotonic()
        deadline = now + self.config.request_timeout_s
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Reply | None] = loop.create_future()
        self._waiting[key] = future
        timer: asyncio.TimerHandle | None = None
        try:
            tried: list[str] = []
            for attempt in itertools.count():
                if self._closed:  # closed while this waited (a retry, a "busy" pause)
                    raise self._closed_error(write=key[0] == "rep")
                target = self._fresh_leader(now) if attempt == 0 else None
                if target is None:
                    target = await self._target(deadline, attempt, tried)
                tried.append(target)
                if len(message) > self._transport.max_payload_bytes:
                    await self._transport.send(target, message)  # PayloadTooLarge, as it says
                else:
                    self._post(target, message)
                wait = min(RETRY_AFTER_S * (attempt + 1), deadline - time.monotonic())
                if wait <= 0:
                    break
                # A plain timer that wakes the wait with None, rather than asyncio.timeout
                # around a shield: that pair was a quarter of a pipelining client's CPU.
                timer = loop.call_later(wait, _wake_empty, future)
                reply = await future
                timer.cancel()
                if reply is None:
                    reply = self._early.pop(key, None)  # came in the turn its timer fired
                if reply is not None:
                    whole = await self._whole(reply)
                    if whole is not None:
                        return whole[2]
                if self._closed:
                    raise self._closed_error(write=key[0] == "rep")
                # No answer in time, or its parts were lost: ask again.
                future = loop.create_future()
                self._waiting[key] = future
                now = time.monotonic()
                if now >= deadline:
                    break
        finally:
            if timer is not None:
                timer.cancel()
            self._waiting.pop(key, None)
            self._early.pop(key, None)
        raise NoQuorum(
            f"the cluster did not complete the {what} within "
            f"{self.config.request_timeout_s:g}s (no quorum, or no leader yet)"
            + (
                "; the write may or may not have been applied: read the key back before "
                "writing again (a call made again is a new write; cas or if_revision makes a "
                "second attempt safe)"
                if what == "write"
                else ""
            )
        )

    # --- KVApi ---------------------------------------------------------------------------------

    async def _submit(self, client_id: str, seq: int, command: bytes) -> bytes:
        message = protocol.encode_runtime("req", client_id, seq, command)
        fields = await self._ask(("rep", client_id, seq), message, "write")
        result: bytes = fields[2]
        return result

    async def _read(self, consistency: Consistency, op: str, argument: Any) -> Any:
        read_id = next(self._ids)
        if argument is not None:  # checked here: a wrong type is InvalidKey in either build
            argument = check_key(argument) if op == "get" else check_prefix(argument)
        wire = key_to_wire(argument) if argument is not None else None
        message = protocol.encode_runtime("read", read_id, consistency, op, wire)
        _, _, payload, error = await self._ask(("readrep", read_id), message, "read")
        if error:
            raise InvalidKey(error)
        if op == "get":
            return None if payload is None else key_value_from_row(payload)
        return [key_value_from_row(row) for row in payload]

    async def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> AsyncIterator[ChangeEvent]:
        """See :meth:`KVApi.watch`. Raises :class:`NoQuorum` once no member has answered (an
        event, or the answer to a renewal) for ``request_timeout_s``: the cluster is gone or
        out of reach, and waiting longer would hang a caller for good."""
        check_from_revision(from_revision)
        self._check_open()
        if prefix is not None:
            check_prefix(prefix)
        watch_id = next(self._ids)
        queue: asyncio.Queue[_Reply] = asyncio.Queue()
        self._watch_queues[watch_id] = queue
        wire_prefix = key_to_wire(prefix) if prefix is not None else None
        # Where this watch is: every event up to a revision, and how many of the next one's.
        after: tuple[int, int] | None = None if from_revision is None else (from_revision - 1, 0)
        timeout_s = self.config.request_timeout_s
        # Renewed often enough that one lost renewal or answer is not taken for lost contact.
        renew_s = min(WATCH_RENEW_S, max(0.05, timeout_s / 4))
        answer_s = min(RETRY_AFTER_S, renew_s / 2)  # a member answers each (re)newal at once
        target = await self._target(time.monotonic() + timeout_s, 0)
        assert self._transport is not None
        heard_at = time.monotonic()
        try:
            while True:
                message = protocol.encode_runtime("watch", watch_id, wire_prefix, *_position(after))
                await self._transport.send(target, message)
                asked_at = time.monotonic()
                renew_at = asked_at + renew_s
                answer_by = asked_at + answer_s
                while (
                    remaining := (renew_at if heard_at >= asked_at else answer_by)
                    - time.monotonic()
                ) > 0:
                    try:
                        reply = await within(queue.get(), remaining)
                    except TimeoutError:
                        break
                    whole = await self._whole(reply)
                    if whole is None:
                        # Its parts were lost, or the member is too busy to keep them: renew
                        # from what we have. Not contact: a member that answered "busy" for
                        # good kept the watch waiting for good, with no error (CLI audit,
                        # twenty-second session).
                        break
                    heard_at = time.monotonic()
                    _, name, fields = whole
                    if name == "compacted":
                        raise Compacted(int(fields[1]), int(fields[2]))
                    _, sent_after, upto, events, *parts = fields
                    after_part, upto_part = parts[0] if parts else (0, 0)
                    if after is None:
                        # Where "from now on" begins: the member's first answer, with no
                        # events. Anything else means it was lost, and the member says it
                        # again when asked with no position.
                        if events or (sent_after, after_part) != (upto, upto_part):
                            break
                    elif (sent_after, after_part) != after:
                        break  # a datagram was lost: renew now, from what we have
                    for raw in events:
                        yield protocol.event_from_wire(raw)
                    after = (int(upto), int(upto_part))
                    # Time the consumer spent on events is not silence from the cluster.
                    heard_at = time.monotonic()
                silent_s = time.monotonic() - heard_at
                if silent_s >= timeout_s:
                    raise NoQuorum(
                        f"lost contact with the cluster: no member answered the watch for "
                        f"{silent_s:.1f}s (last asked: {target}); watch again once it is back"
                        + _resume_hint(after)
                    )
                # Another member next, if this one did not answer this renewal within
                # answer_s (a member answers each one at once, events or none) and the watch
                # has a position to resume from there; without one, only this member knows
                # where the watch began (another would begin "now", after anything made
                # meanwhile: lost). Waiting a whole renewal period of silence instead left a
                # dead member's watchers without events for one to two periods (review,
                # twenty-ninth session: 2.5-4.5 s with request_timeout_s=10).
                silent = heard_at < asked_at and after is not None
                if silent or target not in self._members_up():
                    # The old one stops pushing if it is still there.
                    await self._transport.send(target, protocol.encode_runtime("unwatch", watch_id))
                    target = await self._target(time.monotonic() + timeout_s, 1, (target,))
        finally:
            self._watch_queues.pop(watch_id, None)
            if not self._closed:
                with contextlib.suppress(Exception):
                    await self._transport.send(target, protocol.encode_runtime("unwatch", watch_id))

    async def _status(self) -> list[Any]:
        request_id = next(self._ids)
        message = protocol.encode_runtime("status", request_id)
        return await self._ask(("statusrep", request_id), message, "status request")

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = (await self._status())[1]
        return status

    async def members(self) -> list[Member]:
        from paxoskv.runtime.membership import Member  # here: only this command needs it

        rows = (await self._status())[2]
        return [Member(str(a), str(b), str(c), int(d), bool(e)) for a, b, c, d, e in rows]

    def heard_members(self) -> dict[str, str]:
        """Members this client has heard from, with their liveness (no request sent)."""
        from paxoskv.runtime.membership import liveness

        now = time.monotonic()
        return {
            node: liveness(now, seen, self.config.suspect_after_s, self.config.down_after_s)
            for node, (seen, _) in self._heard.items()
        }


def _wake_empty(future: asyncio.Future[_Reply | None]) -> None:
    if not future.done():
        future.set_result(None)


def _position(after: tuple[int, int] | None) -> list[int | None]:
    """A watch position's fields: the part inside the next revision only when there is one."""
    if after is None:
        return [None]
    revision, part = after
    return [revision, part] if part else [revision]


def _resume_hint(after: tuple[int, int] | None) -> str:
    if after is None:
        return ""
    revision, part = after
    if not part:
        return f", from revision {revision + 1}"
    return f", from revision {revision + 1} (you have the first {part} of its events)"


def connect(
    config: Config, *, transport: Transport | None = None, node_id: str | None = None
) -> Client:
    """A client of the cluster ``config`` names: ``async with paxoskv.connect(config) as c:``.

    With ``node_id`` every request goes to that member, so ``consistency="local"`` reads its
    own copy (how stale is that learner?) instead of whichever member answers first.
    """
    return Client(config, transport=transport, node_id=node_id)
