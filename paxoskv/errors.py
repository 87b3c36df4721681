"""Errors a user of paxos-kv can meet, each saying what happened and what to do.

Two families, as h11 keeps them: a caller's mistake raises at once with a message (these
classes), while bad bytes from a peer or from the disk are dropped or refused at the boundary.
Refusing to start on a damaged data dir is a user-facing error too, because only a person can
decide how to recover. A broken internal invariant is a bug and is an ``AssertionError``.

Every class derives from :class:`PaxosKVError`, so ``except PaxosKVError`` catches all of them.
"""

from __future__ import annotations

import errno


class PaxosKVError(Exception):
    """Base of every error paxos-kv raises on purpose."""


class ConfigurationError(PaxosKVError, ValueError):
    """A setting is missing, malformed or contradicts another one."""


class InvalidArgument(PaxosKVError, ValueError):
    """An argument to an API call is of the wrong type or out of range (an unknown
    consistency, a lease ttl of zero, a negative revision); fix the call. Raised before
    anything is sent, so nothing was written."""


class QuorumAtRisk(ConfigurationError):
    """A removal would leave the voters that remain without a quorum of live ones, so the
    cluster would take no writes (nor undo the removal) until a down voter came back.
    Refused before anything is sent: bring the down voters back, remove them first, or
    pass ``force=True`` (``--force``) if that is what is wanted."""


class WrongCluster(ConfigurationError):
    """The data dir was written by a member of another cluster.

    Its log and its acceptor's promises belong to that cluster: joined to another one, its
    slot numbers and votes would be counted where they mean nothing.
    """

    def __init__(self, path: str, kept: str, wanted: str) -> None:
        self.path = path
        self.kept = kept
        self.wanted = wanted
        super().__init__(
            f"data dir {path} belongs to cluster {kept!r}, not {wanted!r}: use a fresh "
            f"--data-dir to join {wanted!r}, or --cluster {kept} to run it in its own cluster"
        )


class WrongFormation(ConfigurationError):
    """The data dir belongs to another formation of this cluster: one of the same name and
    node ids, formed apart from the one running now (an earlier cluster, re-created).

    Its log and its acceptor's promises are that formation's: counted here, they would make
    replicas hold different values for one slot. Raised by the node that finds a quorum of its
    configuration's voters running another formation; the members refuse it meanwhile.
    """

    def __init__(
        self, node_id: str, path: str | None, cluster: str, kept: str, running: str
    ) -> None:
        self.node_id = node_id
        self.path = path
        self.kept = kept
        self.running = running
        ours = f"formation {kept}" if kept else "a formation of an earlier release"
        theirs = f"formation {running}" if running else "a formation of an earlier release"
        where = f"its data dir {path}" if path else "it (it keeps no data dir)"
        wipe = f"wipe (or move aside) {path}, " if path else ""
        super().__init__(
            f"node {node_id!r} belongs to another cluster named {cluster!r} ({ours}) than the "
            f"one its fellow voters run ({theirs}): {where} holds that other cluster's log. "
            f"Start it on the data dir it has in the running cluster, if it has one; if not, "
            f"{wipe}remove it from the running cluster (paxos-kv members remove {node_id}) and "
            "start it again: it joins as a new member. To keep both clusters, give one of them "
            "its own --cluster name"
        )


class AmnesiacVoter(ConfigurationError):
    """A voter's id started on a data dir that holds none of its votes (wiped, lost, or a new
    machine given the old id).

    Paxos is safe only while no acceptor forgets a promise or an accept: one that voted in its
    earlier life and votes again with no memory of it can let two values be chosen for one
    slot, or a lower ballot win after it promised a higher one. So a fresh life votes only in
    a seat it was given itself (see ``Replica._check_life``); this one found its id already a
    voter, and stopped before it voted at all.
    """

    def __init__(self, node_id: str, path: str | None, cluster: str) -> None:
        self.node_id = node_id
        self.path = path
        where = f"data dir {path}" if path else "memory (it keeps no data dir)"
        super().__init__(
            f"node {node_id!r} is a voter of cluster {cluster!r}, but it started on a {where} "
            "with none of its earlier votes (wiped, lost, or a new machine under its id): "
            "voting now could let two values be chosen for one slot, so it stopped without "
            "voting. Start it on its old data dir if that still exists; if not, run paxos-kv "
            f"members remove {node_id} against the running members, then start it again as it "
            "is: it joins as a new member (a learner, promoted once it has caught up)"
        )


class DuplicateNodeId(ConfigurationError):
    """Another live process runs as this node id (a copied data dir, a reused --node-id).

    Two processes answering as one acceptor can each promise or accept what the other refused,
    which breaks Paxos's safety; the newer of the two stops.
    """

    def __init__(self, node_id: str, address: object) -> None:
        self.node_id = node_id
        self.address = address
        super().__init__(
            f"another process at {address} runs as node id {node_id!r}; give every node its "
            "own data dir (and its own --node-id)"
        )


class NodeRemoved(PaxosKVError):
    """This node was taken out of the cluster's configuration (``members remove``)."""

    def __init__(self, node_id: str, cluster: str) -> None:
        self.node_id = node_id
        self.cluster = cluster
        super().__init__(
            f"node {node_id!r} was removed from cluster {cluster!r} and has stopped; to bring "
            "it back, start it on a fresh --data-dir (it joins as a new member)"
        )


# --- storage -------------------------------------------------------------------------------


class StorageError(PaxosKVError):
    """Something is wrong with the data directory or the disk under it."""


class DataDirLocked(StorageError):
    """Another process holds the data directory open."""

    def __init__(self, path: str, holder_pid: int | None) -> None:
        self.path = path
        self.holder_pid = holder_pid
        who = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"data dir {path} is in use by {who}; stop that process or choose another --data-dir"
        )


class CorruptData(StorageError):
    """A journal segment or snapshot failed its checks in a place that is not a torn tail.

    The store refuses to start rather than guess: silently dropping a committed record is how
    replicas diverge.
    """

    def __init__(self, path: str, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        where = f"{path} at byte {offset}" if offset is not None else path
        super().__init__(
            f"corrupt data in {where}: {reason}. The store will not start on it. To recover, "
            "move the data dir aside and let the node rejoin and catch up from a peer, or "
            "restore the data dir from a backup"
        )


class UnsupportedFormat(StorageError):
    """A file was written by a format version this build does not read."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path} has format version {found}, this paxos-kv reads version {supported}; "
            "run the paxos-kv release that wrote it, or rebuild this node from a peer"
        )


class WrongEncryptionKey(StorageError):
    """The data at rest does not decrypt with the key given."""

    def __init__(self, path: str, *, key_given: bool = True) -> None:
        self.path = path
        self.key_given = key_given
        if key_given:
            problem = "does not decrypt with the given encryption key"
        else:
            problem = "is encrypted, and no encryption key was given"
        super().__init__(
            f"{path} {problem}; pass the key file this data dir was written with "
            "(--encryption-key-file)"
        )


class StorageFailed(StorageError):
    """A write or fsync failed; the store stopped and will not accept more writes.

    Nothing after the failure was reported durable. The fsync is never retried: after a
    failed fsync the kernel may have dropped the dirty pages, so a retry that succeeds would
    be a lie (the PostgreSQL "fsyncgate" lesson).
    """

    def __init__(self, path: str, cause: OSError) -> None:
        self.path = path
        self.cause = cause
        super().__init__(
            f"writing {path} failed ({cause.strerror or cause}); the store has stopped. "
            f"{storage_fix(cause)}, then restart the node: it recovers from its journal"
        )


def storage_fix(cause: OSError) -> str:
    """What to do about a failed write, by its cause: a permission is not a full disk."""
    if cause.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "Let this user write to the data dir (its permissions, or a read-only mount)"
    if cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "Free disk space (or raise the quota or file size limit)"
    return "Fix the device"


class StoreClosed(StorageError):
    """The store was used after it was closed or after it failed."""


# --- the replicated state ------------------------------------------------------------------


class KeyNotFound(PaxosKVError, KeyError):
    """The key does not exist."""

    def __init__(self, key: object) -> None:
        self.key = key
        super().__init__(f"key {key!r} not found")

    def __str__(self) -> str:
        return str(self.args[0])


class CompareFailed(PaxosKVError):
    """A compare-and-set or transaction's comparison did not hold; nothing was written."""


class Compacted(PaxosKVError):
    """The revision a watch asked to start from is older than the history still kept.

    ``requested`` is the first revision asked for (``from_revision``), ``oldest`` the first
    one a watch can still start from: both in the same sense, so the advice below works.
    """

    def __init__(self, requested: int, oldest: int) -> None:
        self.requested = requested
        self.oldest = oldest
        super().__init__(
            f"revision {requested} is compacted: the change history kept starts at revision "
            f"{oldest}. Watch from revision {oldest} or later (from_revision=, --from-revision on "
            "the command line), or read the "
            "current state and watch for changes from now on"
        )


class LeaseNotFound(PaxosKVError):
    """The lease does not exist, or has expired or been revoked."""


class InvalidKey(PaxosKVError, TypeError):
    """A key is not a str, bytes, or tuple of str, bytes and int."""


class ValueNotSerialisable(PaxosKVError, TypeError):
    """A value cannot be carried by msgpack."""


class ValueTooLarge(PaxosKVError, ValueError):
    """A value, key or request is bigger than the cluster carries."""

    def __init__(self, size: int, limit: int, what: str = "value") -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} of {size} bytes is over the limit of {limit} bytes: a write travels in "
            "one datagram (a txn too, whole); split the value over several keys written one "
            "by one, or keep large blobs elsewhere and store a reference"
        )


# --- the cluster ---------------------------------------------------------------------------


class NoQuorum(PaxosKVError, TimeoutError):
    """No majority of voters answered in time; the outcome of a write is unknown."""


class PayloadTooLarge(PaxosKVError, ValueError):
    """A datagram is bigger than the transport can carry (or an answer than a member keeps)."""

    def __init__(self, size: int, limit: int, message: str | None = None) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            message or f"payload of {size} bytes is over this transport's limit of {limit} bytes"
        )


class WrongSecret(PaxosKVError):
    """Frames from the cluster do not authenticate with the secret given."""


# --- the transport -------------------------------------------------------------------------


class TransportClosed(PaxosKVError):
    """A transport was used after :meth:`close`; open a new one to talk to the cluster again."""


class TransportUnavailable(PaxosKVError):
    """The transport asked for cannot work on this machine (no kernel support, no interface)."""


class InvalidCommand(PaxosKVError, ValueError):
    """A state-machine command's fields do not make sense (a TTL of zero, a key twice in one
    transaction, a comparison on a target that does not exist); fix the call."""


# --- the handle itself ---------------------------------------------------------------------


class NodeClosed(PaxosKVError):
    """A :class:`~paxoskv.Node` or client was used after it was closed (after its ``async
    with`` block ended); open a new one."""


class NotStarted(PaxosKVError, RuntimeError):
    """A :class:`~paxoskv.Node`, client or blocking handle was used before it was started
    (``async with``, or ``with paxoskv.open_blocking(config) as kv``)."""


class UndecodableReply(PaxosKVError):
    """A member's answer arrived but could not be decoded.

    Raised rather than waiting for a reply that will never decode: the member runs a paxos-kv
    this one does not understand, or the bytes were damaged. Run the same release everywhere.
    """
