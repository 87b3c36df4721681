"""Serving processes that use the cluster without being replicas (the CLI, thin clients).

A client sends a request to any member; the member proposes it under the client's own
(client_id, seq), so a retry sent to another member is applied once, and answers when the
command is applied here. Reads go through the same read barrier as a local read. A watch is a
subscription the client renews every few seconds; events carry positions, so a client that
lost a datagram sees the gap and re-subscribes from the last position it has. A position is a
revision whose events the client has whole, plus how many of the next revision's it has: one
revision's events (a txn, a lease revoke) may fill several datagrams, and a revision alone
could not say which of them was lost. A renewal is
always answered (an empty batch of events when nothing changed), so a client that hears
nothing for a while knows it has lost contact rather than waiting forever.

A reply bigger than one datagram is kept here for a while as bytes, and sent in parts: the
first at once, each next one when the client asks for it (``more``), one in flight at a time,
so a listing of any size neither overruns the client's socket buffer nor is dropped at send.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from paxoskv.errors import Compacted, InvalidKey, ValueNotSerialisable
from paxoskv.paxos import effects as fx
from paxoskv.paxos.messages import Request, valid_request
from paxoskv.runtime import protocol
from paxoskv.runtime.clock import now as clock_now
from paxoskv.runtime.replica import Replica
from paxoskv.state import Key, KeyValue
from paxoskv.state.frozen_plain import PlainRecord
from paxoskv.state.keys import check_prefix, key_from_wire, key_to_wire
from paxoskv.state.results import row_to_wire

log = logging.getLogger("paxoskv.node")

WATCH_LEASE_S = 10.0
EVENTS_PER_DATAGRAM = 64
PARTS_KEPT_S = 30.0  # how long a reply sent in parts waits for its client to ask for the rest
PARTS_KEPT_BYTES = 64 * 1024 * 1024  # replies in parts kept at most, and the most one may be


class _Parts(PlainRecord):
    """A reply too big for a datagram, kept until its client has fetched every part."""

    __slots__ = ("client", "expires_at", "name", "payload", "route")
    __match_args__ = ("client", "name", "route", "payload", "expires_at")

    client: str
    name: str
    route: list[Any]
    payload: bytes
    expires_at: float

    def __init__(
        self, client: str, name: str, route: list[Any], payload: bytes, expires_at: float
    ) -> None:
        self.client = client
        self.name = name
        self.route = route
        self.payload = payload
        self.expires_at = expires_at


Position = tuple[int, int]
"""Where a watcher is: every event up to this revision, plus this many of the next one's.

The events of one revision are in the same order on every replica, so a count into them
names the same events whichever member the client renews with."""


class _Watch(PlainRecord):
    __slots__ = (
        "after_revision",
        "client",
        "expires_at",
        "fetched",
        "in_parts",
        "in_parts_from",
        "prefix",
        "sent_upto",
        "skip",
        "start",
        "watch_id",
    )
    __match_args__ = (
        "client",
        "watch_id",
        "prefix",
        "start",
        "after_revision",
        "skip",
        "sent_upto",
        "expires_at",
    )

    client: str
    watch_id: int
    prefix: Any
    start: int  # where it began: a client that has no position yet starts here
    after_revision: int  # events up to here were considered
    skip: int  # ... and this many of the next revision's the client has (after a renewal)
    sent_upto: Position  # where the last datagram sent left the client: it checks continuity
    expires_at: float
    # A push too big for one datagram, sent in parts, whose last part the client has not
    # asked for yet: nothing more is pushed to the watch until it has (see ClientService._push).
    in_parts: int | None
    in_parts_from: Position  # where that push begins
    fetched: int | None  # the push in parts before it, sent whole: kept till that is sure

    def __init__(
        self,
        client: str,
        watch_id: int,
        prefix: Any,
        start: int,
        skip: int,
        expires_at: float,
    ) -> None:
        self.client = client
        self.watch_id = watch_id
        self.prefix = prefix
        self.start = start
        self.after_revision = start
        self.skip = skip
        self.sent_upto = (start, skip)
        self.expires_at = expires_at
        self.in_parts = None
        self.in_parts_from = (start, skip)
        self.fetched = None

    def rewind(self, revision: int, skip: int) -> None:
        """Send again from this position: the client lost what came after it."""
        self.after_revision = revision
        self.skip = skip
        self.sent_upto = (revision, skip)
        self.in_parts = None  # (it gave that up too)


def chunk_positions(events: list[Any], start: Position, size: int) -> list[tuple[int, Position]]:
    """Where each datagram of ``size`` events leaves the client: (end index, position).

    ``events`` follow ``start`` with nothing between; a datagram that ends inside a revision
    says how many of that revision's events the client then has, counting those it had
    before ``events`` began when the revision is the one ``start`` is partway through.
    """
    positions = []
    for end in range(size, len(events) + size, size):
        end = min(end, len(events))
        revision = events[end - 1].revision
        if end == len(events) or events[end].revision != revision:
            positions.append((end, (revision, 0)))
            continue
        first = end - 1
        while first > 0 and events[first - 1].revision == revision:
            first -= 1
        had = start[1] if first == 0 and start[0] + 1 == revision else 0
        positions.append((end, (revision - 1, had + end - first)))
    return positions


def all_entries(state: Any, prefix: Key | str | None) -> list[KeyValue]:
    """Entries under ``prefix``; ``None`` means every key (str, then bytes, then tuple keys)."""
    if prefix is None:
        return [*state.range(""), *state.range(b""), *state.range(())]
    entries: list[KeyValue] = state.range(prefix)
    return entries


def prefix_from_wire(raw: object) -> Any:
    """A prefix as it travels: None (every key), or a key's wire form, or an empty prefix."""
    if raw is None:
        return None
    return check_prefix(tuple(raw) if type(raw) is list else raw)


class ClientService:
    """The member's side of the client protocol."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._origins: dict[tuple[str, int], str] = {}
        self._watches: dict[tuple[str, int], _Watch] = {}
        self._parts: OrderedDict[int, _Parts] = OrderedDict()
        self._parts_bytes = 0
        self._parts_sweep: asyncio.TimerHandle | None = None
        self.replies_in_parts = 0  # shown in status(): replies too big for one datagram
        # ... and replies refused: not encodable, over PARTS_KEPT_BYTES, or no room left to keep
        self.replies_refused = 0
        handlers = {
            "more": self._on_more,
            "req": self._on_request,
            "read": self._on_read,
            "watch": self._on_watch,
            "unwatch": self._on_unwatch,
            "status": self._on_status,
        }
        for name, handler in handlers.items():
            replica.on_runtime_message(name, _guarded(name, handler))
        replica.add_answer_listener(self._on_answer)
        replica.add_applied_listener(self._push_all)

    def _send(self, to: str, kind: str, *fields: Any) -> int | None:
        """Send a reply whole, or its first part when it is too big for one datagram; the id
        of its parts then (None otherwise, or when it was refused)."""
        try:
            payload = protocol.encode_runtime(kind, *fields)
        except ValueNotSerialisable as error:  # a bug of ours: say so rather than go quiet
            self.replies_refused += 1
            log.warning("a %s reply to %s could not be encoded: %s", kind, to, error)
            route = list(fields[: protocol.ROUTE_FIELDS.get(kind, 0)])
            payload = protocol.encode_runtime("fail", kind, route, str(error))
        room = self._room_bytes()
        if len(payload) <= room:
            self.replica.send_runtime(to, payload)
            return None
        if self.replies_in_parts == 0:
            log.info(
                "replies over one datagram (%d bytes) go to clients in parts; the first was a "
                "%s of %d bytes",
                room,
                kind,
                len(payload),
            )
        route = list(fields[: protocol.ROUTE_FIELDS.get(kind, 0)])
        self._drop_expired_parts()
        if len(payload) > PARTS_KEPT_BYTES:
            self.replies_refused += 1
            message = (
                f"the {kind} answer is {len(payload)} bytes, over the {PARTS_KEPT_BYTES} bytes "
                "a member keeps for a client: list a narrower prefix, or embed a Node to read it"
            )
            fail = protocol.encode_runtime(
                "fail", kind, route, message, "too_large", len(payload), PARTS_KEPT_BYTES
            )
            self.replica.send_runtime(to, fail)
            return None
        if self._parts_bytes + len(payload) > PARTS_KEPT_BYTES:
            # Full of answers clients are still fetching: evicting them would make those
            # clients start over and evict others in turn. This client asks again (elsewhere).
            self.replies_refused += 1
            message = f"this member keeps {self._parts_bytes} bytes of answers; ask again"
            fail = protocol.encode_runtime("fail", kind, route, message, "busy")
            self.replica.send_runtime(to, fail)
            return None
        self.replies_in_parts += 1
        # Random, not counted: a member restarted must not answer a client's ``more`` for a
        # reply of its earlier run with a slice of another reply under the same id.
        part_id = secrets.randbits(63)
        while part_id in self._parts:
            part_id = secrets.randbits(63)
        self._keep_parts(part_id, _Parts(to, kind, route, payload, clock_now() + PARTS_KEPT_S))
        self._send_part(part_id, 0)
        return part_id

    def _room_bytes(self) -> int:
        transport = self.replica.transport
        return transport.max_payload_bytes if transport is not None else 60_000

    def _keep_parts(self, part_id: int, parts: _Parts) -> None:
        self._parts[part_id] = parts
        self._parts_bytes += len(parts.payload)
        if self._parts_sweep is None:
            self._sweep_parts()

    def _sweep_parts(self) -> None:
        """Drop expired answers, and come back while any is kept: an idle member frees them too."""
        self._parts_sweep = None
        self._drop_expired_parts()
        if self._parts:
            loop = asyncio.get_running_loop()
            self._parts_sweep = loop.call_later(PARTS_KEPT_S / 3, self._sweep_parts)

    def _send_part(self, part_id: int, offset: int) -> bool:
        """Send the part at ``offset``; whether it was the last one."""
        parts = self._parts[part_id]
        end = offset + self._room_bytes() - protocol.PART_ENVELOPE_BYTES
        piece = parts.payload[offset:end]
        total = len(parts.payload)
        fields = [parts.name, parts.route, part_id, offset, total, piece]
        self.replica.send_runtime(parts.client, protocol.encode_runtime("part", *fields))
        # A long listing is kept while its client keeps asking; the last part is asked for
        # again only if it was lost, and briefly.
        parts.expires_at = clock_now() + (PARTS_KEPT_S if end < total else PARTS_KEPT_S / 3)
        return end >= total

    def _drop_parts(self, part_id: int) -> None:
        parts = self._parts.pop(part_id, None)
        if parts is not None:
            self._parts_bytes -= len(parts.payload)

    def _drop_expired_parts(self) -> None:
        now = clock_now()
        for part_id, parts in list(self._parts.items()):
            if parts.expires_at <= now:
                self._drop_parts(part_id)

    def _on_more(self, sender: str, fields: list[Any]) -> None:
        part_id, offset = fields
        parts = self._parts.get(part_id)
        if parts is None or parts.client != sender or not 0 <= offset < len(parts.payload):
            self._send(sender, "gone", part_id, offset)  # the client asks again from the start
            return
        last = self._send_part(part_id, offset)
        if parts.name != "events":
            return
        watch = self._watches.get((sender, parts.route[0]))
        if watch is None or watch.in_parts != part_id:
            return
        if watch.fetched is not None:  # it asks for this push: it has the one before whole
            self._drop_parts(watch.fetched)
            watch.fetched = None
        if last:
            # Its last part: what waited may follow. The push stays kept (in case that part
            # is lost) only until the client asks for the next one or renews: held the
            # 10 s an answer's last part is kept, a burst of them filled the room for parts.
            watch.fetched, watch.in_parts = part_id, None
            self._push(watch)

    def _on_request(self, sender: str, fields: list[Any]) -> None:
        engine = self.replica.engine
        client_id, seq, command = fields
        if not valid_request(client_id, seq, command):  # (see there: it must not travel)
            raise ValueError(f"not a request: {client_id!r}, {seq!r}")
        if engine is None:
            return
        cached = engine.state.cached_result(client_id, seq)
        if cached is not None:  # a retry of something already applied
            self._send(sender, "rep", client_id, seq, cached)
            return
        self._origins[(client_id, seq)] = sender
        self.replica.queue_proposal(Request(client_id, seq, command))

    def _on_answer(self, answer: fx.Answer) -> bool:
        origin = self._origins.pop((answer.client_id, answer.seq), None)
        if origin is None:
            return False
        self._send(origin, "rep", answer.client_id, answer.seq, answer.result)
        return True

    def _on_read(self, sender: str, fields: list[Any]) -> None:
        if self.replica.engine is None:
            return
        read_id, consistency, op, argument = fields
        if consistency not in ("linearizable", "leader", "local") or op not in ("get", "range"):
            return
        reply = (sender, read_id, op, argument)
        self.replica.start_read(consistency, lambda _index: self._on_read_ready(reply))

    def _on_read_ready(self, reply: tuple[str, int, str, Any]) -> None:
        engine = self.replica.engine
        if engine is None:
            return
        sender, read_id, op, argument = reply
        state = engine.state
        try:
            if op == "get":
                row = state.get(key_from_wire(argument))
                payload: Any = None if row is None else _row(row)
            else:
                payload = [_row(kv) for kv in all_entries(state, prefix_from_wire(argument))]
            self._send(sender, "readrep", read_id, state.revision, payload, "")
        except (InvalidKey, ValueError, TypeError) as error:  # a client's bad key: say so
            self._send(sender, "readrep", read_id, state.revision, None, str(error))

    def _on_watch(self, sender: str, fields: list[Any]) -> None:
        """Subscribe, or renew; a renewal behind what we sent means datagrams were lost.

        A client with no position yet (watching "from now on") asks with None, and is
        answered first with where its watch began, with no events: the one datagram that
        tells it where it stands. It asks again with None until that arrives, and each time
        its watch goes back there.
        """
        engine = self.replica.engine
        if engine is None:
            return
        watch_id, prefix, after_revision, *part = fields  # part: only when not 0
        watch_id = _wire_int(watch_id)
        after = None if after_revision is None else _wire_int(after_revision)
        skip = _wire_int(part[0]) if part else 0
        if skip < 0 or (skip and after is None):
            raise ValueError(f"a watch position's part must follow a revision, not {skip}")
        key = (sender, watch_id)
        watch = self._watches.get(key)
        if watch is not None and watch.fetched is not None:
            self._drop_parts(watch.fetched)  # a client renews only with no part to fetch
            watch.fetched = None
        if watch is None:
            start = engine.state.revision if after is None else after
            watch = _Watch(sender, watch_id, prefix_from_wire(prefix), start, skip, 0.0)
            self._watches[key] = watch
        elif after is None:
            watch.rewind(watch.start, 0)
        elif (after, skip) < watch.sent_upto:
            pending = watch.in_parts
            if pending is not None and pending in self._parts:
                if (after, skip) == watch.in_parts_from:
                    # The client has not got the push in parts it waits on: its first part
                    # was lost, or is on its way. That part again, not a new copy of the
                    # whole: a copy each renewal, kept 30 s each, filled the room for parts.
                    watch.expires_at = clock_now() + WATCH_LEASE_S
                    self._send_part(pending, 0)
                    return
                self._drop_parts(pending)  # it lost what came before: of no use to it
            watch.rewind(after, skip)
        watch.expires_at = clock_now() + WATCH_LEASE_S
        if after is None:
            self._send_events(watch, watch.sent_upto, [])  # where it began
            self._push(watch)
        elif not self._push(watch):  # nothing new: say we are here, or the client gives up
            self._send_events(watch, watch.sent_upto, [])

    def _on_unwatch(self, sender: str, fields: list[Any]) -> None:
        self._watches.pop((sender, int(fields[0])), None)

    def _push_all(self) -> None:
        """After every applied slot: what watchers have not seen. Nothing to do (no watch, no
        reply kept in parts) is the usual case, found with no clock read."""
        if not self._watches and not self._parts:
            return
        now = clock_now()
        if self._parts:
            self._drop_expired_parts()
        for key, watch in list(self._watches.items()):
            if watch.expires_at < now:
                del self._watches[key]
            else:
                self._push(watch)

    def _push(self, watch: _Watch) -> bool:
        """Send the watch what it has not seen; False if there was nothing to send."""
        engine = self.replica.engine
        if engine is None or engine.state.revision <= watch.after_revision:
            return False
        if watch.in_parts is not None:
            if watch.in_parts in self._parts:
                return True  # sent when the client has the push it is fetching
            watch.in_parts = None  # expired unfetched: the client renews from where it is
        try:
            events = engine.state.events_since(watch.after_revision, watch.prefix)
        except Compacted as error:
            self._send(watch.client, "compacted", watch.watch_id, error.requested, error.oldest)
            self._watches.pop((watch.client, watch.watch_id), None)
            return True
        if watch.skip:  # the client has these from before a lost datagram
            events = events[watch.skip :]
        watch.after_revision = engine.state.revision
        start = 0
        for end, upto in chunk_positions(events, watch.sent_upto, EVENTS_PER_DATAGRAM):
            before = watch.sent_upto
            watch.in_parts = self._send_events(watch, upto, events[start:end])
            watch.in_parts_from = before
            start = end
            if watch.in_parts is not None and end < len(events):
                # Too big for a datagram: the rest waits until the client has fetched this
                # one. Pushed all at once, 64 events of 40 KB a reply, a burst filled the
                # room for parts with replies the client could not fetch in time, and every
                # renewal was refused as busy (CLI audit, twenty-second session).
                watch.after_revision, watch.skip = upto
                return True
        watch.skip = 0
        return bool(events)

    def _send_events(self, watch: _Watch, upto: Position, events: list[Any]) -> int | None:
        """One datagram of events: the position before it, the one after, and the events;
        the id of its parts if it went in parts.

        The parts of the two positions go last, and only when either is not 0: a datagram
        that neither starts nor ends inside a revision looks as it did before they existed.
        """
        (after, after_part), (last, last_part) = watch.sent_upto, upto
        parts = [[after_part, last_part]] if after_part or last_part else []
        wire = [protocol.event_to_wire(e) for e in events]
        part_id = self._send(watch.client, "events", watch.watch_id, after, last, wire, *parts)
        watch.sent_upto = upto
        return part_id

    def _on_status(self, sender: str, fields: list[Any]) -> None:
        members = [
            [m.node_id, m.role, m.state, m.applied_revision, m.is_leader]
            for m in self.replica.members()
        ]
        status = self.replica.status()
        status["replies_in_parts"] = self.replies_in_parts
        status["replies_refused"] = self.replies_refused
        self._send(sender, "statusrep", fields[0], status, members)


def _wire_int(value: object) -> int:
    """A client's int field: an int, and no float (``int(inf)`` raised OverflowError, which
    no handler expects; a float revision is no revision)."""
    if type(value) is not int:
        raise TypeError(f"expected an int, not {value!r}")
    return value


def _guarded(
    name: str, handler: Callable[[str, list[Any]], None]
) -> Callable[[str, list[Any]], None]:
    """``handler``, with a client's malformed fields refused as a malformed message.

    The replica stops on anything else a handler raises (a bug must not leave a node
    half-deaf), so a short or mistyped message from a client must not look like one.
    """

    def handle(sender: str, fields: list[Any]) -> None:
        try:
            handler(sender, fields)
        except (ValueError, TypeError, LookupError, OverflowError) as error:
            raise protocol.MalformedRuntimeMessage(f"bad {name}: {error}") from None

    return handle


def _row(kv: Any) -> list[Any] | None:
    return row_to_wire(
        (
            key_to_wire(kv.key),
            kv.value,
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease_id,
        )
    )
