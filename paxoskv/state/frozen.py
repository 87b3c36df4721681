"""Immutable value classes without the ``dataclass`` machinery at import.

The internal messages, effects, results, commands, records and settings were frozen, slotted
dataclasses. The standard
library builds a dataclass's methods from source (an ``exec`` per method) and, for a slotted
one, the class a second time; the compiled build (mypyc) calls it on each of its native classes
too. For the 80 dataclasses a node imported that was some 30 ms of a node's 80 ms of imports,
paid at every start before a restarted node can serve. A subclass of :class:`Frozen` says its
fields once, in ``__match_args__`` (which class patterns read, as the dataclass set it), keeps
them in ``__slots__`` and sets them in its own ``__init__`` with ``object.__setattr__``; this
base gives what the dataclass generated from the fields, the same way: equality (same class,
fields equal), a hash of the fields' tuple, ``Name(field=value, ...)`` for ``repr``,
:class:`dataclasses.FrozenInstanceError` on assignment or deletion, and a ``__reduce__`` that
rebuilds the object from its fields (the dataclass's ``__getstate__``/``__setstate__`` did the
same for pickle and copy).

:class:`Record` is the same for a mutable class (what ``@dataclass(slots=True)`` gave:
equality and ``repr``, no hash); its ``__init__`` assigns the fields, a default factory's field
taking None for "make a fresh one".

This module is compiled with the core; ``PlainFrozen`` and ``PlainRecord``
(:mod:`paxoskv.state.frozen_plain`) are the same bases for the classes of interpreted modules
(a compiled class with a ``__setattr__`` of its own cannot have interpreted subclasses). Keep
the two modules alike.

The classes an application is given or builds (``paxoskv.Config``, ``Set``, ``KeyValue``,
``ChangeEvent``, ``Member``, ...) stay dataclasses: ``dataclasses.fields``, ``replace`` and
``asdict`` are part of what they offer (tests/runtime/test_startup_imports.py lists them).

Type checkers read ``frozen.pyi`` in place of this module: there ``Frozen`` carries
``typing.dataclass_transform(frozen_default=True)``, so mypy treats each subclass as a frozen
dataclass and refuses an assignment to a field, as it did for the dataclasses. (It would also
let ``dataclasses.replace`` through, which fails on these at run time; their tests catch it.)
The decorator cannot be here: mypyc builds a decorated class as a plain Python class and then
fails to build its compiled subclasses.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from typing import Any, ClassVar


class Record:
    """The base of a mutable value class: what ``@dataclass(slots=True)`` generated, equality
    and ``repr`` from the fields in ``__match_args__`` (so no hash: unhashable, as such a
    dataclass was), and a ``__reduce__`` that rebuilds the object from its fields."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, Record)
            return self._fields() == other._fields()
        return NotImplemented

    def __repr__(self) -> str:
        shown = ", ".join([f"{name}={getattr(self, name)!r}" for name in self.__match_args__])
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._fields())


class Frozen(Record):
    """The base of an immutable value class; see the module docstring. Equality, ``repr``
    and pickling are :class:`Record`'s; what it adds is a hash and refusing assignments."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


def reduce_by_fields(value: Any) -> tuple[Any, ...]:
    """``__reduce__`` of a subclass of a public frozen dataclass (``KeyValue``,
    ``ChangeEvent``...): its own class and every field, its own too, as a plain dataclass
    pickles it. The public classes rebuild themselves from an explicit tuple, which is faster;
    this is for an application's subclass (pure build only: the compiled one allows none)."""
    return (type(value), tuple([getattr(value, f.name) for f in fields(value)]))
