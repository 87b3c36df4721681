"""The time the runtime gives the engine: the wall clock read once, at start, advanced by the
monotonic clock from then on.

The engine times elections and leases with it, and a leader stamps log time with it (the
time keys' leases expire by). Lease reads rest on two intervals measured on two nodes' clocks:
a leader's lease, and a voter's wait before it promises a rival. Read from the wall clock,
a clock stepped back (NTP, an operator, a VM resumed) stretched a leader's lease in real time
and one stepped forward cut a voter's wait short (review, twelfth session). Monotonic time
alone cannot be compared across nodes, though, and log time must roughly be (a new leader
keeps the largest stamp seen, so a stamp far off would hold leases too long or expire them
early): hence the wall clock's reading at start, carried on monotonically. A node running
for months strays from the wall clock by the monotonic clock's drift, which NTP slews.
"""

from __future__ import annotations

import time

_monotonic = time.monotonic
_OFFSET = time.time() - _monotonic()


def now() -> float:
    """Seconds since the epoch as of this process's start, counted on since monotonically."""
    return _monotonic() + _OFFSET
