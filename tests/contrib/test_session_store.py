"""The shared store's steps under the interleavings a third review built: a lease moved while
another request ends the session, an answer lost after a write was applied."""

from __future__ import annotations

from typing import Any

import pytest

from paxoskv import KVApi, Node
from paxoskv.contrib.sessions import SessionStore
from paxoskv.errors import NoQuorum
from tests.contrib.web_cluster import lease_count

STORE = SessionStore("store-test")


class AnswerLost:
    """The API, but a txn's answer is lost after the txn was applied (as when the client's
    timeout ends or its caller is cancelled just then)."""

    def __init__(self, api: KVApi) -> None:
        self._api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def txn(self, *args: Any, **kwargs: Any) -> Any:
        await self._api.txn(*args, **kwargs)
        raise NoQuorum("the answer was lost (the test's)")


async def test_ending_a_session_whose_lease_was_moved_leaves_no_lease(
    cluster: tuple[Node, KVApi],
) -> None:
    node, client = cluster
    created = await STORE.create(node, {"user": "ada"}, 3600.0)
    read_by_logout = await STORE.load(client, created.sid)
    assert read_by_logout is not None
    moved = await STORE.update(node, created, {"user": "ada"}, 60.0)  # a new lease length
    assert moved is not None and moved.lease != created.lease
    assert await STORE.end(client, read_by_logout) is True  # on the lease it read, gone
    assert await node.keys(("store-test",)) == [] and lease_count(node) == 0


async def test_a_lost_answer_to_a_lease_move_keeps_the_session(
    cluster: tuple[Node, KVApi],
) -> None:
    """The move's new lease was revoked on any error, which deleted the session the write
    had in fact put on it."""
    node, _ = cluster
    created = await STORE.create(node, {"user": "ada"}, 3600.0)
    lossy: Any = AnswerLost(node)
    with pytest.raises(NoQuorum):  # the caller hears the outcome is unknown ...
        await STORE.update(lossy, created, {"user": "ada", "seen": 1}, 60.0)
    entry = await node.get_entry(("store-test", created.sid))  # ... and it was applied
    assert entry is not None and entry.value["session"] == {"user": "ada", "seen": 1}
    assert lease_count(node) == 1  # the old lease, which the key left, revoked on a read


async def test_ending_a_session_that_ended_already_says_so(cluster: tuple[Node, KVApi]) -> None:
    node, client = cluster
    created = await STORE.create(node, {"user": "ada"}, 3600.0)
    assert await STORE.end(node, created) is True
    assert await STORE.end(client, created) is False  # a late logout: not this request's
    assert lease_count(node) == 0


async def test_emptying_a_session_nobody_else_touched_ends_it_in_one_step(
    cluster: tuple[Node, KVApi],
) -> None:
    """Fourth review: empty() wrote an empty session, then ended it unconditionally, so a key
    another request added between the two was deleted. Now it is one delete, conditional on
    the revision it merged onto: the delete and the lease's revocation, two revisions."""
    node, _ = cluster
    created = await STORE.create(node, {"notice": "saved"}, 3600.0)
    before = (await node.status())["revision"]
    assert await STORE.empty(node, created, 3600.0) is True
    assert (await node.status())["revision"] - before == 2
    assert await node.keys(("store-test",)) == [] and lease_count(node) == 0


async def test_emptying_a_session_another_request_added_to_keeps_that(
    cluster: tuple[Node, KVApi],
) -> None:
    node, client = cluster
    created = await STORE.create(node, {"notice": "saved"}, 3600.0)
    other = await STORE.load(client, created.sid)
    assert other is not None
    await STORE.update(client, other, {"notice": "saved", "cart": [42]}, 3600.0)
    written = await STORE.empty(node, created, 3600.0)
    assert not isinstance(written, bool) and written.session == {"cart": [42]}
