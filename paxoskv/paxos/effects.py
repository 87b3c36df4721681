"""What the engine asks its runtime to do.

Every engine input returns a list of these, in the order they must be carried out. The
durability rule lives in the types, as etcd's ``Ready`` keeps it: an acceptor's reply that
depends on a promise or an accept is never an effect until the runtime has reported the
:class:`Persist` it depends on durable (``Engine.handle_durable``). The engine holds such
replies itself, so a runtime cannot send one early however it orders its work.

Each effect spells out its ``__init__`` for the compiled build's sake, as the messages do
(see :mod:`paxoskv.paxos.messages`): a few are made on every step. Equality, hash, repr and
frozenness are :class:`~paxoskv.state.frozen.Frozen`'s, from the fields in ``__match_args__``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Final, NamedTuple

from paxoskv.paxos.messages import Message
from paxoskv.paxos.records import JournalRecord, SnapshotImage
from paxoskv.state.frozen import Frozen


class Send(Frozen):
    """Send ``message`` to one node (unicast)."""

    __slots__ = ("message", "to")
    __match_args__ = ("to", "message")

    to: str
    message: Message

    def __init__(self, to: str, message: Message) -> None:
        object.__setattr__(self, "to", to)
        object.__setattr__(self, "message", message)


class Broadcast(Frozen):
    """Send ``message`` to every node at once (one multicast datagram)."""

    __slots__ = ("message",)
    __match_args__ = ("message",)

    message: Message

    def __init__(self, message: Message) -> None:
        object.__setattr__(self, "message", message)


class Persist(Frozen):
    """Append ``records`` to the journal; report ``Engine.handle_durable(sync_id)`` when synced.

    Sync ids increase; reporting one reports every smaller one too.
    """

    __slots__ = ("records", "sync_id", "sync_now")
    __match_args__ = ("records", "sync_id", "sync_now")

    records: tuple[JournalRecord, ...]
    sync_id: int
    sync_now: bool
    """False when no reply waits on these records (chosen markers, entries learned by catch-up):
    the runtime may let them ride with the next sync, or a short timer, rather than pay an
    fsync of their own that a following accept would have to queue behind."""

    def __init__(
        self, records: tuple[JournalRecord, ...], sync_id: int, sync_now: bool = True
    ) -> None:
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "sync_id", sync_id)
        object.__setattr__(self, "sync_now", sync_now)


class SaveSnapshot(Frozen):
    """Write ``image`` as a snapshot covering every journal record up to ``journal_index``.

    Packing the image takes long for a large state: do it off the thread that steps the
    engine (``image.local_pieces()`` on a worker), as :class:`SnapshotImage` explains.
    """

    __slots__ = ("image", "journal_index", "slot")
    __match_args__ = ("journal_index", "slot", "image")

    journal_index: int
    slot: int
    image: SnapshotImage

    def __init__(self, journal_index: int, slot: int, image: SnapshotImage) -> None:
        object.__setattr__(self, "journal_index", journal_index)
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "image", image)


class Answer(NamedTuple):
    """The command a local client sent as (client_id, seq) was applied with this result.

    One row of an :class:`Answers` effect, as :meth:`Answers.each` hands them out (the engine
    makes none itself).
    """

    client_id: str
    seq: int
    result: bytes


class Answers(NamedTuple):
    """Commands local clients sent were applied: ``results[i]`` answers the request
    ``(client_ids[i], seqs[i])``.

    One effect per applied slot that answers anything, its answers as columns, rather than an
    :class:`Answer` per command: the leader answers every command, and a tuple made, dispatched
    by the runtime and freed per command was a measurable share of a command's cost. The
    columns are often the slot's own: read them, never change them.
    """

    client_ids: Sequence[str]
    seqs: Sequence[int]
    results: Sequence[bytes]

    def each(self) -> Iterator[Answer]:
        """One :class:`Answer` per request answered, in log order."""
        client_ids, seqs, results = self
        if len(client_ids) == 1 and len(seqs) == 1 and len(results) == 1:
            # A slot of one answer (a sequential writer's): no zip, no map.
            return iter((_new_tuple(Answer, (client_ids[0], seqs[0], results[0])),))
        return map(_new_tuple, repeat(Answer), zip(*self, strict=True))


class ReadReady(Frozen):
    """The read may now be served from local state: it is linearizable (or lease-safe).

    ``index`` is the slot a linearizable read was confirmed at, where one was (-1 where not:
    a local or lease read): every slot chosen before the read began is at or below it. A fresh
    life tells by it whether a voter seat of its id is older than itself (the runtime's life
    check): a seat chosen above it was chosen after the read began.
    """

    __slots__ = ("index", "read_id")
    __match_args__ = ("read_id", "index")

    read_id: int
    index: int

    def __init__(self, read_id: int, index: int = -1) -> None:
        object.__setattr__(self, "read_id", read_id)
        object.__setattr__(self, "index", index)


class Applied(Frozen):
    """Slots up to ``slot`` are applied; the state's revision is now ``revision``."""

    __slots__ = ("revision", "slot")
    __match_args__ = ("slot", "revision")

    slot: int
    revision: int

    def __init__(self, slot: int, revision: int) -> None:
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "revision", revision)


class LeaderChanged(Frozen):
    """This node now believes ``leader_id`` leads (None: no leader known)."""

    __slots__ = ("leader_id",)
    __match_args__ = ("leader_id",)

    leader_id: str | None

    def __init__(self, leader_id: str | None) -> None:
        object.__setattr__(self, "leader_id", leader_id)


_new_tuple: Final = tuple.__new__  # builds an Answer from a row in C (its ``__new__`` is Python)

Effect = Send | Broadcast | Persist | SaveSnapshot | Answers | ReadReady | Applied | LeaderChanged
