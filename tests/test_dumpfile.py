"""The dump file (``paxoskv.dumpfile``) and how a load cuts it into requests (``backup``).

A dump is the last copy of a lost cluster's data, so a damaged one must never load in part:
every cut of a good file, at every byte, is refused whole, and every value comes back with
its type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.backup import _batches
from paxoskv.client import MAX_COMMAND_BYTES
from paxoskv.dumpfile import DumpEntry, DumpHeader, read_dump, write_dump
from paxoskv.errors import InvalidArgument, InvalidKey
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.records import DurableState
from paxoskv.runtime.offline import accepted_tail
from paxoskv.state.command_wire import encode_command
from paxoskv.state.commands import Set, Txn
from paxoskv.state.keys import check_key

ENTRIES = [
    DumpEntry("a", "1"),
    DumpEntry(b"\x00b", b"\xff", 7),
    DumpEntry(("s", 1), {"t": (1, (2, 3)), "l": [None, 1.5, -(2**63)]}, 7),
    DumpEntry("d", {b"map key": True}),
]


def _is_key(key: object) -> bool:
    try:
        check_key(key)
    except InvalidKey:
        return False
    return True


keys = st.one_of(
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.one_of(st.text(max_size=4), st.integers(0, 9)), max_size=3).map(tuple),
).filter(_is_key)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(), st.binary()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=8,
)


def _read(data: bytes) -> tuple[DumpHeader, list[DumpEntry]]:
    return read_dump(data, "the dump")


def _written(tmp_path: Path, entries: list[DumpEntry], header: DumpHeader | None = None) -> bytes:
    path = tmp_path / "x.dump"
    header = header or DumpHeader("test", 42, "pre", {7: 5_000})
    assert write_dump(path, header, entries) == len(entries)
    return path.read_bytes()


def test_a_dump_reads_back_as_written(tmp_path: Path) -> None:
    header, entries = _read(_written(tmp_path, ENTRIES))
    assert header == DumpHeader("test", 42, "pre", {7: 5_000})
    assert entries == ENTRIES
    assert type(entries[2].key) is tuple and type(entries[2].value["t"]) is tuple


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(keys, values), max_size=5))
def test_any_key_and_value_come_back_with_their_types(
    tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[Any, Any]]
) -> None:
    entries = [DumpEntry(key, value) for key, value in pairs]
    _, read = _read(_written(tmp_path_factory.mktemp("prop"), entries))
    assert [(e.key, e.value) for e in read] == pairs
    assert [repr(e.value) for e in read] == [repr(v) for _, v in pairs]  # tuple vs list, etc.


def test_every_cut_of_a_dump_is_refused_whole(tmp_path: Path) -> None:
    """At an entry's boundary as much as inside one: the trailer is what says it is whole."""
    good = _written(tmp_path, ENTRIES)
    for length in range(len(good)):
        with pytest.raises(InvalidArgument, match=r"cut short|damaged|not a paxos-kv dump"):
            _read(good[:length])


def test_a_trailer_that_miscounts_or_bytes_after_it_are_refused(tmp_path: Path) -> None:
    good = _written(tmp_path, ENTRIES)
    with pytest.raises(InvalidArgument, match="bytes after its end"):
        _read(good + b"\xc0")
    one_fewer = _written(tmp_path, ENTRIES[:-1])
    trailer_at = one_fewer.rindex(b"\x82\xa3end")
    with pytest.raises(InvalidArgument, match="says it holds 3 keys but holds 4"):
        _read(good[: good.rindex(b"\x82\xa3end")] + one_fewer[trailer_at:])


def test_any_byte_changed_fails_the_checksum_not_just_the_structure(tmp_path: Path) -> None:
    """A byte flipped inside a value still unpacks: it loaded, changed (review, twenty-ninth
    session). Every byte of this dump, flipped, is refused."""
    good = _written(tmp_path, ENTRIES)
    for at in range(len(good)):
        damaged = bytearray(good)
        damaged[at] ^= 0x01
        with pytest.raises(InvalidArgument):
            _read(bytes(damaged))


def test_another_format_version_is_refused_by_name(tmp_path: Path) -> None:
    good = _written(tmp_path, [])
    assert good[0:1] == b"\x93"  # [format, version, details]
    newer = good.replace(b"\xadpaxos-kv dump\x01", b"\xadpaxos-kv dump\x02", 1)
    with pytest.raises(InvalidArgument, match="format 2, which this release does not read"):
        _read(newer)


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path: Path) -> None:
    def broken() -> Any:
        yield DumpEntry("a", 1)
        raise RuntimeError("the source failed halfway")

    with pytest.raises(RuntimeError):
        write_dump(tmp_path / "x.dump", DumpHeader("test", 1), broken())
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 46_000), min_size=1, max_size=40))
def test_a_load_cuts_the_keys_into_requests_that_fit_keeping_every_one(sizes: list[int]) -> None:
    steps = [Set(f"k{i}", "v" * size, None if i % 3 else 5) for i, size in enumerate(sizes)]
    batches = list(_batches(steps))
    assert [step for batch in batches for step in batch] == steps
    for batch in batches:
        if len(batch) > 1:
            assert len(encode_command(Txn((), tuple(batch)))) <= MAX_COMMAND_BYTES


def test_a_survivors_accepted_tail_runs_in_slot_order_up_to_the_first_gap() -> None:
    durable = DurableState(promised=Ballot(2, "a"), applied_slot=4)
    durable.chosen = {5: b"c5", 7: b"c7"}
    durable.accepted = {3: (Ballot(1, "a"), b"old"), 6: (Ballot(2, "a"), b"a6")}
    durable.accepted.update({8: (Ballot(2, "a"), b"a8"), 10: (Ballot(2, "a"), b"a10")})
    assert accepted_tail(durable) == {6: b"a6", 8: b"a8"}  # nothing for 9, so not 10


def test_a_survivor_that_campaigned_after_its_leader_died_keeps_its_tail() -> None:
    """It promised its own ballot, at which nothing was accepted: the tail is its last
    leader's all the same (second review: the tail was always empty then)."""
    durable = DurableState(promised=Ballot(9, "s"), applied_slot=2)
    durable.accepted = {3: (Ballot(3, "n5"), b"a3"), 4: (Ballot(3, "n5"), b"a4")}
    assert accepted_tail(durable) == {3: b"a3", 4: b"a4"}


def test_a_value_accepted_under_an_older_leader_ends_the_tail() -> None:
    """The review's case: the survivor accepted slot 3 from an old leader, missed the new
    leader's value there, and accepted 4 and 5 from it, acknowledged compare-and-sets that
    hold only after the new leader's slot 3. Taking the old slot 3 undid both."""
    durable = DurableState(promised=Ballot(3, "n5"), applied_slot=2)
    durable.accepted = {3: (Ballot(1, "n4"), b"phantom")}
    durable.accepted.update({4: (Ballot(3, "n5"), b"cas"), 5: (Ballot(3, "n5"), b"cas")})
    assert accepted_tail(durable) == {}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_at_all_are_read_or_refused_by_name(data: bytes) -> None:
    try:
        _read(data)
    except InvalidArgument as error:
        assert "the dump" in str(error)
