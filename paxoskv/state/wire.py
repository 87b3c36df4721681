"""How the state machine's data rides on msgpack, and what counts as bad bytes.

Everything the state machine puts on the wire or on disk (commands, results, snapshots) is one
msgpack object packed in one call, built of compact lists rather than maps of field names: the
engine's throughput target leaves about a microsecond per command, and a map costs a string per
field.

Faithfulness is the rule: what goes in comes out with the same types. msgpack has one array
type, so a tuple and a list would come back alike. Two conventions keep them apart:

* a *key* slot always holds a key, so a tuple key travels as a plain array and the reader, who
  knows the slot is a key, turns the array back into a tuple (this is cheap, and tuple keys
  like ``("session", sid)`` are common);
* a tuple inside a *value* travels as the ext type :data:`TUPLE_EXT_CODE` (rare, so its extra
  cost does not matter). Lists stay arrays.

Packing is strict about types (``strict_types``): a ``str`` subclass or an ``IntEnum`` would
come back as its base type, so it is refused rather than silently changed.

Bad bytes from a peer or the disk raise :class:`MalformedCommand` (or a subclass naming the
decoder) and nothing else, as h11 raises only its remote-protocol error from its parser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from paxoskv.errors import ValueNotSerialisable

TUPLE_EXT_CODE = 1
"""msgpack ext type of a tuple inside a value; user ``ExtType`` values may not use it."""

MAX_NESTING = 100
"""Deepest container nesting a value may have. Tuples in values unpack recursively (an ext
inside an ext), through C frames that Python's recursion limit does not guard, so the depth is
bounded explicitly, both when a command is built and when bytes are unpacked."""

UINT64_MAX = 2**64 - 1
INT64_MIN = -(2**63)


class MalformedCommand(ValueError):
    """Bytes that should hold a command (or another state-machine object) do not.

    The one exception the decoders in :mod:`paxoskv.state` raise on bad input: the caller
    drops or refuses the bytes at the boundary, and a replica that finds a malformed command
    in the log answers it with a deterministic ``Failed`` result instead of crashing.
    """


class MalformedResult(MalformedCommand):
    """Bytes that should hold an encoded result do not."""


class MalformedSnapshot(MalformedCommand):
    """Bytes that should hold a state-machine snapshot do not.

    The storage layer checksums snapshots, so seeing this means a bug or a snapshot from an
    incompatible version; fall back to an older snapshot plus the journal, or rebuild the
    node from a peer.
    """


def _default(obj: object) -> msgpack.ExtType:
    """Pack a value tuple as an ext; refuse anything msgpack would not bring back as it was."""
    if type(obj) is tuple:
        return msgpack.ExtType(TUPLE_EXT_CODE, pack(list(obj)))
    if type(obj) is int:  # msgpack hands over the ints it has no format for
        _check_int(obj)
    if isinstance(obj, (bool, int, float, str, bytes, list, tuple, dict)):
        raise ValueNotSerialisable(
            f"a value of type {type(obj).__name__} cannot be stored: values are exactly the "
            "built-in types, and a subclass (an enum, OrderedDict, defaultdict, namedtuple) "
            "would come back as its base type; convert it first (dict(value), tuple(value), "
            "member.value)"
        )
    raise ValueNotSerialisable(
        f"a value of type {type(obj).__name__} cannot be stored; use None, bool, int, float, "
        "str, bytes, or lists, tuples and dicts of them"
    )


def new_packer() -> msgpack.Packer:
    """A packer of its own, for an owner that packs often and never from two threads."""
    return msgpack.Packer(default=_default, strict_types=True, autoreset=True, use_bin_type=True)


# A free list rather than one shared packer: packing a value tuple re-enters pack() from the
# default hook, and a caller on another thread may be packing at the same time. Popping and
# appending a list are atomic under the GIL, so each caller owns the packer it popped.
_packers: list[msgpack.Packer] = [new_packer()]


def pack(obj: Any) -> bytes:
    """Pack one object in one msgpack call; raise ValueNotSerialisable if it cannot be carried."""
    try:
        packer = _packers.pop()
    except IndexError:
        packer = new_packer()
    try:
        return packer.pack(obj)
    except ValueNotSerialisable:
        raise
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueNotSerialisable(f"value cannot be carried by msgpack: {error}") from error
    finally:
        _packers.append(packer)


def _ext_hook_at(depth: int) -> Callable[[int, bytes], object]:
    """The ext hook for tuples nested ``depth`` deep: each level has its own, so the depth is
    known without any shared counter (which two threads would trample)."""

    def ext_hook(code: int, data: bytes) -> object:
        if code != TUPLE_EXT_CODE:
            return msgpack.ExtType(code, data)
        if depth > MAX_NESTING:
            raise ValueError(f"tuples nested deeper than {MAX_NESTING} levels")
        items = msgpack.unpackb(
            data, ext_hook=_EXT_HOOKS[depth + 1], strict_map_key=False, raw=False
        )
        if type(items) is not list:
            raise ValueError("tuple ext does not hold an array")
        return tuple(items)

    return ext_hook


_EXT_HOOKS = [_ext_hook_at(depth) for depth in range(MAX_NESTING + 2)]
TOP_EXT_HOOK = _EXT_HOOKS[0]
"""The ext hook of a top-level unpack, for a hot loop that calls ``msgpack.unpackb`` itself
(``unpackb(data, ext_hook=TOP_EXT_HOOK, strict_map_key=False)`` is :func:`unpack`)."""


def unpack(data: bytes | memoryview) -> Any:
    """Unpack one object; raise whatever msgpack raises (callers wrap it in their Malformed*)."""
    return msgpack.unpackb(data, ext_hook=TOP_EXT_HOOK, strict_map_key=False, raw=False)


# --- values --------------------------------------------------------------------------------


def private_copy(value: Any) -> Any:
    """``value`` with every list and dict in it made anew: a copy its caller may change.

    The map keeps a value as its command brought it. A ``Node`` handed callers the stored
    list or dict itself (a read, a watch event), so a caller that changed what it read
    changed this replica's state alone, and the replicas differed from then on, silently
    (twenty-fourth session). Scalars, str and bytes cannot change and are shared, as is a
    tuple with nothing changeable in it; one that holds a list is made anew around its copy.
    Values are at most :data:`MAX_NESTING` deep (:func:`check_value`), so this recursion is.
    """
    kind = type(value)
    if kind is list:
        return [private_copy(item) for item in value]
    if kind is dict:
        return {key: private_copy(item) for key, item in value.items()}  # keys are hashable
    if kind is tuple:
        items = [private_copy(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return tuple(items)
    return value


def check_value(value: object) -> None:
    """Raise ValueNotSerialisable unless msgpack carries ``value`` and brings it back unchanged.

    Run when a command is built, so a bad value fails in the caller's hands with a message,
    not later inside the replicated log. The common scalar cases cost one type test.
    """
    kind = type(value)
    if kind is str:
        _check_str(value)  # type: ignore[arg-type]
    elif kind is int:
        _check_int(value)  # type: ignore[arg-type]
    elif kind not in _PLAIN_SCALARS:
        _check_nested(value, 0)


_PLAIN_SCALARS = frozenset({type(None), bool, float, bytes, msgpack.Timestamp})


def _check_str(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueNotSerialisable(
            f"string {text[:40]!r} is not valid Unicode text (lone surrogate); it cannot be "
            "stored as UTF-8"
        ) from error


def _check_int(number: int) -> None:
    if not INT64_MIN <= number <= UINT64_MAX:
        raise ValueNotSerialisable(
            f"integer {number} is outside the 64-bit range msgpack carries; store it as a str"
        )


def _check_nested(value: object, depth: int) -> None:
    if depth > MAX_NESTING:
        raise ValueNotSerialisable(f"value is nested deeper than {MAX_NESTING} levels")
    kind = type(value)
    if kind is str:
        _check_str(value)  # type: ignore[arg-type]
    elif kind is int:
        _check_int(value)  # type: ignore[arg-type]
    elif kind in _PLAIN_SCALARS:
        return
    elif kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]
            _check_nested(item, depth + 1)
    elif kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            _check_nested(key, depth + 1)
            _check_nested(item, depth + 1)
    elif kind is msgpack.ExtType:
        if value.code == TUPLE_EXT_CODE:  # type: ignore[attr-defined]
            raise ValueNotSerialisable(
                f"ext type {TUPLE_EXT_CODE} is reserved by paxos-kv for tuples; use another code"
            )
    else:
        _default(value)
