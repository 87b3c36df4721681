"""What every session backend shares: the id a browser holds, the key a session lives under,
its expiry (a lease of its own), and how a request's changes are written.

A session is one key, ``(prefix, id)``, whose value is ``{"session": {...}, "lease_ttl_s":
...}`` (and any fields of the backend's own, as ``aiohttp_session``'s ``created``). It is
attached to a lease granted with the session's lifetime, so the cluster deletes it when
nobody renews it (as ``expire`` to a watch), with no sweeper on any web server. One lease per
session, renewed with ``keepalive``, rather than a new one per save: leases granted and
dropped would pile up in every replica's lease table until each ran out. A lease's length is
fixed when it is granted, so the value records it (``lease_ttl_s``): a session whose lifetime
has changed since (a setting lowered, an ``aiohttp_session`` handler's ``max_age``) moves to a
new lease at its next write or renewal, and its old lease is revoked.

A request writes only what it changed, onto the session as it is now (:meth:`update`): the
keys it set or changed and the keys it removed, compared top-level key by key with what it
read, under a compare of the session's ``mod_revision``, read again and merged on a conflict.
Two requests of one visitor that change different keys both keep their change, and a request
that read the session before another one removed a key (a logout that pops the user id) does
not put it back, since it did not change it. A session that ended meanwhile (deleted at
logout, replaced at login, expired) is never written again: its id is not brought back to
life by a request still in flight, which would undo a logout for whoever holds that cookie.
Nor does that request's answer touch the cookie: by then the browser's cookie may name the
session a login put in its place, and an id that names no session is harmless.

The id is 32 random bytes (``secrets.token_urlsafe``), so it needs no signature: it cannot be
guessed, and only a cookie of an id's form (43 characters of the URL-safe alphabet) is looked
up at all. An id the browser brings that names no session is never adopted: a new session
gets a new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Final, Literal

from paxoskv.client import MAX_COMMAND_BYTES, check_consistency
from paxoskv.errors import (
    CompareFailed,
    InvalidArgument,
    LeaseNotFound,
    PaxosKVError,
    ValueTooLarge,
)
from paxoskv.state.command_wire import encode_command
from paxoskv.state.commands import MAX_LEASE_ID, Compare, Delete, Set, Txn
from paxoskv.state.results import Deleted

if TYPE_CHECKING:
    from paxoskv.client import Consistency, KVApi

SESSION_ID_BYTES: Final = 32
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters
LEASE_TTL: Final = "lease_ttl_s"
SESSION: Final = "session"
log = logging.getLogger(__name__)


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> bool:
    """Whether ``value`` (a cookie's, say) has the form of an id :func:`new_session_id` makes."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


class Loaded:
    """A session as read from the cluster: its id, the stored value (:attr:`session` is the
    session's own dict), its lease, and the revisions that tell whether it is still the same
    session (``create_revision``) and unchanged since (``mod_revision``)."""

    __slots__ = ("create_revision", "lease", "mod_revision", "sid", "value")

    def __init__(
        self,
        sid: str,
        value: dict[str, Any],
        lease: int | None,
        mod_revision: int,
        create_revision: int,
    ) -> None:
        self.sid = sid
        self.value = value
        self.lease = lease
        self.mod_revision = mod_revision
        self.create_revision = create_revision

    @property
    def session(self) -> dict[str, Any]:
        session: dict[str, Any] = self.value[SESSION]
        return session

    def extra(self) -> dict[str, Any]:
        """The backend's own fields of the value (neither the session nor the lease's length)."""
        return {key: value for key, value in self.value.items() if key not in (SESSION, LEASE_TTL)}


def changes(read: dict[str, Any], now: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What a request did to a session it read: the keys it set or changed (with their values
    now), and the keys it removed. A change inside a nested list or dict is a change of its
    top-level key."""
    changed = {key: value for key, value in now.items() if key not in read or read[key] != value}
    removed = [key for key in read if key not in now]
    return changed, removed


def merge(current: dict[str, Any], read: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """``current`` with what the request changed from ``read`` to ``now`` applied to it."""
    changed, removed = changes(read, now)
    merged = {key: value for key, value in current.items() if key not in removed}
    merged.update(changed)
    return merged


class SessionStore:
    """Sessions under one key prefix: ``(prefix, id)`` keys, each on a lease of its own.

    ``consistency`` is how a request reads its session: ``linearizable`` (the default) sees
    every write any server acknowledged, so a visitor's next request reads what the last one
    wrote wherever it lands; ``local`` reads the contacted node's own copy, which can lag a few
    milliseconds, so a request that follows a write on another server that closely may find no
    session and start a new one. (A save that meets a conflict reads again linearizably.)
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
        a value under the prefix that is no session's."""
        if not is_session_id(sid):
            return None
        assert isinstance(sid, str)
        entry = await api.get_entry(self.key(sid), consistency=consistency or self.consistency)
        if entry is None or not _is_session_value(entry.value):
            return None
        return Loaded(sid, entry.value, entry.lease_id, entry.mod_revision, entry.create_revision)

    async def create(
        self,
        api: KVApi,
        session: dict[str, Any],
        ttl_s: float,
        extra: dict[str, Any] | None = None,
    ) -> Loaded:
        """A new session holding ``session``, under a new id, on a new lease of ``ttl_s``.

        A value the cluster cannot take is refused before the lease is granted, and a lease
        whose write fails anyway is revoked, as far as the cluster answers: either way no
        lease is left behind for every replica to keep for the session's whole lifetime.
        """
        sid = new_session_id()
        key = self.key(sid)
        value = _value(session, ttl_s, extra)
        _check_storable(key, value)
        lease = await api.grant_lease(ttl_s)
        try:
            result = await api.txn(
                [Compare(key, "version", "==", 0)], [Set(key, value, lease_id=lease)]
            )
        except BaseException:
            await _revoke_quietly(api, lease)
            raise
        if not result.succeeded:  # 256 random bits met an existing id: never, but not taken
            await _revoke_quietly(api, lease)
            raise CompareFailed("a new session id was already taken; nothing written")
        return Loaded(sid, value, lease, result.revision, result.revision)

    async def update(
        self,
        api: KVApi,
        loaded: Loaded,
        session: dict[str, Any],
        ttl_s: float,
        extra: dict[str, Any] | None = None,
    ) -> Loaded | bool:
        """Write what this request changed (``session`` against ``loaded.session``) onto the
        session as it is now, and push its expiry back ``ttl_s``: the session as written; or
        True if nothing is left of it (this request removed the last keys: it is deleted, in
        one step conditional on nothing having been added); or False if it had ended
        meanwhile (deleted, replaced, expired), when nothing is written.

        On a conflict (another request wrote it since it was read) it reads again and merges,
        with a growing random pause between tries, for up to the client's
        ``request_timeout_s``; then ``CompareFailed``, nothing written. The backend's own
        fields (``extra``) that this request did not change keep the values they have now.
        """
        base, tries = loaded, 0
        deadline = time.monotonic() + api.config.request_timeout_s
        while True:
            merged = merge(base.session, loaded.session, session)
            if not merged:
                if await self._delete_at(api, base):
                    return True
            else:
                fields = merge(base.extra(), loaded.extra(), extra or {})
                written = await self._write_over(api, base, _value(merged, ttl_s, fields), ttl_s)
                if written is not None:
                    return written
            current = await self.load(api, loaded.sid, consistency="linearizable")
            if current is None or current.create_revision != loaded.create_revision:
                return False  # ended: never written again under this id
            tries += 1
            if time.monotonic() >= deadline:
                raise CompareFailed(
                    f"the session changed under {tries} saves in a row, for "
                    f"{api.config.request_timeout_s:g} s; nothing written"
                )
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**tries)))
            base = current

    async def empty(
        self, api: KVApi, loaded: Loaded, ttl_s: float, extra: dict[str, Any] | None = None
    ) -> Loaded | bool:
        """A request removed every key of the session it read (a page that pops the last
        notice it showed), which is not a logout: keys another request added meanwhile stay
        (the session as written then), and only a session left with none ends (True). False
        if it had ended meanwhile. (:meth:`update` with nothing left of the request's own.)"""
        return await self.update(api, loaded, {}, ttl_s, extra)

    async def refresh(self, api: KVApi, loaded: Loaded, ttl_s: float) -> Loaded | bool:
        """Push a session's expiry back ``ttl_s`` without changing it; False if it has ended
        (its lease expired or was revoked). A session on a lease of another length (its
        lifetime changed since) is written anew on a new lease."""
        if loaded.value.get(LEASE_TTL) != ttl_s or loaded.lease is None:
            return await self.update(api, loaded, loaded.session, ttl_s, loaded.extra())
        try:
            await api.keepalive(loaded.lease)
        except LeaseNotFound:
            return False
        return loaded

    async def end(self, api: KVApi, loaded: Loaded) -> bool:
        """End the session ``loaded`` is, now: its key, and its lease; False if it had ended
        already (or been replaced under the same id: never), when nothing is deleted.

        The delete is conditional on the session being the one read (its ``create_revision``),
        and the lease revoked is the one the deleted row was on as well as the one read: a
        request that moved the session to a new lease meanwhile would otherwise leave that
        lease behind, keyless, for the session's whole lifetime.
        """
        return await self._delete_at(api, loaded, "create_revision", loaded.create_revision)

    async def _delete_at(
        self,
        api: KVApi,
        loaded: Loaded,
        target: Literal["create_revision", "mod_revision"] = "mod_revision",
        revision: int | None = None,
    ) -> bool:
        """Delete the session if its ``target`` revision is still ``revision`` (by default,
        if it is unchanged since ``loaded``), and revoke its leases; whether it did."""
        key = self.key(loaded.sid)
        at = loaded.mod_revision if revision is None else revision
        result = await api.txn([Compare(key, target, "==", at)], [Delete(key)])
        if not result.succeeded:
            return False
        (deleted,) = result.responses
        leases = {loaded.lease}
        if isinstance(deleted, Deleted) and deleted.prev is not None:
            leases.add(deleted.prev.lease_id)
        for lease in leases - {None}:
            assert lease is not None
            await _revoke_quietly(api, lease)
        return True

    async def replace(
        self,
        api: KVApi,
        loaded: Loaded | None,
        session: dict[str, Any],
        ttl_s: float,
        extra: dict[str, Any] | None = None,
    ) -> Loaded:
        """A new id for a session (at login, against fixation): the new session is written
        first, then the old one ended. If ending it fails (no quorum), the new one stands and
        the old one is left to its lease: a visitor is never left without a session, and a
        login never fails after its session was written."""
        created = await self.create(api, session, ttl_s, extra)
        if loaded is not None:
            try:
                await self.end(api, loaded)
            except PaxosKVError as error:
                log.warning(
                    "a replaced session could not be ended now (%s); its lease ends it", error
                )
        return created

    async def _write_over(
        self, api: KVApi, base: Loaded, value: dict[str, Any], ttl_s: float
    ) -> Loaded | None:
        """``value`` written if the session is still at ``base.mod_revision``, on its lease
        renewed, or on a new one if its lease is of another length; None if the compare
        failed or its lease has run out (then :meth:`update` reads again, and finds it changed
        or ended)."""
        key = self.key(base.sid)
        _check_storable(key, value)
        fresh = base.lease is None or base.value.get(LEASE_TTL) != ttl_s
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
                [Set(key, value, lease_id=lease)],
            )
        except LeaseNotFound:
            result = None
        except PaxosKVError:
            # The outcome is unknown (no quorum, say): the write may have been applied, on the
            # new lease, which must then not be revoked (that would delete the session). Where
            # the cluster answers a read, the lease the key is not on is revoked; otherwise
            # it runs out by itself. (A cancelled caller gets no such clean-up.)
            if fresh:
                await self._revoke_unused(api, key, lease, base.lease)
            raise
        if result is None or not result.succeeded:
            if fresh:
                await _revoke_quietly(api, lease)
            return None
        if fresh and base.lease is not None:
            await _revoke_quietly(api, base.lease)  # the key has moved off it
        return Loaded(base.sid, value, lease, result.revision, base.create_revision)

    @staticmethod
    async def _revoke_unused(api: KVApi, key: tuple[str, str], new: int, old: int | None) -> None:
        with contextlib.suppress(PaxosKVError):
            entry = await api.get_entry(key)
            on = None if entry is None else entry.lease_id
            for lease in {new, old} - {on, None}:
                assert lease is not None
                await _revoke_quietly(api, lease)


def _value(session: dict[str, Any], ttl_s: float, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {**(extra or {}), SESSION: session, LEASE_TTL: ttl_s}


def _is_session_value(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get(SESSION), dict)


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
