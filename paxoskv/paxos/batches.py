"""The value of one log slot: a batch of client requests stamped with the leader's time.

A slot holds every request that waited while the previous slot was in flight (batching), so
one round of Paxos commits many commands. The leader's clock reading goes into the batch
(``log_time_ms``): the state machine judges lease expiry by it, never by a local clock, so
every replica decides the same (Prevayler stamps transaction time the same way).

On the wire a batch is columns, not rows::

    [log_time_ms, [client_id, ...], [seq, ...], [command, ...]]

Every replica decodes every chosen value, so the layout is picked for that side: three flat
arrays are checked with a few C-level passes (``set(map(type, column))``) instead of a Python
loop over rows, and they are handed to :meth:`KVStateMachine.apply_batch` as they come out of
the unpacker. An empty client id names no request (the engine's own no-ops and lease expiries).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from paxoskv.paxos.messages import MalformedMessage, Request, pack_body
from paxoskv.state.machine import MAX_LOG_TIME_MS
from paxoskv.state.wire import UINT64_MAX

Columns = tuple[int, list[str], list[int], list[bytes]]
"""A decoded batch: ``(log_time_ms, client_ids, seqs, commands)``, all three of one length."""


def batch_columns(log_time_ms: int, requests: Sequence[Request]) -> Columns:
    """The columns of a batch of ``requests``, as :func:`read_batch` gives them back."""
    return (
        log_time_ms,
        [r.client_id for r in requests],
        [r.seq for r in requests],
        [r.command for r in requests],
    )


def encode_columns(columns: Columns) -> bytes:
    return pack_body(list(columns))


def encode_batch(log_time_ms: int, requests: Sequence[Request]) -> bytes:
    return encode_columns(batch_columns(log_time_ms, requests))


def read_batch(value: bytes) -> Columns:
    """Split a chosen value into columns; a value no leader of ours could have made is refused.

    Refused whole (``MalformedMessage``), never in part: every replica and
    :func:`~paxoskv.paxos.membership.configs_implied_by` must see the same requests in it.
    """
    try:
        body = msgpack.unpackb(value, use_list=True, raw=False)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise MalformedMessage(f"not a batch: {error}") from None
    if type(body) is not list or len(body) != 4:
        raise MalformedMessage("not a batch")
    check_columns(*body)
    log_time_ms, client_ids, seqs, commands = body
    return log_time_ms, client_ids, seqs, commands


def check_columns(log_time_ms: object, client_ids: object, seqs: object, commands: object) -> None:
    """Raise ``MalformedMessage`` unless these are the columns of a batch every replica applies.

    The leader runs the same check on the columns of its own batches, which it applies without
    decoding them again (see ``Engine._apply_slot``): both sides must refuse the same values.
    """
    if type(log_time_ms) is not int or not 0 <= log_time_ms <= MAX_LOG_TIME_MS:
        raise MalformedMessage("a batch's log time is an int in range")
    if type(client_ids) is not list or type(seqs) is not list or type(commands) is not list:
        raise MalformedMessage("a batch is three columns")
    if not len(client_ids) == len(seqs) == len(commands):
        raise MalformedMessage("a batch's columns differ in length")
    if client_ids and not (
        set(map(type, client_ids)) <= {str}
        and set(map(type, seqs)) <= {int}
        and set(map(type, commands)) <= {bytes}
        and min(seqs) >= 0
        and max(seqs) <= UINT64_MAX
    ):
        raise MalformedMessage("a batch holds str client ids, int seqs >= 0 and bytes commands")


def decode_batch(value: bytes) -> tuple[int, list[Request]]:
    """The batch as :class:`Request` objects, for readers off the hot path (checkers, tools)."""
    log_time_ms, client_ids, seqs, commands = read_batch(value)
    requests = [Request(*row) for row in zip(client_ids, seqs, commands, strict=True)]
    return log_time_ms, requests


def batch_size_bytes(requests: Sequence[Request]) -> int:
    """An upper bound of the encoded size, cheap enough to keep per pending request."""
    return sum(len(r.command) + len(r.client_id) + 16 for r in requests) + 16
