"""What every session backend shares: the id a browser holds, the key a session lives under,
its expiry (a lease of its own), and how a request's changes are written.

A session is one key, ``(prefix, id)``, whose value is the session's dict. It is attached to a
lease granted with the session's lifetime, so the cluster deletes it when nobody renews it (as
``expire`` to a watch), with no sweeper on any web server. One lease per session, renewed with
``keepalive``, rather than a new one per save: leases granted and dropped would pile up in
every replica's lease table until each ran out.

A request writes only what it changed, onto the session as it is now (:meth:`update`): the
keys it set or changed and the keys it removed, compared top-level key by key with what it
read, under a compare of the session's ``mod_revision``, read again and merged on a conflict.
Two requests of one visitor that change different keys both keep their change, and a request
that read the session before another one removed a key (a logout that pops the user id) does
not put it back, since it did not change it. A session that ended meanwhile (deleted at
logout, replaced at login, expired) is never written again: its id is not brought back to
life by a request still in flight, which would undo a logout for whoever holds that cookie.

The id is 32 random bytes (``secrets.token_urlsafe``), so it needs no signature: it cannot be
guessed, and only a cookie of an id's form (43 characters of the URL-safe alphabet) is looked
up at all. An id the browser brings that names no session is never adopted: a new session
gets a new id.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

from paxoskv.client import MAX_COMMAND_BYTES, check_consistency
from paxoskv.errors import (
    CompareFailed,
    InvalidArgument,
    LeaseNotFound,
    PaxosKVError,
    ValueTooLarge,
)
from paxoskv.state.command_wire import encode_command
from paxoskv.state.commands import MAX_LEASE_ID, Compare, Set, Txn

if TYPE_CHECKING:
    from paxoskv.client import Consistency, KVApi

SESSION_ID_BYTES: Final = 32
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters
MERGE_ATTEMPTS: Final = 8  # a save that loses the compare this often in a row gives up


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> bool:
    """Whether ``value`` (a cookie's, say) has the form of an id :func:`new_session_id` makes."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


class Loaded:
    """A session as read from the cluster: its id, data, lease, and the revisions that tell
    whether it is still the same session (``create_revision``) and unchanged since
    (``mod_revision``)."""

    __slots__ = ("create_revision", "data", "lease", "mod_revision", "sid")

    def __init__(
        self,
        sid: str,
        data: dict[str, Any],
        lease: int | None,
        mod_revision: int,
        create_revision: int,
    ) -> None:
        self.sid = sid
        self.data = data
        self.lease = lease
        self.mod_revision = mod_revision
        self.create_revision = create_revision


def changes(read: dict[str, Any], now: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What a request did to a session it read: the keys it set or changed (with their values
    now), and the keys it removed. A change inside a nested list or dict is a change of its
    top-level key."""
    changed = {key: value for key, value in now.items() if key not in read or read[key] != value}
    removed = [key for key in read if key not in now]
    return changed, removed


def merge(
    current: dict[str, Any], read: dict[str, Any], now: dict[str, Any], inner: str | None
) -> dict[str, Any]:
    """``current`` with what the request changed from ``read`` to ``now`` applied to it.

    With ``inner``, the session's own keys are the dict under that key (``aiohttp_session``
    keeps ``{"created": ..., "session": {...}}``): those are merged key by key, and the other
    fields are the request's.
    """
    if inner is not None:
        inside = merge(_dict_at(current, inner), _dict_at(read, inner), _dict_at(now, inner), None)
        return {**now, inner: inside}
    changed, removed = changes(read, now)
    merged = {key: value for key, value in current.items() if key not in removed}
    merged.update(changed)
    return merged


def _dict_at(value: dict[str, Any], key: str) -> dict[str, Any]:
    inside = value.get(key)
    return inside if isinstance(inside, dict) else {}


class SessionStore:
    """Sessions under one key prefix: ``(prefix, id)`` keys, each on a lease of its own.

    ``consistency`` is how a request reads its session: ``linearizable`` (the default) sees
    every write any server acknowledged, so a visitor's next request reads what the last one
    wrote wherever it lands; ``local`` reads the contacted node's own copy, which can lag a few
    milliseconds. (A save that meets a conflict reads again linearizably, whatever this is.)
    """

    def __init__(self, prefix: str = "session", *, consistency: Consistency = "linearizable"):
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"a session prefix is a non-empty str, not {prefix!r}")
        check_consistency(consistency)
        self.prefix = prefix
        self.consistency: Consistency = consistency

    def key(self, sid: str) -> tuple[str, str]:
        return (self.prefix, sid)

    async def load(
        self, api: KVApi, sid: object, *, consistency: Consistency | None = None
    ) -> Loaded | None:
        """The session ``sid`` names, or None: not an id's form, no such session, expired, or
        a value under the prefix that is no session's (not a dict)."""
        if not is_session_id(sid):
            return None
        assert isinstance(sid, str)
        entry = await api.get_entry(self.key(sid), consistency=consistency or self.consistency)
        if entry is None or not isinstance(entry.value, dict):
            return None
        return Loaded(sid, entry.value, entry.lease_id, entry.mod_revision, entry.create_revision)

    async def create(self, api: KVApi, data: dict[str, Any], ttl_s: float) -> Loaded:
        """A new session holding ``data``, under a new id, on a new lease of ``ttl_s``.

        A value the cluster cannot take is refused before the lease is granted, and a lease
        whose write fails anyway is revoked, as far as the cluster answers: either way no
        lease is left behind for every replica to keep for the session's whole lifetime.
        """
        sid = new_session_id()
        key = self.key(sid)
        _check_storable(key, data)
        lease = await api.grant_lease(ttl_s)
        try:
            result = await api.txn(
                [Compare(key, "version", "==", 0)], [Set(key, data, lease_id=lease)]
            )
        except BaseException:
            await _revoke_quietly(api, lease)
            raise
        if not result.succeeded:  # 256 random bits met an existing id: never, but not taken
            await _revoke_quietly(api, lease)
            raise CompareFailed("a new session id was already taken; nothing written")
        return Loaded(sid, data, lease, result.revision, result.revision)

    async def update(
        self,
        api: KVApi,
        loaded: Loaded,
        data: dict[str, Any],
        ttl_s: float,
        *,
        new_lease: bool = False,
        inner: str | None = None,
    ) -> Loaded | None:
        """Write what this request changed (``data`` against ``loaded.data``) onto the session
        as it is now, and push its expiry back; the session as written, or None if it has
        ended meanwhile (deleted, replaced, expired), when nothing is written.

        ``ttl_s`` is the session's lifetime: its lease is renewed for that long. A lease's
        lifetime is fixed when it is granted, so ``new_lease`` moves the session to a new lease
        of ``ttl_s`` (a lifetime changed since), and the old lease is revoked once it has moved.
        ``inner``: see :func:`merge`.
        """
        base = loaded
        for _ in range(MERGE_ATTEMPTS):
            merged = merge(base.data, loaded.data, data, inner)
            written = await self._write_over(api, base, merged, ttl_s, new_lease)
            if written is not None:
                return written
            current = await self.load(api, loaded.sid, consistency="linearizable")
            if current is None or current.create_revision != loaded.create_revision:
                return None  # ended: never written again under this id
            base = current
        raise CompareFailed(
            f"the session changed under {MERGE_ATTEMPTS} saves in a row; nothing written"
        )

    async def refresh(self, api: KVApi, loaded: Loaded) -> bool:
        """Push a session's expiry back a whole lifetime without writing it; False if it has
        ended (its lease expired or was revoked)."""
        if loaded.lease is None:
            return False
        try:
            await api.keepalive(loaded.lease)
        except LeaseNotFound:
            return False
        return True

    async def end(self, api: KVApi, loaded: Loaded) -> None:
        """End a session now: its key, and its lease (which would delete the key too)."""
        await api.delete(self.key(loaded.sid))
        if loaded.lease is not None:
            await _revoke_quietly(api, loaded.lease)

    async def replace(
        self, api: KVApi, loaded: Loaded | None, data: dict[str, Any], ttl_s: float
    ) -> Loaded:
        """A new id for a session (at login, against fixation): the new session is written
        first, then the old one ended, so a failure between leaves the visitor a session."""
        created = await self.create(api, data, ttl_s)
        if loaded is not None:
            await self.end(api, loaded)
        return created

    async def _write_over(
        self, api: KVApi, base: Loaded, data: dict[str, Any], ttl_s: float, new_lease: bool
    ) -> Loaded | None:
        """``data`` written if the session is still at ``base.mod_revision``, on its lease
        renewed (or on a new one); None if the compare failed or its lease has run out (then
        :meth:`update` reads again, and finds it changed or ended)."""
        key = self.key(base.sid)
        _check_storable(key, data)
        fresh = new_lease or base.lease is None
        try:
            if fresh:
                lease = await api.grant_lease(ttl_s)
            else:
                assert base.lease is not None
                lease = base.lease
                await api.keepalive(lease)
        except LeaseNotFound:  # (from the keepalive alone)
            return None
        try:
            result = await api.txn(
                [Compare(key, "mod_revision", "==", base.mod_revision)],
                [Set(key, data, lease_id=lease)],
            )
        except LeaseNotFound:
            result = None
        except BaseException:
            if fresh:
                await _revoke_quietly(api, lease)
            raise
        if result is None or not result.succeeded:
            if fresh:
                await _revoke_quietly(api, lease)
            return None
        if fresh and base.lease is not None:
            await _revoke_quietly(api, base.lease)  # the key has moved off it
        return Loaded(base.sid, data, lease, result.revision, base.create_revision)


def _check_storable(key: tuple[str, str], data: dict[str, Any]) -> None:
    """Refuse, before anything is written or granted, a session the cluster cannot take:
    ``ValueNotSerialisable`` or ``ValueTooLarge``, as a write of it would."""
    widest = Compare(key, "mod_revision", "==", 2**64 - 1)  # as wide as the real one can be
    size = len(encode_command(Txn((widest,), (Set(key, data, lease_id=MAX_LEASE_ID),), ())))
    if size > MAX_COMMAND_BYTES:
        raise ValueTooLarge(size, MAX_COMMAND_BYTES, "session")


async def _revoke_quietly(api: KVApi, lease: int) -> None:
    """Revoke, as a clean-up: a lease already gone, or a cluster that does not answer now,
    is not the error the caller is raising (the lease then runs out by itself)."""
    with contextlib.suppress(PaxosKVError):
        await api.revoke(lease)
