"""TTL leases, judged in log time, with the keys attached to each.

Expiry is deterministic because no replica ever reads a clock: the leader stamps its time into
every command, the state machine keeps the largest stamp seen as its *log time* (so a new
leader with a slower clock cannot move time backwards), and a lease is due when its
``expires_at_ms`` is at or before that. The leader asks :meth:`LeaseTable.due` with its own
clock and proposes a ``LeaseExpire`` for each lease it finds, which is why a quiet cluster still
expires on time; the command applies only if the lease is still due in log time when it
arrives, so a keepalive that got into the log first wins on every replica alike.

Finding due leases must not scan every lease on every timer tick (a session store holds one
lease per session), so the table keeps a heap of ``(expires_at_ms, lease_id)``. Keepalives push
a fresh entry rather than search the heap; stale entries are skipped when read and the heap is
rebuilt once they outnumber the live ones.
"""

from __future__ import annotations

import heapq
from typing import Any

from paxoskv.state.frozen import Frozen, Record
from paxoskv.state.keys import Key, sort_keys


class LeaseInfo(Frozen):
    """What a caller may see of a lease: its TTL, its expiry in log time, its keys (sorted)."""

    __slots__ = ("expires_at_ms", "keys", "lease_id", "ttl_ms")
    __match_args__ = ("lease_id", "ttl_ms", "expires_at_ms", "keys")

    lease_id: int
    ttl_ms: int
    expires_at_ms: int
    keys: tuple[Key, ...]

    def __init__(
        self, lease_id: int, ttl_ms: int, expires_at_ms: int, keys: tuple[Key, ...]
    ) -> None:
        object.__setattr__(self, "lease_id", lease_id)
        object.__setattr__(self, "ttl_ms", ttl_ms)
        object.__setattr__(self, "expires_at_ms", expires_at_ms)
        object.__setattr__(self, "keys", keys)


class Lease(Record):
    """A live lease. Mutable and private to the table; callers see ids and numbers."""

    __slots__ = ("expires_at_ms", "keys", "ttl_ms")
    __match_args__ = ("ttl_ms", "expires_at_ms", "keys")

    ttl_ms: int
    expires_at_ms: int
    # A dict used as an insertion-ordered set: never a set, whose order follows the hash seed.
    keys: dict[Key, None]

    def __init__(
        self, ttl_ms: int, expires_at_ms: int, keys: dict[Key, None] | None = None
    ) -> None:
        self.ttl_ms = ttl_ms
        self.expires_at_ms = expires_at_ms
        self.keys = dict() if keys is None else keys


class LeaseTable:
    """Leases by id, plus the expiry heap that finds due ones quickly."""

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._heap: list[tuple[int, int]] = []

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def free_id(self, wanted: int) -> int:
        """``wanted``, or the next id above it that no lease holds.

        An auto-assigned id is the grant's revision, which a client may have taken earlier by
        choosing that id explicitly; stepping up keeps the grant deterministic instead of
        failing a client that chose nothing.
        """
        while wanted in self._leases:
            wanted += 1
        return wanted

    def grant(self, lease_id: int, ttl_ms: int, now_ms: int) -> None:
        assert lease_id not in self._leases, "grant of a lease id that is held"
        self._leases[lease_id] = Lease(ttl_ms, now_ms + ttl_ms)
        self._push(now_ms + ttl_ms, lease_id)

    def renew(self, lease_id: int, now_ms: int) -> Lease:
        lease = self._leases[lease_id]
        lease.expires_at_ms = now_ms + lease.ttl_ms
        self._push(lease.expires_at_ms, lease_id)
        return lease

    def remove(self, lease_id: int) -> list[Key]:
        """Drop the lease; return its keys in canonical order, the order they are deleted in.

        Sorting (rather than attachment order) makes the deletion events the same on a replica
        restored from a snapshot, which rebuilt the attachments in a different order.
        """
        lease = self._leases.pop(lease_id)
        return sort_keys(lease.keys)

    def attach(self, key: Key, lease_id: int) -> None:
        self._leases[lease_id].keys[key] = None

    def detach(self, key: Key, lease_id: int) -> None:
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.pop(key, None)

    def is_due(self, lease_id: int, now_ms: int) -> bool:
        lease = self._leases.get(lease_id)
        return lease is not None and lease.expires_at_ms <= now_ms

    def due(self, now_ms: int) -> list[int]:
        """Ids of leases with ``expires_at_ms <= now_ms``, ascending.

        Walks only the part of the heap at or before ``now_ms`` (a heap's children are never
        earlier than their parent), so the cost follows the number of due entries.
        """
        heap, leases = self._heap, self._leases
        found: set[int] = set()
        stack = [0] if heap else []
        while stack:
            index = stack.pop()
            expires_at_ms, lease_id = heap[index]
            if expires_at_ms > now_ms:
                continue
            lease = leases.get(lease_id)
            if lease is not None and lease.expires_at_ms == expires_at_ms:
                found.add(lease_id)
            stack.extend(child for child in (2 * index + 1, 2 * index + 2) if child < len(heap))
        return sorted(found)

    def _push(self, expires_at_ms: int, lease_id: int) -> None:
        heap = self._heap
        if len(heap) > 2 * len(self._leases) + 64:
            heap[:] = [(lease.expires_at_ms, i) for i, lease in self._leases.items()]
            heapq.heapify(heap)
        heapq.heappush(heap, (expires_at_ms, lease_id))

    # --- snapshot and digest ---------------------------------------------------------------

    def to_wire(self) -> list[Any]:
        """Flat ``[id, ttl_ms, expires_at_ms, ...]`` in table order; attachments are rebuilt
        from the keys' rows on restore, so they are not stored twice."""
        flat: list[Any] = []
        for lease_id, lease in self._leases.items():
            flat += (lease_id, lease.ttl_ms, lease.expires_at_ms)
        return flat

    def canonical_wire(self) -> list[Any]:
        """As :meth:`to_wire` but sorted by id, for the digest."""
        flat: list[Any] = []
        for lease_id in sorted(self._leases):
            lease = self._leases[lease_id]
            flat += (lease_id, lease.ttl_ms, lease.expires_at_ms)
        return flat

    @classmethod
    def from_wire(cls, flat: object) -> LeaseTable:
        """Inverse of :meth:`to_wire`; ValueError on a bad shape."""
        if type(flat) is not list or len(flat) % 3:
            raise ValueError("lease table is not a flat array of triples")
        table = cls()
        numbers = iter(flat)
        for lease_id, ttl_ms, expires_at_ms in zip(numbers, numbers, numbers, strict=True):
            if not all(type(n) is int for n in (lease_id, ttl_ms, expires_at_ms)):
                raise ValueError("lease fields are ints")
            if lease_id in table._leases:
                raise ValueError(f"lease {lease_id} appears twice")
            table._leases[lease_id] = Lease(ttl_ms, expires_at_ms)
            table._heap.append((expires_at_ms, lease_id))
        heapq.heapify(table._heap)
        return table
