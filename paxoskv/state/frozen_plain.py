"""The base of the immutable value classes of interpreted modules (the commands).

:class:`PlainFrozen` is :class:`paxoskv.state.frozen.Frozen` (see there) for modules the
compiled build leaves interpreted (``paxoskv/compiled.py``): a compiled class with a
``__setattr__`` of its own cannot have interpreted subclasses. Keep the two alike. Being
interpreted, it carries ``dataclass_transform`` itself (``frozen.py`` leaves that to its stub),
so mypy treats a ``PlainFrozen`` subclass as a frozen dataclass too.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, ClassVar, dataclass_transform


class PlainRecord:
    """The base of a mutable value class: what ``@dataclass(slots=True)`` generated, equality
    and ``repr`` from the fields in ``__match_args__`` (so no hash: unhashable, as such a
    dataclass was), and a ``__reduce__`` that rebuilds the object from its fields."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, PlainRecord)
            return self._fields() == other._fields()
        return NotImplemented

    def __repr__(self) -> str:
        shown = ", ".join([f"{name}={getattr(self, name)!r}" for name in self.__match_args__])
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._fields())


@dataclass_transform(frozen_default=True)
class PlainFrozen(PlainRecord):
    """The base of an immutable value class; see the module docstring. Equality, ``repr``
    and pickling are :class:`PlainRecord`'s; what it adds is a hash and refusing assignments."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
