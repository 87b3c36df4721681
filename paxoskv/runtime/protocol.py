"""What travels between nodes and clients besides Paxos itself.

Every datagram's payload starts with one byte saying whose it is: ``P`` for a Paxos message
(the engine's own codec follows), ``R`` for the runtime's messages below (a msgpack list whose
first item names it). The runtime messages are the failure detector's hellos, bootstrapping,
and the client protocol that lets a process use the cluster without being a replica: requests,
reads, watches and status. Like the engine's codec, anything malformed raises
:class:`MalformedRuntimeMessage` at the boundary and is dropped there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from paxoskv.paxos.messages import Message, encode_message

PAXOS = b"P"
RUNTIME = b"R"


class MalformedRuntimeMessage(ValueError):
    """Not a runtime message this build understands."""


def paxos_payload(message: Message) -> bytes:
    return PAXOS + encode_message(message)


@dataclass(frozen=True, slots=True)
class Hello:
    """A node's periodic "I am here": the failure detector's heartbeat and its gossip.

    ``wants`` is the role it asks for (voter or learner; a client says nothing). ``genesis`` is
    the cluster's first voter set, which a joining node needs to replay the log from slot 1.
    """

    wants: str
    applied_slot: int
    revision: int
    leader_id: str
    genesis: tuple[str, ...]
    bootstrapping: bool


def encode_runtime(kind: str, *fields: Any) -> bytes:
    return RUNTIME + msgpack.packb([kind, *fields], use_bin_type=True)


def decode_runtime(payload: bytes) -> tuple[str, list[Any]]:
    try:
        body = msgpack.unpackb(payload[1:], raw=False, use_list=True)
    except Exception as error:
        raise MalformedRuntimeMessage(f"not msgpack: {error}") from None
    if type(body) is not list or not body or type(body[0]) is not str:
        raise MalformedRuntimeMessage("not a runtime message")
    return body[0], body[1:]


def encode_hello(hello: Hello) -> bytes:
    return encode_runtime(
        "hello",
        hello.wants,
        hello.applied_slot,
        hello.revision,
        hello.leader_id,
        list(hello.genesis),
        hello.bootstrapping,
    )


def decode_hello(fields: list[Any]) -> Hello:
    try:
        wants, applied, revision, leader, genesis, bootstrapping = fields
        hello = Hello(
            str(wants), int(applied), int(revision), str(leader), tuple(genesis), bootstrapping
        )
    except (TypeError, ValueError):
        raise MalformedRuntimeMessage("bad hello") from None
    if not all(type(node) is str for node in hello.genesis) or type(bootstrapping) is not bool:
        raise MalformedRuntimeMessage("bad hello")
    return hello


@dataclass(frozen=True, slots=True)
class BootAnnouncement:
    """A bootstrapping node's count and the nodes it has met (``membership.Bootstrap``).

    Its own message beside the hello, not more fields in it: a release that reads hellos of
    six fields drops longer ones as malformed, and would take every upgraded node for down;
    an unknown message name it ignores.
    """

    expect: int
    met: frozenset[str]


def encode_boot(expect: int, met: list[str]) -> bytes:
    return encode_runtime("boot", expect, met)


def decode_boot(fields: list[Any]) -> BootAnnouncement:
    if len(fields) < 2 or type(fields[0]) is not int or type(fields[1]) is not list:
        raise MalformedRuntimeMessage("bad boot announcement")
    expect, met = fields[0], fields[1]
    if expect < 1 or not met or not all(type(node) is str and node for node in met):
        raise MalformedRuntimeMessage("bad boot announcement")
    return BootAnnouncement(expect, frozenset(met))
