"""What every session backend shares: the id a browser holds, the key a session lives under,
and its expiry, which is a lease of its own.

A session is one key, ``(prefix, id)``, whose value is the session's dict. It is attached to a
lease granted with the session's lifetime, so the cluster deletes it when the user stops
coming back (as ``expire`` to a watch), with no sweeper on any web server. A save renews the
lease (``keepalive``) and writes the dict; a request that only refreshes the expiry renews
the lease alone. One lease per session rather than a new one per save: leases granted and
dropped would pile up in every replica's lease table until each ran out.

The id is 32 random bytes (``secrets.token_urlsafe``), so it needs no signature: it cannot be
guessed, and an id that was not made here (wrong length or alphabet) is never looked up.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

from paxoskv.errors import InvalidArgument, LeaseNotFound

if TYPE_CHECKING:
    from paxoskv.client import Consistency, KVApi

SESSION_ID_BYTES: Final = 32
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> bool:
    """Whether ``value`` (a cookie's, say) could be an id :func:`new_session_id` made."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


class Loaded:
    """A session found in the cluster: its id, its data and the lease it is on."""

    __slots__ = ("data", "lease", "sid")

    def __init__(self, sid: str, data: dict[str, Any], lease: int | None) -> None:
        self.sid = sid
        self.data = data
        self.lease = lease


class SessionStore:
    """Sessions under one key prefix: ``(prefix, id)`` keys, each on a lease of its own.

    ``consistency`` is how a session is read: ``linearizable`` (the default) sees every write
    any server acknowledged, so a user's next request reads what the last one wrote wherever it
    lands; ``local`` reads the contacted node's own copy, which can lag a few milliseconds.
    """

    def __init__(self, prefix: str = "session", *, consistency: Consistency = "linearizable"):
        from paxoskv.client import check_consistency

        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"a session prefix is a non-empty str, not {prefix!r}")
        check_consistency(consistency)
        self.prefix = prefix
        self.consistency: Consistency = consistency

    def key(self, sid: str) -> tuple[str, str]:
        return (self.prefix, sid)

    async def load(self, api: KVApi, sid: object) -> Loaded | None:
        """The session ``sid`` names, or None: no such id, expired, or not a session's value."""
        if not is_session_id(sid):
            return None
        assert isinstance(sid, str)
        entry = await api.get_entry(self.key(sid), consistency=self.consistency)
        if entry is None or not isinstance(entry.value, dict):
            return None
        return Loaded(sid, entry.value, entry.lease_id)

    async def save(
        self, api: KVApi, sid: str, data: dict[str, Any], lease: int | None, ttl_s: float
    ) -> int:
        """Write ``data`` as session ``sid`` for ``ttl_s`` more seconds; the lease it is on now.

        ``lease`` is the one it was loaded on (None for a new session). Should that lease run
        out between the renewal and the write, the write is refused and made again on a new
        one: the session then lives on rather than being lost.
        """
        lease = await self._renewed(api, lease, ttl_s)
        try:
            await api.set(self.key(sid), data, lease=lease)
        except LeaseNotFound:
            lease = await api.grant_lease(ttl_s)
            await api.set(self.key(sid), data, lease=lease)
        return lease

    async def refresh(self, api: KVApi, lease: int | None) -> bool:
        """Push a session's expiry back a whole lifetime without writing it; False if it has
        expired meanwhile (or was never on a lease), when a save must write it anew."""
        if lease is None:
            return False
        try:
            await api.keepalive(lease)
        except LeaseNotFound:
            return False
        return True

    async def delete(self, api: KVApi, sid: str, lease: int | None) -> None:
        """End session ``sid`` now: its key, and its lease (which would delete the key too)."""
        await api.delete(self.key(sid))
        if lease is not None:
            with contextlib.suppress(LeaseNotFound):
                await api.revoke(lease)

    @staticmethod
    async def _renewed(api: KVApi, lease: int | None, ttl_s: float) -> int:
        if lease is not None:
            with contextlib.suppress(LeaseNotFound):
                await api.keepalive(lease)
                return lease
        return await api.grant_lease(ttl_s)
