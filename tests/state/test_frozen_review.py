"""Reproducers from the review of branch ``imports2`` (internal dataclasses made Frozen/Record).

Each test states what main did; on imports2 they fail (see the report of ``rev-imports2``).
"""

from __future__ import annotations

import dataclasses
import json

import paxoskv
from paxoskv.state import Configuration, KVStateMachine, Txn, TxnResult
from tests.state.typecheck import refused_lines


def test_asdict_of_a_txn_result_still_turns_its_responses_into_dicts() -> None:
    """``TxnResult`` (what ``txn()`` returns, README) stays a dataclass, but its ``responses``
    are ``Written``/``Deleted``, no longer dataclasses: ``dataclasses.asdict`` copies them as
    objects (pure build; the result no longer goes to JSON) or raises FrozenInstanceError
    (compiled build: deep-copying a response deep-copies its compiled ``KeyValue``). On main
    it gave nested dicts in both builds."""
    machine = KVStateMachine(Configuration(frozenset({"a"})))
    machine.apply(paxoskv.Set("k", 1), 1)
    result = machine.apply(Txn([], [paxoskv.Set("k", 2), paxoskv.Delete("j")]), 2)
    assert isinstance(result, TxnResult)
    flat = dataclasses.asdict(result)
    assert flat["responses"] == (
        {"revision": 2, "prev": dataclasses.asdict(paxoskv.KeyValue("k", 1, 1, 1, 1, None))},
        {"revision": 2, "prev": None},
    )
    json.dumps(flat)


def test_the_type_checker_still_checks_a_records_slots() -> None:
    """A ``@dataclass(slots=True)`` (and a ``PlainRecord`` subclass) had mypy refuse an
    assignment to an attribute outside ``__slots__`` (an AttributeError at run time); a
    ``Record`` subclass does not get that check, because ``frozen.pyi`` declares no
    ``__slots__`` for ``Record`` (nor for ``Frozen``), and the stub test compares only method
    names."""
    code = (
        "from paxoskv.state.frozen import Record\n"
        "from paxoskv.state.frozen_plain import PlainRecord\n"
        "class R(Record):\n"
        "    __slots__ = ('a',)\n"
        "    def __init__(self, a: int) -> None:\n"
        "        self.a = a\n"
        "    def bump(self) -> None:\n"
        "        self.b = 1\n"
        "class P(PlainRecord):\n"
        "    __slots__ = ('a',)\n"
        "    def __init__(self, a: int) -> None:\n"
        "        self.a = a\n"
        "    def bump(self) -> None:\n"
        "        self.b = 1\n"
    )
    assert refused_lines(code) == ["14", "8"]
