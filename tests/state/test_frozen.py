"""The internal value classes that replaced frozen dataclasses behave as those dataclasses did,
and the public ones are still dataclasses.

``Frozen`` (compiled with the core) and ``PlainFrozen`` (for interpreted modules) each stand
beside a frozen, slotted dataclass of the same fields: equality, hash, repr, class patterns,
frozenness, pickling and copying must agree. The classes an application is given or builds
(``paxoskv.Config``, ``Set``, ``KeyValue``, ...) stay dataclasses: ``dataclasses.fields``,
``replace`` and ``asdict`` are theirs to call.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.effects import Persist
from paxoskv.paxos.messages import Accept, Promise, PromiseEntry
from paxoskv.state.commands import LeaseGrant, NoOp, RemoveMember
from paxoskv.state.results import LeaseGranted
from tests.state.typecheck import refused_lines


@dataclass(frozen=True, slots=True)
class _LeaseGrant:
    ttl_ms: int
    lease_id: int | None = None


@dataclass(frozen=True, slots=True)
class _LeaseGranted:
    revision: int
    lease_id: int
    ttl_ms: int


def _as_dataclass_would(ours: object, theirs: object) -> None:
    """Same repr but for the class name, same hash, same field tuple order."""
    assert repr(ours).partition("(")[2] == repr(theirs).partition("(")[2]
    assert hash(ours) == hash(theirs)
    assert type(ours).__match_args__ == type(theirs).__match_args__  # type: ignore[attr-defined]


def test_an_interpreted_modules_class_matches_the_dataclass_it_replaced() -> None:
    _as_dataclass_would(LeaseGrant(10), _LeaseGrant(10))
    _as_dataclass_would(LeaseGrant(10, 7), _LeaseGrant(10, 7))
    assert repr(LeaseGrant(10)) == "LeaseGrant(ttl_ms=10, lease_id=None)"
    assert LeaseGrant(ttl_ms=10) == LeaseGrant(10, None)
    assert LeaseGrant(10) != LeaseGrant(11) and LeaseGrant(10) != _LeaseGrant(10)
    assert NoOp() == NoOp() and hash(NoOp()) == hash(()) and repr(NoOp()) == "NoOp()"


def test_a_compiled_modules_class_matches_the_dataclass_it_replaced() -> None:
    _as_dataclass_would(LeaseGranted(5, 7, 1000), _LeaseGranted(5, 7, 1000))
    assert LeaseGranted(5, 7, 1000) == LeaseGranted(5, 7, 1000)
    assert LeaseGranted(5, 7, 1000) != LeaseGranted(6, 7, 1000)
    assert LeaseGranted(5, 7, 1000) != _LeaseGranted(5, 7, 1000)
    ballot = Ballot(1, "a")
    accept = Accept(ballot, 3, b"v", 2)
    assert repr(accept) == (
        "Accept(ballot=Ballot(round=1, node_id='a'), slot=3, value=b'v', commit_upto=2)"
    )
    assert {accept: 1}[Accept(ballot, 3, b"v", 2)] == 1


@pytest.mark.parametrize(
    "value",
    [
        LeaseGrant(10, 3),
        RemoveMember("n2"),
        LeaseGranted(5, 7, 1000),
        Promise(Ballot(1, "a"), 1, (PromiseEntry(1, Ballot(1, "a"), b"x", True),), 2, False),
        Persist((), 3),
    ],
)
def test_frozen_pickled_and_copied_as_before(value: Any) -> None:
    name = type(value).__match_args__[0]
    with pytest.raises(FrozenInstanceError):
        setattr(value, name, 1)
    with pytest.raises(FrozenInstanceError):
        delattr(value, name)
    for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert again == value and type(again) is type(value)


def test_class_patterns_take_the_fields_in_order() -> None:
    match LeaseGranted(5, 7, 1000):
        case LeaseGranted(revision, lease_id, ttl_ms):
            assert (revision, lease_id, ttl_ms) == (5, 7, 1000)
        case _:
            pytest.fail("no match")
    match LeaseGrant(10, 3):
        case LeaseGrant(ttl_ms, lease_id):
            assert (ttl_ms, lease_id) == (10, 3)
        case _:
            pytest.fail("no match")


def test_checks_run_when_built_as_the_dataclasss_post_init_did() -> None:
    from paxoskv.errors import InvalidCommand

    with pytest.raises(InvalidCommand):
        LeaseGrant(10, lease_id=0)
    with pytest.raises(InvalidCommand):
        RemoveMember("")


@dataclass(slots=True)
class _Lease:
    ttl_ms: int
    expires_at_ms: int
    keys: dict[Any, None] = field(default_factory=dict)


def test_a_mutable_record_matches_the_dataclass_it_replaced() -> None:
    from paxoskv.paxos.records import DurableState
    from paxoskv.state.leases import Lease

    lease = Lease(10, 20)
    assert repr(lease) == "Lease(ttl_ms=10, expires_at_ms=20, keys={})"
    assert repr(lease).partition("(")[2] == repr(_Lease(10, 20)).partition("(")[2]
    assert lease == Lease(10, 20, {}) and lease != Lease(10, 21) and lease != _Lease(10, 20)
    assert lease.keys is not Lease(10, 20).keys  # a fresh dict each, as default_factory made
    lease.keys["k"] = None
    lease.ttl_ms = 11
    assert lease == Lease(11, 20, {"k": None})
    with pytest.raises(TypeError):
        hash(lease)
    state = DurableState(applied_slot=3)
    assert state == DurableState(applied_slot=3) and state.accepted == {} and state.chosen == {}
    for again in (pickle.loads(pickle.dumps(lease)), copy.deepcopy(lease)):
        assert again == lease and type(again) is Lease


def test_the_public_classes_are_still_frozen_dataclasses() -> None:
    """What ``paxoskv`` exports, and what its methods return, works with ``dataclasses``."""
    import paxoskv
    from paxoskv.state import Configuration, Txn, TxnResult

    public = [
        paxoskv.Config(durability="memory"),
        paxoskv.Member("n1", "voter", "up", 3, True),
        paxoskv.ChangeEvent("put", "k", 1, None, 2),
        paxoskv.Compare("k", "value", "==", 1),
        paxoskv.Delete("k"),
        paxoskv.KeyValue("k", 1, 2, 3, 4, None),
        paxoskv.Set("k", 1),
        Txn([], [paxoskv.Set("k", 1)]),
        TxnResult(5, True, ()),
        Configuration(frozenset({"a"})),
    ]
    for value in public:
        assert dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen  # type: ignore[attr-defined]
        first = dataclasses.fields(value)[0].name
        assert dataclasses.replace(value) == value
        assert dataclasses.asdict(value)[first] == getattr(value, first)
        with pytest.raises(FrozenInstanceError):
            setattr(value, first, None)


def _methods(tree: ast.Module) -> dict[str, set[str]]:
    return {
        node.name: {
            item.name if isinstance(item, ast.FunctionDef) else ast.unparse(item.target)
            for item in node.body
            if isinstance(item, ast.FunctionDef)
            or (isinstance(item, ast.AnnAssign) and "ClassVar" in ast.unparse(item.annotation))
        }
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


def test_the_frozen_modules_stub_names_what_the_module_defines() -> None:
    """``frozen.pyi`` is what type checkers read in place of ``frozen.py`` (it marks ``Frozen``
    with ``dataclass_transform``, which the compiled build cannot take): it must not drift."""
    package = Path(__file__).resolve().parents[2] / "paxoskv" / "state"
    module = _methods(ast.parse((package / "frozen.py").read_text()))
    stub = _methods(ast.parse((package / "frozen.pyi").read_text()))
    assert stub == module


def test_the_type_checker_refuses_an_assignment_to_a_frozen_field() -> None:
    """mypy treats ``Frozen`` and ``PlainFrozen`` subclasses as frozen dataclasses (through
    ``dataclass_transform``), as it did when they were dataclasses; a ``Record``'s fields stay
    assignable."""
    code = (
        "from paxoskv.paxos.messages import Accept\n"
        "from paxoskv.state.commands import LeaseGrant, Set\n"
        "from paxoskv.state.leases import Lease\n"
        "def f(a: Accept, g: LeaseGrant, s: Set, lease: Lease) -> None:\n"
        "    a.slot = 2\n"
        "    g.ttl_ms = 5\n"
        "    s.key = 'k'\n"
        "    lease.ttl_ms = 3\n"
    )
    assert refused_lines(code) == ["5", "6", "7"]
