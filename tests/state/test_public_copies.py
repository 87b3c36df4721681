"""What an application is given pickles and copies, in the compiled build as in the pure one.

An application caches the entries it reads, hands watch events to another process, or deep-copies
a transaction's result. Compiled by mypyc, a frozen dataclass pickled and copied by setting its
fields one at a time, which its own frozenness refused (FrozenInstanceError): ``KeyValue``,
``Written``, ``Deleted``, ``TxnResult`` and ``ChangeEvent`` failed, in the compiled build only.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import paxoskv
from paxoskv.state import Configuration, Txn
from paxoskv.state.results import Deleted, TxnResult, Written

ENTRY = paxoskv.KeyValue("k", {"a": [1, 2]}, 3, 5, 2, None)
GIVEN: list[Any] = [
    ENTRY,
    paxoskv.KeyValue("k", "v", 1, 1, 1, 7),
    Written(5, ENTRY),
    Written(6, None),
    Deleted(7, ENTRY),
    TxnResult(8, True, (Written(8, ENTRY), Deleted(8, None))),
    paxoskv.ChangeEvent("set", "k", "v", None, 9),
    paxoskv.ChangeEvent("delete", "k", None, "v", 10),
    Configuration(voters=frozenset({"a", "b"}), learners=frozenset({"c"})),
    paxoskv.Set("k", "v"),
    paxoskv.Delete("k"),
    paxoskv.Compare("k", "value", "==", "v"),
    Txn((paxoskv.Compare("k", "version", ">", 0),), (paxoskv.Set("k", 1),), ()),
]


@pytest.mark.parametrize("value", GIVEN, ids=lambda value: type(value).__name__)
def test_pickled_copied_and_deep_copied_it_is_equal_and_of_its_class(value: Any) -> None:
    for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert again == value
        assert type(again) is type(value)


def test_a_deep_copy_copies_a_mutable_value_and_a_copy_shares_it() -> None:
    deep = copy.deepcopy(ENTRY)
    assert deep.value == ENTRY.value and deep.value is not ENTRY.value
    assert copy.copy(ENTRY).value is ENTRY.value


def test_every_pickle_protocol_round_trips_an_entry() -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(ENTRY, protocol)) == ENTRY
