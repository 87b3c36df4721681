"""One replica under asyncio: the engine, its store and its transport, and nothing clever.

Like aioquic's asyncio protocol, this module only feeds the sans-IO core and carries out what
it returns: every datagram (handed over by the transport as it is drained) and every timer
goes to the engine, every effect is done in order (sends queued and sent as one burst when the
step ends, persists handed to the group committer and synced after those sends, snapshots
written off the loop), and one timer is re-armed at the engine's next deadline after each step.
Decisions live in the engine (``paxoskv.paxos``) or in pure policy (``membership.py``); what is
left here is plumbing, bootstrapping, and serving clients that are not replicas themselves
(``serving.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from itertools import pairwise
from typing import Any

from paxoskv.compiled import build_name
from paxoskv.config import COMMIT_DELAY_S, Config
from paxoskv.errors import (
    AmnesiacVoter,
    ConfigurationError,
    DuplicateNodeId,
    NodeClosed,
    NodeRemoved,
    NoQuorum,
    StorageError,
    WrongFormation,
)
from paxoskv.paxos import effects as fx
from paxoskv.paxos.configs import last_voted_slot, may_leave
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.messages import MalformedMessage, Request, decode_message, encode_message
from paxoskv.paxos.records import DurableState, decode_local_snapshot
from paxoskv.runtime import protocol
from paxoskv.runtime.clock import now as clock_now
from paxoskv.runtime.heap import give_back_free_memory
from paxoskv.runtime.identity import (
    GENESIS_FILE,
    LEGACY_FORMATION,
    DuplicateIdWatch,
    Life,
    Role,
    earlier_seat_until,
    fresh_nonce,
    load_leave_slot,
    load_life,
    load_met,
    load_role,
    node_identity,
    read_genesis,
    save_genesis,
    save_life,
    save_met,
    save_role,
)
from paxoskv.runtime.loop import start_up_done, until_either, within
from paxoskv.runtime.membership import (
    CATCH_UP_MARGIN_SLOTS,
    Bootstrap,
    Member,
    PeerView,
    liveness,
    membership_change,
)
from paxoskv.runtime.protocol import PAXOS
from paxoskv.runtime.window import window_slots
from paxoskv.state import Configuration, encode_command
from paxoskv.state.snapshot import paused_gc
from paxoskv.storage import LAZY_SYNC_S, GroupCommitter, Store
from paxoskv.transport import Delivery, Transport, open_transport
from paxoskv.transport.interfaces import resolve_interface

log = logging.getLogger("paxoskv.node")

_DUPLICATE_PROOF_INTERVALS = 3  # hello intervals; the watch's proof takes a bit over one
_LIFE_CHECK_READ_S = 24 * 3600.0
"""The life check's read waits for the catch-up, however long: see :meth:`Replica._check_life`."""
_new_tuple = tuple.__new__
# The effects a step carries out itself, by exact type (see Replica._carry_out_all).
_PERSIST = fx.Persist
_SEND = fx.Send
_BROADCAST = fx.Broadcast
_ANSWERS = fx.Answers

MAX_MESSAGE_BYTES = 64_000  # an engine message, at most (UDP carries 65,507 bytes)
MESSAGE_ENVELOPE_BYTES = 1_024  # kept free in a datagram for a message's own fields
HELD_BYTES = 1 << 20  # Paxos kept for senders whose ident has not come yet: see _hold
FOREIGN_LOGGED = 1024  # strangers' (id, genesis, formation) logged once each, at most
_ENGINE_MESSAGE_BYTES = EngineSettings(node_id="default").max_message_bytes
BUNDLE_READERS_KEPT = 4_096  # clients remembered as reading bundles (see _on_bundle)
# Behind the chosen slots it knows of by more than this, a node logs its catch-up each second;
# within it again, once, that it has caught up (the last slots arrive as a follower's do).
_CAUGHT_UP_SLOTS = 100


def _others_make_a_quorum(configuration: Configuration) -> bool:
    """Whether a quorum of voters can be formed without this node, the leader.

    Then a leader leaves its own syncs to the writer thread, however quiet the disk: its vote
    is one of several, and a loop blocked in its own fdatasync cannot count the followers'
    votes that arrive meanwhile, which may already choose the slot without it. A write then
    waits for the fastest quorum of syncs, not always for the leader's. With one or two
    voters the leader's sync is always needed, and is made on the loop when it is quiet, as
    it is in the ``os`` and ``memory`` modes, where a sync never waits on the disk.
    """
    return len(configuration.voters) > configuration.quorum_size()


class Replica:
    """A running node. Use it through :class:`paxoskv.Node`."""

    def __init__(self, config: Config, *, transport: Transport | None = None) -> None:
        config.check_node_storage()
        if transport is None:  # before the data dir is touched: a bad one left node-id behind
            resolve_interface(config.interface)
        self.config = config
        self.node_id = node_identity(config.data_dir, config.node_id)
        self._given_transport = transport
        self.transport: Transport | None = None
        self.engine: Engine | None = None
        self.store: Store | None = None
        self._committer: GroupCommitter | None = None
        self._loop = asyncio.get_running_loop()
        # The one thread that changes the state: Node.get_local from another thread checks it
        # is still alive (it is not in a child forked while it applied a slot).
        self.loop_thread = threading.current_thread()
        self._loop_thread = self.loop_thread.ident
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline = float("inf")
        self._delivering = False  # in _on_deliveries: its steps leave the timer to it
        self._rearm_due = False  # a step during _on_deliveries moved the engine's deadline
        self._proposals: list[Request] = []
        self._last_flush_size = 0  # how many proposals the last flush took (see submit)
        self._sweeper: asyncio.Task[None] | None = None
        self._outbox: deque[tuple[str | None, bytes]] = deque()
        self._flush_queued = False  # a flush of the outbox is scheduled for this loop turn
        self._draining: asyncio.Task[None] | None = None  # sends waiting for socket room
        self._sync_due = False  # a step persisted records someone waits on
        self._durable_upto = 0  # the highest sync id reported durable, not yet told the engine
        self._durable_call_due = False  # a call of _tell_durable is queued on the loop
        self._durable_told = 0  # the highest sync id the engine has heard of
        self._durable_lock = threading.Lock()
        self._syncing_here = False  # a step is in GroupCommitter.sync_here (on the loop)
        self._fsyncs = config.durability == "durable"  # (else a sync is a write at most)
        self._stepping = 0  # engine steps under way (a delivery during one waits its turn)
        self._lazy_sync: asyncio.TimerHandle | None = None
        self._last_sync_id = 0  # the sync id of the latest records handed to the committer
        # Hellos' durable slot (see _durable_slot): the last one known synced, and a later
        # applied slot waiting for the sync id it was read at.
        self._synced_slot = 0
        self._slot_at_sync: tuple[int, int] | None = None
        self._snapshots_saving = 0  # snapshot writes under way (one may hold a transfer)
        self._tasks: list[asyncio.Task[None]] = []
        # What each local request waits on: its future, its deadline, its timeout.
        self._answers: dict[tuple[str, int], tuple[asyncio.Future[bytes], float, float]] = {}
        self._reads: dict[int, Callable[[int], None]] = {}
        self._barriers: set[asyncio.Future[int]] = set()  # reads awaited here; failed at stop
        # Random, not 1: a reply to an earlier life's read of the same id, delayed, would
        # confirm this life's read at that life's slot (a stale read; and a stale index
        # passed the life check, a seat of the earlier life taken for this one's: review
        # of the life check, twenty-ninth session).
        self._next_read_id = secrets.randbits(62) + 1
        self._pending_reads: list[tuple[int, str]] = []  # asked this turn, for the engine
        self._last_read_flush_size = 0  # how many the last flush took (see start_read)
        self._applied_listeners: list[Callable[[], None]] = []
        self._answer_listeners: list[Callable[[fx.Answer], bool]] = []
        self._runtime_handlers: dict[str, Callable[[str, list[Any]], None]] = {}
        # Clients that sent a bundle, so read them: their replies of one turn go as bundles
        # too. The most recent ones only: every `paxos-kv` command is a new client.
        self._bundle_readers: OrderedDict[str, None] = OrderedDict()
        self._carriers = self._effect_carriers()
        self.peers: dict[str, PeerView] = {}
        self._genesis: tuple[str, ...] | None
        # Read from the data dir in :meth:`start`, once its lock is held: a data dir in use says
        # so first, whatever else is wrong with it.
        self._genesis = None
        self._formation = LEGACY_FORMATION  # (meaningful once there is a genesis)
        self._record_cluster = False
        self._role: Role = "learner" if config.learner else "voter"
        self._bootstrap = (
            Bootstrap(self.node_id, config.bootstrap_expect, settle_s=config.hello_interval_s)
            if config.bootstrap_expect is not None
            else None
        )
        # What recovery read, kept only until the cluster is formed or joined and the engine
        # starts with it (then let go of: it may be a view into a snapshot file's bytes).
        self._pending_durable: DurableState | None = None
        self._has_state = False  # the data dir held a journal or snapshot at start (not a
        # fresh life's, before its seat is settled: see settled)
        self._life: Life | None = None  # a fresh life (see identity.Life); None: not one
        self._member = False  # seen in the configuration, caught up: see _watch_own_membership
        self._leave_after: int | None = None  # removed, still voting up to here: see _still_needed
        self._kept_leave_after: int | None = None  # ... as the role file has it
        self._head_at_join: int | None = None  # (a fresh node) the first commit point heard
        self._last_members: frozenset[str] | None = None
        self._seen_configuration: Configuration | None = None
        self._removed_at: dict[str, int] = {}
        # Removed nodes whose process is still heard: highest applied slot since, when last heard.
        self._removed_lives: dict[str, tuple[int, float]] = {}
        # Whose Paxos counts: senders whose last ident showed our genesis and formation (see
        # _on_ident); each sender's last ident and when it came; hellos since it.
        self._verified: set[str] = {self.node_id}
        self._idents: dict[str, tuple[protocol.Ident, float]] = {}
        # Hellos with no ident: how many, since when, and when the last came.
        self._identless_hellos: dict[str, tuple[int, float, float]] = {}
        self._foreign: dict[str, float] = {}  # another cluster's nodes: when last refused
        self._foreign_logged: set[tuple[str, tuple[str, ...], str | None]] = set()
        self._held: dict[str, tuple[float, list[bytes]]] = {}  # see _hold
        self._held_bytes = 0
        self.dropped_foreign = 0  # Paxos messages from senders not shown to be members
        self._duplicates: DuplicateIdWatch | None = None
        self._engine_ready = asyncio.Event()
        self._snapshot_lock = asyncio.Lock()
        self._policy_pending: tuple[str, int] | None = None
        self._policy_seq = 0
        # A client id of this life's own: its seqs start again at 1, and under an id of the
        # node's alone a restarted leader's first changes found the last life's results in
        # the dedup table, and were answered from there without being applied.
        self._policy_life = secrets.token_hex(4)
        self._started_at = clock_now()
        self._catch_up_logged_at = 0.0
        self._rng = random.Random()
        self.failure: BaseException | None = None
        self.stopped = asyncio.Event()
        self._stopping = False  # stop() began: new requests are refused, not left to wait
        self.sends_failed = 0  # datagrams the transport refused (too big, socket error)

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open storage, recover, open the transport, and begin (or wait to be given) a config.

        A start that fails lets go of all it opened (the store's lock, the writer thread, the
        transport) before it raises: one that failed in recovery (``CorruptData``) used to
        keep the data dir locked by its own process, so an application that fixed the cause
        and started a new Node got ``DataDirLocked`` naming itself.
        """
        self.store = await self._loop.run_in_executor(None, self._open_store)
        try:
            await self._begin(self.store)
        except BaseException:
            await self.stop()
            raise

    async def _begin(self, store: Store) -> None:
        kept = read_genesis(self.config.data_dir, self.config.cluster)
        if kept is not None:
            self._genesis, self._formation = kept.voters, kept.formation
            self._record_cluster = kept.cluster is None
        self._role = self._kept_role()
        # A leaving node's last slot, as its data dir keeps it: see identity.load_leave_slot.
        self._leave_after = self._kept_leave_after = load_leave_slot(self.config.data_dir)
        self._keep_bootstrap()
        self._life = load_life(self.config.data_dir)
        durable, has_state = await self._loop.run_in_executor(None, self._recover)
        if has_state and self._genesis is None:
            # Its genesis is saved before its first record: one lost since made the node
            # found a cluster anew over its old journal, a new formation with its old votes.
            raise ConfigurationError(
                f"data dir {self.config.data_dir} holds a journal or snapshots but no "
                f"{GENESIS_FILE} file, which says which cluster they belong to: restore it "
                "from a backup, or start this node on a fresh --data-dir (if its id is a "
                "voter, paxos-kv members remove it first)"
            )
        if self._life is None and not has_state:  # before its first journal record
            self._life = Life(fresh_nonce())
            save_life(self.config.data_dir, self._life)
        self._committer = GroupCommitter(store, self._synced)
        self.transport = self._given_transport or await open_transport(
            self.node_id, self.config.transport_settings(node_incarnation=None)
        )
        self._check_transport_room(self.transport)
        self._watch_duplicate_ids(self.transport)
        self.transport.deliver_to(self._on_deliveries)
        self._tasks = [asyncio.create_task(self._hello_loop(), name=f"{self.node_id} hello")]
        if self._record_cluster and self._genesis is not None:
            save_genesis(self.config.data_dir, self._genesis, self.config.cluster, self._formation)
            log.info("%s: its data dir now records cluster %r", self.node_id, self.config.cluster)
        if self._genesis is not None and self._formation == LEGACY_FORMATION:
            log.warning(
                "%s: its cluster was formed by an earlier release and has no formation id: a "
                "data dir left from another cluster of the same name and first voters cannot be "
                "told from a member's (see the README's limits)",
                self.node_id,
            )
        if self._genesis is not None and load_role(self.config.data_dir) is None:
            save_role(self.config.data_dir, self._role)  # an older release's data dir
        alone = self._bootstrap if self.config.bootstrap_expect == 1 else None
        if alone is not None and self._genesis is None and not has_state:
            self._found((self.node_id,), alone.formation())
        self._has_state = has_state and self.settled()
        if self._genesis is not None:
            self._start_engine(durable)
        else:
            self._pending_durable = durable
            log.info("%s %s", self.node_id, self._waiting_for())

    def _open_store(self) -> Store:
        key = None
        if self.config.encryption_key_file is not None:
            from paxoskv.storage import load_key_file

            key = load_key_file(self.config.encryption_key_file)
        return Store.open(
            self.config.data_dir, durability=self.config.durability, encryption_key=key
        )

    def _recover(self) -> tuple[DurableState, bool]:
        assert self.store is not None
        count = 0
        with paused_gc():  # see _start_engine
            recovered = self.store.recovered_snapshot()
            durable = decode_local_snapshot(recovered[1]) if recovered else DurableState()
            for _, record in self.store.recovered_records():
                durable.replay(record)
                count += 1
        if recovered or count:
            log.info(
                "recovered snapshot at slot %d and %d journal records", durable.applied_slot, count
            )
        return durable, bool(recovered or count)

    def _keep_bootstrap(self) -> None:
        """Start from the nodes met in an earlier life, and keep each one met from now on, before
        it is announced: the proof in membership.Bootstrap needs that across restarts."""
        bootstrap, data_dir = self._bootstrap, self.config.data_dir
        if bootstrap is None or self._genesis is not None:
            return
        met, nonce, nonces = load_met(data_dir, bootstrap.expect)
        bootstrap.met |= met
        bootstrap.nonce = nonce or fresh_nonce()
        bootstrap.nonces.update(nonces)

        def keep(expect: int, met: frozenset[str]) -> None:
            save_met(data_dir, expect, met, bootstrap.nonce, bootstrap.nonces)

        if met and nonce is None:  # an earlier release's file: the set goes out at once
            keep(bootstrap.expect, frozenset(bootstrap.met))
        bootstrap.keep = keep

    def _kept_role(self) -> Role:
        """What this node is, from its data dir first: a restart without ``--learner`` must
        not turn a learner into a voter behind the operator's back (the leader would promote
        it), nor may a removed node's data dir rejoin."""
        kept = load_role(self.config.data_dir)
        if kept == "removed":
            raise NodeRemoved(self.node_id, self.config.cluster)
        if kept == "voter" and self.config.learner:
            raise ConfigurationError(
                f"node {self.node_id} is a voter (kept in {self.config.data_dir}); --learner "
                "cannot make it a learner: drop --learner, or remove it (paxos-kv members "
                "remove ID) and start a learner on a fresh --data-dir"
            )
        if kept == "learner" and not self.config.learner:
            log.info(
                "%s is a learner (kept in its data dir); to make it vote: paxos-kv members "
                "promote %s",
                self.node_id,
                self.node_id,
            )
        return kept or ("learner" if self.config.learner else "voter")

    def _found(self, voters: tuple[str, ...], formation: str) -> None:
        """Adopt the genesis of a cluster this node formed: its seat there is this life's own
        (kept before the genesis: restarted in between, it forms the same one again)."""
        if self._life is not None:
            self._life = Life(self._life.nonce, formation, self._life.checked_at)
            save_life(self.config.data_dir, self._life)
        self._adopt_genesis(voters, formation)

    def settled(self) -> bool:
        """Whether this life's votes are its own: not a fresh life, or one that founded its
        cluster or has passed :meth:`_check_life` (it may still wait for its seat's first
        slot: :meth:`_may_vote`)."""
        return self._life is None or self._life.seated(self._formation)

    def _may_vote(self, engine: Engine) -> bool:
        """The rule against acceptor amnesia: a fresh life (``identity.Life``) votes only in a
        voter seat it got during this life.

        A founder's genesis seat is its own. Any other fresh life votes once it has passed
        :meth:`_check_life` at slot ``checked_at``, when its id held no voter seat: every seat
        it holds since comes from a promotion chosen after ``checked_at``, so after this life
        began, and no earlier life of its id ever voted in it. Then only once no earlier seat
        of its id governs a slot it has not applied (a change chosen at slot s governs from
        s + window, so a removal chosen shortly before still leaves the old seat a few slots:
        a promise, which covers every slot from the candidate's first, must not reach them,
        while in slots it has applied it reports the chosen values), and only once it has
        applied ``checked_at`` again (a restart recovers what was synced: until then, its
        latest configuration may be an older one).
        """
        life = self._life
        if life is None or life.founded == self._formation:
            return True
        if life.checked_at is None or engine.applied_slot < life.checked_at:
            return False
        if self._role == "leaving":
            # Its last seat came after checked_at, so it is this life's: it votes there until
            # it may leave (a restart while leaving made it a learner, and a pair stalled).
            return True
        until = earlier_seat_until(engine.configs.entries(), self.node_id)
        return self.node_id in engine.configuration.voters and engine.applied_slot >= until

    def _set_voting(self) -> None:
        """Let the engine vote and campaign, or not (``EngineSettings.learner``): a learner
        never does, nor does a fresh life that may not (:meth:`_may_vote`)."""
        engine = self.engine
        assert engine is not None
        learner = self._role not in ("voter", "leaving") or not self._may_vote(engine)
        if engine.settings.learner != learner:
            engine.settings = engine.settings.with_learner(learner)
            if not learner and self._life is not None and self._life.checked_at is not None:
                log.info("%s votes from slot %d on", self.node_id, engine.applied_slot + 1)

    async def _check_life(self) -> None:
        """Whether a fresh life's id is a voter already, a seat of an earlier life whose votes
        this one forgot: if so it stops (:class:`AmnesiacVoter`), never having voted.

        It asks for a linearizable read first: that returns once this node has applied every
        slot chosen before the read began (a leader answers at its own applied slot, after
        its term's first slot, which is above every slot chosen before its term), so every
        configuration change an earlier life of this id was ever counted under (a leader
        counts a vote only in a seat it has applied). Until the check passes its hellos ask
        to be a learner, whatever its role: a leader would otherwise promote it as soon as
        it caught up, and a seat got that way could not be told from an earlier life's. The
        check passed, ``checked_at`` is kept before its hellos ask for a vote.
        """
        index = -1
        while self.failure is None:
            try:
                # One read for the whole catch-up, however long (the engine asks again if an
                # answer is lost): a read begun again later is confirmed at a later slot, and
                # a promotion chosen in between could no longer be told from an old seat.
                index = await self.read_barrier("linearizable", _LIFE_CHECK_READ_S)
                break
            except NoQuorum:
                continue  # (no leader all that while)
            except NodeClosed:
                return  # (stopped meanwhile)
        engine, life = self.engine, self._life
        if engine is None or life is None or self.failure is not None:
            return
        checked_at = engine.applied_slot
        if self.node_id in engine.configuration.voters:
            if not self._seat_after(engine, index):
                # A second process started under a running voter's id lands here too, as a
                # rule faster than the duplicate watch has its proof (frames from the other
                # over a hello interval), and "amnesiac" told whoever started it to remove
                # the healthy original (membership review, twenty-ninth session). That proof
                # has its time first: it never votes meanwhile.
                await asyncio.sleep(_DUPLICATE_PROOF_INTERVALS * self.config.hello_interval_s)
                meanwhile: BaseException | None = self.failure  # (set by the watch, say)
                if meanwhile is not None:
                    return
                path = str(self.config.data_dir) if self.config.data_dir is not None else None
                self._fail_stop(AmnesiacVoter(self.node_id, path, self.config.cluster))
                return
            # Promoted after the read began, so after this life did: its own seat (a learner
            # promoted while it caught up was stopped as amnesiac: review, twenty-ninth
            # session; in a cluster of one voter, for good).
            checked_at = index
        self._life = Life(life.nonce, life.founded, checked_at)
        save_life(self.config.data_dir, self._life)
        log.info(
            "%s held no voter seat at slot %d: it may be given one",
            self.node_id,
            checked_at,
        )
        self._introduce(None)  # its hello asks for what it wants from now on

    def _seat_after(self, engine: Engine, index: int) -> bool:
        """Whether this id held no voter seat in the configuration applied at slot ``index``
        (so that the seat it holds now was chosen after it); False where that is not known
        (no index, or the history of configurations no longer reaches back to it)."""
        if index < 0:
            return False
        entries = engine.configs.entries()
        at = index + engine.settings.window_slots  # a change chosen at s governs from s + window
        if not entries or entries[0][0] > at:
            return False
        return self.node_id not in engine.configs.at(at).voters

    def _adopt_genesis(self, voters: tuple[str, ...], formation: str) -> None:
        self._genesis, self._formation = tuple(sorted(voters)), formation
        save_genesis(self.config.data_dir, self._genesis, self.config.cluster, formation)
        save_role(self.config.data_dir, self._role)

    def _take_pending_durable(self) -> DurableState:
        durable, self._pending_durable = self._pending_durable, None
        assert durable is not None, "the engine starts once, with what recovery read"
        return durable

    def _start_engine(self, durable: DurableState) -> None:
        assert self._genesis is not None and self.store is not None
        config = self.config
        settings = EngineSettings(
            node_id=self.node_id,
            heartbeat_interval_s=config.heartbeat_interval_s,
            election_timeout_min_s=config.election_timeout_s,
            election_timeout_max_s=config.election_timeout_s * 2,
            retransmit_interval_s=max(config.heartbeat_interval_s * 2, 0.02),
            commit_delay_s=COMMIT_DELAY_S,
            snapshot_every_commands=config.snapshot_every_commands,
            snapshot_every_bytes=config.snapshot_every_bytes,
            log_retention_slots=config.log_retention_slots,
            log_retention_bytes=config.log_retention_bytes,
            history_limit_events=config.history_limit_events,
            history_limit_bytes=config.history_limit_bytes,
            learner=True,  # until _set_voting, once the engine is built
            max_message_bytes=self._message_limit_bytes(),
            window_slots=window_slots(self._formation),  # the cluster's, for good (identity)
        )
        genesis = Configuration(voters=frozenset(self._genesis), learners=frozenset())
        self._queue(None, self._ident(asks=True))  # before its first Paxos: see _on_ident
        # The restore and the journal's tail build and keep objects by the hundred thousand,
        # none in a cycle. With the collector on, the first young collection after the
        # restore walked all of them (25 ms over the compare harness's 100,000 keys) and the
        # next one the tail's; in a process paxos-kv runs they are frozen before the
        # collector is back (see loop.start_up_done), so no collection walks them at all.
        with paused_gc():
            self.engine = Engine(
                settings,
                self._rng,
                genesis,
                durable=durable,
                journal_index=self.store.last_index,
                now=clock_now(),
            )
            start_up_done()
        self._engine_ready.set()
        self._set_voting()
        if not self.settled():
            self._tasks.append(asyncio.create_task(self._check_life(), name=f"{self.node_id} life"))
        # A member by its own journal: its removal, learned when it catches up, stops it.
        # A founder is one even before its first record: removed while it was down, it
        # must stop when it learns of it, not wait to be added back (review, twenty-ninth
        # session: its role file asked for a voter seat, and the leader gave it one).
        founder = self._life is not None and self._life.founded == self._formation
        was_member = self._has_state or founder
        self._member = was_member and self.node_id in self.engine.configuration.members()
        self.add_applied_listener(self._on_applied_configuration)
        log.info("%s running (applied slot %d)", self.node_id, self.engine.applied_slot)
        now = clock_now()
        self.engine.hold_election(now)  # listen for the leader first: see the method
        self._step(self.engine.tick(now))

    def _check_transport_room(self, transport: Transport) -> None:
        """Refuse, at start, a transport too small for the largest slot the engine makes.

        Every slot must fit one datagram. Found only at the first big write, a small transport
        would leave a running node whose every big batch is refused at send.
        """
        needed = _ENGINE_MESSAGE_BYTES + MESSAGE_ENVELOPE_BYTES
        if transport.max_payload_bytes < needed:
            raise ConfigurationError(
                f"the transport carries payloads of at most {transport.max_payload_bytes} "
                f"bytes; a paxos-kv node needs {needed} (one slot of up to "
                f"{_ENGINE_MESSAGE_BYTES} bytes and its envelope): raise the transport's "
                "max_datagram_bytes"
            )

    def _message_limit_bytes(self) -> int:
        """The largest engine message: as much of a datagram as leaves room for envelopes.

        A bigger slot carries more big values per round (seven 8 KB values instead of five);
        the 1 KB left over is for the message's own fields and the runtime's prefix, far more
        than they take. Never below the engine's default, which every transport carries.
        """
        assert self.transport is not None
        room = self.transport.max_payload_bytes - MESSAGE_ENVELOPE_BYTES
        return max(_ENGINE_MESSAGE_BYTES, min(MAX_MESSAGE_BYTES, room))

    @property
    def leaving(self) -> bool:
        """Removed, and voting on until the voters left have what it owes them."""
        return self._role == "leaving"

    async def wait_ready(self, timeout_s: float) -> None:
        """Until this node has a configuration (bootstrapped or joined)."""
        if self._engine_ready.is_set():
            return
        await until_either(self._engine_ready, self.stopped, timeout_s)
        if self.stopped.is_set():  # closed or failed meanwhile: the caller says which
            why = self._why_stopped()
            raise NodeClosed(f"node {self.node_id} stopped before it had a cluster ({why})")
        if not self._engine_ready.is_set():
            raise NoQuorum(
                f"node {self.node_id} has no cluster after {timeout_s:g}s: it is "
                f"{self._waiting_for()}. Start the other nodes, and check that they share the "
                "group, interface, cluster name and secret (--group, --interface, --cluster, "
                "--secret-file)"
            )

    def _waiting_for(self) -> str:
        """What a node without a configuration waits for, in words for the CLI and the API."""
        expect = self.config.bootstrap_expect
        if expect is None:
            return (
                "waiting for a running cluster to join (to form a new one instead, start the "
                "first nodes with bootstrap_expect, --bootstrap-expect on the command line)"
            )
        met = sorted(self._bootstrap.met) if self._bootstrap is not None else [self.node_id]
        return (
            f"waiting to form a cluster of {expect} nodes started with the same "
            f"bootstrap_expect ({expect}), or for a running cluster to join; met so far: "
            f"{', '.join(met)}"
        )

    async def stop(self) -> None:
        self._stopping = True
        if self.transport is not None:
            self.transport.deliver_to(None)  # nothing reaches the engine from here on
        if self._timer is not None:
            self._timer.cancel()
        if self._lazy_sync is not None:
            self._lazy_sync.cancel()  # closing the committer syncs what it holds
        if self._sweeper is not None:
            self._tasks.append(self._sweeper)
        if self._draining is not None:
            self._tasks.append(self._draining)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.transport is not None and self._given_transport is None:
            await self.transport.close()
        if self._committer is not None:
            await self._loop.run_in_executor(None, self._committer.close)
        if self.store is not None:
            store = self.store
            with contextlib.suppress(StorageError):
                await self._loop.run_in_executor(None, store.close)
        self._reads.clear()
        why = self._why_stopped()
        for future, _, _ in self._answers.values():
            if not future.done():
                future.set_exception(
                    NodeClosed(
                        f"this node stopped before the write completed ({why}); the write may "
                        "or may not have been applied: read the key back before writing again"
                    )
                )
        for barrier in self._barriers:  # a linearizable read waited out its whole timeout
            if not barrier.done():
                barrier.set_exception(
                    NodeClosed(f"this node stopped before the read completed ({why})")
                )
        self.stopped.set()

    def _why_stopped(self) -> str:
        """For the errors of calls a stop ends: its failure, or a close."""
        return f"it failed: {self.failure}" if self.failure is not None else "it was closed"

    def _fail_stop(self, error: BaseException) -> None:
        """An I/O error: stop at once rather than carry on half-durable."""
        if self.failure is None:
            self.failure = error
            log.error("%s stopping: %s", self.node_id, error)
            self._loop.create_task(self.stop())

    # --- the engine's inputs -----------------------------------------------------------------

    def _step(self, effects: list[fx.Effect]) -> None:
        """Carry out ``effects`` in order, send what they queued, sync, re-arm the one timer.

        The order at the end is the latency of a write: an accept goes out to the other
        acceptors before this node's own fsync starts, so the two run at once; and on a quiet
        node the fsync runs right here rather than on the writer thread (see
        :meth:`GroupCommitter.sync_here`), since the loop has nothing else to do meanwhile --
        but never a leader's whose followers alone make a quorum (:func:`_others_make_a_quorum`).
        A sync made here is told to the engine at once, and the replies it releases go out in
        this step too, rather than a turn of the loop later.

        One function for the whole step (it was a step, a step body and a sync loop): a
        sequential write takes some five steps across the nodes, each paying its calls.
        """
        self._stepping += 1
        try:
            engine = self.engine
            assert engine is not None
            while True:
                self._carry_out_all(effects)
                if self._outbox:
                    self._flush_outbox()
                if not self._sync_due:
                    break
                self._sync_due = False
                committer = self._committer
                assert committer is not None
                if (
                    self._fsyncs
                    and engine.is_leader
                    and _others_make_a_quorum(engine.configuration)
                ):
                    synced_here = False  # see _others_make_a_quorum
                else:
                    self._syncing_here = True
                    try:
                        synced_here = committer.sync_here()
                    finally:
                        self._syncing_here = False
                if not synced_here:
                    committer.request_sync()
                    break
                sync_id = self._take_durable() if self.failure is None else 0
                if not sync_id:
                    break
                effects = engine.handle_durable(sync_id, clock_now())
            if self._delivering:
                self._rearm_due = True  # once, when the batch is done: see _on_deliveries
            else:
                self._rearm()
        finally:
            self._stepping -= 1
            if self._outbox and not self._stepping and not self._flush_queued:
                # Left by a step that raised, or queued after its last flush: sent this turn.
                self._flush_queued = True
                self._loop.call_soon(self._flush_outbox)

    def _rearm(self) -> None:
        """Re-arm the one timer at the engine's next deadline, if that moved."""
        engine = self.engine
        if engine is None:
            return
        deadline = engine.next_deadline()
        timer = self._timer
        if timer is not None:
            if self._timer_deadline == deadline:
                return  # armed already (most steps leave the next heartbeat where it was)
            timer.cancel()  # (earlier or later: see _on_timer for why not left armed)
        self._arm_timer(deadline, clock_now())

    def _arm_timer(self, deadline: float, now: float) -> None:
        """Arm the one timer to fire at ``deadline`` or after it, never before.

        uvloop counts a timer's delay in whole milliseconds, rounded to the nearest: one set
        for under half a millisecond fired at once, before its deadline, and the engine step
        that it ran found nothing due and armed it again, a spin of ten to twenty steps before
        every heartbeat. Rounded up to a whole millisecond, a deadline is met up to 1 ms late,
        which no engine timer minds (the shortest, the commit point's, waits 2 ms).
        """
        self._timer_deadline = deadline
        delay = deadline - now
        if delay > 0:
            delay = math.ceil(delay * 1000) / 1000
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        """The one timer fired: tick the engine if something is due, else re-arm.

        A step re-arms the timer whenever the engine's deadline moved, later as well as
        earlier. Left armed at the earliest deadline a step saw (as it was, to save a timer
        per step), it fired for deadlines that had since moved: at low load every write's
        commit point arms one ``commit_delay_s`` ahead, which the next write's accept then
        carries instead, so the leader woke every 2 ms (0.6 times a write, one client's
        sequential writes) only to re-arm, a wake-up of an idle process with cold caches
        each time. Moving a uvloop timer costs about a microsecond, and most steps leave the
        deadline where it was (the next heartbeat). The engine asks to be ticked at
        ``next_deadline()`` or later, so a timer that finds nothing due yet (it fired early)
        only re-arms.
        """
        self._timer = None
        self._timer_deadline = float("inf")
        engine = self.engine
        if engine is None or self.failure is not None:
            return
        now = clock_now()
        deadline = engine.next_deadline()
        if now < deadline:
            self._arm_timer(deadline, now)
            return
        held = engine.holds_snapshot_copy
        self._step(engine.tick(now))
        if held and not engine.holds_snapshot_copy:  # let go of once peers stopped asking
            self._give_back_snapshot_memory()

    def _carry_out_all(self, effects: list[fx.Effect]) -> None:
        """Carry out ``effects`` in order; answers, persists and sends right here.

        A step of a node whose clients pipeline writes is mostly answers, an :class:`Answers`
        effect per slot with a row per write: resolving each row's future in this loop, with no
        call of its own, is what :meth:`_carry_out` then :meth:`_answer` do for it, two calls
        fewer per write. A persist and a send, one or two of each in nearly every step, are
        found here too, without the carriers' lookup.
        """
        answers = self._answers
        carriers = self._carriers
        for effect in effects:
            kind = type(effect)
            if kind is _PERSIST:
                self._persist(effect)  # type: ignore[arg-type]
            elif kind is _BROADCAST or kind is _SEND:
                message = effect.message  # type: ignore[union-attr]
                to = None if kind is _BROADCAST else effect.to  # type: ignore[union-attr]
                self._queue(to, encode_message(message, PAXOS))
            elif kind is _ANSWERS:  # a NamedTuple: no subclass to miss
                for answer in effect.each():  # type: ignore[union-attr]
                    waiting = answers.pop(answer[:2], None)  # (client_id, seq), sliced in C
                    if waiting is not None and not waiting[0].done():
                        waiting[0].set_result(answer[2])
                    else:
                        self._tell_answer_listeners(answer)
            else:
                carry = carriers.get(kind)
                if carry is not None:
                    carry(effect)
                else:
                    self._carry_out(effect)

    def _effect_carriers(self) -> dict[type, Callable[[Any], None]]:
        """What :meth:`_carry_out_all` calls for each effect type, found by its exact type.

        :meth:`_carry_out`'s chain of ``isinstance`` tests costs a global lookup and a call
        per type tried, up to eight for an effect, and a write's steps carry out three to
        five effects in each process; one dict lookup replaces them. An effect of a type not
        listed (a subclass) still goes through the chain.
        """
        return {
            fx.Send: self._carry_send,
            fx.Broadcast: self._carry_broadcast,
            fx.Persist: self._persist,
            fx.SaveSnapshot: self._carry_save_snapshot,
            fx.ReadReady: self._carry_read_ready,
            fx.Applied: self._carry_applied,
            fx.LeaderChanged: self._carry_leader_changed,
        }

    def _carry_send(self, effect: fx.Send) -> None:
        self._queue(effect.to, encode_message(effect.message, PAXOS))

    def _carry_broadcast(self, effect: fx.Broadcast) -> None:
        self._queue(None, encode_message(effect.message, PAXOS))

    def _carry_save_snapshot(self, effect: fx.SaveSnapshot) -> None:
        self._snapshots_saving += 1  # now, not in the task: see _durable_slot
        self._loop.create_task(self._save_snapshot(effect))

    def _carry_read_ready(self, effect: fx.ReadReady) -> None:
        self._read_ready(effect.read_id, effect.index)

    def _carry_applied(self, effect: fx.Applied) -> None:
        for listener in list(self._applied_listeners):
            listener()
        engine = self.engine
        assert engine is not None
        if engine.known_commit - effect.slot > 100 or self._catch_up_logged_at:
            self._log_catch_up(effect)  # (far behind, or was: else it has nothing to say)

    def _carry_leader_changed(self, effect: fx.LeaderChanged) -> None:
        log.info("%s: leader is now %s", self.node_id, effect.leader_id)

    def _carry_out(self, effect: fx.Effect) -> None:
        # Answers first: a leader makes one per slot of writes, as many as the slot's accepts.
        if isinstance(effect, fx.Answers):
            for answer in effect.each():
                self._answer(answer)
        elif isinstance(effect, fx.Send):
            # protocol.paxos_payload, called directly: that one imports the codec on first use
            self._queue(effect.to, encode_message(effect.message, PAXOS))
        elif isinstance(effect, fx.Broadcast):
            self._queue(None, encode_message(effect.message, PAXOS))
        elif isinstance(effect, fx.Persist):
            self._persist(effect)
        elif isinstance(effect, fx.SaveSnapshot):
            self._carry_save_snapshot(effect)
        elif isinstance(effect, fx.ReadReady):
            self._read_ready(effect.read_id, effect.index)
        elif isinstance(effect, fx.Applied):
            for listener in list(self._applied_listeners):
                listener()
            self._log_catch_up(effect)
        elif isinstance(effect, fx.LeaderChanged):
            log.info("%s: leader is now %s", self.node_id, effect.leader_id)

    def _log_catch_up(self, applied: fx.Applied) -> None:
        """Progress in the log while a node is far behind (joining, or back from a crash)."""
        engine = self.engine
        assert engine is not None
        behind = engine.known_commit - applied.slot
        now = time.monotonic()
        if behind > _CAUGHT_UP_SLOTS and now - self._catch_up_logged_at > 1.0:
            self._catch_up_logged_at = now
            log.info(
                "%s catching up: applied slot %d of %d",
                self.node_id,
                applied.slot,
                engine.known_commit,
            )
        elif behind <= _CAUGHT_UP_SLOTS and self._catch_up_logged_at:
            self._catch_up_logged_at = 0.0
            log.info(
                "%s caught up: applied slot %d of %d known chosen (within %d)",
                self.node_id,
                applied.slot,
                engine.known_commit,
                _CAUGHT_UP_SLOTS,
            )

    def _persist(self, effect: fx.Persist) -> None:
        committer = self._committer
        assert committer is not None
        committer.submit_marked(effect.records, effect.sync_id, False)
        self._last_sync_id = effect.sync_id
        if effect.sync_now:
            self._sync_due = True  # at the end of the step, after its sends
        elif self._lazy_sync is None:
            self._lazy_sync = self._loop.call_later(LAZY_SYNC_S, self._sync_lazy)

    def _synced(self, sync_id: int, error: StorageError | None) -> None:
        """Synced on the writer thread, or here (``sync_here``): the engine hears of it in a
        later turn of the loop, unless the step that synced here tells it first.

        The group committer calls this once per sync with the highest sync id it made
        durable (``GroupCommitter.submit_marked``): one sync usually covers two persists of a
        step (an accept, and the chosen marker its commit point made), and the engine hears
        of both in one step, not one step each.
        """
        loop = self._loop
        on_loop = threading.get_ident() == self._loop_thread
        call = loop.call_soon if on_loop else loop.call_soon_threadsafe
        if error is not None:
            self._call_unless_closed(call, self._fail_stop, error)
            return
        lock = self._durable_lock  # the writer thread and the loop may both be here
        lock.acquire()  # (and release: half the cost of ``with`` on a path every write takes)
        try:
            if sync_id > self._durable_upto:
                self._durable_upto = sync_id
            if self._durable_call_due or (on_loop and self._syncing_here):
                return  # (a step syncing here takes it as soon as sync_here returns)
            self._durable_call_due = True
        finally:
            lock.release()
        self._call_unless_closed(call, self._tell_durable)

    def _call_unless_closed(self, call: Callable[..., object], *args: Any) -> None:
        """Hand a sync's outcome to the loop, unless the loop is gone: an application that
        closed its loop without stopping the node left a sync running on the writer thread,
        which printed a traceback from that thread ("Event loop is closed") at exit. With no
        loop there is no engine to tell; anything else is a bug and still raises."""
        try:
            call(*args)
        except RuntimeError:
            if not self._loop.is_closed():
                raise

    def _take_durable(self) -> int:
        """The highest sync id not yet told to the engine, or 0 if there is none."""
        lock = self._durable_lock
        lock.acquire()  # (and release, not ``with``: see _synced)
        try:
            self._durable_call_due = False
            if self._durable_upto <= self._durable_told:
                return 0
            self._durable_told = self._durable_upto
            return self._durable_told
        finally:
            lock.release()

    def _tell_durable(self) -> None:
        sync_id = self._take_durable()
        if sync_id:  # (else a step told the engine already)
            self._durable(sync_id)

    def _sync_lazy(self) -> None:
        self._lazy_sync = None
        if self._committer is not None and not self._committer.sync_here():
            self._committer.request_sync()

    def _durable(self, sync_id: int) -> None:
        if self.engine is not None and self.failure is None:
            self._step(self.engine.handle_durable(sync_id, clock_now()))

    async def _save_snapshot(self, effect: fx.SaveSnapshot) -> None:
        store = self.store
        assert store is not None
        async with self._snapshot_lock:
            try:
                # Packed on the worker, not here: see SnapshotImage.
                await self._loop.run_in_executor(
                    None,
                    lambda: store.write_snapshot(effect.journal_index, effect.image.local_pieces()),
                )
            except StorageError as error:
                self._fail_stop(error)
                return
            finally:
                self._snapshots_saving -= 1
        if self._fsyncs:  # a snapshot written is synced: what it holds survives a power cut
            self._synced_slot = max(self._synced_slot, effect.slot)
        if self.engine is not None and self.failure is None:
            self._step(self.engine.snapshot_saved(effect.slot, clock_now()))
            image = effect.image
            if image.keep and not image.servable:  # its packed copy let go of at once
                self._give_back_snapshot_memory()  # (a streamed one held a piece at a time)

    def _give_back_snapshot_memory(self) -> None:
        """A snapshot's packed copy was let go of: hand its memory back (see runtime.heap), on
        a worker, as the trim takes milliseconds (none once the loop's workers are shut down:
        the process is ending)."""
        with contextlib.suppress(RuntimeError):
            self._loop.run_in_executor(None, give_back_free_memory)

    # --- the network -----------------------------------------------------------------------

    def _queue(self, to: str | None, payload: bytes) -> None:
        """Queue a send; an engine step sends its queue when it ends, anyone else's goes in
        this turn of the loop, with whatever else was queued by then.

        Queued during a step, it schedules nothing: the step flushes the outbox before it
        ends (:meth:`_step`), and a flush scheduled as well ran later to find it empty, one
        more callback of the loop per step that sent anything.
        """
        self._outbox.append((to, payload))
        if not self._flush_queued and not self._stepping:
            self._flush_queued = True
            self._loop.call_soon(self._flush_outbox)

    def send_runtime(self, to: str | None, payload: bytes) -> None:
        self._queue(to, payload)

    def _flush_outbox(self) -> None:
        """Send everything queued as one burst, now, with no task switch on the way.

        Only a full socket buffer makes a send wait: then one task sends the rest, and every
        burst queued meanwhile waits behind it, so the order of sends is kept.
        """
        self._flush_queued = False
        transport = self.transport
        if not self._outbox or transport is None or self._draining is not None:
            return
        burst = list(self._outbox)
        self._outbox.clear()
        if self._bundle_readers and len(burst) > 1:
            burst = self._bundled(burst, transport.max_payload_bytes)
        try:
            rest = transport.send_soon(burst)
        except Exception:  # one refused payload refuses the burst: send the rest alone
            rest = self._send_each(transport, burst)
        if rest is not None:
            self._draining = self._loop.create_task(self._drain_outbox(rest))

    def _bundled(
        self, burst: list[tuple[str | None, bytes]], limit: int
    ) -> list[tuple[str | None, bytes]]:
        """``burst`` with the payloads to each client that reads bundles joined into as few
        datagrams as fit: a turn's replies to a pipelining client, one datagram rather than
        one each. The order of the payloads to any one destination is kept."""
        readers = self._bundle_readers
        sends: list[tuple[str | None, bytes]] = []
        grouped: dict[str, list[bytes]] = {}
        for to, payload in burst:
            if to is not None and to in readers and payload[:1] == protocol.RUNTIME:
                grouped.setdefault(to, []).append(payload)
            else:
                sends.append((to, payload))
        for to, payloads in grouped.items():
            sends.extend((to, datagram) for datagram in protocol.bundles(payloads, limit))
        return sends

    async def _drain_outbox(self, rest: Coroutine[Any, Any, None]) -> None:
        transport = self.transport
        assert transport is not None
        outbox = self._outbox
        try:
            await rest
            while outbox:
                burst = list(outbox)
                outbox.clear()
                try:
                    await transport.send_many(burst)
                except Exception:  # one refused payload refuses the burst: send the rest alone
                    await self._send_each(transport, burst)
        finally:
            self._draining = None

    async def _send_each(self, transport: Transport, burst: list[tuple[str | None, bytes]]) -> None:
        for to, payload in burst:
            try:
                if to is None:
                    await transport.broadcast(payload)
                else:
                    await transport.send(to, payload)
            except Exception as error:  # a send that fails is a lost datagram: Paxos retries
                self.sends_failed += 1
                level = logging.WARNING if self.sends_failed == 1 else logging.DEBUG
                log.log(level, "send to %s failed (counted in status()): %s", to or "all", error)

    def _on_deliveries(self, deliveries: list[Delivery]) -> None:
        """Everything one wake-up of a socket brought, straight from the transport.

        No queue and no task in between: on a write's critical path each hop would pay a
        task switch (20-30 us here, far more when the cores are busy). This runs inside the
        transport's receive path, so it must not raise: a malformed message is dropped, and
        anything else is a bug that stops the node rather than leave it half-deaf. A delivery
        made during an engine step (a message a node sends itself) waits for the next turn.
        A Paxos message from a verified sender goes to the engine right here (what
        :meth:`_dispatch` does with it, with no call of its own: four or so a write). The
        timer is re-armed once for the batch, after its last step, not after each: no timer
        can fire before the batch is done, and the engine's next deadline costs a look at
        every timer it keeps (a leader's batch is its followers' replies, one per follower or
        many under load).
        """
        if self._stepping or self._delivering:
            self._loop.call_soon(self._on_deliveries, deliveries)
            return
        verified = self._verified
        self._delivering = True
        try:
            for sender, payload in deliveries:
                try:
                    engine = self.engine
                    if (
                        payload[:1] == PAXOS
                        and engine is not None
                        and sender in verified
                        and self.failure is None
                    ):
                        message = decode_message(memoryview(payload)[1:])  # no copy of the slot
                        self._step(engine.receive(sender, message, clock_now()))
                    else:
                        self._dispatch(sender, payload)
                except (MalformedMessage, protocol.MalformedRuntimeMessage) as error:
                    log.debug("dropped a malformed message from %s: %s", sender, error)
        except Exception as error:
            log.exception("%s: handling a message failed", self.node_id)
            self._fail_stop(error)
        finally:
            self._delivering = False
        if self._rearm_due:
            self._rearm_due = False
            try:
                self._rearm()
            except Exception as error:  # (as a step's own re-arm would have: a bug)
                log.exception("%s: handling a message failed", self.node_id)
                self._fail_stop(error)

    def _dispatch(self, sender: str, payload: bytes) -> None:
        if self.failure is not None:
            return
        kind = payload[:1]
        if kind == PAXOS:
            if self.engine is not None and sender in self._verified:
                message = decode_message(memoryview(payload)[1:])  # no copy of the slot
                self._step(self.engine.receive(sender, message, clock_now()))
            elif self.engine is not None:
                self._hold(sender, payload)  # not (yet) shown to be of our formation
        elif kind == protocol.RUNTIME:
            name, fields = protocol.decode_runtime(payload)
            if name == "hello":
                self._on_hello(sender, protocol.decode_hello(fields))
            elif name == "ident":
                self._on_ident(sender, protocol.decode_ident(fields))
            elif name == "boot":
                self._on_boot(sender, protocol.decode_boot(fields))
            elif name == "whois":
                self._queue(sender, protocol.encode_hello(self._hello()))
            elif name in self._runtime_handlers:
                self._runtime_handlers[name](sender, fields)
            elif name == protocol.BUNDLE:
                self._on_bundle(sender, protocol.bundle_parts(fields))

    def _on_bundle(self, sender: str, parts: list[bytes]) -> None:
        """A client's messages of one turn: each handled as if it came alone, a malformed one
        dropped alone (the others are well formed, and their clients wait on them)."""
        readers = self._bundle_readers
        if sender in readers:
            readers.move_to_end(sender)
        else:
            readers[sender] = None
            if len(readers) > BUNDLE_READERS_KEPT:
                readers.popitem(last=False)
        handlers = self._runtime_handlers
        for part in parts:
            try:
                name, fields = protocol.decode_runtime(part)
                handler = handlers.get(name)  # a client's kinds only: no hello, no bundle
                if handler is not None:
                    handler(sender, fields)
            except protocol.MalformedRuntimeMessage as error:
                log.debug("dropped a malformed message from %s: %s", sender, error)

    def on_runtime_message(self, name: str, handler: Callable[[str, list[Any]], None]) -> None:
        self._runtime_handlers[name] = handler

    # --- hellos: failure detection, bootstrapping, joining -----------------------------------

    def _hello(self) -> protocol.Hello:
        engine = self.engine
        return protocol.Hello(
            wants=self._role if self.settled() else "learner",  # see _check_life
            applied_slot=engine.applied_slot if engine else 0,
            revision=engine.state.revision if engine else 0,
            leader_id=(engine.leader_id or "") if engine else "",
            genesis=self._genesis or (),
            bootstrapping=self._genesis is None and self.config.bootstrap_expect is not None,
            durable_slot=self._durable_slot(),
            bundles=True,
        )

    def _durable_slot(self) -> int:
        """The applied slot a power cut cannot take back, for hellos: a removed voter leaves
        on them (_still_needed), and one that left on a slot this node then lost could leave
        the old configuration's last slots with no quorum to learn them from.

        The engine persists the chosen markers of the slots a step applies in that step, and
        a step hands all it persisted to the committer before it ends, so between steps
        (where hellos are made) every applied slot is in records up to the latest sync id;
        that slot counts once that sync id is durable. The one exception is a state transfer,
        which applies slots the journal never holds, until its snapshot is written: no slot
        is read or counted while a snapshot is being written, and a snapshot written counts
        its own slot (so snapshots written back to back, under a heavy load, do not hold the
        slot back for as long as the load lasts). A hello made inside a step (a node that
        finds itself removed says so at once) counts nothing either. Chosen markers sync
        lazily (within 50 ms) when nothing waits on them, so this runs a hello or two behind
        the applied slot. Without fsync (``os``, ``memory``) there is nothing a power cut
        would spare, and the applied slot stands.
        """
        engine = self.engine
        if engine is None:
            return 0
        if not self._fsyncs:
            return int(engine.applied_slot)
        if self._snapshots_saving or self._stepping:
            return self._synced_slot
        waiting = self._slot_at_sync
        if waiting is not None and waiting[0] <= self._durable_upto:
            self._synced_slot = max(self._synced_slot, waiting[1])
            waiting = None
        if waiting is None and engine.applied_slot > self._synced_slot:
            self._slot_at_sync = (self._last_sync_id, int(engine.applied_slot))
        else:
            self._slot_at_sync = waiting
        return self._synced_slot

    def _ident(self, *, asks: bool = False) -> bytes:
        return protocol.encode_ident(protocol.Ident(self._genesis or (), self._formation, asks))

    def _introduce(self, to: str | None) -> None:
        """Our ident, then our hello: in this order, so that the hello finds us verified."""
        self._queue(to, self._ident())
        self._queue(to, protocol.encode_hello(self._hello()))

    async def _hello_loop(self) -> None:
        while True:
            self._watch_own_membership()
            self._forget_silent_idents()
            if self.failure is not None:
                return
            self._introduce(None)
            if self._genesis is None and self._bootstrap is not None:
                self._queue(None, protocol.encode_boot(*self._bootstrap.announcement()))
                self._try_bootstrap()
            self._apply_membership_policy()
            await asyncio.sleep(self.config.hello_interval_s)

    def _on_ident(self, sender: str, ident: protocol.Ident) -> None:
        """Which cluster the process behind ``sender`` belongs to: the one judge of whether
        its Paxos counts here.

        Only a sender whose last ident carried our genesis and formation is heard, so a data
        dir of another formation (same name, same ids: an earlier cluster) never reaches the
        engine, not even a snapshot or catch-up sent before its first hello. A sender with
        no genesis is a new process on a fresh data dir: no longer the stranger once refused
        under its id, and not yet a member. A node without a genesis joins the sender's
        cluster, formation and all. A new or changed sender, or one that asks (it has just
        started its engine: a restart is no news to us, but it knows nobody), is answered at
        once, so that it knows us within a round trip rather than a hello interval.
        """
        if sender == self.node_id:
            return
        before = self._idents.get(sender)
        self._idents[sender] = (ident, clock_now())
        self._identless_hellos.pop(sender, None)
        if ident.asks:  # a process just started: what was held came from before it
            self._drop_held(sender)
            self._removed_lives.pop(sender, None)  # (and it is not the one removed)
        if self._genesis is None:
            if not ident.genesis:
                return
            self._join(ident.genesis, ident.formation)
        if not ident.genesis:
            self._verified.discard(sender)
            self._foreign.pop(sender, None)
            self._drop_held(sender)
        elif ident.genesis == self._genesis and ident.formation == self._formation:
            self._verify(sender)
        else:
            self._refuse_foreign(sender, ident.genesis, ident.formation)
        told = None if before is None else (before[0].genesis, before[0].formation)
        if ident.asks or told != (ident.genesis, ident.formation):
            self._introduce(sender)

    def _hold(self, sender: str, payload: bytes) -> None:
        """Keep Paxos from a sender whose ident has not come yet, to be taken once it shows
        our formation (:meth:`_verify`), dropped (and counted) if it shows another.

        Dropped outright, as at first, they cost a restart a heartbeat: the restarted node
        hears the leader's heartbeat before the leader's answer to its ident, and waited for
        the next one to catch up (restart to caught up in-process took 31-40 ms against the
        base's 19-28; held, 17-22 against 13-24, noise). Nodes just bootstrapped likewise
        drop each other's first prepares until the engine retries. At most ``HELD_BYTES`` in
        all, each sender's kept ``down_after_s`` at most.
        """
        held = self._held.get(sender)
        if sender in self._foreign or self._held_bytes + len(payload) > HELD_BYTES:
            self.dropped_foreign += 1
            return
        if held is None:
            held = self._held[sender] = (clock_now(), [])
        held[1].append(payload)
        self._held_bytes += len(payload)

    def _verify(self, sender: str) -> None:
        """``sender`` is of our formation: its Paxos counts, what was held of it first."""
        self._verified.add(sender)
        self._foreign.pop(sender, None)
        held = self._held.pop(sender, None)
        if held is not None:
            self._held_bytes -= sum(map(len, held[1]))
            deliveries = [Delivery(sender, payload) for payload in held[1]]
            self._loop.call_soon(self._on_deliveries, deliveries)

    def _drop_held(self, sender: str) -> None:
        held = self._held.pop(sender, None)
        if held is not None:
            self._held_bytes -= sum(map(len, held[1]))
            self.dropped_foreign += len(held[1])

    def _on_hello(self, sender: str, hello: protocol.Hello) -> None:
        """A peer's liveness and progress, for the failure detector and the leader's policy.

        Recorded only for a sender verified by its ident, or one with no genesis yet (a
        joiner): a hello alone does not say which formation it comes from. A sender whose
        hellos (two at least) come with no ident between them for ``down_after_s`` runs an
        earlier release, which sends none (lost idents do not make a node of this release a
        stranger, nor make a joiner take its cluster for an earlier release's, a genesis
        with no formation it would keep for good): in a cluster formed by an earlier
        release it is judged by its genesis, as then (and a node with no genesis joins its
        cluster); a cluster with a formation id refuses it, since no cluster formed by an
        earlier release is this one.
        """
        if self._genesis is not None and hello.genesis and hello.genesis != self._genesis:
            self._refuse_foreign(sender, hello.genesis, None)
            return
        earlier_release = False
        if hello.genesis:
            now = clock_now()
            count, since, _ = self._identless_hellos.get(sender, (0, now, now))
            self._identless_hellos[sender] = (count + 1, since, now)
            earlier_release = (
                count >= 1
                and sender not in self._idents
                and now - since >= self.config.down_after_s
            )
        if self._genesis is not None and hello.genesis and sender not in self._verified:
            if not earlier_release:
                return  # its ident decides
            if self._formation != LEGACY_FORMATION:
                self._refuse_foreign(sender, hello.genesis, None)
                return
            self._verify(sender)
        self._follow_removed_life(sender, hello.applied_slot)
        ident = self._idents.get(sender)
        self.peers[sender] = PeerView(
            clock_now(),
            hello.wants,
            hello.applied_slot,
            hello.revision,
            hello.leader_id,
            hello.genesis,
            ident[0].formation if ident is not None and ident[0].genesis else None,
            hello.durable_slot,
        )
        if self._genesis is None and self.engine is None and hello.genesis and earlier_release:
            self._join(hello.genesis, LEGACY_FORMATION)

    def _join(self, genesis: tuple[str, ...], formation: str) -> None:
        """Join the running cluster whose genesis and formation a member told us."""
        log.info("%s joining the cluster of %s", self.node_id, ", ".join(genesis))
        bootstrap = self._bootstrap
        if bootstrap is not None and bootstrap.founded(genesis, formation):
            self._found(genesis, formation)  # a fellow founder bootstrapped it first
        else:
            self._adopt_genesis(genesis, formation)
        self._start_engine(self._take_pending_durable())

    def _follow_removed_life(self, sender: str, applied_slot: int) -> None:
        """Whether a removed node's hellos still come from the process that was removed.

        A joiner removed while still catching up does not stop (it never counted itself a
        member); once its applied slot passed the removal's, ``removed_at`` alone let the
        leader add it straight back. So that process is never added again: only a new life
        under its id is, known by its applied slot going back (a fresh data dir starts from
        nothing), by a silence of ``down_after_s`` (the old process stopped), or by the ident
        a process sends as it starts (``asks``: one restarted on its data dir at once, as
        :class:`AmnesiacVoter` advises, may have caught up past it before its first hello).
        Nodes nobody heard when they were removed are judged by ``removed_at`` alone, as
        before.
        """
        life = self._removed_lives.get(sender)
        if life is None:
            return
        highest, last_seen = life
        now = clock_now()
        if (
            applied_slot < highest
            or applied_slot == 0
            or now - last_seen > self.config.down_after_s
        ):
            del self._removed_lives[sender]  # a new process: removed_at decides
        else:
            self._removed_lives[sender] = (max(highest, applied_slot), now)

    def _on_boot(self, sender: str, boot: protocol.BootAnnouncement) -> None:
        """A node starting a cluster: a member answers it at once (so it joins this cluster
        rather than form its own); a bootstrapping node counts it (membership.Bootstrap)."""
        if self._genesis is not None:
            if self.engine is not None:
                self._introduce(sender)
            return
        bootstrap = self._bootstrap
        if bootstrap is None:
            return  # --join: it waits for a member
        met_before = len(bootstrap.met)
        for complaint in bootstrap.hear(sender, boot.expect, boot.met, boot.nonce):
            log.error("%s", complaint)
        if len(bootstrap.met) != met_before:  # say at once whom we met: it speeds agreement
            self._queue(None, protocol.encode_boot(*bootstrap.announcement()))
        self._try_bootstrap()

    def _try_bootstrap(self) -> None:
        if self._genesis is not None or self._bootstrap is None:
            return
        voters = self._bootstrap.ready(clock_now())
        if voters is None:
            return
        self._found(voters, self._bootstrap.formation())
        log.info(
            "%s bootstrapped a cluster of %s (formation %s)",
            self.node_id,
            ", ".join(voters),
            self._formation,
        )
        self._start_engine(self._take_pending_durable())
        self._member = True

    def _refuse_foreign(self, sender: str, genesis: tuple[str, ...], formation: str | None) -> None:
        """A node of the same cluster name but another genesis or formation (None: an
        earlier release's, which names none): another cluster's data dir.

        Its votes, ballots and log mean nothing here (counted, they made replicas diverge; a
        campaign of its own would unseat our leader over and over), so its Paxos messages are
        dropped and it is never added, until an ident under that id carries ours or no genesis
        (see :meth:`_on_ident`). Keyed by id alone, so while a stranger and a member share an
        id, the member's Paxos is dropped between the stranger's ident and its own next one:
        the stranger must be stopped (it stops itself once it hears a quorum of its voters
        refuse it: :meth:`_check_stranger`).
        """
        self._foreign[sender] = clock_now()
        self._verified.discard(sender)
        self._drop_held(sender)
        self.peers.pop(sender, None)
        if (sender, genesis, formation) not in self._foreign_logged:
            if len(self._foreign_logged) >= FOREIGN_LOGGED:
                self._foreign_logged.clear()  # bounded: said once more, at worst
            self._foreign_logged.add((sender, genesis, formation))  # once per stranger
            if genesis != self._genesis:
                ours = ", ".join(self._genesis or ())
                differs = f"first voters {', '.join(genesis)}; ours {ours}"
            elif formation is None:
                differs = "it names no formation id: it runs, or was formed by, an earlier release"
            else:
                differs = f"formed apart: formation {_formation_name(formation)}; ours " + (
                    _formation_name(self._formation)
                )
            log.error(
                "%s: node %s belongs to another cluster named %r (%s); ignoring it. To join it "
                "to this cluster, start it on a fresh data dir (if its id is a member here, "
                "paxos-kv members remove %s first, so that it joins as a new one); to keep both "
                "clusters, give one of them its own --cluster name",
                self.node_id,
                sender,
                self.config.cluster,
                differs,
                sender,
            )
        self._check_stranger()

    def _check_stranger(self) -> None:
        """Stop, saying why, once a quorum of our own configuration's voters are of another
        cluster: then the stranger is this node (its data dir is another formation's), and
        it could never again be part of a quorum of its configuration. With fewer, which side
        is the stranger is not clear, and both just refuse each other."""
        engine = self.engine
        if engine is None or self.failure is not None:
            return
        configuration = engine.configuration
        others = sorted((configuration.voters - {self.node_id}) & self._foreign.keys())
        if len(others) < configuration.quorum_size():
            return
        told = [self._idents[node][0] for node in others if node in self._idents]
        running = next((ident.formation for ident in told if ident.genesis), LEGACY_FORMATION)
        path = str(self.config.data_dir) if self.config.data_dir is not None else None
        cluster = self.config.cluster
        self._fail_stop(WrongFormation(self.node_id, path, cluster, self._formation, running))

    def _forget_silent_idents(self) -> None:
        """Forget what senders silent for ``down_after_s`` told us: the next process under
        their id proves itself again (a stranger started in a member's place, whose first
        ident was lost, would otherwise inherit the member's standing). What is kept of
        senders not heard since goes too: without a secret, any sender id can be made up."""
        silent_since = clock_now() - self.config.down_after_s
        for sender, (_, heard_at) in list(self._idents.items()):
            if heard_at < silent_since:
                del self._idents[sender]
                self._verified.discard(sender)
        for sender, refused_at in list(self._foreign.items()):
            if refused_at < silent_since:
                del self._foreign[sender]
        for sender, (held_since, _) in list(self._held.items()):
            if held_since < silent_since:
                self._drop_held(sender)
        for sender, (_, _, last) in list(self._identless_hellos.items()):
            if last < silent_since:
                del self._identless_hellos[sender]

    def _on_applied_configuration(self) -> None:
        """After every applied slot: a configuration change is looked at as it is applied,
        not at the next hello, since catching up can apply a removal and a later re-adding
        within one hello interval. One identity comparison per slot otherwise."""
        engine = self.engine
        if engine is not None and engine.state.configuration is not self._seen_configuration:
            self._watch_own_membership()

    def _watch_own_membership(self) -> None:
        """What the applied configuration says about this node, and about who left it.

        A node that was a member and no longer is was removed (``members remove``): it stops,
        and its data dir says so, rather than ask to be added again as it used to. "Was a
        member" means: by its own journal at start, by bootstrapping, or seen in the
        configuration within ``CATCH_UP_MARGIN_SLOTS`` of the commit point a leader told it
        (a joiner added while still far behind counts once it nears the head, even under
        load) and, for a node that started with no state, at or past the first commit point
        a leader told it: a fresh node that reuses a removed node's id does not stop at the
        old removal while it replays the log (before, it did when the removal was among the
        last few dozen slots, so the advice to remove an id and start it on a fresh data dir
        failed when followed at once). A learner promoted starts to vote, and is kept a
        voter. Every node notes who left and when (``removed_at``, for the leader's policy)
        and forgets non-members silent for ``down_after_s``.
        """
        engine = self.engine
        if engine is None or self.failure is not None:
            return
        configuration = engine.configuration
        members = configuration.members()
        if configuration is not self._seen_configuration:
            self._seen_configuration = configuration
            self._note_removals(engine, members)
        now = clock_now()
        for node_id, view in list(self.peers.items()):
            if node_id not in members and now - view.last_seen > self.config.down_after_s:
                del self.peers[node_id]
        me = self.node_id
        if me not in members:
            if self._member or self._role == "leaving":
                if self._still_needed(engine):
                    if self._role != "leaving" or self._leave_after != self._kept_leave_after:
                        # kept, so a restart waits on rather than rejoin, and knows how long
                        save_role(self.config.data_dir, "leaving", self._leave_after)
                        self._kept_leave_after = self._leave_after
                    if self._role != "leaving":
                        self._role = "leaving"
                        self._introduce(None)  # its hellos ask for nothing from now on
                    self._set_voting()  # (restarted, it votes once it has replayed checked_at)
                    return
                self._role = "removed"
                save_role(self.config.data_dir, "removed")
                self._fail_stop(NodeRemoved(me, self.config.cluster))
            return
        if engine.leader_id and self._head_at_join is None and not self._has_state:
            self._head_at_join = engine.known_commit
        if (
            engine.leader_id
            and engine.applied_slot + CATCH_UP_MARGIN_SLOTS >= engine.known_commit
            and engine.applied_slot >= (self._head_at_join or 0)
        ):
            self._member = True
        if self._role == "learner" and me in configuration.voters:
            self._role = "voter"
            save_role(self.config.data_dir, "voter")
            log.info("%s was promoted: it is a voter now", me)
        self._set_voting()

    def _still_needed(self, engine: Engine) -> bool:
        """Whether this removed voter must vote on a while before it stops.

        A change chosen in slot ``s`` governs from ``s + alpha`` on (paxos.configs): the slots
        before are still the old configuration's, and the leader pads them with no-ops so the
        change takes effect. A removed voter that stopped the moment it applied its removal
        could leave them unchosen for good: with two voters, the one left could neither choose
        them nor campaign over them (phase 1 needs a quorum of every configuration it covers),
        and the pair had no leader again; with four, one of them down, the two left up were no
        quorum of the old four. So a removed voter stays ("leaving", kept in its data dir, and
        what its hellos ask for, which no leader's policy adds back) until it has applied the
        last slot a configuration it votes in governs, and a quorum of the latest voters have
        said in a hello that they have too: from there on none of those campaigns over a slot
        that needs it, and the others learn those slots from them. Meanwhile it votes, and never
        campaigns (it is no voter of the latest configuration). A learner stops at once.
        """
        last = last_voted_slot(engine.configs, self.node_id)
        if last is not None and last > (self._leave_after or 0):
            if self._leave_after is None:
                log.info(
                    "%s was removed; it votes on until the voters left have applied slot %d, "
                    "the last its old configuration governs",
                    self.node_id,
                    last,
                )
            self._leave_after = last
        if self._leave_after is None:
            return False
        reported = {node_id: view.durable_slot for node_id, view in self.peers.items()}
        latest = engine.configs.latest()
        return not may_leave(latest, self._leave_after, engine.applied_slot, reported)

    def _note_removals(self, engine: Engine, members: frozenset[str]) -> None:
        """Who left the configuration, and from which slot (the leader's policy must not add
        them back on an old hello): seen here as it is applied, and from the configuration
        history the engine still holds, so a leader elected later knows too."""
        removed_at = self._removed_at
        if self._last_members is not None:
            for gone in self._last_members - members:
                removed_at[gone] = max(removed_at.get(gone, 0), engine.applied_slot)
                view = self.peers.pop(gone, None)
                if view is not None and clock_now() - view.last_seen < self.config.down_after_s:
                    self._removed_lives[gone] = (view.applied_slot, view.last_seen)
            for back in members & self._removed_lives.keys():
                del self._removed_lives[back]
        self._last_members = members
        # A change applied at slot s governs from s + window (configs.py): s is the removal's.
        window = engine.settings.window_slots
        history = engine.configs.entries()
        for (_, before), (start, after) in pairwise(history):
            for gone in before.members() - after.members():
                removed_at[gone] = max(removed_at.get(gone, 0), start - window)

    def _watch_duplicate_ids(self, transport: Transport) -> None:
        """Hear from the transport of frames sent under our own id (see DuplicateIdWatch)."""
        inner = getattr(transport, "inner", transport)  # under a FaultyTransport
        report = getattr(inner, "report_duplicate_id", None)
        incarnation = getattr(inner, "incarnation", None)
        if report is None or type(incarnation) is not int:
            return  # a transport with no incarnations (memory) has no duplicates to see
        self._duplicates = DuplicateIdWatch(incarnation, self.config.hello_interval_s)
        report(self._on_duplicate_id)

    def _on_duplicate_id(self, address: object, incarnation: int) -> None:
        duplicates = self._duplicates
        if duplicates is not None and duplicates.heard(incarnation, time.monotonic()):
            self._fail_stop(DuplicateNodeId(self.node_id, address))

    def _policy_client(self) -> str:
        return f"{self.node_id}/membership/{self._policy_life}"

    def _apply_membership_policy(self) -> None:
        engine = self.engine
        if engine is None or not engine.is_leader or self.failure is not None:
            return
        if (
            self._policy_pending is not None
            and engine.state.cached_result(*self._policy_pending) is None
        ):
            return  # one configuration change at a time
        now = clock_now()
        change = membership_change(
            engine.configuration,
            {
                k: v
                for k, v in self.peers.items()
                if k != self.node_id and k not in self._foreign and k not in self._removed_lives
            },
            now=now,
            leader_applied_slot=engine.applied_slot,
            suspect_after_s=self.config.suspect_after_s,
            down_after_s=self.config.down_after_s,
            auto_remove_down_after_s=self.config.auto_remove_down_after_s,
            min_voters=self.config.min_voters,
            watching_since=self._started_at,
            genesis=self._genesis or (),
            formation=self._formation if self._genesis is not None else None,
            removed_at=self._removed_at,
            leader_id=self.node_id,
        )
        if change is not None:
            self._policy_seq += 1
            client = self._policy_client()
            self._policy_pending = (client, self._policy_seq)
            log.info("%s proposing %s", self.node_id, change)
            request = Request(client, self._policy_seq, encode_command(change))
            self._step(engine.propose([request], now))
            engine.cancel(client, self._policy_seq)  # nobody waits; the dedup table remembers

    def members(self) -> list[Member]:
        engine = self.engine
        now = clock_now()
        config = engine.configuration if engine else Configuration(voters=frozenset())
        # A non-member is listed while it is heard (joining); one gone silent is forgotten.
        ids = set(config.members()) | {
            k
            for k, v in self.peers.items()
            if v.wants and now - v.last_seen < self.config.down_after_s
        }
        ids.add(self.node_id)
        members = []
        for node_id in sorted(ids):
            view = self.peers.get(node_id)
            leaving = self._role if node_id == self.node_id else view.wants if view else ""
            role = (
                "voter"
                if node_id in config.voters
                else "learner"
                if node_id in config.learners
                else "leaving"
                if leaving == "leaving"
                else "joining"
            )
            if node_id == self.node_id:
                state, revision = "up", engine.state.revision if engine else 0
            else:
                last = view.last_seen if view else None
                state = liveness(now, last, self.config.suspect_after_s, self.config.down_after_s)
                revision = view.revision if view else 0
            leader = engine.leader_id if engine else None
            members.append(Member(node_id, role, state, revision, node_id == leader))
        return members

    # --- what local callers use -------------------------------------------------------------

    def submit(
        self, client_id: str, seq: int, command: bytes, timeout_s: float | None = None
    ) -> Awaitable[bytes]:
        """Propose one command; the future of its result, to await.

        A plain function handing back the future itself, not a coroutine around it: a
        pipelined write's caller awaits one object, with no frames in between. Until this
        node has a configuration the proposal waits for one (a coroutine, only then).
        Deadlines are swept by one periodic task rather than a timer per request: at tens of
        thousands of requests a second, per-request timers cost more than the requests.
        """
        if self._stopping or self.failure is not None:
            # Nothing would answer it or fail it at its deadline: the sweeper is gone, and
            # the engine takes no more steps.
            raise NodeClosed(
                f"this node stopped ({self.failure or 'stopped'}); fix the cause and start a "
                "new Node: it recovers from its data dir"
            )
        if timeout_s is None:
            timeout_s = self.config.request_timeout_s
        if self.engine is None:  # (the engine and _engine_ready are set in one step)
            return self._submit_when_ready(client_id, seq, command, timeout_s)
        key = (client_id, seq)
        # No other write of this node's own waits, and the last ones went one at a time: see
        # below (after a batch, the callers it answered all write again in the next turn).
        alone = not self._answers and self._last_flush_size == 1
        waiting = self._answers.get(key)
        if waiting is None:
            future = self._loop.create_future()
            self._answers[key] = (future, time.monotonic() + timeout_s, timeout_s)
        else:  # the same request again: it keeps its first deadline
            future = waiting[0]
        if self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep_deadlines())
        # queue_proposal written out, and the Request made as its own tuple.__new__ would
        # (a NamedTuple's __new__ is a Python lambda): two calls fewer per write.
        proposals = self._proposals
        at_once = (
            alone
            and not proposals
            and not self._stepping
            and not self._delivering
            and len(self.engine.configuration.voters) > 1
        )
        proposals.append(_new_tuple(Request, (client_id, seq, command)))
        if len(proposals) == 1:
            if at_once:
                # A sequential caller's write is proposed now: a flush a turn of the loop
                # later, which lets the writes of many callers woken together go in one slot,
                # would only add that turn, and its poll, to its latency. Only after writes
                # that went one at a time: the callers a batch answered all write again in
                # one turn, and the first of them, flushed alone, cost a slot of its own (in
                # a pipelined run at 100 B, one flush in five to twelve was such a write).
                # Callers of the same turn find this one waiting, and are batched as before.
                # Never with a single voter: its write would be chosen, applied and answered
                # inside this call, so a caller writing in a loop would never yield to the
                # loop, and a watch task created just before the write would miss it.
                try:
                    self._flush_proposals()
                except BaseException:
                    # (a request the engine refuses, raised here as the caller's own error:
                    # nothing will answer it, so nothing waits for it either)
                    if waiting is None:
                        self._answers.pop(key, None)
                    raise
            else:
                self._loop.call_soon(self._flush_proposals)
        return future

    async def _submit_when_ready(
        self, client_id: str, seq: int, command: bytes, timeout_s: float
    ) -> bytes:
        await self.wait_ready(timeout_s)
        return await self.submit(client_id, seq, command, timeout_s)

    async def _sweep_deadlines(self) -> None:
        """Fail what waited past its deadline, looking only at what still waits.

        A scan of the waiting requests (as many as clients have outstanding) every 50 ms,
        rather than a heap of every request's deadline: the heap kept each answered request
        until its deadline passed, hundreds of thousands of entries under load.
        """
        answers = self._answers
        while answers:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            expired = [
                (key, future, timeout_s)
                for key, (future, deadline, timeout_s) in answers.items()
                if deadline <= now
            ]
            for key, future, timeout_s in expired:
                del answers[key]
                if future.done():  # cancelled by its caller
                    continue
                if self.engine is not None:
                    self.engine.cancel(*key)
                future.set_exception(
                    NoQuorum(
                        f"no quorum answered within {timeout_s:g}s; the write may or may not "
                        "have been applied: read the key back before writing again (a call "
                        "made again is a new write; cas or if_revision makes a second attempt "
                        "safe)"
                    )
                )
        self._sweeper = None

    def queue_proposal(self, request: Request) -> None:
        """Hand a request to the engine with every other one made in this loop iteration.

        One engine step for all of them: the batch the leader proposes is whatever waited.
        """
        if not self._proposals:
            self._loop.call_soon(self._flush_proposals)
        self._proposals.append(request)

    def _flush_proposals(self) -> None:
        requests, self._proposals = self._proposals, []
        self._last_flush_size = len(requests)
        if self.engine is not None and requests and self.failure is None:
            self._step(self.engine.propose(requests, clock_now()))

    def _answer(self, answer: fx.Answer) -> None:
        """What :meth:`_carry_out_all` does with an answer (kept whole for one effect)."""
        waiting = self._answers.pop(answer[:2], None)  # (client_id, seq), sliced in C
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(answer.result)
            return
        self._tell_answer_listeners(answer)

    def _tell_answer_listeners(self, answer: fx.Answer) -> None:
        """An answer no local caller waits for: a remote client's (serving.py), or nobody's."""
        for listener in self._answer_listeners:
            if listener(answer):
                return

    def add_answer_listener(self, listener: Callable[[fx.Answer], bool]) -> None:
        self._answer_listeners.append(listener)

    async def read_barrier(self, consistency: str, timeout_s: float) -> int:
        """Wait until local state may serve a read of this consistency; the slot a
        linearizable one was confirmed at (-1 for the others: see ``ReadReady``).

        A ``local`` read, and a ``leader`` read on the leader under its lease, are ready as
        asked (what the engine's :meth:`~Engine.read` answers them): no step, no future.
        They still give the loop its turn, as every read did, or a caller reading in a loop
        would starve it (and the replica would never apply what it polls for).
        """
        if self._stopping or self.failure is not None:
            raise NodeClosed(f"this node stopped before the read ({self._why_stopped()})")
        await self.wait_ready(timeout_s)
        engine = self.engine
        assert engine is not None
        if consistency == "local" or (
            consistency == "leader" and engine.serves_lease_reads(clock_now())
        ):
            await asyncio.sleep(0)
            return -1
        future: asyncio.Future[int] = self._loop.create_future()

        def ready(index: int) -> None:
            if not future.done():
                future.set_result(index)

        read_id = self.start_read(consistency, ready)
        if future.done():  # confirmed in the call (a single voter's round): as above
            await asyncio.sleep(0)
            return future.result()
        self._barriers.add(future)
        try:
            return await within(future, timeout_s)
        except asyncio.CancelledError:
            self.cancel_read(read_id)  # its caller went: nothing waits for it now
            raise
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # confirmed in the very turn its time ran out
            self.cancel_read(read_id)
            raise NoQuorum(
                f"could not confirm a {consistency} read within {timeout_s:g}s: no leader "
                "with a quorum; try consistency='local' for a possibly stale answer"
            ) from None
        finally:
            self._barriers.discard(future)

    def start_read(self, consistency: str, on_ready: Callable[[int], None]) -> int:
        """Ask the engine for a read barrier; ``on_ready(index)`` runs when local state may
        serve it (``index``: the slot it was confirmed at, or -1; see ``ReadReady``)."""
        engine = self.engine
        assert engine is not None
        read_id = self._next_read_id
        self._next_read_id += 1
        self._reads[read_id] = on_ready
        # Batched as proposals are (see submit): the reads of one turn go to the engine
        # together, so a follower asks the leader once for all of them and a leader confirms
        # them with one heartbeat round. A lone reader's read (no other waits, and the last
        # ones went one at a time) goes at once, as a lone write does.
        pending = self._pending_reads
        pending.append((read_id, consistency))
        if len(pending) == 1:
            alone = len(self._reads) == 1 and self._last_read_flush_size <= 1
            if alone and not self._stepping and not self._delivering:
                self._flush_reads()
            else:
                self._loop.call_soon(self._flush_reads)
        return read_id

    def _flush_reads(self) -> None:
        reads, self._pending_reads = self._pending_reads, []
        self._last_read_flush_size = len(reads)
        if self.engine is not None and reads and self.failure is None:
            self._step(self.engine.read_batch(reads, clock_now()))

    def cancel_read(self, read_id: int) -> None:
        self._reads.pop(read_id, None)
        if self.engine is not None:
            self.engine.cancel_read(read_id)

    def _read_ready(self, read_id: int, index: int) -> None:
        on_ready = self._reads.pop(read_id, None)
        if on_ready is not None:
            on_ready(index)

    def add_applied_listener(self, listener: Callable[[], None]) -> None:
        self._applied_listeners.append(listener)

    def remove_applied_listener(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._applied_listeners.remove(listener)

    def status(self) -> dict[str, Any]:
        engine = self.engine
        transport = self.transport
        return {
            "node_id": self.node_id,
            "role": "voter"
            if engine and self.node_id in engine.configuration.voters
            else "leaving"
            if self._role == "leaving"
            else "learner",
            "leader": engine.leader_id if engine else None,
            "is_leader": bool(engine and engine.is_leader),
            "applied_slot": engine.applied_slot if engine else 0,
            "revision": engine.state.revision if engine else 0,
            "keys": len(engine.state) if engine else 0,
            "voters": sorted(engine.configuration.voters) if engine else [],
            "learners": sorted(engine.configuration.learners) if engine else [],
            "durability": self.config.durability,
            "data_dir": str(self.config.data_dir) if self.config.data_dir else None,
            "transport": transport.stats.as_dict() if transport else {},
            "sends_failed": self.sends_failed,
            "formation": self._formation if self._genesis is not None else None,
            "window_slots": engine.settings.window_slots if engine else None,
            "dropped_foreign": self.dropped_foreign,
            "core": build_name(),  # compiled or pure Python: same results, twice the speed
        }


def _formation_name(formation: str) -> str:
    return formation or "of an earlier release"
