"""The linearizability checker: known verdicts, partitions, budgets, files, CLI, properties.

Known-bad histories prove the checker can say no; histories built from real sequential
executions prove it says yes when it must; a brute-force oracle over tiny histories checks the
memoised search against the definition itself.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import subprocess
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.errors import InvalidKey, PaxosKVError, ValueNotSerialisable
from simulations.kv_history import decode_operation, encode_operation, freeze, thaw
from simulations.kv_model import KV_MODEL
from simulations.linearizability import (
    ABSENT,
    CheckResult,
    HistoryFormatError,
    Operation,
    Verdict,
    _with_placed,
    check_history,
    dump_history,
    load_history,
    main,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
Key = Hashable


# --- builders --------------------------------------------------------------------------------


def put(client: int, value: object, call: float, ret: float | None, key: Key = "k") -> Operation:
    return Operation(client, "set", key, value, None, call, ret)


def get(client: int, seen: object, call: float, ret: float | None, key: Key = "k") -> Operation:
    return Operation(client, "get", key, None, seen, call, ret)


def delete(
    client: int, existed: bool | None, call: float, ret: float | None, key: Key = "k"
) -> Operation:
    return Operation(client, "delete", key, None, existed, call, ret)


def cas(
    client: int,
    expect: object,
    new: object,
    swapped: bool | None,
    call: float,
    ret: float | None,
    key: Key = "k",
) -> Operation:
    return Operation(client, "cas", key, {"expect": expect, "new": new}, swapped, call, ret)


def assert_valid_linearization(history: Sequence[Operation], result: CheckResult) -> None:
    """The order the checker returns must itself be a witness: it respects real time,
    covers every operation that returned, and replays on the model with the same answers."""
    assert result.ok, result.explanation()
    for key_result in result.keys:
        order = key_result.order
        required = {
            i for i, op in enumerate(history) if op.key == key_result.key and op.outcome_known
        }
        assert required <= set(order)
        for earlier, later in itertools.pairwise(order):
            end = history[later].return_time
            assert end is None or end >= history[earlier].call_time
        state = KV_MODEL.init()
        for index in order:
            fits, state = KV_MODEL.step(state, history[index])
            assert fits


# --- known verdicts --------------------------------------------------------------------------

NOT_LINEARIZABLE = {
    "stale read after a completed write": [put(1, 1, 0, 1), put(1, 2, 2, 3), get(2, 1, 4, 5)],
    "read absent after a completed write": [put(1, 1, 0, 1), get(2, None, 2, 3)],
    "two readers see two writes in opposite orders": [
        put(1, 1, 0, 100),
        put(2, 2, 0, 100),
        get(3, 1, 10, 11),
        get(3, 2, 20, 21),
        get(4, 2, 12, 13),
        get(4, 1, 22, 23),
    ],
    "cas succeeded on a value that was never current": [
        put(1, 1, 0, 1),
        cas(2, 5, 6, True, 2, 3),
    ],
    "cas failed although its value was current": [put(1, 1, 0, 1), cas(2, 1, 2, False, 2, 3)],
    "read of a value never written": [put(1, 1, 0, 10), put(2, 2, 0, 10), get(3, 7, 5, 6)],
    "delete reports existing on a fresh key": [delete(1, True, 0, 1)],
    "delete reports existing after a completed delete": [
        put(1, 1, 0, 1),
        delete(1, True, 2, 3),
        delete(2, True, 4, 5),
    ],
    "delete reports absent on a present key": [put(1, 1, 0, 1), delete(2, False, 2, 3)],
    "a timed-out write is undone": [put(1, 1, 0, None), get(2, 1, 5, 6), get(2, None, 7, 8)],
    "True is not 1": [put(1, True, 0, 1), get(2, 1, 2, 3)],
    "1 is not 1.0": [put(1, 1, 0, 1), get(2, 1.0, 2, 3)],
    "a read goes back in time under concurrency": [
        put(1, 1, 0, 1),
        put(1, 2, 2, 20),
        get(2, 2, 3, 4),
        get(3, 1, 5, 6),
    ],
}

LINEARIZABLE = {
    "empty": [],
    "a read overlapping a write sees before, a later one after": [
        put(1, 1, 0, 10),
        get(2, None, 1, 2),
        get(2, 1, 3, 4),
    ],
    "reads during two overlapping writes agree on one order": [
        put(1, 1, 0, 100),
        put(2, 2, 0, 100),
        get(3, 2, 10, 11),
        get(4, 2, 12, 13),
        get(3, 1, 20, 21),
        get(4, 1, 22, 23),
    ],
    "a timed-out write takes effect late": [
        put(1, 1, 0, None),
        get(2, None, 5, 6),
        get(2, 1, 100, 101),
    ],
    "a timed-out write never takes effect": [
        put(1, 1, 0, None),
        get(2, None, 5, 6),
        get(2, None, 50, 51),
    ],
    "timed-out cas and delete take effect": [
        put(1, 1, 0, 1),
        cas(1, 1, 2, None, 2, None),
        get(2, 2, 10, 11),
        delete(3, None, 12, None),
        get(2, None, 20, 21),
    ],
    "a timed-out call's recorded answer is ignored": [
        put(1, 1, 0, 1),
        cas(1, 1, 2, False, 2, None),
        get(2, 2, 10, 11),
        delete(3, False, 12, None),
        get(2, None, 20, 21),
    ],
    "cas on absent, cas that fails, delete that cannot tell": [
        cas(1, None, 1, True, 0, 1),
        cas(1, 7, 2, False, 2, 3),
        delete(2, None, 4, 5),
        delete(2, False, 6, 7),
    ],
    "touching intervals overlap": [put(1, 1, 0, 5), get(2, None, 5, 6)],
    "a stored None reads like absent": [put(1, None, 0, 1), get(2, None, 2, 3)],
    "a read that never returned constrains nothing": [put(1, 1, 0, 1), get(2, 99, 2, None)],
    "nan equals itself, nested values compare by content": [
        put(1, math.nan, 0, 1),
        get(2, math.nan, 2, 3),
        put(1, {"a": [1, (2, 3)], 4: b"x"}, 4, 5),
        get(2, {4: b"x", "a": [1, [2, 3]]}, 6, 7),
    ],
}


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_known_non_linearizable_histories_are_rejected(name: str) -> None:
    result = check_history(NOT_LINEARIZABLE[name])
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.failure is not None and result.failure.key == "k"
    assert "key 'k'" in result.explanation()


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_known_linearizable_histories_are_accepted(name: str) -> None:
    history = LINEARIZABLE[name]
    result = check_history(history)
    assert_valid_linearization(history, result)


def test_failure_names_the_prefix_and_the_operation_that_could_not_be_placed() -> None:
    history = NOT_LINEARIZABLE["stale read after a completed write"]
    failure = check_history(history).failure
    assert failure is not None
    assert failure.order == (0, 1)
    assert failure.blocked == 2
    assert failure.unplaced == (2,)
    assert "places 2" in failure.explanation
    assert "#2 client 2 get -> 1 [4, 5]" in failure.explanation
    assert "contradicts value 2" in failure.explanation


def test_an_explanation_keeps_a_monotonic_clocks_microseconds() -> None:
    """Times from ``time.monotonic()`` on a host up for a day read 63875.3 to six digits,
    which made every call of a real-process history look simultaneous (a chaos audit)."""
    op = Operation(2, "get", "k", None, 1, 63875.312345, 63875.312789)
    assert op.summary() == "client 2 get -> 1 [63875.312345, 63875.312789]"


def test_a_timed_out_write_left_out_of_the_order_did_not_take_effect() -> None:
    history = LINEARIZABLE["a timed-out write never takes effect"]
    (key_result,) = check_history(history).keys
    assert 0 not in key_result.order


# --- partitions ------------------------------------------------------------------------------


def test_keys_do_not_constrain_each_other() -> None:
    """One register for all keys would reject this; one per key must accept it."""
    history = [put(1, 1, 0, 1, key="a"), get(2, None, 2, 3, key="b"), get(2, 1, 4, 5, key="a")]
    result = check_history(history)
    assert_valid_linearization(history, result)
    assert [k.key for k in result.keys] == ["a", "b"]


def test_str_bytes_and_tuple_keys_are_distinct_and_the_failing_key_is_named() -> None:
    history = [
        put(1, 1, 0, 1, key="a"),
        get(2, None, 2, 3, key=b"a"),
        get(2, None, 4, 5, key=("a",)),
        put(1, 1, 6, 7, key=("t", 1)),
        get(2, 2, 8, 9, key=("t", 1)),
    ]
    result = check_history(history)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.failure is not None and result.failure.key == ("t", 1)


def test_model_states_are_per_key() -> None:
    assert check_history([get(1, None, 0, 1, key="x")]).keys[0].order == (0,)
    assert KV_MODEL.init() is ABSENT


# --- budgets ---------------------------------------------------------------------------------


def hard_history(key: Key = "hard", writers: int = 16) -> list[Operation]:
    """Many overlapping writes, then an impossible read: refuting it means trying every
    subset of the writes, which no small budget covers."""
    writes = [put(c, c, 0, 100, key=key) for c in range(writers)]
    return [*writes, get(99, "never", 200, 201, key=key)]


def test_step_budget_gives_unknown_instead_of_hanging() -> None:
    result = check_history(hard_history(), max_steps=1000)
    assert result.verdict is Verdict.UNKNOWN
    assert "max_steps=1000" in result.summary


def test_time_budget_gives_unknown_instead_of_hanging() -> None:
    result = check_history(hard_history(), timeout_s=0)
    assert result.verdict is Verdict.UNKNOWN
    assert "timeout_s" in result.summary


def test_a_refuted_key_outweighs_an_undecided_one() -> None:
    history = hard_history() + NOT_LINEARIZABLE["stale read after a completed write"]
    result = check_history(history, max_steps=1000)
    assert [k.verdict for k in result.keys] == [Verdict.UNKNOWN, Verdict.NOT_LINEARIZABLE]
    assert result.verdict is Verdict.NOT_LINEARIZABLE


# --- operations and files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"op": "append"}, HistoryFormatError),
        ({"op": "cas", "input": 3}, HistoryFormatError),
        ({"op": "delete", "output": "yes"}, HistoryFormatError),
        ({"return_time": -1.0}, HistoryFormatError),
        ({"call_time": math.inf}, HistoryFormatError),
        ({"client_id": True}, HistoryFormatError),
        ({"key": ["a"]}, InvalidKey),
        ({"input": object()}, ValueNotSerialisable),
    ],
)
def test_malformed_operations_raise_typed_errors(
    fields: dict[str, object], error: type[Exception]
) -> None:
    base: dict[str, object] = {
        "client_id": 1,
        "op": "set",
        "key": "k",
        "input": 1,
        "output": None,
        "call_time": 0.0,
        "return_time": 1.0,
    }
    with pytest.raises(error) as raised:
        Operation(**{**base, **fields})  # type: ignore[arg-type]
    assert isinstance(raised.value, PaxosKVError)


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.text(max_size=5) | st.binary(max_size=5) | st.tuples(st.text(max_size=3), st.integers())


@settings(max_examples=100, deadline=None)
@given(key=KEYS, value=VALUES, expect=VALUES, returned=st.booleans())
def test_json_lines_round_trip(key: Key, value: object, expect: object, returned: bool) -> None:
    ops = [
        Operation("c1", "set", key, value, None, 0, 1.5),
        Operation(7, "get", key, None, value, 2, 3),
        Operation(
            7, "cas", key, {"expect": expect, "new": value}, True, 4, 5 if returned else None
        ),
        Operation(7, "delete", key, None, None, 6, None),
    ]
    for op in ops:
        back = decode_operation(encode_operation(op))
        assert back.key == op.key and type(back.key) is type(op.key)
        assert (back.frozen_input, back.frozen_output) == (op.frozen_input, op.frozen_output)
        assert (back.client_id, back.op, back.call_time, back.return_time) == (
            op.client_id,
            op.op,
            op.call_time,
            op.return_time,
        )


def test_files_round_trip_and_decide_the_same(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    for histories in (LINEARIZABLE, NOT_LINEARIZABLE):
        for history in histories.values():
            dump_history(history, path)
            loaded = load_history(path)
            assert [encode_operation(op) for op in loaded] == [
                encode_operation(op) for op in history
            ]
            assert check_history(loaded).verdict is check_history(history).verdict


GOOD_LINE = (
    '{"client_id": 1, "op": "get", "key": "k", "input": null, "output": null, '
    '"call_time": 0, "return_time": 1}'
)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON object"),
        ("[1, 2]", "one JSON object"),
        (GOOD_LINE.replace('"input": null, ', ""), "fields missing ['input']; a line has"),
        (GOOD_LINE.replace("{", '{"node": 3, '), "fields unknown ['node']; a line has"),
        (GOOD_LINE.replace('"get"', '"incr"'), "not one of get"),
        (GOOD_LINE.replace('"return_time": 1', '"return_time": NaN'), "NaN is not JSON"),
        (GOOD_LINE.replace('"output": null', '"output": {"a": 1}'), "must be one tag"),
        (GOOD_LINE.replace('"output": null', '"output": {"b64": "!!"}'), "not valid base64"),
        (GOOD_LINE.replace('"key": "k"', '"key": [1]'), "not hashable"),
        (GOOD_LINE.replace('"call_time": 0', '"call_time": 5'), "before call_time"),
    ],
)
def test_bad_lines_are_refused_with_their_line_number(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD_LINE}\n\n{line}\n")
    with pytest.raises(HistoryFormatError) as raised:
        load_history(path)
    assert f"{path} line 3: " in str(raised.value)
    assert message in str(raised.value)


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(HistoryFormatError, match="not UTF-8"):
        load_history(path)


# --- command line ----------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, hard = tmp_path / "good.jsonl", tmp_path / "bad.jsonl", tmp_path / "hard.jsonl"
    dump_history(LINEARIZABLE["a timed-out write takes effect late"], good)
    dump_history(NOT_LINEARIZABLE["stale read after a completed write"], bad)
    dump_history(hard_history(), hard)
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text("{oops\n")
    assert main([str(good)]) == 0
    assert capsys.readouterr().out.startswith("linearizable: 3 operations on 1 key(s)")
    assert main([str(bad)]) == 1
    assert capsys.readouterr().out.startswith("not linearizable: key 'k'")
    assert main([str(hard), "--max-steps", "100"]) == 2
    assert capsys.readouterr().out.startswith("unknown: key 'hard': gave up after max_steps=100")
    assert main([str(garbled)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {garbled} line 1: not a JSON object") and err.count("\n") == 1
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_cli_runs_as_a_module_without_a_traceback(tmp_path: Path) -> None:
    bad, garbled = tmp_path / "bad.jsonl", tmp_path / "garbled.jsonl"
    dump_history(NOT_LINEARIZABLE["read of a value never written"], bad)
    garbled.write_bytes(b"\x00\xff")
    command = [sys.executable, "-m", "simulations.linearizability"]
    verdicts = [
        subprocess.run([*command, str(path)], cwd=REPO_ROOT, capture_output=True, text=True)
        for path in (bad, garbled)
    ]
    assert [v.returncode for v in verdicts] == [1, 2]
    assert "not linearizable: key 'k'" in verdicts[0].stdout
    assert "Traceback" not in verdicts[1].stderr and "error:" in verdicts[1].stderr


# --- properties ------------------------------------------------------------------------------

KINDS = ("get", "set", "delete", "cas")


def run_sequentially(plan: list[tuple[str, Key, int, int]]) -> list[tuple[object, object]]:
    """Execute (kind, key, a, b) steps on a dict: the ground truth the history stretches."""
    store: dict[Key, int] = {}
    answers: list[tuple[object, object]] = []
    for kind, key, a, b in plan:
        if kind == "get":
            answers.append((None, store.get(key)))
        elif kind == "set":
            store[key] = a
            answers.append((a, None))
        elif kind == "delete":
            answers.append((None, store.pop(key, None) is not None))
        else:
            expect = None if b == 0 else b
            swapped = store.get(key) == expect
            if swapped:
                store[key] = a
            answers.append(({"expect": expect, "new": a}, swapped))
    return answers


@st.composite
def executed_histories(draw: st.DrawFn) -> list[Operation]:
    """A real sequential execution whose i-th step happened at time 10*i, each call stretched
    to a random interval around that instant (so intervals overlap at random), some writes
    timed out, and some timed-out writes that never happened at all. Always ends in a read."""
    keys = draw(st.sampled_from([("k",), ("k", b"k", ("k", 1))]))
    step = st.tuples(st.sampled_from(KINDS), st.sampled_from(keys), st.integers(0, 3))
    plan = [(k, key, v, draw(st.integers(0, 3))) for k, key, v in draw(st.lists(step, max_size=20))]
    plan.append(("get", draw(st.sampled_from(keys)), 0, 0))
    history = []
    for position, ((kind, key, _, _), (arg, seen)) in enumerate(
        zip(plan, run_sequentially(plan), strict=True)
    ):
        instant = 10.0 * position
        call = instant - draw(st.integers(0, 35))
        timed_out = kind != "get" and position < len(plan) - 1 and draw(st.integers(0, 5)) == 0
        ret = None if timed_out else instant + draw(st.integers(0, 35))
        history.append(Operation(position % 3, kind, key, arg, seen, call, ret))  # type: ignore[arg-type]
    for _ in range(draw(st.integers(0, 2))):
        key, value = draw(st.sampled_from(keys)), draw(st.integers(0, 3))
        history.append(put(9, value, draw(st.integers(-10, 10 * len(plan))), None, key=key))
    return history


@settings(max_examples=100, deadline=None)
@given(history=executed_histories())
def test_histories_of_real_executions_are_accepted(history: list[Operation]) -> None:
    assert_valid_linearization(history, check_history(history))


@settings(max_examples=100, deadline=None)
@given(history=executed_histories(), data=st.data())
def test_a_read_of_a_value_never_written_is_rejected(
    history: list[Operation], data: st.DataObject
) -> None:
    reads = [i for i, op in enumerate(history) if op.op == "get" and op.outcome_known]
    index = data.draw(st.sampled_from(reads))
    read = history[index]
    history[index] = get(
        read.client_id, "never written", read.call_time, read.return_time, read.key
    )  # type: ignore[arg-type]
    result = check_history(history)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.failure is not None and result.failure.key == read.key


def brute_force_linearizable(history: Sequence[Operation]) -> bool:
    """The definition, searched naively: some order of the operations, each placed after every
    operation that returned before it was called, replays with the answers seen; calls that
    never returned may be left out."""
    for key in {op.key for op in history}:
        ops = [op for op in history if op.key == key]

        @functools.cache
        def placeable(left: frozenset[int], state: Hashable, ops: list[Operation] = ops) -> bool:
            if all(not ops[i].outcome_known for i in left):
                return True
            for i in left:
                blocked = any(
                    (end := ops[j].return_time) is not None and end < ops[i].call_time for j in left
                )
                fits, after = KV_MODEL.step(state, ops[i])
                if not blocked and fits and placeable(left - {i}, after):
                    return True
            return False

        if not placeable(frozenset(range(len(ops))), KV_MODEL.init()):
            return False
    return True


def random_operation(
    kind: str, key: str, a: int, b: int, answer: int, call: int, length: int, lost: bool
) -> Operation:
    """Any operation at all, answers drawn at random: most such histories are wrong."""
    if kind in ("delete", "cas"):
        output: object = (False, True, None)[answer % 3]
    else:
        output = None if answer == 0 else answer
    arg = {"expect": None if b == 0 else b, "new": a} if kind == "cas" else a
    return Operation(0, kind, key, arg, output, call, None if lost else call + length)  # type: ignore[arg-type]


RANDOM_OPS = st.builds(
    random_operation,
    st.sampled_from(KINDS),
    st.sampled_from(["x", "y"]),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 20),
    st.integers(0, 12),
    st.integers(0, 5).map(lambda n: n == 0),
)


@settings(max_examples=250, deadline=None)
@given(history=st.lists(RANDOM_OPS, max_size=7))
def test_the_search_agrees_with_brute_force_on_small_random_histories(
    history: list[Operation],
) -> None:
    expected = brute_force_linearizable(history)
    result = check_history(history)
    assert result.verdict is (Verdict.LINEARIZABLE if expected else Verdict.NOT_LINEARIZABLE)
    if expected:
        assert_valid_linearization(history, result)


# --- size ------------------------------------------------------------------------------------


def concurrent_execution(
    count: int, clients: int, seed: int, timed_out_fraction: float = 0.0
) -> list[Operation]:
    """Clients each issue one call at a time; every call takes effect at a random instant
    inside its interval, and the answers come from running the calls in that order. A
    fraction of the writes then lose their return, as if the client had timed out."""
    rng = random.Random(seed)
    free_at = [0.0] * clients
    timeline = []
    for _ in range(count):
        client = rng.randrange(clients)
        call = free_at[client] + rng.random()
        instant = call + 3 * rng.random()
        free_at[client] = instant + 3 * rng.random()
        kind = rng.choice(("get", "get", "set", "delete", "cas"))
        timeline.append((instant, client, call, free_at[client], kind))
    timeline.sort()
    plan = [(kind, "k", n, rng.choice((0, n - 1, n - 2))) for n, (*_, kind) in enumerate(timeline)]
    answers = run_sequentially(plan)
    lost = random.Random(seed + 1)
    return [
        Operation(client, kind, "k", arg, seen, call, ret)  # type: ignore[arg-type]
        if kind == "get" or lost.random() >= timed_out_fraction
        else Operation(client, kind, "k", arg, seen, call, None)  # type: ignore[arg-type]
        for (_, client, call, ret, kind), (arg, seen) in zip(timeline, answers, strict=True)
    ]


def with_last_read_wrong(history: list[Operation]) -> tuple[list[Operation], int]:
    last_read = max(i for i, op in enumerate(history) if op.op == "get" and op.outcome_known)
    read = history[last_read]
    wrong = get(read.client_id, -1, read.call_time, read.return_time)  # type: ignore[arg-type]
    return [*history[:last_read], wrong, *history[last_read + 1 :]], last_read


def test_a_2000_operation_concurrent_history_is_decided_both_ways() -> None:
    history = concurrent_execution(2000, clients=5, seed=20261122)
    assert_valid_linearization(history, check_history(history, timeout_s=15))
    wrong, last_read = with_last_read_wrong(history)
    result = check_history(wrong, timeout_s=15)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.failure is not None and result.failure.blocked == last_read


def test_timed_out_twins_are_interchangeable() -> None:
    """Each absent read after a write needs one of the timed-out deletes in between. Which
    one does not matter; a search that tried each choice would take 2**20 configurations."""

    def history(deletes: int, pairs: int) -> list[Operation]:
        ops = [delete(c, None, 0, None) for c in range(deletes)]
        for i in range(pairs):
            ops += [put(100, i, 10 * i + 1, 10 * i + 2), get(101, None, 10 * i + 3, 10 * i + 4)]
        return ops

    enough, short = history(20, 20), history(20, 21)
    assert_valid_linearization(enough, check_history(enough, max_steps=20_000))
    assert check_history(short, max_steps=20_000).verdict is Verdict.NOT_LINEARIZABLE


def test_timed_out_writes_that_nothing_observes_cost_little() -> None:
    history = [put(c, c, 0, None) for c in range(16)]
    history += [put(99, 100, 1, 2), get(98, "never", 3, 4)]
    assert check_history(history, max_steps=20_000).verdict is Verdict.NOT_LINEARIZABLE


def test_refuting_a_history_with_timed_out_writes_stays_within_budget() -> None:
    """Subset dominance: a configuration reached again with more timed-out calls used up is
    not explored again (an exact-match memo needs six times the steps here)."""
    history = concurrent_execution(150, clients=5, seed=6, timed_out_fraction=0.1)
    assert sum(not op.outcome_known for op in history) == 12
    assert_valid_linearization(history, check_history(history, max_steps=300_000))
    wrong, _ = with_last_read_wrong(history)
    assert check_history(wrong, max_steps=300_000).verdict is Verdict.NOT_LINEARIZABLE


def test_memo_keys_stay_as_small_as_the_concurrency() -> None:
    """Placed calls are a count plus a window, so 50,000 operations on one key do not make
    every memo key a 50,000-bit integer."""
    base, window = 0, 0
    for rank in range(10_000):
        base, window = _with_placed(base, window, rank)
    assert (base, window) == (10_000, 0)
    base, window = _with_placed(base, window, 10_003)
    base, window = _with_placed(base, window, 10_001)
    assert (base, window) == (10_000, 0b1010)
    assert _with_placed(base, window, 10_000) == (10_002, 0b10)


def test_freeze_is_strict_where_python_equality_is_not() -> None:
    assert len({freeze(True), freeze(1), freeze(1.0), freeze([1]), freeze((1,))}) == 4
    assert freeze(math.nan) == freeze(math.nan)
    assert freeze(-0.0) != freeze(0.0)
    assert thaw(freeze({(1, (2, b"x")): [3, {"a": True}]})) == {(1, (2, b"x")): [3, {"a": True}]}
