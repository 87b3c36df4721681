"""The replicated key-value state machine: what every replica applies, in log order.

Theory of operation
-------------------
The Multi-Paxos engine decides one ordered log; every replica feeds each chosen slot (a batch
of commands) to :meth:`KVStateMachine.apply_batch` with the time the leader stamped into it
(:meth:`~KVStateMachine.apply_encoded` applies one command the same way). The machine is
pure: no clocks, no I/O, no randomness, no threads. Its answers and its state are a function of
the commands it was given and nothing else, which is what lets the simulator compare replicas
by :meth:`~KVStateMachine.digest` and lets a snapshot stand in for the log before it.

Every command takes the next global revision, whatever becomes of it (a no-op, a transaction
whose compares fail, a malformed command, a refused configuration change, a stale request), so
``revision`` counts the commands applied since genesis and names a point in the log. The one
exception is a duplicate ``(client_id, seq)``: it is answered from the dedup table with the
bytes the first copy produced and applies nothing, so it takes no revision either.

The hot path is ``apply_batch`` of Sets, one call per slot, with the per-command work inlined
in one loop: unpack one msgpack array, check its fields, update one dict entry, append one tuple
to the history ring, note the result in the dedup table. The usual slot, one client's plain Sets
with new seqs, has those checks done once for the whole slot instead (:mod:`.plain_sets`).
It builds no dataclasses: handlers work on the wire form of commands and return the wire form
of results, and the dataclasses are built only for callers who ask through :meth:`apply` or
the read methods. A result is packed only for a client waiting on this node; the dedup table
keeps the others unpacked (see :mod:`paxoskv.state.dedup`) and packs one only if a retry asks,
so a follower packs nothing.
A stored row is the tuple ``(key, value, create_revision, mod_revision, version, lease_id)``:
immutable, so the old row can be handed out as the previous value with no copy, kept as part
of an unpacked result, and cheaper than a list to build, to keep and (when the value is a
scalar) for the garbage collector.

Values are not copied on the way in or out either: do not mutate a value after writing it or
after reading it, or this replica's state silently drifts from the others.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any, Final

from msgpack import unpackb

from paxoskv.errors import ConfigurationError, InvalidCommand
from paxoskv.state import command_wire as w
from paxoskv.state import plain_sets
from paxoskv.state import results as r
from paxoskv.state.command_wire import command_to_wire, read_command_wire, unpack_command
from paxoskv.state.commands import DEDUP_WINDOW_REQUESTS, Command
from paxoskv.state.configuration import Configuration, RejectedChange
from paxoskv.state.dedup import (
    NO_ANSWERS,
    STALE,
    Answered,
    ClientId,
    ClientRecord,
    DedupTable,
    Kept,
    Waiting,
    encode_kept,
)
from paxoskv.state.history import (
    DEFAULT_LIMIT_BYTES,
    DELETE_EVENT,
    EXPIRE_EVENT,
    SET_EVENT,
    ChangeEvent,
    History,
)
from paxoskv.state.keys import Key, check_key, check_prefix, sort_keys
from paxoskv.state.leases import LeaseInfo, LeaseTable
from paxoskv.state.results import (
    KeyValue,
    Rejected,
    Result,
    decode_result,
    encode_written,
    key_value_from_row,
    result_from_wire,
    row_to_wire,
)
from paxoskv.state.snapshot import StateImage, digest_state, paused_gc, restore_state
from paxoskv.state.wire import (
    TOP_EXT_HOOK,
    UINT64_MAX,
    MalformedCommand,
    new_packer,
    pack,
    private_copy,
)

Row = tuple[Key, Any, int, int, int, int | None]
_Handler = Callable[[list[Any], int], list[Any]]

# Which row field a compare target reads, and what a missing key reads as.
_TARGET_FIELD = (1, 4, 2, 3)  # value, version, create_revision, mod_revision
_TARGET_MISSING = (None, 0, 0, 0)
MAX_LOG_TIME_MS = 2**62
"""The largest log time a command may carry (ms); far beyond any clock, well inside int64."""


_SET: Final = w.SET
_NO_CLIENT: Final = ClientRecord(0)  # stands in before the batch's first identified request
_STR: set[type] = {str}
_INT: set[type] = {int}
_BYTES: set[type] = {bytes}
_ITEMS: set[type] = {bytes, list}


_MALFORMED_MESSAGE = (
    "the command could not be decoded: the proposer runs an incompatible version or the bytes "
    "were damaged before they were proposed"
)


class KVStateMachine:
    """The whole key-value map, its leases, dedup table, watch history and membership."""

    def __init__(
        self,
        configuration: Configuration,
        *,
        history_limit_events: int = 10_000,
        history_limit_bytes: int = DEFAULT_LIMIT_BYTES,
        dedup_window_requests: int = DEDUP_WINDOW_REQUESTS,
        dedup_client_idle_ms: int = 600_000,
    ) -> None:
        if type(configuration) is not Configuration:
            raise ConfigurationError(f"{configuration!r} is not a Configuration")
        _require_positive("history_limit_events", history_limit_events)
        _require_positive("history_limit_bytes", history_limit_bytes)
        _require_positive("dedup_window_requests", dedup_window_requests)
        _require_positive("dedup_client_idle_ms", dedup_client_idle_ms)
        self._data: dict[Key, Row] = {}
        self.changes = 0
        """Bumped as each apply call starts and again as it ends, so odd while one runs: a
        reader on a thread other than the applying one (a blocking handle's ``get_local``)
        reads between two even, equal counts, or tries again. One key's row is replaced whole,
        but a command may change several (a txn, a lease's revocation), and the applying
        thread can lose the GIL halfway through one (twenty-seventh session's review)."""
        self.changing_from = 0
        """The revision before the apply call running now (set before ``changes`` turns odd):
        a row found during it whose mod revision is no later was there before it began, so
        such a reader may keep it rather than wait for the call to end."""
        self._revision = 0
        self._log_time_ms = 0
        self._configuration = configuration
        self._configuration_revision = 0
        self._leases = LeaseTable()
        self._history = History(history_limit_events, history_limit_bytes)
        self._dedup = DedupTable(dedup_window_requests, dedup_client_idle_ms)
        # A packer of the machine's own: the machine is single-threaded, and this saves the
        # shared pool's bookkeeping on every command.
        self._pack = new_packer().pack
        self._handlers: tuple[_Handler, ...] = (
            self._apply_noop,
            self._apply_set,
            self._apply_delete,
            self._apply_txn,
            self._apply_lease_grant,
            self._apply_lease_keepalive,
            self._apply_lease_revoke,
            self._apply_lease_expire,
            self._apply_config_change,
            self._apply_config_change,
            self._apply_config_change,
            self._apply_config_change,
        )

    # --- read-only properties --------------------------------------------------------------

    @property
    def revision(self) -> int:
        """Revision of the last applied command (0 at genesis)."""
        return self._revision

    @property
    def configuration(self) -> Configuration:
        return self._configuration

    @property
    def configuration_revision(self) -> int:
        """Revision of the command that set the current configuration (0: the initial one)."""
        return self._configuration_revision

    @property
    def log_time_ms(self) -> int:
        """The largest time stamped into any command applied so far."""
        return self._log_time_ms

    @property
    def history_floor_revision(self) -> int:
        """The oldest revision :meth:`events_since` still accepts."""
        return self._history.floor_revision

    def __len__(self) -> int:
        return len(self._data)

    # --- applying commands -----------------------------------------------------------------

    def apply(
        self,
        command: Command,
        log_time_ms: int,
        *,
        client_id: ClientId | None = None,
        seq: int | None = None,
    ) -> Result:
        """Apply one command as the log's next entry and return its result.

        The same as :meth:`apply_encoded` for a command already in hand; a replica applying
        the log should prefer ``apply_encoded``, which skips building dataclasses.
        """
        # Every check that can refuse the call comes before the first change.
        wire = read_command_wire(command_to_wire(command))
        identified = _check_request_id(client_id, seq)
        self.changing_from = self._revision
        self.changes += 1
        try:
            self._advance_time(log_time_ms)
            if not identified:
                return result_from_wire(self._execute(wire))
            cached = self._deduplicate(client_id, seq)  # type: ignore[arg-type]
            if cached is not None:
                return decode_result(cached)
            result = self._execute(wire)
            self._dedup.remember(client_id, seq, self._pack(result))  # type: ignore[arg-type]
            return result_from_wire(result)
        finally:
            self.changes += 1

    def apply_encoded(
        self,
        data: bytes,
        log_time_ms: int,
        *,
        client_id: ClientId | None = None,
        seq: int | None = None,
    ) -> bytes:
        """Apply one encoded command as the log's next entry; return the encoded result.

        Never raises on bad command bytes: a malformed command is answered with an encoded
        ``Failed("malformed_command")`` that is the same on every replica, and takes a
        revision like any other entry. A duplicate ``(client_id, seq)`` gets the cached bytes
        of its first application and changes nothing.

        The same as :meth:`apply_batch` of one request answered, written out plainly (the
        tests hold the two to each other): for one command, the batch loop's set-up costs
        more than it saves.
        """
        identified = _check_request_id(client_id, seq)
        if identified and not client_id:
            raise InvalidCommand("a request id needs a non-empty client_id (empty is none)")
        self.changing_from = self._revision
        self.changes += 1
        try:
            self._advance_time(log_time_ms)
            if identified:
                cached = self._deduplicate(client_id, seq)  # type: ignore[arg-type]
                if cached is not None:
                    return cached
            try:
                wire = unpack_command(data)
            except MalformedCommand:
                self._revision += 1
                result = [r.FAILED, self._revision, r.MALFORMED_COMMAND, _MALFORMED_MESSAGE]
            else:
                result = self._execute(wire)
            encoded = self._pack(result)
            if identified:
                self._dedup.remember(client_id, seq, encoded)  # type: ignore[arg-type]
            return encoded
        finally:
            self.changes += 1

    def apply_batch(
        self,
        client_ids: Sequence[ClientId],
        seqs: Sequence[int],
        commands: Sequence[bytes],
        log_time_ms: int,
        *,
        answer: Waiting | None = None,
    ) -> Answered:
        """Apply one log slot's requests, in order, all stamped ``log_time_ms``.

        Request *i* is ``(client_ids[i], seqs[i], commands[i])``; an empty client id names no
        request (the engine's own no-ops and lease expiries), and is not deduplicated. The same
        as :meth:`apply_encoded` of each in turn, but one call per slot: the per-command work
        is inlined, and a result is packed only if ``answer`` holds its seq under its client
        id (a client waits on this node) or a retry later asks the dedup table for it. Returns
        the encoded results of those in ``answer``, in log order, as columns (:data:`Answered`).
        """
        self.changing_from = self._revision
        self.changes += 1
        try:
            return self._apply_columns(client_ids, seqs, commands, log_time_ms, answer, _BYTES)
        finally:
            self.changes += 1

    def apply_items(
        self,
        client_ids: Sequence[ClientId],
        seqs: Sequence[int],
        items: Sequence[bytes | list[Any]],
        log_time_ms: int,
        *,
        answer: Waiting | None = None,
        checked: bool = False,
    ) -> Answered:
        """:meth:`apply_batch` of commands that may come unpacked already: the hot path.

        An item is a command's bytes, or the list ``msgpack.unpackb(data, ext_hook=TOP_EXT_HOOK,
        strict_map_key=False)`` made of them (a log slot carries most commands that way, so a
        replica unpacks a slot in one call; see :mod:`paxoskv.paxos.batches`). Either gives the
        same result; the list is the machine's to keep and change from then on.

        ``checked``: the caller has already run these very checks on these columns (the
        engine's ``check_columns``, on every slot it applies: str client ids, int seqs in
        uint64, bytes or list items, equal lengths, an int log time in range), so they are not
        run twice; a caller that passes it wrongly gets undefined results, not an error.
        """
        self.changing_from = self._revision
        self.changes += 1
        try:
            if checked and client_ids:
                if log_time_ms > self._log_time_ms:  # _advance_time, its check already made
                    self._log_time_ms = log_time_ms
                    self._dedup.forget_idle(log_time_ms)
                if len(client_ids) >= plain_sets.MIN_REQUESTS:
                    answers = plain_sets.apply_plain_sets(self, client_ids, seqs, items, answer)
                    if answers is not None:
                        return answers
                return self._apply_requests(client_ids, seqs, items, answer)
            return self._apply_columns(client_ids, seqs, items, log_time_ms, answer, _ITEMS)
        finally:
            self.changes += 1

    def _apply_columns(
        self,
        client_ids: Sequence[ClientId],
        seqs: Sequence[int],
        items: Sequence[bytes | list[Any]],
        log_time_ms: int,
        answer: Waiting | None,
        item_types: set[type],
    ) -> Answered:
        count = len(client_ids)
        if len(seqs) != count or len(items) != count:
            raise InvalidCommand("a batch needs as many seqs and commands as client ids")
        if count and not (
            set(map(type, client_ids)) <= _STR
            and set(map(type, seqs)) <= _INT
            and set(map(type, items)) <= item_types
            and min(seqs) >= 0
            and max(seqs) <= UINT64_MAX
        ):
            raise InvalidCommand("a batch holds str client ids, int seqs >= 0 and bytes commands")
        if not count:
            _check_log_time(log_time_ms)
            return NO_ANSWERS  # time moves with commands, as it does one command at a time
        self._advance_time(log_time_ms)
        if count >= plain_sets.MIN_REQUESTS:
            answers = plain_sets.apply_plain_sets(self, client_ids, seqs, items, answer)
            if answers is not None:
                return answers
        return self._apply_requests(client_ids, seqs, items, answer)

    def _apply_requests(
        self,
        client_ids: Sequence[ClientId],
        seqs: Sequence[int],
        items: Sequence[bytes | list[Any]],
        answer: Waiting | None,
    ) -> Answered:
        """The loop of :meth:`apply_items`; arguments already checked, time advanced.

        The common case, a Set of a str key with no lease, is done inline (what ``_put`` and
        ``_apply_set`` would do, minus their calls); everything else goes the general way
        through :meth:`_execute_encoded`. The current client's highest seq lives in a local
        while its requests run, and goes back to its record before anything else reads it.
        """
        answers: list[tuple[ClientId, int, bytes]] = []
        SET, own_pack = _SET, self._pack
        wanted = bool(answer)
        data, record, detach = self._data, self._history.append, self._leases.detach
        dedup, window = self._dedup, self._dedup.window_requests
        prune_above = 2 * window
        now_ms, revision = self._log_time_ms, self._revision
        current_id: ClientId | None = None
        results: dict[int, Kept] = {}
        client = _NO_CLIENT
        highest = -1
        asked: Container[int] = ()  # the seqs the current client waits on here
        # Lengths were checked by the caller; ``strict`` would check again on every step (and
        # a keyword argument, even ``strict=False``, sends zip down its slow calling path).
        for client_id, seq, item in zip(client_ids, seqs, items):  # noqa: B905
            if client_id:
                if client_id != current_id:
                    client.highest_seq = highest
                    client = dedup.touch(client_id, now_ms)
                    current_id, highest = client_id, client.highest_seq
                    results = client.settle() if client.runs else client.results
                    if wanted:
                        asked = answer.get(client_id, ())  # type: ignore[union-attr]
                if seq in results:
                    if seq in asked:
                        answers.append((client_id, seq, client.encoded(seq)))  # type: ignore[arg-type]
                    continue
                if seq <= highest - window:
                    self._revision = revision
                    stale = self._stale(client_id, seq)
                    revision = self._revision
                    if seq in asked:
                        answers.append((client_id, seq, stale))
                    continue
            if type(item) is bytes:
                try:  # wire.unpack, inlined (raw=False is msgpack's default)
                    wire = unpackb(item, ext_hook=TOP_EXT_HOOK, strict_map_key=False)
                except Exception:
                    wire = None
            else:
                wire = item
            # ``is SET`` tests type and value at once (a bool tag is not the int 1), and a str
            # that came out of msgpack is valid UTF-8, so any non-empty one is a valid key.
            # Whatever fails these tests, an odd but valid Set included, goes the general way.
            if (
                type(wire) is list
                and len(wire) == 4
                and wire[0] is SET
                and wire[3] is None
                and type(key := wire[1]) is str
                and key
            ):
                revision += 1
                value = wire[2]
                prev = data.get(key)
                if prev is None:
                    data[key] = (key, value, revision, revision, 1, None)
                    record((revision, SET_EVENT, key, value, None))
                else:
                    data[key] = (key, value, prev[2], revision, prev[4] + 1, None)
                    if prev[5] is not None:
                        detach(key, prev[5])
                    record((revision, SET_EVENT, key, value, prev[1]))
                if client_id and seq in asked:
                    encoded = encode_written(revision, own_pack)
                    answers.append((client_id, seq, encoded))
                    kept: Kept = encoded
                else:
                    kept = revision
            else:
                self._revision = revision
                kept = self._execute_encoded(wire)
                revision = self._revision
                if client_id and seq in asked:
                    kept = encode_kept(kept, seq)
                    answers.append((client_id, seq, kept))
            if client_id:
                results[seq] = kept
                if seq > highest:
                    highest = seq
                if len(results) > prune_above:
                    client.highest_seq = highest
                    results = dedup.prune(client)
        client.highest_seq = highest
        self._revision = revision
        self._history.trim()  # ``record`` above appended without trimming
        if not answers:
            return NO_ANSWERS
        if len(answers) == 1:  # a slot of one command: the columns without a zip
            answered = answers[0]
            return (answered[0],), (answered[1],), (answered[2],)
        client_ids, seqs, results_ = zip(*answers, strict=True)
        return client_ids, seqs, results_

    def _execute_encoded(self, raw: object) -> list[Any]:
        """Check an unpacked command (None: it did not unpack) and apply it: its result."""
        try:
            wire = read_command_wire(raw)
        except MalformedCommand:
            self._revision += 1
            return [r.FAILED, self._revision, r.MALFORMED_COMMAND, _MALFORMED_MESSAGE]
        return self._execute(wire)

    def cached_result(self, client_id: ClientId, seq: int) -> bytes | None:
        """The encoded result of ``(client_id, seq)`` if it was applied and is still kept.

        Read-only: lets a leader answer a retry without proposing it again.
        """
        return self._dedup.peek(client_id, seq)

    def _advance_time(self, log_time_ms: int) -> None:
        # Log time never goes back: a new leader whose clock is behind must not un-expire
        # leases or revive idle clients, so the machine keeps the largest stamp seen.
        _check_log_time(log_time_ms)
        if log_time_ms > self._log_time_ms:
            self._log_time_ms = log_time_ms
            self._dedup.forget_idle(log_time_ms)

    def _deduplicate(self, client_id: ClientId, seq: int) -> bytes | None:
        """Cached bytes for a duplicate, encoded Failed for a stale seq, None for a new one."""
        cached = self._dedup.check(client_id, seq, self._log_time_ms)
        if cached is not STALE:
            return cached
        return self._stale(client_id, seq)

    def _stale(self, client_id: ClientId, seq: int) -> bytes:
        """Answer a seq below the window: it takes a revision and is not remembered."""
        self._revision += 1
        message = (
            f"request {seq} of client {client_id!r} is older than the last "
            f"{self._dedup.window_requests} requests, so whether it was applied is no longer "
            "known; read the key to find out and send new requests with new seqs"
        )
        return pack([r.FAILED, self._revision, r.STALE_REQUEST, message])

    def _execute(self, wire: list[Any]) -> list[Any]:
        revision = self._revision + 1
        self._revision = revision
        handler: _Handler = self._handlers[wire[0]]
        try:
            return handler(wire, revision)
        except Rejected as rejection:
            return [r.FAILED, revision, rejection.error_code, rejection.message]

    # --- handlers: each checks everything before it changes anything ----------------------

    def _apply_noop(self, wire: list[Any], revision: int) -> list[Any]:
        return [r.APPLIED, revision]

    def _apply_set(self, wire: list[Any], revision: int) -> list[Any]:
        lease_id = wire[3]
        if lease_id is not None and lease_id not in self._leases:
            raise _lease_not_found(lease_id)
        self._put(wire[1], wire[2], lease_id, revision)
        return [r.WRITTEN, revision, None]  # a plain Set answers its revision alone (results)

    def _apply_delete(self, wire: list[Any], revision: int) -> list[Any]:
        return [r.DELETED, revision, row_to_wire(self._remove(wire[1], revision, DELETE_EVENT))]

    def _apply_txn(self, wire: list[Any], revision: int) -> list[Any]:
        succeeded = all(map(self._holds, wire[1]))
        steps = wire[2] if succeeded else wire[3]
        for step in steps:
            if step[0] == w.SET and step[3] is not None and step[3] not in self._leases:
                raise _lease_not_found(step[3])
        responses = []
        for step in steps:
            if step[0] == w.SET:
                prev = self._put(step[1], step[2], step[3], revision)
                responses.append([r.WRITTEN, revision, row_to_wire(prev)])
            else:
                prev = self._remove(step[1], revision, DELETE_EVENT)
                responses.append([r.DELETED, revision, row_to_wire(prev)])
        return [r.TXN_RESULT, revision, succeeded, responses]

    def _holds(self, compare: list[Any]) -> bool:
        key, target, op, operand = compare
        row = self._data.get(key)
        actual = _TARGET_MISSING[target] if row is None else row[_TARGET_FIELD[target]]
        if op == 0:
            return bool(actual == operand)
        if op == 1:
            return bool(actual != operand)
        try:
            return bool(actual < operand) if op == 2 else bool(actual > operand)
        except TypeError:  # values of kinds Python cannot order: the compare does not hold
            return False

    def _apply_lease_grant(self, wire: list[Any], revision: int) -> list[Any]:
        ttl_ms, lease_id = wire[1], wire[2]
        if lease_id is None:
            lease_id = self._leases.free_id(revision)
        elif lease_id in self._leases:
            raise Rejected(r.LEASE_EXISTS, f"lease {lease_id} already exists; choose another id")
        self._leases.grant(lease_id, ttl_ms, self._log_time_ms)
        return [r.LEASE_GRANTED, revision, lease_id, ttl_ms]

    def _apply_lease_keepalive(self, wire: list[Any], revision: int) -> list[Any]:
        lease_id = wire[1]
        if lease_id not in self._leases:
            raise _lease_not_found(lease_id)
        lease = self._leases.renew(lease_id, self._log_time_ms)
        return [r.LEASE_RENEWED, revision, lease_id, lease.ttl_ms, lease.expires_at_ms]

    def _apply_lease_revoke(self, wire: list[Any], revision: int) -> list[Any]:
        lease_id = wire[1]
        if lease_id not in self._leases:
            raise _lease_not_found(lease_id)
        keys = self._leases.remove(lease_id)
        for key in keys:
            self._remove(key, revision, DELETE_EVENT)
        return [r.LEASE_REVOKED, revision, lease_id, len(keys)]

    def _apply_lease_expire(self, wire: list[Any], revision: int) -> list[Any]:
        lease_id = wire[1]
        if not self._leases.is_due(lease_id, self._log_time_ms):
            return [r.LEASE_EXPIRED, revision, lease_id, False, 0]
        keys = self._leases.remove(lease_id)
        for key in keys:
            self._remove(key, revision, EXPIRE_EVENT)
        return [r.LEASE_EXPIRED, revision, lease_id, True, len(keys)]

    def _apply_config_change(self, wire: list[Any], revision: int) -> list[Any]:
        change = _CONFIG_CHANGES[wire[0]]
        try:
            configuration = change(self._configuration, wire[1])
        except RejectedChange as error:
            raise Rejected(r.INVALID_CONFIG_CHANGE, str(error)) from None
        self._configuration = configuration
        self._configuration_revision = revision
        return [r.CONFIG_CHANGED, revision, *configuration.to_wire()]

    # --- the map ---------------------------------------------------------------------------

    def _put(self, key: Key, value: Any, lease_id: int | None, revision: int) -> Row | None:
        data = self._data
        prev = data.get(key)
        if prev is None:
            data[key] = (key, value, revision, revision, 1, lease_id)
            if lease_id is not None:
                self._leases.attach(key, lease_id)
            self._history.record(revision, SET_EVENT, key, value, None)
            return None
        data[key] = (key, value, prev[2], revision, prev[4] + 1, lease_id)
        if prev[5] != lease_id:
            if prev[5] is not None:
                self._leases.detach(key, prev[5])
            if lease_id is not None:
                self._leases.attach(key, lease_id)
        self._history.record(revision, SET_EVENT, key, value, prev[1])
        return prev

    def _remove(self, key: Key, revision: int, kind: int) -> Row | None:
        prev = self._data.pop(key, None)
        if prev is not None:
            if prev[5] is not None:
                self._leases.detach(key, prev[5])
            self._history.record(revision, kind, key, None, prev[1])
        return prev

    # --- reads -----------------------------------------------------------------------------

    # The reads take ``object`` and check it themselves: a key can come straight from an
    # application (a local read), and annotated ``Key`` the compiled build would refuse a
    # wrong type with a bare TypeError before the check could raise InvalidKey.

    def get(self, key: object) -> KeyValue | None:
        """The key's value and counters, or None if it does not exist."""
        row = self._data.get(check_key(key))
        return None if row is None else _own_entry(row)

    def keys(self, prefix: object) -> list[Key]:
        """Keys under ``prefix`` in canonical order (see :func:`~paxoskv.state.keys.sort_keys`).

        Scans every key: the map is a dict, kept for the cheap writes; a range is O(n).
        """
        prefix = check_prefix(prefix)
        data = self._data
        found: list[Key]
        if type(prefix) is tuple:
            width = len(prefix)
            found = [k for k in data if type(k) is tuple and k[:width] == prefix]
        elif type(prefix) is str:
            found = [k for k in data if type(k) is str and k.startswith(prefix)]
        else:
            found = [k for k in data if type(k) is bytes and k.startswith(prefix)]  # type: ignore[arg-type]
        return sort_keys(found)

    def range(self, prefix: object) -> list[KeyValue]:
        """Every key under ``prefix`` with its value and counters, in canonical key order."""
        data = self._data
        return [_own_entry(data[key]) for key in self.keys(prefix)]

    def events_since(self, revision: int, prefix: object = None) -> list[ChangeEvent]:
        """Changes made after ``revision``, oldest first (optionally only under ``prefix``).

        Raises :class:`~paxoskv.errors.Compacted` if the history no longer reaches back that
        far; the watcher should then read the current state and watch from :attr:`revision`.
        """
        checked = None if prefix is None else check_prefix(prefix)  # object: a watcher's own
        return self._history.since(revision, checked)

    def due_leases(self, now_ms: int) -> list[int]:
        """Ids of leases whose expiry is at or before ``now_ms``, ascending.

        The leader calls this with its own clock and proposes a LeaseExpire for each.
        """
        return self._leases.due(now_ms)

    def lease_info(self, lease_id: int) -> LeaseInfo | None:
        """A lease's TTL, expiry (log time) and keys, or None if there is no such lease."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return None
        return LeaseInfo(lease_id, lease.ttl_ms, lease.expires_at_ms, tuple(sort_keys(lease.keys)))

    # --- snapshot, restore, digest ---------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state (history and dedup table included) as one msgpack blob."""
        return b"".join(self.snapshot_image().parts())

    def snapshot_image(self) -> StateImage:
        """The state as of now, to pack later (on another thread): see :class:`StateImage`."""
        with paused_gc():
            return StateImage(
                parameters=[
                    self._history.limit_events,
                    self._dedup.window_requests,
                    self._dedup.client_idle_ms,
                ],
                header=[
                    self._revision,
                    self._log_time_ms,
                    self._configuration.to_wire(),
                    self._configuration_revision,
                ],
                rows=list(self._data.values()),
                leases=self._leases.to_wire(),
                dedup=self._dedup.to_wire(),
                history=self._history.to_wire(),
            )

    @classmethod
    def restore(
        cls,
        data: bytes | memoryview,
        *,
        history_limit_bytes: int = DEFAULT_LIMIT_BYTES,
        history_limit_events: int | None = None,
    ) -> KVStateMachine:
        """A machine in the state ``data`` was taken in; MalformedSnapshot if it is not one.

        The history's bounds are the restoring node's (the event bound the snapshot's only when
        none is given): they are there to bound this node's memory, so a node short of memory
        must be able to lower them and restart, and the history is a per-node cache that the
        digest leaves out (snapshots keep the three parameters older releases read).
        """
        _require_positive("history_limit_bytes", history_limit_bytes)
        if history_limit_events is not None:
            _require_positive("history_limit_events", history_limit_events)
        with paused_gc():
            state = restore_state(data, history_limit_bytes, history_limit_events)
        limit_events, window_requests, idle_ms = state.parameters
        machine = cls(
            state.configuration,
            history_limit_events=limit_events,
            history_limit_bytes=history_limit_bytes,
            dedup_window_requests=window_requests,
            dedup_client_idle_ms=idle_ms,
        )
        machine._revision = state.revision
        machine._log_time_ms = state.log_time_ms
        machine._configuration_revision = state.configuration_revision
        machine._data = state.rows
        machine._leases = state.leases
        machine._dedup = state.dedup
        machine._history = state.history
        return machine

    def digest(self) -> bytes:
        """blake2b over a canonical encoding of the replicated state.

        Covers keys, values, counters, leases, configuration, log time and the dedup table;
        not the watch history, which is a per-node cache of the log whose length each node
        may configure. Equal state gives equal digests on any replica and any hash seed.
        """
        with paused_gc():
            return self._digest()

    def _digest(self) -> bytes:
        return digest_state(
            header=[
                self._revision,
                self._log_time_ms,
                self._configuration.to_wire(),
                self._configuration_revision,
            ],
            rows=[self._data[key] for key in sort_keys(self._data)],
            leases=self._leases.canonical_wire(),
            dedup=self._dedup.canonical_wire(),
        )


def _own_entry(row: tuple[Any, ...]) -> KeyValue:
    """A stored row as a KeyValue its caller owns: the value a private copy (see
    :func:`~paxoskv.state.wire.private_copy`), never the map's own list or dict."""
    entry = key_value_from_row(row)
    value = entry.value
    copied = private_copy(value)
    if copied is value:
        return entry
    return KeyValue(
        entry.key, copied, entry.create_revision, entry.mod_revision, entry.version, entry.lease_id
    )


_CONFIG_CHANGES: dict[int, Callable[[Configuration, str], Configuration]] = {
    w.ADD_LEARNER: Configuration.with_learner_added,
    w.PROMOTE_LEARNER: Configuration.with_learner_promoted,
    w.DEMOTE_VOTER: Configuration.with_voter_demoted,
    w.REMOVE_MEMBER: Configuration.with_member_removed,
}


def _lease_not_found(lease_id: int) -> Rejected:
    return Rejected(
        r.LEASE_NOT_FOUND,
        f"lease {lease_id} does not exist (it expired, was revoked, or was never granted); "
        "grant a new lease",
    )


def _check_request_id(client_id: object, seq: object) -> bool:
    """True if the call names a request, False if it names none; InvalidCommand if half."""
    if client_id is None and seq is None:
        return False
    if type(client_id) is not str or type(seq) is not int or not 0 <= seq <= UINT64_MAX:
        raise InvalidCommand(
            f"a request id is a str client_id with an int seq >= 0, not ({client_id!r}, {seq!r})"
        )
    return True


def _check_log_time(log_time_ms: object) -> None:
    if type(log_time_ms) is not int or log_time_ms > MAX_LOG_TIME_MS:
        raise InvalidCommand(f"log_time_ms {log_time_ms!r} is not an int in range")


def _require_positive(name: str, number: object) -> None:
    if type(number) is not int or number < 1:
        raise ConfigurationError(f"{name} must be a positive int, not {number!r}")
