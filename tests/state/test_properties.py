"""Properties of the state machine over generated keys, values, commands and logs.

Runs are derandomized (a fixed seed per test) so a failure reproduces on every run.
"""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxoskv.state import (
    AddLearner,
    Applied,
    Command,
    Compare,
    ConfigChanged,
    Configuration,
    Delete,
    Deleted,
    DemoteVoter,
    Failed,
    KeyValue,
    KVStateMachine,
    LeaseExpire,
    LeaseExpired,
    LeaseGrant,
    LeaseGranted,
    LeaseKeepalive,
    LeaseRenewed,
    LeaseRevoke,
    LeaseRevoked,
    MalformedCommand,
    MalformedResult,
    NoOp,
    PromoteLearner,
    RemoveMember,
    Result,
    Set,
    Txn,
    TxnResult,
    Written,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
)

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies ----------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
key_part = st.one_of(text, st.binary(max_size=8), int64)
keys = st.one_of(
    text.filter(bool),
    st.binary(min_size=1, max_size=12),
    st.lists(key_part, min_size=1, max_size=3).map(tuple),
)
small_keys = st.one_of(
    st.sampled_from(["a", "b", "ab", "c"]),
    st.sampled_from([b"a", b"b"]),
    st.sampled_from([("s", 1), ("s", 2), ("t",)]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    st.floats(allow_nan=False),
    text,
    st.binary(max_size=12),
)
hashable = st.one_of(scalars, st.lists(scalars, max_size=3).map(tuple))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashable, children, max_size=4),
    ),
    max_leaves=12,
)
lease_ids = st.integers(min_value=1, max_value=6)
nodes = st.sampled_from(["a", "b", "c", "d", "e"])


def sets(key_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Set]:
    return st.builds(Set, key_strategy, values, st.none() | lease_ids)


def compares(key_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Compare]:
    revision_compare = st.builds(
        Compare,
        key_strategy,
        st.sampled_from(["version", "create_revision", "mod_revision"]),
        st.sampled_from(["==", "!=", "<", ">"]),
        st.integers(min_value=0, max_value=40),
    )
    value_compare = st.builds(
        Compare, key_strategy, st.just("value"), st.sampled_from(["==", "!=", "<", ">"]), values
    )
    return st.one_of(revision_compare, value_compare)


def branches(key_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Set | Delete, ...]]:
    step = st.one_of(sets(key_strategy), st.builds(Delete, key_strategy))
    return st.lists(step, max_size=3, unique_by=lambda s: s.key).map(tuple)


def commands(key_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Command]:
    return st.one_of(
        sets(key_strategy),
        st.builds(Delete, key_strategy),
        st.builds(
            Txn,
            st.lists(compares(key_strategy), max_size=3).map(tuple),
            branches(key_strategy),
            branches(key_strategy),
        ),
        st.builds(LeaseGrant, st.integers(1, 5000), st.none() | lease_ids),
        st.builds(LeaseKeepalive, lease_ids),
        st.builds(LeaseRevoke, lease_ids),
        st.builds(LeaseExpire, lease_ids),
        st.just(NoOp()),
        st.builds(AddLearner, nodes),
        st.builds(PromoteLearner, nodes),
        st.builds(DemoteVoter, nodes),
        st.builds(RemoveMember, nodes),
    )


key_values = st.builds(
    KeyValue,
    keys,
    values,
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.none() | st.integers(1, 2**63 - 1),
)
revisions = st.integers(0, 2**63)
writes = st.one_of(
    st.builds(Written, revisions, st.none() | key_values),
    st.builds(Deleted, revisions, st.none() | key_values),
)
results = st.one_of(
    st.builds(Applied, revisions),
    writes,
    st.builds(TxnResult, revisions, st.booleans(), st.lists(writes, max_size=3).map(tuple)),
    st.builds(LeaseGranted, revisions, revisions, revisions),
    st.builds(LeaseRenewed, revisions, revisions, revisions, revisions),
    st.builds(LeaseRevoked, revisions, revisions, revisions),
    st.builds(LeaseExpired, revisions, revisions, st.booleans(), revisions),
    st.builds(
        ConfigChanged,
        revisions,
        st.builds(
            Configuration,
            st.frozensets(nodes, min_size=1, max_size=3),
        ),
    ),
    st.builds(Failed, revisions, text, text),
)

# One log entry: (command or raw bytes, log time step, request id or None).
entries = st.tuples(
    st.one_of(commands(small_keys), st.binary(max_size=6)),
    st.integers(min_value=-50, max_value=400),
    st.none() | st.tuples(st.sampled_from(["x", "y"]), st.integers(0, 30)),
)
logs = st.lists(entries, max_size=40)


# --- helpers -------------------------------------------------------------------------------


def fresh() -> KVStateMachine:
    return KVStateMachine(
        Configuration(frozenset({"a", "b"}), frozenset({"c"})),
        history_limit_events=16,
        dedup_window_requests=8,
        dedup_client_idle_ms=1500,
    )


def feed(machine: KVStateMachine, log: list[Any], *, encoded: bool = True) -> list[bytes]:
    """Apply a generated log; return the encoded answers."""
    answers, now_ms = [], 0
    for item, step_ms, request in log:
        now_ms = max(0, now_ms + step_ms)
        client_id, seq = request if request is not None else (None, None)
        if isinstance(item, bytes) or encoded:
            data = item if isinstance(item, bytes) else encode_command(item)
            answers.append(machine.apply_encoded(data, now_ms, client_id=client_id, seq=seq))
        else:
            result = machine.apply(item, now_ms, client_id=client_id, seq=seq)
            answers.append(encode_result(result))
    return answers


def visible(machine: KVStateMachine) -> tuple[Any, ...]:
    """Everything a client can read, without the dedup table's bookkeeping."""
    return (
        machine.revision,
        machine.range(""),
        machine.range(b""),
        machine.range(()),
        [machine.lease_info(i) for i in machine.due_leases(2**62)],
        machine.configuration,
        machine.events_since(machine.history_floor_revision),
    )


# --- round trips and fuzzing ---------------------------------------------------------------


def _assert_reencodes(encoded: bytes) -> None:
    """What decoded once decodes again to the same bytes (compared as bytes: NaN != NaN)."""
    assert encode_command(decode_command(encoded)) == encoded


@PROPERTY
@given(commands(keys))
def test_every_command_round_trips_with_its_types(command: Command) -> None:
    encoded = encode_command(command)
    decoded = decode_command(encoded)
    assert decoded == command
    # The bytes tell apart what == does not: True from 1, 1 from 1.0.
    assert encode_command(decoded) == encoded


@PROPERTY
@given(results)
def test_every_result_round_trips_with_its_types(result: Result) -> None:
    encoded = encode_result(result)
    decoded = decode_result(encoded)
    assert decoded == result
    assert encode_result(decoded) == encoded


@PROPERTY
@given(st.binary(max_size=64))
def test_random_bytes_decode_to_a_command_or_raise_malformed_command(data: bytes) -> None:
    try:
        command = decode_command(data)
    except MalformedCommand:
        return
    _assert_reencodes(encode_command(command))


msgpack_objects = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 14), text, st.binary(max_size=4)),
    lambda children: st.lists(children, max_size=5),
    max_leaves=15,
)


@PROPERTY
@given(msgpack_objects)
def test_random_msgpack_arrays_decode_to_a_command_or_raise_malformed_command(raw: Any) -> None:
    try:
        command = decode_command(msgpack.packb(raw))
    except MalformedCommand:
        return
    _assert_reencodes(encode_command(command))


@PROPERTY
@given(commands(keys), st.data())
def test_a_damaged_command_decodes_or_raises_malformed_command(
    command: Command, data: st.DataObject
) -> None:
    encoded = bytearray(encode_command(command))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for damaged in (bytes(encoded), bytes(encoded[:cut])):
        try:
            decoded = decode_command(damaged)
        except MalformedCommand:
            continue
        _assert_reencodes(encode_command(decoded))


@PROPERTY
@given(st.one_of(st.binary(max_size=64), msgpack_objects.map(msgpack.packb)))
def test_random_bytes_decode_to_a_result_or_raise_malformed_result(data: bytes) -> None:
    try:
        result = decode_result(data)
    except MalformedResult:
        return
    encoded = encode_result(result)
    assert encode_result(decode_result(encoded)) == encoded


# --- determinism ---------------------------------------------------------------------------


@PROPERTY
@given(logs)
def test_replicas_fed_the_same_log_agree_at_every_step_by_either_entry_point(
    log: list[Any],
) -> None:
    by_bytes, by_objects = fresh(), fresh()
    for entry in log:
        assert feed(by_bytes, [entry]) == feed(by_objects, [entry], encoded=False)
        assert by_bytes.digest() == by_objects.digest()
        assert by_bytes.revision == by_objects.revision


@PROPERTY
@given(logs, st.data())
def test_snapshot_restore_and_continue_equals_never_snapshotting(
    log: list[Any], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(log)))
    straight, interrupted = fresh(), fresh()
    answers = feed(straight, log)
    first = feed(interrupted, log[:split])
    interrupted = KVStateMachine.restore(interrupted.snapshot())
    # feed() starts its clock at zero: carry the log time on into the rest of the log.
    rest = list(log[split:])
    if rest:
        item, step_ms, request = rest[0]
        rest[0] = (item, _log_time_after(log[:split]) + step_ms, request)
    assert first + feed(interrupted, rest) == answers
    assert interrupted.digest() == straight.digest()
    assert visible(interrupted) == visible(straight)


def _log_time_after(log: list[Any]) -> int:
    now_ms = 0
    for _, step_ms, _ in log:
        now_ms = max(0, now_ms + step_ms)
    return now_ms


@PROPERTY
@given(logs)
def test_every_command_but_a_duplicate_takes_exactly_one_revision(log: list[Any]) -> None:
    m = fresh()
    for entry in log:
        before = m.revision
        answer = feed(m, [entry])[0]
        request = entry[2]
        duplicate = request is not None and decode_result(answer).revision <= before
        assert m.revision == before + (0 if duplicate else 1)


# --- dedup ---------------------------------------------------------------------------------


requests = st.lists(
    st.tuples(commands(small_keys), st.integers(0, 200), st.sampled_from(["x", "y", "z"])),
    max_size=30,
)


def numbered(log: list[Any]) -> list[Any]:
    """Give each request the next seq of its client, so all are distinct."""
    seqs: dict[str, int] = {}
    out = []
    for command, step_ms, client_id in log:
        seqs[client_id] = seqs.get(client_id, 0) + 1
        out.append((command, step_ms, (client_id, seqs[client_id])))
    return out


@PROPERTY
@given(requests, st.data())
def test_replaying_any_prefix_of_requests_changes_nothing(
    raw: list[Any], data: st.DataObject
) -> None:
    log = numbered(raw)
    m = KVStateMachine(Configuration(frozenset({"a"})))
    answers = feed(m, log)
    before = visible(m)
    prefix = data.draw(st.integers(0, len(log)))
    replay = [(NoOp(), 0, request) for _, _, request in log[:prefix]]  # the ids are what count
    assert feed(m, replay) == answers[:prefix]
    assert visible(m) == before


@PROPERTY
@given(requests, st.data())
def test_a_log_with_immediate_duplicates_ends_in_the_same_state_as_one_without(
    raw: list[Any], data: st.DataObject
) -> None:
    log = numbered(raw)
    doubled = []
    for entry in log:
        doubled.append(entry)
        if data.draw(st.booleans()):
            doubled.append((entry[0], 0, entry[2]))
    once, twice = fresh(), fresh()
    feed(once, log)
    feed(twice, doubled)
    assert twice.digest() == once.digest()
