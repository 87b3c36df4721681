"""Review of b77d450 (a window of 64 slots in flight, not 16; reverted in d116432, as the window
is also alpha: test_window_mixed_review.py): elections over big values. Clusters formed since
the twenty-sixth session run 64 (the window is fixed at formation: runtime/window.py).

A new leader's phase 1 learns every accepted slot of the window through promise parts of one
datagram each. With 64 slots of 40-60 KB values that is some 3.2 MB from each acceptor, all
sent at once in slot order, answered again to every resent Prepare. The first test checks the
rule of parts (``_promise_parts_for``) alone, with every message delivered; the second models
the candidate's UDP receive buffer: what arrives at once beyond it is lost (tail drop).
"""

from __future__ import annotations

import random

import pytest

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import Ballot
from paxoskv.paxos.batches import encode_batch
from paxoskv.paxos.effects import Persist
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.state import Command, Configuration, PromoteLearner, Set, encode_command
from tests.paxos.wire import carry_out

# What the runtime gives the engine on UDP (replica.MAX_MESSAGE_BYTES), and what the kernel
# holds of a socket asking for transport.settings' 4 MiB receive buffer (SO_RCVBUF doubled;
# measured on loopback: 131 datagrams of 63,000 bytes, 171 of 48,000, about 8 MB of payload).
MESSAGE_BYTES = 63_000
RECEIVE_BUFFER_BYTES = 8 << 20


def _size(message: m.Message) -> int:
    return len(m.encode_message(message))


def _cluster(names: str, window: int, slots: int) -> tuple[dict[str, Engine], list[bytes]]:
    """Voters ``a`` + ``names``; ``a`` led, had ``slots`` accepted by all, none chosen, died."""
    config = Configuration(voters=frozenset("a" + names), learners=frozenset())
    settings = {"window_slots": window, "max_message_bytes": MESSAGE_BYTES}
    nodes = {
        n: Engine(EngineSettings(node_id=n, **settings), random.Random(i), config)  # type: ignore[arg-type]
        for i, n in enumerate(names)
    }
    rng = random.Random(220001)
    big = [bytes([slot % 256]) * rng.randint(40_000, 60_000) for slot in range(1, slots + 1)]
    for node in nodes.values():
        for slot, value in enumerate(big, start=1):
            for e in node.receive("a", m.Accept(Ballot(1, "a"), slot, value, 0), now=0.0):
                if isinstance(e, Persist):
                    node.handle_durable(e.sync_id, now=0.0)
    return nodes, big


def _elect(
    nodes: dict[str, Engine], buffer_bytes: float, until_s: float
) -> tuple[float, dict[int, bytes]]:
    """Run until a leader is elected or ``until_s``; return when, and what it re-proposed.

    Messages go out in rounds. In each, what one node is sent is interleaved across its
    senders (they send at the same time) and whatever passes ``buffer_bytes`` is dropped,
    as a full socket buffer drops it.
    """
    everyone = "".join(nodes)
    proposed: dict[int, bytes] = {}
    now = 0.0
    while not any(node.is_leader for node in nodes.values()) and now < until_s:
        now = min(node.next_deadline() for node in nodes.values())
        wire = [
            w
            for n, node in nodes.items()
            for w in carry_out(n, node, node.tick(now), now, everyone)
        ]
        while wire:
            delivered: list[tuple[str, str, m.Message]] = []
            for to in nodes:
                by_sender: dict[str, list[tuple[str, str, m.Message]]] = {}
                for w in wire:
                    if w[1] == to:
                        by_sender.setdefault(w[0], []).append(w)
                arriving = _round_robin(list(by_sender.values()))
                held = 0
                for w in arriving:
                    held += _size(w[2])
                    if held <= buffer_bytes:
                        delivered.append(w)
            wire = []
            for sender, to, message in delivered:
                if isinstance(message, m.Accept) and message.ballot.node_id != "a":
                    proposed[message.slot] = message.value
                wire += carry_out(
                    to, nodes[to], nodes[to].receive(sender, message, now), now, everyone
                )
    return now, proposed


def _round_robin(
    queues: list[list[tuple[str, str, m.Message]]],
) -> list[tuple[str, str, m.Message]]:
    out: list[tuple[str, str, m.Message]] = []
    for i in range(max(map(len, queues), default=0)):
        out += [q[i] for q in queues if i < len(q)]
    return out


@pytest.mark.parametrize("names", ["bc", "bcde"])
def test_a_full_window_of_64_big_values_does_not_stop_the_next_election(names: str) -> None:
    nodes, big = _cluster(names, window=64, slots=64)
    now, proposed = _elect(nodes, buffer_bytes=float("inf"), until_s=30.0)
    assert any(node.is_leader for node in nodes.values()), "no leader within 30 s"
    assert now < 3.0, f"elected only at {now:.2f} s"
    assert [proposed.get(slot) for slot in range(1, 65)] == big


def test_with_16_slots_seven_voters_elect_through_a_full_receive_buffer() -> None:
    """The old window: five other acceptors' 16 parts each (some 4 MB) fit the buffer."""
    nodes, big = _cluster("bcdefg", window=16, slots=16)
    _, proposed = _elect(nodes, buffer_bytes=RECEIVE_BUFFER_BYTES, until_s=30.0)
    assert any(node.is_leader for node in nodes.values()), "no leader within 30 s"
    assert [proposed.get(slot) for slot in range(1, 17)] == big


@pytest.mark.parametrize("names", ["bcdefg", "bcdefghi"], ids=["7-voters", "9-voters"])
def test_with_64_slots_seven_or_nine_voters_elect_through_a_full_receive_buffer(names: str) -> None:
    """Tail drop with no draining during the burst: a bound, not a measurement. On loopback
    (this host, 2 cores, loaded), 5 senders x 64 x 50 KB at once: 166-320 of 320 received,
    always a prefix of each sender's; 3 senders (a 5-voter cluster) 192 of 192.

    Five other acceptors' 64 parts of ~50 KB (~16 MB) overflow the candidate's 8 MB buffer,
    and the lost parts are each sender's last: answered again in full at every resent
    Prepare, no candidate ever assembled a quorum of promises (a strict xfail until the
    twenty-sixth session). A resent Prepare now asks each acceptor only for the slots it
    has yet to report (Engine._resend_prepare), so each round asks for less.
    """
    nodes, big = _cluster(names, window=64, slots=64)
    now, proposed = _elect(nodes, buffer_bytes=RECEIVE_BUFFER_BYTES, until_s=30.0)
    assert any(node.is_leader for node in nodes.values()), "no leader within 30 s"
    assert now < 5.0, f"elected only at {now:.2f} s"  # (0.65 s and 1.33 s when written)
    assert [proposed.get(slot) for slot in range(1, 65)] == big


def test_a_resent_prepare_asks_a_voter_only_a_reported_value_makes_one() -> None:
    """Review of _resend_prepare: voters a, b, c and learner x; a (now dead) led slots 1-5,
    slot 1 promoting x, and only x heard them chosen. Candidate b has applied none of them,
    so x votes only in the configuration slot 1 brings about, which every slot of b's window
    falls under, and x's first promise part is lost. Asking again only the voters of the
    configurations b knows, b never asked x again and waited out its election timeout (the
    broadcast it replaced elected b in 0.1 s)."""
    config = Configuration(voters=frozenset("abc"), learners=frozenset("x"))
    settings = {"window_slots": 64, "max_message_bytes": 2_000}
    nodes = {
        n: Engine(EngineSettings(node_id=n, **settings), random.Random(i), config)  # type: ignore[arg-type]
        for i, n in enumerate("bcx")
    }

    def value(slot: int, command: Command) -> bytes:
        return encode_batch(slot, [m.Request("client", slot, encode_command(command))])

    log = [value(1, PromoteLearner("x"))]
    log += [value(slot, Set(f"k{slot}", "v" * 1_200)) for slot in range(2, 6)]
    for name, node in nodes.items():
        for slot, accepted in enumerate(log, start=1):
            accept = m.Accept(Ballot(1, "a"), slot, accepted, 0)
            carry_out(name, node, node.receive("a", accept, 0.0), 0.0, "bcx")
    x = nodes["x"]
    carry_out("x", x, x.receive("a", m.Commit(Ballot(1, "a"), 5), 0.0), 0.0, "bcx")
    nodes["c"].hold_election(50.0)  # b campaigns first
    nodes["x"].hold_election(50.0)
    now, started, lost = 1.0, None, False
    wire: list[tuple[str, str, m.Message]] = []
    while started is None or now - started < 0.45:  # before b's next campaign (0.5 s on)
        for name, node in nodes.items():
            wire += carry_out(name, node, node.tick(now), now, "bcx")
        if started is None and nodes["b"].role.value == "candidate":
            started = now
        while wire:
            sender, to, message = wire.pop(0)
            if to not in nodes:
                continue  # (a is dead)
            first_part = isinstance(message, m.Promise) and message.from_slot == 1
            if sender == "x" and first_part and not lost:
                lost = True  # one datagram lost: x's first part
                continue
            wire += carry_out(to, nodes[to], nodes[to].receive(sender, message, now), now, "bcx")
        if nodes["b"].is_leader:
            return
        now = min(node.next_deadline() for node in nodes.values())
    raise AssertionError("b did not lead within its first campaign: x was not asked again")
