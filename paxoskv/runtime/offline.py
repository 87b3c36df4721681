"""The state a stopped node's data dir holds, read without starting the node or touching the dir.

This is how the data of a cluster that lost a quorum for good is saved (``paxos-kv dump
--data-dir``): no member can change such a cluster any more, since even removing the lost
voters needs a quorum, but each survivor's data dir holds every write it learned was chosen.
The recovery is the one a restarting node runs (:meth:`Replica.start`): the newest good
snapshot, the journal after it, the chosen tail applied. It runs over a copy, because opening
a store cuts a torn tail and prunes old files, and a survivor's data dir is the last copy of
the data; the original is only read (its lock is tested with a read-only descriptor, so a dir
on a read-only mount can be read too).

What the result holds by default is a prefix of the log the cluster chose: nothing the node
did not know chosen. A survivor may also hold values it accepted in slots it never learned
were chosen, among them perhaps a write acknowledged a moment before the disaster (chosen on
a majority the survivor was in, without it hearing the commit). No rule can tell those from
values that were never chosen using one acceptor's memory: a value accepted under an older
leader may have been replaced by a newer one's (review, twenty-ninth session: a value so
taken undid two acknowledged compare-and-sets after it). ``with_accepted`` takes the tail
only as far as it was accepted under the highest ballot it accepted anything at (its last
leader, who proposed after a phase 1 with a quorum), in slot order, up to the first slot that
is not; even that is wrong if a newer leader the node never heard of chose other values there.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from paxoskv.errors import ConfigurationError, DataDirLocked, PaxosKVError
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import DurableState, decode_local_snapshot
from paxoskv.runtime.identity import read_genesis
from paxoskv.runtime.window import window_slots
from paxoskv.state import Configuration, KVStateMachine
from paxoskv.state.snapshot import paused_gc
from paxoskv.storage import Store, load_key_file
from paxoskv.storage.disk import LOCK_FILE_NAME

_READER_ID = "offline-reader"  # the engine's own id: never a member, it only applies


@dataclass(frozen=True, slots=True)
class OfflineState:
    """A data dir's state; the slots past what its node knew chosen that were taken in, and
    those it had accepted a value in that were left out."""

    state: KVStateMachine
    accepted_slots_taken: int
    accepted_slots_left: int


def state_of_data_dir(
    data_dir: Path, *, encryption_key_file: Path | None = None, with_accepted: bool = False
) -> OfflineState:
    """The key-value state ``data_dir`` holds: what its node had applied and any chosen slots
    it had learned and not yet applied (and, with ``with_accepted``, the accepted tail the
    module's docstring describes).

    Raises :class:`DataDirLocked` while a node runs on it, :class:`ConfigurationError` for a
    dir that holds no journal or snapshot, and the store's own errors (``CorruptData``,
    ``WrongEncryptionKey``) as a node starting on it would, naming ``data_dir`` itself.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ConfigurationError(f"data dir {data_dir} does not exist or is not a directory")
    try:
        genesis = read_genesis(data_dir, None)
    except ConfigurationError:
        genesis = None  # damaged: the journal and snapshots say all that is needed here
    voters = genesis.voters if genesis is not None else (_READER_ID,)
    formation = genesis.formation if genesis is not None else ""
    key = None if encryption_key_file is None else load_key_file(encryption_key_file)
    with _unused(data_dir), tempfile.TemporaryDirectory(prefix="paxos-kv-offline-") as scratch:
        copy = Path(scratch) / "data"
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(LOCK_FILE_NAME))
        try:
            return _recovered_state(copy, voters, formation, key, with_accepted)
        except PaxosKVError as error:
            # Said of the copy, which is gone when the caller reads it: said of the original.
            error.args = (
                f"{str(error).replace(str(copy), str(data_dir))} (found reading a copy of "
                f"{data_dir}, which is left as it was)",
            )
            raise


class _unused:
    """Hold ``LOCK`` shared-locked with a read-only descriptor while the dir is copied: a node
    running on it holds it exclusively, so it is refused; one starting meanwhile waits for
    nothing but fails to lock, as it would beside another node. No LOCK file: no node ever
    ran there since it was made, and none is made here."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def __enter__(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                pid = int(holder) if holder.isdigit() else None
                raise DataDirLocked(str(self._path.parent), pid) from None
            raise
        self._fd = fd

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _recovered_state(
    copy: Path, voters: tuple[str, ...], formation: str, key: bytes | None, with_accepted: bool
) -> OfflineState:
    store = Store.open(copy, durability="os", encryption_key=key)  # nothing here needs a sync
    try:
        with paused_gc():
            found = store.recovered_snapshot()
            if found is None and store.last_index == 0:
                raise ConfigurationError(
                    f"{copy} holds no journal and no snapshot: the node never joined a cluster"
                    " (or its files were removed), so it holds no data"
                )
            durable = decode_local_snapshot(found[1]) if found else DurableState()
            for _, record in store.recovered_records():
                durable.replay(record)
            tail = accepted_tail(durable)
            unknown = unknown_slots(durable)
            if with_accepted:
                durable.chosen.update(tail)
            settings = EngineSettings(
                node_id=_READER_ID, learner=True, window_slots=window_slots(formation)
            )
            engine = Engine(
                settings,
                random.Random(0),
                Configuration(voters=frozenset(voters), learners=frozenset()),
                durable=durable,
                journal_index=store.last_index,
                now=time.time(),
            )
        taken = len(tail) if with_accepted else 0
        return OfflineState(engine.state, taken, unknown - taken)
    finally:
        store.close()


def accepted_tail(durable: DurableState) -> dict[int, bytes]:
    """The values accepted past the chosen run under the last leader this node accepted from
    (the highest ballot among them), slot by slot up to the first slot that holds none so
    accepted (chosen slots on the way are kept).

    Not the ballot it last promised: a survivor that outlived its leader by an election
    timeout campaigned, and promised its own ballot, at which nothing was accepted (second
    review, twenty-ninth session: the tail was then always empty).
    """
    first = durable.applied_slot + 1
    ballots = [ballot for slot, (ballot, _) in durable.accepted.items() if slot >= first]
    if not ballots:
        return {}
    last_leader = max(ballots)
    slot = first
    tail: dict[int, bytes] = {}
    while True:
        if slot in durable.chosen:
            slot += 1
            continue
        accepted = durable.accepted.get(slot)
        if accepted is None or accepted[0] != last_leader:
            return tail
        tail[slot] = accepted[1]
        slot += 1


def unknown_slots(durable: DurableState) -> int:
    """Slots this node accepted a value in, past what it knew chosen: what a dump of what it
    knew chosen may lack (some of them chosen, some perhaps not)."""
    first = durable.applied_slot + 1
    return sum(1 for slot in durable.accepted if slot >= first and slot not in durable.chosen)
