"""Sequential specifications the linearizability checker holds histories against.

A model says what one object (here: one key) would answer if calls ran one at a time. It is
deliberately tiny and pure, as Porcupine's models are: ``init()`` and ``step()``, with hashable
states, because the checker memoises (linearized set, state) pairs and would loop or lie if a
state could change behind its back.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final, Protocol, TypeVar

from simulations.kv_history import Operation, thaw

StateT = TypeVar("StateT", bound=Hashable)


class Model(Protocol[StateT]):
    """The sequential behaviour of one partition of a history (one key)."""

    def init(self) -> StateT:
        """The state before any operation."""
        ...

    def step(self, state: StateT, op: Operation) -> tuple[bool, StateT]:
        """Whether *op*, run alone in *state*, could have answered what it answered, and the
        state after it. Must be deterministic. For a call whose outcome is unknown the output
        says nothing, so the answer may depend only on the state, ``op.op`` and ``op.input``:
        the checker treats such calls with equal op and input as interchangeable."""
        ...

    def describe(self, state: StateT) -> str:
        """A short text for failure reports."""
        ...


class _Absent:
    """The state of a key that holds no value; distinct from a stored None."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


def _matches(state: Hashable, frozen_value: Hashable) -> bool:
    """Whether a key in *state* reads as *frozen_value*, where None stands for absent.

    A stored None and an absent key both read as None, so both match None; the client API
    cannot tell them apart either.
    """
    if frozen_value is None:
        return state is ABSENT or state is None
    return state == frozen_value


class KVModel:
    """One key of the store: get, set, delete (reporting whether the key existed) and cas.

    The state is :data:`ABSENT` or the frozen value (see :func:`simulations.kv_history.freeze`).
    """

    def init(self) -> Hashable:
        return ABSENT

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        known = op.return_time is not None
        kind = op.op
        if kind == "get":
            return (not known or _matches(state, op.frozen_output)), state
        if kind == "set":
            return True, op.frozen_input
        if kind == "delete":
            existed = state is not ABSENT
            reported = op.output if known else None
            return (reported is None or reported == existed), ABSENT
        return self._step_cas(state, op, known)

    @staticmethod
    def _step_cas(state: Hashable, op: Operation, known: bool) -> tuple[bool, Hashable]:
        assert isinstance(op.frozen_input, tuple)  # Operation froze a cas input as a pair
        expect, new = op.frozen_input
        swapped = _matches(state, expect)
        after = new if swapped else state
        reported = op.output if known else None
        return (reported is None or reported == swapped), after

    def describe(self, state: Hashable) -> str:
        if state is ABSENT:
            return "absent"
        text = repr(thaw(state))
        return f"value {text}" if len(text) <= 60 else f"value {text[:57]}..."


KV_MODEL: Final = KVModel()
