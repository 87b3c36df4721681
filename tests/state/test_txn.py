"""Transactions, etcd style: compare, then one branch or the other, all at one revision."""

from __future__ import annotations

from typing import Any

import pytest

from paxoskv.state import (
    Compare,
    Configuration,
    Delete,
    Deleted,
    Failed,
    KeyValue,
    KVStateMachine,
    LeaseGrant,
    Set,
    Txn,
    TxnResult,
    Written,
)


def with_key(value: Any = "v") -> KVStateMachine:
    """A machine holding k = value at create revision 1, mod revision 2, version 2."""
    m = KVStateMachine(Configuration(frozenset({"a"})))
    m.apply(Set("k", "first"), 0)
    m.apply(Set("k", value), 0)
    return m


@pytest.mark.parametrize(
    ("compare", "holds"),
    [
        (Compare("k", "value", "==", "v"), True),
        (Compare("k", "value", "!=", "v"), False),
        (Compare("k", "value", "<", "w"), True),
        (Compare("k", "value", ">", "w"), False),
        (Compare("k", "value", "<", 5), False),  # str and int do not order: does not hold
        (Compare("k", "value", ">", 5), False),
        (Compare("k", "version", "==", 2), True),
        (Compare("k", "version", ">", 1), True),
        (Compare("k", "create_revision", "==", 1), True),
        (Compare("k", "mod_revision", "==", 2), True),
        (Compare("k", "mod_revision", "<", 2), False),
        (Compare("missing", "version", "==", 0), True),
        (Compare("missing", "create_revision", "==", 0), True),
        (Compare("missing", "mod_revision", "<", 1), True),
        (Compare("missing", "value", "==", None), True),
        (Compare("missing", "value", "!=", "v"), True),
    ],
)
def test_each_compare_target_and_op(compare: Compare, holds: bool) -> None:
    m = with_key()
    result = m.apply(Txn((compare,), (Set("out", "then"),), (Set("out", "else"),)), 0)
    assert isinstance(result, TxnResult)
    assert result.succeeded is holds
    assert m.get("out").value == ("then" if holds else "else")  # type: ignore[union-attr]


def test_all_compares_must_hold() -> None:
    m = with_key()
    compares = (Compare("k", "version", "==", 2), Compare("k", "value", "==", "other"))
    result = m.apply(Txn(compares, (Delete("k"),)), 0)
    assert result == TxnResult(3, False, ())
    assert m.get("k") is not None


def test_a_compare_and_set_on_mod_revision_writes_at_one_revision_for_all_steps() -> None:
    m = with_key()
    txn = Txn(
        (Compare("k", "mod_revision", "==", 2),),
        (Set("k", "new"), Set("other", 1), Delete("k2")),
    )
    result = m.apply(txn, 0)
    assert result == TxnResult(
        3,
        True,
        (
            Written(3, KeyValue("k", "v", 1, 2, 2, None)),
            Written(3, None),
            Deleted(3, None),
        ),
    )
    assert m.get("k") == KeyValue("k", "new", 1, 3, 3, None)
    assert m.get("other") == KeyValue("other", 1, 3, 3, 1, None)
    assert [e.revision for e in m.events_since(2)] == [3, 3]


def test_an_empty_compare_list_always_takes_the_success_branch() -> None:
    m = with_key()
    assert m.apply(Txn((), (Delete("k"),), (Set("k", "x"),)), 0).succeeded  # type: ignore[union-attr]
    assert m.get("k") is None


def test_a_failed_compare_with_no_failure_branch_changes_nothing_but_the_revision() -> None:
    m = with_key()
    before = m.get("k")
    assert m.apply(Txn((Compare("k", "version", "==", 99),), (Delete("k"),)), 0) == TxnResult(
        3, False, ()
    )
    assert m.get("k") == before
    assert m.revision == 3


def test_a_branch_naming_an_unknown_lease_fails_whole_and_writes_nothing() -> None:
    m = with_key()
    txn = Txn((), (Set("a", 1), Set("b", 2, lease_id=77), Delete("k")))
    result = m.apply(txn, 0)
    assert isinstance(result, Failed) and result.error_code == "lease_not_found"
    assert result.revision == 3
    assert m.get("a") is None and m.get("k") is not None
    assert m.events_since(2) == []


def test_only_the_branch_that_runs_needs_its_leases() -> None:
    m = with_key()
    lease = m.apply(LeaseGrant(1000), 0)
    txn = Txn(
        (Compare("k", "value", "==", "v"),),
        (Set("a", 1, lease_id=lease.lease_id),),  # type: ignore[union-attr]
        (Set("b", 1, lease_id=12345),),
    )
    assert m.apply(txn, 0).succeeded  # type: ignore[union-attr]
    assert m.get("a").lease_id == lease.lease_id  # type: ignore[union-attr]


def test_value_compares_use_python_equality_on_structured_values() -> None:
    m = with_key({"cart": [1, 2]})
    assert m.apply(Txn((Compare("k", "value", "==", {"cart": [1, 2]}),), ()), 0).succeeded  # type: ignore[union-attr]
    assert not m.apply(Txn((Compare("k", "value", "<", {"cart": [1]}),), ()), 0).succeeded  # type: ignore[union-attr]
