"""The slot value codec: columns round-trip, and anything else is refused whole."""

import contextlib
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.paxos.batches import (
    _SHALLOW_BYTES,
    _SMALL_SLOT,
    _WALK_LEVELS,
    UNPACKER_DEPTH,
    _embeddable,
    _read_in_full,
    _read_one_client_run,
    _shallow,
    decode_batch,
    encode_batch,
    pack_batch,
    read_batch,
)
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.messages import (
    TAGS,
    WIRE_VERSION,
    Forward,
    MalformedMessage,
    Request,
    decode_message,
)
from paxoskv.state import Configuration, Set, decode_result, encode_command
from paxoskv.state.wire import TOP_EXT_HOOK
from paxoskv.state.wire import pack as wire_pack
from tests.state.test_batch import rows
from tests.state.test_properties import commands, fresh, small_keys

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
    # (What the items read as is the next tests' business; decode_batch gives their bytes.)
    read_time, client_ids, seqs, _ = read_batch(value)
    assert (read_time, client_ids, list(seqs)) == (
        log_time_ms,
        [r.client_id for r in batch],
        [r.seq for r in batch],
    )
    # Seqs that run on by one come out as a range (the state machine's proof of order).
    first = batch[0].seq if batch else 0
    consecutive = [r.seq for r in batch] == list(range(first, first + len(batch)))
    assert type(seqs) is (range if len(batch) >= _SMALL_SLOT and consecutive else list)
    assert decode_batch(value) == (log_time_ms, batch)


@given(st.integers(2, 2**40), st.integers(1, 24), st.integers(0, 23), st.integers(-2, 2))
@settings(max_examples=200, derandomize=True, database=None)
def test_seqs_are_a_range_exactly_when_they_run_on_by_one(
    first: int, count: int, position: int, change: int
) -> None:
    seqs = list(range(first, first + count))
    seqs[position % count] += change
    value = encode_batch(1, [Request("c", seq, encode_command(Set("k", 1))) for seq in seqs])
    _, _, read, _ = read_batch(value)
    assert list(read) == seqs
    consecutive = seqs == list(range(seqs[0], seqs[0] + count))
    assert (type(read) is range) == (count >= _SMALL_SLOT and consecutive)


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
        [1, ["c", "c", 7], [1, 2, 3], [b"", b"", b""]],  # one client id of three not a str
        [1, ["c", b"c"], [1, 2], [b"", b""]],  # the same id, once as bytes
        [1, ["c"], [-1], [b""]],  # a negative seq
        [1, ["c"], [False], [b""]],  # a bool seq
        [1, ["c"], [1], ["not bytes"]],  # an item neither bytes nor an array
        [1, ["c"], [1], [{"a": 1}]],  # a map is no item a leader makes either
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
            decode_message(msgpack.packb([WIRE_VERSION, TAGS[Forward], [bad_raw]]))


# --- the item column: commands embedded as msgpack arrays, or wrapped as bin ---------------

odd_commands = st.one_of(
    commands(small_keys).map(encode_command),  # what clients send: embedded
    st.binary(max_size=12),  # garbage, truncated or trailing bytes: wrapped
    st.builds(msgpack.packb, st.lists(st.integers(-5, 300), max_size=3)),  # an array, no command
    st.builds(msgpack.packb, st.binary(max_size=6)),  # one bin object: must stay wrapped
)


def _unpacked(command: bytes) -> object:
    try:
        return msgpack.unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
    except Exception:
        return None


@given(st.integers(0, 2**62), st.lists(odd_commands, max_size=8))
@settings(max_examples=80, derandomize=True, database=None)
def test_an_item_reads_as_its_command_reads_alone_and_gives_back_its_very_bytes(
    log_time_ms: int, commands_: list[bytes]
) -> None:
    batch = [Request("c", seq, command) for seq, command in enumerate(commands_)]
    value = encode_batch(log_time_ms, batch)
    _, _, _, items = read_batch(value)
    for command, item in zip(commands_, items, strict=True):
        alone = _unpacked(command)
        if type(alone) is list:
            assert item == alone  # embedded: the replica gets the list, no second unpack
        else:
            assert item == command  # wrapped: unpacked (and refused) by the state machine
    assert decode_batch(value) == (log_time_ms, batch)


@given(st.lists(odd_commands, min_size=1, max_size=8))
@settings(max_examples=60, derandomize=True, database=None)
def test_a_replica_applying_the_items_equals_one_applying_each_commands_bytes(
    commands_: list[bytes],
) -> None:
    by_items, by_bytes = fresh(), fresh()
    seqs = list(range(len(commands_)))
    _, _, _, items = read_batch(
        encode_batch(7, [Request("c", s, c) for s, c in zip(seqs, commands_, strict=True)])
    )
    wanted = {"c": set(seqs)}
    answers = by_items.apply_items(["c"] * len(seqs), seqs, items, 7, answer=wanted)
    expected = by_bytes.apply_batch(["c"] * len(seqs), seqs, commands_, 7, answer=wanted)
    assert rows(answers) == rows(expected)
    assert by_items.digest() == by_bytes.digest()


def test_a_command_nested_to_the_unpackers_limit_is_wrapped_so_the_batch_still_reads() -> None:
    deep = b"\x91" * (UNPACKER_DEPTH - 1) + b"\xc0"  # unpacks alone; two arrays down it would not
    assert type(msgpack.unpackb(deep)) is list
    shallow_but_long = encode_command(Set("k", "x" * 5000))
    value = encode_batch(1, [Request("c", 1, deep), Request("c", 2, shallow_but_long)])
    _, _, _, items = read_batch(value)
    assert items[0] == deep
    assert items[1] == msgpack.unpackb(shallow_but_long)
    machine = fresh()
    [(_, _, result)] = rows(machine.apply_items(["c"], [1], items[:1], 1, answer={"c": {1}}))
    assert decode_result(result).error_code == "malformed_command"  # type: ignore[union-attr]


def _nested(depth: int, kind: str) -> object:
    """A long string inside ``depth`` lists or dicts (``mixed``: the two in turn)."""
    value: object = "x" * 1100
    for level in range(depth):
        value = {"k": value} if kind == "dict" or (kind == "mixed" and level % 2) else [value]
    return value


@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
@pytest.mark.parametrize("depth", [0, 1, _WALK_LEVELS - 2, _WALK_LEVELS - 1, _WALK_LEVELS, 40])
def test_a_long_commands_unpacked_form_vouches_for_its_depth_only_as_far_as_it_walks(
    depth: int, kind: str
) -> None:
    command = msgpack.packb(["set", "k", _nested(depth, kind)])
    item = msgpack.unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
    # Lists only, and the command's own array counts too; a map is never vouched for.
    maps = (kind == "dict" and depth > 0) or (kind == "mixed" and depth > 1)
    assert _shallow(item) == (depth + 1 <= _WALK_LEVELS and not maps)
    assert _embeddable(command, item)  # past the walk, its few header bytes vouch for it


def _repeated_key_command(nesting: int, first: bytes, second: bytes) -> bytes:
    """``[1, "h", {first: <arrays nested deep>, second: 1}, None]`` as bytes, where ``first``
    and ``second`` are one key to a dict (``"a"`` twice, or ``1`` and ``True``, or ``1`` and
    ``1.0``): the dict keeps the shallow value, the bytes nest ``nesting`` containers deep
    (the command's array and the map counted), past 1,022 bytes."""
    deep = b"\x91" * (nesting - 2) + b"\xc0"
    return b"\x94\x01\xa1h\x82" + first + deep + second + b"\x01" + b"\xc0"


@pytest.mark.parametrize(
    ("first", "second"),
    [(b"\xa1a", b"\xa1a"), (b"\x01", b"\xc3"), (b"\x01", msgpack.packb(1.0))],
)
@pytest.mark.parametrize("nesting", [UNPACKER_DEPTH - 1, UNPACKER_DEPTH])
def test_a_map_that_repeats_a_key_cannot_hide_how_deep_its_command_nests(
    nesting: int, first: bytes, second: bytes
) -> None:
    # Found in review: a dict keeps the last value of a repeated key, so a walk over the
    # unpacked command saw two levels where the bytes nest a thousand, and the leader embedded
    # a command that every follower's unpacker refused, slot and all. A map is not vouched for.
    command = _repeated_key_command(nesting, first, second)
    assert len(command) > _SHALLOW_BYTES
    item = _unpacked(command)
    assert type(item) is list and item[2] == {_unpacked(first): 1}  # the dict looks shallow
    assert not _shallow(item)
    innocent = encode_command(Set("j", "innocent"))
    for requests in (
        [Request("b", 1, command)],
        [Request("a", 1, innocent), Request("b", 1, command)],
        [Request("b", seq, command) for seq in range(1, _SMALL_SLOT + 2)],
    ):
        value, leader_items = pack_batch(
            1,
            [r.client_id for r in requests],
            [r.seq for r in requests],
            [r.command for r in requests],
        )
        _, _, _, read = read_batch(value)  # a follower reads what the leader applies
        assert [type(item) for item in read] == [type(item) for item in leader_items]
        assert [item for item in read if type(item) is bytes] == [
            item for item in leader_items if type(item) is bytes
        ]
        assert [type(item) for item in _read_in_full(value)[3]] == [type(i) for i in read]


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.binary(max_size=4)
)
nested_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 9), inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)  # packed as an ext, unpacked by its hook
    ),
    max_leaves=40,
)


@given(nested_values, st.integers(0, _WALK_LEVELS + 3))
@settings(max_examples=300, derandomize=True, database=None)
def test_a_command_proved_shallow_unpacks_under_all_but_the_walks_levels_of_the_stack(
    value: object, wrap: int
) -> None:
    for _ in range(wrap):
        value = [value]
    command = wire_pack([value])
    item = msgpack.unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
    if _shallow(item):  # then it nests at most _WALK_LEVELS deep, counting its own array
        deeper = b"\x91" * (UNPACKER_DEPTH - _WALK_LEVELS) + command
        msgpack.unpackb(deeper, ext_hook=TOP_EXT_HOOK, strict_map_key=False)


@pytest.mark.parametrize(
    "depth",
    [1, _WALK_LEVELS, _WALK_LEVELS + 1, UNPACKER_DEPTH - 3, UNPACKER_DEPTH - 2, UNPACKER_DEPTH - 1],
)
def test_long_commands_of_every_depth_read_as_they_read_alone_in_any_slot(depth: int) -> None:
    # Past 1,022 bytes: nested only by lists here, so the byte count decides past the walk.
    command = b"\x91" * depth + msgpack.packb("x" * 1100)
    alone = _unpacked(command)
    for count in (1, 2, _SMALL_SLOT + 1):  # the one-command slot, a small slot, a fast-read run
        value = encode_batch(1, [Request("c", seq, command) for seq in range(count)])
        _, _, _, items = read_batch(value)
        # embedded (a list, as read alone) while it fits two arrays down, else wrapped
        embedded = depth + 2 <= UNPACKER_DEPTH
        assert [type(item) for item in items] == [list if embedded else bytes] * count
        if depth < 100:  # (deeper lists overflow Python's recursion when compared)
            assert items == [alone] * count
        elif not embedded:
            assert items == [command] * count
        assert [type(item) for item in _read_in_full(value)[3]] == [type(i) for i in items]


@pytest.mark.parametrize("depth", [_WALK_LEVELS + 1, UNPACKER_DEPTH - 2, UNPACKER_DEPTH - 1])
def test_a_one_client_run_of_items_too_deep_to_walk_reads_as_the_whole_batch_reads(
    depth: int,
) -> None:
    # The column unpacked alone sits a level higher than in the batch: an item the walk cannot
    # vouch for is read again a level down, and refused exactly when the whole batch is.
    items = [msgpack.packb([1])] * (_SMALL_SLOT - 1) + [b"\x91" * depth + b"\xc0"]
    header = b"\xdc" + len(items).to_bytes(2, "big")
    seqs = b"".join(b"\xcd" + s.to_bytes(2, "big") for s in range(len(items)))
    value = b"\x94\x01" + header + b"\xa1c" * len(items) + header + seqs + header + b"".join(items)
    fast = _read_one_client_run(value)
    try:
        full = _read_in_full(value)
    except MalformedMessage:
        assert fast is None
        assert depth + 2 > UNPACKER_DEPTH
        return
    assert fast is not None
    assert fast[:3] == full[:3]
    assert fast[3][:-1] == full[3][:-1]
    assert _depth(fast[3][-1]) == _depth(full[3][-1]) == depth


def _depth(item: object) -> int:
    """How many lists deep the innermost of ``item``'s first elements sits (no recursion)."""
    depth = 0
    while type(item) is list:
        depth += 1
        item = item[0] if item else None
    return depth


def test_a_batch_of_the_old_layout_with_every_command_wrapped_still_reads() -> None:
    command = encode_command(Set("k", 1))
    old = msgpack.packb([5, ["c"], [1], [command]], use_bin_type=True)
    assert read_batch(old) == (5, ["c"], [1], [command])
    assert decode_batch(old) == (5, [Request("c", 1, command)])


_widths = st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])


@given(
    st.integers(0, 2**62),
    st.lists(
        st.tuples(st.sampled_from(["c", "client-2", "é"]), _widths | st.integers(0, 2**64 - 1)),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
@settings(max_examples=300, derandomize=True, database=None)
def test_a_batch_reads_as_msgpack_packing_its_columns_would(
    log_time_ms: int, ids: list[tuple[str, int]], one_client: bool
) -> None:
    """The leader packs the id and seq columns itself (one client's id repeated, the seqs by
    ``struct`` at one width): any msgpack reader must read what msgpack's packer would give."""
    if one_client:
        ids = [("c", seq) for _, seq in ids]
    command = encode_command(Set("k", 1))
    value = encode_batch(log_time_ms, [Request(c, s, command) for c, s in ids])
    items = [msgpack.unpackb(command)] * len(ids)
    expected = msgpack.unpackb(
        msgpack.packb([log_time_ms, [c for c, _ in ids], [s for _, s in ids], items])
    )
    assert msgpack.unpackb(value) == expected
    assert type(read_batch(value)[2]) in (list, range)


def test_long_shallow_commands_are_spliced_whole_and_read_as_the_leader_applies_them() -> None:
    commands = [encode_command(Set(f"k{i}", "x" * 1_024)) for i in range(20)]
    value, items = pack_batch(1, ["c"] * 20, list(range(20)), commands)
    _, _, _, read = read_batch(value)
    assert read == items == [msgpack.unpackb(c) for c in commands]
    assert all(c in value for c in commands)  # each command's own bytes, not wrapped


def _spoiled(value: bytes, edits: list[tuple[int, int]]) -> bytes:
    """``value`` with bytes changed (a position and a new byte each), or cut short at the first
    position past its end."""
    data = bytearray(value)
    for position, byte in edits:
        if position >= len(data):
            return bytes(data[: position % (len(data) + 1)])
        data[position] = byte
    return bytes(data)


@given(
    st.integers(0, 2**64 - 1),
    st.sampled_from(["c", "", "é", "x" * 31, "y" * 32, "z" * 300]),
    _widths | st.integers(0, 2**64 - 1),
    st.integers(_SMALL_SLOT - 2, 40),
    st.lists(odd_commands, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 255)), max_size=3),
)
@settings(max_examples=1_000, derandomize=True, database=None)
def test_the_one_client_run_reads_as_the_whole_batch_read_in_full(
    log_time_ms: int,
    client_id: str,
    first: int,
    count: int,
    commands: list[bytes],
    edits: list[tuple[int, int]],
) -> None:
    """The fast read of the usual slot gives exactly the columns of the full read, or leaves
    the value to it: for the leader's own batches and for spoiled copies of them."""
    seqs = list(range(first, first + count))
    column = [commands[i % len(commands)] for i in range(count)]
    try:
        value = pack_batch(log_time_ms, [client_id] * count, seqs, column)[0]
    except (OverflowError, ValueError, TypeError):  # seqs or time past uint64: not a batch
        return
    value = _spoiled(value, edits)
    fast = _read_one_client_run(value)
    try:
        full = _read_in_full(value)
    except MalformedMessage:
        assert fast is None
        return
    if fast is not None:
        assert fast == full
        assert type(fast[2]) is range
    else:  # the leader's own one-client slots are read by the fast path
        assert edits or count < _SMALL_SLOT or len(client_id.encode()) >= 256


def test_an_item_nested_to_the_unpackers_limit_inside_a_one_client_run_is_refused_alike() -> None:
    # One level past the unpacker's limit inside the batch, within it inside the item column.
    deep = b"\x91" * (UNPACKER_DEPTH - 1) + b"\xc0"
    items = [msgpack.packb([1])] * (_SMALL_SLOT - 1) + [deep]
    header = b"\xdc" + len(items).to_bytes(2, "big")
    seqs = b"".join(b"\xcd" + s.to_bytes(2, "big") for s in range(len(items)))
    value = b"\x94\x01" + header + b"\xa1c" * len(items) + header + seqs + header + b"".join(items)
    assert _read_one_client_run(value) is None
    with pytest.raises(MalformedMessage):
        _read_in_full(value)


@pytest.mark.parametrize("number", [0, 127, 128, 65535, 65536, 2**32, 2**64 - 1, -1])
@pytest.mark.parametrize("client_id", ["c", "i" * 31, "i" * 32, "é" * 200, "i" * 70_000])
def test_a_slot_of_one_command_is_written_as_the_packer_writes_it(
    number: int, client_id: str
) -> None:
    """pack_batch writes a one-request slot by hand: the bytes ``_join_batch`` makes."""
    from paxoskv.paxos import batches

    command = encode_command(Set("k", "v"))
    log_time_ms = max(number, 0)
    value, items = pack_batch(log_time_ms, [client_id], [number], [command])
    assert value == batches._join_batch(log_time_ms, [client_id], [number], [command])
    assert items == [msgpack.unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)]


@pytest.mark.parametrize("seq", [True, False])
def test_a_bool_seq_in_a_slot_of_one_command_is_written_as_the_packer_writes_it(seq: bool) -> None:
    """The list's item reaches the hand-written form as it is (not unboxed by the compiled
    build): the packer's bytes, which every replica refuses alike."""
    from paxoskv.paxos import batches

    command = encode_command(Set("k", "v"))
    value, _ = pack_batch(5, ["c"], [seq], [command])  # type: ignore[list-item]
    assert value == batches._join_batch(5, ["c"], [seq], [command])  # type: ignore[list-item]
