"""What travels between nodes and clients besides Paxos itself.

Every datagram's payload starts with one byte saying whose it is: ``P`` for a Paxos message
(the engine's own codec follows), ``R`` for the runtime's messages below (a msgpack list whose
first item names it). The runtime messages are the failure detector's hellos, a node's
``ident`` (which formation of its cluster it belongs to), bootstrapping, and the client
protocol that lets a process use the cluster without being a replica: requests, reads,
watches and status. Like the engine's codec, anything malformed raises
:class:`MalformedRuntimeMessage` at the boundary and is dropped there.

Fields are packed as the state machine packs values (:mod:`paxoskv.state.wire`): a value read
back through a member comes back as it was stored, maps with int or tuple keys and tuples
inside values included. A reply too big for one datagram travels in parts (``part``: the
first slice of its bytes, with the total), and the client asks for the rest (``more``) slice
by slice, so a large ``keys`` listing or a 47 KB value never overruns a socket buffer.

Between a thin client and a member, the runtime messages of one turn of the loop travel
together as one ``bundle`` (the whole payloads, each a msgpack bin, decoded one by one so a
part that does not decode fails alone): a client keeping 64 requests outstanding sent 64
datagrams, each a system call and a wake-up of the member, and the member answered alike.
A client bundles only to members whose hellos say they read bundles, and a member only to
clients that sent it one, so either side runs beside an earlier release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack

from paxoskv.runtime.window import formation_field, formation_from_field
from paxoskv.state.frozen_plain import PlainFrozen
from paxoskv.state.history import ChangeEvent
from paxoskv.state.keys import key_from_wire, key_to_wire
from paxoskv.state.wire import pack, unpack

if TYPE_CHECKING:  # the thin client never sends a Paxos message: it need not load their classes
    from paxoskv.paxos.messages import Message

PAXOS = b"P"
RUNTIME = b"R"


class MalformedRuntimeMessage(ValueError):
    """Not a runtime message this build understands.

    ``name`` and ``head`` are what could still be read of it (its name and leading fields), so
    that a client can fail the request a reply answers instead of waiting for it in vain.
    """

    def __init__(self, reason: str, name: str | None = None, head: list[Any] | None = None):
        super().__init__(reason)
        self.name = name
        self.head = head or []


ROUTE_FIELDS = {"rep": 2, "readrep": 1, "statusrep": 1, "events": 1}
"""How many leading fields of each reply say which request or watch it answers."""

PART_ENVELOPE_BYTES = 1_024
"""Room a ``part`` message keeps in a datagram for its own fields besides the slice."""

BUNDLE = "bundle"
_BUNDLE_HEAD_BYTES = 16  # the bundle's own envelope: R, an array header, its name
_BIN_HEAD_BYTES = 5  # the most a bin header takes (a payload is under 4 GB)


def paxos_payload(message: Message) -> bytes:
    """A Paxos message as the runtime sends it: its kind byte, then the message (joined in one
    pass, so a slot's value is not copied once more to put the byte in front).

    The replica, which sends one per effect, calls ``encode_message(message, PAXOS)`` itself;
    the codec is imported here on first use so that a thin client, which imports this module
    for the runtime messages, does not build the Paxos messages' classes."""
    from paxoskv.paxos.messages import encode_message

    return encode_message(message, PAXOS)


class Hello(PlainFrozen):
    """A node's periodic "I am here": the failure detector's heartbeat and its gossip.

    ``wants`` is the role it asks for (voter or learner; a client says nothing). ``genesis`` is
    the cluster's first voter set, which a joining node needs to replay the log from slot 1
    (it takes it from the member's :class:`Ident`, with the formation; from a hello only when
    the member runs an earlier release, which sends no ident).
    """

    __slots__ = (
        "applied_slot",
        "bootstrapping",
        "bundles",
        "durable_slot",
        "genesis",
        "leader_id",
        "revision",
        "wants",
    )
    __match_args__ = (
        "wants",
        "applied_slot",
        "revision",
        "leader_id",
        "genesis",
        "bootstrapping",
        "durable_slot",
        "bundles",
    )

    wants: str
    applied_slot: int
    revision: int
    leader_id: str
    genesis: tuple[str, ...]
    bootstrapping: bool
    # The applied slot a power cut cannot take back: the chosen markers up to it are synced.
    # A removed voter leaves on these (Replica._still_needed); an earlier release sends none,
    # and its applied slot stands in, as that release's own leave rule read it.
    durable_slot: int
    # It reads a ``bundle`` (see the module's docstring); an earlier release's hello says nothing.
    bundles: bool

    def __init__(
        self,
        wants: str,
        applied_slot: int,
        revision: int,
        leader_id: str,
        genesis: tuple[str, ...],
        bootstrapping: bool,
        durable_slot: int | None = None,
        bundles: bool = False,
    ) -> None:
        object.__setattr__(self, "wants", wants)
        object.__setattr__(self, "applied_slot", applied_slot)
        durable = applied_slot if durable_slot is None else durable_slot
        object.__setattr__(self, "durable_slot", durable)
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "leader_id", leader_id)
        object.__setattr__(self, "genesis", genesis)
        object.__setattr__(self, "bootstrapping", bootstrapping)
        object.__setattr__(self, "bundles", bundles)


def encode_runtime(kind: str, *fields: Any) -> bytes:
    """Raises :class:`~paxoskv.errors.ValueNotSerialisable` if a field cannot be carried."""
    return RUNTIME + pack([kind, *fields])


def decode_runtime(payload: bytes) -> tuple[str, list[Any]]:
    try:
        body = unpack(payload[1:])
    except Exception as error:
        name, head = _readable_head(payload[1:])
        raise MalformedRuntimeMessage(f"not msgpack: {error}", name, head) from None
    if type(body) is not list or not body or type(body[0]) is not str:
        raise MalformedRuntimeMessage("not a runtime message")
    return body[0], body[1:]


def bundles(payloads: list[bytes], limit: int) -> list[bytes]:
    """``payloads`` (runtime payloads, each within ``limit``) as few datagrams as fit
    ``limit``: runs of them joined into bundles, in order; a payload with no other beside it
    goes as it is, so a lone request reads the same to every release."""
    out: list[bytes] = []
    run: list[bytes] = []
    size = _BUNDLE_HEAD_BYTES
    for payload in payloads:
        cost = len(payload) + _BIN_HEAD_BYTES
        if run and size + cost > limit:
            out.append(_joined(run))
            run, size = [], _BUNDLE_HEAD_BYTES
        run.append(payload)
        size += cost
    if run:
        out.append(_joined(run))
    return out


def _joined(run: list[bytes]) -> bytes:
    return run[0] if len(run) == 1 else RUNTIME + pack([BUNDLE, *run])


def bundle_parts(fields: list[Any]) -> list[bytes]:
    """The payloads a ``bundle`` carries (its fields); each is decoded on its own."""
    if not all(type(part) is bytes and part[:1] == RUNTIME for part in fields):
        raise MalformedRuntimeMessage("a bundle holds something other than runtime payloads")
    return fields


def _readable_head(body: bytes) -> tuple[str | None, list[Any]]:
    """The name and the leading fields of a message whose whole does not decode."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(body)
    name: object = None
    head: list[Any] = []
    try:
        count = unpacker.read_array_header()
        name = unpacker.unpack() if count else None
        if type(name) is str:
            for _ in range(min(count - 1, 3)):
                head.append(unpacker.unpack())
    except Exception:
        pass
    return (name, head) if type(name) is str else (None, [])


def encode_hello(hello: Hello) -> bytes:
    return encode_runtime(
        "hello",
        hello.wants,
        hello.applied_slot,
        hello.revision,
        hello.leader_id,
        list(hello.genesis),
        hello.bootstrapping,
        hello.durable_slot,
        hello.bundles,
    )


def decode_hello(fields: list[Any]) -> Hello:
    """Fields after the eighth are a later release's, and ignored (see :class:`Ident`); the
    seventh (the durable slot) and the eighth (bundles read) are absent from earlier ones'."""
    try:
        wants, applied, revision, leader, genesis, bootstrapping = fields[:6]
        durable = int(fields[6]) if len(fields) > 6 else None
        bundles = fields[7] if len(fields) > 7 else False
        hello = Hello(
            str(wants),
            int(applied),
            int(revision),
            str(leader),
            tuple(genesis),
            bootstrapping,
            durable,
            bundles,
        )
    except (TypeError, ValueError, OverflowError):  # (int() of an infinity overflows)
        raise MalformedRuntimeMessage("bad hello") from None
    if (
        not all(type(node) is str for node in hello.genesis)
        or type(bootstrapping) is not bool
        or type(bundles) is not bool
    ):
        raise MalformedRuntimeMessage("bad hello")
    return hello


class Ident(PlainFrozen):
    """Which cluster a node's data dir belongs to: its genesis voters and formation id
    (``identity.py``); an empty genesis for a node with none yet (a fresh data dir).

    Sent before every hello, and the only thing that makes a peer's Paxos count
    (``Replica._on_ident``). Its own message, not more hello fields: a release that reads
    hellos of exactly six fields drops longer ones as malformed, and would take every
    upgraded node for down; an unknown message name it ignores.
    """

    __slots__ = ("asks", "formation", "genesis")
    __match_args__ = ("genesis", "formation", "asks")

    genesis: tuple[str, ...]
    formation: str
    asks: bool  # answer with yours: the sender has just started (or joined)

    def __init__(self, genesis: tuple[str, ...], formation: str, asks: bool = False) -> None:
        object.__setattr__(self, "genesis", genesis)
        object.__setattr__(self, "formation", formation)
        object.__setattr__(self, "asks", asks)


def encode_ident(ident: Ident) -> bytes:
    """A windowed cluster's formation goes in the form releases before windows drop
    (``window.formation_field``)."""
    formation = formation_field(ident.formation)
    return encode_runtime("ident", list(ident.genesis), formation, ident.asks)


def decode_ident(fields: list[Any]) -> Ident:
    """Fields after the third are a later release's, and ignored."""
    if len(fields) < 3 or type(fields[0]) is not list:
        raise MalformedRuntimeMessage("bad ident")
    genesis, field, asks = fields[:3]
    try:
        formation = formation_from_field(field)
    except ValueError as error:
        raise MalformedRuntimeMessage(f"bad ident: {error}") from None
    if not all(type(node) is str and node for node in genesis) or type(asks) is not bool:
        raise MalformedRuntimeMessage("bad ident")
    return Ident(tuple(genesis), formation, asks)


class BootAnnouncement(PlainFrozen):
    """A bootstrapping node's count, the nodes it has met and its nonce (``Bootstrap``).

    Its own message beside the hello, not more fields in it: see :class:`Ident`. The nonce
    came later, as a third field: a release that reads two ignores it, and one that sends two
    is heard with the nonce "".
    """

    __slots__ = ("expect", "met", "nonce")
    __match_args__ = ("expect", "met", "nonce")

    expect: int
    met: frozenset[str]
    nonce: str

    def __init__(self, expect: int, met: frozenset[str], nonce: str = "") -> None:
        object.__setattr__(self, "expect", expect)
        object.__setattr__(self, "met", met)
        object.__setattr__(self, "nonce", nonce)


def encode_boot(expect: int, met: list[str], nonce: str) -> bytes:
    return encode_runtime("boot", expect, met, nonce)


def decode_boot(fields: list[Any]) -> BootAnnouncement:
    if len(fields) < 2 or type(fields[0]) is not int or type(fields[1]) is not list:
        raise MalformedRuntimeMessage("bad boot announcement")
    expect, met, nonce = fields[0], fields[1], fields[2] if len(fields) > 2 else ""
    if (
        expect < 1
        or not met
        or not all(type(node) is str and node for node in met)
        or type(nonce) is not str
    ):
        raise MalformedRuntimeMessage("bad boot announcement")
    return BootAnnouncement(expect, frozenset(met), nonce)


def event_to_wire(event: ChangeEvent) -> list[Any]:
    """A watch event as a ``watch`` reply carries it (its key in the key's wire form)."""
    return [event.kind, key_to_wire(event.key), event.value, event.prev_value, event.revision]


def event_from_wire(raw: list[Any]) -> ChangeEvent:
    kind, key, value, prev_value, revision = raw
    return ChangeEvent(kind, key_from_wire(key), value, prev_value, int(revision))
