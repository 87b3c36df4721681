"""Decide whether a recorded client history of paxos-kv is linearizable.

Theory of operation
-------------------
A history is linearizable when every operation can be given one instant, inside the interval
between its call and its return, such that running the operations one at a time in the order
of those instants gives every answer the clients saw (Herlihy & Wing, 1990). A call that timed
out has no return: it may take effect at any instant after its call, or never, and its answer
is ignored.

Linearizability is local (Herlihy & Wing, theorem 1): a history is linearizable if and only if
its restriction to each object is. Each key of the store is an object, so the history is cut
into one partition per key and each is searched alone, which turns one search exponential in
the whole history into many small ones (Porcupine's P-compositionality).

Each partition is searched as Wing & Gong (1993) proposed, with Lowe's improvements (2017) as
Porcupine implements them: calls and returns sit in one doubly linked list ordered by time;
the search walks it from the front, *linearizes* a call whose operation the model accepts in
the current state (unlinking the call and its return, and pushing it on a stack), and when it
reaches a return whose call is still unplaced, that operation can no longer take effect in
time, so it pops the last choice, relinks it, and tries the next candidate. A memo cache of
(set of linearized operations as an int bitset, model state) prunes every configuration
already explored, which makes typical histories near-linear. The search is bounded by steps
and by time and answers UNKNOWN rather than hang.

Intervals that touch (a return and a call at the same instant) count as overlapping, so a
coarse clock can never make the checker cry wolf; record distinct times for a strict order.
"""

from __future__ import annotations

import argparse
import enum
import sys
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from simulations.kv_history import (
    HistoryFormatError,
    Operation,
    dump_history,
    load_history,
)
from simulations.kv_model import ABSENT, KV_MODEL, KVModel, Model

__all__ = [
    "ABSENT",
    "DEFAULT_MAX_STEPS",
    "CheckResult",
    "HistoryFormatError",
    "KVModel",
    "KeyResult",
    "Model",
    "Operation",
    "Verdict",
    "check_history",
    "dump_history",
    "load_history",
    "main",
    "partition_by_key",
]

DEFAULT_MAX_STEPS: Final = 5_000_000
_CLOCK_EVERY_STEPS: Final = 4096  # reading the clock every step would cost more than the step
_PREFIX_SHOWN: Final = 5
_HEAD: Final = 0
_NONE: Final = -1


class Verdict(enum.Enum):
    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict on one key.

    ``order`` holds history indices: a linearization when the key is linearizable, else the
    longest linearizable prefix the search found (unknown-outcome calls left out of a
    linearization did not take effect). ``unplaced`` are the operations that were pending
    after that prefix and could not go next; ``blocked`` is the one whose return came first.
    """

    key: Hashable
    verdict: Verdict
    steps: int
    order: tuple[int, ...]
    blocked: int | None
    unplaced: tuple[int, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a whole history: not linearizable as soon as one key is not."""

    verdict: Verdict
    keys: tuple[KeyResult, ...]
    operations: int
    steps: int
    summary: str

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE

    @property
    def failure(self) -> KeyResult | None:
        return next((k for k in self.keys if k.verdict is Verdict.NOT_LINEARIZABLE), None)

    @property
    def explanation(self) -> str:
        failure = self.failure
        return self.summary if failure is None else failure.explanation


def partition_by_key(history: Sequence[Operation]) -> dict[Hashable, list[int]]:
    """History indices per key, keys in order of first appearance (so results are stable)."""
    partitions: dict[Hashable, list[int]] = {}
    for index, op in enumerate(history):
        partitions.setdefault(op.key, []).append(index)
    return partitions


def check_history(
    history: Sequence[Operation],
    model: Model[Any] | None = None,
    *,
    max_steps: int | None = DEFAULT_MAX_STEPS,
    timeout_s: float | None = None,
) -> CheckResult:
    """Decide *history* key by key against *model* (default: :class:`KVModel`).

    ``max_steps`` bounds the search of each key, ``timeout_s`` the whole call; a key that
    runs out is UNKNOWN, and the history is UNKNOWN unless another key is definitely not
    linearizable. Checking stops at the first key that is not.
    """
    chosen: Model[Any] = KV_MODEL if model is None else model
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    results: list[KeyResult] = []
    partitions = partition_by_key(history)
    for key, indices in partitions.items():
        result = _Search(history, key, indices, chosen).run(max_steps, deadline)
        results.append(result)
        if result.verdict is Verdict.NOT_LINEARIZABLE:
            break
        if _past(deadline):
            break
    return _combine(history, len(partitions), results)


def _combine(history: Sequence[Operation], key_count: int, results: list[KeyResult]) -> CheckResult:
    steps = sum(r.steps for r in results)
    verdicts = {r.verdict for r in results}
    counts = f"{len(history)} operations on {len(results)} key(s), {steps} search steps"
    if Verdict.NOT_LINEARIZABLE in verdicts:
        verdict = Verdict.NOT_LINEARIZABLE
        failure = next(r for r in results if r.verdict is verdict)
        summary = f"key {failure.key!r} is not linearizable ({counts})"
    elif Verdict.UNKNOWN in verdicts or len(results) < key_count:
        verdict = Verdict.UNKNOWN
        undecided = [r for r in results if r.verdict is Verdict.UNKNOWN]
        reason = undecided[0].explanation if undecided else "the time budget ran out"
        summary = f"undecided: {reason} ({counts})"
    else:
        verdict = Verdict.LINEARIZABLE
        summary = counts
    return CheckResult(verdict, tuple(results), len(history), steps, summary)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


class _Search:
    """The Wing & Gong / Lowe search over one key's operations.

    The linked list lives in parallel int arrays (index 0 is the head sentinel) rather than in
    node objects: the search touches them millions of times and list indexing is the fastest
    thing CPython does.
    """

    def __init__(
        self, history: Sequence[Operation], key: Hashable, indices: list[int], model: Model[Any]
    ) -> None:
        self.history = history
        self.key = key
        self.model = model
        # A get that never returned constrains nothing and changes nothing: leave it out.
        self.indices = [i for i in indices if history[i].outcome_known or history[i].op != "get"]
        self.ops = [history[i] for i in self.indices]
        self._build_list()

    def _build_list(self) -> None:
        # Calls sort before returns at equal times: touching intervals overlap.
        events = [(op.call_time, 0, local) for local, op in enumerate(self.ops)]
        events += [
            (op.return_time, 1, local)
            for local, op in enumerate(self.ops)
            if op.return_time is not None
        ]
        events.sort()
        size = len(events) + 1
        self.op_of = [_NONE] * size
        self.is_call = [False] * size
        self.match = [_NONE] * size  # call entry -> its return entry, _NONE if it never returned
        call_entry: dict[int, int] = {}
        for entry, (_, kind, local) in enumerate(events, start=1):
            self.op_of[entry] = local
            self.is_call[entry] = kind == 0
            if kind == 0:
                call_entry[local] = entry
            else:
                self.match[call_entry[local]] = entry
        self.next = [*range(1, size), _NONE]
        self.prev = [_NONE, *range(size - 1)]
        self.known_ops = sum(1 for op in self.ops if op.outcome_known)

    def _lift(self, entry: int) -> None:
        """Unlink a call and its return (dancing links: undone exactly by :meth:`_unlift`)."""
        nxt, prv = self.next, self.prev
        for node in (entry, self.match[entry]):
            if node == _NONE:
                continue
            nxt[prv[node]] = nxt[node]
            if nxt[node] != _NONE:
                prv[nxt[node]] = prv[node]

    def _unlift(self, entry: int) -> None:
        nxt, prv = self.next, self.prev
        for node in (self.match[entry], entry):
            if node == _NONE:
                continue
            nxt[prv[node]] = node
            if nxt[node] != _NONE:
                prv[nxt[node]] = node

    def run(self, max_steps: int | None, deadline: float | None) -> KeyResult:
        """Search; one loop on purpose, since this is the hot path and locals are fast."""
        step, op_of, is_call, nxt, ops = (
            self.model.step,
            self.op_of,
            self.is_call,
            self.next,
            self.ops,
        )
        limit = max_steps if max_steps is not None else sys.maxsize
        state = self.model.init()
        linearized = 0
        cache: set[tuple[int, Hashable]] = set()
        stack: list[tuple[int, Hashable]] = []  # (call entry, state before it)
        known_left = self.known_ops
        best: tuple[list[int], Hashable, int, list[int]] | None = None
        entry = nxt[_HEAD]
        steps = 0
        while known_left:
            steps += 1
            if steps > limit:
                return self._undecided(steps, f"gave up after max_steps={max_steps} steps")
            if steps % _CLOCK_EVERY_STEPS == 0 and _past(deadline):
                return self._undecided(steps, "gave up when timeout_s ran out")
            if is_call[entry]:
                local = op_of[entry]
                fits, after = step(state, ops[local])
                if fits:
                    placed = linearized | (1 << local)
                    if (placed, after) not in cache:
                        cache.add((placed, after))
                        stack.append((entry, state))
                        state, linearized = after, placed
                        self._lift(entry)
                        known_left -= self.match[entry] != _NONE
                        entry = nxt[_HEAD]
                        continue
                entry = nxt[entry]
                continue
            # A return whose call is unplaced: that operation ran out of time. Backtrack.
            if best is None or len(stack) > len(best[0]):
                best = ([op_of[e] for e, _ in stack], state, op_of[entry], self._pending(entry))
            if not stack:
                return self._refuted(steps, *best)
            entry, state = stack.pop()
            linearized ^= 1 << op_of[entry]
            self._unlift(entry)
            known_left += self.match[entry] != _NONE
            entry = nxt[entry]
        order = tuple(self.indices[op_of[e]] for e, _ in stack)
        return KeyResult(self.key, Verdict.LINEARIZABLE, steps, order, None, (), "linearizable")

    def _pending(self, stop: int) -> list[int]:
        """Operations whose calls come before the return entry *stop*: the candidates then."""
        pending, entry = [], self.next[_HEAD]
        while entry != stop:
            pending.append(self.op_of[entry])
            entry = self.next[entry]
        return pending

    def _undecided(self, steps: int, reason: str) -> KeyResult:
        text = f"key {self.key!r}: {reason}; raise the budget or shorten the history"
        return KeyResult(self.key, Verdict.UNKNOWN, steps, (), None, (), text)

    def _refuted(
        self, steps: int, prefix: list[int], state: Hashable, blocked: int, pending: list[int]
    ) -> KeyResult:
        order = tuple(self.indices[local] for local in prefix)
        unplaced = tuple(self.indices[local] for local in pending)
        text = _explain(self, prefix, state, blocked, pending)
        return KeyResult(
            self.key,
            Verdict.NOT_LINEARIZABLE,
            steps,
            order,
            self.indices[blocked],
            unplaced,
            text,
        )


def _explain(
    search: _Search, prefix: list[int], state: Hashable, blocked: int, pending: list[int]
) -> str:
    """A short story of the failure: the longest order that worked, then what could not."""

    def line(local: int) -> str:
        return f"#{search.indices[local]} {search.ops[local].summary()}"

    described = search.model.describe(state)
    lines = [
        f"key {search.key!r}: no order of its {len(search.ops)} operations explains what "
        f"clients saw. The longest linearizable prefix places {len(prefix)}:"
    ]
    hidden = len(prefix) - _PREFIX_SHOWN
    if hidden > 0:
        lines.append(f"  ... {hidden} earlier operations")
    lines += [f"  {line(local)}" for local in prefix[-_PREFIX_SHOWN:]]
    deadline = search.ops[blocked].return_time
    lines.append(
        f"after which the key is {described}, and {line(blocked)} must take effect by "
        f"{deadline:g}, but none of the operations pending then can go next:"
    )
    for local in pending:
        fits, _ = search.model.step(state, search.ops[local])
        why = "leads only to dead ends" if fits else f"contradicts {described}"
        lines.append(f"  {line(local)}: {why}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulations.linearizability HISTORY.jsonl``: 0 linearizable, 1 not,
    2 undecided or unreadable (one line on stderr, never a traceback)."""
    parser = argparse.ArgumentParser(
        prog="python -m simulations.linearizability",
        description="Decide whether a JSON-lines client history of paxos-kv is linearizable.",
    )
    parser.add_argument("history", help="JSON-lines file, one operation per line")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="per key")
    parser.add_argument("--timeout-s", type=float, default=None, help="for the whole check")
    args = parser.parse_args(argv)
    try:
        history = load_history(args.history)
    except (HistoryFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = check_history(history, max_steps=args.max_steps, timeout_s=args.timeout_s)
    if result.verdict is Verdict.LINEARIZABLE:
        print(f"linearizable: {result.summary}")
        return 0
    if result.verdict is Verdict.NOT_LINEARIZABLE:
        print(f"not linearizable: {result.explanation}")
        return 1
    print(f"unknown: {result.summary}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
