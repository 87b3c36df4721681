"""The bounded history of changes that lets a watcher resume from a revision.

Every set, delete and lease expiry is recorded with the revision of the command that made it
(one command can make many: revoking a lease deletes all its keys at one revision, as an etcd
transaction does). Only the last ``limit_events`` are kept. A watcher that asks for the changes
after revision *r* gets them all or, if some were already dropped, a typed ``Compacted`` error
telling it to read the current state and watch from there, never a silent gap.

Events are stored as plain tuples and turned into :class:`ChangeEvent` objects only when read:
recording sits on the apply path of every write, reading does not.

The ring holds one record more than it serves. Once it is full, that extra oldest record is the
last one dropped, so its revision *is* the floor: recording is a bare ``deque.append`` (which the
state machine calls directly on its hot path) with no bookkeeping, and the floor is read off the
ring when asked for.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
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


# (revision, kind code, key, value, prev_value)
_Record: TypeAlias = tuple[int, int, Key, Any, Any]
_revision_of = itemgetter(0)


class History:
    """A ring of the most recent change records."""

    def __init__(self, limit_events: int) -> None:
        assert limit_events >= 1, "history needs room for at least one event"
        self.limit_events = limit_events
        self._records: deque[_Record] = deque(maxlen=limit_events + 1)
        # Events at or below this revision may have been dropped: a resume must start here or
        # later. A revision can lose only some of its events, which is why it is "at or below".
        # Used only until the ring is full; from then on the ring's extra record tells.
        self._initial_floor_revision = 0
        self.append = self._records.append
        """Record ``(revision, kind code, key, value, prev_value)``: the hot path's entry."""

    @property
    def floor_revision(self) -> int:
        """The oldest revision a watcher may resume after."""
        records = self._records
        if len(records) > self.limit_events:
            return records[0][0]
        return self._initial_floor_revision

    def __len__(self) -> int:
        return min(len(self._records), self.limit_events)

    def record(self, revision: int, kind: int, key: Key, value: Any, prev_value: Any) -> None:
        self.append((revision, kind, key, value, prev_value))

    def _served(self) -> Iterator[_Record]:
        """The records a watcher may see: all but the extra oldest one of a full ring."""
        records = self._records
        return islice(records, len(records) - len(self), None)

    def since(self, revision: int, prefix: Prefix | None = None) -> list[ChangeEvent]:
        """Events with a revision above ``revision``, oldest first, optionally under a prefix.

        Raises Compacted if some of those events were already dropped.
        """
        floor_revision = self.floor_revision
        if revision < floor_revision:
            raise Compacted(revision, floor_revision)
        records = self._records
        if not records or records[-1][0] <= revision:
            return []
        # Records at or below the floor (the extra one) are never above ``revision``.
        start = bisect_right(records, revision, key=_revision_of)
        return [
            ChangeEvent(_KINDS[kind], key, value, prev_value, event_revision)
            for event_revision, kind, key, value, prev_value in islice(records, start, None)
            if prefix is None or matches(key, prefix)
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
