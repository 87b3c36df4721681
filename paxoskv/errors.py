"""Errors a user of paxos-kv can meet, each saying what happened and what to do.

Two families, as h11 keeps them: a caller's mistake raises at once with a message (these
classes), while bad bytes from a peer or from the disk are dropped or refused at the boundary.
Refusing to start on a damaged data dir is a user-facing error too, because only a person can
decide how to recover. A broken internal invariant is a bug and is an ``AssertionError``.

Every class derives from :class:`PaxosKVError`, so ``except PaxosKVError`` catches all of them.
"""

from __future__ import annotations


class PaxosKVError(Exception):
    """Base of every error paxos-kv raises on purpose."""


class ConfigurationError(PaxosKVError, ValueError):
    """A setting is missing, malformed or contradicts another one."""


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

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path} does not decrypt with the given encryption key; pass the key file this "
            "data dir was written with"
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
            f"writing {path} failed ({cause.strerror or cause}); the store has stopped. Free "
            "disk space or fix the device, then restart the node: it recovers from its journal"
        )


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
    """The revision asked for is older than the history still kept."""

    def __init__(self, requested: int, oldest: int) -> None:
        self.requested = requested
        self.oldest = oldest
        super().__init__(
            f"revision {requested} is compacted; the oldest revision still kept is {oldest}. "
            "Read the current state and watch from there"
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
        super().__init__(f"{what} of {size} bytes is over the limit of {limit} bytes")


# --- the cluster ---------------------------------------------------------------------------


class NoQuorum(PaxosKVError, TimeoutError):
    """No majority of voters answered in time; the outcome of a write is unknown."""


class PayloadTooLarge(PaxosKVError, ValueError):
    """A datagram is bigger than the transport can carry."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"payload of {size} bytes is over this transport's limit of {limit} bytes")


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


class UndecodableReply(PaxosKVError):
    """A member's answer arrived but could not be decoded.

    Raised rather than waiting for a reply that will never decode: the member runs a paxos-kv
    this one does not understand, or the bytes were damaged. Run the same release everywhere.
    """
