"""aiohttp sessions (``aiohttp_session``) kept in a paxos-kv cluster.

    node = paxoskv.Node(config)                 # or paxoskv.connect(config): a thin client
    await node.start()
    aiohttp_session.setup(app, PaxosKVStorage(node, max_age=3600))

The cookie holds only the session's random id; the session (``aiohttp_session``'s
``{"created": ..., "session": {...}}``) is a key of the cluster on a lease of the session's
``max_age`` (the storage's, or one a handler set on the session), or ``ttl_s`` when that is
None (a cookie that lasts while the browser is open: the cluster still forgets a session
nobody has saved for that long). As with every ``aiohttp_session`` storage, a session is read
when a handler asks for it (``get_session``) and saved, its expiry pushed back, when a request
changed it; a save writes what the request changed onto the session as it is now, and never
brings back a session that ended meanwhile (:mod:`paxoskv.contrib.sessions`). Values must be
what paxos-kv stores (msgpack's types).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, SessionData

from paxoskv.contrib.sessions import Loaded, SessionStore
from paxoskv.errors import InvalidArgument

if TYPE_CHECKING:
    from paxoskv.client import Consistency, KVApi

DEFAULT_TTL_S: Final = 31 * 24 * 3600  # Flask's default session lifetime
# What a request's cookie named, once looked up (None: no session).
_LOADED: Final = web.RequestKey[Loaded | None]("paxoskv.session.loaded")


class PaxosKVSession(Session):
    """An ``aiohttp_session`` session that knows whether it was invalidated (a logout, which
    ends it whole) or only emptied key by key (which leaves what others added meanwhile)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalidated = False

    def invalidate(self) -> None:
        super().invalidate()
        self.invalidated = True

    def adopt(self, sid: str) -> None:
        """Take the id of the session written for it: a new one's, or, for one invalidated
        and then given new values (a logout that says goodbye), a new id where
        ``aiohttp_session`` lets only a new session take one."""
        if self.new:
            self.set_new_identity(sid)
        else:
            self._identity = sid


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
        self.ttl_s = ttl_s

    async def new_session(self) -> Session:
        return PaxosKVSession(None, data=None, new=True, max_age=self.max_age)

    async def load_session(self, request: web.Request) -> Session:
        loaded = await self._brought(request)
        if loaded is None:
            return await self.new_session()
        data = SessionData(created=loaded.value["created"], session=copy.deepcopy(loaded.session))
        return PaxosKVSession(loaded.sid, data=data, new=False, max_age=self.max_age)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        loaded = await self._brought(request)
        ttl_s = _lifetime(session.max_age, self.ttl_s)
        data = self._get_session_data(session)
        created = data.get("created", None if loaded is None else loaded.value["created"])
        extra = {"created": created} if created is not None else {}
        invalidated = getattr(session, "invalidated", True)
        written: Loaded | bool | None
        is_loaded = loaded is not None and session.identity == loaded.sid
        if session.empty and loaded is None:
            self.save_cookie(response, "", max_age=session.max_age)  # nothing stored
            return
        if session.empty and loaded is not None:
            if invalidated or not is_loaded:
                written = await self.store.end(self.kv, loaded)  # a logout: it ends whole
            else:  # its keys popped: what others added meanwhile stays
                written = await self.store.empty(self.kv, loaded, ttl_s, extra)
        elif loaded is None or not is_loaded or invalidated:
            # A new session; one that replaces the session the request brought (new_session at
            # a login, or invalidate() and then new values) ends that one once it is written.
            mapping = dict(data["session"])
            written = await self.store.replace(self.kv, loaded, mapping, ttl_s, extra)
            if isinstance(session, PaxosKVSession):
                session.adopt(written.sid)
            else:
                session.set_new_identity(written.sid)
        else:
            mapping = dict(data["session"])
            written = await self.store.update(self.kv, loaded, mapping, ttl_s, extra)
        if written is True:  # this request ended it: its cookie goes
            self.save_cookie(response, "", max_age=session.max_age)
            return
        if written is None or written is False:
            # Ended meanwhile (a logout, a login elsewhere): not revived, and the cookie left
            # alone, since by now it may name the session a login put in its place.
            return
        self.save_cookie(response, written.sid, max_age=session.max_age)

    async def _brought(self, request: web.Request) -> Loaded | None:
        """The session the request's cookie names, read once per request: at ``get_session``,
        or at the save of a ``new_session`` that replaces it (as at a login)."""
        if _LOADED in request:
            return request[_LOADED]
        loaded = await self.store.load(self.kv, self.load_cookie(request))
        if loaded is not None and type(loaded.value.get("created")) is not int:
            loaded = None
        request[_LOADED] = loaded
        return loaded


def _lifetime(max_age: object, default_s: float) -> float:
    """A session's lifetime in seconds: its ``max_age`` (which a handler may set), else the
    storage's ``ttl_s``."""
    if max_age is None:
        return default_s
    if isinstance(max_age, bool) or not isinstance(max_age, int | float) or not max_age > 0:
        raise InvalidArgument(f"a session's max_age is a number of seconds over 0, not {max_age!r}")
    return float(max_age)
