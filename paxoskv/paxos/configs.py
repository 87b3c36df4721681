"""Which configuration (voters, learners) governs which log slot.

The rule is Lamport's alpha-reconfiguration ("Reconfiguring a State Machine", Lamport, Malkhi
and Zhou, 2010): a configuration change chosen in slot ``s`` governs slots ``s + alpha`` and
later, where alpha is the leader's pipeline window. A leader only proposes slot ``s`` once
every slot up to ``s - alpha`` is chosen, so it always knows the configuration of a slot it
proposes, and every replica derives the same configuration for every slot from the log
prefix alone. Each slot has exactly one configuration, so quorums only ever need to
intersect within one configuration, and any number of changes may be in the log at once.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import pairwise

from paxoskv.state import Configuration


class ConfigHistory:
    """A step function from slot to configuration."""

    def __init__(self, entries: list[tuple[int, Configuration]]) -> None:
        assert entries and all(a[0] < b[0] for a, b in pairwise(entries))
        self._starts = [start for start, _ in entries]
        self._configs = [config for _, config in entries]

    def at(self, slot: int) -> Configuration:
        if slot >= self._starts[-1]:  # the usual slot, governed by the latest: no bisect
            return self._configs[-1]
        index = bisect_right(self._starts, slot) - 1
        return self._configs[max(index, 0)]

    def latest(self) -> Configuration:
        return self._configs[-1]

    def last_start(self) -> int:
        """The first slot the latest configuration governs: from it on, :meth:`at` is
        :meth:`latest` (a bisect spared on every step of a leader)."""
        return self._starts[-1]

    def change_from(self, slot: int, config: Configuration) -> None:
        """``config`` governs ``slot`` on (slots are applied in order, so starts only grow)."""
        if self._starts[-1] >= slot:
            # Two changes whose effect lands on the same slot: the later one wins.
            while self._starts and self._starts[-1] >= slot:
                self._starts.pop()
                self._configs.pop()
        self._starts.append(slot)
        self._configs.append(config)

    def forget_before(self, slot: int) -> None:
        """Drop entries no slot at or after ``slot`` can need."""
        if len(self._starts) == 1:
            return  # (called on every slot applied: one entry is kept whatever the slot)
        keep_from = max(bisect_right(self._starts, slot) - 1, 0)
        del self._starts[:keep_from]
        del self._configs[:keep_from]

    def entries(self) -> list[tuple[int, Configuration]]:
        return list(zip(self._starts, self._configs, strict=True))


def last_voted_slot(history: ConfigHistory, node_id: str) -> int | None:
    """The last slot governed by a configuration in which ``node_id`` votes and after which
    another governs (None: it votes in no such configuration kept).

    A voter taken out of the configuration is still one of these slots' voters; the runtime
    keeps it voting until :func:`may_leave` (see ``Replica._still_needed``).
    """
    last = None
    for (_, config), (next_start, _) in pairwise(history.entries()):
        if node_id in config.voters:
            last = next_start - 1
    return last


def may_leave(
    latest: Configuration, last: int, applied_slot: int, reported: dict[str, int]
) -> bool:
    """Whether a voter taken out may stop voting: it has applied ``last`` (its old
    configurations' last slot) and so have a quorum of the ``latest`` voters, by their
    ``reported`` applied slots; from there on none of those campaigns over a slot that needs
    its vote, and the rest of them learn those slots from them."""
    if applied_slot < last:
        return False
    return latest.is_quorum([v for v in latest.voters if reported.get(v, -1) >= last])
