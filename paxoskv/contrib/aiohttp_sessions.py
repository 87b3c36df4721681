"""aiohttp sessions (``aiohttp_session``) kept in a paxos-kv cluster.

    node = paxoskv.Node(config)                 # or paxoskv.connect(config): a thin client
    await node.start()
    aiohttp_session.setup(app, PaxosKVStorage(node, max_age=3600))

The cookie holds only the session's random id; the session (``aiohttp_session``'s
``{"created": ..., "session": {...}}``) is a key of the cluster on a lease of ``max_age``
seconds, or ``ttl_s`` when ``max_age`` is None (a cookie that lasts while the browser is
open: the cluster still forgets a session nobody has saved for that long). As with every
``aiohttp_session`` storage, a session is saved, and its expiry pushed back, when a request
changes it. Values must be what paxos-kv stores (msgpack's types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, SessionData

from paxoskv.contrib.sessions import SessionStore, new_session_id
from paxoskv.errors import InvalidArgument

if TYPE_CHECKING:
    from paxoskv.client import Consistency, KVApi

DEFAULT_TTL_S: Final = 31 * 24 * 3600  # Flask's default session lifetime
# The (id, lease) of the session a request brought, once looked up.
_LOADED: Final = web.RequestKey("paxoskv.session.loaded", tuple[str, int | None])


class PaxosKVStorage(AbstractStorage):
    """``aiohttp_session`` storage in the cluster ``kv`` (a ``Node`` or a thin client)."""

    def __init__(
        self,
        kv: KVApi,
        *,
        prefix: str = "aiohttp-session",
        consistency: Consistency = "linearizable",
        ttl_s: float = DEFAULT_TTL_S,
        cookie_name: str = "AIOHTTP_SESSION",
        domain: str | None = None,
        max_age: int | None = None,
        path: str = "/",
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = None,
    ) -> None:
        if max_age is not None and (type(max_age) is not int or max_age <= 0):
            raise InvalidArgument(f"max_age is a whole number of seconds over 0, not {max_age!r}")
        super().__init__(
            cookie_name=cookie_name,
            domain=domain,
            max_age=max_age,
            path=path,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )
        self.kv = kv
        self.store = SessionStore(prefix, consistency=consistency)
        self.ttl_s = float(max_age) if max_age is not None else ttl_s

    async def load_session(self, request: web.Request) -> Session:
        loaded = await self.store.load(self.kv, self.load_cookie(request))
        if loaded is None or not _is_session_data(loaded.data):
            return Session(None, data=None, new=True, max_age=self.max_age)
        request[_LOADED] = (loaded.sid, loaded.lease)
        data = SessionData(created=loaded.data["created"], session=loaded.data["session"])
        return Session(loaded.sid, data=data, new=False, max_age=self.max_age)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        loaded = request.get(_LOADED) or await self._brought(request)
        if session.empty:  # invalidated or cleared: the key and the cookie go
            self.save_cookie(response, "", max_age=session.max_age)
            if loaded is not None:
                await self.store.delete(self.kv, *loaded)
            return
        if loaded is not None and session.identity == loaded[0]:
            identity, lease = loaded[0], loaded[1]
        else:  # a new session: if it replaces the loaded one (new_session at login), that ends
            if loaded is not None:
                await self.store.delete(self.kv, *loaded)
            identity, lease = new_session_id(), None
            session.set_new_identity(identity)
        data: dict[str, Any] = dict(self._get_session_data(session))
        data["session"] = dict(data["session"])
        await self.store.save(self.kv, identity, data, lease, self.ttl_s)
        self.save_cookie(response, identity, max_age=session.max_age)

    async def _brought(self, request: web.Request) -> tuple[str, int | None] | None:
        """The session the request's cookie names, when the handler never loaded it (it
        called ``new_session`` straight away, as at a login): the new one replaces it."""
        found = await self.store.load(self.kv, self.load_cookie(request))
        return None if found is None else (found.sid, found.lease)


def _is_session_data(data: dict[str, Any]) -> bool:
    """Whether ``data`` is what :meth:`PaxosKVStorage.save_session` writes (a value written
    under the prefix by anything else starts a new session rather than fail the request)."""
    return type(data.get("created")) is int and isinstance(data.get("session"), dict)
