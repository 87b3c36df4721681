"""What type checkers read in place of ``frozen.py``: the same two classes, and ``Frozen``
marked with ``dataclass_transform`` (PEP 681), so that mypy treats every subclass as the frozen
dataclass it once was and refuses an assignment to a field. The module itself cannot carry the
decorator: a decorated class is a plain Python class to mypyc, which then fails to build its
compiled subclasses (the messages, effects, results). The compiled build names ``frozen.py``
itself, so it compiles the module, not this stub. tests/state/test_frozen.py checks that the two
name the same methods.
"""

from typing import Any, ClassVar, dataclass_transform

class Record:
    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]]
    def _fields(self) -> tuple[Any, ...]: ...
    def __eq__(self, other: object) -> bool: ...
    def __repr__(self) -> str: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

@dataclass_transform(frozen_default=True)
class Frozen(Record):
    __slots__ = ()
    def __hash__(self) -> int: ...
    def __setattr__(self, name: str, value: object) -> None: ...
    def __delattr__(self, name: str) -> None: ...

def reduce_by_fields(value: Any) -> tuple[Any, ...]: ...
