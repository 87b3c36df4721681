"""A node's identity and its cluster's genesis, kept in the data dir beside the journal.

A restarted node must rejoin as itself (its promises and accepts are its own), so its id is
written once and read back. The genesis voter set is what every replica's state machine starts
from; a node that joins later learns it from a member's hello and keeps it too, so replaying
its journal after a restart starts from the same first state as everyone else's.

The genesis file also names the cluster the data dir belongs to, and a ``role`` file keeps
what the node asked to be (voter or learner), or that it was removed. A data dir is a member's
memory of one cluster: its journal holds that cluster's slots and its acceptor's promises, so
started in another cluster it would vote, and report an applied slot, in a log it never saw
(a leader counted such a node caught up by a slot number from elsewhere and promoted it). The
check at start closes that path: a node only ever joins with a log it got from the cluster it
joins. Data dirs from before the cluster and role were kept adopt the cluster they are next
started in, and the role its flags give.

A name and the first voters do not tell two clusters apart when both were formed under the
defaults (``paxos-kv``, ``n1``..``n3``): a data dir left from an earlier one was taken as a
member, with its old log, and replicas diverged. So the genesis also keeps the cluster's
*formation*: a random id fixed when the cluster was formed (every member of a bootstrap
derives the same one from the random nonces all of them announced, see
``membership.Bootstrap``), which a joiner adopts from the members and every node carries in
its ``ident`` messages (``protocol.Ident``); the replica compares it wherever it compares the
genesis. A data dir written before formation ids has none (:data:`LEGACY_FORMATION`): such a
cluster carries on as before, told apart by its name and first voters only, and a data dir of
it is refused by any cluster formed since (which has an id, so cannot be the one it belongs to).

A data dir that held no acceptor state when its node started is a *fresh life* (:class:`Life`,
kept in ``life.json``): whatever its id voted before is forgotten, so it votes only in a seat
it got itself (the rule is argued in ``Replica._may_vote``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Literal

from paxoskv.errors import ConfigurationError, StorageError, WrongCluster, storage_fix
from paxoskv.runtime.window import (
    LEGACY_WINDOW_SLOTS,
    WINDOW_MARK,
    WINDOW_SLOTS,
    formation_field,
    formation_from_field,
    window_slots,
)
from paxoskv.state import Configuration
from paxoskv.state.frozen_plain import PlainFrozen
from paxoskv.storage.headers import parse_segment_name, parse_snapshot_name

NODE_ID_FILE = "node-id"
GENESIS_FILE = "genesis.json"
ROLE_FILE = "role"
BOOTSTRAP_FILE = "bootstrap.json"
LIFE_FILE = "life.json"

Role = Literal["voter", "learner", "leaving", "removed"]
ROLES: tuple[Role, ...] = ("voter", "learner", "leaving", "removed")
"""``leaving``: a voter removed while the slots its old configuration governs may still need
its vote (see Replica._still_needed); it votes on, and stops once they do not."""

LEGACY_FORMATION = ""
"""The formation of a cluster formed by a release that kept none (see the module)."""


class Genesis(PlainFrozen):
    """What a data dir keeps of the cluster it belongs to."""

    __slots__ = ("cluster", "formation", "voters")
    __match_args__ = ("voters", "formation", "cluster")

    voters: tuple[str, ...]
    formation: str
    cluster: str | None  # None: written by a release that did not keep the name

    def __init__(self, voters: tuple[str, ...], formation: str, cluster: str | None) -> None:
        object.__setattr__(self, "voters", voters)
        object.__setattr__(self, "formation", formation)
        object.__setattr__(self, "cluster", cluster)


class Life(PlainFrozen):
    """A *fresh life*: a node that started on a data dir holding no acceptor state.

    Paxos is safe only while no acceptor forgets a promise or an accept, and a data dir with
    no journal and no snapshot remembers none: whatever its id voted before (a wiped dir, a
    lost disk, a new machine given the old id) is forgotten. So a fresh life votes only in a
    voter seat it got itself, during this life: ``founded``, the formation it bootstrapped
    (its genesis seat is its own: no earlier life of that formation voted), or a promotion
    chosen after ``checked_at``, a slot at or past every slot chosen when it began, at which
    its id held no voter seat. The record is written before the node's first journal record,
    and kept: a fresh life that crashes half-way through catching up has a journal then, but
    is as fresh as before. A data dir with acceptor state and no record (any node of an
    earlier release, any node restarted on its own data dir) is not a fresh life.
    """

    __slots__ = ("checked_at", "founded", "nonce")
    __match_args__ = ("nonce", "founded", "checked_at")

    nonce: str
    founded: str | None
    checked_at: int | None

    def __init__(
        self, nonce: str, founded: str | None = None, checked_at: int | None = None
    ) -> None:
        object.__setattr__(self, "nonce", nonce)
        object.__setattr__(self, "founded", founded)
        object.__setattr__(self, "checked_at", checked_at)

    def seated(self, formation: str) -> bool:
        """Whether this life may vote in the seat its configuration gives its id (a checked
        one only once no earlier seat governs a slot it has not applied: see
        ``earlier_seat_until``)."""
        return self.founded == formation or self.checked_at is not None


def _read_kept(path: Path | None) -> str | None:
    """The text of an identity file (None: there is none), or a ConfigurationError naming it.

    A symlink whose target is missing or loops reads as there being one: ``exists()`` said
    no, and the node went on as though the file had never been written (re-bootstrapping
    over its journal, for a lost genesis). Text that is not UTF-8, or a file this user may
    not read, is said to be so in one line, where it raised a traceback.
    """
    if path is None or not os.path.lexists(path):
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"{path} is damaged (not UTF-8 text); restore it from a backup, or start this node "
            "on a fresh --data-dir"
        ) from None
    except OSError as error:
        raise ConfigurationError(
            f"cannot read {path}: {error.strerror or error}; fix the file (or its permissions), "
            "or start this node on a fresh --data-dir"
        ) from None


def load_life(data_dir: Path | None) -> Life | None:
    """The fresh life kept in ``data_dir`` (None: none, or no data dir)."""
    path = None if data_dir is None else data_dir / LIFE_FILE
    text = _read_kept(path)
    if text is None:
        return None
    try:
        kept = json.loads(text)
        life = Life(kept["nonce"], kept.get("founded"), kept.get("checked_at"))
        if (
            type(life.nonce) is not str
            or (life.founded is not None and type(life.founded) is not str)
            or (life.checked_at is not None and type(life.checked_at) is not int)
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(
            f"{path} is damaged; if this node's id is a voter, paxos-kv members remove it, "
            "then start it on a fresh --data-dir"
        ) from None
    return life


def save_life(data_dir: Path | None, life: Life) -> None:
    if data_dir is not None:
        kept = {"nonce": life.nonce, "founded": life.founded, "checked_at": life.checked_at}
        _write_durably(data_dir / LIFE_FILE, json.dumps(kept) + "\n")


def earlier_seat_until(entries: list[tuple[int, Configuration]], node_id: str) -> int:
    """The last slot governed by a configuration, from ``ConfigHistory.entries``, in which
    ``node_id`` votes in a seat before the one it holds in the latest (0: none is known)."""
    until = 0
    for (_, before), (start, after) in pairwise(entries):
        if node_id in before.voters and node_id not in after.voters:
            until = start - 1
    return until


def fresh_nonce() -> str:
    """A node's random share of the formation id of the cluster it bootstraps, marked with the
    window this release forms clusters with (see :func:`formation_id`)."""
    return f"{secrets.token_hex(8)}{WINDOW_MARK}{WINDOW_SLOTS}"


def formation_id(nonces: Mapping[str, str]) -> str:
    """The formation id of a cluster formed by ``nonces``' nodes, each with its nonce.

    A hash, not one member's choice: every member of a bootstrap computes it alone from the
    same announcements (``membership.Bootstrap``), with no further round to agree on it. The
    cluster's window is the smallest its founders' nonces name (an unmarked nonce, from an
    earlier release, names :data:`LEGACY_WINDOW_SLOTS`), so a founder of an earlier release,
    which hashes the same nonces and appends nothing, derives the same id; any other window
    is appended to the hash, where every member finds it (:func:`window_slots`).
    """
    text = "\n".join(f"{node} {nonces[node]}" for node in sorted(nonces))
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    window = min((_nonce_window(nonce) for nonce in nonces.values()), default=WINDOW_SLOTS)
    return digest if window == LEGACY_WINDOW_SLOTS else f"{digest}{WINDOW_MARK}{window}"


def _nonce_window(nonce: str) -> int:
    try:
        return window_slots(nonce)
    except ValueError:
        return LEGACY_WINDOW_SLOTS  # (a nonce is opaque to an earlier release: never fails)


def node_identity(data_dir: Path | None, wanted: str | None) -> str:
    """The id kept in ``data_dir``, or ``wanted``, or a fresh random one (then kept)."""
    if data_dir is None:
        return wanted or _fresh_id()
    _check_data_dir(data_dir)
    path = data_dir / NODE_ID_FILE
    text = _read_kept(path)
    if text is not None:
        kept = text.strip()
        if not kept:
            raise ConfigurationError(
                f"{path} is empty; write this node's id in it (the one it ran under), or start "
                "it on a fresh --data-dir"
            )
        if wanted is not None and wanted != kept:
            raise ConfigurationError(
                f"data dir {data_dir} belongs to node {kept!r}, not {wanted!r}: drop --node-id "
                "or choose another --data-dir"
            )
        return kept
    if _holds_state(data_dir):
        # A fresh id over another's journal: it ran as a stranger holding that node's votes.
        raise ConfigurationError(
            f"data dir {data_dir} holds a journal or snapshots but no {NODE_ID_FILE} file, "
            f"which names the node they belong to: write that id in {path}, or start this "
            "node on a fresh --data-dir (if its id is a voter, paxos-kv members remove it "
            "first)"
        )
    node_id = wanted or _fresh_id()
    _write_durably(path, node_id + "\n")
    return node_id


def _holds_state(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a journal segment or a snapshot (see paxoskv.storage)."""
    try:
        names = os.listdir(data_dir)
    except OSError:
        return False  # (the store, opening it, says what is wrong)
    return any(
        parse_segment_name(name) is not None or parse_snapshot_name(name) is not None
        for name in names
    )


def _check_data_dir(data_dir: Path) -> None:
    """A data dir that is a file, lies under one, or may not be made is the user's to fix
    (exit 2), not a failed disk (exit 4, as the OSError it raised was taken for)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(data_dir, os.W_OK | os.X_OK)
    except (OSError, ValueError) as error:  # (a symlink loop, a read-only file system, ...)
        reason = getattr(error, "strerror", None) or error
        if isinstance(error, FileExistsError) and data_dir.is_symlink():
            try:  # mkdir says "File exists" of a symlink that loops: say what it is
                data_dir.stat()
            except OSError as looped:
                reason = looped.strerror or looped
        raise ConfigurationError(
            f"cannot use {data_dir} as a data dir: {reason}; give a --data-dir that is a "
            "directory, or can be made one, that this user may write to"
        ) from None
    if not writable:  # (it failed at the first journal write, exit 4, "fix the device")
        raise ConfigurationError(
            f"cannot use {data_dir} as a data dir: this user may not write to it; give a "
            "--data-dir this user may write to, or fix its permissions"
        )


def load_genesis(data_dir: Path | None) -> tuple[str, ...] | None:
    """The genesis voters kept in ``data_dir``, whatever its cluster (None: none yet)."""
    kept = read_genesis(data_dir, None)
    return None if kept is None else kept.voters


def read_genesis(data_dir: Path | None, cluster: str | None) -> Genesis | None:
    """The genesis kept in ``data_dir`` (None: none yet).

    Raises :class:`WrongCluster` for a data dir of another cluster than ``cluster`` (None:
    any will do).
    """
    path = None if data_dir is None else data_dir / GENESIS_FILE
    text = _read_kept(path)
    if text is None:
        return None
    try:
        kept = json.loads(text)
        if type(kept["voters"]) is not list or not kept["voters"]:
            raise TypeError  # ("n1" was taken for the voters n and 1)
        voters = tuple(kept["voters"])
        kept_cluster = kept.get("cluster")
        formation = formation_from_field(kept.get("formation", LEGACY_FORMATION))
        if not all(type(voter) is str and voter for voter in voters) or (
            kept_cluster is not None and type(kept_cluster) is not str
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(
            f"{path} is damaged; move the data dir aside and rejoin the cluster"
        ) from None
    if cluster is not None and kept_cluster is not None and kept_cluster != cluster:
        raise WrongCluster(str(data_dir), kept_cluster, cluster)
    return Genesis(voters, formation, kept_cluster)


def recorded_cluster(data_dir: Path) -> str | None:
    """The cluster name ``data_dir``'s genesis records, if any (None: none yet, an older
    release's, or unreadable: :func:`read_genesis` says what is wrong at start)."""
    try:
        kept = json.loads((data_dir / GENESIS_FILE).read_text())
    except (OSError, ValueError):
        return None
    cluster = kept.get("cluster") if isinstance(kept, dict) else None
    return cluster if isinstance(cluster, str) else None


def save_genesis(
    data_dir: Path | None, voters: tuple[str, ...], cluster: str, formation: str
) -> None:
    """A windowed cluster's formation in the form releases before windows refuse
    (``window.formation_field``)."""
    if data_dir is not None:
        field = formation_field(formation)
        kept = {"voters": list(voters), "cluster": cluster, "formation": field}
        _write_durably(data_dir / GENESIS_FILE, json.dumps(kept) + "\n")


def load_role(data_dir: Path | None) -> Role | None:
    """The role kept in ``data_dir``; None for a node that never joined, or an older release's
    data dir (its flags decide, as they used to)."""
    kept = _load_role_line(data_dir)
    return None if kept is None else kept[0]


def load_leave_slot(data_dir: Path | None) -> int | None:
    """The last slot a leaving node votes in, kept beside its role (None: not kept).

    A restart may recover from a snapshot whose configuration history no longer reaches the
    node's old seat, and could not tell that slot again; the voters left may still need it.
    """
    kept = _load_role_line(data_dir)
    return None if kept is None else kept[1]


def _load_role_line(data_dir: Path | None) -> tuple[Role, int | None] | None:
    path = None if data_dir is None else data_dir / ROLE_FILE
    text = _read_kept(path)
    if text is None:
        return None
    words = text.split()
    for role in ROLES:
        if words[:1] == [role]:
            if len(words) == 1:
                return role, None
            if role == "leaving" and len(words) == 2 and words[1].isdigit():
                return role, int(words[1])
    raise ConfigurationError(f"{path} is damaged; write voter or learner in it")


def save_role(data_dir: Path | None, role: Role, leave_slot: int | None = None) -> None:
    """Keep ``role`` (and, for ``leaving``, the last slot the node votes in)."""
    if data_dir is not None:
        text = role if leave_slot is None else f"{role} {leave_slot}"
        _write_durably(data_dir / ROLE_FILE, text + "\n")


def load_met(data_dir: Path | None, expect: int) -> tuple[set[str], str | None, dict[str, str]]:
    """The nodes met while bootstrapping, kept in ``data_dir`` (empty: none kept, or no dir),
    the nonce announced with them (None: none kept, or an older release's file), and the
    nonce each of them announced when it was met (none in an older release's file).

    Bootstrap's proof needs the met-sets one node announces to form a chain over its whole
    life, restarts included: a node that announced S and restarted with a smaller set could
    agree on another. So the set is kept before it is announced, and read back here; and the
    N it was announced with must stay the same. The nonce likewise: the members of S derive
    the formation id from the nonces announced with S, so each must be one over a node's life.
    """
    path = None if data_dir is None else data_dir / BOOTSTRAP_FILE
    text = _read_kept(path)
    if text is None:
        return set(), None, {}
    try:
        kept = json.loads(text)
        kept_expect = kept["expect"]
        met = kept["met"]
        nonce = kept.get("nonce")
        nonces = kept.get("nonces", {})
        if (
            type(kept_expect) is not int
            or not all(type(node) is str for node in met)
            or (nonce is not None and type(nonce) is not str)
            or type(nonces) is not dict
            or not all(type(value) is str for value in nonces.values())
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(
            f"{path} is damaged; start this node on a fresh --data-dir"
        ) from None
    if kept_expect != expect:
        raise ConfigurationError(
            f"data dir {data_dir} began bootstrapping with --bootstrap-expect {kept_expect}, "
            f"not {expect}: start it with --bootstrap-expect {kept_expect}, or on a fresh "
            "--data-dir"
        )
    return set(met), nonce, nonces


def save_met(
    data_dir: Path | None,
    expect: int,
    met: frozenset[str],
    nonce: str,
    nonces: Mapping[str, str],
) -> None:
    """Keep the met-set and the nonces (see :func:`load_met`); without a data dir they live
    in memory only."""
    if data_dir is not None:
        kept = {"expect": expect, "met": sorted(met), "nonce": nonce, "nonces": dict(nonces)}
        text = json.dumps(kept)
        _write_durably(data_dir / BOOTSTRAP_FILE, text + "\n")


def _fresh_id() -> str:
    return "n-" + secrets.token_hex(4)


def _write_durably(path: Path, text: str) -> None:
    """Write ``text`` as ``path`` whole or not at all; a failure names the file (it said
    only "File too large") and leaves no temporary file behind."""
    temporary = path.with_suffix(".tmp")
    try:
        with temporary.open("w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StorageError(
            f"writing {path} failed ({error.strerror or error}); {storage_fix(error)}, then "
            "start the node again"
        ) from None


class DuplicateIdWatch:
    """Decides when frames sent under our own node id prove a second live process.

    The transport hands over every frame it gets with our id and another incarnation (the
    frame header's number, the sender's start time in nanoseconds: a restart always takes a
    larger one). Two processes answering as one acceptor break Paxos, so one must go: the
    newer, since the older may be a voter the cluster counts on, and the newer has just been
    started by someone who can read its error. The older one only warns.

    One frame is not proof: a restarted node may still receive a datagram its previous life
    sent just before it died (delayed in a queue, or a multicast copy). A dead process sends
    nothing more, so the other incarnation counts as alive only once frames from it have kept
    coming for at least ``alive_after_s`` (a hello interval: every live node sends a hello at
    least that often): three frames or more, never two in a row more than two intervals apart.
    Two stale frames, however far apart, are not enough, and an incarnation silent for two
    intervals is forgotten (its next frame starts a new count).
    """

    def __init__(self, own_incarnation: int, alive_after_s: float) -> None:
        self.own_incarnation = own_incarnation
        self.alive_after_s = alive_after_s
        self._runs: dict[int, tuple[float, float, int]] = {}  # first, last heard, frames

    def heard(self, incarnation: int, now: float) -> bool:
        """True when this process should stop: an older incarnation is alive."""
        if incarnation >= self.own_incarnation:
            return False  # ours (an echo), or a newer process: that one stops, not us
        silent_s = 2 * self.alive_after_s
        self._runs = {k: run for k, run in self._runs.items() if now - run[1] <= silent_s}
        first, _, frames = self._runs.get(incarnation, (now, now, 0))
        if len(self._runs) >= 64:  # bounded: a flood of forged headers cannot grow it
            self._runs = {}
        self._runs[incarnation] = (first, now, frames + 1)
        return frames + 1 >= 3 and now - first >= self.alive_after_s
