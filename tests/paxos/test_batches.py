"""The slot value codec: columns round-trip, and anything else is refused whole."""

import contextlib
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.paxos.batches import decode_batch, encode_batch, read_batch
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.messages import WIRE_VERSION, Forward, MalformedMessage, Request, decode_message
from paxoskv.state import Configuration

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}))

requests = st.lists(
    st.builds(
        Request,
        st.text(max_size=8),
        st.integers(0, 2**64 - 1),
        st.binary(max_size=40),
    ),
    max_size=6,
)


@given(st.integers(0, 2**62), requests)
@settings(max_examples=200, derandomize=True, database=None)
def test_a_batch_round_trips_as_columns_and_as_requests(
    log_time_ms: int, batch: list[Request]
) -> None:
    value = encode_batch(log_time_ms, batch)
    assert read_batch(value) == (
        log_time_ms,
        [r.client_id for r in batch],
        [r.seq for r in batch],
        [r.command for r in batch],
    )
    assert decode_batch(value) == (log_time_ms, batch)


@given(st.binary(max_size=120))
@settings(max_examples=300, derandomize=True, database=None)
def test_random_bytes_read_as_a_batch_or_raise_malformed_only(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        read_batch(data)


@pytest.mark.parametrize(
    "body",
    [
        [1, ["c"], [1]],  # three fields, not four
        [True, ["c"], [1], [b""]],  # a bool log time
        [-1, ["c"], [1], [b""]],  # a log time before the epoch
        [2**62 + 1, ["c"], [1], [b""]],  # a log time the state machine would refuse
        [1, ["c", "d"], [1], [b""]],  # columns of different lengths
        [1, [b"c"], [1], [b""]],  # a client id that is not a str
        [1, ["c"], [-1], [b""]],  # a negative seq
        [1, ["c"], [False], [b""]],  # a bool seq
        [1, ["c"], [1], ["not bytes"]],  # a command that is not bytes
        [1, "c", [1], [b""]],  # a column that is not an array
    ],
)
def test_a_value_no_leader_of_ours_could_make_is_refused_whole(body: list[object]) -> None:
    with pytest.raises(MalformedMessage):
        read_batch(msgpack.packb(body, use_bin_type=True))


def test_a_request_that_would_spoil_its_whole_batch_is_refused_at_the_boundary() -> None:
    engine = Engine(EngineSettings(node_id="a"), random.Random(1), CONFIG)
    for bad in (Request("c", -1, b""), Request("", 1, b""), Request("c", 2**64, b"")):
        with pytest.raises(ValueError, match="client"):
            engine.propose([Request("ok", 1, b""), bad], now=0.0)
    for bad_raw in (["c", -1, b""], ["", 1, b""]):
        with pytest.raises(MalformedMessage):
            decode_message(msgpack.packb([WIRE_VERSION, Forward.TAG, [bad_raw]]))
