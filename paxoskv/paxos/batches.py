"""The value of one log slot: a batch of client requests stamped with the leader's time.

A slot holds every request that waited while the previous slot was in flight (batching), so
one round of Paxos commits many commands. The leader's clock reading goes into the batch
(``log_time_ms``): the state machine judges lease expiry by it, never by a local clock, so
every replica decides the same (Prevayler stamps transaction time the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from paxoskv.paxos.messages import MalformedMessage, Request


def encode_batch(log_time_ms: int, requests: Sequence[Request]) -> bytes:
    return msgpack.packb(
        [log_time_ms, [[r.client_id, r.seq, r.command] for r in requests]], use_bin_type=True
    )


def decode_batch(value: bytes) -> tuple[int, list[Request]]:
    """Split a chosen value; a value no leader of ours could have made is refused."""
    try:
        log_time_ms, raw_requests = msgpack.unpackb(value, use_list=True, raw=False)
        requests = [
            Request(client_id, seq, command)
            for client_id, seq, command in raw_requests
            if type(client_id) is str and type(seq) is int and type(command) is bytes
        ]
    except Exception as error:
        raise MalformedMessage(f"not a batch: {error}") from None
    if type(log_time_ms) is not int or len(requests) != len(raw_requests):
        raise MalformedMessage("not a batch")
    return log_time_ms, requests


def batch_size_bytes(requests: Sequence[Request]) -> int:
    """An upper bound of the encoded size, cheap enough to keep per pending request."""
    return sum(len(r.command) + len(r.client_id) + 16 for r in requests) + 16
