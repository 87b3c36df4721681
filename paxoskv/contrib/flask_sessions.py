"""Flask sessions kept in a paxos-kv cluster, over a blocking handle.

    kv = paxoskv.open_blocking(config).open()   # once per worker process, after any fork
    app.session_interface = PaxosKVSessionInterface(kv)

The cookie holds only the session's random id; the session itself is a key of the cluster on a
lease as long as ``app.permanent_session_lifetime``. Flask's cookie settings apply as they
do to its own sessions (``SESSION_COOKIE_NAME``, ``_DOMAIN``, ``_PATH``, ``_SECURE``,
``_HTTPONLY``, ``_SAMESITE``, ``_PARTITIONED``, ``SESSION_REFRESH_EACH_REQUEST``), and so does
``session.permanent``. Values must be what paxos-kv stores (msgpack's types: no ``datetime``).

The session is read when the request first uses it, not when the request comes in: a request
that never touches ``session`` (a health check, a static file) makes no read and no write, and
is served when the cluster cannot answer. One that uses it reads it once; one that changes it
renews its lease and writes its changes (:mod:`paxoskv.contrib.sessions`), handed to the
handle's loop together; with ``SESSION_REFRESH_EACH_REQUEST`` (Flask's default) a permanent
session that a request used renews its lease (one write). A server that is also a node
(``open_blocking(config, replica=True)``) can read with ``consistency="local"`` for speed, at
the price of a few milliseconds' lag behind the other servers' writes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flask.sessions import SessionInterface, SessionMixin

from paxoskv.contrib.sessions import Loaded, SessionStore
from paxoskv.errors import PaxosKVError

if TYPE_CHECKING:
    from flask import Flask, Request, Response

    from paxoskv.blocking import BlockingClient
    from paxoskv.client import Consistency


log = logging.getLogger(__name__)


class PaxosKVSession(SessionMixin):
    """A Flask session read from the cluster when first used, which knows what it read."""

    def __init__(self, load: Callable[[], Loaded | None]) -> None:
        self._load = load
        self._data: dict[str, Any] | None = None  # None until first used
        self.loaded: Loaded | None = None  # what was read, kept as read (None: a new session)
        self.modified = False
        self.regenerating = False
        self.cleared = False  # clear() called: a logout, which ends the session whole
        self.saving = False  # save_session began (and, if it raised, is not tried again)

    @property
    def used(self) -> bool:
        """Whether the request read or wrote the session at all (and so it was loaded)."""
        return self._data is not None

    @property
    def new(self) -> bool:  # type: ignore[override]  # (a class attribute in SessionMixin)
        return self._session_data() is not None and self.loaded is None

    def regenerate(self) -> None:
        """Give this session a new id when it is saved, and end the old one (call it at login,
        against session fixation: an id seen before the login is worth nothing after it)."""
        self._session_data()
        self.regenerating = self.modified = True

    def _session_data(self) -> dict[str, Any]:
        if self._data is None:
            self.loaded = self._load()
            self._data = {} if self.loaded is None else copy.deepcopy(self.loaded.session)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._session_data()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._session_data()[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._session_data()[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._session_data())

    def __len__(self) -> int:
        return len(self._session_data())

    def clear(self) -> None:
        """Empty the session and end it when it is saved (a logout), keys that other
        requests added meanwhile included; popping its keys one by one ends only what this
        request saw."""
        self._session_data().clear()
        self.modified = self.cleared = True

    def __ior__(self, other: Any) -> PaxosKVSession:
        self.update(other)
        return self

    def __or__(self, other: Any) -> dict[str, Any]:
        return {**self, **dict(other)}

    def copy(self) -> dict[str, Any]:
        """A plain dict of the session (Flask's own sessions are dicts, and code copies them;
        ``jsonify(session.copy())`` where ``jsonify(session)`` worked with them)."""
        return dict(self)

    def __repr__(self) -> str:
        state = repr(self._data) if self._data is not None else "not read yet"
        return f"<PaxosKVSession {state}>"


class PaxosKVSessionInterface(SessionInterface):
    """Flask's ``session`` read from and written to the cluster ``kv`` is a handle to."""

    def __init__(
        self,
        kv: BlockingClient,
        *,
        prefix: str = "flask-session",
        consistency: Consistency = "linearizable",
    ) -> None:
        self.kv = kv
        self.store = SessionStore(prefix, consistency=consistency)

    def open_session(self, app: Flask, request: Request) -> PaxosKVSession:
        cookie = request.cookies.get(self.get_cookie_name(app))
        store = self.store

        def load() -> Loaded | None:
            return self.kv.run(lambda api: store.load(api, cookie)) if cookie else None

        return PaxosKVSession(load)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session.accessed:
            response.vary.add("Cookie")
        if not isinstance(session, PaxosKVSession) or not session.used or session.saving:
            # A null session (opening it failed), one the request never used, or one whose
            # save failed already: Flask saves again for its error page, which would wait out
            # another request timeout before the 500.
            return
        session.saving = True
        store, loaded, data = self.store, session.loaded, dict(session)
        ttl_s = app.permanent_session_lifetime.total_seconds()
        written: Loaded | bool | None
        if loaded is None:  # a new session
            if not data:  # nothing stored, nothing to store
                if session.modified:
                    self._delete_cookie(app, response)
                return
            written = self.kv.run(lambda api: store.create(api, data, ttl_s))
        elif not data and session.cleared:  # a logout: the session ends, whole
            written = self.kv.run(lambda api: store.end(api, loaded))
        elif not data:  # its keys popped: what others added meanwhile stays
            written = self.kv.run(lambda api: store.empty(api, loaded, ttl_s))
        elif session.regenerating or session.cleared:  # (a logout that flashed a message)
            written = self.kv.run(lambda api: store.replace(api, loaded, data, ttl_s))
        elif not self.should_set_cookie(app, session):
            return
        elif data != loaded.session:
            written = self.kv.run(lambda api: store.update(api, loaded, data, ttl_s))
        else:
            try:
                written = self.kv.run(lambda api: store.refresh(api, loaded, ttl_s))
            except PaxosKVError as error:  # a page that only read its session is still served
                log.warning("a session's lease could not be renewed now (%s)", error)
                return
        if written is True:  # this request ended it: its cookie goes
            self._delete_cookie(app, response)
            return
        if written is None or written is False:
            # Ended meanwhile (a logout, a login elsewhere): not revived, and the cookie left
            # alone, since by now it may name the session a login put in its place.
            return
        expires = self.get_expiration_time(app, session)
        name, options = self.get_cookie_name(app), self._cookie_options(app)
        response.set_cookie(name, written.sid, expires=expires, **options)
        response.vary.add("Cookie")

    def _delete_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(self.get_cookie_name(app), **self._cookie_options(app))
        response.vary.add("Cookie")

    def _cookie_options(self, app: Flask) -> dict[str, Any]:
        """The cookie's attributes, Flask's settings as its own sessions read them."""
        return {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "partitioned": self.get_cookie_partitioned(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": self.get_cookie_httponly(app),
        }
