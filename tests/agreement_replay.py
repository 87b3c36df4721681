"""A seeded stream of log slots and datagrams, replayed by whichever build imports it.

tests/test_builds_agree.py runs :func:`replay` in the test's process (the compiled core) and in
a child process on the pure-Python source, and compares the two transcripts byte for byte. A
cluster may mix the builds (nodes upgraded one by one, a pure-Python learner on a machine with
no compiler), so they must apply every slot alike, refuse the same malformed ones and decode
the same datagrams: the compiled build checks argument types at call boundaries and reads
``True`` as ``1`` in an ``int`` parameter, which would make a replica diverge if a value from
the wire reached such a parameter unchecked.

The stream mixes well-formed commands with hand-packed arrays whose fields are replaced by
values of the wrong type (bools where ints go, floats, nil, huge ints, empty and nested
containers), slots with odd columns, and bit-flipped encodings of every message type.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import msgpack

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.batches import check_columns, encode_batch, read_batch
from paxoskv.state import Configuration, KVStateMachine, encode_command
from paxoskv.state.commands import Compare, Delete, LeaseGrant, LeaseKeepalive, Set, Txn

ODD_VALUES: tuple[Any, ...] = (
    True,
    False,
    None,
    1.5,
    -1,
    0,
    2**63,
    2**64 - 1,
    "",
    b"",
    [],
    {},
    [1, [2]],
    {"a": b"b"},
    "k",
    b"k",
    ["t", 1],
)
CLIENTS = ("c1", "c2", "c3", "")


def _pack(raw: object) -> bytes:
    return msgpack.packb(raw, use_bin_type=True)


def _value(rng: random.Random) -> Any:
    return rng.choice(
        [rng.randrange(-(2**40), 2**40), "v" * rng.randrange(0, 40), b"\x00\x01", [1, "x"], None]
    )


def _key(rng: random.Random) -> Any:
    return rng.choice(
        [f"k{rng.randrange(12)}", b"b%d" % rng.randrange(4), ("t", rng.randrange(3)), "k0"]
    )


def _command(rng: random.Random, leases: list[int]) -> bytes:
    """A command's bytes: usually well formed, sometimes a wire array with a field spoiled."""
    kind = rng.randrange(10)
    if kind <= 3:
        lease = rng.choice([None, None, *leases[-2:]]) if leases else None
        return encode_command(Set(_key(rng), _value(rng), lease))
    if kind == 4:
        return encode_command(Delete(_key(rng)))
    if kind == 5:
        compare = Compare(_key(rng), "version", rng.choice(["==", "<", ">"]), rng.randrange(3))
        return encode_command(Txn((compare,), (Set(_key(rng), _value(rng)),), (Delete(_key(rng)),)))
    if kind == 6:
        return encode_command(LeaseGrant(rng.randrange(1, 5_000), rng.randrange(1, 6)))
    if kind == 7 and leases:
        return encode_command(LeaseKeepalive(rng.choice(leases)))
    # A wire array with one field replaced by a value of another type.
    wire: list[Any] = rng.choice(
        [
            [1, "k1", "v", None],
            [2, "k2"],
            [3, [["k1", 1, 0, 1]], [[1, "k3", 5, None]], []],
            [4, 1000, 7],
            [5, 7],
            [6, 7],
            [7, 7],
            [0],
        ]
    )
    spoiled = rng.randrange(len(wire))
    wire[spoiled] = rng.choice(ODD_VALUES)
    return _pack(wire)


def _plain_run(rng: random.Random, log_time_ms: int, next_seq: dict[str, int]) -> bytes:
    """The usual busy slot: one client's plain Sets at its next seqs (``plain_sets``' path),
    now and then with one item spoiled or a seq out of line, which sends it the general way."""
    client = rng.choice(CLIENTS[:3])
    count = rng.choice([4, 5, 16, 40])
    first = next_seq.get(client, 0) + (rng.randrange(-2, 3) if rng.random() < 0.2 else 0)
    commands = [_pack([1, f"k{rng.randrange(12)}", _value(rng), None]) for _ in range(count)]
    if rng.random() < 0.2:
        commands[rng.randrange(count)] = _pack(
            rng.choice(
                [[1, "", 1, None], [1, "k1", 1, True], [True, "k1", 1, None], [1, 5, 1, None]]
            )
        )
    next_seq[client] = max(next_seq.get(client, 0), first + count)
    requests = [m.Request(client, max(first, 0) + i, cmd) for i, cmd in enumerate(commands)]
    return encode_batch(log_time_ms, requests)


def _slot_value(rng: random.Random, log_time_ms: int, leases: list[int]) -> bytes:
    """One chosen value: a batch as a leader packs it, or now and then a hand-made one."""
    count = rng.choice([1, 2, 5, 16, 20, 40])
    client = rng.choice(CLIENTS)
    first = rng.randrange(0, 60)
    requests = [
        m.Request(client if rng.random() < 0.8 else rng.choice(CLIENTS), first + i, cmd)
        for i, cmd in enumerate(_command(rng, leases) for _ in range(count))
    ]
    if rng.random() < 0.1:
        columns: list[Any] = [
            log_time_ms,
            [r.client_id for r in requests],
            [r.seq for r in requests],
            [r.command for r in requests],
        ]
        columns[rng.randrange(4)] = rng.choice(ODD_VALUES)
        return _pack(columns)
    return encode_batch(log_time_ms, requests)


def _apply_slot(machine: KVStateMachine, value: bytes, rng: random.Random) -> list[str]:
    """What a replica does with a chosen value (as ``Engine._apply_slot``), as text: as the
    node every client waits on, as one none waits on (a follower), or some wait on."""
    try:
        log_time_ms, client_ids, seqs, items = read_batch(value)
        check_columns(log_time_ms, client_ids, list(seqs), items)
    except m.MalformedMessage as error:
        return [f"refused: {type(error).__name__}"]
    waits = rng.choice(["all", "none", "some"])
    waiting = {
        client: {s for s in seqs if waits == "all" or (waits == "some" and s % 2)}
        for client in client_ids
    }
    answered = machine.apply_items(
        client_ids, seqs, items, log_time_ms, answer=waiting, checked=True
    )
    return [f"{c}/{s}:{r.hex()}" for c, s, r in zip(*answered, strict=True)]


def _messages(rng: random.Random) -> list[m.Message]:
    ballot = Ballot(3, "n1")
    return [
        m.Prepare(ballot, 4),
        m.Promise(ballot, 4, (m.PromiseEntry(5, ballot, b"x", True),), 9, False),
        m.Nack(ballot, Ballot(4, "n2")),
        m.Accept(ballot, 7, b"value", 6),
        m.Accepted(ballot, (7, 8)),
        m.Commit(ballot, 8),
        m.Heartbeat(ballot, 8, 2),
        m.HeartbeatAck(ballot, 2, 8),
        m.Forward((m.Request("c", 1, b"\x91\x00"), m.Request("c", 2, b"\x91\x00"))),
        m.ReadIndexRequest((1, 2)),
        m.ReadIndexRequest((3,), True),
        m.ReadIndexReply((1,), 9),
        m.CatchupRequest(3),
        m.CatchupReply((m.CatchupEntry(3, b"v"),), 9, 0),
        m.SnapshotRequest(3, 0),
        m.SnapshotChunk(3, 0, 10, b"0123456789"),
    ]


def _decoded(data: bytes) -> str:
    try:
        message = m.decode_message(data)
    except m.MalformedMessage:
        return "malformed"
    return m.encode_message(message).hex()


def replay(seed: int, slots: int = 150) -> dict[str, Any]:
    """The transcript of one seed: every slot's answers, digests, the snapshot, datagrams."""
    rng = random.Random(seed)
    machine = KVStateMachine(Configuration(voters=frozenset({"n1", "n2", "n3"})))
    leases = [1, 2, 3, 4, 5]
    log_time_ms = 1_000
    transcript: list[Any] = []
    next_seq: dict[str, int] = {}
    for _ in range(slots):
        log_time_ms += rng.choice([0, 1, 250, 2_000])
        if rng.random() < 0.4:
            value = _plain_run(rng, log_time_ms, next_seq)
        else:
            value = _slot_value(rng, log_time_ms, leases)
        transcript.append(_apply_slot(machine, value, rng))
        transcript.append(machine.digest().hex())
        transcript.append(sorted(machine.due_leases(log_time_ms + 3_000)))
    snapshot = machine.snapshot()
    restored = KVStateMachine.restore(snapshot)
    datagrams = []
    for message in _messages(rng):
        data = bytearray(m.encode_message(message))
        datagrams.append(_decoded(bytes(data)))
        for _ in range(20):
            spoiled = bytearray(data)
            spoiled[rng.randrange(len(spoiled))] ^= 1 << rng.randrange(8)
            datagrams.append(_decoded(bytes(spoiled)))
        datagrams.append(_decoded(bytes(data[: rng.randrange(len(data))])))
    return {
        "slots": transcript,
        "snapshot": hashlib.sha256(snapshot).hexdigest(),
        "restored": restored.digest().hex(),
        "datagrams": datagrams,
    }
