"""Who is up, and what the leader does about members: pure functions of what was heard.

The failure detector is gossip over hellos: every node broadcasts one every
``hello_interval_s``; a member not heard for ``suspect_after_s`` is suspect, for
``down_after_s`` down. The leader turns that view into configuration changes, one at a time,
through the log like any command: a node asking to join is added as a learner; a learner that
asked to vote is promoted once it has caught up; a voter down for longer than
``auto_remove_down_after_s`` (when set) is removed, never below ``min_voters``. A node that was
removed is not added back on the strength of what it said before it learned it was removed,
and a node whose genesis or formation is another cluster's is never added.

Bootstrapping a new cluster is :class:`Bootstrap`, whose docstring proves its rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from paxoskv.runtime.identity import formation_id
from paxoskv.state import AddLearner, Command, Configuration, PromoteLearner, RemoveMember
from paxoskv.state.frozen_plain import PlainRecord

CATCH_UP_MARGIN_SLOTS = 64


class PeerView(PlainRecord):
    __slots__ = (
        "applied_slot",
        "durable_slot",
        "formation",
        "genesis",
        "last_seen",
        "leader_id",
        "revision",
        "wants",
    )
    __match_args__ = (
        "last_seen",
        "wants",
        "applied_slot",
        "revision",
        "leader_id",
        "genesis",
        "formation",
        "durable_slot",
    )

    last_seen: float
    wants: str
    applied_slot: int
    revision: int
    leader_id: str
    genesis: tuple[str, ...]
    formation: str | None  # None: not told (a fresh node, or an earlier release's)
    durable_slot: int  # its applied slot that a power cut cannot take back (Hello's)

    def __init__(
        self,
        last_seen: float,
        wants: str,
        applied_slot: int,
        revision: int,
        leader_id: str,
        genesis: tuple[str, ...] = (),
        formation: str | None = None,
        durable_slot: int | None = None,
    ) -> None:
        self.last_seen = last_seen
        self.wants = wants
        self.applied_slot = applied_slot
        self.revision = revision
        self.leader_id = leader_id
        self.genesis = genesis
        self.formation = formation
        self.durable_slot = applied_slot if durable_slot is None else durable_slot


@dataclass(frozen=True, slots=True)
class Member:
    """One member as this node sees it (``paxos-kv members``)."""

    node_id: str
    role: str  # voter | learner | joining | leaving (removed, voting on: Replica._still_needed)
    state: str  # up | suspect | down
    applied_revision: int
    is_leader: bool


def liveness(
    now: float, last_seen: float | None, suspect_after_s: float, down_after_s: float
) -> str:
    if last_seen is None:
        return "down"
    silent = now - last_seen
    if silent < suspect_after_s:
        return "up"
    return "suspect" if silent < down_after_s else "down"


def membership_change(
    config: Configuration,
    peers: dict[str, PeerView],
    *,
    now: float,
    leader_applied_slot: int,
    suspect_after_s: float,
    down_after_s: float,
    auto_remove_down_after_s: float | None,
    min_voters: int,
    watching_since: float,
    genesis: tuple[str, ...] = (),
    formation: str | None = None,
    removed_at: Mapping[str, int] | None = None,
    leader_id: str = "",
) -> Command | None:
    """The one configuration change the leader should propose now, if any.

    ``leader_id`` is the leader asking: it is up, whatever ``peers`` (which holds only the
    others) says of it; judged as a voter never heard, it removed itself (review,
    twenty-ninth session).

    ``removed_at`` maps a node taken out of the configuration to the slot of its removal (or
    a later slot the leader had applied when it saw it): a hello the node sent before it
    applied its own removal reports an applied slot below it, and must not add the node
    straight back (a process that reuses the id on a fresh data dir catches up to it first,
    and is then added).
    """
    removed_at = removed_at or {}
    for node_id in sorted(peers):
        view = peers[node_id]
        state = liveness(now, view.last_seen, suspect_after_s, down_after_s)
        if state != "up" or view.wants not in ("voter", "learner"):
            continue
        if genesis and view.genesis and view.genesis != genesis:
            continue  # another cluster's node (of the same name): see identity.py
        if formation is not None and view.formation is not None and view.formation != formation:
            continue  # another formation's (same name and ids, formed apart): see identity.py
        if node_id not in config.members():
            if view.applied_slot < removed_at.get(node_id, 0):
                continue
            return AddLearner(node_id)
        caught_up = view.applied_slot >= leader_applied_slot - CATCH_UP_MARGIN_SLOTS
        if node_id in config.learners and view.wants == "voter" and caught_up:
            return PromoteLearner(node_id)
    if auto_remove_down_after_s is not None and len(config.voters) > min_voters:
        for node_id in sorted(config.voters - {leader_id}):
            # A voter never heard is judged from when this node started listening.
            heard = peers.get(node_id)
            last_seen = heard.last_seen if heard else watching_since
            if now - last_seen > auto_remove_down_after_s:
                return RemoveMember(node_id)
    return None


class Bootstrap(PlainRecord):
    """When a node may form a new cluster, and with whom: one genesis on every node.

    Each bootstrapping node announces (with every hello) its expected count N
    (``--bootstrap-expect``), the set of node ids it has met, itself included: every node
    it has heard an announcement from, and a random nonce. That set only grows: a peer met
    is never forgotten. A node bootstraps with set S only when

    1. ``|S| == N``, S being its whole met-set;
    2. every member of S announced the same N; and
    3. it has heard from EVERY other member of S an announcement whose met-set is exactly S.

    *Claim: two nodes that bootstrap with sets S and S' that share a member have S == S'.*
    Let c be in both. Bootstrapping needs c's announcement of met-set S (condition 3, or c
    bootstrapped S itself, so its met-set was S) and likewise of S'. The met-sets one node
    announces over time form a chain under inclusion, so one of S, S' contains the other;
    c announced one N (condition 2 at both nodes), and ``|S| == |S'| == N`` (condition 1), so
    S == S'. In particular a member that announced S can never later bootstrap another set:
    it would need a met-set of N members strictly containing S, which has N members.

    *The formation id* (``identity.py``) is a hash of each member of S with the nonce it
    announced with met-set S (condition 3 heard exactly those announcements; the node's own
    is its own nonce). A node's nonce is one over its life, kept with its met-set before any
    met-set of two or more is announced, so every member of S hashes the same nonces: one
    formation id on every node, with no further round. A node with no data dir that restarts
    announces a new nonce; members may then hash different ones and refuse each other (safe:
    the limit below already asks to restart such a group whole).

    "Over time" includes restarts: ``keep`` is called with every larger met-set before
    :meth:`hear` returns, hence before it is announced, and the runtime writes it to the data
    dir and starts the next life from it (``met``). A node with no data dir keeps it in memory
    only: restarted before it bootstraps, it may announce a smaller set than before, and the
    claim then holds only if it is restarted after the others have formed their cluster (it
    joins it) or they are all restarted too.

    What it cannot rule out is two groups that never heard of each other at all (a partition
    at start, with more nodes than N started): no rule can, without knowing the others exist.
    Two guards narrow that to a network that hides nodes from each other for longer than a
    hello interval: a node that has met more than N never bootstraps (it logs why), and a
    bootstrapped member answers an announcement with its hello at once, so a late node joins
    the cluster formed rather than form one of its own (the runtime also waits, before it
    bootstraps, one ``settle_s`` in which nothing changes: a member's hello arriving then
    wins).

    A node that meets more than N, or a member announcing another N, never bootstraps and
    says so once (the runtime logs it): the fix is to start every node with the same
    ``--bootstrap-expect``, or to ``--join`` the cluster once it is formed.
    """

    __slots__ = (
        "_complained",
        "_ready_since",
        "expect",
        "heard",
        "keep",
        "met",
        "node_id",
        "nonce",
        "nonces",
        "settle_s",
    )
    __match_args__ = (
        "node_id",
        "expect",
        "settle_s",
        "met",
        "nonce",
        "heard",
        "nonces",
        "keep",
        "_complained",
        "_ready_since",
    )

    node_id: str
    expect: int
    settle_s: float
    met: set[str]
    nonce: str
    heard: dict[str, tuple[int, frozenset[str], str]]
    # The nonce each node announced when it was met, kept with the met-set: a founder
    # restarted before its genesis hears no announcements from members (see founded).
    nonces: dict[str, str]
    keep: Callable[[int, frozenset[str]], None] | None
    _complained: set[tuple[str, int]]
    _ready_since: tuple[frozenset[str], float] | None

    def __init__(
        self,
        node_id: str,
        expect: int,
        settle_s: float = 0.0,
        met: set[str] | None = None,
        nonce: str = "",
        heard: dict[str, tuple[int, frozenset[str], str]] | None = None,
        nonces: dict[str, str] | None = None,
        keep: Callable[[int, frozenset[str]], None] | None = None,
        _complained: set[tuple[str, int]] | None = None,
        _ready_since: tuple[frozenset[str], float] | None = None,
    ) -> None:
        self.node_id = node_id
        self.expect = expect
        self.settle_s = settle_s
        self.met = set() if met is None else met
        self.nonce = nonce
        self.heard = dict() if heard is None else heard
        self.nonces = dict() if nonces is None else nonces
        self.keep = keep
        self._complained = set() if _complained is None else _complained
        self._ready_since = _ready_since
        self.__post_init__()

    def __post_init__(self) -> None:
        self.met.add(self.node_id)

    def announcement(self) -> tuple[int, list[str], str]:
        return self.expect, sorted(self.met), self.nonce

    def hear(self, sender: str, expect: int, met: frozenset[str], nonce: str = "") -> list[str]:
        """Take ``sender``'s announcement; the complaints it newly makes, to log once.

        (An earlier release announces no nonce: it counts as "".)"""
        complaints = []
        if sender not in self.met:
            self.met.add(sender)
            self.nonces[sender] = nonce
            if self.keep is not None:
                self.keep(self.expect, frozenset(self.met))
        before = self.heard.get(sender)
        # Met-sets only grow: a smaller one is an older datagram overtaken by a newer one.
        if before is None or len(met) >= len(before[1]):
            self.heard[sender] = (expect, met, nonce)
        if expect != self.expect and (sender, expect) not in self._complained:
            self._complained.add((sender, expect))
            complaints.append(
                f"{sender} was started with --bootstrap-expect {expect} and {self.node_id} "
                f"with {self.expect}: they will not form a cluster together. Start every node "
                "of a new cluster with the same --bootstrap-expect, or --join the cluster once "
                "it is formed"
            )
        if len(self.met) > self.expect and ("", 0) not in self._complained:
            self._complained.add(("", 0))  # once: the nodes met since are no news
            complaints.append(
                f"{self.node_id} has met {len(self.met)} nodes starting a cluster "
                f"({', '.join(sorted(self.met))}), more than --bootstrap-expect {self.expect}: "
                f"not bootstrapping. Stop the nodes that should not be in it, then restart "
                f"exactly {self.expect} nodes with --bootstrap-expect {self.expect}, each on a "
                "fresh --data-dir (a data dir keeps the nodes it met, and that only grows), and "
                "--join the others once it is formed"
            )
        return complaints

    def ready(self, now: float) -> tuple[str, ...] | None:
        """The genesis voters to bootstrap with now, if the rule allows it (and has for
        ``settle_s``)."""
        members = frozenset(self.met)
        agreed = len(members) == self.expect and all(
            self.heard.get(node, (0, frozenset(), ""))[:2] == (self.expect, members)
            for node in members - {self.node_id}
        )
        if not agreed:
            self._ready_since = None
            return None
        if self._ready_since is None or self._ready_since[0] != members:
            self._ready_since = (members, now)
        if now - self._ready_since[1] < self.settle_s:
            return None
        return tuple(sorted(members))

    def formation(self) -> str:
        """The formation id of the cluster :meth:`ready` agreed on (see the class)."""
        nonces = {node: self._nonce_of(node) for node in self.met - {self.node_id}}
        return formation_id(nonces | {self.node_id: self.nonce})

    def _nonce_of(self, node: str) -> str:
        heard = self.heard.get(node)
        return heard[2] if heard is not None else self.nonces[node]

    def founded(self, voters: tuple[str, ...], formation: str) -> bool:
        """Whether the cluster of ``voters`` and ``formation`` is one this node's own
        announcements formed, though a member told it before it bootstrapped itself: then
        its genesis seat is this life's own. Its met-set is exactly those voters, and the
        formation is the hash of its own nonce with theirs (as heard, or as kept when they
        were met: restarted after announcing its full met-set, it hears no member announce
        again once they have bootstrapped); a node that lost an earlier life's nonce (a wiped
        data dir) cannot match it."""
        others = self.met - {self.node_id}
        known = all(node in self.heard or node in self.nonces for node in others)
        return self.met == set(voters) and known and self.formation() == formation
