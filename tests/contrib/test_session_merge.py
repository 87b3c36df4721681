"""How a request's changes meet the session as another request left it (contrib/sessions.py):
pure, no cluster."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paxoskv.contrib.sessions import changes, is_session_id, merge, new_session_id

SESSIONS = st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 3) | st.lists(st.integers()))


def test_what_a_request_changed_is_key_by_key_nested_included() -> None:
    read = {"user": "ada", "cart": [1], "theme": "dark"}
    now = {"user": "ada", "cart": [1, 2], "lang": "fr"}
    assert changes(read, now) == ({"cart": [1, 2], "lang": "fr"}, ["theme"])


def test_a_key_another_request_removed_stays_removed() -> None:
    read = {"user": "ada", "seen": 0}
    current = {"seen": 0}  # a logout popped the user meanwhile
    assert merge(current, read, {"user": "ada", "seen": 1}) == {"seen": 1}


@given(read=SESSIONS, now=SESSIONS, current=SESSIONS)
def test_merge_is_the_request_alone_when_nobody_else_wrote(
    read: dict[str, Any], now: dict[str, Any], current: dict[str, Any]
) -> None:
    assert merge(read, read, now) == now
    merged = merge(current, read, now)
    changed, removed = changes(read, now)
    for key in current.keys() - changed.keys() - set(removed):  # what it did not touch
        assert merged[key] == current[key]
    assert all(merged[key] == value for key, value in changed.items())
    assert not set(removed) & merged.keys()


def test_ids_are_unguessable_and_of_one_form() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100 and all(map(is_session_id, ids))
    assert not any(map(is_session_id, ["", "x", "A" * 42, "A" * 44, "A" * 42 + "/", None, 7]))
