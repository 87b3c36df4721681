"""Flask sessions in a cluster: two web servers (one embedding a node, one a thin client)
share each user's session, whichever one a request reaches."""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Iterator

import flask
import pytest
from flask import Flask, session
from flask.testing import FlaskClient

import paxoskv
from paxoskv.blocking import BlockingClient
from paxoskv.contrib.flask_sessions import PaxosKVSession, PaxosKVSessionInterface
from paxoskv.contrib.sessions import SessionStore, is_session_id
from paxoskv.errors import InvalidArgument, NoQuorum, ValueNotSerialisable, ValueTooLarge
from tests.contrib.web_cluster import WAIT_S, lease_count, wait_for, web_cluster

PREFIX = "flask-session"


def make_app(kv: BlockingClient, lifetime_s: float = 3600.0) -> Flask:
    app = Flask(__name__)
    app.session_interface = PaxosKVSessionInterface(kv)
    app.permanent_session_lifetime = datetime.timedelta(seconds=lifetime_s)

    @app.post("/login/<user>")
    def login(user: str) -> str:
        assert isinstance(session, PaxosKVSession)
        session.regenerate()  # a new id at login
        session.permanent = True
        session["user"] = user
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.get("user", "nobody"))

    @app.post("/visit")
    def visit() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    @app.post("/forget-user")
    def forget_user() -> str:  # as Flask-Login's logout_user does: the rest of it stays
        session.pop("user", None)
        return "forgotten"

    @app.post("/read-notice")
    def read_notice() -> str:  # pops what it shows: the session's last key, as it saw it
        return str(session.pop("notice", None))

    @app.post("/add-to-cart")
    def add_to_cart() -> str:
        session["cart"] = [42]
        return "added"

    @app.post("/notice")
    def notice() -> str:
        session["notice"] = "saved"
        return "noted"

    @app.get("/health")
    def health() -> str:
        return "fine"

    @app.post("/store-a-lot")
    def store_a_lot() -> str:
        session["blob"] = "x" * 60_000
        return "stored?"

    @app.post("/goodbye")
    def goodbye() -> str:
        session.clear()  # a logout ...
        flask.flash("bye")  # ... that leaves a message: a new session holds it
        return "bye"

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    @app.post("/store-a-date")
    def store_a_date() -> str:
        session["when"] = datetime.datetime(2026, 1, 1)
        return "stored?"

    return app


@pytest.fixture
def servers() -> Iterator[tuple[BlockingClient, BlockingClient]]:
    node_config, client_config = web_cluster()
    with paxoskv.open_blocking(node_config, replica=True) as node:
        node.wait_ready(WAIT_S)
        with paxoskv.open_blocking(client_config) as client:
            yield node, client


def cookie_of(browser: FlaskClient) -> str | None:
    cookie = browser.get_cookie("session")
    return None if cookie is None else cookie.value


def test_a_session_written_on_one_server_is_read_on_the_other(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, client = servers
    server_a, server_b = make_app(node).test_client(), make_app(client).test_client()
    assert server_a.get("/whoami").text == "nobody"
    assert cookie_of(server_a) is None  # an untouched session sets no cookie, writes nothing
    assert node.keys((PREFIX,)) == []

    assert server_a.post("/login/ada").text == "ok"
    sid = cookie_of(server_a)
    assert is_session_id(sid)
    assert node.keys((PREFIX,)) == [(PREFIX, sid)]  # the cookie holds the id alone

    server_b.set_cookie("session", sid)  # the load balancer sends the next request elsewhere
    assert server_b.get("/whoami").text == "ada"
    assert server_b.post("/visit").text == "1"
    server_a.set_cookie("session", sid)
    assert server_a.post("/visit").text == "2"  # and back: each sees the other's write
    entry = node.get_entry((PREFIX, sid))
    assert entry.value == {
        "session": {"_permanent": True, "user": "ada", "visits": 2},
        "lease_ttl_s": 3600.0,  # the lease's length, to move it if the lifetime changes
    }
    assert entry.lease_id is not None  # it expires with its lease


def test_login_gives_a_new_id_and_ends_the_old_session(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, _ = servers
    browser = make_app(node).test_client()
    browser.post("/visit")
    before = cookie_of(browser)
    browser.post("/login/ada")
    after = cookie_of(browser)
    assert before != after and is_session_id(after)
    assert node.keys((PREFIX,)) == [(PREFIX, after)]  # the id seen before login is worthless
    assert browser.get("/whoami").text == "ada"


def test_logout_deletes_the_session_and_the_cookie(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, client = servers
    browser = make_app(client).test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    assert browser.post("/logout").text == "bye"
    assert cookie_of(browser) is None
    assert node.get((PREFIX, sid)) is None
    assert node.keys((PREFIX,)) == []


def test_a_cookie_that_is_no_session_id_starts_a_new_session_without_a_lookup(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, _ = servers
    browser = make_app(node).test_client()
    for forged in ("x", "../../etc", "a" * 43 + "!", ""):
        browser.set_cookie("session", forged)
        assert browser.get("/whoami").text == "nobody"
    browser.set_cookie("session", "A" * 43)  # well formed, but no such session
    assert browser.post("/visit").text == "1"
    assert cookie_of(browser) != "A" * 43  # a new id, not the one the browser brought


def test_a_session_expires_with_its_lifetime(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, _ = servers
    browser = make_app(node, lifetime_s=1.0).test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    assert node.get((PREFIX, sid)) is not None
    wait_for(lambda: node.get((PREFIX, sid)) is None, "the session expired by its lease")
    browser.set_cookie("session", sid)
    assert browser.get("/whoami").text == "nobody"


def test_a_refresh_keeps_an_idle_permanent_session_alive(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """SESSION_REFRESH_EACH_REQUEST (Flask's default): a request that only reads renews the
    lease. With a 2 s lifetime, a read every 0.5 s for 3 s keeps it; once they stop, it ends.
    (The pauses are the test's input, time passing between a user's requests.)"""
    node, _ = servers
    browser = make_app(node, lifetime_s=2.0).test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    for _ in range(6):
        time.sleep(0.5)
        assert browser.get("/whoami").text == "ada"
    assert node.get((PREFIX, sid))["session"] == {"_permanent": True, "user": "ada"}
    wait_for(lambda: node.get((PREFIX, sid)) is None, "the idle session expired")


def test_a_value_paxos_kv_cannot_store_is_a_typed_error(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, _ = servers
    app = make_app(node)
    app.testing = True  # the view's exception reaches the test rather than a 500 page
    with pytest.raises(ValueNotSerialisable):
        app.test_client().post("/store-a-date")
    assert node.keys((PREFIX,)) == []


def test_a_bad_setting_is_refused_when_the_interface_is_made(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, _ = servers
    with pytest.raises(InvalidArgument, match="consistency 'fast'"):
        PaxosKVSessionInterface(node, consistency="fast")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="a session prefix is a non-empty str"):
        PaxosKVSessionInterface(node, prefix="")


def _in_flight(app: Flask, sid: str) -> PaxosKVSession:
    """A request of the visitor's that has read its session and not yet answered."""
    interface = app.session_interface
    with app.test_request_context("/", headers={"Cookie": f"session={sid}"}):
        opened = interface.open_session(app, flask.request)
    assert isinstance(opened, PaxosKVSession)
    assert opened["user"] == "ada"  # read now
    return opened


def _answer(app: Flask, opened: PaxosKVSession) -> flask.Response:
    response = app.response_class()
    app.session_interface.save_session(app, opened, response)
    return response


def test_a_request_in_flight_at_logout_does_not_bring_the_session_back(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Review finding: a request that read the session before a logout and saved after it
    wrote it back under the old id, so the logout never took effect for that cookie."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    changing, reading = _in_flight(app, sid), _in_flight(app, sid)
    browser.post("/logout")
    changing["last_seen"] = 1
    for late in (_answer(app, changing), _answer(app, reading)):  # a write, then a refresh
        # ... and leaves the cookie alone: by now it may name a session a login made.
        assert "Set-Cookie" not in late.headers
    assert node.get((PREFIX, sid)) is None and node.keys((PREFIX,)) == []
    assert lease_count(node) == 0


def test_a_request_in_flight_keeps_its_change_and_not_what_another_removed(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Flask-Login logs out by popping the user id: a request that read the session before
    that, and changed another key, used to write the user id back with its own change."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    in_flight = _in_flight(app, sid)
    browser.post("/forget-user")
    in_flight["last_seen"] = 1
    _answer(app, in_flight)
    assert node.get((PREFIX, sid))["session"] == {"_permanent": True, "last_seen": 1}


def test_a_session_too_large_to_store_leaves_no_lease_behind(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    node, _ = servers
    app = make_app(node)
    app.testing = True
    before = lease_count(node)
    for _ in range(3):
        with pytest.raises(ValueTooLarge):
            app.test_client().post("/store-a-lot")
    assert lease_count(node) == before and node.keys((PREFIX,)) == []


def test_a_request_that_never_uses_the_session_reads_nothing_and_needs_no_quorum() -> None:
    """Review finding: every request with a cookie read its session first, so a health check
    failed with a 500 while the cluster had no quorum."""
    node_config, client_config = web_cluster()
    client_config = dataclasses.replace(client_config, request_timeout_s=1.0)
    node = paxoskv.open_blocking(node_config, replica=True).open()
    try:
        node.wait_ready(WAIT_S)
        with paxoskv.open_blocking(client_config) as client:
            app = make_app(client)
            app.testing = True
            browser = app.test_client()
            browser.post("/login/ada")
            node.close()  # the cluster is gone
            assert browser.get("/health").text == "fine"
            with pytest.raises(NoQuorum):
                browser.get("/whoami")
    finally:
        node.close()


def test_a_late_answer_leaves_the_login_that_replaced_its_session_alone(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Second review: a request in flight across a login answered with a deleted cookie, which
    by then was the new login's: the visitor was logged out at once."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")
    in_flight = _in_flight(app, cookie_of(browser))
    browser.post("/login/bob")  # a new id
    new_sid = cookie_of(browser)
    in_flight["last_seen"] = 1
    late = _answer(app, in_flight)
    assert "Set-Cookie" not in late.headers
    assert browser.get("/whoami").text == "bob"
    assert node.keys((PREFIX,)) == [(PREFIX, new_sid)]


def test_a_lowered_lifetime_applies_to_sessions_made_before_it(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Second review: a lease keeps the length it was granted with, so a lifetime lowered
    after a session was made left that session on its old, longer lease."""
    node, _ = servers
    app = make_app(node, lifetime_s=3600.0)
    browser = app.test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    app.permanent_session_lifetime = datetime.timedelta(seconds=1)
    assert browser.get("/whoami").text == "ada"  # its renewal moves it to a lease of 1 s
    assert node.get((PREFIX, sid))["lease_ttl_s"] == 1.0
    assert lease_count(node) == 1  # the old lease revoked
    wait_for(lambda: node.get((PREFIX, sid)) is None, "the session expired by its new lease")


def test_popping_the_last_key_keeps_what_another_request_added(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Third review: a request that emptied its copy ended the whole session, with the key
    another tab had added meanwhile. Only clear() (a logout) ends it whole now."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/notice")
    sid = cookie_of(browser)
    with app.test_request_context("/", headers={"Cookie": f"session={sid}"}):
        page = app.session_interface.open_session(app, flask.request)
    assert isinstance(page, PaxosKVSession)
    assert page.pop("notice") == "saved"  # the page shows its notice ...
    browser.post("/add-to-cart")  # ... while another tab adds to the cart
    late = _answer(app, page)
    assert node.get((PREFIX, sid))["session"] == {"cart": [42]}
    assert "session=;" not in late.headers.get("Set-Cookie", "")  # the session goes on
    alone = app.test_client()  # a page that pops the only key there is ends the session
    alone.post("/notice")
    alone_sid = cookie_of(alone)
    assert alone.post("/read-notice").text == "saved"
    assert cookie_of(alone) is None and node.get((PREFIX, alone_sid)) is None


def test_a_late_logout_leaves_the_login_after_it_alone(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Third review: a logout that read the session before a login replaced it deleted the
    new login's cookie with its answer."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")
    logout = _in_flight(app, cookie_of(browser))
    browser.post("/login/bob")
    logout.clear()
    assert "Set-Cookie" not in _answer(app, logout).headers
    assert browser.get("/whoami").text == "bob"


def test_a_logout_that_leaves_a_message_ends_the_session_and_starts_a_new_one(
    servers: tuple[BlockingClient, BlockingClient],
) -> None:
    """Fourth review: clear() then flash() kept the old id, with keys other requests had
    added: the logout did not end the session."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")
    sid = cookie_of(browser)
    browser.post("/goodbye")
    assert cookie_of(browser) != sid and node.get((PREFIX, sid)) is None
    assert node.get((PREFIX, cookie_of(browser)))["session"]["_flashes"] == [("message", "bye")]
    assert browser.get("/whoami").text == "nobody" and lease_count(node) == 1


def test_a_page_that_only_read_its_session_is_served_when_the_renewal_fails(
    servers: tuple[BlockingClient, BlockingClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixth review: with SESSION_REFRESH_EACH_REQUEST (Flask's default), a read-only page of a
    permanent session answered 500 while the cluster had no quorum for the renewal, though
    its (local) read had worked."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")

    async def no_quorum(*args: object) -> None:
        raise NoQuorum("no majority (the test's)")

    monkeypatch.setattr(SessionStore, "refresh", no_quorum)
    answer = browser.get("/whoami")
    assert (answer.status_code, answer.text) == (200, "ada")
    assert "Set-Cookie" not in answer.headers


def test_a_failed_save_is_not_tried_again_for_the_error_page(
    servers: tuple[BlockingClient, BlockingClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixth review: Flask saves the session again for its error response, so a save that
    failed waited out a second request timeout before the 500."""
    node, _ = servers
    app = make_app(node)
    browser = app.test_client()
    browser.post("/login/ada")
    tries: list[object] = []

    async def no_quorum(*args: object) -> None:
        tries.append(args)
        raise NoQuorum("no majority (the test's)")

    monkeypatch.setattr(SessionStore, "update", no_quorum)
    assert browser.post("/visit").status_code == 500
    assert len(tries) == 1
