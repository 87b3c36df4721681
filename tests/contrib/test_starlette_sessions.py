"""Starlette sessions in a cluster: two web servers (one embedding a node, one with a thin
client) share each user's ``request.session``, whichever one a request reaches. The apps run
on the test's own loop, where the node runs (httpx's ASGI transport, not Starlette's
TestClient, which runs an app on a loop of its own)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from functools import partial
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import paxoskv
from paxoskv import KVApi, Node
from paxoskv.contrib.sessions import is_session_id
from paxoskv.contrib.starlette_sessions import PaxosKVSessionMiddleware, regenerate
from paxoskv.errors import InvalidArgument, NoQuorum, ValueNotSerialisable, ValueTooLarge
from tests.contrib.web_cluster import WAIT_S, across, lease_count, until_gone, web_cluster

PREFIX = "starlette-session"


def make_app(kv: KVApi, max_age: int | None = 3600) -> Starlette:
    read, gate = asyncio.Event(), asyncio.Event()

    async def slow_visit(request: Request) -> PlainTextResponse:
        assert request.session["user"] == "ada"  # read as the request came in
        read.set()
        await gate.wait()  # opened by the test
        request.session["last_seen"] = 1
        return PlainTextResponse("seen")

    async def mark(request: Request) -> PlainTextResponse:
        request.session[request.query_params["page"]] = True  # a key of its own
        return PlainTextResponse("marked")

    async def look(request: Request) -> PlainTextResponse:
        request.session.pop("flash", None)  # nothing to pop, nothing to write
        request.session.setdefault("user", "nobody")  # there already
        return PlainTextResponse(str(request.session.get("user")))

    async def goodbye(request: Request) -> PlainTextResponse:
        request.session.clear()  # a logout ...
        request.session["flash"] = "bye"  # ... that leaves a message: a new session
        return PlainTextResponse("bye")

    async def touch(request: Request) -> PlainTextResponse:
        request.session["user"] = request.session.get("user")  # the same value, set again
        return PlainTextResponse("touched")

    async def slow_logout_by_pop(request: Request) -> PlainTextResponse:
        request.session.pop("user")
        read.set()
        await gate.wait()
        return PlainTextResponse("popped")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("fine")

    async def store_a_lot(request: Request) -> PlainTextResponse:
        request.session["blob"] = "x" * 60_000
        return PlainTextResponse("stored?")

    async def login(request: Request) -> PlainTextResponse:
        regenerate(request)
        request.session["user"] = request.path_params["user"]
        return PlainTextResponse("ok")

    async def whoami(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.session.get("user", "nobody")))

    async def visit(request: Request) -> PlainTextResponse:
        request.session.setdefault("pages", []).append(request.query_params["page"])
        return PlainTextResponse(str(len(request.session["pages"])))

    async def logout(request: Request) -> PlainTextResponse:
        request.session.clear()
        return PlainTextResponse("bye")

    async def store_a_date(request: Request) -> PlainTextResponse:
        request.session["when"] = datetime.datetime(2026, 1, 1)
        return PlainTextResponse("stored?")

    routes = [
        Route("/login/{user}", login, methods=["POST"]),
        Route("/whoami", whoami),
        Route("/visit", visit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/store-a-date", store_a_date, methods=["POST"]),
        Route("/slow-visit", slow_visit, methods=["POST"]),
        Route("/health", health),
        Route("/slow-logout-by-pop", slow_logout_by_pop, methods=["POST"]),
        Route("/touch", touch, methods=["POST"]),
        Route("/look", look, methods=["POST"]),
        Route("/goodbye", goodbye, methods=["POST"]),
        Route("/mark", mark, methods=["POST"]),
        Route("/store-a-lot", store_a_lot, methods=["POST"]),
    ]
    middleware = [Middleware(PaxosKVSessionMiddleware, kv=kv, max_age=max_age)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.read, app.state.gate = read, gate
    return app


def browser(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    return httpx.AsyncClient(transport=transport, base_url="http://web.test")


async def test_a_session_written_on_one_server_is_read_on_the_other(
    cluster: tuple[Node, KVApi],
) -> None:
    node, client = cluster
    async with browser(make_app(node)) as server_a, browser(make_app(client)) as server_b:
        assert (await server_a.get("/whoami")).text == "nobody"
        assert "session" not in server_a.cookies and await node.keys((PREFIX,)) == []

        await server_a.post("/login/ada")
        sid = server_a.cookies["session"]
        assert is_session_id(sid) and await node.keys((PREFIX,)) == [(PREFIX, sid)]

        # The load balancer sends the next request to the other server.
        server_b.cookies.set("session", sid, domain="web.test")
        assert (await server_b.get("/whoami")).text == "ada"
        assert (await server_b.post("/visit", params={"page": "home"})).text == "1"
        # A change inside a nested list is a change: it is written.
        assert (await server_a.post("/visit", params={"page": "cart"})).text == "2"
        session = await node.get((PREFIX, sid))
        assert session["session"] == {"user": "ada", "pages": ["home", "cart"]}
        entry = await node.get_entry((PREFIX, sid))
        assert entry is not None and entry.lease_id is not None


async def test_a_request_that_changes_nothing_writes_nothing(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        await server.post("/login/ada")
        revision = (await node.status())["revision"]
        for _ in range(3):
            response = await server.get("/whoami")
            assert response.text == "ada" and "set-cookie" not in response.headers
            assert response.headers["vary"] == "Cookie"
        assert (await node.status())["revision"] == revision


async def test_login_gives_a_new_id_and_logout_ends_the_session(
    cluster: tuple[Node, KVApi],
) -> None:
    node, client = cluster
    async with browser(make_app(client)) as server:
        await server.post("/visit", params={"page": "home"})
        before = server.cookies["session"]
        await server.post("/login/ada")
        after = server.cookies["session"]
        assert before != after and is_session_id(after)
        assert await node.keys((PREFIX,)) == [(PREFIX, after)]
        assert (await server.post("/logout")).text == "bye"
        assert "session" not in server.cookies
        assert await node.keys((PREFIX,)) == []


async def test_a_forged_cookie_starts_a_new_session(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        for forged in ("x", "../../etc", "A" * 43):
            server.cookies.set("session", forged, domain="web.test")
            assert (await server.get("/whoami")).text == "nobody"
        await server.post("/visit", params={"page": "home"})
        assert server.cookies["session"] != "A" * 43


async def test_a_session_expires_after_max_age(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    async with browser(make_app(node, max_age=1)) as server:
        await server.post("/login/ada")
        sid = server.cookies["session"]
        await until_gone(node, (PREFIX, sid))
        assert (await server.get("/whoami")).text == "nobody"


async def test_a_value_paxos_kv_cannot_store_is_a_typed_error(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        with pytest.raises(ValueNotSerialisable):
            await server.post("/store-a-date")
        assert await node.keys((PREFIX,)) == []


async def test_bad_settings_are_refused(cluster: tuple[Node, KVApi]) -> None:
    node, _ = cluster
    with pytest.raises(InvalidArgument, match="max_age is a whole number of seconds"):
        PaxosKVSessionMiddleware(make_app(node), node, max_age=-1)
    with pytest.raises(InvalidArgument, match="same_site is lax, strict or none"):
        PaxosKVSessionMiddleware(make_app(node), node, same_site="loose")  # type: ignore[arg-type]


async def test_a_request_in_flight_at_logout_does_not_bring_the_session_back(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    app = make_app(node)
    async with browser(app) as server, browser(app) as other:
        await server.post("/login/ada")
        sid = server.cookies["session"]
        other.cookies.set("session", sid, domain="web.test")
        logout = partial(other.post, "/logout")
        late = await across(server.post("/slow-visit"), app.state.read, app.state.gate, logout)
        assert late.text == "seen" and "set-cookie" not in late.headers  # the cookie left alone
        assert await node.get((PREFIX, sid)) is None and await node.keys((PREFIX,)) == []
        assert lease_count(node) == 0


async def test_a_session_too_large_to_store_leaves_no_lease_behind(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        for _ in range(3):
            with pytest.raises(ValueTooLarge):
                await server.post("/store-a-lot")
        assert lease_count(node) == 0 and await node.keys((PREFIX,)) == []


async def test_a_session_that_cannot_be_read_fails_only_what_uses_it() -> None:
    node_config, client_config = web_cluster()
    client_config = dataclasses.replace(client_config, request_timeout_s=1.0)
    node = Node(node_config)
    async with node, paxoskv.connect(client_config) as client:
        await node.wait_ready(WAIT_S)
        async with browser(make_app(client)) as server:
            await server.post("/login/ada")
            await node.close()  # the cluster is gone
            assert (await server.get("/health")).text == "fine"
            with pytest.raises(NoQuorum):
                await server.get("/whoami")


async def test_concurrent_requests_that_change_different_keys_all_keep_their_change(
    cluster: tuple[Node, KVApi],
) -> None:
    """Second review: each round of conflicting saves has one winner, and a fixed count of
    tries made the ninth of sixteen at once fail. They now merge for up to the timeout."""
    node, client = cluster
    async with browser(make_app(node)) as server_a, browser(make_app(client)) as server_b:
        await server_a.post("/login/ada")
        sid = server_a.cookies["session"]
        server_b.cookies.set("session", sid, domain="web.test")
        pages = [f"p{i}" for i in range(16)]
        answers = await asyncio.gather(
            *(
                (server_a if i % 2 else server_b).post("/mark", params={"page": page})
                for i, page in enumerate(pages)
            )
        )
        assert [answer.status_code for answer in answers] == [200] * len(pages)
        session = (await node.get((PREFIX, sid)))["session"]
        assert session["user"] == "ada" and all(session[page] for page in pages)


async def test_setting_a_value_again_renews_the_session_as_starlettes_own_do(
    cluster: tuple[Node, KVApi],
) -> None:
    """Third review: Starlette's SessionMiddleware renews on any set; this one renewed only
    when a value changed, so a session in use expired. (The pauses are the test's input.)"""
    node, _ = cluster
    async with browser(make_app(node, max_age=2)) as server:
        await server.post("/login/ada")
        sid = server.cookies["session"]
        for _ in range(5):
            await asyncio.sleep(0.6)
            touched = await server.post("/touch")
            assert touched.headers["set-cookie"].startswith(f"session={sid};")
        assert (await node.get((PREFIX, sid)))["session"] == {"user": "ada"}
        await until_gone(node, (PREFIX, sid))


async def test_popping_the_last_key_keeps_what_another_request_added(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    app = make_app(node)
    async with browser(app) as server, browser(app) as other:
        await server.post("/login/ada")
        sid = server.cookies["session"]
        other.cookies.set("session", sid, domain="web.test")
        mark = partial(other.post, "/mark", params={"page": "cart"})
        pop = server.post("/slow-logout-by-pop")
        assert (await across(pop, app.state.read, app.state.gate, mark)).text == "popped"
        assert (await node.get((PREFIX, sid)))["session"] == {"cart": True}


async def test_what_changes_nothing_writes_nothing_and_a_logout_with_a_message_is_new(
    cluster: tuple[Node, KVApi],
) -> None:
    node, _ = cluster
    async with browser(make_app(node)) as server:
        await server.post("/login/ada")
        sid = server.cookies["session"]
        revision = (await node.status())["revision"]
        looked = await server.post("/look")
        assert looked.text == "ada" and "set-cookie" not in looked.headers
        assert (await node.status())["revision"] == revision
        await server.post("/goodbye")
        assert server.cookies["session"] != sid  # the logged-out visitor's new session
        assert await node.get((PREFIX, sid)) is None and lease_count(node) == 1


async def test_a_raw_asgi_answer_without_headers_is_served(cluster: tuple[Node, KVApi]) -> None:
    """Fifth review: ASGI makes a response's headers optional, and an app that left them out
    got a 500 from the middleware on every request."""
    node, _ = cluster

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"fine"})

    app = PaxosKVSessionMiddleware(raw, node)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        answer = await c.get("/")
    assert (answer.status_code, answer.text) == (200, "fine")


async def test_two_requests_that_pop_the_last_two_keys_end_the_session(
    cluster: tuple[Node, KVApi],
) -> None:
    """Fifth review: the second of two requests popping different keys merged onto what the
    first left and wrote an empty session, kept until its lease ran out."""
    node, client = cluster
    store_a = PaxosKVSessionMiddleware(make_app(node), node).store
    created = await store_a.create(node, {"a": 1, "b": 2}, 60.0)
    first = await store_a.load(client, created.sid)
    second = await store_a.load(client, created.sid)
    assert first is not None and second is not None
    assert not isinstance(await store_a.update(client, first, {"b": 2}, 60.0), bool)
    assert await store_a.update(node, second, {"a": 1}, 60.0) is True  # nothing left: ended
    assert await node.keys((PREFIX,)) == [] and lease_count(node) == 0


async def test_a_page_that_reads_the_session_varies_with_the_cookie(
    cluster: tuple[Node, KVApi],
) -> None:
    """Sixth review: a page that read the session of a visitor with no cookie had no
    Vary: Cookie (Starlette's own adds it), so a shared cache could serve it to anyone."""
    node, _ = cluster
    async with browser(make_app(node)) as server:
        assert (await server.get("/whoami")).headers.get("vary") == "Cookie"
        assert "vary" not in (await server.get("/health")).headers  # never touched it
