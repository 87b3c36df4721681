"""A cluster's window, and how its formation id carries it.

The window is alpha in Lamport's alpha-reconfiguration (``paxos/configs.py``): how many slots
a leader keeps in flight, and how far on a configuration change chosen in a slot takes effect.
Nodes that counted different windows could count different quorums for one slot
(tests/paxos/test_window_mixed_review.py), so a cluster's window is fixed when it is formed
and kept for good in its formation id (``identity.py``), which every member keeps in its
genesis and carries in its idents: ``<hash>`` for the legacy window, ``<hash>/w<slots>`` for
any other. Its own module because the thin client decodes idents and never loads identity.
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
