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
for months strays from the wall clock by the monotonic clock's drift, which NTP slews; a
node started with its wall clock wrong (before NTP synced) keeps that error in the log time
it stamps, and so in keys' lease expiries, until it restarts.
"""

from __future__ import annotations

import time
from functools import partial

# CLOCK_BOOTTIME where there is one (Linux): monotonic too, but it counts time the machine
# spends suspended, as CLOCK_MONOTONIC does not. A leader suspended past an election timeout
# must find its lease over when it resumes, as the wall clock made it: under CLOCK_MONOTONIC
# its lease ran on while the others elected a rival (found in review). A hypervisor that
# freezes a guest's clocks while it is paused defeats both, as it did the wall clock.
_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)
_running = time.monotonic if _BOOTTIME is None else partial(time.clock_gettime, _BOOTTIME)
_OFFSET = time.time() - _running()


def now() -> float:
    """Seconds since the epoch as of this process's start, counted on since monotonically,
    suspends included."""
    return _running() + _OFFSET
