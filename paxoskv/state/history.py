"""The bounded history of changes that lets a watcher resume from a revision.

Every set, delete and lease expiry is recorded with the revision of the command that made it
(one command can make many: revoking a lease deletes all its keys at one revision, as an etcd
transaction does). Only the last ``limit_events`` are kept, and only as many as hold about
``limit_bytes`` of values: a count alone let 10,000 events of 40 KB values pin 400-800 MB on
every node. A watcher that asks for the changes after revision *r* gets them all or, if some
were already dropped (by either bound), a typed ``Compacted`` error telling it to read the
current state and watch from there, never a silent gap.

Events are stored as plain tuples and turned into :class:`ChangeEvent` objects only when read:
recording sits on the apply path of every write, reading does not. A slot of plain Sets applied
as one (:mod:`paxoskv.state.plain_sets`) is recorded as one *run* entry holding the slot's key
and value columns and previous rows as they already are, not as a tuple per event: its events
are spelled out only when read.

An event's size is that of the value it wrote, or for a delete or expiry the value it removed
(:func:`value_size`: a str its characters, bytes their length, anything else its msgpack
length), plus its key's (:func:`key_size`): keys may be as large as values, and 5,000 events of
40 KB keys held 677-872 MB a node when only values counted (CLI audit, twenty-second session).
It is a function of the event alone, so every replica, whether it recorded the event in a run,
one by one, or from a snapshot, drops the same events and shows the same floor. The
value an overwrite replaced is not counted again: it was counted in the event that wrote it,
which a newer one outlives only once it is dropped itself, so a history of overwrites holds up
to about twice ``limit_bytes`` of values (more only when values shrink).

Recording one Set is a bare ``deque.append`` (which the state machine calls directly on its hot
path, then :meth:`trim` once per slot). Sizes are kept per *group*, not per event: a run, or the
single events one trim found appended, sized by one pass over their values (:func:`values_size`,
str and bytes by ``len`` inline; compiled, a C loop), so sizing costs a loop per slot rather
than a call per event.
Trimming drops whole groups from the front without sizing them again; a group a bound cuts into
sizes only the events it drops (to cut by bytes, those of the group, summed as it goes). A run
at the front that lost some events counts them in ``_skip``. The revision of the last event
dropped is the floor.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat, starmap
from operator import itemgetter, le
from typing import Any, Literal, TypeAlias

from paxoskv.errors import Compacted, ValueNotSerialisable
from paxoskv.state.frozen import reduce_by_fields
from paxoskv.state.keys import Key, Prefix, key_to_wire, keys_from_wire, matches
from paxoskv.state.wire import pack, private_copy

EventKind: TypeAlias = Literal["set", "delete", "expire"]
SET_EVENT, DELETE_EVENT, EXPIRE_EVENT = 0, 1, 2
_KINDS: tuple[EventKind, ...] = ("set", "delete", "expire")
DEFAULT_LIMIT_BYTES = 64 << 20
"""The byte bound's default: the count bound (10,000) bites first below 6.5 KB a value."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to one key. ``value`` is None for deletes and expiries; ``prev_value`` is
    None when the key did not exist before."""

    kind: EventKind
    key: Key
    value: Any
    prev_value: Any
    revision: int

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled, a frozen dataclass pickles and copies by setting its fields one by one,
        # which its frozenness refuses: rebuilt through __init__ (see KeyValue's).
        if type(self) is not ChangeEvent:
            return reduce_by_fields(self)  # an application's subclass
        return (ChangeEvent, (self.kind, self.key, self.value, self.prev_value, self.revision))


# (revision, kind code, key, value, prev_value), or a run of Sets: (first revision, RUN, keys,
# values, previous rows), the events (first + i, SET_EVENT, keys[i], values[i], prev value of i).
_Record: TypeAlias = tuple[int, int, Key, Any, Any]
_Entry: TypeAlias = tuple[int, int, Any, Any, Any]
_revision_of = itemgetter(0)
RUN = 3
"""The kind code of a run entry (an event's kind code is 0-2)."""


def value_size(value: object) -> int:
    """The bytes a value counts for in the history's byte bound.

    Cheap and the same on every replica and Python build (``sys.getsizeof`` is neither): a str
    counts its characters, bytes their length, None nothing, and anything else the length of
    its msgpack form, which is what carried it through the log.
    """
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if value is None:
        return 0
    try:
        return len(pack(value))
    except ValueNotSerialisable:  # never out of the log; the apply path must not raise
        return 0


def key_size(key: object) -> int:
    """The bytes a key counts for: a str its characters, bytes their length, a tuple its
    parts' (an int part 8)."""
    kind = type(key)
    if kind is str:
        text: str = key  # type: ignore[assignment]
        return len(text)
    if kind is bytes:
        data: bytes = key  # type: ignore[assignment]
        return len(data)
    if kind is tuple:
        parts: tuple[Any, ...] = key  # type: ignore[assignment]
        return sum([len(part) if type(part) is not int else 8 for part in parts])
    return 0


def keys_size(keys: Sequence[Any]) -> int:
    """``sum(map(key_size, keys))``, str keys sized inline (a C loop, compiled)."""
    total = 0
    for key in keys:
        if type(key) is str:
            text: str = key
            total += len(text)
        else:
            total += key_size(key)
    return total


def values_size(values: Sequence[Any]) -> int:
    """``sum(map(value_size, values))``, with str and bytes sized inline: a loop the compiled
    build runs in C (a ``join`` to size them copied every value once more)."""
    total = 0
    for value in values:
        kind = type(value)
        if kind is str:
            text: str = value
            total += len(text)
        elif kind is bytes:
            data: bytes = value
            total += len(data)
        else:
            total += value_size(value)
    return total


def _sizes_of(values: Sequence[Any]) -> list[int]:
    """Each value's :func:`value_size`: str and bytes by ``len`` in a loop the compiled build
    runs in C. (A ``join`` proved them all str or all bytes in C, and copied every value to do
    it: at 8 KB values, MBs a trim, in fresh pages each time.)"""
    sizes: list[int] = []
    for value in values:
        kind = type(value)
        if kind is str:
            text: str = value
            sizes.append(len(text))
        elif kind is bytes:
            data: bytes = value
            sizes.append(len(data))
        else:
            sizes.append(value_size(value))
    return sizes


def _event_size(entry: _Entry) -> int:
    value = entry[3] if entry[1] == SET_EVENT else entry[4]
    key = entry[2]
    if type(value) is str and type(key) is str:  # the usual event, sized inline
        text: str = value
        name: str = key
        return len(text) + len(name)
    return value_size(value) + key_size(key)


def _events_size(events: Iterable[Any]) -> int:
    """The total size of the single events ``events`` gives (see :func:`_sizes_of`); a Set's
    str value is sized inline (a delete's or an expiry's value is None)."""
    total = 0
    for entry in events:
        value, key = entry[3], entry[2]
        if type(value) is str and type(key) is str:
            text: str = value
            name: str = key
            total += len(text) + len(name)
        else:
            total += _event_size(entry)
    return total


def _events_sizes(entries: Sequence[_Entry]) -> list[int]:
    """Each event's size."""
    return [_event_size(entry) for entry in entries]


class History:
    """The most recent change records, within both bounds."""

    def __init__(self, limit_events: int, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        assert limit_events >= 1, "history needs room for at least one event"
        assert limit_bytes >= 1, "history needs a positive byte bound"
        self.limit_events = limit_events
        self.limit_bytes = limit_bytes
        self._records: deque[_Entry] = deque()
        # The records in groups sized as one: ``[entries, bytes of the events kept, is_run]``,
        # a run alone or the single events one trim found appended. A group dropped whole is
        # not sized again; only the part of one a bound cuts off is.
        self._groups: deque[list[int]] = deque()
        self._counted = 0  # records in groups; those appended after wait for :meth:`trim`
        self._bytes = 0  # of the events kept in groups
        # Events at or below this revision may have been dropped: a resume must start here or
        # later. A revision can lose only some of its events, which is why it is "at or below".
        self._floor_revision = 0
        self._run_extra = 0  # events in the ring beyond one per entry (runs hold several)
        self._skip = 0  # events of the front entry (a run) already dropped
        self.append = self._records.append
        """Record ``(revision, kind code, key, value, prev_value)``: the hot path's entry.
        The caller calls :meth:`trim` before anything reads the history. A delete's or an
        expiry's value is None (sizing tells Sets from them by that, in C)."""

    def _events(self) -> int:
        return len(self._records) + self._run_extra - self._skip

    def _size_appended(self) -> None:
        """Size the single events :attr:`append` added since the last trim, as one group."""
        records = self._records
        waiting = len(records) - self._counted
        if waiting == 1:  # a slot of one command: sized alone, without the join's set-up
            size = _event_size(records[-1])
        else:
            size = _events_size(islice(reversed(records), waiting))
        self._groups.append([waiting, size, False])
        self._counted += waiting
        self._bytes += size

    def trim(self) -> None:
        """Size what was appended, then drop the oldest events while either bound is passed."""
        if len(self._records) != self._counted:
            self._size_appended()
        excess = self._events() - self.limit_events
        if excess > 0 or self._bytes > self.limit_bytes:
            self._drop(excess)

    def _drop(self, excess: int) -> None:
        """Drop at least ``excess`` events, and more while the bytes kept pass the bound."""
        records, groups = self._records, self._groups
        while records and (excess > 0 or self._bytes > self.limit_bytes):
            group = groups[0]
            entries, kept, is_run = group
            front = records[0]
            skip = self._skip
            left = len(front[2]) - skip if is_run else entries  # events in the group
            over = self._bytes - self.limit_bytes  # bytes that must go (if positive)
            if excess < left and over <= kept:  # cut into the group (a tail may weigh 0)
                drop, dropped = self._cut(front if is_run else None, left, excess, over)
                if drop < left:
                    if is_run:
                        self._skip = skip + drop
                        self._floor_revision = front[0] + skip + drop - 1
                    else:
                        self._floor_revision = records[drop - 1][0]
                        self._popleft(drop)
                        group[0] -= drop
                    group[1] -= dropped
                    self._bytes -= dropped
                    return
            groups.popleft()
            self._bytes -= kept
            excess -= left
            if is_run:
                records.popleft()
                self._counted -= 1
                self._floor_revision = front[0] + len(front[2]) - 1
                self._run_extra -= len(front[2]) - 1
                self._skip = 0
            else:
                self._floor_revision = records[entries - 1][0]
                self._popleft(entries)

    def _cut(self, run: _Entry | None, left: int, excess: int, over: int) -> tuple[int, int]:
        """How many of the front group's ``left`` events to drop, and their size: at least
        ``excess``, and the fewest whose sizes add up to ``over`` if that is positive."""
        skip = self._skip
        if over > 0:
            if run is not None:
                sizes = [
                    v + k
                    for v, k in zip(
                        _sizes_of(run[3][skip:]), map(key_size, run[2][skip:]), strict=True
                    )
                ]
            else:
                sizes = _events_sizes(list(islice(self._records, left)))
            running = list(accumulate(sizes))
            drop = max(excess, bisect_left(running, over) + 1)
            return drop, running[drop - 1] if drop < left else 0
        if run is not None:
            cut = slice(skip, skip + excess)
            return excess, values_size(run[3][cut]) + keys_size(run[2][cut])
        records = self._records
        return excess, _events_size(islice(records, excess))

    def _popleft(self, count: int) -> None:
        deque(starmap(self._records.popleft, repeat((), count)), maxlen=0)
        self._counted -= count

    @property
    def floor_revision(self) -> int:
        """The oldest revision a watcher may resume after."""
        self.trim()
        return self._floor_revision

    @property
    def size_bytes(self) -> int:
        """The size of the events kept (see the module docstring)."""
        self.trim()
        return self._bytes

    def __len__(self) -> int:
        self.trim()
        return self._events()

    def record(self, revision: int, kind: int, key: Key, value: Any, prev_value: Any) -> None:
        """Record one event and keep the history trimmed (no garbage piles up between trims)."""
        records, groups = self._records, self._groups
        if len(records) != self._counted:
            self._size_appended()
        records.append((revision, kind, key, value, prev_value))
        size = value_size(value if kind == SET_EVENT else prev_value) + key_size(key)
        if groups and not groups[-1][2]:  # one more single event in the last group
            groups[-1][0] += 1
            groups[-1][1] += size
        else:
            groups.append([1, size, False])
        self._counted += 1
        self._bytes += size
        excess = self._events() - self.limit_events
        if excess > 0 or self._bytes > self.limit_bytes:
            self._drop(excess)

    def record_sets(
        self,
        first_revision: int,
        keys: Sequence[Key],
        values: Sequence[Any],
        prev_rows: Sequence[tuple[Any, ...] | None],
    ) -> None:
        """Record Sets of ``keys`` to ``values`` at ``first_revision`` on, one per revision,
        as one entry; ``prev_rows`` are the rows they replaced (None: the key was new)."""
        if keys:
            if len(self._records) != self._counted:
                self._size_appended()
            self.append((first_revision, RUN, keys, values, prev_rows))
            size = values_size(values) + keys_size(keys)
            self._groups.append([1, size, True])
            self._counted += 1
            self._bytes += size
            self._run_extra += len(keys) - 1
            excess = self._events() - self.limit_events
            if excess > 0 or self._bytes > self.limit_bytes:
                self._drop(excess)

    def _entries_events(self, entries: Iterable[_Entry], skip: int) -> Iterator[_Record]:
        """The events of ``entries`` in order, the first ``skip`` of the first entry left out."""
        for entry in entries:
            if entry[1] != RUN:
                yield entry
                continue
            first, _, keys, values, prev_rows = entry
            for index in range(skip, len(keys)):
                prev = prev_rows[index]
                yield (
                    first + index,
                    SET_EVENT,
                    keys[index],
                    values[index],
                    None if prev is None else prev[1],
                )
            skip = 0

    def _served(self) -> Iterator[_Record]:
        self.trim()
        return self._entries_events(self._records, self._skip)

    def since(self, revision: int, prefix: Prefix | None = None) -> list[ChangeEvent]:
        """Events with a revision above ``revision``, oldest first, optionally under a prefix.

        Raises Compacted if some of those events were already dropped.
        """
        floor_revision = self.floor_revision
        if revision < floor_revision:
            # Said in a watcher's terms, "from revision R" (R = revision + 1): the floor's own
            # events may be gone, so the first revision a watch can start from is floor + 1.
            raise Compacted(revision + 1, floor_revision + 1)
        records = self._records
        if not records or _last_revision(records[-1]) <= revision:
            return []
        # Entries are in revision order: the first one starting above ``revision``, or the run
        # before it, holds the first event to serve. Events kept at the floor's own revision
        # (it lost only some of them) are never above ``revision``.
        start = max(bisect_right(records, revision, key=_revision_of) - 1, 0)
        skip = self._skip if start == 0 else 0
        return [
            # Private copies: the history holds the map's own values (see private_copy).
            ChangeEvent(
                _KINDS[kind], key, private_copy(value), private_copy(prev_value), event_revision
            )
            for event_revision, kind, key, value, prev_value in self._entries_events(
                islice(records, start, None), skip
            )
            if event_revision > revision and (prefix is None or matches(key, prefix))
        ]

    # --- snapshot --------------------------------------------------------------------------

    def to_wire(self) -> list[Any]:
        """``[floor_revision, [revision, kind, key, value, prev_value, ...]]``."""
        flat: list[Any] = []
        for revision, kind, key, value, prev_value in self._served():
            flat += (revision, kind, key_to_wire(key), value, prev_value)
        return [self.floor_revision, flat]

    @classmethod
    def from_wire(
        cls, raw: object, limit_events: int, limit_bytes: int = DEFAULT_LIMIT_BYTES
    ) -> History:
        """Inverse of :meth:`to_wire`; ValueError or TypeError on a bad shape.

        A node restarted with a smaller limit keeps the newest records and moves its floor up:
        the same records and floor as a node that applied the log under that limit. The records
        go in together and are trimmed once, which keeps the same ones as recording them one by
        one would (both keep the longest run of newest events within the bounds), in C-level
        passes over the columns instead of a call per event: a restart restores 10,000 events.
        """
        if type(raw) is not list or len(raw) != 2:
            raise ValueError("history is [floor_revision, records]")
        floor_revision, flat = raw
        if type(floor_revision) is not int or type(flat) is not list or len(flat) % 5:
            raise ValueError("history records are a flat array of five-field records")
        revisions, kinds = flat[0::5], flat[1::5]
        if not set(map(type, revisions)) <= {int} or not set(map(type, kinds)) <= {int}:
            raise ValueError("history record revisions and kinds are ints")
        in_order = all(map(le, [floor_revision, *revisions], revisions))
        if not in_order or not set(kinds) <= {SET_EVENT, DELETE_EVENT, EXPIRE_EVENT}:
            raise ValueError("history records are in revision order with known kinds")
        history = cls(limit_events, limit_bytes)
        history._floor_revision = floor_revision
        keys = keys_from_wire(flat[2::5])
        history._records.extend(zip(revisions, kinds, keys, flat[3::5], flat[4::5], strict=True))
        history.trim()
        return history


def _last_revision(entry: _Entry) -> int:
    return entry[0] + len(entry[2]) - 1 if entry[1] == RUN else entry[0]
