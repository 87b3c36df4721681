"""Flask sessions kept in a paxos-kv cluster, over a blocking handle.

    kv = paxoskv.open_blocking(config).open()   # once per worker process, after any fork
    app.session_interface = PaxosKVSessionInterface(kv)

The cookie holds only the session's random id; the session itself is a key of the cluster on a
lease as long as ``app.permanent_session_lifetime``. Flask's cookie settings apply as they
do to its own sessions (``SESSION_COOKIE_NAME``, ``_DOMAIN``, ``_PATH``, ``_SECURE``,
``_HTTPONLY``, ``_SAMESITE``, ``_PARTITIONED``, ``SESSION_REFRESH_EACH_REQUEST``), and so does
``session.permanent``. Values must be what paxos-kv stores (msgpack's types: no ``datetime``).

Each request that uses the session makes one read; one that changes it, a lease renewal and a
write, handed to the handle's loop together; with ``SESSION_REFRESH_EACH_REQUEST`` (Flask's
default) a permanent session's other requests renew its lease (one write). A server that is
also a node (``open_blocking(config, replica=True)``) can read with ``consistency="local"``
for speed, at the price of a few milliseconds' lag behind the other servers' writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from paxoskv.contrib.sessions import SessionStore, new_session_id

if TYPE_CHECKING:
    from flask import Flask, Request, Response

    from paxoskv.blocking import BlockingClient
    from paxoskv.client import Consistency


class PaxosKVSession(CallbackDict[str, Any], SessionMixin):
    """A Flask session that knows its id and the lease it is on."""

    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        *,
        sid: str,
        lease: int | None = None,
        new: bool = False,
    ) -> None:
        def on_update(session: CallbackDict[str, Any]) -> None:
            self.modified = True
            self.accessed = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.lease = lease
        self.new = new
        self.modified = False
        self.regenerated_from: tuple[str, int | None] | None = None

    def regenerate(self) -> None:
        """Give this session a new id at the next save, the old one ended (call it at login,
        against session fixation: an id seen before the login is worth nothing after it)."""
        if self.regenerated_from is None and not self.new:
            self.regenerated_from = (self.sid, self.lease)
        self.sid, self.lease = new_session_id(), None
        self.modified = True


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
        loaded = self.kv.run(lambda api: self.store.load(api, cookie)) if cookie else None
        if loaded is None:
            return PaxosKVSession(sid=new_session_id(), new=True)
        return PaxosKVSession(loaded.data, sid=loaded.sid, lease=loaded.lease)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, PaxosKVSession)
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        secure = self.get_cookie_secure(app)
        partitioned = self.get_cookie_partitioned(app)
        samesite = self.get_cookie_samesite(app)
        httponly = self.get_cookie_httponly(app)
        if session.accessed:
            response.vary.add("Cookie")
        store = self.store
        if session.regenerated_from is not None:
            old_sid, old_lease = session.regenerated_from
            self.kv.run(lambda api: store.delete(api, old_sid, old_lease))
            session.regenerated_from = None
        if not session:  # emptied (session.clear()), or never written: no cookie, no key
            if session.modified:
                if not session.new:
                    self.kv.run(lambda api: store.delete(api, session.sid, session.lease))
                response.delete_cookie(
                    name,
                    domain=domain,
                    path=path,
                    secure=secure,
                    partitioned=partitioned,
                    samesite=samesite,
                    httponly=httponly,
                )
                response.vary.add("Cookie")
            return
        if not self.should_set_cookie(app, session):
            return
        ttl_s = app.permanent_session_lifetime.total_seconds()
        data, sid, lease = dict(session), session.sid, session.lease
        if session.modified or session.new:
            session.lease = self.kv.run(lambda api: store.save(api, sid, data, lease, ttl_s))
        elif not self.kv.run(lambda api: store.refresh(api, lease)):  # expired meanwhile
            session.lease = self.kv.run(lambda api: store.save(api, sid, data, None, ttl_s))
        response.set_cookie(
            name,
            session.sid,
            expires=self.get_expiration_time(app, session),
            httponly=httponly,
            domain=domain,
            path=path,
            secure=secure,
            partitioned=partitioned,
            samesite=samesite,
        )
        response.vary.add("Cookie")
