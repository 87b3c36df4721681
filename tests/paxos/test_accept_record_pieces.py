"""The engine's accept record in pieces: (everything before the value, the value).

The slot's value goes to the journal as the object the accept carried, not copied into a
record of its own; joined, the pieces are exactly the record the packer makes.
"""

from __future__ import annotations

import random

import msgpack
import pytest

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.effects import Persist
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import (
    ACCEPTED,
    DurableState,
    accepted_record,
    accepted_record_parts,
)
from paxoskv.state import Configuration

CONFIG = Configuration(frozenset({"a", "b", "c"}))


def _joined(record: bytes | tuple[bytes, ...]) -> bytes:
    return record if isinstance(record, bytes) else b"".join(record)


@pytest.mark.parametrize("value", [b"", b"v", b"v" * 300, b"v" * 70_000])
def test_an_accept_record_in_pieces_is_the_record(value: bytes) -> None:
    ballot = Ballot(7, "node-a")
    parts = accepted_record_parts(12, ballot, value)
    assert isinstance(parts, tuple) and parts[-1] is value  # the value itself, not a copy
    assert _joined(parts) == accepted_record(12, ballot, value)
    assert _joined(parts) == msgpack.packb([ACCEPTED, 12, 7, "node-a", value], use_bin_type=True)
    state = DurableState()
    state.replay(_joined(parts))
    assert state.accepted == {12: (ballot, value)}


def test_the_engine_persists_an_accept_as_head_and_value() -> None:
    engine = Engine(EngineSettings(node_id="b"), random.Random(1), CONFIG)
    value = b"w" * 2000
    effects = engine.receive("a", m.Accept(Ballot(1, "a"), 1, value, 0), now=0.0)
    (persist,) = [e for e in effects if isinstance(e, Persist)]
    (record,) = persist.records
    assert isinstance(record, tuple) and record[-1] is value
    assert _joined(record) == accepted_record(1, Ballot(1, "a"), value)


def test_a_field_past_the_fast_form_gives_the_packers_record_in_one_piece() -> None:
    ballot = Ballot(2**64, "n")  # a round no uint64 holds: the packer's refusal, as before
    with pytest.raises(OverflowError):
        accepted_record_parts(1, ballot, b"v")
    ballot = Ballot(-1, "n")  # a negative round: not the hand-written form, still packable
    parts = accepted_record_parts(1, ballot, b"v")
    assert parts == msgpack.packb([ACCEPTED, 1, -1, "n", b"v"], use_bin_type=True)
