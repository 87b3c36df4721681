"""The state a stopped node's data dir holds, read without starting the node or touching the dir.

This is how the data of a cluster that lost a quorum for good is saved (``paxos-kv dump
--data-dir``): no member can change such a cluster any more, since even removing the lost
voters needs a quorum, but each survivor's data dir holds every write it learned was chosen.
The recovery is the one a restarting node runs (:meth:`Replica.start`): the newest good
snapshot, the journal after it, the chosen tail applied. It runs over a copy, taken while the
original's lock is held, because opening a store cuts a torn tail and prunes old files, and a
survivor's data dir is the last copy of the data.

A survivor may also hold values it accepted in slots it never learned were chosen: a write
acknowledged a moment before the disaster is chosen on a majority, and the survivor may have
been in that majority without hearing the commit. By default they are taken as chosen, in slot
order up to the first slot it holds nothing for, which is what a new leader would do in
phase 1 with the survivor as its only acceptor (etcd's ``--force-new-cluster`` likewise
commits its member's whole log). A value taken so may be one that was never chosen, but only
one whose write was never acknowledged either (its outcome unknown to its client), since an
acknowledged write's slot holds no other value; leaving them out can lose acknowledged writes.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from paxoskv.errors import ConfigurationError
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import DurableState, decode_local_snapshot
from paxoskv.runtime.identity import GENESIS_FILE, read_genesis
from paxoskv.runtime.window import window_slots
from paxoskv.state import Configuration, KVStateMachine
from paxoskv.state.snapshot import paused_gc
from paxoskv.storage import Store, load_key_file
from paxoskv.storage.disk import LOCK_FILE_NAME, OsDisk

_READER_ID = "offline-reader"  # the engine's own id: never a member, it only applies


@dataclass(frozen=True, slots=True)
class OfflineState:
    """A data dir's state, and how many slots past what its node knew chosen it took."""

    state: KVStateMachine
    accepted_slots_taken: int


def state_of_data_dir(
    data_dir: Path, *, encryption_key_file: Path | None = None, chosen_only: bool = False
) -> OfflineState:
    """The key-value state ``data_dir`` holds: what its node had applied, any chosen slots it
    had learned and not yet applied, and (unless ``chosen_only``) the values it accepted after
    them (see the module's docstring).

    Raises :class:`DataDirLocked` while a node runs on it, :class:`ConfigurationError` for a
    dir that is not a node's, and the store's own errors (``CorruptData``,
    ``WrongEncryptionKey``) as a node starting on it would.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ConfigurationError(f"data dir {data_dir} does not exist or is not a directory")
    genesis = read_genesis(data_dir, None)
    if genesis is None:
        raise ConfigurationError(
            f"{data_dir} holds no {GENESIS_FILE}: it is not the data dir of a node that "
            "joined a cluster, so it holds no cluster's data"
        )
    key = None if encryption_key_file is None else load_key_file(encryption_key_file)
    original = OsDisk(data_dir)
    lock_id = original.lock()  # no node starts on it, or writes to it, while it is copied
    try:
        with tempfile.TemporaryDirectory(prefix="paxos-kv-offline-") as scratch:
            copy = Path(scratch) / "data"
            shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(LOCK_FILE_NAME))
            original.unlock(lock_id)
            return _recovered_state(copy, genesis.voters, genesis.formation, key, chosen_only)
    finally:
        original.unlock(lock_id)


def _recovered_state(
    copy: Path, voters: tuple[str, ...], formation: str, key: bytes | None, chosen_only: bool
) -> OfflineState:
    store = Store.open(copy, durability="os", encryption_key=key)  # nothing here needs a sync
    try:
        with paused_gc():
            found = store.recovered_snapshot()
            durable = decode_local_snapshot(found[1]) if found else DurableState()
            for _, record in store.recovered_records():
                durable.replay(record)
            taken = 0 if chosen_only else _take_accepted(durable)
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
        return OfflineState(engine.state, taken)
    finally:
        store.close()


def _take_accepted(durable: DurableState) -> int:
    """Count the values accepted past the chosen run as chosen, up to the first gap; how many."""
    slot = durable.applied_slot + 1
    taken = 0
    while True:
        if slot in durable.chosen:
            slot += 1
        elif slot in durable.accepted:
            durable.chosen[slot] = durable.accepted[slot][1]
            taken += 1
            slot += 1
        else:
            return taken
