"""Settings every property test shares.

Tests are deterministic and assert no timings (speed is the benchmarks' business), so every
Hypothesis test runs derandomized -- the same examples on every run and every machine, a
failure replays as it is -- and with no per-example deadline: on a loaded two-core host one
example of the replay-window tests once took 545 ms against the default 200 ms, and failed a
run that had found nothing wrong.
"""

from hypothesis import settings

settings.register_profile("paxoskv", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("paxoskv")
