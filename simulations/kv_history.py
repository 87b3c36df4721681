"""Client histories of the key-value store: the record of one call, and its JSON-lines file.

A history is what clients saw, not what replicas did: each call's arguments, its answer, and
the interval in which it was outstanding. The linearizability checker decides histories; the
simulator and real-process runs record them, possibly in another process or on another day,
which is why the file format is part of this module and is defined strictly (see
:func:`encode_operation`).

Values are compared by their *frozen* form (:func:`freeze`): hashable, so a model state can sit
in the checker's memo cache, and strict, so ``True``, ``1`` and ``1.0`` stay different values
as they do on the wire in msgpack.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from paxoskv.errors import InvalidKey, PaxosKVError, ValueNotSerialisable

OpName = Literal["get", "set", "delete", "cas"]
OP_NAMES: frozenset[str] = frozenset(get_args(OpName))

FIELDS = ("client_id", "op", "key", "input", "output", "call_time", "return_time")
VALUE_TAGS = ("b64", "tuple", "dict", "float")


class HistoryFormatError(PaxosKVError, ValueError):
    """A recorded history, or one operation in it, is malformed."""


# --- frozen values -----------------------------------------------------------------------


def freeze(value: object) -> Hashable:
    """Return a hashable stand-in for *value* that is equal only to stand-ins of equal values.

    Python says ``True == 1 == 1.0``; msgpack keeps them apart, so a read of ``1`` after a
    write of ``True`` is a wrong answer and must not be excused by Python's equality. Only
    bool, float, list and dict need a tag: None, int, str and bytes never compare equal to
    each other or to a tagged tuple. Lists and tuples freeze alike because msgpack carries
    both as one array type.
    """
    if value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return ("float", value.hex())  # hex keeps nan equal to itself and -0.0 apart from 0.0
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return ("list", tuple(freeze(item) for item in value))
    if isinstance(value, Mapping):
        return ("dict", frozenset((freeze(k), freeze(v)) for k, v in value.items()))
    raise ValueNotSerialisable(
        f"value {value!r} of type {type(value).__name__} cannot be stored in paxos-kv; use "
        "None, bool, int, float, str, bytes, or lists and dicts of those"
    )


def thaw(frozen: Hashable) -> object:
    """Invert :func:`freeze`, for messages that show values as the user wrote them."""
    if not isinstance(frozen, tuple):
        return frozen
    tag, body = frozen
    if tag == "bool":
        return body
    if tag == "float":
        return float.fromhex(body)
    if tag == "list":
        return [thaw(item) for item in body]
    return {_thaw_key(k): thaw(v) for k, v in body}


def _thaw_key(frozen: Hashable) -> Hashable:
    """A map key that was a tuple froze like a list; it must come back hashable."""
    if isinstance(frozen, tuple) and frozen[0] == "list":
        return tuple(_thaw_key(item) for item in frozen[1])
    value = thaw(frozen)
    assert isinstance(value, Hashable)
    return value


# --- the record of one call --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """One client call and what the client learned from it.

    ``return_time=None`` means the call timed out: it may have taken effect at any moment
    after ``call_time``, or never, and its ``output`` says nothing. ``cas`` takes
    ``input={"expect": value_or_None_for_absent, "new": value}`` and outputs whether it
    swapped; ``delete`` outputs whether the key existed, or None when the caller cannot tell;
    ``get`` outputs the value, None meaning absent; ``set`` outputs nothing the checker uses.
    """

    client_id: int | str
    op: OpName
    key: Hashable
    input: object
    output: object
    call_time: float
    return_time: float | None
    frozen_input: Hashable = field(init=False, repr=False, compare=False)
    frozen_output: Hashable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_client(self.client_id)
        if self.op not in OP_NAMES:
            raise HistoryFormatError(f"op {self.op!r} is not one of get, set, delete, cas")
        _check_key(self.key)
        _check_times(self.call_time, self.return_time)
        _check_output(self.op, self.output)
        object.__setattr__(self, "frozen_input", _freeze_input(self.op, self.input))
        object.__setattr__(self, "frozen_output", freeze(self.output))

    @property
    def outcome_known(self) -> bool:
        """Whether the call returned, so that its output and its deadline bind the checker."""
        return self.return_time is not None

    def summary(self) -> str:
        """One line for failure reports, e.g. ``client 2 cas(expect=1, new=2) -> True [4, 5]``."""
        # 15 significant digits: a monotonic clock's times (tens of thousands of seconds) keep
        # their microseconds, which six (":g") rounded away, so every call looked alike.
        end = "?" if self.return_time is None else f"{self.return_time:.15g}"
        if self.op == "set":
            result = ""
        elif self.outcome_known:
            result = f" -> {_short(self.output)}"
        else:
            result = " -> ?"
        return f"client {self.client_id} {self._call_text()}{result} [{self.call_time:.15g}, {end}]"

    def _call_text(self) -> str:
        if self.op == "set":
            return f"set({_short(self.input)})"
        if self.op == "cas":
            assert isinstance(self.input, Mapping)
            return f"cas(expect={_short(self.input['expect'])}, new={_short(self.input['new'])})"
        return self.op


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_client(client_id: object) -> None:
    if isinstance(client_id, bool) or not isinstance(client_id, int | str):
        raise HistoryFormatError(f"client_id {client_id!r} must be an int or a str")


def _check_key(key: object) -> None:
    try:
        hash(key)
    except TypeError:
        raise InvalidKey(
            f"key {key!r} is not hashable; use a str, bytes, int or a tuple of those"
        ) from None


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_times(call_time: object, return_time: object) -> None:
    if not _is_time(call_time):
        raise HistoryFormatError(f"call_time {call_time!r} must be a finite number")
    if return_time is None:
        return
    if not _is_time(return_time):
        raise HistoryFormatError(f"return_time {return_time!r} must be a finite number or null")
    assert isinstance(call_time, int | float) and isinstance(return_time, int | float)
    if return_time < call_time:
        raise HistoryFormatError(
            f"return_time {return_time} is before call_time {call_time}; record both from "
            "one monotonic clock"
        )


def _check_output(op: str, output: object) -> None:
    if op in ("delete", "cas") and output is not None and not isinstance(output, bool):
        raise HistoryFormatError(
            f"{op} output {output!r} must be true, false, or null when the caller cannot tell"
        )


def _freeze_input(op: str, value: object) -> Hashable:
    if op != "cas":
        return freeze(value)
    if not isinstance(value, Mapping) or set(value) != {"expect", "new"}:
        raise HistoryFormatError(
            f"cas input {value!r} must be a mapping with exactly the keys 'expect' and 'new'"
        )
    return (freeze(value["expect"]), freeze(value["new"]))


# --- JSON lines ----------------------------------------------------------------------------


def encode_value(value: object) -> object:
    """Turn a msgpack-able value into JSON, tagging what JSON cannot say.

    A JSON object inside a value is always a one-entry tag: ``{"b64": ...}`` for bytes,
    ``{"tuple": [...]}`` for tuples (so tuple keys survive), ``{"dict": [[k, v], ...]}`` for
    maps (whose keys need not be strings), ``{"float": "nan" | "inf" | "-inf"}``. Plain JSON
    objects are never values, so no user value can be mistaken for a tag.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [encode_value(item) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [encode_value(item) for item in value]}
    if isinstance(value, Mapping):
        return {"dict": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    raise ValueNotSerialisable(f"value {value!r} of type {type(value).__name__} has no JSON form")


def decode_value(data: object) -> object:
    """Invert :func:`encode_value`; raise :class:`HistoryFormatError` on anything else."""
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in VALUE_TAGS:
        raise HistoryFormatError(
            f"{data!r} is not a value: a JSON object inside a value must be one tag, "
            '{"b64": ...}, {"tuple": [...]}, {"dict": [[key, value], ...]} or {"float": "nan"}'
        )
    ((tag, body),) = data.items()
    return _decode_tagged(tag, body)


def _decode_tagged(tag: str, body: object) -> object:
    if tag == "b64" and isinstance(body, str):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise HistoryFormatError(f"{body!r} is not valid base64") from None
    if tag == "tuple" and isinstance(body, list):
        return tuple(decode_value(item) for item in body)
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(str(body))
    if tag == "dict" and isinstance(body, list):
        return dict(_decode_pair(pair) for pair in body)
    raise HistoryFormatError(f"tag {tag!r} cannot hold {body!r}")


def _decode_pair(pair: object) -> tuple[Hashable, object]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise HistoryFormatError(f'{pair!r} in a "dict" tag must be a [key, value] pair')
    key = decode_value(pair[0])
    _check_key(key)
    assert isinstance(key, Hashable)
    return key, decode_value(pair[1])


def encode_operation(op: Operation) -> str:
    """One JSON line (without the newline) for *op*, with fields in :data:`FIELDS` order.

    A cas input is a plain object ``{"expect": v, "new": v}`` whose two values are encoded.
    """
    if op.op == "cas":
        assert isinstance(op.input, Mapping)
        encoded_input: object = {k: encode_value(op.input[k]) for k in ("expect", "new")}
    else:
        encoded_input = encode_value(op.input)
    record = {
        "client_id": op.client_id,
        "op": op.op,
        "key": encode_value(op.key),
        "input": encoded_input,
        "output": encode_value(op.output),
        "call_time": op.call_time,
        "return_time": op.return_time,
    }
    return json.dumps(record, allow_nan=False)


def decode_operation(line: str) -> Operation:
    """Parse one JSON line written by :func:`encode_operation` (or by hand, or by a recorder
    in another language). Every field must be present; ``return_time`` is ``null`` for a call
    whose outcome is unknown."""
    try:
        record = json.loads(line, parse_constant=_reject_constant)
    except (json.JSONDecodeError, RecursionError) as error:
        raise HistoryFormatError(f"not a JSON object ({error})") from None
    if not isinstance(record, dict):
        raise HistoryFormatError("each line must be one JSON object")
    missing = [name for name in FIELDS if name not in record]
    unknown = sorted(set(record) - set(FIELDS))
    if missing or unknown:
        problems = [
            f"{label} {names}"
            for label, names in (("missing", missing), ("unknown", unknown))
            if names
        ]
        raise HistoryFormatError(
            f"fields {' and '.join(problems)}; a line has exactly {', '.join(FIELDS)}"
        )
    return Operation(
        client_id=record["client_id"],
        op=record["op"],
        key=decode_value(record["key"]),
        input=_decode_input(record["op"], record["input"]),
        output=decode_value(record["output"]),
        call_time=record["call_time"],
        return_time=record["return_time"],
    )


def _reject_constant(name: str) -> object:
    raise HistoryFormatError(f'{name} is not JSON; write {{"float": "nan"}} and the like')


def _decode_input(op: object, data: object) -> object:
    if op != "cas":
        return decode_value(data)
    if not isinstance(data, dict) or set(data) != {"expect", "new"}:
        raise HistoryFormatError(f'cas input {data!r} must be {{"expect": ..., "new": ...}}')
    return {name: decode_value(data[name]) for name in ("expect", "new")}


def load_history(path: str | os.PathLike[str]) -> list[Operation]:
    """Read a JSON-lines history; blank lines are skipped. Errors name the line."""
    operations: list[Operation] = []
    try:
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    operations.append(_decode_line(path, number, line))
    except UnicodeDecodeError as error:
        raise HistoryFormatError(f"{os.fspath(path)} is not UTF-8 text ({error.reason})") from None
    return operations


def _decode_line(path: str | os.PathLike[str], number: int, line: str) -> Operation:
    try:
        return decode_operation(line)
    except (HistoryFormatError, InvalidKey, ValueNotSerialisable) as error:
        raise HistoryFormatError(f"{os.fspath(path)} line {number}: {error}") from None


def dump_history(operations: Iterable[Operation], path: str | os.PathLike[str]) -> None:
    """Write *operations* as JSON lines, replacing the file."""
    with open(path, "w", encoding="utf-8") as file:
        for op in operations:
            file.write(encode_operation(op) + "\n")
