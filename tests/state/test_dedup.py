"""The dedup table: a retried request is applied once and answered with the same bytes."""

from __future__ import annotations

import pytest

from paxoskv.errors import InvalidCommand
from paxoskv.state import (
    Configuration,
    Failed,
    KVStateMachine,
    NoOp,
    Set,
    Written,
    decode_result,
    encode_command,
)
from tests.builds import refused


def fresh(window: int = 4, idle_ms: int = 1000) -> KVStateMachine:
    return KVStateMachine(
        Configuration(frozenset({"a"})),
        dedup_window_requests=window,
        dedup_client_idle_ms=idle_ms,
    )


def request(
    m: KVStateMachine, seq: int, value: object, now_ms: int = 0, client: str = "c"
) -> bytes:
    return m.apply_encoded(encode_command(Set("k", value)), now_ms, client_id=client, seq=seq)


def test_a_duplicate_gets_the_cached_bytes_and_takes_no_revision() -> None:
    m = fresh()
    first = request(m, 1, "v1")
    digest = m.digest()
    again = request(m, 1, "a retry carries the same command; this proves it is not re-applied")
    assert again == first
    assert m.revision == 1
    assert m.get("k").value == "v1"  # type: ignore[union-attr]
    assert m.digest() == digest


def test_apply_answers_a_duplicate_from_the_table_too() -> None:
    m = fresh()
    first = m.apply(Set("k", 1), 0, client_id="c", seq=7)
    assert m.apply(Set("k", 2), 0, client_id="c", seq=7) == first == Written(1, None)
    assert m.revision == 1


def test_seqs_may_arrive_out_of_order_within_the_window() -> None:
    m = fresh(window=4)
    for seq in (5, 3, 4, 2):
        request(m, seq, seq)
    assert m.revision == 4
    for seq in (5, 3, 4, 2):
        assert decode_result(request(m, seq, "dup")).revision == [5, 3, 4, 2].index(seq) + 1
    assert m.revision == 4


def test_a_seq_older_than_the_window_is_refused_as_stale_and_changes_nothing() -> None:
    m = fresh(window=4)
    request(m, 10, "v10")
    result = decode_result(request(m, 6, "too old"))
    assert isinstance(result, Failed) and result.error_code == "stale_request"
    assert "read the key to find out" in result.message
    assert result.revision == 2  # a stale request is an entry in the log; it takes a revision
    assert m.get("k").value == "v10"  # type: ignore[union-attr]
    assert isinstance(decode_result(request(m, 7, "in the window")), Written)


def test_different_clients_have_separate_seqs() -> None:
    m = fresh()
    request(m, 1, "from a", client="a")
    request(m, 1, "from b", client="b")
    assert m.revision == 2
    assert m.get("k").value == "from b"  # type: ignore[union-attr]


def test_a_client_idle_longer_than_the_limit_in_log_time_is_forgotten() -> None:
    m = fresh(idle_ms=1000)
    first = request(m, 1, "v1", now_ms=0)
    request(m, 1, "other", now_ms=600, client="other")
    m.apply(NoOp(), 1000)  # idle exactly the limit: still remembered
    m.apply(NoOp(), 400)  # a stamp behind log time moves nothing
    assert m.cached_result("c", 1) == first
    m.apply(NoOp(), 1001)
    assert m.cached_result("c", 1) is None
    assert m.cached_result("other", 1) is not None
    # The forgotten client's retry is now a new request: the documented price of forgetting.
    assert decode_result(request(m, 1, "v2", now_ms=1002)).revision == m.revision == 6


def test_a_duplicate_refreshes_the_clients_idle_clock() -> None:
    m = fresh(idle_ms=1000)
    first = request(m, 1, "v1", now_ms=0)
    request(m, 1, "retry", now_ms=900)
    m.apply(NoOp(), 1800)
    assert m.cached_result("c", 1) == first


def test_a_malformed_command_with_a_request_id_is_cached_like_any_answer() -> None:
    m = fresh()
    first = m.apply_encoded(b"\xc1", 0, client_id="c", seq=1)
    assert m.apply_encoded(b"\xc1", 0, client_id="c", seq=1) == first
    assert m.revision == 1


def test_the_table_keeps_results_bounded_by_twice_the_window() -> None:
    m = fresh(window=4)
    for seq in range(100):
        request(m, seq, seq)
    kept = [seq for seq in range(100) if m.cached_result("c", seq) is not None]
    assert set(range(96, 100)) <= set(kept)
    assert len(kept) <= 8


def test_cached_result_is_read_only() -> None:
    m = fresh()
    assert m.cached_result("nobody", 1) is None
    digest = m.digest()
    m.cached_result("c", 1)
    assert m.digest() == digest


@pytest.mark.parametrize(
    ("client_id", "seq"), [("c", None), (None, 1), (5, 1), ("c", -1), ("c", True), ("c", 1.0)]
)
def test_a_half_or_badly_typed_request_id_is_a_caller_error(client_id: object, seq: object) -> None:
    m = fresh()
    digest = m.digest()
    with pytest.raises(refused(InvalidCommand)):
        m.apply_encoded(encode_command(NoOp()), 500, client_id=client_id, seq=seq)  # type: ignore[arg-type]
    with pytest.raises(refused(InvalidCommand)):
        m.apply(NoOp(), 500, client_id=client_id, seq=seq)  # type: ignore[arg-type]
    assert m.digest() == digest
    assert (m.revision, m.log_time_ms) == (0, 0)  # refused before anything changed
