"""Keys, prefixes and the one order in which the state machine lists them.

A key is a non-empty ``str``, non-empty ``bytes``, or a non-empty tuple of ``str``, ``bytes``
and 64-bit ``int`` (a structured key such as ``("session", sid)``, as SWI-Prolog's paxos takes
compound terms). ``bool`` is refused inside tuples because ``True == 1``: two keys that look
different would be the same dict entry.

Python will not compare a ``str`` with an ``int``, so keys of mixed shapes have no natural
order. :func:`sort_keys` defines one (all str keys, then bytes, then tuples; inside a tuple,
element by element with int < str < bytes) so that ``range`` answers and digests are the same
on every replica.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

from paxoskv.errors import InvalidKey
from paxoskv.state.wire import INT64_MIN, UINT64_MAX

KeyPart: TypeAlias = str | bytes | int
Key: TypeAlias = str | bytes | tuple[KeyPart, ...]
Prefix: TypeAlias = Key
"""A str prefix matches str keys that start with it; bytes likewise; a tuple prefix matches
tuple keys whose leading elements equal it. The empty str, bytes or tuple matches every key of
its kind."""

_KEY_HELP = "a key is a non-empty str, bytes, or tuple of str, bytes and int"
_NOT_TEXT = (
    "it is not valid Unicode text (a lone surrogate: bytes that are not UTF-8, as a command "
    "line or a file name can hold); a str must encode as UTF-8 (from Python, a bytes key may "
    "hold any bytes)"
)


def check_key(key: object) -> Key:
    """Return ``key`` if it is a valid key, else raise InvalidKey saying why."""
    if type(key) is str:
        if key and (key.isascii() or _encodes(key)):
            return key
    elif type(key) is bytes:
        if key:
            return key
    elif type(key) is tuple and key and all(map(_is_key_part, key)):
        return key
    if (type(key) is str and key) or (
        type(key) is tuple and any(type(part) is str and not _encodes(part) for part in key)
    ):
        raise InvalidKey(f"invalid key {_show(key)}: {_NOT_TEXT}")
    if isinstance(key, (str, bytes, tuple)) and type(key) not in (str, bytes, tuple):
        raise InvalidKey(
            f"invalid key {_show(key)}: {_KEY_HELP}, exactly: a subclass (a StrEnum member, a "
            "namedtuple) would come back as its base type; convert it first (str(key), "
            "tuple(key))"
        )
    raise InvalidKey(f"invalid key {_show(key)}: {_KEY_HELP}")


def check_prefix(prefix: object) -> Prefix:
    """Return ``prefix`` if it is a valid prefix (empty allowed), else raise InvalidKey."""
    if type(prefix) is str and (prefix.isascii() or _encodes(prefix)):
        return prefix
    if type(prefix) is bytes:
        return prefix
    if type(prefix) is tuple and all(map(_is_key_part, prefix)):
        return prefix
    if type(prefix) is str:
        raise InvalidKey(f"invalid prefix {_show(prefix)}: {_NOT_TEXT}")
    raise InvalidKey(f"invalid prefix {_show(prefix)}: a prefix is a str, bytes or tuple")


def key_from_wire(raw: object) -> Key:
    """Read a key slot: a tuple key travels as an array (see :mod:`paxoskv.state.wire`)."""
    if type(raw) is list:
        raw = tuple(raw)
    return check_key(raw)


def keys_from_wire(raw: list[Any]) -> list[Any]:
    """:func:`key_from_wire` of every key slot in ``raw``; ``raw`` itself when every slot holds a
    non-empty ASCII str, a valid key as it stands (the usual map's keys, read back from a
    snapshot).

    Proved in three C-level passes, with no call per key: ``join`` refuses anything but a str
    (msgpack makes no str subclasses), and ASCII text always encodes. Anything else is read
    key by key, where :func:`check_key` says what is wrong.
    """
    try:
        plain = all(raw) and "".join(raw).isascii()
    except TypeError:
        plain = False
    return raw if plain else [key_from_wire(key) for key in raw]


def key_to_wire(key: Key) -> Any:
    """The form a key takes in a key slot on the wire."""
    return list(key) if type(key) is tuple else key


def matches(key: Key, prefix: Prefix) -> bool:
    """True if ``key`` lies under ``prefix`` (same kind, leading part equal)."""
    if type(key) is str and type(prefix) is str:
        return key.startswith(prefix)
    if type(key) is tuple and type(prefix) is tuple:
        return key[: len(prefix)] == prefix
    if type(key) is bytes and type(prefix) is bytes:
        return key.startswith(prefix)
    return False


def sort_keys(keys: Iterable[Key]) -> list[Key]:
    """Keys in the canonical order: str keys, then bytes keys, then tuple keys.

    str and bytes keys sort natively (fast C comparisons); only tuple keys need a key function.
    """
    texts: list[str] = []
    blobs: list[bytes] = []
    tuples: list[tuple[KeyPart, ...]] = []
    for key in keys:
        if type(key) is str:
            texts.append(key)
        elif type(key) is bytes:
            blobs.append(key)
        else:
            tuples.append(key)  # type: ignore[arg-type]
    texts.sort()
    blobs.sort()
    tuples.sort(key=_tuple_order)
    return [*texts, *blobs, *tuples]


_PART_RANK = {int: 0, str: 1, bytes: 2}


def _tuple_order(key: tuple[KeyPart, ...]) -> tuple[tuple[int, KeyPart], ...]:
    return tuple((_PART_RANK[type(part)], part) for part in key)


def _is_key_part(part: object) -> bool:
    if type(part) is str:
        return part.isascii() or _encodes(part)
    if type(part) is int:
        return INT64_MIN <= part <= UINT64_MAX
    return type(part) is bytes


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."
