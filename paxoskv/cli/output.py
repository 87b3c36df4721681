"""How values, keys, entries, events, members and status look on a terminal and as JSON.

Two audiences: a person (strings raw, so ``paxos-kv get greeting`` prints ``hello`` and not
``"hello"``; tuple and bytes keys as Python literals, so they cannot be mistaken for a str
key), and a program (``--json``: one document per answer, one per line for ``watch``). JSON
has no bytes and no tuples, so bytes travel as ``{"$bytes": "<base64>"}`` and tuples as
arrays, and a map whose keys are not all str (or whose one key is a tag) as
``{"$map": [[key, value], ...]}``; nothing is dropped or guessed, and ``--json-value`` reads
the same tags back (:func:`from_jsonable`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `paxos-kv get` need not load the membership's modules
    from paxoskv.runtime.membership import Member
    from paxoskv.state.history import ChangeEvent
    from paxoskv.state.keys import Key
    from paxoskv.state.results import KeyValue

BYTES_TAG = "$bytes"
FLOAT_TAG = "$float"
MAP_TAG = "$map"
TAGS = (BYTES_TAG, FLOAT_TAG, MAP_TAG)


def jsonable(value: Any) -> Any:
    """``value`` with bytes, tuples and non-str map keys turned into what JSON can carry."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity; tagged as bytes are, since their repr alone ("nan")
        # could not be told from the str "nan".
        return value if math.isfinite(value) else {FLOAT_TAG: repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value) and not _looks_tagged(value):
            return {key: jsonable(item) for key, item in value.items()}
        # {1: "a", "1": "b"} came out as {"1": "b"}, and a str-keyed map of one tag could
        # not be told from what the tag stands for (CLI audit, twenty-second session).
        return {MAP_TAG: [[jsonable(key), jsonable(item)] for key, item in value.items()]}
    return repr(value)


def _looks_tagged(value: Mapping[Any, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in TAGS


def from_jsonable(value: Any) -> Any:
    """What :func:`jsonable` made, back: bytes, non-finite floats and maps from their tags
    (a JSON array stays a list; as a map's key it is a tuple, the only key it can be)."""
    if isinstance(value, list):
        return [from_jsonable(item) for item in value]
    if not isinstance(value, dict):
        return value
    if _looks_tagged(value):
        ((tag, body),) = value.items()
        if tag == BYTES_TAG and isinstance(body, str):
            try:
                return base64.b64decode(body, validate=True)
            except ValueError:
                raise ValueError(f"{BYTES_TAG} holds {body!r}, which is not base64") from None
        if tag == FLOAT_TAG and body in ("nan", "inf", "-inf"):
            return float(body)
        if (
            tag == MAP_TAG
            and isinstance(body, list)
            and all(isinstance(pair, list) and len(pair) == 2 for pair in body)
        ):
            return {_map_key_back(key): from_jsonable(item) for key, item in body}
        raise ValueError(f"{json.dumps(value)[:80]} is not a {tag} as paxos-kv writes it")
    return {key: from_jsonable(item) for key, item in value.items()}


def _map_key_back(key: Any) -> Any:
    key = from_jsonable(key)
    return tuple(_map_key_back(part) for part in key) if isinstance(key, list) else key


def json_text(value: Any) -> str:
    """Compact one-line JSON, non-ASCII kept as is (a terminal shows it; JSON allows it)."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))


def pretty_json(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, indent=2)


def show_value(value: Any) -> str:
    """A value for a person: a str as itself, anything else as JSON."""
    return value if isinstance(value, str) else json_text(value)


def show_key(key: Key) -> str:
    """A key for a person: a str key as itself; bytes and tuple keys, and a str key with a
    character that does not print (a newline made one key look like two in `keys`), as
    Python literals."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


def entry_json(entry: KeyValue) -> dict[str, Any]:
    """The document ``--json`` prints for an entry: raw values, tagged once as it is dumped
    (:func:`json_text`, :func:`pretty_json`); tagged here too, a bytes value came out as a
    map of its tag."""
    return {
        "key": entry.key,
        "value": entry.value,
        "create_revision": entry.create_revision,
        "mod_revision": entry.mod_revision,
        "version": entry.version,
        "lease": entry.lease_id,
    }


def event_line(event: ChangeEvent) -> str:
    """``<revision> <kind> <key>[ <value>]``: the value only where there is one (a set)."""
    line = f"{event.revision} {event.kind} {show_key(event.key)}"
    return line if event.kind != "set" else f"{line} {show_value(event.value)}"


def event_json(event: ChangeEvent) -> dict[str, Any]:
    return {
        "revision": event.revision,
        "kind": event.kind,
        "key": event.key,
        "value": event.value,
        "prev_value": event.prev_value,
    }


def member_json(member: Member) -> dict[str, Any]:
    return {
        "node_id": member.node_id,
        "role": member.role,
        "state": member.state,
        "applied_revision": member.applied_revision,
        "is_leader": member.is_leader,
    }


MEMBER_HEADERS = ("ID", "ROLE", "STATE", "APPLIED", "LEADER")


def members_table(members: Iterable[Member]) -> list[str]:
    """An aligned table, the leader marked with ``*``, so ``grep '\\*$'`` finds it."""
    rows = [MEMBER_HEADERS] + [
        (m.node_id, m.role, m.state, str(m.applied_revision), "*" if m.is_leader else "")
        for m in members
    ]
    return table(rows)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def status_lines(status: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``name: value`` lines, nested maps flattened to dotted names (``transport.sent``)."""
    lines: list[str] = []
    for name, value in status.items():
        if isinstance(value, Mapping):
            lines.extend(status_lines(value, f"{prefix}{name}."))
        elif isinstance(value, list | tuple):
            shown = ", ".join(show_value(item) for item in value) or "-"
            lines.append(f"{prefix}{name}: {shown}")
        else:
            lines.append(f"{prefix}{name}: {'-' if value is None else show_value(value)}")
    return lines
