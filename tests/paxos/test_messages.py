"""The codec: every message round-trips, and any other bytes raise MalformedMessage only."""

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot

ballots = st.builds(Ballot, st.integers(0, 2**40), st.text(min_size=1, max_size=8))
slots = st.integers(0, 2**40)
blobs = st.binary(max_size=64)
requests = st.builds(m.Request, st.text(min_size=1, max_size=8), st.integers(0, 2**40), blobs)


@st.composite
def promises(draw: st.DrawFn) -> m.Promise:
    """A part covering from_slot to upto_slot (the end of the log, or a bound), entries in it."""
    first = draw(slots)
    last = draw(st.one_of(st.just(m.ALL_SLOTS), st.integers(first, first + 2**20)))
    in_range = st.builds(m.PromiseEntry, st.integers(first, last), ballots, blobs, st.booleans())
    return m.Promise(
        draw(ballots),
        first,
        tuple(draw(st.lists(in_range, max_size=2))),
        draw(slots),
        draw(st.booleans()),
        last,
    )


messages = st.one_of(
    st.builds(m.Prepare, ballots, slots),
    promises(),
    st.builds(m.Nack, ballots, ballots),
    st.builds(m.Accept, ballots, slots, blobs, slots),
    st.builds(m.Accepted, ballots, st.lists(slots, max_size=5).map(tuple)),
    st.builds(m.Commit, ballots, slots),
    st.builds(m.Heartbeat, ballots, slots, slots),
    st.builds(m.HeartbeatAck, ballots, slots, slots),
    st.builds(m.Forward, st.lists(requests, max_size=3).map(tuple)),
    st.builds(m.ReadIndexRequest, st.lists(slots, max_size=3).map(tuple), st.booleans()),
    st.builds(m.ReadIndexReply, st.lists(slots, max_size=3).map(tuple), st.integers(-1, 99)),
    st.builds(m.CatchupRequest, slots),
    st.builds(
        m.CatchupReply,
        st.lists(st.builds(m.CatchupEntry, slots, blobs), max_size=3).map(tuple),
        slots,
        slots,
    ),
    st.builds(m.SnapshotRequest, slots, slots),
    st.builds(m.SnapshotChunk, slots, slots, slots, blobs),
)


@given(messages)
@settings(max_examples=300)
def test_every_message_round_trips(message: m.Message) -> None:
    assert m.decode_message(m.encode_message(message)) == message
    # As the runtime sends it (its kind byte joined in front) and reads it: in place, past it.
    sent = m.encode_message(message, b"P")
    assert sent == b"P" + m.encode_message(message)
    in_place = m.decode_message(memoryview(sent)[1:])
    assert in_place == message
    assert "<memory at" not in repr(in_place)  # every bytes field is bytes of its own


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_bytes_decode_or_raise_malformed(data: bytes) -> None:
    with contextlib.suppress(m.MalformedMessage):
        m.decode_message(data)


@given(messages, st.data())
@settings(max_examples=300)
def test_mutated_messages_decode_or_raise_malformed(
    message: m.Message, data: st.DataObject
) -> None:
    raw = bytearray(m.encode_message(message))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            decoded = m.decode_message(candidate)
        except m.MalformedMessage:
            continue
        assert type(decoded).__name__ in {cls.__name__ for cls in m._MESSAGE_TYPES}


def test_wrong_version_and_unknown_tag_are_refused() -> None:
    import msgpack

    good = m.encode_message(m.Commit(Ballot(1, "a"), 5))
    body = msgpack.unpackb(good)
    for bad in ([99, *body[1:]], [body[0], 250, *body[2:]], [body[0], body[1], ["x", "a"], 5]):
        try:
            m.decode_message(msgpack.packb(bad))
        except m.MalformedMessage:
            continue
        raise AssertionError(f"accepted {bad}")


def test_a_promise_part_with_an_entry_outside_its_slots_is_malformed() -> None:
    entry = m.PromiseEntry(9, Ballot(1, "a"), b"v", False)
    part = m.Promise(Ballot(2, "b"), 1, (entry,), 0, False, 8)
    with pytest.raises(m.MalformedMessage, match="outside"):
        m.decode_message(m.encode_message(part))
    backwards = m.Promise(Ballot(2, "b"), 5, (), 0, False, 4)
    with pytest.raises(m.MalformedMessage, match="covers"):
        m.decode_message(m.encode_message(backwards))


def test_a_forward_travels_as_columns_and_any_bad_request_refuses_it_whole() -> None:
    import msgpack

    good = m.Forward((m.Request("c1", 1, b"\x90"), m.Request("c2", 2**64 - 1, b"")))
    version, tag, ids, seqs, commands = msgpack.unpackb(m.encode_message(good))
    assert (ids, seqs, commands) == (["c1", "c2"], [1, 2**64 - 1], [b"\x90", b""])
    assert m.decode_message(m.encode_message(m.Forward(()))) == m.Forward(())
    bad_columns = [
        (["c1"], [1, 2], [b"", b""]),  # lengths differ
        (("c1",), 1, [b""]),  # not a list
        (["c1", ""], [1, 2], [b"", b""]),  # an empty client id
        (["c1", 7], [1, 2], [b"", b""]),  # not a str
        (["c1", "c1"], [1, -1], [b"", b""]),  # a seq below 0
        (["c1", "c1"], [1, True], [b"", b""]),  # a bool is no seq
        (["c1", "c1"], [1, 2.0], [b"", b""]),  # nor a float
        (["c1", "c1"], [1, 2], [b"", "x"]),  # a command is bytes
    ]
    for columns in bad_columns:
        raw = msgpack.packb([version, tag, *columns], use_bin_type=True)
        with pytest.raises(m.MalformedMessage):
            m.decode_message(raw)
    with pytest.raises(m.MalformedMessage):  # above 2**64 - 1 msgpack itself refuses to pack
        m.decode_message(msgpack.packb([version, tag, ["c1"], [-(2**63)], [b""]]))


def test_a_forward_in_the_first_format_rows_is_still_read() -> None:
    requests = (m.Request("c1", 1, b"x"), m.Request("c2", 2**64 - 1, b""))
    rows = msgpack.packb([m.WIRE_VERSION, m.TAGS[m.Forward], [list(r) for r in requests]])
    assert m.decode_message(rows) == m.Forward(requests)
    columns = m.encode_message(m.Forward(requests))
    assert msgpack.unpackb(columns)[1] == m.FORWARD_COLUMNS_TAG
    assert m.decode_message(columns) == m.Forward(requests)
    bad = msgpack.packb([m.WIRE_VERSION, m.TAGS[m.Forward], [["", 1, b"x"]]])
    with pytest.raises(m.MalformedMessage):
        m.decode_message(bad)


# Ints at every edge of msgpack's forms (fixint, uint8 to uint64) and past them, node ids of
# every header (fixstr, str8) and none, values of every bin header.
_EDGE_INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
_ODD_INTS = [-1, -129, 2**64]  # (an int field of a compiled message takes ints only)
_ODD_ROUNDS: list[object] = [True, False, 1.0, None]  # a Ballot is a tuple: it holds anything
_NODE_IDS = ["a", "n" * 31, "n" * 32, "é" * 16, "ü" * 15, "x" * 300, "\ud800"]
_VALUES = [b"", b"v" * 255, b"v" * 256, b"v" * 65536]


def _packer_or_error(body: list[object]) -> bytes | type[BaseException]:
    try:
        return msgpack.packb(body, use_bin_type=True)
    except Exception as error:
        return type(error)


def _encoded_or_error(message: m.Message) -> bytes | type[BaseException]:
    try:
        return m.encode_message(message)
    except Exception as error:
        return type(error)


@pytest.mark.parametrize("number", _EDGE_INTS + _ODD_INTS + _ODD_ROUNDS)
@pytest.mark.parametrize("node_id", _NODE_IDS)
def test_the_messages_written_by_hand_are_the_packers_bytes(number: object, node_id: str) -> None:
    """Accept, Accepted and Commit are written without the packer (``_encode_small``): the
    same bytes, or the same refusal, for any field the packer might see."""
    ballot = Ballot(number, node_id)  # type: ignore[arg-type]
    wire_ballot = [number, node_id]
    if number in _ODD_ROUNDS and type(number) is not int:
        number = 7  # only the ballot's round is odd
    for value in _VALUES:
        accept = m.Accept(ballot, number, value, number)  # type: ignore[arg-type]
        expected = _packer_or_error([1, 4, wire_ballot, number, value, number])
        assert _encoded_or_error(accept) == expected
    for slots_ in [(), (number,), (number, 5), tuple(range(20))]:
        accepted = m.Accepted(ballot, slots_)  # type: ignore[arg-type]
        expected = _packer_or_error([1, 5, wire_ballot, list(slots_)])
        assert _encoded_or_error(accepted) == expected
    commit = m.Commit(ballot, number)  # type: ignore[arg-type]
    expected = _packer_or_error([1, 6, wire_ballot, number])
    assert _encoded_or_error(commit) == expected


@pytest.mark.parametrize("slot", [True, False])
def test_a_bool_among_accepted_slots_is_written_as_the_packer_writes_it(slot: bool) -> None:
    """A tuple's items reach the hand-written form as they are: the compiled build must not
    unbox a bool into an int (the packer writes true or false, which no decoder takes)."""
    accepted = m.Accepted(Ballot(1, "a"), (slot,))
    assert m.encode_message(accepted) == msgpack.packb([1, 5, [1, "a"], [slot]])


def test_msgpack_defaults_are_the_ones_decode_message_relies_on() -> None:
    """decode_message calls unpackb without keyword arguments (they cost a parse per
    datagram), relying on use_list=True, raw=False and strict_map_key=True as defaults."""
    assert msgpack.unpackb(msgpack.packb(["id", [1]])) == ["id", [1]]  # lists, and str not bytes
    with pytest.raises(ValueError):
        msgpack.unpackb(msgpack.packb({1: 2}))  # strict_map_key: no int keys


def test_lease_reads_travel_under_a_tag_of_their_own_and_plain_ones_as_before() -> None:
    """A plain read request is the bytes it always was, so an older leader reads it; a lease
    one has its own tag, which an older leader drops as unknown (the follower asks again
    without the lease at its retry period)."""
    plain = m.encode_message(m.ReadIndexRequest((4, 5)))
    assert msgpack.unpackb(plain) == [m.WIRE_VERSION, m.TAGS[m.ReadIndexRequest], [4, 5]]
    lease = m.encode_message(m.ReadIndexRequest((4, 5), True))
    assert msgpack.unpackb(lease) == [m.WIRE_VERSION, m.LEASE_READ_TAG, [4, 5]]
    assert m.decode_message(lease) == m.ReadIndexRequest((4, 5), True)
    assert m.decode_message(plain) == m.ReadIndexRequest((4, 5))
    assert m.ReadIndexRequest((4, 5)) != m.ReadIndexRequest((4, 5), True)
