"""Results travel back to the asking node: every one encodes and decodes to itself."""

from __future__ import annotations

import msgpack
import pytest

from paxoskv.errors import ConfigurationError, InvalidCommand, LeaseNotFound
from paxoskv.state import (
    Applied,
    ConfigChanged,
    Configuration,
    Deleted,
    Failed,
    KeyValue,
    LeaseExpired,
    LeaseGranted,
    LeaseRenewed,
    LeaseRevoked,
    MalformedCommand,
    MalformedResult,
    Result,
    TxnResult,
    Written,
    decode_result,
    encode_result,
)
from paxoskv.state.results import encode_written, encode_written_run

KV = KeyValue(("session", b"x", 1), {"cart": [1, (2, 3)]}, 3, 9, 4, 17)

EVERY_KIND: list[Result] = [
    Applied(1),
    Written(2, None),
    Written(3, KV),
    Written(3, KeyValue("k", None, 1, 1, 1, None)),
    Deleted(4, KV),
    Deleted(4, None),
    TxnResult(5, True, (Written(5, None), Deleted(5, KV))),
    TxnResult(5, False, ()),
    LeaseGranted(6, 6, 30_000),
    LeaseRenewed(7, 6, 30_000, 1_700_000_030_000),
    LeaseRevoked(8, 6, 12),
    LeaseExpired(9, 6, True, 3),
    LeaseExpired(9, 6, False, 0),
    ConfigChanged(10, Configuration(frozenset({"a", "b"}), frozenset({"c"}))),
    Failed(11, "lease_not_found", "lease 6 does not exist"),
]


@pytest.mark.parametrize("result", EVERY_KIND, ids=lambda r: type(r).__name__)
def test_every_result_round_trips_exactly(result: Result) -> None:
    decoded = decode_result(encode_result(result))
    assert decoded == result
    assert type(decoded) is type(result)


def test_a_tuple_key_in_a_result_comes_back_a_tuple_and_a_list_value_a_list() -> None:
    decoded = decode_result(encode_result(Written(3, KV)))
    assert isinstance(decoded, Written) and decoded.prev is not None
    assert type(decoded.prev.key) is tuple
    assert type(decoded.prev.value["cart"]) is list
    assert type(decoded.prev.value["cart"][1]) is tuple


def test_results_are_compact_arrays() -> None:
    assert encode_result(Applied(7)) == msgpack.packb([0, 7])
    assert encode_result(Written(8, None)) == msgpack.packb([1, 8, None])
    assert encode_result(Written(8, KeyValue("k", "v", 1, 2, 3, None))) == msgpack.packb(
        [1, 8, ["k", "v", 1, 2, 3, None]]
    )


@pytest.mark.parametrize(
    "first", [0, 1, 127, 128, 255, 256, 2**16 - 3, 2**16, 2**32 - 3, 2**32, 2**63 - 5]
)
def test_a_run_of_written_answers_is_what_encoding_each_makes_at_every_width(first: int) -> None:
    for stop in (first, first + 1, first + 5):
        assert encode_written_run(first, stop) == [
            encode_result(Written(revision, None)) for revision in range(first, stop)
        ]
    for revision in (first, first + 1, first + 4, 2**64 - 1):
        assert encode_written(revision) == encode_result(Written(revision, None))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x92\x01",
        msgpack.packb([]),
        msgpack.packb([10, 1]),
        msgpack.packb([-1, 1]),
        msgpack.packb([True, 1]),
        msgpack.packb([0, -1]),
        msgpack.packb([0, 1, 2]),
        msgpack.packb([1, 1, ["k", "v", 1, 2, 3]]),
        msgpack.packb([1, 1, ["", "v", 1, 2, 3, None]]),
        msgpack.packb([1, 1, ["k", "v", 1, 2, "3", None]]),
        msgpack.packb([3, 1, 1, []]),  # succeeded must be a bool
        msgpack.packb([3, 1, True, [[0, 1]]]),  # a txn response is a write or a delete
        msgpack.packb([3, 1, True, [[3, 1, True, []]]]),
        msgpack.packb([8, 1, ["a"], ["a"]]),  # a voter cannot also be a learner
        msgpack.packb([8, 1, [1], []]),
        msgpack.packb([8, 1, [["a"]], []]),
        msgpack.packb([9, 1, "code", 5]),
        msgpack.packb({"revision": 1}),
    ],
)
def test_bad_bytes_raise_malformed_result_and_nothing_else(raw: bytes) -> None:
    with pytest.raises(MalformedResult):
        decode_result(raw)


def test_malformed_result_is_caught_by_an_except_malformed_command() -> None:
    assert issubclass(MalformedResult, MalformedCommand)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("lease_not_found", LeaseNotFound),
        ("lease_exists", InvalidCommand),
        ("invalid_config_change", ConfigurationError),
        ("stale_request", InvalidCommand),
        ("malformed_command", InvalidCommand),
    ],
)
def test_a_failure_names_the_typed_error_a_client_raises(code: str, error: type) -> None:
    exception = Failed(1, code, "what happened").exception()
    assert type(exception) is error
    assert str(exception) == "what happened"
