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

Calls that timed out need more, because each stays a candidate until the end of the history
and an exact-match cache then sees 2**k configurations for k of them. Ours: they wait in a
second list and are tried only when no returned call can go next; a configuration is pruned
when one with the same returned calls placed, the same state and a *subset* of the timed-out
calls placed was explored (the fewer used up, the more futures remain); timed-out calls with
the same op and input are interchangeable, so only the earliest unplaced one is tried; and a
timed-out call is placed only right before an operation whose outcome it changes. Each rule
has a test that fails without it.

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
_MAIN_HEAD: Final = 0
_TIMED_OUT_HEAD: Final = 1
_FIRST_ENTRY: Final = 2
_NONE: Final = -1

# A choice on the search stack: the entry placed, then what to restore when undoing it
# (state, cutoff, base, window, timed-out bitset).
_Frame = tuple[int, Hashable, float | None, int, int, int]


class Verdict(enum.Enum):
    """UNKNOWN is a budget running out, never a guess: it says nothing either way."""

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

    def explanation(self) -> str:
        """The failing key's story when there is one, else the one-line summary."""
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
        summary = f"{reason} ({counts})"
    else:
        verdict = Verdict.LINEARIZABLE
        summary = counts
    return CheckResult(verdict, tuple(results), len(history), steps, summary)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _with_placed(base: int, window: int, rank: int) -> tuple[int, int]:
    """Add call *rank* to the set {0 .. base-1} plus {base + i for each bit i of window}.

    Returned calls are ranked in call order, so the placed ones are nearly a prefix; keeping
    the prefix as a count and clearing the window's low ones keeps memo keys as small as the
    concurrency rather than as large as the history (a plain bitset makes 50,000 operations
    on one key cost gigabytes).
    """
    window |= 1 << (rank - base)
    ones = (~window & (window + 1)).bit_length() - 1
    return base + ones, window >> ones


def _unexplored(
    memo: dict[tuple[int, int, Hashable], list[int]], key: tuple[int, int, Hashable], timed_out: int
) -> bool:
    """Record a configuration unless one that dominates it was already explored.

    Reaching the same returned calls and state with a subset of the timed-out calls placed is
    at least as good (the extra ones could simply never take effect, and nothing waits for a
    call that never returned), and every configuration the depth-first search meets again has
    either failed or is an ancestor that will try the same futures itself.
    """
    explored = memo.get(key)
    if explored is None:
        memo[key] = [timed_out]
        return True
    if any(old & timed_out == old for old in explored):
        return False
    explored[:] = [old for old in explored if old & timed_out != timed_out]
    explored.append(timed_out)
    return True


class _Search:
    """The Wing & Gong / Lowe search over one key's operations.

    Two linked lists share parallel int arrays (rather than node objects: the search touches
    them millions of times and list indexing is the fastest thing CPython does). The main list,
    headed at index 0, holds the calls and returns of calls that returned; calls that never
    returned sit in a second list, headed at index 1, in call order.
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
        self._build_lists()

    def _build_lists(self) -> None:
        # Calls sort before returns at equal times: touching intervals overlap.
        main: list[tuple[float, int, int]] = []
        timed_out: list[tuple[float, int, int]] = []
        for local, op in enumerate(self.ops):
            if op.return_time is None:
                timed_out.append((op.call_time, 0, local))
            else:
                main += [(op.call_time, 0, local), (op.return_time, 1, local)]
        main.sort()
        timed_out.sort()
        size = _FIRST_ENTRY + len(main) + len(timed_out)
        self.op_of = [_NONE] * size
        self.time_of = [0.0] * size
        self.is_call = [False] * size
        self.match = [_NONE] * size  # call entry -> its return entry, _NONE if it never returned
        self.rank_of = [_NONE] * size  # call entry -> its bit: call order within its list
        self.next = [_NONE] * size
        self.prev = [_NONE] * size
        self._chain(_MAIN_HEAD, main, _FIRST_ENTRY)
        self._chain(_TIMED_OUT_HEAD, timed_out, _FIRST_ENTRY + len(main))
        self.known_ops = len(main) // 2
        self.twin_of = [_NONE] * size
        self._link_twins(_FIRST_ENTRY + len(main))

    def _link_twins(self, first: int) -> None:
        """Point each timed-out call at the previous one with the same op and input.

        Twins have no deadline and the same effect, so which of the pending ones takes effect
        does not matter, only how many: the search places them in call order and never tries
        a twin while an earlier one is unplaced (symmetry reduction). Without this, k
        timed-out deletes that could each explain an absent read cost 2**k configurations.
        """
        last_seen: dict[tuple[str, Hashable], int] = {}
        for entry in range(first, len(self.op_of)):
            op = self.ops[self.op_of[entry]]
            self.twin_of[entry] = last_seen.get((op.op, op.frozen_input), _NONE)
            last_seen[(op.op, op.frozen_input)] = entry

    def _chain(self, head: int, events: list[tuple[float, int, int]], first: int) -> None:
        call_entry: dict[int, int] = {}
        previous = head
        for entry, (at, kind, local) in enumerate(events, start=first):
            self.op_of[entry], self.time_of[entry], self.is_call[entry] = local, at, kind == 0
            if kind == 0:
                self.rank_of[entry] = len(call_entry)
                call_entry[local] = entry
            else:
                self.match[call_entry[local]] = entry
            self.next[previous], self.prev[entry] = entry, previous
            previous = entry

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
        """Search depth first; one loop on purpose, since this is the hot path.

        ``cutoff`` is set while trying timed-out calls: the time of the first return still in
        the main list, after which a call is too late to be a candidate.
        """
        step, op_of, time_of, nxt, ops = (
            self.model.step,
            self.op_of,
            self.time_of,
            self.next,
            self.ops,
        )
        is_call, twin_of, rank_of, lift = self.is_call, self.twin_of, self.rank_of, self._lift
        limit = max_steps if max_steps is not None else sys.maxsize
        state = self.model.init()
        base = window = 0  # returned calls placed, as in _with_placed
        timed_out_placed = 0  # bitset of timed-out calls placed, by rank
        memo: dict[tuple[int, int, Hashable], list[int]] = {}
        stack: list[_Frame] = []
        known_left = self.known_ops
        longest = _Longest()
        entry, cutoff = nxt[_MAIN_HEAD], None
        steps = 0
        while known_left:
            steps += 1
            if steps > limit:
                return self._undecided(steps, f"gave up after max_steps={max_steps} steps")
            if steps % _CLOCK_EVERY_STEPS == 0 and _past(deadline):
                return self._undecided(steps, "gave up when timeout_s ran out")
            if cutoff is None and not is_call[entry]:
                # A return whose call is unplaced: no returned call can go next here.
                longest.offer(stack, op_of, state, op_of[entry])
                entry, cutoff = nxt[_TIMED_OUT_HEAD], time_of[entry]
            if cutoff is None or (entry != _NONE and time_of[entry] <= cutoff):
                twin = twin_of[entry]
                if twin != _NONE and not (timed_out_placed >> rank_of[twin]) & 1:
                    entry = nxt[entry]
                    continue
                fits, after = step(state, ops[op_of[entry]])
                if fits and self._pointless(stack, entry, after):
                    entry = nxt[entry]
                    continue
                if cutoff is None:
                    new_base, new_window = _with_placed(base, window, rank_of[entry])
                    timed_out = timed_out_placed
                else:
                    new_base, new_window = base, window
                    timed_out = timed_out_placed | 1 << rank_of[entry]
                if fits and _unexplored(memo, (new_base, new_window, after), timed_out):
                    stack.append((entry, state, cutoff, base, window, timed_out_placed))
                    state, base, window, timed_out_placed = after, new_base, new_window, timed_out
                    lift(entry)
                    known_left -= cutoff is None
                    entry, cutoff = nxt[_MAIN_HEAD], None
                else:
                    entry = nxt[entry]
                continue
            # Nothing can go next: undo the last choice and try the one after it.
            if not stack:
                return self._refuted(steps, longest)
            entry, state, cutoff, base, window, timed_out_placed = stack.pop()
            longest.shrink(len(stack))
            known_left += cutoff is None
            self._unlift(entry)
            entry = nxt[entry]
        order = tuple(self.indices[op_of[frame[0]]] for frame in stack)
        return KeyResult(self.key, Verdict.LINEARIZABLE, steps, order, None, (), "linearizable")

    def _pointless(self, stack: list[_Frame], entry: int, after: Hashable) -> bool:
        """Whether *entry*, which fits after the timed-out call on top of *stack*, would do the
        same without it.

        Then placing *entry* here is dominated by placing it one step earlier instead, which
        the search does (or did) from there, and the timed-out call stays unused. So a
        timed-out call is only ever placed right before something that can tell.
        """
        if not stack or stack[-1][2] is None:
            return False
        return self.model.step(stack[-1][1], self.ops[self.op_of[entry]]) == (True, after)

    def _undecided(self, steps: int, reason: str) -> KeyResult:
        text = f"key {self.key!r}: {reason}; raise the budget or shorten the history"
        return KeyResult(self.key, Verdict.UNKNOWN, steps, (), None, (), text)

    def _refuted(self, steps: int, longest: _Longest) -> KeyResult:
        prefix, blocked = longest.order, longest.blocked
        assert blocked != _NONE, "the search backtracks only after reaching a return"
        placed = set(prefix)
        deadline = self.ops[blocked].return_time
        assert deadline is not None
        # The candidates when the search stopped short: unplaced calls made by the deadline.
        pending = [
            local
            for local, op in enumerate(self.ops)
            if local not in placed and op.call_time <= deadline
        ]
        text = _explain(self, prefix, longest.state, blocked, pending)
        return KeyResult(
            self.key,
            Verdict.NOT_LINEARIZABLE,
            steps,
            tuple(self.indices[local] for local in prefix),
            self.indices[blocked],
            tuple(self.indices[local] for local in pending),
            text,
        )


class _Longest:
    """The longest linearizable prefix the search has held, for the failure report.

    Copying the stack at each new record would cost O(n) a time and O(n**2) on a long
    history; instead the part still shared with the stack (``agree``) is kept and only what
    was pushed since is copied, so each push is copied at most once per record.
    """

    __slots__ = ("agree", "blocked", "order", "state")

    def __init__(self) -> None:
        self.order: list[int] = []
        self.agree = 0
        self.state: Hashable = None
        self.blocked = _NONE

    def offer(self, stack: list[_Frame], op_of: list[int], state: Hashable, blocked: int) -> None:
        """The search reached the return of *blocked* with *stack* placed."""
        if self.blocked != _NONE and len(stack) <= len(self.order):
            return
        del self.order[self.agree :]
        self.order.extend(op_of[frame[0]] for frame in stack[self.agree :])
        self.agree = len(stack)
        self.state, self.blocked = state, blocked

    def shrink(self, depth: int) -> None:
        self.agree = min(self.agree, depth)


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
        print(f"not linearizable: {result.explanation()}")
        return 1
    print(f"unknown: {result.summary}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
