"""aiohttp sessions in a cluster: two web servers (one embedding a node, one with a thin
client) share each user's session, whichever one a request reaches."""

from __future__ import annotations

import asyncio
import datetime
from functools import partial

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp_session import get_session, new_session, setup

from paxoskv import KVApi, Node
from paxoskv.contrib.aiohttp_sessions import PaxosKVStorage
from paxoskv.contrib.sessions import is_session_id
from paxoskv.errors import InvalidArgument
from tests.contrib.web_cluster import across, lease_count, until_gone

PREFIX = "aiohttp-session"
GATE = web.AppKey("gate", asyncio.Event)  # opened by the test: the handler goes on
READ = web.AppKey("read", asyncio.Event)  # set by the handler once it has read the session
COOKIE = "AIOHTTP_SESSION"


def make_app(kv: KVApi, max_age: int | None = None) -> web.Application:
    app = web.Application()
    setup(app, PaxosKVStorage(kv, max_age=max_age))

    async def login(request: web.Request) -> web.Response:
        session = await new_session(request)  # a new id at login
        session["user"] = request.match_info["user"]
        return web.Response(text="ok")

    async def whoami(request: web.Request) -> web.Response:
        session = await get_session(request)
        return web.Response(text=str(session.get("user", "nobody")))

    async def visit(request: web.Request) -> web.Response:
        session = await get_session(request)
        session["visits"] = session.get("visits", 0) + 1
        return web.Response(text=str(session["visits"]))

    async def logout(request: web.Request) -> web.Response:
        (await get_session(request)).invalidate()
        return web.Response(text="bye")

    async def store_a_date(request: web.Request) -> web.Response:
        (await get_session(request))["when"] = datetime.datetime(2026, 1, 1)
        return web.Response(text="stored?")

    async def slow_visit(request: web.Request) -> web.Response:
        session = await get_session(request)  # read now, changed once the gate opens
        request.app[READ].set()
        await request.app[GATE].wait()
        session["last_seen"] = 1
        return web.Response(text="seen")

    async def slow_pop(request: web.Request) -> web.Response:
        session = await get_session(request)
        session.pop("user")  # the last key it saw ...
        request.app[READ].set()
        await request.app[GATE].wait()  # ... while another request adds one
        return web.Response(text="popped")

    async def short_lived(request: web.Request) -> web.Response:
        session = await get_session(request)
        session["short"] = True
        session.max_age = 1  # this session's own lifetime, as RedisStorage honours it
        return web.Response(text="short")

    async def store_a_lot(request: web.Request) -> web.Response:
        (await get_session(request))["blob"] = "x" * 60_000
        return web.Response(text="stored?")

    app[GATE], app[READ] = asyncio.Event(), asyncio.Event()
    app.router.add_post("/slow-visit", slow_visit)
    app.router.add_post("/short-lived", short_lived)
    app.router.add_post("/slow-pop", slow_pop)
    app.router.add_post("/store-a-lot", store_a_lot)
    app.router.add_post("/login/{user}", login)
    app.router.add_get("/whoami", whoami)
    app.router.add_post("/visit", visit)
    app.router.add_post("/logout", logout)
    app.router.add_post("/store-a-date", store_a_date)
    return app


def browser(app: web.Application) -> TestClient[web.Request, web.Application]:
    """A browser of its own for ``app``: ``async with`` starts the server and closes both."""
    return TestClient(TestServer(app))


def cookie_of(client: TestClient[web.Request, web.Application]) -> str | None:
    """The session cookie the server set for it (one set by hand is for no domain: left out)."""
    for cookie in client.session.cookie_jar:
        if cookie.key == COOKIE and cookie.value and cookie["domain"]:
            return cookie.value
    return None


async def test_a_session_written_on_one_server_is_read_on_the_other(
    cluster: tuple[Node, KVApi],
) -> None:
    node, client = cluster
    async with browser(make_app(node)) as server_a, browser(make_app(client)) as server_b:
        assert await (await server_a.get("/whoami")).text() == "nobody"
        assert cookie_of(server_a) is None and await node.keys((PREFIX,)) == []

        assert (await server_a.post("/login/ada")).status == 200
        sid = cookie_of(server_a)
        assert is_session_id(sid) and await node.keys((PREFIX,)) == [(PREFIX, sid)]

        server_b.session.cookie_jar.update_cookies({COOKIE: sid})  # the next request elsewhere
        assert await (await server_b.get("/whoami")).text() == "ada"
        assert await (await server_b.post("/visit")).text() == "1"
        server_a.session.cookie_jar.update_cookies({COOKIE: sid})
        assert await (await server_a.post("/visit")).text() == "2"
        entry = await node.get_entry((PREFIX, sid))
        assert entry is not None and entry.value["session"] == {"user": "ada", "visits": 2}
        assert entry.lease_id is not None


async def test_login_replaces_the_session_and_ends_the_old_one(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        await server.post("/visit")
        before = cookie_of(server)
        await server.post("/login/ada")
        after = cookie_of(server)
        assert before != after and is_session_id(after)
        assert await node.keys((PREFIX,)) == [(PREFIX, after)]
        assert await (await server.get("/whoami")).text() == "ada"


async def test_logout_deletes_the_session_and_the_cookie(cluster: tuple[Node, KVApi]) -> None:
    node, client = cluster
    async with browser(make_app(client)) as server:
        await server.post("/login/ada")
        assert cookie_of(server) is not None
        assert await (await server.post("/logout")).text() == "bye"
        assert cookie_of(server) is None
        assert await node.keys((PREFIX,)) == []


async def test_a_forged_cookie_starts_a_new_session(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        for forged in ("x", "../../etc", "A" * 43):
            server.session.cookie_jar.update_cookies({COOKIE: forged})
            assert await (await server.get("/whoami")).text() == "nobody"
        await node.set((PREFIX, "B" * 43), "not a session's value")
        server.session.cookie_jar.update_cookies({COOKIE: "B" * 43})
        assert await (await server.post("/visit")).text() == "1"
        assert cookie_of(server) not in ("A" * 43, "B" * 43)


async def test_a_session_expires_after_max_age(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    async with browser(make_app(node, max_age=1)) as server:
        await server.post("/login/ada")
        sid = cookie_of(server)
        assert await node.get((PREFIX, sid)) is not None
        await until_gone(node, (PREFIX, sid))


async def test_a_value_paxos_kv_cannot_store_fails_the_request_and_writes_nothing(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        assert (await server.post("/store-a-date")).status == 500
        assert await node.keys((PREFIX,)) == []


async def test_bad_settings_are_refused(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    with pytest.raises(InvalidArgument, match="max_age is a whole number of seconds"):
        PaxosKVStorage(node, max_age=0)
    with pytest.raises(InvalidArgument, match="consistency 'fast'"):
        PaxosKVStorage(node, consistency="fast")  # type: ignore[arg-type]


async def test_a_request_in_flight_at_logout_does_not_bring_the_session_back(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    app = make_app(node)
    async with browser(app) as server:
        await server.post("/login/ada")
        sid = cookie_of(server)

        async def logout_in_another_tab() -> None:
            async with browser(app) as other:
                other.session.cookie_jar.update_cookies({COOKIE: sid})
                await other.post("/logout")

        late = await across(server.post("/slow-visit"), app[READ], app[GATE], logout_in_another_tab)
        assert await late.text() == "seen"
        assert await node.get((PREFIX, sid)) is None and await node.keys((PREFIX,)) == []
        assert lease_count(node) == 0


async def test_a_session_lives_as_long_as_its_own_max_age(cluster: tuple[Node, KVApi]) -> None:
    """Review finding: a max_age set on the session changed the cookie only; the lease kept
    the storage's lifetime, so a replayed cookie outlived it on the server."""
    node, _ = cluster
    async with browser(make_app(node)) as server:
        await server.post("/visit")
        sid = cookie_of(server)
        await server.post("/short-lived")
        assert cookie_of(server) == sid  # the same session, moved to a lease of 1 s
        assert lease_count(node) == 1  # (the old lease revoked)
        await until_gone(node, (PREFIX, sid))


async def test_a_session_too_large_to_store_leaves_no_lease_behind(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        for _ in range(3):
            assert (await server.post("/store-a-lot")).status == 500
        assert lease_count(node) == 0 and await node.keys((PREFIX,)) == []


async def test_a_late_answer_leaves_the_login_that_replaced_its_session_alone(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    app = make_app(node)
    async with browser(app) as server:
        await server.post("/login/ada")
        login = partial(server.post, "/login/bob")  # a new id, in the same browser
        late = await across(server.post("/slow-visit"), app[READ], app[GATE], login)
        new_sid = cookie_of(server)
        assert await late.text() == "seen" and COOKIE not in late.cookies
        assert await (await server.get("/whoami")).text() == "bob"
        assert await node.keys((PREFIX,)) == [(PREFIX, new_sid)]


async def test_popping_the_last_key_keeps_what_another_request_added(
    cluster: tuple[Node, KVApi],
) -> None:
    """Fourth review: the emptied session was written without its "created", so the next
    request could not read it and was given a new session."""
    node, _ = cluster
    app = make_app(node)
    async with browser(app) as server, browser(app) as other:
        await server.post("/login/ada")
        sid = cookie_of(server)
        other.session.cookie_jar.update_cookies({COOKIE: sid})
        visit = partial(other.post, "/visit")
        late = await across(server.post("/slow-pop"), app[READ], app[GATE], visit)
        assert await late.text() == "popped"
        assert await (await server.post("/visit")).text() == "2"  # the same session, read
        assert cookie_of(server) == sid and lease_count(node) == 1


def test_a_sessions_own_max_age_must_be_seconds() -> None:
    from paxoskv.contrib.aiohttp_sessions import _lifetime

    assert _lifetime(None, 60.0) == 60.0 and _lifetime(5, 60.0) == 5.0
    for bad in ("1h", 0, -1, True):
        with pytest.raises(InvalidArgument, match="max_age is a number of seconds over 0"):
            _lifetime(bad, 60.0)


async def test_a_merged_save_keeps_the_created_time_another_request_wrote(
    cluster: tuple[Node, KVApi],
) -> None:
    """Fifth review: a save that kept another request's keys wrote back the "created" this
    request had read, so aiohttp_session then aged the session out while its lease ran on."""
    node, _ = cluster
    storage = PaxosKVStorage(node)
    created = await storage.store.create(node, {"notice": 1}, 60.0, {"created": 100})
    other = await storage.store.load(node, created.sid)
    assert other is not None
    # Another request replaced the session's data and its created time (a newer session's).
    await storage.store.update(node, other, {"notice": 1, "cart": [42]}, 60.0, {"created": 200})
    written = await storage.store.empty(node, created, 60.0, {"created": 100})
    assert not isinstance(written, bool)
    assert written.value["created"] == 200 and written.session == {"cart": [42]}
