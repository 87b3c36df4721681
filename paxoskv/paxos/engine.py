"""The Multi-Paxos engine of one node: acceptor, proposer and learner composed, without I/O.

Theory of operation
-------------------
Inputs are method calls from the runtime (or the simulator), each with the time ``now`` in
seconds as a number; every call returns the effects to carry out (``paxoskv.paxos.effects``).

Roles, as a table (a transition not listed cannot happen):

    FOLLOWER  --election timeout, is a voter-->          CANDIDATE
    CANDIDATE --promises from a quorum of every config-->  LEADER
    CANDIDATE --election timeout-->                      CANDIDATE (higher ballot)
    CANDIDATE --higher ballot seen, or too far behind--> FOLLOWER
    LEADER    --higher ballot seen, or no quorum acks--> FOLLOWER

Phase 1 runs once per leadership for every slot from the candidate's first unapplied one
("Paxos Made Moderately Complex", section 3: the leader's scouts). The leader re-proposes the
highest-ballot value each promise reported and fills holes with no-ops, then runs phase 2 for
a window of ``window_slots`` slots at a time, batching every request that waited. Accepts go
to everyone in one broadcast; replies come back unicast, only once durable. Slots are chosen
in order, so "chosen up to N" is one number that commits, heartbeats and catch-up share.

The durability rule: a reply that depends on a promise or an accept waits in ``_held`` until
the runtime reports the matching :class:`Persist` durable. Nothing leaves early.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from itertools import chain, compress, starmap
from operator import itemgetter
from typing import Any, Final, Protocol, cast

from mypy_extensions import mypyc_attr

from paxoskv.paxos import messages as m
from paxoskv.paxos.ballot import ZERO_BALLOT, Ballot
from paxoskv.paxos.batches import (
    Columns,
    batch_size_bytes,
    encode_batch,
    pack_batch,
    read_batch,
)
from paxoskv.paxos.configs import ConfigHistory
from paxoskv.paxos.effects import (
    Answers,
    Applied,
    Broadcast,
    Effect,
    LeaderChanged,
    Persist,
    ReadReady,
    SaveSnapshot,
    Send,
)
from paxoskv.paxos.membership import configs_implied_by
from paxoskv.paxos.records import (
    DurableState,
    JournalRecord,
    SnapshotImage,
    accepted_record_parts,
    chosen_record,
    decode_state_transfer,
    learned_record,
    promised_record,
)
from paxoskv.paxos.waiting import (
    QueuedIds,
    WaitingTable,
    add_waiting,
    discard_waiting,
    is_waiting,
    pop_waiting,
    queue_new,
    unqueue,
    waiting_items,
    waiting_requests,
)
from paxoskv.state import Configuration, KVStateMachine, LeaseExpire, NoOp, encode_command
from paxoskv.state.frozen import Frozen, Record
from paxoskv.state.history import DEFAULT_LIMIT_BYTES
from paxoskv.state.machine import MAX_LOG_TIME_MS
from paxoskv.state.wire import UINT64_MAX

Consistency = str  # "linearizable" | "leader" | "local"
_INTERNAL_CLIENT = ""  # requests the engine itself proposes (no-ops, lease expiry)


class Randomness(Protocol):
    """What the engine draws from: handed in seeded, never global (``random.Random`` fits)."""

    def uniform(self, a: float, b: float) -> float: ...


class Role(enum.Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


# The roles as constants: ``Role.LEADER`` is a global and an attribute looked up at every use
# in the compiled build, and the engine asks its role a few dozen times a write.
_FOLLOWER: Final = Role.FOLLOWER
_CANDIDATE: Final = Role.CANDIDATE
_LEADER: Final = Role.LEADER


class EngineSettings(Frozen):
    __slots__ = (
        "catchup_hold_s",
        "clock_drift_bound",
        "commit_delay_s",
        "election_timeout_max_s",
        "election_timeout_min_s",
        "heartbeat_interval_s",
        "history_limit_bytes",
        "history_limit_events",
        "learner",
        "log_retention_bytes",
        "log_retention_slots",
        "max_message_bytes",
        "node_id",
        "request_retry_s",
        "retransmit_interval_s",
        "snapshot_every_bytes",
        "snapshot_every_commands",
        "window_slots",
    )
    __match_args__ = (
        "node_id",
        "window_slots",
        "heartbeat_interval_s",
        "election_timeout_min_s",
        "election_timeout_max_s",
        "retransmit_interval_s",
        "commit_delay_s",
        "request_retry_s",
        "max_message_bytes",
        "snapshot_every_commands",
        "snapshot_every_bytes",
        "log_retention_slots",
        "log_retention_bytes",
        "catchup_hold_s",
        "clock_drift_bound",
        "learner",
        "history_limit_events",
        "history_limit_bytes",
    )

    node_id: str
    # Slots in flight at once, and also alpha: a configuration change chosen at slot s
    # governs from s + window_slots (configs.py). Every node of a cluster must agree on it for
    # good, so it is not a tuning knob: a 16-slot and a 64-slot node can count different
    # quorums for one slot (tests/paxos/test_window_mixed_review.py).
    window_slots: int
    heartbeat_interval_s: float
    election_timeout_min_s: float
    election_timeout_max_s: float
    retransmit_interval_s: float
    commit_delay_s: float  # how long a lone commit point may wait for an accept to ride
    request_retry_s: float
    max_message_bytes: int
    snapshot_every_commands: int  # or as many as the state's keys, if more
    snapshot_every_bytes: int  # of log values, or the state's packed rows if more
    log_retention_slots: int  # chosen slots kept in memory for peers a little behind
    log_retention_bytes: int  # and at most this many bytes of them
    catchup_hold_s: float  # how long slots a catching-up peer asked for are kept for it
    clock_drift_bound: float
    learner: bool
    history_limit_events: int  # change events kept for watchers to resume from
    history_limit_bytes: int  # and the most bytes of values they hold

    def __init__(
        self,
        node_id: str,
        window_slots: int = 16,
        heartbeat_interval_s: float = 0.05,
        election_timeout_min_s: float = 0.5,
        election_timeout_max_s: float = 1.0,
        retransmit_interval_s: float = 0.1,
        commit_delay_s: float = 0.002,
        request_retry_s: float = 0.5,
        max_message_bytes: int = 48_000,
        snapshot_every_commands: int = 100_000,
        snapshot_every_bytes: int = 64 << 20,
        log_retention_slots: int = 2_000,
        log_retention_bytes: int = 8 << 20,
        catchup_hold_s: float = 5.0,
        clock_drift_bound: float = 0.1,
        learner: bool = False,
        history_limit_events: int = 10_000,
        history_limit_bytes: int = DEFAULT_LIMIT_BYTES,
    ) -> None:
        object.__setattr__(self, "node_id", node_id)
        object.__setattr__(self, "window_slots", window_slots)
        object.__setattr__(self, "heartbeat_interval_s", heartbeat_interval_s)
        object.__setattr__(self, "election_timeout_min_s", election_timeout_min_s)
        object.__setattr__(self, "election_timeout_max_s", election_timeout_max_s)
        object.__setattr__(self, "retransmit_interval_s", retransmit_interval_s)
        object.__setattr__(self, "commit_delay_s", commit_delay_s)
        object.__setattr__(self, "request_retry_s", request_retry_s)
        object.__setattr__(self, "max_message_bytes", max_message_bytes)
        object.__setattr__(self, "snapshot_every_commands", snapshot_every_commands)
        object.__setattr__(self, "snapshot_every_bytes", snapshot_every_bytes)
        object.__setattr__(self, "log_retention_slots", log_retention_slots)
        object.__setattr__(self, "log_retention_bytes", log_retention_bytes)
        object.__setattr__(self, "catchup_hold_s", catchup_hold_s)
        object.__setattr__(self, "clock_drift_bound", clock_drift_bound)
        object.__setattr__(self, "learner", learner)
        object.__setattr__(self, "history_limit_events", history_limit_events)
        object.__setattr__(self, "history_limit_bytes", history_limit_bytes)
        self.__post_init__()

    def with_learner(self, learner: bool) -> EngineSettings:
        """These settings with ``learner`` changed (what ``dataclasses.replace`` did)."""
        fields = {name: getattr(self, name) for name in self.__match_args__}
        fields["learner"] = learner
        return EngineSettings(**fields)

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id must be a non-empty string")
        if not 0 < self.election_timeout_min_s <= self.election_timeout_max_s:
            raise ValueError("need 0 < election_timeout_min_s <= election_timeout_max_s")
        if self.heartbeat_interval_s * 3 > self.election_timeout_min_s * _LENIENCY:
            raise ValueError("heartbeats must come at least 3 times per election timeout")
        if self.window_slots < 1:
            raise ValueError("window_slots must be at least 1")
        if not 0 <= self.commit_delay_s < self.heartbeat_interval_s:
            raise ValueError("need 0 <= commit_delay_s < heartbeat_interval_s")


_LENIENCY = 1 + 1e-9
"""How far a float product may overshoot a bound it meets exactly on paper (0.1 * 3 is
0.30000000000000004): a heartbeat of exactly a third of the election timeout is allowed."""


class _InFlight:
    """A slot this leader proposed, until chosen. A plain class, not a dataclass: one is made
    per slot, and the compiled build runs a dataclass's generated ``__init__`` interpreted."""

    __slots__ = ("acks", "resends", "sent_at", "value")

    def __init__(self, value: bytes, sent_at: float) -> None:
        self.value = value
        self.sent_at = sent_at
        self.acks: set[str] = set()
        self.resends = 0  # each resend doubles the wait before the next (capped)


class _LeaderRead(Record):
    __slots__ = ("heartbeat_seq", "index", "origin", "read_id")
    __match_args__ = ("origin", "read_id", "index", "heartbeat_seq")

    origin: str
    read_id: int
    index: int
    heartbeat_seq: int

    def __init__(self, origin: str, read_id: int, index: int, heartbeat_seq: int) -> None:
        self.origin = origin
        self.read_id = read_id
        self.index = index
        self.heartbeat_seq = heartbeat_seq


# Subclassable from interpreted code in the compiled build too: the simulator's tests swap in
# deliberately broken engines, and its scale model a timed one, by overriding methods.
@mypyc_attr(allow_interpreted_subclasses=True)
class Engine:
    """One node's Paxos. See the module docstring for how it works."""

    # Volatile proposer state, reset by _reset_proposer whenever a term ends.
    _promises: dict[str, m.Promise]
    _promise_parts: dict[str, dict[int, m.Promise]]  # sender -> first slot -> part
    _in_flight: dict[int, _InFlight]
    _pending: deque[m.Request]
    _pending_bytes: int
    _queued: QueuedIds  # ids of requests pending or proposed in this term, unapplied
    _heartbeat_sent: dict[int, float]
    _acked_seq: dict[str, int]
    _member_applied: dict[str, int]
    _leader_reads: list[_LeaderRead]
    _leader_reads_waiting: list[tuple[str, int]]
    _expiring: dict[int, int]
    _own_batches: dict[int, tuple[bytes, Columns]]  # slot -> (value, its columns)
    _commit_told: int
    _commit_due: float  # when the commit point not yet told goes out alone (inf: none waits)
    _urgent_upto: int  # the last slot whose commit someone on another node waits to hear
    _reads_from_slot: int  # reads are served once this, the last slot recovered, is applied
    _resend_due: float  # no slot in flight is due to be resent before this (maybe none then)

    def __init__(
        self,
        settings: EngineSettings,
        rng: Randomness,
        initial_configuration: Configuration,
        *,
        durable: DurableState | None = None,
        journal_index: int = 0,
        now: float = 0.0,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self._rng = rng
        self._effects: list[Effect] = []
        durable = durable or DurableState()
        # acceptor (persistent)
        self.promised: Ballot = durable.promised
        self.accepted: dict[int, tuple[Ballot, bytes]] = dict(durable.accepted)
        # learner (persistent through the journal and snapshots)
        self.values: dict[int, bytes] = dict(durable.chosen)
        self.applied_slot = durable.applied_slot
        self.compacted_slot = durable.applied_slot
        self.state = (
            KVStateMachine.restore(
                durable.state_snapshot,
                history_limit_bytes=settings.history_limit_bytes,
                history_limit_events=settings.history_limit_events,
            )
            if durable.state_snapshot is not None
            else KVStateMachine(
                initial_configuration,
                history_limit_events=settings.history_limit_events,
                history_limit_bytes=settings.history_limit_bytes,
            )
        )
        self.configs = ConfigHistory(durable.config_entries or [(1, self.state.configuration)])
        self.last_log_time_ms = durable.last_log_time_ms
        self.known_commit = durable.applied_slot
        # The newest snapshot saved (served to peers catching up), and the one taken but not
        # yet saved: packing and writing it happen off the engine. A saved one keeps its
        # packed bytes only while peers want a snapshot (until _snapshot_wanted_until).
        self._transfer: SnapshotImage | None = None
        self._taken: SnapshotImage | None = None
        self._snapshot_wanted_until = 0.0
        self._commands_since_snapshot = 0
        self._bytes_since_snapshot = 0
        # When the next snapshot is due: the settings' counts, or the last snapshot's keys
        # and packed rows if more (see _after_apply).
        self._snapshot_due_commands = settings.snapshot_every_commands
        self._snapshot_due_bytes = settings.snapshot_every_bytes
        # The applied values kept in memory (slots compacted_slot + 1 .. applied_slot), in
        # bytes, and the first slot each peer catching up still needs, until when.
        self._retained_bytes = 0
        self._catchup_pins: dict[str, tuple[int, float]] = {}
        # Slots applied in a step are kept at least until the next one, so that whoever
        # reads what the step did (the simulator's checker, a test) sees their values.
        self._applied_before_step = durable.applied_slot
        # volatile
        self.role = _FOLLOWER
        self.leader_id: str | None = None
        self._leader_ballot = ZERO_BALLOT  # the ballot the followed leader leads with
        self.max_seen: Ballot = durable.promised
        self._last_heard_leader = -1e18
        # A voter that just started may have acked a leader's heartbeat in its last life a
        # moment ago, and that leader may be serving lease reads on the strength of it: no
        # promise to another node until such a lease has surely run out (see _on_prepare).
        self._no_promises_until = now + settings.election_timeout_min_s
        self._election_deadline = now + self._election_timeout()
        self._election_wait_s = self._election_deadline - now  # drawn anew each term
        self._journal_index = journal_index
        self._pending_records: list[JournalRecord] = []
        self._next_sync_id = 1
        self._durable_sync_id = 0
        self._held: deque[tuple[int, Send]] = deque()
        self._last_persist_lazy = False  # the last Persist went out with sync_now=False
        self._local_waiting: WaitingTable = {}
        self._to_forward: dict[tuple[str, int], m.Request] = {}
        # The ids of the requests proposed since the last retry period, as columns per call:
        # made into a set only when a retry period asks, not on every propose.
        self._sent_recently: list[tuple[Sequence[str], Sequence[int]]] = []
        self._retry_round = 0
        # A member taking a snapshot for this node, and until when it is asked rather than the
        # next in turn (each "nothing yet" it answers moves that on).
        self._snapshot_source: tuple[str, float] | None = None
        self._resends: dict[tuple[str, int], tuple[int, int]] = {}  # id -> (times, next round)
        self._retry_at = now + settings.request_retry_s
        self._catchup_retry_at = 0.0
        self._download: tuple[int, bytearray] | None = None
        self._download_deadline = 0.0
        self._follower_reads: dict[int, int | None] = {}
        self._read_requests_out: list[int] = []
        # ``leader`` reads not yet asked for: asked once under the leader's lease; a retry
        # (the tick's, or to a new leader) asks without it, through _read_requests_out.
        self._lease_reads_out: list[int] = []
        # Lease reads asked under the lease's tag and not yet answered, with when; a leader
        # that let one wait half a retry period (an older release drops the tag) is asked
        # without it for _LEASE_TAG_RETRY_S, so each lease read does not wait a period.
        self._lease_asked: dict[int, float] = {}
        self._lease_refused_by: str | None = None
        self._lease_refused_until = 0.0
        self._now = now
        self._ballot = ZERO_BALLOT
        self._reset_proposer()
        # The chosen tail of the journal is applied now, but the snapshot it may have made due
        # waits for the next slot applied: packing the whole state here would hold up the
        # restarted node's first answer by as long again as the replay itself, for a snapshot
        # that only speeds up the restart after this one.
        self._apply_ready(snapshot_due=False)

    # --- inputs ------------------------------------------------------------------------------

    def receive(self, sender: str, message: m.Message, now: float) -> list[Effect]:
        """A message arrived from ``sender`` (already authenticated by the transport)."""
        self._now = now
        kind = type(message)
        # The messages of every write by direct (compiled) calls, the rest through the table:
        # the same unbound handlers either way.
        if kind is m.Accept:
            Engine._on_accept(self, sender, cast(m.Accept, message), now)
        elif kind is m.Accepted:
            Engine._on_accepted(self, sender, cast(m.Accepted, message), now)
        elif kind is m.Commit:
            Engine._on_commit(self, sender, cast(m.Commit, message), now)
        else:
            _HANDLERS[kind](self, sender, message, now)
        return self._drain(now)

    def tick(self, now: float) -> list[Effect]:
        """Time passed: fire whatever timers are due. Call at ``next_deadline()`` or later."""
        self._now = now
        if self.role is _LEADER:
            self._leader_tick(now)
        elif self._can_campaign() and now >= self._election_deadline:
            self._start_campaign(now)
        elif self.role is _CANDIDATE and now >= self._prepare_resend_at:
            self._resend_prepare(now)
        held = self._held_transfer()
        if held is not None and now >= self._snapshot_wanted_until:
            held.release()  # the peers it was sent to have it, or stopped asking
        if self._download is not None and now >= self._download_deadline:
            self._download = None  # a chunk was lost: start the transfer over, now
            self._retry_at = now  # (waiting for the retry period spun on a past deadline)
        if now >= self._retry_at:
            self._retry_at = now + self.settings.request_retry_s
            self._retry_unanswered()
            unanswered = [rid for rid, index in self._follower_reads.items() if index is None]
            lease_asked = self._lease_asked
            if lease_asked:
                overdue = now - self.settings.request_retry_s / 2
                if any(lease_asked.get(rid, now) <= overdue for rid in unanswered):
                    self._lease_refused_by = self.leader_id
                    self._lease_refused_until = now + _LEASE_TAG_RETRY_S
                lease_asked.clear()  # asked again, all of them, without the lease
            self._read_requests_out.extend(unanswered)
            if self._leader_silent(now):
                self._catch_up_from_a_peer(now)
            elif self.known_commit > self.applied_slot and self.leader_id:
                self._request_catchup(self.leader_id, now)
        return self._drain(now)

    def _leader_silent(self, now: float) -> bool:
        """No leader, or none heard for longer than an election may take (a learner, which
        never campaigns, keeps the id of a leader it cannot hear)."""
        if self.role is _LEADER:
            return False
        silent_s = now - self._last_heard_leader
        return self.leader_id is None or silent_s > self.settings.election_timeout_max_s

    def _catch_up_from_a_peer(self, now: float) -> None:
        """With no leader heard, ask the members in turn for what they have chosen.

        A node that reaches a majority but not the leader (one broken link) campaigns in vain
        (followers that hear the leader ignore it) and heard of no commit to fetch: without
        this it stayed behind until the link came back. Chosen values are the same wherever
        they come from, so any member may serve them; one small request per retry period.
        """
        peers = sorted(self.configs.latest().members() - {self.node_id})
        source = self._snapshot_source
        if source is not None and source[0] in peers and now < source[1]:
            # Asked in turn, a member taking a snapshot for this node was asked again only
            # after the others: with ten or more of them, after it had let the snapshot go for
            # want of asking (catchup_hold_s), so each took another, and none was ever sent.
            self._request_catchup(source[0], now)
        elif peers:
            self._request_catchup(peers[self._retry_round % len(peers)], now)

    @property
    def holds_snapshot_copy(self) -> bool:
        """Whether a saved snapshot's packed bytes are held, to send to peers: a second copy
        of the state, kept only while peers want one (see :meth:`snapshot_saved`)."""
        return self._held_transfer() is not None

    def _held_transfer(self) -> SnapshotImage | None:
        """The newest snapshot saved, if it still holds its packed bytes to send."""
        transfer = self._transfer
        return transfer if transfer is not None and transfer.servable else None

    def snapshot_saved(self, slot: int, now: float) -> list[Effect]:
        """The snapshot :class:`SaveSnapshot` asked for at ``slot`` is written: serve it.

        Until then peers are served the one before, and the log is kept back to that one, so
        a peer catching up never waits on (or makes this node pack on its own thread) a
        snapshot still being packed.
        """
        self._now = now
        image = self._taken
        if image is not None and image.slot == slot:
            self._transfer, self._taken = image, None
            # On disk now: its packed bytes, a second copy of the state, are kept only for a
            # peer that asked for a snapshot lately. One asking later gets a new one taken.
            # (The runtime calls this once its worker has packed and written the image, so
            # no pack is under way when it is let go of.)
            if now >= self._snapshot_wanted_until:
                image.release()
            # The next one is due after as many commands as the state has keys and as many
            # bytes of log as its rows packed, when more than the settings say: a snapshot
            # costs the state's size, so one every fixed 64 MB of log costs more per write
            # the bigger the state (Redis spaces its AOF rewrites by the same rule).
            settings = self.settings
            self._snapshot_due_commands = max(settings.snapshot_every_commands, image.keys)
            self._snapshot_due_bytes = max(settings.snapshot_every_bytes, image.rows_bytes)
        return self._drain(now)

    def handle_durable(self, sync_id: int, now: float) -> list[Effect]:
        """Every :class:`Persist` up to ``sync_id`` is durable: release what waited for it."""
        self._now = now
        if sync_id > self._durable_sync_id:
            self._durable_sync_id = sync_id
        held = self._held
        if held and held[0][0] <= self._durable_sync_id:
            released: list[Send] = []
            while held and held[0][0] <= self._durable_sync_id:
                released.append(held.popleft()[1])
            if len(released) > 1:
                released = _coalesce_accepted(released)
            for send in released:
                self._send(send.to, send.message)
        return self._drain(now)

    def propose(self, requests: Sequence[m.Request], now: float) -> list[Effect]:
        """Local clients ask; each is answered (an :class:`Answers` effect, one per slot)
        when its command is applied here."""
        self._now = now
        if requests:
            client_ids, seqs, commands = _check_requests(requests)
            add_waiting(self._local_waiting, client_ids, seqs, requests)
            self._sent_recently.append((client_ids, seqs))
            if self.role is _LEADER:
                self._enqueue(requests, (client_ids, seqs, commands))
            else:
                self._to_forward.update(
                    zip(zip(client_ids, seqs, strict=True), requests, strict=True)
                )
        return self._drain(now)

    def _retry_unanswered(self) -> None:
        """Send again the local requests that were sent before the last retry and not answered.

        Only those: a request sent a moment ago is not lost, just queued behind others, and
        resending every waiting request each period turned a deep queue (many clients, big
        values) into a storm of duplicates. A request lost on the way is sent again within two
        periods; one still unanswered after that waits twice as many periods before each next
        resend (up to :data:`_MOST_RETRY_PERIODS`), since a leader with a queue longer than
        a period drains it no faster for being sent it again. A new leader gets everything at
        once (:meth:`_set_leader`) and the waits start over.
        """
        recent = set(chain.from_iterable(starmap(zip, self._sent_recently)))
        self._sent_recently = []
        self._retry_round = now_round = self._retry_round + 1
        waiting = self._local_waiting
        resends = self._resends
        for key in [key for key in resends if not is_waiting(waiting, *key)]:
            del resends[key]  # answered or given up
        due = self._to_forward
        for key, request in waiting_items(waiting):
            if key in recent:
                continue
            times, next_round = resends.get(key, (0, now_round))
            if next_round <= now_round:
                due[key] = request
                resends[key] = (times + 1, now_round + min(2 << times, _MOST_RETRY_PERIODS))

    def cancel(self, client_id: str, seq: int) -> None:
        """The client gave up waiting; forget it (the command may still be applied)."""
        discard_waiting(self._local_waiting, client_id, seq)

    def read(self, read_id: int, consistency: Consistency, now: float) -> list[Effect]:
        """Ask when local state may serve a read: answered by a ReadReady effect.

        The engine keeps trying (through leader changes) until it can answer or the runtime
        calls :meth:`cancel_read` because its caller stopped waiting.
        """
        self._now = now
        self._read_one(read_id, consistency, now)
        return self._drain(now)

    def read_batch(self, reads: Sequence[tuple[int, Consistency]], now: float) -> list[Effect]:
        """As :meth:`read` for each of ``reads``, asked together: the runtime's reads of one
        turn of its loop. A follower asks the leader once for all of them (one request), and
        a leader confirms them with one heartbeat round, where a step per read sent a
        datagram and a round each (five times the CPU a linearizable read, twenty-fourth
        session)."""
        self._now = now
        for read_id, consistency in reads:
            self._read_one(read_id, consistency, now)
        return self._drain(now)

    def serves_lease_reads(self, now: float) -> bool:
        """Whether a ``leader`` read asked now is ready at once: this node leads, under a
        lease. The runtime then reads without a step (what :meth:`read` would answer)."""
        return self._lease_valid(now)

    def _read_one(self, read_id: int, consistency: Consistency, now: float) -> None:
        if consistency not in ("linearizable", "leader", "local"):
            raise ValueError(f"unknown consistency {consistency!r}")
        if consistency == "local" or (consistency == "leader" and self._lease_valid(now)):
            self._effects.append(ReadReady(read_id))
        elif self.role is _LEADER:
            self._leader_reads_waiting.append((self.node_id, read_id))
        else:
            self._follower_reads[read_id] = None
            if consistency == "leader":
                self._lease_reads_out.append(read_id)
            else:
                self._read_requests_out.append(read_id)

    def hold_election(self, now: float) -> None:
        """Do not campaign before a whole election timeout has passed from ``now``.

        The runtime calls this once the engine is built and about to be driven. Building a
        restarted node's engine replays its journal, which can take longer than an election
        timeout, and the timer was armed before that replay: without this, the node's first
        tick would campaign before it had read a single heartbeat from the leader that is
        alive and well, unseating it (a higher ballot makes a leader step down) for nothing.
        """
        self._election_deadline = max(self._election_deadline, now + self._election_timeout())

    def cancel_read(self, read_id: int) -> None:
        self._follower_reads.pop(read_id, None)

    def next_deadline(self) -> float:
        """When ``tick`` must be called next at the latest.

        The runtime asks after every step, several times a write: plain comparisons of the
        unboxed timers, where a list of them and ``min`` cost some 6,000 instructions a call
        in the compiled build.
        """
        deadline = self._retry_at
        role = self.role
        if role is _LEADER:
            if self._heartbeat_due < deadline:
                deadline = self._heartbeat_due
            if self._commit_due < deadline:
                deadline = self._commit_due
            if self._resend_due < deadline:
                deadline = self._resend_due
        else:
            if self._election_deadline < deadline and self._can_campaign():
                deadline = self._election_deadline
            if role is _CANDIDATE and self._prepare_resend_at < deadline:
                deadline = self._prepare_resend_at
        if self._download is not None and self._download_deadline < deadline:
            deadline = self._download_deadline
        return deadline

    # --- views -------------------------------------------------------------------------------

    @property
    def configuration(self) -> Configuration:
        return self.state.configuration

    @property
    def is_leader(self) -> bool:
        return self.role is _LEADER

    @property
    def ballot(self) -> Ballot:
        return self._ballot

    def member_applied(self) -> dict[str, int]:
        """What the leader last heard each voter had applied (empty on followers)."""
        return dict(self._member_applied)

    # --- acceptor ----------------------------------------------------------------------------

    def _on_prepare(self, sender: str, msg: m.Prepare, now: float) -> None:
        self._observe(msg.ballot)
        if self.settings.learner:
            # A learner's promise counts in no quorum, unless its id is a voter the runtime
            # keeps from voting (one that forgot its earlier life's votes): then it must not.
            return
        if sender != self.node_id and (self._sticky(sender, now) or now < self._no_promises_until):
            return  # we heard a live leader recently: do not help unseat it (leader lease)
        if msg.ballot < self.promised:
            self._send(sender, m.Nack(msg.ballot, self.promised))
            return
        if msg.ballot > self.promised:
            self.promised = msg.ballot
            self._persist(promised_record(msg.ballot))
        for part in self._promise_parts_for(msg.ballot, msg.from_slot):
            self._hold(sender, part)

    def _promise_parts_for(self, ballot: Ballot, from_slot: int) -> list[m.Promise]:
        """The promise's report of accepted values, in parts that each fit a message.

        A window of slots of big values does not fit one datagram, and a promise cut short
        used to send the candidate off to catch up on slots nobody had chosen: no leader
        could be elected again (seen with 8 KB values, 16 slots in flight). More than
        :data:`_MOST_PROMISE_PARTS_PER_SLOT` parts per slot of the window means the candidate
        is far behind, and a candidate before the compacted log could not be told the values
        it missed: either gets ``truncated`` and catches up before it campaigns again.
        """
        cut_short = [m.Promise(ballot, from_slot, (), self.applied_slot, True)]
        if from_slot <= self.compacted_slot:
            # The values of slots up to compacted_slot are gone from here: a promise could not
            # vouch for them, and a candidate that missed them must catch up by snapshot.
            return cut_short
        limit = self.settings.max_message_bytes
        most_parts = _MOST_PROMISE_PARTS_PER_SLOT * self.settings.window_slots
        parts: list[m.Promise] = []
        entries: list[m.PromiseEntry] = []
        size = 0
        first = from_slot
        slots = sorted(s for s in set(self.accepted) | set(self.values) if s >= from_slot)
        for slot in slots:
            chosen = self.values.get(slot)
            ballot_of, value = self.accepted.get(slot, (ZERO_BALLOT, b""))
            if chosen is not None:
                value = chosen
            # An entry costs its value, its ballot's node id (up to 64 bytes) and at most 32
            # more: at a message limit 1 KB under the datagram's, a guess that leaves the id
            # out made a Promise of many small entries too big to send.
            cost = len(value) + len(ballot_of.node_id) + 32
            if entries and size + cost > limit:
                if len(parts) + 1 >= most_parts:
                    return cut_short
                parts.append(
                    m.Promise(ballot, first, tuple(entries), self.applied_slot, False, slot - 1)
                )
                entries, size, first = [], 0, slot
            entries.append(m.PromiseEntry(slot, ballot_of, value, chosen is not None))
            size += cost
        parts.append(m.Promise(ballot, first, tuple(entries), self.applied_slot, False))
        return parts

    def _on_accept(self, sender: str, msg: m.Accept, now: float) -> None:
        self._observe(msg.ballot)
        if msg.ballot < self.promised:
            self._send(sender, m.Nack(msg.ballot, self.promised))
            return
        self.promised = msg.ballot
        self._heard_leader(msg.ballot, now)
        accepted = self.accepted.get(msg.slot)
        if msg.slot > self.applied_slot and (accepted is None or accepted[0] != msg.ballot):
            self.accepted[msg.slot] = (msg.ballot, msg.value)
            self._persist(accepted_record_parts(msg.slot, msg.ballot, msg.value))
        slot = msg.slot
        if self._votes_in(slot) and (
            slot > self.applied_slot
            or slot <= self.compacted_slot
            or self.values.get(slot) == msg.value
        ):
            # A slot applied here is voted for with the value chosen in it (a leader
            # recovering the log proposes that value again; any other would be a bug
            # upstream), and a slot let go of is voted for whatever the value, since it can
            # no longer be compared: refused, a new leader re-proposing a slot a quorum had
            # applied and let go of after promising it would wait on it for good (found in
            # review). That vote is Paxos's own rule (a ballot at least the promise), which
            # keeps one value chosen without this node's check.
            self._hold(sender, m.Accepted(msg.ballot, (slot,)))
        self._learn_commit(msg.ballot, msg.commit_upto, sender, now)

    def _votes_in(self, slot: int) -> bool:
        if self.settings.learner:
            return False
        if slot > self.applied_slot + self.settings.window_slots or slot <= self.compacted_slot:
            # Its configuration is not known here yet, or any more (let go of with the log:
            # ConfigHistory.at answers with the oldest kept, in which this node may be no
            # voter): answer, the leader decides, counting only the slot's own voters.
            return True
        return self.node_id in self.configs.at(slot).voters

    # --- learner -----------------------------------------------------------------------------

    def _on_commit(self, sender: str, msg: m.Commit, now: float) -> None:
        self._observe(msg.ballot)
        if msg.ballot >= self.promised:
            self._heard_leader(msg.ballot, now)
        self._learn_commit(msg.ballot, msg.upto, sender, now)

    def _learn_commit(self, ballot: Ballot, upto: int, sender: str, now: float) -> None:
        """Slots up to ``upto`` are chosen; the value is ours if we accepted it at ``ballot``.

        The leader of ``ballot`` proposed every slot from its first open one at ``ballot``, so
        an accept at exactly that ballot holds the chosen value; anything else is fetched.
        """
        if self.role is _LEADER and sender != self.node_id:
            return
        if upto > self.known_commit:
            self.known_commit = upto
        first = slot = self.applied_slot + 1
        while slot <= upto:
            if slot not in self.values:
                accepted = self.accepted.get(slot)
                if accepted is None or accepted[0] != ballot:
                    break
                self.values[slot] = accepted[1]
            slot += 1
        if slot > first:
            self._persist(chosen_record(first, slot - 1))
        self._apply_ready()
        if self.known_commit > self.applied_slot:
            self._request_catchup(sender, now)

    def _apply_ready(self, *, snapshot_due: bool = True) -> None:
        start = self.applied_slot
        while (value := self.values.get(self.applied_slot + 1)) is not None:
            self._apply_slot(self.applied_slot + 1, value)
        if self.applied_slot > start:
            self._after_apply(start, snapshot_due=snapshot_due)

    def _apply_slot(self, slot: int, value: bytes) -> None:
        own = self._own_batches.pop(slot, None)
        if own is not None:  # its requests are applied now (or lost, if another value won)
            unqueue(self._queued, own[1][1], own[1][2])
        try:
            # A batch this node proposed (the very bytes) is applied from the columns it was
            # packed from, checked alike: a leader does not decode its own batches again.
            columns = own[1] if own is not None and own[0] is value else read_batch(value)
        except m.MalformedMessage:  # every replica refuses it alike, so they stay equal
            columns = (self.last_log_time_ms, [], [], [])
        log_time_ms, client_ids, seqs, commands = columns
        before = self.state.configuration
        waiting = self._local_waiting
        # One call per slot; only results a local client waits for are packed here.
        answered = self.state.apply_items(
            client_ids, seqs, commands, log_time_ms, answer=waiting or None, checked=True
        )
        if answered[0]:
            # The answered requests leave the waiting table, and the slot's answers go out as
            # one effect of columns. A request twice in one slot is answered (and applied)
            # once: its second pop finds nothing. A Request is a non-empty tuple, so truth
            # tells it from None (``None in popped`` would compare the long way).
            popped = pop_waiting(waiting, answered[0], answered[1])
            if not all(popped):
                answered = tuple(list(compress(column, popped)) for column in answered)  # type: ignore[assignment]
            # (tuple.__new__: the NamedTuple's own ``__new__`` is interpreted Python)
            self._effects.append(_new_tuple(Answers, answered))
        after = self.state.configuration
        if after is not before and after != before:
            self.configs.change_from(slot + self.settings.window_slots, after)
            self._resend_due = self._now  # a slot in flight may have lost its quorum
        self.applied_slot = slot
        if slot > self.known_commit:
            self.known_commit = slot
        if log_time_ms > self.last_log_time_ms:
            self.last_log_time_ms = log_time_ms
        self.accepted.pop(slot, None)
        self._in_flight.pop(slot, None)  # (a leader that caught up on it as a candidate)
        self._commands_since_snapshot += len(commands)
        self._bytes_since_snapshot += len(value)
        self._retained_bytes += len(value)

    def _after_apply(self, previous_applied: int, *, snapshot_due: bool = True) -> None:
        self._effects.append(Applied(self.applied_slot, self.state.revision))
        if self._expiring:
            self._expiring = {
                lease: slot for lease, slot in self._expiring.items() if slot > self.applied_slot
            }
        # None while one is being saved: each would replace the one before as the snapshot to
        # serve before it was saved, and with saves slower than the interval (a big state
        # under load) none ever was, and a peer far behind waited for good (found in review).
        if (
            snapshot_due
            and self._taken is None
            and (
                self._commands_since_snapshot >= self._snapshot_due_commands
                or self._bytes_since_snapshot >= self._snapshot_due_bytes
            )
        ):
            self._take_snapshot()
        self._compact_log()
        if self.role is _LEADER and self._leader_reads:
            self._answer_ready_reads()
        if self._follower_reads:
            self._serve_follower_reads()

    def _compact_log(self) -> None:
        """Let go of the applied values no peer is likely to ask for.

        The last ``log_retention_slots`` applied slots are kept, at most
        ``log_retention_bytes`` of them, for a peer a little behind (a lost accept, a pause);
        a peer further behind is sent a snapshot. Not the whole log since the last snapshot,
        as before: snapshots are spaced by the state's size, so that could be as big as the
        state, and every value kept for nobody makes new ones fresh memory (at 1 KB values,
        0.4-0.7 page faults a write more with 64 MB kept than with 8 MB, in the twelfth
        session's runs). What a peer catching up asked for is kept for it (:meth:`_pin`),
        but never more than a snapshot's worth.
        """
        settings = self.settings
        applied = self.applied_slot
        target = applied - settings.log_retention_slots
        compacted = self.compacted_slot
        retained = self._retained_bytes
        budget = settings.log_retention_bytes
        if compacted >= target and retained <= budget:
            return
        limit = self._pinned_floor() if self._catchup_pins else applied
        if limit > self._applied_before_step:
            limit = self._applied_before_step
        values = self.values
        while compacted < limit and (compacted < target or retained > budget):
            compacted += 1
            value = values.pop(compacted, None)
            if value is not None:
                retained -= len(value)
        self._retained_bytes = max(retained, 0)
        if compacted > self.compacted_slot:
            self.compacted_slot = compacted
            self.configs.forget_before(compacted)

    def _pin(self, peer: str, first_slot: int, now: float) -> None:
        """Keep the values from ``first_slot`` on for ``peer``, catching up, a while."""
        self._catchup_pins[peer] = (first_slot, now + self.settings.catchup_hold_s)

    def _pinned_floor(self) -> int:
        """The last slot the log may be let go of up to, for the peers catching up.

        Pins run out after ``catchup_hold_s`` unless asked again, none holds values older
        than the newest snapshot saved, if it still holds its packed bytes (the peer can be
        sent that instead; one let go of could be sent only by taking another), and all are
        dropped once they hold more than a snapshot's worth of bytes: a peer that far behind
        gets a snapshot, as it did when the log was kept only back to the last one.
        """
        pins = self._catchup_pins
        applied = self.applied_slot
        if self._retained_bytes > self._snapshot_due_bytes:
            pins.clear()
            return applied
        held = self._held_transfer()
        newest = held.slot if held is not None else 0
        floor = applied
        now = self._now
        for peer, (first, until) in list(pins.items()):
            if until < now:
                del pins[peer]
            else:
                floor = min(floor, max(first - 1, newest))
        return floor

    def _take_snapshot(self) -> None:
        """Snapshot state and acceptor together so the journal before it can be dropped."""
        self._flush_persist()
        durable = DurableState(
            promised=self.promised,
            accepted=dict(self.accepted),
            chosen={s: v for s, v in self.values.items() if s > self.applied_slot},
        )
        # Kept packed once saved only if a peer asked for one lately (it will be sent);
        # else streamed to the file and let go of as it is written (see SnapshotImage).
        image = SnapshotImage(
            self.applied_slot,
            self.state.snapshot_image(),
            self.configs.entries(),
            self.last_log_time_ms,
            durable,
            keep=self._now < self._snapshot_wanted_until,
        )
        self._taken = image
        self._effects.append(SaveSnapshot(self._journal_index, self.applied_slot, image))
        self._commands_since_snapshot = 0
        self._bytes_since_snapshot = 0

    # --- catch-up ----------------------------------------------------------------------------

    def _request_catchup(self, target: str, now: float) -> None:
        if target == self.node_id or now < self._catchup_retry_at or self._download is not None:
            return
        self._catchup_retry_at = now + self.settings.retransmit_interval_s
        self._send(target, m.CatchupRequest(self.applied_slot + 1))

    def _on_catchup_request(self, sender: str, msg: m.CatchupRequest, now: float) -> None:
        if msg.from_slot <= self.compacted_slot:
            # What it asks for is let go of here: it needs a snapshot, then the values after
            # it, which are kept for it (_pin).
            self._want_snapshot(now)
            transfer = self._held_transfer()
            if transfer is not None and transfer.slot >= self.compacted_slot:
                self._pin(sender, transfer.slot + 1, now)
                self._send(sender, m.CatchupReply((), self.applied_slot, transfer.slot))
                return
            if self._taken is None:
                # None saved since a restart (the log starts after the one recovered), the
                # newest let go of its packed bytes (nobody had asked for one), or the values
                # after it are let go of too: take one to serve, or the peer would ask in
                # vain until the next came due, in a quiet cluster never. Meanwhile it is
                # told there is nothing yet, and asks again.
                self._take_snapshot()
            taken = self._taken
            if taken is not None:
                self._pin(sender, taken.slot + 1, now)
            self._send(sender, m.CatchupReply((), self.applied_slot, 0))
            return
        entries: list[m.CatchupEntry] = []
        size = 0
        slot = msg.from_slot
        while (value := self.values.get(slot)) is not None and slot <= self.applied_slot:
            size += len(value) + 16
            if size > self.settings.max_message_bytes and entries:
                break
            entries.append(m.CatchupEntry(slot, value))
            slot += 1
        if slot > self.applied_slot:
            self._catchup_pins.pop(sender, None)  # this reply catches it up
        else:
            self._pin(sender, msg.from_slot, now)  # (asked again if the reply is lost)
        self._send(sender, m.CatchupReply(tuple(entries), self.applied_slot, 0))

    def _on_catchup_reply(self, sender: str, msg: m.CatchupReply, now: float) -> None:
        self.known_commit = max(self.known_commit, msg.chosen_upto)
        self._catchup_retry_at = 0.0
        for entry in msg.entries:
            if entry.slot > self.applied_slot and entry.slot not in self.values:
                self.values[entry.slot] = entry.value
                self._persist(learned_record(entry.slot, entry.value))
        self._apply_ready()
        if not msg.entries and not msg.snapshot_slot and msg.chosen_upto > self.applied_slot:
            # Nothing yet for what this node lacks: the sender is taking a snapshot for it.
            self._snapshot_source = (sender, now + self.settings.catchup_hold_s)
        elif msg.entries or msg.snapshot_slot:
            self._snapshot_source = None
        if msg.snapshot_slot > self.applied_slot and not msg.entries and self._download is None:
            self._download = (msg.snapshot_slot, bytearray())
            self._download_deadline = now + self.settings.request_retry_s
            self._send(sender, m.SnapshotRequest(msg.snapshot_slot, 0))
        elif self.known_commit > self.applied_slot and msg.entries:
            self._request_catchup(sender, now)

    def _on_snapshot_request(self, sender: str, msg: m.SnapshotRequest, now: float) -> None:
        transfer = self._held_transfer()
        if transfer is None:
            # None, or let go of: a live download asks every retry period, which keeps the one it
            # downloads, so this request is stale (delayed, repeated, or from a peer that has
            # it). It is told there is none; a peer that still lacks one starts over once its
            # download times out, and its CatchupRequest has one taken for it if it needs it.
            self._send(sender, m.CatchupReply((), self.applied_slot, 0))
            return
        if transfer.slot != msg.snapshot_slot:
            self._send(sender, m.CatchupReply((), self.applied_slot, transfer.slot))
            return
        self._want_snapshot(now)
        self._pin(sender, msg.snapshot_slot + 1, now)
        chunk = transfer.transfer_chunk(msg.offset, self.settings.max_message_bytes)
        total = transfer.transfer_size()
        self._send(sender, m.SnapshotChunk(msg.snapshot_slot, msg.offset, total, chunk))

    def _want_snapshot(self, now: float) -> None:
        """A peer asks for a snapshot: the next one saved keeps its packed bytes to send."""
        self._snapshot_wanted_until = now + self.settings.catchup_hold_s

    def _on_snapshot_chunk(self, sender: str, msg: m.SnapshotChunk, now: float) -> None:
        download = self._download
        if download is None or download[0] != msg.snapshot_slot or len(download[1]) != msg.offset:
            return  # a stale or duplicate chunk; the deadline restarts a broken transfer
        download[1].extend(msg.data)
        self._download_deadline = now + self.settings.request_retry_s
        if len(download[1]) < msg.total_bytes and msg.data:
            self._send(sender, m.SnapshotRequest(msg.snapshot_slot, len(download[1])))
            return
        self._download = None
        self._install_transfer(bytes(download[1]))
        self._request_catchup(sender, now)

    def _install_transfer(self, blob: bytes) -> None:
        slot, state_snapshot, config_entries, log_time_ms = decode_state_transfer(blob)
        if slot <= self.applied_slot:
            return
        self.state = KVStateMachine.restore(
            state_snapshot,
            history_limit_bytes=self.settings.history_limit_bytes,
            history_limit_events=self.settings.history_limit_events,
        )
        self.configs = ConfigHistory(config_entries)
        self.applied_slot = self.compacted_slot = slot
        self.known_commit = max(self.known_commit, slot)
        self.last_log_time_ms = max(self.last_log_time_ms, log_time_ms)
        self.values = {s: v for s, v in self.values.items() if s > slot}
        self._retained_bytes = 0  # (every value left is of a slot not applied yet)
        self.accepted = {s: a for s, a in self.accepted.items() if s > slot}
        self._take_snapshot()  # what the journal lacks must survive a restart
        self._apply_ready()
        if self._follower_reads:
            # A read confirmed at a slot the snapshot covers is ready now, not at the next
            # slot applied (an idle cluster has none: the runtime's life check waited for
            # good once it stopped asking again at each timeout; twenty-ninth session).
            self._serve_follower_reads()
        self._effects.append(Applied(self.applied_slot, self.state.revision))

    # --- elections ---------------------------------------------------------------------------

    def _can_campaign(self) -> bool:
        return not self.settings.learner and self.node_id in self.configs.latest().voters

    def _election_timeout(self) -> float:
        s = self.settings
        return self._rng.uniform(s.election_timeout_min_s, s.election_timeout_max_s)

    def _sticky(self, sender: str, now: float) -> bool:
        if self.role is _LEADER:
            return (
                self._lease_valid(now)
                or now - self._last_quorum_at < self.settings.election_timeout_min_s
            )
        recent = now - self._last_heard_leader < self.settings.election_timeout_min_s
        return recent and self.leader_id is not None and sender != self.leader_id

    def _observe(self, ballot: Ballot) -> None:
        if ballot > self.max_seen:
            self.max_seen = ballot
        if self.role is not _FOLLOWER and ballot > self._ballot:
            self._step_down()

    def _heard_leader(self, ballot: Ballot, now: float) -> None:
        if ballot < self._leader_ballot:
            # A late message of a term since superseded: its sender is deposed. Followed
            # again, it would be exempt from the lease guard (_sticky) and be promised its
            # next campaign inside the lease this node just granted the newer leader.
            return
        if self.role is _FOLLOWER or ballot > self._ballot:
            if self.role is not _FOLLOWER:
                self._step_down()
            self._last_heard_leader = now
            if ballot != self._leader_ballot:
                # A timeout drawn once a term, not on every message from the leader (etcd's
                # raft does the same): the draw cost some 1,700 instructions an Accept or
                # Commit, and nodes still wait different times once the leader falls silent.
                self._election_wait_s = self._election_timeout()
                self._leader_ballot = ballot
                if ballot.node_id == self.leader_id and ballot.node_id != self.node_id:
                    # The same node leads again, in a new term: it dropped what it had queued.
                    self._forward_all_waiting()
            self._election_deadline = now + self._election_wait_s
            self._set_leader(ballot.node_id)

    def _set_leader(self, leader_id: str | None) -> None:
        if leader_id != self.leader_id:
            self.leader_id = leader_id
            self._effects.append(LeaderChanged(leader_id))
            if leader_id is not None and leader_id != self.node_id:
                self._forward_all_waiting()
                self._read_requests_out.extend(
                    rid for rid, index in self._follower_reads.items() if index is None
                )

    def _forward_all_waiting(self) -> None:
        """A leader new to its term has none of our requests: all go to it now, waits reset."""
        self._to_forward.update(waiting_items(self._local_waiting))
        self._resends.clear()

    def _start_campaign(self, now: float) -> None:
        self._reset_proposer()
        self.role = _CANDIDATE
        self._set_leader(None)
        self._ballot = max(self.max_seen, self.promised).next_for(self.node_id)
        self.max_seen = self._ballot
        self._election_deadline = now + self._election_timeout()
        self._from_slot = self.applied_slot + 1
        self._broadcast_prepare(now)
        self._on_prepare(self.node_id, m.Prepare(self._ballot, self._from_slot), now)

    def _broadcast_prepare(self, now: float) -> None:
        self._prepare_resend_at = now + self.settings.retransmit_interval_s
        self._effects.append(Broadcast(m.Prepare(self._ballot, self._from_slot)))

    def _resend_prepare(self, now: float) -> None:
        """Prepare again: to everyone, or, once promises have come in part, to each voter
        not yet heard in full, for the slots it has yet to report.

        A window of big values is promised in many parts, a datagram each, all sent at once.
        With several acceptors answering together the candidate's receive buffer keeps the
        first parts of each and drops the rest, and answered again in full, the same parts
        were lost every time: seven voters never elected a leader over a window of 64 slots
        of 50 KB (tests/paxos/test_window_review.py). Asked from the first slot it is missing
        (its answer then starts there and chains onto the parts kept: _assemble_promise), an
        acceptor sends only the rest, so each resend asks for less.
        """
        if not self._promise_parts:
            self._broadcast_prepare(now)
            return
        self._prepare_resend_at = now + self.settings.retransmit_interval_s
        # Everyone whose promise a quorum may need: the voters of every configuration known
        # here and of those the values reported so far would bring about (a learner promoted
        # in a slot not applied here votes in it: review), and whoever sent parts.
        voters = set(self._promise_parts)
        promises = list(self._promises.values())
        for parts_of in self._promise_parts.values():
            promises.extend(parts_of.values())
        reported: dict[int, set[bytes]] = {}
        for promise in promises:
            for entry in promise.entries:
                reported.setdefault(entry.slot, set()).add(entry.value)
        values = [value for slot in sorted(reported) for value in sorted(reported[slot])]
        configs = [config for _, config in self.configs.entries()]
        configs.extend(configs_implied_by(self.configs.latest(), values))
        for config in configs:
            voters.update(config.voters)
        for voter in sorted(voters - self._promises.keys()):
            if voter == self.node_id:
                continue  # (its own promise is taken at once, whole)
            slot = self._from_slot
            parts = self._promise_parts.get(voter)
            if parts is not None:
                while (found := parts.get(slot)) is not None:
                    slot = found.upto_slot + 1
            self._effects.append(Send(voter, m.Prepare(self._ballot, slot)))

    def _on_promise(self, sender: str, msg: m.Promise, now: float) -> None:
        if self.role is not _CANDIDATE or msg.ballot != self._ballot:
            return
        if msg.truncated:
            # Too far behind to recover the log from promises: follow, catch up, retry later.
            self._step_down()
            self._request_catchup(sender, now)
            return
        learned = [e for e in msg.entries if e.chosen and e.slot > self.applied_slot]
        for entry in learned:
            if entry.slot not in self.values:
                self.values[entry.slot] = entry.value
                self._persist(learned_record(entry.slot, entry.value))
        self._apply_ready()
        if msg.from_slot != self._from_slot or msg.upto_slot != m.ALL_SLOTS:
            if sender in self._promises:
                return  # a late part of a promise taken whole: keep no parts of it again
            whole = self._assemble_promise(sender, msg)
            if whole is None:
                return
            msg = whole
        self._promises[sender] = msg
        self._try_finish_phase1(now)

    def _assemble_promise(self, sender: str, part: m.Promise) -> m.Promise | None:
        """The sender's whole promise once its parts cover every slot from ours on, or None.

        Parts are kept by their first slot, the latest of each; any chain of them from our
        first slot to the end of the log covers it (see :class:`~paxoskv.paxos.messages.Promise`
        for why parts of different replies may be chained).
        """
        parts = self._promise_parts.setdefault(sender, {})
        parts[part.from_slot] = part
        entries: list[m.PromiseEntry] = []
        slot = self._from_slot
        while (found := parts.get(slot)) is not None:
            entries.extend(found.entries)
            if found.upto_slot == m.ALL_SLOTS:
                del self._promise_parts[sender]
                return m.Promise(
                    part.ballot, self._from_slot, tuple(entries), part.chosen_upto, False
                )
            slot = found.upto_slot + 1
        return None

    def _try_finish_phase1(self, now: float) -> None:
        # A value known chosen is final: it is the only one its slot can ever choose. It may
        # be reported with an old ballot (or none, once applied), so a higher-ballot accept of
        # another value from another promise must not replace it, whatever order promises
        # come in; and what this node itself learnt is chosen counts as well.
        merged: dict[int, tuple[Ballot, bytes]] = {}
        final: set[int] = set()
        for promise in self._promises.values():
            for entry in promise.entries:
                slot = entry.slot
                if slot <= self.applied_slot or slot in final:
                    continue
                if entry.chosen:
                    merged[slot] = (entry.ballot, entry.value)
                    final.add(slot)
                    continue
                best = merged.get(slot)
                if best is None or entry.ballot > best[0]:
                    merged[slot] = (entry.ballot, entry.value)
        for slot, value in self.values.items():
            if slot > self.applied_slot:
                merged[slot] = (merged.get(slot, (ZERO_BALLOT, value))[0], value)
        needed = [
            self.configs.at(s)
            for s in range(self._from_slot, self.applied_slot + self.settings.window_slots + 1)
        ]
        needed.extend(
            configs_implied_by(self.configs.latest(), [merged[s][1] for s in sorted(merged)])
        )
        if not all(config.is_quorum(self._promises) for config in needed):
            return
        self._become_leader(merged, now)

    def _become_leader(self, merged: dict[int, tuple[Ballot, bytes]], now: float) -> None:
        self.role = _LEADER
        self._set_leader(self.node_id)
        self._promises = {}
        self._last_quorum_at = now
        last = max(merged, default=self.applied_slot)
        self._next_slot = self.applied_slot + 1
        self._term_first_slot = self._next_slot
        # Reads wait until every slot the promises reported is applied: any value chosen
        # before this term is among them, and the last may be chosen after the first. Waiting
        # for the first only (as Raft may, whose log is chosen in order) let a read started
        # between the two see state from before a write it had been told was done.
        self._reads_from_slot = max(last, self._term_first_slot)
        noop = self._noop(now)
        for slot in range(self.applied_slot + 1, last + 1):
            self._propose_slot(merged.get(slot, (ZERO_BALLOT, noop))[1], now)
        self._enqueue(waiting_requests(self._local_waiting))
        if self._next_slot == self._term_first_slot:
            self._propose_slot(noop, now)  # commit in our own ballot before serving reads
        self._send_heartbeat(now)

    def _step_down(self) -> None:
        if self.role is _LEADER:
            reads = self._leader_reads_waiting + [(r.origin, r.read_id) for r in self._leader_reads]
            for origin, read_id in reads:
                self._fail_read(origin, read_id)
        self.role = _FOLLOWER
        self._set_leader(None)
        self._reset_proposer()
        # Its deadline passed while it led: left so, it would campaign again at once, against
        # the leader that deposed it (review, twelfth session).
        self._election_deadline = self._now + self._election_wait_s

    def _reset_proposer(self) -> None:
        self._own_batches = {}
        self._promises = {}
        self._promise_parts = {}
        self._from_slot = self.applied_slot + 1
        self._prepare_resend_at = 0.0
        self._next_slot = self.applied_slot + 1
        self._term_first_slot = self._next_slot
        self._reads_from_slot = self._next_slot
        self._in_flight = {}
        self._resend_due = float("inf")
        self._pending = deque()
        self._pending_bytes = 0  # _size_bytes(self._pending), kept as requests come and go
        self._queued = {}
        self._heartbeat_due = 0.0
        self._heartbeat_seq = 0
        self._commit_told = 0  # the commit point last multicast, in a Commit or an Accept
        self._commit_due = float("inf")
        self._urgent_upto = 0
        self._heartbeat_sent = {}
        self._acked_seq = {}
        self._member_applied = {}
        self._confirmed_seq = 0
        self._last_quorum_at = -1e18
        self._lease_until = -1e18
        self._leader_reads = []
        self._leader_reads_waiting = []
        self._expiring = {}

    # --- leader ------------------------------------------------------------------------------

    def _log_time_ms(self, now: float) -> int:
        """Log time never runs backwards, even when a new leader's clock is behind."""
        return max(int(now * 1000), self.last_log_time_ms)

    def _enqueue(
        self,
        requests: Sequence[m.Request],
        columns: tuple[Sequence[str], Sequence[int], Sequence[bytes]] | None = None,
    ) -> None:
        """Queue requests for the next slots, each once while it waits or is in flight.

        A follower resends what is not answered in time, and a leader with a deep queue (many
        clients, big values) answers later than that: without this, every resend was queued
        and replicated again, the queue grew faster than slots drained it, and the cluster's
        whole capacity went to duplicates. A copy of a request already applied is still
        queued: applying it again answers it from the dedup table, for a client that retried.
        ``columns``: the requests' client ids, seqs and commands, if the caller has them.
        """
        if not requests:
            return
        client_ids: Sequence[str]
        seqs: Sequence[int]
        if columns is None:
            client_ids, seqs = list(map(_client_id_of, requests)), list(map(_seq_of, requests))
        else:
            client_ids, seqs, commands = columns
        # The engine's own requests (no-ops, lease expiries) all share one id and are never
        # resent, so they are not counted: each is queued as made.
        kept = queue_new(self._queued, requests, client_ids, seqs)
        self._pending.extend(kept)
        if kept is requests and columns is not None:  # all of them: sized from the columns
            self._pending_bytes += _columns_size_bytes(client_ids, commands)
        else:
            self._pending_bytes += _size_bytes(kept)

    def _propose_slot(self, value: bytes, now: float) -> None:
        slot = self._next_slot
        self._next_slot += 1
        self._in_flight[slot] = _InFlight(value, now)
        resend_at = now + self.settings.retransmit_interval_s
        if resend_at < self._resend_due:
            self._resend_due = resend_at
        accept = m.Accept(self._ballot, slot, value, self.applied_slot)
        self._told_commit_point()
        self._effects.append(Broadcast(accept))
        self._on_accept(self.node_id, accept, now)

    def _pump(self, now: float) -> None:
        """Fill the window with batches of whatever waits (batching and pipelining)."""
        limit = self.settings.max_message_bytes
        window_end = self.applied_slot + self.settings.window_slots
        while self._next_slot <= window_end and self._config_change_waiting():
            # A chosen change governs only from alpha slots on: pad so it takes effect now.
            self._propose_slot(self._noop(now), now)
        pending = self._pending
        while pending and self._next_slot <= self.applied_slot + self.settings.window_slots:
            if self._pending_bytes + 64 <= limit:
                batch = list(pending)  # the usual case: all that waits fits in one slot
                pending.clear()
                self._pending_bytes = 0
            else:
                batch = []
                size = 0
                while pending and (not batch or size + len(pending[0].command) + 64 <= limit):
                    request = pending.popleft()
                    batch.append(request)
                    size += len(request.command) + len(request.client_id) + 16
                self._pending_bytes -= size
            log_time_ms = self._log_time_ms(now)
            client_ids, seqs, commands = _split_requests(batch)
            value, items = pack_batch(log_time_ms, client_ids, seqs, commands)
            # The columns pass ``check_columns`` but for the log time: every request was
            # checked as it came in (``_check_requests`` in propose and on a Forward, the codec
            # on the wire), the engine's own are well formed, and pack_batch made the items.
            if log_time_ms <= MAX_LOG_TIME_MS:
                self._own_batches[self._next_slot] = (value, (log_time_ms, client_ids, seqs, items))
            else:  # the replicas refuse it: so do we, and its requests are free to come again
                unqueue(self._queued, client_ids, seqs)
            self._propose_slot(value, now)

    def _on_accepted(self, sender: str, msg: m.Accepted, now: float) -> None:
        if self.role is not _LEADER or msg.ballot != self._ballot:
            return
        for slot in msg.slots:
            flight = self._in_flight.get(slot)
            if flight is not None:
                flight.acks.add(sender)
        self._advance_chosen(now)

    def _advance_chosen(self, now: float) -> None:
        first = slot = self.applied_slot + 1
        while (flight := self._in_flight.get(slot)) is not None:
            if slot > self.applied_slot + self.settings.window_slots:
                break  # its configuration is decided by slots not yet applied
            if not self.configs.at(slot).is_quorum(flight.acks):
                break
            del self._in_flight[slot]
            self.values[slot] = flight.value
            self._apply_ready()
            # Applying may go past this slot (values learnt chosen while campaigning), and
            # those slots' flights are gone: carry on after what is applied, or a slot with
            # its quorum already in would wait for an ack that never comes.
            slot = max(slot + 1, self.applied_slot + 1)
        if slot > first:
            self._persist(chosen_record(first, slot - 1))

    def _commit_soon(self, now: float) -> None:
        """Multicast the commit point now, or once ``commit_delay_s`` has passed.

        Under load every step sends accepts and each carries the commit point; a Commit of
        its own is needed only when none follows. Sent at once, it was one more multicast per
        write at low load, on the leader's critical path (its ``sendto`` runs before the next
        write is proposed) and a wake-up of every replica; after a short wait the next write's
        accept usually tells it instead. Followers' ``local`` reads and watches hear of a
        write that much later, at most; a write or read that another node waits on (a
        forwarded request, a read index) is told at once.
        """
        if self._commit_told < self._urgent_upto or self.settings.commit_delay_s <= 0:
            self._tell_commit()
        elif self._commit_due == float("inf"):
            self._commit_due = now + self.settings.commit_delay_s

    def _tell_commit(self) -> None:
        if self.applied_slot > self._commit_told:
            self._effects.append(Broadcast(m.Commit(self._ballot, self.applied_slot)))
        self._told_commit_point()

    def _told_commit_point(self) -> None:
        """A message going out now carries ``applied_slot`` as the commit point."""
        self._commit_told = self.applied_slot
        self._commit_due = float("inf")

    def _noop(self, now: float) -> bytes:
        request = m.Request(_INTERNAL_CLIENT, 0, encode_command(NoOp()))
        return encode_batch(self._log_time_ms(now), [request])

    def _config_change_waiting(self) -> bool:
        if self._pending or self.configs.last_start() <= self._next_slot:
            return False  # (the latest configuration governs the next slot: nothing waits)
        governing, latest = self.configs.at(self._next_slot), self.configs.latest()
        return governing is not latest and governing != latest

    def _leader_tick(self, now: float) -> None:
        if self.node_id not in self.configs.at(self._next_slot).voters:
            self._step_down()  # removed or demoted: a leader must be a voter of its slots
            return
        if now - self._last_quorum_at > self.settings.election_timeout_max_s:
            self._step_down()  # check-quorum: a leader nobody hears must not hold its lease
            self._election_deadline = now + self._election_timeout()
            return
        if now >= self._heartbeat_due:
            self._send_heartbeat(now)
        elif now >= self._commit_due:
            self._tell_commit()
        if now >= self._resend_due:
            self._resend_due_accepts(now)
        self._propose_due_lease_expiries(now)

    def _resend_due_accepts(self, now: float) -> None:
        """Resend every accept due, and find when the next is due.

        The next resend is kept as one number, not found by ``next_deadline`` (which the
        runtime calls after every step) over the whole window: it may be early (a slot that
        got its quorum meanwhile still counts until this runs again), never late, and a tick
        that comes early finds nothing due and looks again.
        """
        due = float("inf")
        for slot, flight in self._in_flight.items():
            if self.configs.at(slot).is_quorum(flight.acks):
                continue
            if now >= flight.sent_at + self._resend_after(flight):
                flight.sent_at = now
                flight.resends += 1
                self._effects.append(
                    Broadcast(m.Accept(self._ballot, slot, flight.value, self.applied_slot))
                )
            due = min(due, flight.sent_at + self._resend_after(flight))
        self._resend_due = due

    def _resend_after(self, flight: _InFlight) -> float:
        """How long a slot may wait for its quorum before its Accept goes out again.

        A slot that already has its quorum is never resent (it waits only for an earlier
        slot), and the wait doubles with every resend up to 16 times: a loaded follower whose
        replies are merely late must not be buried under copies of 48 KB accepts it already
        holds, which is how a burst of big values used to collapse into a resend storm.
        """
        return self.settings.retransmit_interval_s * (1 << min(flight.resends, 4))

    def _propose_due_lease_expiries(self, now: float) -> None:
        """A quiet cluster still expires leases on time: the leader proposes each due one."""
        for lease in self.state.due_leases(self._log_time_ms(now)):
            if lease not in self._expiring:
                # Re-proposed if still unapplied once a window of slots has gone by.
                self._expiring[lease] = self._next_slot + self.settings.window_slots
                self._enqueue([m.Request(_INTERNAL_CLIENT, 0, encode_command(LeaseExpire(lease)))])

    def _send_heartbeat(self, now: float) -> None:
        self._told_commit_point()
        self._heartbeat_seq += 1
        self._heartbeat_sent[self._heartbeat_seq] = now
        self._heartbeat_due = now + self.settings.heartbeat_interval_s
        self._effects.append(
            Broadcast(m.Heartbeat(self._ballot, self.applied_slot, self._heartbeat_seq))
        )
        self._on_heartbeat_ack(
            self.node_id, m.HeartbeatAck(self._ballot, self._heartbeat_seq, self.applied_slot), now
        )

    def _on_heartbeat(self, sender: str, msg: m.Heartbeat, now: float) -> None:
        self._observe(msg.ballot)
        # Below the ballot of the leader it follows, too: a heartbeat does not raise the
        # promise, so a voter that acked a new leader's heartbeats but missed its accepts
        # still holds the deposed one's ballot as its promise; an ack to a late heartbeat of
        # the deposed leader's would give it a lease beside the new one's (review, twelfth
        # session). The nack tells it it is deposed.
        floor = self._leader_ballot if self._leader_ballot > self.promised else self.promised
        if msg.ballot < floor:
            self._send(sender, m.Nack(msg.ballot, floor))
            return
        self._heard_leader(msg.ballot, now)
        self._learn_commit(msg.ballot, msg.commit_upto, sender, now)
        if not self.settings.learner:
            self._send(sender, m.HeartbeatAck(msg.ballot, msg.seq, self.applied_slot))

    def _on_heartbeat_ack(self, sender: str, msg: m.HeartbeatAck, now: float) -> None:
        if self.role is not _LEADER or msg.ballot != self._ballot:
            return
        self._acked_seq[sender] = max(self._acked_seq.get(sender, 0), msg.seq)
        self._member_applied[sender] = msg.applied_upto
        config = self.configs.at(self._next_slot)
        voter_acks = sorted((self._acked_seq.get(v, 0) for v in config.voters), reverse=True)
        confirmed = (
            voter_acks[config.quorum_size() - 1] if len(voter_acks) >= config.quorum_size() else 0
        )
        if confirmed > self._confirmed_seq:
            self._confirmed_seq = confirmed
            sent_at = self._heartbeat_sent[confirmed]
            self._last_quorum_at = max(self._last_quorum_at, sent_at)
            margin = self.settings.election_timeout_min_s * (1 - self.settings.clock_drift_bound)
            self._lease_until = sent_at + margin
            for seq in [s for s in self._heartbeat_sent if s < confirmed]:
                del self._heartbeat_sent[seq]
            self._answer_ready_reads()

    def _on_nack(self, sender: str, msg: m.Nack, now: float) -> None:
        self._observe(msg.promised)

    def _on_forward(self, sender: str, msg: m.Forward, now: float) -> None:
        if self.role is _LEADER and msg.requests:
            try:  # the codec checked them; a caller that skips it (a test) must not skip this
                _check_requests(msg.requests)
            except ValueError:
                return  # a batch with it would be refused by every replica: drop the message
            self._enqueue(msg.requests)
            # Their node answers them once it hears they are chosen: tell it without delay.
            # Every slot up to the last the queue can reach is told at once (a bound, not
            # the exact slots: a commit sent early costs a multicast, one sent late a client
            # a wait).
            self._urgent_upto = self._next_slot + len(self._pending)

    # --- reads -------------------------------------------------------------------------------

    def _leader_ready(self) -> bool:
        return self.role is _LEADER and self.applied_slot >= self._reads_from_slot

    def _lease_valid(self, now: float) -> bool:
        return self._leader_ready() and now < self._lease_until

    def _on_read_index_request(self, sender: str, msg: m.ReadIndexRequest, now: float) -> None:
        if self.role is not _LEADER:
            self._send(sender, m.ReadIndexReply(msg.read_ids, -1))
            return
        if msg.lease and self._lease_valid(now):
            # As a lease read here is served: no rival can have chosen a slot past ours
            # while the lease runs, so what is applied here is the commit point to read at.
            self._tell_commit()  # the reader's node applies up to it before it serves
            self._send(sender, m.ReadIndexReply(msg.read_ids, self.applied_slot))
            return
        self._leader_reads_waiting.extend((sender, rid) for rid in msg.read_ids)

    def _start_leader_reads(self, now: float) -> None:
        """Read-index (Raft thesis 6.4): note the commit point, then confirm we still lead."""
        if not self._leader_reads_waiting or not self._leader_ready():
            return
        self._send_heartbeat(now)
        for origin, read_id in self._leader_reads_waiting:
            self._leader_reads.append(
                _LeaderRead(origin, read_id, self.applied_slot, self._heartbeat_seq)
            )
        self._leader_reads_waiting = []
        self._answer_ready_reads()

    def _answer_ready_reads(self) -> None:
        # One pass that parts them: a second pass testing each read for membership in the
        # ready list (field by field) cost n^2 comparisons, 7 ms a heartbeat round with 64
        # reads waiting, and held linearizable reads to some 5,000/s (twenty-fourth session).
        confirmed_seq, applied = self._confirmed_seq, self.applied_slot
        ready: list[_LeaderRead] = []
        waiting: list[_LeaderRead] = []
        for r in self._leader_reads:
            if r.heartbeat_seq <= confirmed_seq and r.index <= applied:
                ready.append(r)
            else:
                waiting.append(r)
        if not ready:
            return
        self._leader_reads = waiting
        remote: dict[str, list[int]] = {}
        for read in ready:
            if read.origin == self.node_id:
                self._effects.append(ReadReady(read.read_id, read.index))
            else:
                remote.setdefault(read.origin, []).append(read.read_id)
        if remote:
            self._tell_commit()  # the readers' nodes apply up to the index before they serve
        for origin, read_ids in remote.items():
            self._send(origin, m.ReadIndexReply(tuple(read_ids), self.applied_slot))

    def _fail_read(self, origin: str, read_id: int) -> None:
        if origin == self.node_id:
            # Our own reader waits on: it asks whoever leads next, as a follower would.
            self._follower_reads[read_id] = None
            self._read_requests_out.append(read_id)
        else:
            self._send(origin, m.ReadIndexReply((read_id,), -1))

    def _on_read_index_reply(self, sender: str, msg: m.ReadIndexReply, now: float) -> None:
        for read_id in msg.read_ids:
            if read_id in self._follower_reads and msg.index >= 0:
                # Never lowered: a reply to an earlier ask, come late, was confirmed earlier.
                known = self._follower_reads[read_id]
                self._follower_reads[read_id] = (
                    msg.index if known is None else max(known, msg.index)
                )
            self._lease_asked.pop(read_id, None)
        self.known_commit = max(self.known_commit, msg.index)
        self._serve_follower_reads()
        if self.known_commit > self.applied_slot:
            self._request_catchup(sender, now)

    def _serve_follower_reads(self) -> None:
        ready = [
            (rid, index)
            for rid, index in self._follower_reads.items()
            if index is not None and index <= self.applied_slot
        ]
        for read_id, index in ready:
            del self._follower_reads[read_id]
            self._effects.append(ReadReady(read_id, index))

    # --- plumbing ----------------------------------------------------------------------------

    def _send(self, to: str, message: m.Message) -> None:
        if to == self.node_id:
            _HANDLERS[type(message)](self, to, message, self._now)
        else:
            self._effects.append(Send(to, message))

    def _hold(self, to: str, message: m.Message) -> None:
        """Queue a reply until everything persisted so far is durable."""
        if self._pending_records:
            self._flush_persist()
        elif self._last_persist_lazy and self._next_sync_id - 1 > self._durable_sync_id:
            self._flush_persist(force=True)  # the reply needs what was written lazily
        sync_id = self._next_sync_id - 1
        if sync_id <= self._durable_sync_id:
            self._send(to, message)
        else:
            self._held.append((sync_id, Send(to, message)))

    def _persist(self, record: JournalRecord) -> None:
        self._pending_records.append(record)

    def _flush_persist(self, *, sync_now: bool = True, force: bool = False) -> None:
        """Hand what was persisted to the runtime; ``force`` sends even no records.

        Records flushed at the end of a step (``sync_now=False``) have no reply held on them;
        a reply held later on such a flush forces an empty urgent one, since the runtime's
        sync of it covers every record written before.
        """
        if self._pending_records or force:
            records = tuple(self._pending_records)
            self._pending_records = []
            self._journal_index += len(records)
            self._effects.append(Persist(records, self._next_sync_id, sync_now))
            self._next_sync_id += 1
            self._last_persist_lazy = not sync_now

    def _drain(self, now: float) -> list[Effect]:
        if self._to_forward or self._read_requests_out or self._lease_reads_out:
            self._flush_forwards(now)
        if not self._local_waiting and self._sent_recently:
            self._sent_recently.clear()  # nothing waits, so nothing can be retried early
        if self.role is _LEADER:
            if self._leader_reads_waiting:
                self._start_leader_reads(now)
            self._pump(now)
            if self.applied_slot > self._commit_told:
                self._commit_soon(now)
        if self._pending_records:
            self._flush_persist(sync_now=False)  # a reply held on them would have flushed them
        self._applied_before_step = self.applied_slot
        effects, self._effects = self._effects, []
        return effects

    def _flush_forwards(self, now: float) -> None:
        """Pass local requests and reads to the leader, a few messages for all of them."""
        leader = self.leader_id
        if leader is None:
            return  # kept until a leader is known
        waiting = self._local_waiting
        requests = [r for key, r in self._to_forward.items() if is_waiting(waiting, *key)]
        read_ids = list(dict.fromkeys(self._read_requests_out))
        # Lease reads asked for the first time (and still waiting for an index, and not also
        # being asked again without the lease, which answers them as well).
        follower_reads = self._follower_reads
        asked = set(read_ids)
        lease_ids = [
            rid
            for rid in dict.fromkeys(self._lease_reads_out)
            if follower_reads.get(rid, 0) is None and rid not in asked
        ]
        self._to_forward, self._read_requests_out, self._lease_reads_out = {}, [], []
        if leader == self.node_id:
            if self.role is _LEADER:
                self._enqueue(requests)
                # Only reads still waiting for an index become this leader's own: one that a
                # leader before it answered is served here once applied that far (it was
                # popped whatever its index, and so never answered: review, twenty-fourth
                # session, a read answered while its node campaigned).
                lease_valid = self._lease_valid(now)
                for read_id in lease_ids:
                    del follower_reads[read_id]
                    if lease_valid:
                        self._effects.append(ReadReady(read_id))
                    else:
                        self._leader_reads_waiting.append((self.node_id, read_id))
                for read_id in read_ids:
                    if follower_reads.get(read_id, 0) is None:
                        del follower_reads[read_id]
                        self._leader_reads_waiting.append((self.node_id, read_id))
            return
        for batch in _forward_batches(requests, self.settings.max_message_bytes):
            self._effects.append(Send(leader, m.Forward(batch)))
        if lease_ids and self._lease_refused_by == leader and now < self._lease_refused_until:
            read_ids += lease_ids  # this leader left one waiting lately: ask it as it reads
            lease_ids = []
        if lease_ids:
            self._lease_asked.update(dict.fromkeys(lease_ids, now))
            self._effects.append(Send(leader, m.ReadIndexRequest(tuple(lease_ids), True)))
        if read_ids:
            self._effects.append(Send(leader, m.ReadIndexRequest(tuple(read_ids))))


# How long a leader that left a lease read unanswered is asked without the lease's tag.
_LEASE_TAG_RETRY_S: Final = 30.0
_MOST_PROMISE_PARTS_PER_SLOT = 4  # a promise of more parts than this x window_slots is cut short
_MOST_RETRY_PERIODS = 8  # between resends of one unanswered request (4 s at the default 0.5 s)
_new_tuple: Final = tuple.__new__
_client_id_of = itemgetter(0)  # of a Request (a NamedTuple: an index beats a name)
_seq_of = itemgetter(1)
_command_of = itemgetter(2)


def _check_requests(
    requests: Sequence[m.Request],
) -> tuple[Sequence[str], Sequence[int], Sequence[bytes]]:
    """Refuse what would make its whole batch refused by every replica (see read_batch).

    Returns the client ids, seqs and commands, split out for the caller. One typed loop over
    the requests, which the compiled build runs as C: a request is checked and split into the
    columns at once (``zip(*requests)`` and a ``set(map(type, ...))`` per column, with
    ``min`` and ``max`` of the seqs, cost some 1,600 instructions a request there). Anything
    it does not pass goes to :func:`_check_requests_generally`, which names what is wrong.
    """
    client_ids: list[str] = []
    seqs: list[int] = []
    commands: list[bytes] = []
    for request in requests:
        if not isinstance(cast(object, request), tuple) or len(request) != 3:
            return _check_requests_generally(requests)  # a list for a Request, say
        row: tuple[Any, ...] = request
        client_id = row[0]
        seq = row[1]
        command = row[2]
        if (
            type(client_id) is not str
            or not client_id
            or type(seq) is not int
            or seq < 0
            or (seq > _MOST_SHORT_INT and seq > UINT64_MAX)
            or type(command) is not bytes
        ):
            return _check_requests_generally(requests)
        client_ids.append(client_id)
        seqs.append(seq)
        commands.append(command)
    return client_ids, seqs, commands


def _split_requests(requests: list[m.Request]) -> tuple[list[str], list[int], list[bytes]]:
    """The client ids, seqs and commands of checked requests, as columns: a loop that the
    compiled build runs in C, where ``zip(*requests)`` makes an iterator per request."""
    client_ids: list[str] = []
    seqs: list[int] = []
    commands: list[bytes] = []
    for request in requests:
        row: Any = request  # a Request, or a list a direct caller passed (checked as one)
        client_ids.append(row[0])
        seqs.append(row[1])
        commands.append(row[2])
    return client_ids, seqs, commands


_MOST_SHORT_INT = (1 << 62) - 1  # compiled, an int up to this is compared without a call


def _check_requests_generally(
    requests: Sequence[m.Request],
) -> tuple[Sequence[str], Sequence[int], Sequence[bytes]]:
    """:func:`_check_requests` of any requests: raises the error that says what is wrong."""
    client_ids, seqs, commands = zip(*requests, strict=True)
    if not (
        set(map(type, client_ids)) <= {str}
        and set(map(type, seqs)) <= {int}
        and set(map(type, commands)) <= {bytes}
        and min(seqs) >= 0
        and max(seqs) <= UINT64_MAX
    ):
        raise ValueError(
            "a client request is a str client_id, an int seq from 0 to 2**64 - 1 and the "
            "command's bytes"
        )
    if not all(client_ids):
        raise ValueError("a client request needs a non-empty client_id")
    return client_ids, seqs, commands


def _forward_batches(requests: list[m.Request], limit: int) -> list[tuple[m.Request, ...]]:
    """``requests`` cut into Forwards of at most ``limit`` bytes each (by batch_size_bytes).

    The usual case, everything in one message, is found by one count in C loops (the sum of
    what the loop below adds up one request at a time), not a Python call per request.
    """
    if not requests:
        return []
    if _size_bytes(requests) + 16 * len(requests) <= limit:
        return [tuple(requests)]
    return _forward_batches_one_by_one(requests, limit)


def _forward_batches_one_by_one(
    requests: list[m.Request], limit: int
) -> list[tuple[m.Request, ...]]:
    batches: list[tuple[m.Request, ...]] = []
    batch: list[m.Request] = []
    size = 0
    for request in requests:
        request_size = batch_size_bytes([request])
        if batch and size + request_size > limit:
            batches.append(tuple(batch))
            batch, size = [], 0
        batch.append(request)
        size += request_size
    if batch:
        batches.append(tuple(batch))
    return batches


def _size_bytes(requests: Sequence[m.Request]) -> int:
    """What the batching loop in ``_pump`` would count for all of ``requests``, in C loops."""
    commands = sum(map(len, map(_command_of, requests)))
    return commands + sum(map(len, map(_client_id_of, requests))) + 16 * len(requests)


def _columns_size_bytes(client_ids: Sequence[str], commands: Sequence[bytes]) -> int:
    """:func:`_size_bytes` of requests from their columns: a pass less, and none over one
    client's ids."""
    first = client_ids[0]
    if len(client_ids) == 1:  # a sequential writer's request: no sums over maps
        return len(commands[0]) + len(first) + 16
    if client_ids.count(first) == len(client_ids):
        ids = len(first) * len(client_ids)
    else:
        ids = sum(map(len, client_ids))
    return sum(map(len, commands)) + ids + 16 * len(commands)


def _coalesce_accepted(sends: list[Send]) -> list[Send]:
    """Many accepts made durable by one sync are acknowledged in one message per leader."""
    out: list[Send] = []
    merged: dict[tuple[str, Ballot], list[int]] = {}
    for send in sends:
        msg = send.message
        if isinstance(msg, m.Accepted):
            key = (send.to, msg.ballot)
            if key not in merged:
                merged[key] = []
                out.append(send)
            merged[key].extend(msg.slots)
        else:
            out.append(send)
    return [
        Send(s.to, m.Accepted(s.message.ballot, tuple(merged[(s.to, s.message.ballot)])))
        if isinstance(s.message, m.Accepted)
        else s
        for s in out
    ]


_HANDLERS: dict[type[Any], Callable[[Engine, str, Any, float], None]] = {
    m.Prepare: Engine._on_prepare,
    m.Promise: Engine._on_promise,
    m.Nack: Engine._on_nack,
    m.Accept: Engine._on_accept,
    m.Accepted: Engine._on_accepted,
    m.Commit: Engine._on_commit,
    m.Heartbeat: Engine._on_heartbeat,
    m.HeartbeatAck: Engine._on_heartbeat_ack,
    m.Forward: Engine._on_forward,
    m.ReadIndexRequest: Engine._on_read_index_request,
    m.ReadIndexReply: Engine._on_read_index_reply,
    m.CatchupRequest: Engine._on_catchup_request,
    m.CatchupReply: Engine._on_catchup_reply,
    m.SnapshotRequest: Engine._on_snapshot_request,
    m.SnapshotChunk: Engine._on_snapshot_chunk,
}
