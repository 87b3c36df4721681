"""Starlette (and FastAPI) sessions kept in a paxos-kv cluster: ``request.session``, as
Starlette's own ``SessionMiddleware`` gives it, but on the server side.

    node = paxoskv.Node(config)                 # or paxoskv.connect(config): a thin client
    app = Starlette(routes=..., middleware=[Middleware(PaxosKVSessionMiddleware, kv=node)])

Starlette's middleware keeps the whole session in a signed cookie; this one keeps only the
session's random id there, and the session itself as a key of the cluster on a lease of
``max_age`` seconds (Starlette's default, two weeks; ``ttl_s`` when ``max_age`` is None, a
cookie that lasts while the browser is open). Its options are Starlette's (``session_cookie``,
``max_age``, ``path``, ``same_site``, ``https_only``, ``domain``, ``partitioned``) less the
secret key, which a random id does not need.

``request.session`` is a plain dict that a handler reads without an await, so a request that
brings a session cookie reads its session as it comes in. If that read fails (no quorum), the
request is still served, and only a use of ``request.session`` raises the error. A request
whose handler changed the session (compared with what was read, nested lists and dicts
included) writes its changes onto the session as it is now and pushes its expiry back, and
never brings back a session that ended meanwhile (:mod:`paxoskv.contrib.sessions`); one that
emptied it deletes it and the cookie. Call :func:`regenerate` at login for a new id. Values
must be what paxos-kv stores (msgpack's types).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Literal

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from paxoskv.contrib.sessions import Loaded, SessionStore
from paxoskv.errors import InvalidArgument, PaxosKVError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from paxoskv.client import Consistency, KVApi

DEFAULT_MAX_AGE_S: Final = 14 * 24 * 3600  # Starlette's own SessionMiddleware's
DEFAULT_TTL_S: Final = 31 * 24 * 3600  # for max_age=None: Flask's default session lifetime
_REGENERATE: Final = "paxoskv.session.regenerate"


def regenerate(connection: HTTPConnection) -> None:
    """Give the request's session a new id when it is saved, and end the old one (call it at
    login, against session fixation: an id seen before the login is worth nothing after)."""
    connection.scope[_REGENERATE] = True


class Unavailable(MutableMapping[str, Any]):
    """A request's session when it could not be read (no quorum, say): the request is still
    served, and only what uses the session fails, with the error the read met."""

    def __init__(self, error: PaxosKVError) -> None:
        self.error = error

    def __getitem__(self, key: str) -> Any:
        raise self.error

    def __setitem__(self, key: str, value: Any) -> None:
        raise self.error

    def __delitem__(self, key: str) -> None:
        raise self.error

    def __iter__(self) -> Iterator[str]:
        raise self.error

    def __len__(self) -> int:
        raise self.error

    def copy(self) -> dict[str, Any]:
        raise self.error


class TrackedSession(dict[str, Any]):
    """``request.session``: a dict that notes a write (which renews the session, as
    Starlette's own does, even when the value is unchanged) and a ``clear()`` (a logout, which
    ends the session whole; popping its keys one by one ends only what the request saw)."""

    modified = False
    cleared = False
    accessed = False  # read or written at all: the answer then varies with the cookie

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return super().__iter__()

    def __len__(self) -> int:
        self.accessed = True
        return super().__len__()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.modified = True

    def clear(self) -> None:
        super().clear()
        self.modified = self.cleared = True

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.modified = True
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self.modified = True
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.modified = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self.modified = True

    def __ior__(self, other: Any) -> TrackedSession:  # type: ignore[override,misc]
        self.update(other)
        return self


class PaxosKVSessionMiddleware:
    """``scope["session"]`` (``request.session``) read from and written to the cluster ``kv``
    (a ``Node`` or a thin client)."""

    def __init__(
        self,
        app: ASGIApp,
        kv: KVApi,
        *,
        prefix: str = "starlette-session",
        consistency: Consistency = "linearizable",
        session_cookie: str = "session",
        max_age: int | None = DEFAULT_MAX_AGE_S,
        ttl_s: float = DEFAULT_TTL_S,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
    ) -> None:
        if max_age is not None and (type(max_age) is not int or max_age <= 0):
            raise InvalidArgument(f"max_age is a whole number of seconds over 0, not {max_age!r}")
        if same_site not in ("lax", "strict", "none"):
            raise InvalidArgument(f"same_site is lax, strict or none, not {same_site!r}")
        self.app = app
        self.kv = kv
        self.store = SessionStore(prefix, consistency=consistency)
        self.session_cookie = session_cookie
        self.max_age = max_age
        self.ttl_s = float(max_age) if max_age is not None else ttl_s
        self.path = path
        flags = f"httponly; samesite={same_site}"
        flags += "; secure" if https_only else ""
        flags += f"; domain={domain}" if domain is not None else ""
        flags += "; partitioned" if partitioned else ""
        self.security_flags = flags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie = HTTPConnection(scope).cookies.get(self.session_cookie)
        try:
            loaded = await self.store.load(self.kv, cookie) if cookie else None
        except PaxosKVError as error:  # the request is served; using its session raises this
            scope["session"] = Unavailable(error)
            await self.app(scope, receive, send)
            return
        scope["session"] = TrackedSession({} if loaded is None else copy.deepcopy(loaded.session))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # optional in ASGI: a raw app may leave it
                await self._save(scope, loaded, MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _save(self, scope: Scope, loaded: Loaded | None, headers: MutableHeaders) -> None:
        tracked = scope["session"]
        modified = getattr(tracked, "modified", True)  # (a handler may have put a plain dict)
        if loaded is not None or modified or getattr(tracked, "accessed", True):
            headers.add_vary_header("Cookie")  # (as Starlette's own, for a session used)
        session: dict[str, Any] = dict(tracked)
        written: Loaded | bool | None
        if loaded is None:  # a new session
            if not session:
                return
            written = await self.store.create(self.kv, session, self.ttl_s)
        elif not session and getattr(tracked, "cleared", True):  # a logout: it ends whole
            written = await self.store.end(self.kv, loaded)
        elif not session:  # its keys popped: what others added meanwhile stays
            written = await self.store.empty(self.kv, loaded, self.ttl_s)
        elif scope.get(_REGENERATE) or getattr(tracked, "cleared", False):  # a new id
            written = await self.store.replace(self.kv, loaded, session, self.ttl_s)
        elif session != loaded.session:
            written = await self.store.update(self.kv, loaded, session, self.ttl_s)
        elif modified:  # set to what it was: renewed, as Starlette's own sessions are
            written = await self.store.refresh(self.kv, loaded, self.ttl_s)
        else:
            return  # untouched: nothing to write
        if written is True:  # this request ended it: its cookie goes
            headers.append("Set-Cookie", self._cookie("null", expired=True))
            return
        if written is None or written is False:
            # Ended meanwhile (a logout, a login elsewhere): not revived, and the cookie left
            # alone, since by now it may name the session a login put in its place.
            return
        headers.append("Set-Cookie", self._cookie(written.sid))
        headers.add_vary_header("Cookie")

    def _cookie(self, value: str, *, expired: bool = False) -> str:
        if expired:
            lifetime = "expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        else:
            lifetime = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
        return f"{self.session_cookie}={value}; path={self.path}; {lifetime}{self.security_flags}"
