"""The value of one log slot: a batch of client requests stamped with the leader's time.

A slot holds every request that waited while the previous slot was in flight (batching), so
one round of Paxos commits many commands. The leader's clock reading goes into the batch
(``log_time_ms``): the state machine judges lease expiry by it, never by a local clock, so
every replica decides the same (Prevayler stamps transaction time the same way).

On the wire a batch is columns, not rows::

    [log_time_ms, [client_id, ...], [seq, ...], [item, ...]]

Every replica decodes every chosen value, so the layout is picked for that side: the columns
are checked with a few C-level passes (``set(map(type, column))``) instead of a Python loop
over rows, and handed to :meth:`KVStateMachine.apply_items` as they come out of the unpacker.
An empty client id names no request (the engine's own no-ops and lease expiries).

An *item* is a command, in one of two forms:

* **embedded**: the command's own msgpack array, its bytes spliced into the batch as the client
  encoded them (a msgpack array is its header followed by its elements' encodings back to back,
  so the leader writes the item column as a header plus ``b"".join(commands)``, re-encoding
  nothing). A replica then decodes a whole slot in ONE ``unpackb`` and gets every command as
  the list the state machine works on, instead of one ``unpackb`` call per command per replica.
* **wrapped**: the command's bytes as a msgpack bin, unpacked by the state machine on its own.
  The leader wraps whatever it cannot prove decodes inside the batch exactly as it decodes
  alone: bytes that are not exactly one well-formed msgpack array (the state machine answers
  those ``malformed_command`` on every replica alike), and long commands that could be nested
  deep enough to overflow the unpacker's stack once they sit two arrays down.

Either way an item reads the same as its command's bytes read alone: the leader unpacked each
command with the options the replicas unpack the batch with (:func:`pack_batch`), and applies
its own batches from those very lists (``Engine._apply_slot``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from itertools import islice
from operator import lt
from typing import Any, Final, cast

import msgpack
from msgpack import unpackb

from paxoskv.paxos.messages import (
    MalformedMessage,
    NoFastForm,
    Request,
    pack_body,
    packed_str,
    packed_uint,
)
from paxoskv.state.machine import MAX_LOG_TIME_MS
from paxoskv.state.wire import TOP_EXT_HOOK, UINT64_MAX

Columns = tuple[int, list[str], Sequence[int], list[Any]]
"""A decoded batch: ``(log_time_ms, client_ids, seqs, items)``, all three of one length.

``seqs`` is a list, or a ``range`` when :func:`read_batch` found them consecutive (the usual
slot of one pipelining client): the state machine then needs no pass of its own to prove the
slot in order, and the list of ints is freed at once.

An item is ``bytes`` (a wrapped command, still encoded) or a list (an embedded command,
unpacked), as :meth:`~paxoskv.state.KVStateMachine.apply_items` takes them."""

UNPACKER_DEPTH: Final = 1024
"""Containers msgpack's C unpacker nests before it refuses (its fixed stack)."""
_BATCH_DEPTH: Final = 2  # an item sits inside the batch array and the item column
_SHALLOW_BYTES: Final = UNPACKER_DEPTH - _BATCH_DEPTH
# Every byte that is not an array or map header (fixmap, fixarray, map/array 16 and 32): what
# ``bytes.translate`` deletes to count the headers a long command could nest by.
_NOT_CONTAINER_HEADERS = bytes(
    b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF)
)


def _embeddable(command: bytes, item: list[Any]) -> bool:
    """True if ``command`` cannot nest deep enough to overflow the unpacker inside a batch.

    ``item`` is ``command`` as the leader unpacked it. Nesting takes at least one container
    header per level, so a command shorter than the unpacker's spare depth is safe; so is one
    whose unpacked form proves it shallow (:func:`_shallow`: a Set of a 1 KB value, the usual
    long command, in a pass over its few elements). Otherwise the bytes decide: one with fewer
    header-valued bytes than that spare depth (a count that includes lookalike bytes inside
    strings, so it only errs on the safe side) is safe. That count costs some 11 instructions
    a byte, 11,000 a command of a 1 KB value, which is why the item is asked first.
    """
    return (
        len(command) <= _SHALLOW_BYTES
        or _shallow(item)
        or len(command.translate(None, _NOT_CONTAINER_HEADERS)) <= _SHALLOW_BYTES
    )


_WALK_LEVELS: Final = 32
"""How deep :func:`_shallow` follows nested lists before it leaves the question to the
bytes: far below the unpacker's spare depth, and past any value an application nests."""


def _shallow(item: list[Any]) -> bool:
    """True if the command unpacked as ``item`` nests at most :data:`_WALK_LEVELS` arrays
    deep and holds no map, which is far within the unpacker's spare depth.

    Exact in one direction only, the safe one: msgpack unpacks an array to a list, holding
    every element it read, and every other object it makes from a command is either a scalar
    (str, bytes, int, float, bool, None: no container inside) or a map or an ext's object. A
    map answers False: its dict keeps one value per key, so a map that repeats a key (``"a"``
    twice, or ``1``, ``True`` and ``1.0``) drops values the unpacker still had to nest into,
    and the dict can look shallow while the bytes nest a thousand deep (the review of this
    walk found a leader that embedded such a command and followers that refused the slot). An
    ext's object (a tuple, an ``ExtType``, a ``Timestamp``) answers False as well. Either way
    the caller counts header bytes instead, as it did for every long command before.
    """
    return _lists_within(item, _WALK_LEVELS)


def _lists_within(container: list[Any], levels: int) -> bool:
    """True if ``container`` holds only scalars and lists, and nests (itself counted) at
    most ``levels`` deep; False for anything it cannot vouch for."""
    if levels <= 0:
        return False
    for element in container:
        kind = type(element)
        if kind is str or kind is bytes or kind is int or element is None:
            continue
        if kind is list:
            if not _lists_within(element, levels - 1):
                return False
        elif kind is not float and kind is not bool:
            return False
    return True


def pack_batch(
    log_time_ms: int, client_ids: list[str], seqs: list[int], commands: Sequence[bytes]
) -> tuple[bytes, list[Any]]:
    """The batch's bytes and its item column, the latter as :func:`read_batch` will read it.

    One ``unpackb`` per command, on the leader only: it proves a command embeddable, and the
    lists it makes are what the leader applies. The usual batch, every command a short array,
    is unpacked by one comprehension and checked by two C-level passes; any other batch goes
    through the loop that wraps what it cannot embed.
    """
    if len(commands) == 1:  # a slot of one command (a sequential writer's): no set-up
        command = commands[0]
        try:
            item = unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
        except Exception:  # msgpack raises several unrelated types on garbage
            item = None
        if type(item) is list and _embeddable(command, item):
            try:
                value = b"".join(
                    [
                        _ONE_REQUEST_HEAD,
                        packed_uint(log_time_ms),
                        _ONE,
                        packed_str(client_ids[0]),
                        _ONE,
                        packed_uint(cast("list[object]", seqs)[0]),  # (not unboxed)
                        _ONE,
                        command,
                    ]
                )
            except NoFastForm:  # what the packer writes (or refuses) is written below
                value = _join_batch(log_time_ms, client_ids, seqs, commands)
            return value, [item]
    try:  # the usual batch, every command a short array: one comprehension, no checks inside
        items: list[Any] = [
            unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False) for command in commands
        ]
    except Exception:  # msgpack raises several unrelated types on garbage
        pass
    else:
        # Commands past _SHALLOW_BYTES (a Set of a 1 KB value) are proved shallow one by one
        # here rather than unpacked a second time by the loop below (6.6 -> 2 us a command).
        if set(map(type, items)) <= _LIST and (
            max(map(len, commands), default=0) <= _SHALLOW_BYTES
            or all(map(_embeddable, commands, items))
        ):
            return _join_batch(log_time_ms, client_ids, seqs, commands), items
    items = []
    parts: list[bytes] = []
    wrap = pack_body
    for command in commands:
        try:
            item = unpackb(command, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
        except Exception:
            item = None
        if type(item) is list and _embeddable(command, item):
            items.append(item)
            parts.append(command)
        else:
            items.append(command)
            parts.append(wrap(command))
    return _join_batch(log_time_ms, client_ids, seqs, parts), items


_LIST: set[type] = {list}
_ONE_REQUEST_HEAD: Final = b"\x94"  # the batch's array; then each column, an array of one
_ONE: Final = b"\x91"


def _join_batch(
    log_time_ms: int, client_ids: list[str], seqs: list[int], parts: Sequence[bytes]
) -> bytes:
    """The batch's bytes: a 4-array of the log time, the id and seq columns, then the items."""
    count = len(client_ids)
    if count < _SMALL_SLOT:  # msgpack's packer per element costs less than the set-up below
        head = pack_body([log_time_ms, client_ids, seqs])
        return b"".join([b"\x94", head[1:], _array_header(len(parts)), *parts])
    first = client_ids[0]
    if client_ids.count(first) == count:  # one client's slot: its id packed once, repeated
        ids = pack_body(first) * count
    else:
        ids = pack_body(client_ids)[len(_array_header(count)) :]
    header = _array_header(count)
    return b"".join(
        [
            b"\x94",
            pack_body(log_time_ms),
            header,
            ids,
            header,
            _pack_seqs(seqs),
            _array_header(len(parts)),
            *parts,
        ]
    )


_SMALL_SLOT = 16

# A seq column packed by ``struct`` in one call, each seq at the width of the widest: msgpack's
# packer spends some 300 instructions on each int, ``struct`` a few. Any msgpack reader reads an
# int at any width as the same int (the spec lets a writer pick a wider format than the
# smallest), so replicas read the very seqs msgpack's packer would have given them.
_SEQ_WIDTHS = ((b"\xcd", "H", 2), (b"\xce", "I", 4), (b"\xcf", "Q", 8))
_UINT_END = {0xCC: 3, 0xCD: 4, 0xCE: 6, 0xCF: 10}  # where a uint at byte 1 ends, by its tag
_SEQ_WIDTH_OF_TAG = {tag[0]: (tag, width) for tag, _, width in _SEQ_WIDTHS}


def _pack_seqs(seqs: Sequence[int]) -> bytes:
    """The elements of the msgpack array of ``seqs`` (ints from 0 to 2**64 - 1), packed as
    uint16, uint32 or uint64 alike (the narrowest that holds them all)."""
    count = len(seqs)
    for tag, code, width in _SEQ_WIDTHS:
        try:
            raw = struct.pack(f">{count}{code}", *seqs)
        except struct.error:  # a seq too wide (found at the first one, usually)
            continue
        return _tagged(tag, width, raw)
    return pack_body(list(seqs))[len(_array_header(count)) :]  # not uint64: let msgpack refuse


def _tagged(tag: bytes, width: int, raw: bytes) -> bytes:
    """Big-endian ints of ``width`` bytes each (``raw``), each after its msgpack ``tag``."""
    step = width + 1
    out = bytearray(tag * (len(raw) // width) * step)
    for byte in range(width):  # interleave: each seq's tag, then its bytes
        out[byte + 1 :: step] = raw[byte::width]
    return bytes(out)


def _packed_run(tag: bytes, width: int, first: int, count: int) -> bytes:
    """:func:`_pack_seqs` of ``range(first, first + count)`` at this width, by one big-int
    multiply and add rather than an int made and packed per seq. OverflowError if the last seq
    does not fit the width."""
    ones, steps = _run_terms(width, count)
    return _tagged(tag, width, (first * ones + steps).to_bytes(count * width, "big"))


@lru_cache(maxsize=64)
def _run_terms(width: int, count: int) -> tuple[int, int]:
    """The run's ints, ``width`` bytes each, read as one big-endian number are
    ``sum((first + i) * B**(count - 1 - i))`` with ``B = 256**width``: ``first * ones +
    steps``, where ``ones = sum(B**j)`` (the bytes ``0...01`` repeated) and ``steps =
    sum(i * B**(count - 1 - i)) = (ones - count) / (B - 1)``. Slots are mostly of a few sizes,
    so these are made once each."""
    ones = int.from_bytes((bytes(width - 1) + b"\x01") * count, "big")
    return ones, (ones - count) // ((1 << (8 * width)) - 1)


def _array_header(length: int) -> bytes:
    if length < 16:
        return bytes((0x90 | length,))
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def encode_batch(log_time_ms: int, requests: Sequence[Request]) -> bytes:
    """The bytes of a batch of ``requests`` (its item column as :func:`pack_batch` makes it)."""
    client_ids = [r.client_id for r in requests]
    seqs = [r.seq for r in requests]
    return pack_batch(log_time_ms, client_ids, seqs, [r.command for r in requests])[0]


def read_batch(value: bytes) -> Columns:
    """Split a chosen value into columns; a value no leader of ours could have made is refused.

    Refused whole (``MalformedMessage``), never in part: every replica and
    :func:`~paxoskv.paxos.membership.configs_implied_by` must see the same requests in it.
    """
    columns = _read_one_client_run(value)
    return _read_in_full(value) if columns is None else columns


def _read_one_client_run(value: bytes) -> Columns | None:
    """The columns of the usual busy slot, or None: one client's consecutive seqs, as the leader
    packs them (:func:`_join_batch`), read without decoding the id and seq columns.

    Unpacking those columns made a str and an int per request, and checking them (one id, int
    seqs running on by one) took three passes more: some 1,400 instructions a request on each
    follower. Here their bytes are proved to be the packing of one id ``count`` times and of
    ``range(first, first + count)``, which unpack to nothing else, and only the items are
    unpacked, straight from the value, then proved shallow or else unpacked again one array
    level down, as deep as inside the whole batch (:func:`_shallow_items`: the unpacker's stack
    refuses the same commands). Whatever does not match is read in full (:func:`_read_in_full`),
    which refuses or reads it; the tests hold the two to each other.
    """
    if type(value) is not bytes or value[:1] != b"\x94":
        return None
    try:
        tag = value[1]  # the log time: a positive fixint or a uint8 to uint64
        at = 2 if tag < 0x80 else _UINT_END.get(tag, 0)
        if value[at] != 0xDC:  # fewer than 16 requests (or 65,536 or more): read in full
            return None
        log_time_ms = tag if tag < 0x80 else int.from_bytes(value[2:at], "big")
        header = value[at : at + 3]
        count = int.from_bytes(header[1:], "big")
        at += 3
        tag = value[at]
        if 0xA0 <= tag <= 0xBF:  # the first id, a fixstr or a str8 (a longer id: read in full)
            start, end = at + 1, at + 1 + (tag & 0x1F)
        elif tag == 0xD9:
            start = at + 2
            end = start + value[at + 1]
        else:
            return None
        one_id = value[at:end]
        ids_end = at + len(one_id) * count
        if (
            count < _SMALL_SLOT
            or log_time_ms > MAX_LOG_TIME_MS
            or value.count(one_id, at, ids_end) != count  # ``count`` of them fill the column
            or not value.startswith(header, ids_end)
        ):
            return None
        at = ids_end + 3
        tag_width = _SEQ_WIDTH_OF_TAG.get(value[at])
        if tag_width is None:
            return None
        seq_tag, width = tag_width
        first = int.from_bytes(value[at + 1 : at + 1 + width], "big")
        seqs = _packed_run(seq_tag, width, first, count)
        if not value.startswith(seqs, at):
            return None
        client_id = value[start:end].decode()
        column = memoryview(value)[at + len(seqs) :]
        items = unpackb(column, ext_hook=TOP_EXT_HOOK, strict_map_key=False, raw=False)
        if type(items) is not list or len(items) != count:
            return None
        shallow = _shallow_items(items)
        if shallow is None:
            return None
        if not shallow:  # read again as deep as inside the batch, where it may be refused
            wrapped = unpackb(
                b"\x91" + column, ext_hook=TOP_EXT_HOOK, strict_map_key=False, raw=False
            )
            items = wrapped[0]
    except Exception:  # too short, not UTF-8, not msgpack: msgpack raises several types
        return None
    return log_time_ms, [client_id] * count, range(first, first + count), items


def _shallow_items(items: list[Any]) -> bool | None:
    """None unless every item is bytes or a list (:func:`_all_items`); then True if every list
    nests so little (:func:`_shallow`) that the column reads the same one array level deeper,
    as it sits inside the batch.

    The item column unpacked alone sits one level less deep in the unpacker's stack than in
    the whole batch, so a command nested to within one level of the unpacker's limit would be
    read here and refused by :func:`_read_in_full`. Items that are all shallow rule that out;
    any other column is read again inside a one-element array (a copy of the slot, which every
    follower paid for every slot when that was the only way: some 1,000 instructions a 1 KB
    command).
    """
    shallow = True
    for item in items:
        kind = type(item)
        if kind is list:
            if shallow and not _lists_within(item, _WALK_LEVELS):
                shallow = False
        elif kind is not bytes:
            return None
    return shallow


def _read_in_full(value: bytes) -> Columns:
    """:func:`read_batch` of any value: unpacked whole, then every column checked."""
    try:
        # (raw=False is msgpack's default: a keyword argument less to parse on every slot)
        body = unpackb(value, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise MalformedMessage(f"not a batch: {error}") from None
    if type(body) is not list or len(body) != 4:
        raise MalformedMessage("not a batch")
    log_time_ms, client_ids, seqs, items = body
    # check_columns, minus what msgpack makes certain: an int it decodes is at most 2**64 - 1,
    # and anything it decodes that equals a str is a str (it makes no subclasses), so a slot of
    # one client (the usual busy slot) has its ids checked by one ``count``. Seqs that run on
    # by one from a first >= 0 need no ``min`` either, and come out as a ``range``.
    if (
        type(client_ids) is list
        and type(seqs) is list
        and type(items) is list
        and type(log_time_ms) is int
        and 0 <= log_time_ms <= MAX_LOG_TIME_MS
        and len(client_ids) == len(seqs) == len(items)
        and (
            not client_ids
            or (
                (
                    (type(client_ids[0]) is str and client_ids.count(client_ids[0]) == len(seqs))
                    or set(map(type, client_ids)) <= _STR
                )
                and _all_ints(seqs)
                and _all_items(items)
            )
        )
    ):
        if len(seqs) < _SMALL_SLOT:  # a pass of ``<`` costs more than it saves
            if not seqs or min(seqs) >= 0:
                return log_time_ms, client_ids, seqs, items
            check_columns(log_time_ms, client_ids, seqs, items)  # raises
        first = seqs[0]
        if (
            first >= 0
            and seqs[-1] - first == len(seqs) - 1
            and all(map(lt, seqs, islice(seqs, 1, None)))
        ):
            return log_time_ms, client_ids, range(first, first + len(seqs)), items
        if min(seqs) >= 0:
            return log_time_ms, client_ids, seqs, items
    check_columns(log_time_ms, client_ids, seqs, items)  # raises, naming what is wrong
    raise MalformedMessage("not a batch")  # unreachable: the checks above are check_columns'


def _all_ints(seqs: list[Any]) -> bool:
    """``set(map(type, seqs)) <= {int}``, as a loop (see :func:`_all_items`)."""
    return all(type(seq) is int for seq in seqs)


def _all_items(items: list[Any]) -> bool:
    """``set(map(type, items)) <= _ITEM_TYPES``, as a loop the compiled build runs in C at a
    tenth of the set's cost."""
    for item in items:
        kind = type(item)
        if kind is not list and kind is not bytes:
            return False
    return True


_STR: set[type] = {str}
_ITEM_TYPES: set[type] = {bytes, list}


def check_columns(log_time_ms: object, client_ids: object, seqs: object, items: object) -> None:
    """Raise ``MalformedMessage`` unless these are the columns of a batch every replica applies.

    The leader runs the same check on the columns of its own batches, which it applies without
    decoding them again (see ``Engine._apply_slot``): both sides must refuse the same values.
    An item's content is not checked here: a command that is not one is answered as malformed
    by the state machine, on every replica alike.
    """
    if type(log_time_ms) is not int or not 0 <= log_time_ms <= MAX_LOG_TIME_MS:
        raise MalformedMessage("a batch's log time is an int in range")
    if type(client_ids) is not list or type(seqs) is not list or type(items) is not list:
        raise MalformedMessage("a batch is three columns")
    if not len(client_ids) == len(seqs) == len(items):
        raise MalformedMessage("a batch's columns differ in length")
    if client_ids and not (
        set(map(type, client_ids)) <= {str}
        and set(map(type, seqs)) <= {int}
        and set(map(type, items)) <= {bytes, list}
        and min(seqs) >= 0
        and max(seqs) <= UINT64_MAX
    ):
        raise MalformedMessage("a batch holds str client ids, int seqs >= 0 and command items")


def decode_batch(value: bytes) -> tuple[int, list[Request]]:
    """The batch as :class:`Request` objects, each command its very bytes, for readers off the
    hot path (checkers, tools, the membership rules)."""
    log_time_ms, client_ids, seqs, items = read_batch(value)
    commands = _item_bytes(value, items)
    requests = [Request(*row) for row in zip(client_ids, seqs, commands, strict=True)]
    return log_time_ms, requests


def _item_bytes(value: bytes, items: list[Any]) -> list[bytes]:
    """Each item's command bytes: a wrapped one's content, an embedded one's span of ``value``."""
    if all(type(item) is bytes for item in items):
        return items
    unpacker = msgpack.Unpacker(ext_hook=TOP_EXT_HOOK, strict_map_key=False, raw=False)
    unpacker.feed(value)
    unpacker.read_array_header()
    for _ in range(3):
        unpacker.skip()
    unpacker.read_array_header()
    commands: list[bytes] = []
    for item in items:
        start = unpacker.tell()
        unpacker.skip()
        commands.append(item if type(item) is bytes else value[start : unpacker.tell()])
    return commands


def batch_size_bytes(requests: Sequence[Request]) -> int:
    """An upper bound of the encoded size, cheap enough to keep per pending request."""
    return sum(len(r.command) + len(r.client_id) + 16 for r in requests) + 16
