"""The Python API: an embedded replica (:class:`Node`) or a thin client (:func:`connect`).

Both offer the same methods, so code written against one runs against the other::

    async with paxoskv.Node(paxoskv.Config(data_dir="data/n1", bootstrap_expect=3)) as node:
        await node.set(("session", sid), {"user": 7}, lease=lease_id)
        value = await node.get(("session", sid))
        async for event in node.watch(("session",)):
            ...

Writes return the revision they were applied at; a compare that fails raises
:class:`~paxoskv.errors.CompareFailed`; no quorum within ``request_timeout_s`` raises
:class:`~paxoskv.errors.NoQuorum` (the write may or may not have happened: these methods
resend the same request until the timeout, and a resend is applied once, but a call made again
after ``NoQuorum`` is a new request: read the key back, or write with ``cas``/``if_revision``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from paxoskv.config import Config, check_node_id
from paxoskv.errors import (
    CompareFailed,
    ConfigurationError,
    InvalidArgument,
    NodeClosed,
    NoQuorum,
    PaxosKVError,
    QuorumAtRisk,
    ValueTooLarge,
)
from paxoskv.seq_window import SeqWindow
from paxoskv.state import results as r
from paxoskv.state.command_wire import encode_command, encode_set
from paxoskv.state.commands import (
    MAX_LEASE_ID,
    MAX_TTL_MS,
    TARGETS,
    Command,
    Compare,
    Delete,
    LeaseGrant,
    LeaseKeepalive,
    LeaseRevoke,
    PromoteLearner,
    RemoveMember,
    Set,
    Txn,
)
from paxoskv.state.keys import Key, check_prefix
from paxoskv.state.results import (
    Deleted,
    Failed,
    KeyValue,
    LeaseGranted,
    Result,
    TxnResult,
    Written,
    decode_result,
)
from paxoskv.state.wire import UINT64_MAX, unpack

if TYPE_CHECKING:  # annotations only: a thin client need not load the membership's modules
    from paxoskv.runtime.membership import Member
    from paxoskv.state.history import ChangeEvent

log = logging.getLogger("paxoskv.client")

Consistency = Literal["linearizable", "leader", "local"]
CONSISTENCIES: tuple[Consistency, ...] = ("linearizable", "leader", "local")
MAX_COMMAND_BYTES = 47_000  # a slot must fit one datagram with room for its envelope
MAX_LEASE_TTL_S = MAX_TTL_MS // 1000  # a hundred years


def check_consistency(consistency: object) -> None:
    """Refuse an unknown consistency here: a member that does not know it cannot answer
    one, and a client would only hear a timeout."""
    if consistency not in CONSISTENCIES:
        raise InvalidArgument(
            f"consistency {consistency!r} is not one of {', '.join(CONSISTENCIES)}"
        )


def check_from_revision(from_revision: object) -> None:
    """A watch starts at revision 1 at the earliest (None: from now on)."""
    if from_revision is not None and (
        type(from_revision) is not int or not 1 <= from_revision <= MAX_REVISION
    ):
        raise InvalidArgument(
            f"from_revision must be a whole number from 1 to {MAX_REVISION} (the first "
            f"revision to watch), or None to watch from now on; not {from_revision!r}"
        )


MAX_REVISION = UINT64_MAX
"""The highest revision a store can reach (revisions travel as msgpack's unsigned 64-bit
ints): a watch from above it would wait for good, and a compare with one could never hold."""


def _member_id(node_id: object) -> str:
    """``node_id`` if a node could have it, else InvalidArgument (not a member: the cluster
    says that)."""
    if type(node_id) is not str:
        raise InvalidArgument(f"a node id is a str, not {type(node_id).__name__}")
    try:
        check_node_id(node_id)
    except ConfigurationError as error:
        raise InvalidArgument(str(error)) from None
    return node_id


def _check_quorum_after_removal(members: list[Member], node_id: str) -> None:
    voters = {member.node_id: member for member in members if member.role == "voter"}
    if node_id not in voters:
        return  # a learner, or not a member: the state machine answers that
    remaining = [member for name, member in voters.items() if name != node_id]
    alive = [member.node_id for member in remaining if member.state != "down"]
    if remaining and len(alive) <= len(remaining) // 2:
        down = sorted(member.node_id for member in remaining if member.state == "down")
        raise QuorumAtRisk(
            f"removing {node_id} would leave {len(remaining)} voters of which only "
            f"{len(alive)} are up ({', '.join(down)} down): no quorum, so no writes, nor "
            f"a way to add {node_id} back, until one returns; bring it back first, or "
            "remove the down ones first, or force it (--force, force=True)"
        )


def check_subscription(prefix: object, callback: object) -> None:
    """An ``on_change``'s arguments, checked where it is called rather than in the task that
    follows the changes, whose failure only a log would show."""
    if prefix is not None:
        check_prefix(prefix)
    if not callable(callback):
        raise InvalidArgument(
            f"on_change needs a callable, called with each ChangeEvent; not {callback!r}"
        )


def _check_lease_argument(lease_id: object, name: str) -> None:
    """InvalidArgument, as for any call's argument of the wrong type (the command's own check
    says InvalidCommand, which the README keeps for commands an application builds)."""
    if type(lease_id) is not int or not 1 <= lease_id <= MAX_LEASE_ID:
        raise InvalidArgument(
            f"{name} must be a lease's id, as grant_lease returned it (an int from 1 to "
            f"{MAX_LEASE_ID}), not {lease_id!r}"
        )


def lease_ttl_ms(ttl_s: object) -> int:
    """A lease's ttl in the state machine's milliseconds, or InvalidArgument in seconds."""
    if type(ttl_s) not in (int, float) or not math.isfinite(ttl_s):  # type: ignore[arg-type]
        raise InvalidArgument(f"lease ttl_s must be a finite number of seconds, not {ttl_s!r}")
    if not 0 < ttl_s <= MAX_LEASE_TTL_S:  # type: ignore[operator]
        raise InvalidArgument(
            f"lease ttl_s {ttl_s!r} is out of range: it must be over 0 and at most "
            f"{MAX_LEASE_TTL_S:,} seconds (a hundred years)"
        )
    return max(1, round(ttl_s * 1000))  # type: ignore[operator]


class KVApi(ABC):
    """The operations every handle on a cluster offers; subclasses supply the transport."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.client_id = f"{config.node_id or 'client'}-{secrets.token_hex(6)}"
        self._seqs = SeqWindow()  # no seq waiting falls out of the cluster's dedup window
        # What a write calls: ``_submit``, or what a subclass puts there to skip its frame
        # (a node hands over its replica's own ``submit``: one call fewer per write).
        self._send_request: Callable[[str, int, bytes], Awaitable[bytes]] = self._submit
        self._closed = False  # set by close(): what ends after it ends quietly (on_change)

    # --- what a subclass provides ----------------------------------------------------------

    @abstractmethod
    def _submit(self, client_id: str, seq: int, command: bytes) -> Awaitable[bytes]:
        """Send ``command`` on its way now; what to await for its encoded result.

        Not a coroutine itself, so that a node can hand back the future its replica resolves:
        at tens of thousands of writes a second, every coroutine layer between a caller and
        that future is a measurable share of the write.
        """

    @abstractmethod
    async def _read(self, consistency: Consistency, op: str, argument: Any) -> Any: ...

    @abstractmethod
    def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> AsyncIterator[ChangeEvent]:
        """Changes under ``prefix`` (None: all) as they are applied, from ``from_revision`` on
        (None: from when the watch starts, at its first iteration, not at the call).

        Raises :class:`~paxoskv.errors.Compacted` when that revision is older than the
        history the cluster keeps.
        """

    @abstractmethod
    async def members(self) -> list[Member]: ...

    @abstractmethod
    async def status(self) -> dict[str, Any]: ...

    # --- writes ------------------------------------------------------------------------------

    async def _write(self, command: Command) -> Result:
        return _checked(decode_result(await self._write_encoded(command)))

    async def _write_encoded(self, command: Command | bytes) -> bytes:
        """Propose ``command`` (or its encoding) under this client's next seq; its encoded
        result."""
        data = command if isinstance(command, bytes) else encode_command(command)
        if len(data) > MAX_COMMAND_BYTES:
            raise ValueTooLarge(len(data), MAX_COMMAND_BYTES, "request")
        seqs = self._seqs
        seq = seqs.take() or await seqs.take_when_room()
        try:
            return await self._send_request(self.client_id, seq, data)
        finally:
            seqs.finish(seq)

    async def set(
        self, key: Key, value: Any, *, lease: int | None = None, if_revision: int | None = None
    ) -> int:
        """Write ``value``; with ``if_revision``, only if the key's mod revision is that one
        (0: only if the key does not exist)."""
        if lease is not None:
            _check_lease_argument(lease, "lease")
        if if_revision is None:
            # _write_encoded written out: this is the write a pipelined client makes most.
            data = encode_set(key, value, lease)
            if len(data) > MAX_COMMAND_BYTES:
                raise ValueTooLarge(len(data), MAX_COMMAND_BYTES, "request")
            seqs = self._seqs
            seq = seqs.take() or await seqs.take_when_room()
            try:
                answer = await self._send_request(self.client_id, seq, data)
            finally:
                seqs.finish(seq)
            revision = _written_revision(answer)
            if revision is None:  # not a plain Written: a failure, or malformed
                result = _checked(decode_result(answer))
                assert isinstance(result, Written)
                revision = result.revision
            return revision
        if type(if_revision) is not int or not 0 <= if_revision <= MAX_REVISION:
            raise InvalidArgument(
                f"if_revision must be a whole number from 0 to {MAX_REVISION} (0: only if the "
                f"key does not exist), not {if_revision!r}"
            )
        compare = Compare(key, "mod_revision", "==", if_revision)
        txn = await self.txn([compare], [Set(key, value, lease_id=lease)])
        if not txn.succeeded:
            raise CompareFailed(await self._why_not_at(key, if_revision))
        return txn.revision

    async def _why_not_at(self, key: Key, revision: int) -> str:
        """Why a write ``if_revision=revision`` was refused, as well as a read can tell."""
        entry: KeyValue | None = None
        with contextlib.suppress(PaxosKVError, TimeoutError):
            entry = await self.get_entry(key)
            if entry is None:
                return (
                    f"{key!r} does not exist, so it is not at revision {revision}; nothing written"
                )
            if revision == 0:
                return f"{key!r} already exists (revision 0 means only if absent); nothing written"
            return (
                f"{key!r} was last modified at revision {entry.mod_revision}, not {revision}; "
                "nothing written"
            )
        return f"{key!r} is not at revision {revision}; nothing written"

    async def delete(self, key: Key) -> bool:
        """Delete ``key``; True if it existed."""
        result = await self._write(Delete(key))
        assert isinstance(result, Deleted)
        return result.prev is not None

    async def cas(
        self,
        key: Key,
        expected: Any,
        new: Any,
        *,
        compare: Literal["value", "version", "create_revision", "mod_revision"] = "value",
    ) -> int:
        """Set ``key`` to ``new`` only if its value (or version, or revision) is ``expected``.

        ``expected=None`` with ``compare="value"`` means "only if the key does not exist".
        """
        if compare not in TARGETS:
            raise InvalidArgument(
                f"cas compare must be one of {', '.join(TARGETS)}, not {compare!r}"
            )
        if compare != "value" and (type(expected) is not int or not 0 <= expected <= MAX_REVISION):
            raise InvalidArgument(
                f"cas(compare={compare!r}) compares a whole number: expected must be an int "
                f"from 0 to {MAX_REVISION}, not {expected!r} (0: the key does not exist)"
            )
        if expected is None and compare == "value":
            check = Compare(key, "version", "==", 0)
        else:
            check = Compare(key, compare, "==", expected)
        result = await self.txn([check], [Set(key, new)])
        if not result.succeeded:
            raise CompareFailed(f"{key!r} did not hold the expected {compare}; nothing written")
        return result.revision

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Set | Delete],
        failure: Sequence[Set | Delete] = (),
    ) -> TxnResult:
        """etcd's Txn: if every compare holds, apply ``success``, else ``failure``.

        ``compares`` are :class:`~paxoskv.Compare` (key, target: "value", "version",
        "create_revision" or "mod_revision", op, operand); the branches are
        :class:`~paxoskv.Set` and :class:`~paxoskv.Delete` steps, applied at one revision.
        """
        branches: dict[str, object] = {
            "compares": compares,
            "success": success,
            "failure": failure,
        }
        for name, given in branches.items():
            if isinstance(given, str | bytes) or not isinstance(given, Iterable):
                raise InvalidArgument(
                    f"txn {name} must be a list (or tuple) of "
                    f"{'Compare' if name == 'compares' else 'Set and Delete'} steps, "
                    f"not {type(given).__name__}"
                )
        result = await self._write(Txn(tuple(compares), tuple(success), tuple(failure)))
        assert isinstance(result, TxnResult)
        return result

    # --- leases ------------------------------------------------------------------------------

    async def grant_lease(self, ttl_s: float) -> int:
        """A lease that expires ``ttl_s`` after its last keepalive; keys set with it go too."""
        result = await self._write(LeaseGrant(ttl_ms=lease_ttl_ms(ttl_s)))
        assert isinstance(result, LeaseGranted)
        return result.lease_id

    async def keepalive(self, lease_id: int) -> None:
        _check_lease_argument(lease_id, "lease_id")
        await self._write(LeaseKeepalive(lease_id))

    async def revoke(self, lease_id: int) -> None:
        """End the lease now; its keys are deleted."""
        _check_lease_argument(lease_id, "lease_id")
        await self._write(LeaseRevoke(lease_id))

    # --- reads -------------------------------------------------------------------------------

    async def get_entry(
        self, key: Key, *, consistency: Consistency = "linearizable"
    ) -> KeyValue | None:
        """The key's value with its revisions and version, or None."""
        check_consistency(consistency)
        entry: KeyValue | None = await self._read(consistency, "get", key)
        return entry

    async def get(
        self, key: Key, default: Any = None, *, consistency: Consistency = "linearizable"
    ) -> Any:
        """The key's value, or ``default`` if it does not exist."""
        entry = await self.get_entry(key, consistency=consistency)
        return default if entry is None else entry.value

    def get_local(self, key: Key, default: Any = None) -> Any:
        """A read of this process's own copy, which a :class:`~paxoskv.Node` has (it overrides
        this) and a thin client has not: said as a typed error, not an AttributeError."""
        raise InvalidArgument(
            "a thin client holds no copy of its own to read: use get(key, consistency='local'),"
            " which the member it talks to answers from its copy, or embed a Node "
            "(open_blocking(config, replica=True)) to read the node's copy without a message"
        )

    async def items(
        self, prefix: Key | str | None = None, *, consistency: Consistency = "linearizable"
    ) -> list[KeyValue]:
        """Entries under ``prefix`` (a str, bytes or tuple prefix; None: every key)."""
        check_consistency(consistency)
        entries: list[KeyValue] = await self._read(consistency, "range", prefix)
        return entries

    async def keys(
        self, prefix: Key | str | None = None, *, consistency: Consistency = "linearizable"
    ) -> list[Key]:
        return [entry.key for entry in await self.items(prefix, consistency=consistency)]

    # --- membership and callbacks -------------------------------------------------------------

    async def promote(self, node_id: str) -> None:
        """Make a learner a voter (it should have caught up first)."""
        await self._change_members(PromoteLearner(_member_id(node_id)), f"promote {node_id}")

    async def remove(self, node_id: str, *, force: bool = False) -> None:
        """Take a member out of the configuration.

        Refused with :class:`~paxoskv.errors.QuorumAtRisk` when the voters left would not
        have a quorum of live ones as this handle's member sees them (etcd's strict
        reconfiguration check), unless ``force``: such a removal stops every write, and its
        own undoing, until a down voter is back (membership review, twenty-ninth session).
        """
        change = RemoveMember(_member_id(node_id))
        if not force:
            _check_quorum_after_removal(await self.members(), node_id)
        await self._change_members(change, f"remove {node_id}")

    async def _change_members(self, change: PromoteLearner | RemoveMember, what: str) -> None:
        try:
            await self._write(change)
        except NoQuorum as error:
            # The writes' advice ("read the key back") does not fit: a change not answered
            # may still be made, once a quorum is back (membership review, twenty-ninth
            # session: a remove that failed so took effect minutes later).
            raise NoQuorum(
                f"no quorum answered the change ({what}): it may or may not have been made, "
                "and if not, may still be made once a quorum is back; check `paxos-kv "
                "members` (or members()) before asking again"
            ) from error

    def on_change(
        self, prefix: Key | str | None, callback: Callable[[ChangeEvent], Awaitable[None] | None]
    ) -> asyncio.Task[None]:
        """Call ``callback`` for every change under ``prefix``; cancel the task to stop.

        A callback that raises is logged (``paxoskv.client``, with the event's key) and the
        next change is delivered as usual: one bad event must not silently end a subscription.
        The task ends with the watch's own errors (``Compacted``, ``NoQuorum`` once a thin
        client lost contact, ``NodeClosed`` when a node stops on its own); when its owner
        closes the handle, it just ends (its ``NodeClosed`` went unretrieved and asyncio logged
        a traceback at every normal shutdown).
        """

        check_subscription(prefix, callback)  # here, not in the task: raised only on stderr

        async def follow() -> None:
            try:
                async for event in self.watch(prefix):
                    try:
                        outcome = callback(event)
                        if inspect.isawaitable(outcome):
                            await outcome
                    except Exception:
                        log.exception(
                            "on_change callback %r failed on %s of key %r at revision %d; "
                            "delivering the next change",
                            callback,
                            event.kind,
                            event.key,
                            event.revision,
                        )
            except NodeClosed:
                if not self._closed:
                    raise

        return asyncio.create_task(follow(), name=f"on_change {prefix!r}")

    # --- context manager ----------------------------------------------------------------------

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _checked(result: Result) -> Result:
    if isinstance(result, Failed):
        raise result.exception()
    return result


def _written_revision(answer: bytes) -> int | None:
    """The revision of a plain ``Written`` answer, read without building the result objects.

    A set's caller gets only the revision, and building ``Written`` with the previous
    ``KeyValue`` was a sixth of a pipelined write's client-side cost. None for anything else.
    """
    try:
        raw = unpack(answer)
    except Exception:  # malformed: the full decoder says so
        return None
    if type(raw) is list and len(raw) == 3 and raw[0] == r.WRITTEN and type(raw[1]) is int:
        return raw[1]
    return None
