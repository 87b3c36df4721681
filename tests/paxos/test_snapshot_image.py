"""A snapshot image: packed late and in pieces, it reads back as the state it was taken of."""

import msgpack
import pytest

from paxoskv.paxos import records
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.records import (
    DurableState,
    SnapshotImage,
    bin_header,
    decode_local_snapshot,
    decode_state_transfer,
)
from paxoskv.state import Configuration, KVStateMachine, Set
from paxoskv.state.snapshot import ROWS_PER_PIECE

CONFIG = Configuration(voters=frozenset({"a", "b", "c"}), learners=frozenset())


def test_a_bin_header_is_what_msgpack_begins_bytes_of_that_length_with() -> None:
    for length in (0, 255, 256, 65_535, 65_536):
        assert msgpack.packb(b"x" * length, use_bin_type=True).startswith(bin_header(length))


def test_an_image_reads_back_as_the_state_and_acceptor_state_it_was_taken_of() -> None:
    state = KVStateMachine(CONFIG)
    for i in range(2 * ROWS_PER_PIECE + 3):
        state.apply(Set(f"k{i}", "v" * 300), 1_000 + i)
    durable = DurableState(
        promised=Ballot(4, "b"),
        accepted={7: (Ballot(3, "a"), b"seven")},
        chosen={6: b"six"},
    )
    image = SnapshotImage(5, state.snapshot_image(), [(1, CONFIG)], 2_000, durable)
    taken = state.snapshot()
    state.apply(Set("later", "not in the image"), 3_000)

    local = decode_local_snapshot(b"".join(image.local_pieces()))
    assert (local.promised, local.accepted, local.chosen) == (
        durable.promised,
        durable.accepted,
        durable.chosen,
    )
    assert (local.applied_slot, local.last_log_time_ms) == (5, 2_000)
    assert local.state_snapshot == taken
    assert local.config_entries == [(1, CONFIG)]
    assert decode_state_transfer(image.transfer()) == (5, taken, [(1, CONFIG)], 2_000)


def test_a_transfer_is_sent_in_slices_of_its_pieces_and_let_go_of_on_release() -> None:
    """The slices a peer is sent are the transfer's bytes at every offset and size, across
    the pieces' edges, without the whole being joined; once released, nothing is served."""
    state = KVStateMachine(CONFIG)
    for i in range(2 * ROWS_PER_PIECE + 3):
        state.apply(Set(f"k{i}", "v" * (i % 50)), 1_000 + i)
    image = SnapshotImage(5, state.snapshot_image(), [(1, CONFIG)], 2_000, DurableState())
    whole = image.transfer()
    assert image.transfer_size() == len(whole)
    assert image._pieces is not None and len(image._pieces) > 4  # several pieces to cross
    for size in (1, 7, 1_000, 65_536, len(whole) + 10):
        offset = 0
        sent = []
        while offset < len(whole):
            chunk = image.transfer_chunk(offset, size)
            assert chunk == whole[offset : offset + size]
            sent.append(chunk)
            offset += len(chunk)
        assert b"".join(sent) == whole
    assert image.transfer_chunk(len(whole), 100) == b""
    assert image.servable
    image.release()
    assert not image.servable and image._state_parts is None and image._pieces is None
    with pytest.raises(RuntimeError, match="released"):
        image.transfer_chunk(0, 10)


def _older_layout(image: SnapshotImage, durable: DurableState) -> bytes:
    """A local snapshot as releases before the streamed layout wrote it:
    ``[transfer (bin), promised, accepted, chosen]``."""
    accepted = [[s, b.round, b.node_id, v] for s, (b, v) in sorted(durable.accepted.items())]
    chosen = [[s, v] for s, v in sorted(durable.chosen.items())]
    promised = [durable.promised.round, durable.promised.node_id]
    return msgpack.packb([image.transfer(), promised, accepted, chosen], use_bin_type=True)


def test_a_big_local_snapshot_of_the_older_layout_reads_in_place_as_it_reads_unpacked_whole() -> (
    None
):
    """A transfer over 64 KB (``bin 32``) is cut out of the blob as a view, not copied out by
    unpacking: what comes back is what unpacking the whole blob gives, and extra bytes after
    the four fields are refused as before."""
    state = KVStateMachine(CONFIG)
    for i in range(1_000):
        state.apply(Set(f"k{i}", "v" * 300), 1_000 + i)
    durable = DurableState(
        promised=Ballot(4, "b"), accepted={7: (Ballot(3, "a"), b"seven")}, chosen={6: b"six"}
    )
    image = SnapshotImage(5, state.snapshot_image(), [(1, CONFIG)], 2_000, durable)
    blob = _older_layout(image, durable)
    assert blob[:2] == b"\x94\xc6"
    assert type(records._local_fields(blob)[0]) is memoryview  # cut out, not copied
    transfer, promised, accepted, chosen = msgpack.unpackb(blob, raw=False)
    local = decode_local_snapshot(blob)
    slot, taken, configs, log_time_ms = decode_state_transfer(transfer)
    assert (local.applied_slot, local.state_snapshot, local.config_entries) == (
        slot,
        taken,
        configs,
    )
    assert local.last_log_time_ms == log_time_ms == 2_000
    assert (local.promised, local.accepted, local.chosen) == (
        durable.promised,
        durable.accepted,
        durable.chosen,
    )
    assert [promised, accepted, chosen] == [[4, "b"], [[7, 3, "a", b"seven"]], [[6, b"six"]]]
    with pytest.raises(ValueError):
        decode_local_snapshot(blob + msgpack.packb(0))
    assert b"".join(image.local_pieces()) != blob  # written in the newer layout, read the same
    assert decode_local_snapshot(b"".join(image.local_pieces())) == local


@pytest.mark.parametrize("keep", [True, False])
def test_a_local_snapshot_is_its_head_then_the_state_which_reads_back_as_a_view(
    keep: bool,
) -> None:
    """The newer layout: a ``bin`` head, then the state snapshot to the end. The state comes
    back as a view of the blob (never copied out), and restores to the state taken."""
    state = KVStateMachine(CONFIG)
    for i in range(3 * ROWS_PER_PIECE):
        state.apply(Set(f"k{i}", "v" * (i % 40)), 1_000 + i)
    durable = DurableState(
        promised=Ballot(4, "b"), accepted={7: (Ballot(3, "a"), b"seven")}, chosen={6: b"six"}
    )
    image = SnapshotImage(5, state.snapshot_image(), [(1, CONFIG)], 2_000, durable, keep=keep)
    taken = state.snapshot()
    blob = b"".join(image.local_pieces())
    assert blob[:1] in (b"\xc4", b"\xc5", b"\xc6")
    local = decode_local_snapshot(blob)
    assert type(local.state_snapshot) is memoryview and local.state_snapshot == taken
    assert KVStateMachine.restore(local.state_snapshot).snapshot() == taken
    assert (local.applied_slot, local.last_log_time_ms, local.config_entries) == (
        5,
        2_000,
        [(1, CONFIG)],
    )
    assert (local.promised, local.accepted, local.chosen) == (
        durable.promised,
        durable.accepted,
        durable.chosen,
    )
    with pytest.raises(ValueError):
        decode_local_snapshot(blob[:3])  # a head cut short


def test_an_image_not_kept_is_packed_a_piece_at_a_time_and_let_go_of_once_written() -> None:
    """Streamed: a piece is packed only when the writer asks for it, nothing packed is held
    after, and the rows' packed size is known at the end as when kept."""
    state = KVStateMachine(CONFIG)
    for i in range(3 * ROWS_PER_PIECE):
        state.apply(Set(f"k{i}", "v" * 100), 1_000 + i)
    kept = SnapshotImage(5, state.snapshot_image(), [(1, CONFIG)], 2_000, DurableState())
    streamed = SnapshotImage(
        5, state.snapshot_image(), [(1, CONFIG)], 2_000, DurableState(), keep=False
    )
    pieces = streamed.local_pieces()
    head, first = next(pieces), next(pieces)
    assert streamed.servable and streamed._state_parts is None  # nothing packed is kept
    rest = list(pieces)
    assert b"".join([head, first, *rest]) == b"".join(kept.local_pieces())
    assert len(rest) > 3  # the rows came in several pieces
    assert not streamed.servable and streamed._state is None  # let go of: rows, image
    assert streamed.rows_bytes == kept.rows_bytes > 3 * ROWS_PER_PIECE * 100
    assert kept.servable and kept.transfer_size() > 0  # kept: served to peers after
    with pytest.raises(RuntimeError, match="released"):
        streamed.transfer_chunk(0, 10)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param([3, 1, 5, [], 0, [0, ""], [], []], id="a later layout"),
        pytest.param([2, 2, 5, [], 0, [0, ""], [], []], id="a later snapshot version"),
    ],
)
def test_a_local_snapshot_of_another_layout_or_version_is_refused_not_misread(
    head: list[object],
) -> None:
    state = msgpack.packb(0)
    blob = msgpack.packb(msgpack.packb(head), use_bin_type=True) + state
    with pytest.raises(ValueError, match="layout"):
        decode_local_snapshot(blob)


def test_a_local_snapshot_whose_head_runs_past_its_end_is_refused() -> None:
    head = msgpack.packb([2, 1, 5, [], 0, [0, ""], [], []])
    blob = b"\xc6" + (len(head) + 10).to_bytes(4, "big") + head
    with pytest.raises(ValueError, match="past its end"):
        decode_local_snapshot(blob)
