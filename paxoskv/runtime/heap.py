"""Giving the C heap's free memory back to the OS once a snapshot's packed copy is let go.

A snapshot kept for a peer is packed whole on a worker thread (see ``SnapshotImage``; the
others are streamed to their file a piece at a time and hold no copy), so its pieces, as
large as the state, come from that thread's own malloc arena, and glibc keeps an arena's
free memory resident for it rather than returning it: a node that let the packed copy go
still held most of it (100,000 values of 1 KB: 62 MB of a 119 MB copy stayed resident after
it was freed, and came back with ``malloc_trim``; packed on the main thread it all went back
by itself).
``malloc_trim(0)`` returns the free pages of every arena; it takes a few milliseconds, and is
called off the event loop. Where the C library has no ``malloc_trim`` (musl, macOS) this does
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import cache


def give_back_free_memory() -> None:
    """Return the C heap's free pages to the OS, where the C library can (never raises: it
    runs unawaited, on a worker)."""
    trim = _malloc_trim()
    if trim is not None:
        with suppress(Exception):  # (ctypes' own errors: malloc_trim itself cannot fail)
            trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes  # (only once a snapshot has been let go of: not at every start)

        return ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError, TypeError):
        # No ctypes, no such function in this C library (musl, macOS), or no CDLL(None)
        # (Windows): nothing to do.
        return None
