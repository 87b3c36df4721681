"""A cluster's window, and how its formation id carries it.

The window is alpha in Lamport's alpha-reconfiguration (``paxos/configs.py``): how many slots
a leader keeps in flight, and how far on a configuration change chosen in a slot takes effect.
Nodes that counted different windows could count different quorums for one slot
(tests/paxos/test_window_mixed_review.py), so a cluster's window is fixed when it is formed
and kept for good in its formation id (``identity.py``), which every member keeps in its
genesis and carries in its idents: ``<hash>`` for the legacy window, ``<hash>/w<slots>`` for
any other. Its own module because ``protocol``, which the thin client loads too, encodes and
decodes idents, and the thin client must not load ``identity``.
"""

from __future__ import annotations

WINDOW_SLOTS = 64
"""The window of a cluster this release forms. 64 slots rather than 16 keep 1 KB and 8 KB
writes flowing while a majority syncs (docs/PERFORMANCE.md, twenty-sixth session)."""

LEGACY_WINDOW_SLOTS = 16
"""The window of every cluster formed before windows were kept, or with a founder of such a
release: the one every release before ran."""

MAX_WINDOW_SLOTS = 1024
WINDOW_MARK = "/w"


def window_slots(formation: str) -> int:
    """The window (alpha) of the cluster of ``formation``: ValueError if it names a bad one.

    ``formation`` comes from a peer's ident or a genesis file, so it is checked: a window out
    of range would fail the engine's settings on a node that adopted it.
    """
    _, mark, window = formation.rpartition(WINDOW_MARK)
    if not mark:
        return LEGACY_WINDOW_SLOTS  # (also the legacy formation, "")
    canonical = window.isascii() and window.isdecimal() and str(int(window)) == window
    if not canonical or not 1 <= int(window) <= MAX_WINDOW_SLOTS:
        raise ValueError(f"formation {formation!r} names no window of 1-{MAX_WINDOW_SLOTS} slots")
    return int(window)


def formation_field(formation: str) -> str | list[str]:
    """How ``formation`` is written in idents and ``genesis.json``: a windowed cluster's as a
    list of one. Releases before windows read only a string, so they drop such an ident as
    malformed and refuse such a genesis as damaged: they are never counted in a cluster whose
    window they do not know, nor run one's log at the legacy window (a whole cluster
    downgraded at once was caught by nothing else: review, twenty-sixth session)."""
    return formation if window_slots(formation) == LEGACY_WINDOW_SLOTS else [formation]


def formation_from_field(field: object) -> str:
    """The formation a field written by :func:`formation_field` holds; ValueError for any
    other field (a bad window, or a window in the other form)."""
    listed = type(field) is list and len(field) == 1
    formation = field[0] if listed else field  # type: ignore[index]
    if type(formation) is not str:
        raise ValueError("a formation is a string, or a list of one")
    if listed != (window_slots(formation) != LEGACY_WINDOW_SLOTS):
        raise ValueError(f"formation {formation!r} is written in the form of another window")
    return formation
