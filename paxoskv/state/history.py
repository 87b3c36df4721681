"""The bounded history of changes that lets a watcher resume from a revision.

Every set, delete and lease expiry is recorded with the revision of the command that made it
(one command can make many: revoking a lease deletes all its keys at one revision, as an etcd
transaction does). Only the last ``limit_events`` are kept. A watcher that asks for the changes
after revision *r* gets them all or, if some were already dropped, a typed ``Compacted`` error
telling it to read the current state and watch from there, never a silent gap.

Events are stored as plain tuples and turned into :class:`ChangeEvent` objects only when read:
recording sits on the apply path of every write, reading does not. A slot of plain Sets applied
as one (:mod:`paxoskv.state.plain_sets`) is recorded as one *run* entry holding the slot's key
and value columns and previous rows as they already are, not as a tuple per event: its events
are spelled out only when read.

The ring holds one event more than it serves. Once it is full, that extra oldest event is the
last one dropped, so its revision *is* the floor. Recording one event is a bare
``deque.append`` (which the state machine calls directly on its hot path, then :meth:`trim`
once per slot); trimming drops whole entries from the front, and counts how many events of a
run at the front are already gone (``_skip``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, repeat, starmap
from operator import itemgetter
from typing import Any, Literal, TypeAlias

from paxoskv.errors import Compacted
from paxoskv.state.keys import Key, Prefix, key_from_wire, key_to_wire, matches

EventKind: TypeAlias = Literal["set", "delete", "expire"]
SET_EVENT, DELETE_EVENT, EXPIRE_EVENT = 0, 1, 2
_KINDS: tuple[EventKind, ...] = ("set", "delete", "expire")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to one key. ``value`` is None for deletes and expiries; ``prev_value`` is
    None when the key did not exist before."""

    kind: EventKind
    key: Key
    value: Any
    prev_value: Any
    revision: int


# (revision, kind code, key, value, prev_value), or a run of Sets: (first revision, RUN, keys,
# values, previous rows), the events (first + i, SET_EVENT, keys[i], values[i], prev value of i).
_Record: TypeAlias = tuple[int, int, Key, Any, Any]
_Entry: TypeAlias = tuple[int, int, Any, Any, Any]
_revision_of = itemgetter(0)
RUN = 3
"""The kind code of a run entry (an event's kind code is 0-2)."""


class History:
    """A ring of the most recent change records."""

    def __init__(self, limit_events: int) -> None:
        assert limit_events >= 1, "history needs room for at least one event"
        self.limit_events = limit_events
        self._records: deque[_Entry] = deque()
        # Events at or below this revision may have been dropped: a resume must start here or
        # later. A revision can lose only some of its events, which is why it is "at or below".
        # Used only until the ring is full; from then on the ring's extra event tells.
        self._initial_floor_revision = 0
        self._run_extra = 0  # events in the ring beyond one per entry (runs hold several)
        self._skip = 0  # events of the front entry (a run) already dropped
        self._ring_events = limit_events + 1
        self.append = self._records.append
        """Record ``(revision, kind code, key, value, prev_value)``: the hot path's entry.
        The caller calls :meth:`trim` before anything reads the history."""

    def _events(self) -> int:
        return len(self._records) + self._run_extra - self._skip

    def trim(self) -> None:
        """Drop the oldest events beyond the one extra the ring holds (see the docstring)."""
        excess = self._events() - self.limit_events - 1
        if excess <= 0:
            return
        records = self._records
        if not self._run_extra:  # every entry is one event: drop them in C
            deque(starmap(records.popleft, repeat((), excess)), maxlen=0)
            return
        while excess > 0:
            front = records[0]
            size = 1 if front[1] != RUN else len(front[2]) - self._skip
            if size > excess:
                self._skip += excess
                return
            records.popleft()
            excess -= size
            if front[1] == RUN:
                self._run_extra -= len(front[2]) - 1
                self._skip = 0

    @property
    def floor_revision(self) -> int:
        """The oldest revision a watcher may resume after."""
        self.trim()
        if self._events() > self.limit_events:
            return self._records[0][0] + self._skip
        return self._initial_floor_revision

    def __len__(self) -> int:
        self.trim()
        return min(self._events(), self.limit_events)

    def record(self, revision: int, kind: int, key: Key, value: Any, prev_value: Any) -> None:
        """Record one event and keep the ring trimmed (a ``popleft`` while it holds no run, as
        a bounded deque would drop its oldest: no garbage piles up between trims)."""
        records = self._records
        records.append((revision, kind, key, value, prev_value))
        if len(records) + self._run_extra - self._skip > self._ring_events:
            if self._run_extra:
                self.trim()
            else:  # every entry is one event, and the ring was trimmed before this one
                records.popleft()

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
            self.append((first_revision, RUN, keys, values, prev_rows))
            self._run_extra += len(keys) - 1
            self.trim()

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
        """The events a watcher may see: all but the extra oldest one of a full ring."""
        self.trim()
        events = self._entries_events(self._records, self._skip)
        return islice(events, self._events() - len(self), None)

    def since(self, revision: int, prefix: Prefix | None = None) -> list[ChangeEvent]:
        """Events with a revision above ``revision``, oldest first, optionally under a prefix.

        Raises Compacted if some of those events were already dropped.
        """
        floor_revision = self.floor_revision
        if revision < floor_revision:
            raise Compacted(revision, floor_revision)
        records = self._records
        if not records or _last_revision(records[-1]) <= revision:
            return []
        # Entries are in revision order: the first one starting above ``revision``, or the run
        # before it, holds the first event to serve. Events at or below the floor (the extra
        # one) are never above ``revision``.
        start = max(bisect_right(records, revision, key=_revision_of) - 1, 0)
        skip = self._skip if start == 0 else 0
        return [
            ChangeEvent(_KINDS[kind], key, value, prev_value, event_revision)
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
    def from_wire(cls, raw: object, limit_events: int) -> History:
        """Inverse of :meth:`to_wire`; ValueError or TypeError on a bad shape.

        A node restarted with a smaller limit keeps the newest records and moves its floor up.
        """
        if type(raw) is not list or len(raw) != 2:
            raise ValueError("history is [floor_revision, records]")
        floor_revision, flat = raw
        if type(floor_revision) is not int or type(flat) is not list or len(flat) % 5:
            raise ValueError("history records are a flat array of five-field records")
        history = cls(limit_events)
        history._initial_floor_revision = floor_revision
        fields = iter(flat)
        previous = floor_revision
        for revision, kind, key, value, prev_value in zip(*[fields] * 5, strict=True):
            if type(revision) is not int or revision < previous or kind not in (0, 1, 2):
                raise ValueError("history records are in revision order with known kinds")
            if type(kind) is not int:
                raise ValueError("history record kinds are ints")
            previous = revision
            history.record(revision, kind, key_from_wire(key), value, prev_value)
        return history


def _last_revision(entry: _Entry) -> int:
    return entry[0] + len(entry[2]) - 1 if entry[1] == RUN else entry[0]
